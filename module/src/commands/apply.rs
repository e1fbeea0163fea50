//! `LOCK.APPLY key token fence expire-at-ms [META value]`: internal. The primary propagates
//! every grant, renewal and extend as this command, with the absolute expiry,
//! so replicas and the AOF replay the effect, never a relative ttl. Accepted
//! only from the replication stream and while loading the AOF.

use super::{arg_error, bytes};
use crate::effects::{self, Scope};
use crate::keyspace::LockKey;
use crate::lock_type::LockValue;
use crate::{ffi, node};
use baton_core::{args, wire, Holder};
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

pub fn run(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let argv = bytes(&args);
    let (name, token, fence, expires_at, meta) = match &argv[..] {
        [_, name, token, fence, expires_at] => (name, token, fence, expires_at, None),
        [_, name, token, fence, expires_at, word, meta] if word.eq_ignore_ascii_case(b"META") => {
            (name, token, fence, expires_at, Some(*meta))
        }
        _ => return Err(RedisError::WrongArity),
    };
    if !ffi::Flags::of(ctx.get_raw()).is_applying() {
        return Err(RedisError::Str(wire::APPLY_INTERNAL));
    }
    let token = args::token(token).map_err(arg_error)?;
    let fence = parse_u64(fence)
        .filter(|&f| node::with(|node| node.accepts_fence(f)))
        .ok_or(RedisError::Str(wire::APPLY_FENCE))?;
    let expires_at = parse_u64(expires_at).ok_or(RedisError::Str(wire::APPLY_EXPIRY))?;
    if meta.is_some_and(|m| m.len() > args::MAX_META_LEN) {
        return Err(arg_error(baton_core::ArgError::Meta));
    }

    let key = LockKey::open(ctx, &args[1])?;
    let scope = Scope::local(ctx.get_raw(), name);
    let lock = match key.lock() {
        Some(lock) => lock,
        None => key.create(LockValue::new())?,
    };
    let holder = Holder {
        token: token.into(),
        fence,
        expires_at,
        meta: meta.map(Into::into),
    };
    let transition = node::with(|node| lock.change_applied(holder, node.fences()));
    effects::execute(&scope, &key, transition);
    Ok(RedisValue::SimpleStringStatic("OK"))
}

fn parse_u64(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
}
