//! `LOCK.RELEASE key token`: frees the lock if `token` holds it; the head of
//! the queue takes over in the same step.

use super::{arg_error, bytes};
use crate::effects::{self, Scope};
use crate::keyspace::LockKey;
use crate::{ffi, node, stats};
use baton_core::{args, Release};
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let argv = bytes(&args);
    let [_, name, token] = &argv[..] else {
        return Err(RedisError::WrongArity);
    };
    let token = args::token(token).map_err(arg_error)?;

    let key = LockKey::open(ctx, &args[1])?;
    let scope = Scope::local(ctx.get_raw(), name);
    let now = ffi::now_ms();
    let before = effects::mark(key.lock().as_deref());
    let mut grants: Vec<_> = effects::expire_if_due(key.lock(), now)
        .flatten()
        .into_iter()
        .collect();
    let released = match key.lock() {
        Some(lock) => match node::with(|node| lock.release(token, now, &mut node.fences)) {
            Release::Released { handoff } => {
                stats::RELEASES.incr();
                grants.extend(handoff);
                true
            }
            Release::NotHolder => false,
        },
        None => false,
    };
    effects::settle(&scope, &key, before, grants);
    Ok(RedisValue::Integer(i64::from(released)))
}
