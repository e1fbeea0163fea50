//! `SEM.EXTEND key token ttl-ms`: renews the token's lease to now + ttl-ms.

use crate::commands::{arg_error, bytes};
use crate::effects::Write;
use crate::sem_type::SemValue;
use baton_core::args;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let argv = bytes(&args);
    let [_, _, token, ttl] = &argv[..] else {
        return Err(RedisError::WrongArity);
    };
    let token = args::token(token).map_err(arg_error)?;
    let ttl = args::ttl_ms(ttl).map_err(arg_error)?;
    let extended = Write::<SemValue>::begin(ctx, &args[1])?
        .run(None, |change| change.extend(token, ttl))?
        .unwrap_or(false);
    Ok(RedisValue::Integer(i64::from(extended)))
}
