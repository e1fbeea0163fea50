//! `LOCK.FORCERELEASE key`: removes the holder, whoever it is (an operator's
//! tool for a stuck holder); the head of the queue takes over.

use crate::effects::{self, Scope};
use crate::keyspace::LockKey;
use crate::{ffi, node, stats};
use baton_core::Release;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let [_, name] = &args[..] else {
        return Err(RedisError::WrongArity);
    };
    let key = LockKey::open(ctx, name)?;
    let scope = Scope::local(ctx.get_raw(), name.as_slice());
    let now = ffi::now_ms();
    let before = effects::mark(key.lock().as_deref());
    // A holder whose time had run out was not held when this command came:
    // its expiry hands the lock on, and the new holder is left alone.
    let (removed, grants) = match effects::expire_if_due(key.lock(), now) {
        Some(grant) => (false, grant.into_iter().collect()),
        None => match key
            .lock()
            .map(|lock| node::with(|node| lock.force_release(now, &mut node.fences)))
        {
            Some(Release::Released { handoff }) => {
                stats::FORCE_RELEASES.incr();
                (true, handoff.into_iter().collect())
            }
            Some(Release::NotHolder) | None => (false, Vec::new()),
        },
    };
    effects::settle(&scope, &key, before, grants);
    Ok(RedisValue::Integer(i64::from(removed)))
}
