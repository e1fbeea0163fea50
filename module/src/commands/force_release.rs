//! `LOCK.FORCERELEASE key`: removes the holder, whoever it is (an operator's
//! tool for a stuck holder); the head of the queue takes over.

use crate::effects::Write;
use crate::lock_type::LockValue;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let [_, name] = &args[..] else {
        return Err(RedisError::WrongArity);
    };
    // A holder whose time had run out was not held when this command came:
    // its expiry handed the lock on, and the new holder is left alone.
    let removed = Write::<LockValue>::begin(ctx, name)?
        .run(false, |change| change.force_release())?
        .unwrap_or(false);
    Ok(RedisValue::Integer(i64::from(removed)))
}
