//! `SEM.RELEASE key token`: ends the token's lease; the queue's head is
//! granted while it fits. A `token` that is queued instead leaves the
//! queue, its waiter answered null (reply 0), which may let those behind
//! it through.

use crate::commands::{arg_error, bytes};
use crate::effects::Write;
use crate::sem_type::SemValue;
use crate::waiting;
use baton_core::args;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let argv = bytes(&args);
    let [_, _, token] = &argv[..] else {
        return Err(RedisError::WrongArity);
    };
    let token = args::token(token).map_err(arg_error)?;
    let (released, withdrawn) = Write::<SemValue>::begin(ctx, &args[1])?
        .run(None, |change| change.release_or_withdraw(token))?
        .unwrap_or((false, None));
    if let Some(id) = withdrawn {
        waiting::withdrawn(ctx.get_raw(), id);
    }
    Ok(RedisValue::Integer(i64::from(released)))
}
