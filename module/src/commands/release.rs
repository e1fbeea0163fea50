//! `LOCK.RELEASE key token`: frees the lock if `token` holds it; the head of
//! the queue takes over in the same step.

use super::{arg_error, bytes};
use crate::effects::Write;
use crate::lock_type::LockValue;
use baton_core::args;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let argv = bytes(&args);
    let [_, _, token] = &argv[..] else {
        return Err(RedisError::WrongArity);
    };
    let token = args::token(token).map_err(arg_error)?;

    let released = Write::<LockValue>::begin(ctx, &args[1])?
        .run(false, |change| change.release(token))?
        .unwrap_or(false);
    Ok(RedisValue::Integer(i64::from(released)))
}
