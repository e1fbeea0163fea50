//! `SEM.APPLY key limit token permits fence expire-at-ms` and
//! `SEM.DROP key token`: internal. The primary propagates every lease it
//! grants, renews or extends as `SEM.APPLY` (absolute expiry), every lease
//! that ends as `SEM.DROP`, and a semaphore left with none as `DEL`.
//! Accepted only from the replication stream and while loading the AOF.

use crate::commands::{arg_error, bytes};
use crate::effects::{self, Scope};
use crate::keyspace::SemKey;
use crate::sem_type::SemValue;
use crate::{ffi, node};
use baton_core::{args, wire, Lease, LeaseChange, Mark, SemTransition};
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

fn trusted(ctx: &Context) -> Result<(), RedisError> {
    if ffi::Flags::of(ctx.get_raw()).is_applying() {
        Ok(())
    } else {
        Err(RedisError::Str(wire::SEM_APPLY_INTERNAL))
    }
}

fn change_of(token: &[u8], lease: &Lease) -> LeaseChange {
    LeaseChange {
        token: token.into(),
        mark: Mark {
            fence: lease.fence,
            expires_at: lease.expires_at,
        },
        permits: lease.permits,
    }
}

/// `SEM.APPLY`.
pub fn apply(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let argv = bytes(&args);
    let [_, name, limit, token, permits, fence, expires_at] = &argv[..] else {
        return Err(RedisError::WrongArity);
    };
    trusted(ctx)?;
    let options = [&b"LIMIT"[..], limit, b"PERMITS", permits];
    let opts = args::sem_options(&options).map_err(arg_error)?;
    let token = args::token(token).map_err(arg_error)?;
    let fence = parse_u64(fence)
        .filter(|&f| node::with(|node| node.accepts_fence(f)))
        .ok_or(RedisError::Str(wire::APPLY_FENCE))?;
    let expires_at = parse_u64(expires_at).ok_or(RedisError::Str(wire::APPLY_EXPIRY))?;
    let key = SemKey::open(ctx, &args[1])?;
    let scope = Scope::local(ctx.get_raw(), name);
    let sem = match key.value() {
        Some(sem) => sem,
        None => key.create(SemValue::new(opts.limit))?,
    };
    let lease = Lease {
        permits: opts.permits,
        fence,
        expires_at,
    };
    let ended = sem.lease(token).map(|old| change_of(token, old));
    let began = change_of(token, &lease);
    node::with(|node| sem.apply(token, lease, node.fences()));
    let transition = SemTransition {
        ended: ended.into_iter().collect(),
        began: vec![began],
        grants: Vec::new(),
        forget: false,
        counts: Default::default(),
    };
    effects::execute_sem(&scope, &key, transition);
    Ok(RedisValue::SimpleStringStatic("OK"))
}

/// `SEM.DROP`.
pub fn drop_lease(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let argv = bytes(&args);
    let [_, name, token] = &argv[..] else {
        return Err(RedisError::WrongArity);
    };
    trusted(ctx)?;
    let token = args::token(token).map_err(arg_error)?;
    let key = SemKey::open(ctx, &args[1])?;
    let scope = Scope::local(ctx.get_raw(), name);
    let Some(sem) = key.value() else {
        return Ok(RedisValue::Integer(0));
    };
    let Some(lease) = sem.drop_lease(token) else {
        return Ok(RedisValue::Integer(0));
    };
    let transition = SemTransition {
        ended: vec![change_of(token, &lease)],
        began: Vec::new(),
        grants: Vec::new(),
        forget: sem.is_idle(),
        counts: Default::default(),
    };
    effects::execute_sem(&scope, &key, transition);
    Ok(RedisValue::Integer(1))
}

fn parse_u64(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
}
