//! `LOCK.RELEASE key token`: frees the lock if `token` holds it; the head of
//! the queue takes over in the same step. A `token` that is queued instead
//! leaves the queue, its waiter answered null (reply 0): a client that gave
//! up on a wait withdraws it, and a grant that raced, in one command.

use super::{arg_error, bytes};
use crate::effects::Write;
use crate::lock_type::LockValue;
use crate::waiting;
use baton_core::args;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let argv = bytes(&args);
    let [_, _, token] = &argv[..] else {
        return Err(RedisError::WrongArity);
    };
    let token = args::token(token).map_err(arg_error)?;

    let (released, withdrawn) = Write::<LockValue>::begin(ctx, &args[1])?
        .run(false, |change| change.release_or_withdraw(token))?
        .unwrap_or((false, None));
    if let Some(id) = withdrawn {
        waiting::withdrawn(ctx.get_raw(), id);
    }
    Ok(RedisValue::Integer(i64::from(released)))
}
