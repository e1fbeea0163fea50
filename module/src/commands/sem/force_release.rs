//! `SEM.FORCERELEASE key [token]`: removes every lease, or the token's (an
//! operator's tool); the queue's head is granted while it fits. Replies how
//! many leases were removed.

use crate::commands::{arg_error, bytes};
use crate::effects::Write;
use crate::sem_type::SemValue;
use baton_core::args;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let argv = bytes(&args);
    let token = match &argv[..] {
        [_, _] => None,
        [_, _, token] => Some(args::token(token).map_err(arg_error)?),
        _ => return Err(RedisError::WrongArity),
    };
    let removed = Write::<SemValue>::begin(ctx, &args[1])?
        .run(None, |change| change.force_release(token))?
        .unwrap_or(0);
    Ok(RedisValue::Integer(
        i64::try_from(removed).unwrap_or(i64::MAX),
    ))
}
