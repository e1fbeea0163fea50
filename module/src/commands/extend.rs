//! `LOCK.EXTEND key token ttl-ms`: resets the holder's expiry to now + ttl-ms.

use super::{arg_error, bytes};
use crate::effects::{self, Scope};
use crate::keyspace::LockKey;
use crate::{ffi, stats};
use baton_core::args;
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let argv = bytes(&args);
    let [_, name, token, ttl] = &argv[..] else {
        return Err(RedisError::WrongArity);
    };
    let token = args::token(token).map_err(arg_error)?;
    let ttl = args::ttl_ms(ttl).map_err(arg_error)?;

    let key = LockKey::open(ctx, &args[1])?;
    let scope = Scope::local(ctx.get_raw(), name);
    let now = ffi::now_ms();
    let before = effects::mark(key.lock().as_deref());
    let grants: Vec<_> = effects::expire_if_due(key.lock(), now)
        .flatten()
        .into_iter()
        .collect();
    let extended = key
        .lock()
        .and_then(|lock| lock.extend(token, ttl, now))
        .is_some();
    if extended {
        stats::EXTENDS.incr();
    }
    effects::settle(&scope, &key, before, grants);
    Ok(RedisValue::Integer(i64::from(extended)))
}
