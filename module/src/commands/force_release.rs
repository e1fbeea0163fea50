//! `LOCK.FORCERELEASE key`: removes the holder, whoever it is (an operator's
//! tool for a stuck holder); the head of the queue takes over.

use crate::effects::Change;
use crate::{node, stats};
use baton_core::Release;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let [_, name] = &args[..] else {
        return Err(RedisError::WrongArity);
    };
    let mut change = Change::begin(ctx, name)?;
    // A holder whose time had run out was not held when this command came:
    // its expiry handed the lock on, and the new holder is left alone.
    let now = change.now;
    let outcome = (!change.expired)
        .then(|| change.key.lock())
        .flatten()
        .map(|lock| node::with(|node| lock.force_release(now, node.fences())));
    let removed = match outcome {
        Some(Release::Released { handoff }) => {
            stats::FORCE_RELEASES.incr();
            change.grants.extend(handoff);
            true
        }
        Some(Release::NotHolder) | None => false,
    };
    change.finish();
    Ok(RedisValue::Integer(i64::from(removed)))
}
