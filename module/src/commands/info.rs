//! `LOCK.INFO key`: a map of `held`, `fence`, `pttl` and `waiters`.

use super::acquire::fence_reply;
use crate::lock_type::LockValue;
use crate::{ffi, keyspace};
use baton_core::wire::INFO_FIELDS;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let [_, name] = &args[..] else {
        return Err(RedisError::WrongArity);
    };
    let now = ffi::now_ms();
    let (held, fence, pttl, waiters) = keyspace::read(ctx, name, |lock| {
        let holder = lock
            .and_then(|lock: &LockValue| lock.holder())
            .filter(|holder| !holder.is_expired(now));
        let waiters = lock.map_or(0, |lock| lock.waiters());
        match holder {
            Some(h) => (1, fence_reply(h.fence), fence_reply(h.pttl(now)), waiters),
            None => (0, 0, -1, waiters),
        }
    })?;
    let [held_f, fence_f, pttl_f, waiters_f] = INFO_FIELDS;
    ffi::reply_map(
        ctx.get_raw(),
        &[
            (held_f, held),
            (fence_f, fence),
            (pttl_f, pttl),
            (waiters_f, i64::try_from(waiters).unwrap_or(i64::MAX)),
        ],
    );
    Ok(RedisValue::NoReply)
}
