//! `LOCK.RELEASE key token`: frees the lock if `token` holds it; the head of
//! the queue takes over in the same step.

use super::{arg_error, bytes};
use crate::effects::Change;
use crate::{node, stats};
use baton_core::{args, Release};
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let argv = bytes(&args);
    let [_, _, token] = &argv[..] else {
        return Err(RedisError::WrongArity);
    };
    let token = args::token(token).map_err(arg_error)?;

    let mut change = Change::begin(ctx, &args[1])?;
    let now = change.now;
    let outcome = change
        .key
        .lock()
        .map(|lock| node::with(|node| lock.release(token, now, node.fences())));
    let released = match outcome {
        Some(Release::Released { handoff }) => {
            stats::RELEASES.incr();
            change.grants.extend(handoff);
            true
        }
        Some(Release::NotHolder) | None => false,
    };
    change.finish();
    Ok(RedisValue::Integer(i64::from(released)))
}
