//! `LOCK.FENCE key`: the fence of the current holder, 0 when the lock is free
//! (a free lock's key is gone, and its fence with it).

use super::acquire::fence_reply;
use crate::lock_type::LockValue;
use crate::{ffi, keyspace};
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let [_, name] = &args[..] else {
        return Err(RedisError::WrongArity);
    };
    let now = ffi::now_ms();
    keyspace::read(ctx, name, |lock| {
        let fence = lock
            .and_then(|lock: &LockValue| lock.holder())
            .filter(|holder| !holder.is_expired(now))
            .map_or(0, |holder| holder.fence);
        RedisValue::Integer(fence_reply(fence))
    })
}
