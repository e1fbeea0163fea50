//! `LOCK.INFO key`: a map of `held`, `fence`, `pttl`, `waiters` and `meta`
//! (the holder's value; null when free or none).

use super::acquire::fence_reply;
use crate::ffi::Field;
use crate::lock_type::LockValue;
use crate::{ffi, keyspace};
use baton_core::wire::INFO_FIELDS;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let [_, name] = &args[..] else {
        return Err(RedisError::WrongArity);
    };
    let now = ffi::now_ms();
    keyspace::read(ctx, name, |lock| {
        let holder = lock
            .and_then(|lock: &LockValue| lock.holder())
            .filter(|holder| !holder.is_expired(now));
        let waiters = lock.map_or(0, |lock| lock.waiters());
        let waiters = Field::Int(i64::try_from(waiters).unwrap_or(i64::MAX));
        let [held, fence, pttl, waiting, meta] = INFO_FIELDS;
        let fields = match holder {
            Some(h) => [
                (held, Field::Int(1)),
                (fence, Field::Int(fence_reply(h.fence))),
                (pttl, Field::Int(fence_reply(h.pttl(now)))),
                (waiting, waiters),
                (meta, Field::Bulk(h.meta.as_deref())),
            ],
            None => [
                (held, Field::Int(0)),
                (fence, Field::Int(0)),
                (pttl, Field::Int(-1)),
                (waiting, waiters),
                (meta, Field::Bulk(None)),
            ],
        };
        ffi::reply_fields(ctx.get_raw(), &fields);
    })?;
    Ok(RedisValue::NoReply)
}
