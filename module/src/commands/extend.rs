//! `LOCK.EXTEND key token ttl-ms [META value]`: resets the holder's expiry
//! to now + ttl-ms and, with `META`, replaces its value. Never a grant: a
//! token that does not hold the lock gets 0 and nothing changes.

use super::{arg_error, bytes};
use crate::effects::Write;
use crate::lock_type::LockValue;
use baton_core::args;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let argv = bytes(&args);
    let [_, _, token, ttl, rest @ ..] = &argv[..] else {
        return Err(RedisError::WrongArity);
    };
    let token = args::token(token).map_err(arg_error)?;
    let ttl = args::ttl_ms(ttl).map_err(arg_error)?;
    let meta = args::extend_options(rest).map_err(arg_error)?;

    let extended = Write::<LockValue>::begin(ctx, &args[1])?
        .run(false, |change| change.extend_with(token, ttl, meta))?
        .unwrap_or(false);
    Ok(RedisValue::Integer(i64::from(extended)))
}
