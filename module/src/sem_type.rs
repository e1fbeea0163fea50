//! The `baton-sem` data type: a semaphore stored under the user's key, with
//! RDB save/load, AOF rewrite, memory usage, free and unlink.
//!
//! Persisted: the limit, every lease (token, permits, fence, absolute
//! expiry) and, since encoding version 2, the last fence issued on the
//! semaphore (`SEM.INFO`'s `fence`: its lease may be gone). Version 1
//! payloads still load, the last fence then being the largest lease's.
//! Waiters are connections and are not persisted. Loading checks every
//! field (RESTORE hands us whatever a client sent): a limit in range, at
//! least one lease, permits that add up to no more than the limit, valid
//! and distinct tokens, fences in range, a last fence no lower than a
//! lease's.

use crate::{external, ffi, node, stats};
use baton_core::{args, Lease, Semaphore};
use redis_module::native_types::RedisType;
use redis_module::raw;
use std::collections::HashSet;
use std::ffi::c_void;
use std::os::raw::c_int;

/// The encoding version of the RDB format below (1: without the last
/// fence).
const ENCODING_VERSION: i32 = 2;

/// A semaphore as stored in the keyspace. Its queue's payloads hold only the
/// permits asked: how to wake each waiter is in the node's registry.
pub type SemValue = Semaphore<()>;

pub static SEM_TYPE: RedisType = RedisType::new(
    "baton-sem",
    ENCODING_VERSION,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(rdb_load),
        rdb_save: Some(rdb_save),
        aof_rewrite: Some(aof_rewrite),
        mem_usage: Some(mem_usage),
        digest: None,
        free: Some(free),
        aux_load: None,
        aux_save: None,
        aux_save2: None,
        aux_save_triggers: 0,
        free_effort: None,
        unlink: None,
        copy: None,
        defrag: None,
        copy2: None,
        free_effort2: None,
        mem_usage2: None,
        unlink2: Some(unlink),
    },
);

/// Puts a new semaphore in the counters; every value Redis holds went
/// through here or through `rdb_load`.
pub fn count_new(sem: &SemValue) {
    stats::SEMAPHORES.incr();
    stats::LEASES.add(sem.holders() as u64);
}

extern "C" fn rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    let Some(sem) = ffi::value_ref::<SemValue>(value) else {
        return;
    };
    raw::save_unsigned(rdb, u64::from(sem.limit()));
    raw::save_unsigned(rdb, sem.holders() as u64);
    for (token, lease) in sem.leases() {
        raw::save_slice(rdb, token);
        raw::save_unsigned(rdb, u64::from(lease.permits));
        raw::save_unsigned(rdb, lease.fence);
        raw::save_unsigned(rdb, lease.expires_at);
    }
    raw::save_unsigned(rdb, sem.last_fence());
}

extern "C" fn rdb_load(rdb: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    // Every read is checked (REDISMODULE_OPTIONS_HANDLE_IO_ERRORS): a short
    // or malformed payload is an error here, and null makes RESTORE reply an
    // error instead of Redis panicking.
    match load(rdb, encver) {
        Some(sem) => {
            count_new(&sem);
            ffi::value_into_raw(sem)
        }
        None => std::ptr::null_mut(),
    }
}

fn load(rdb: *mut raw::RedisModuleIO, encver: c_int) -> Option<SemValue> {
    if !(1..=ENCODING_VERSION).contains(&encver) {
        return None;
    }
    let limit = u32::try_from(raw::load_unsigned(rdb).ok()?)
        .ok()
        .filter(|&l| l >= 1 && u64::from(l) <= args::MAX_MS)?;
    let count = raw::load_unsigned(rdb).ok()?;
    if count == 0 || count > u64::from(limit) {
        return None;
    }
    let mut leases = Vec::new();
    let (mut sum, mut tokens) = (0u64, HashSet::new());
    for _ in 0..count {
        let token = raw::load_string_buffer(rdb).ok()?;
        let token: Box<[u8]> = args::token(token.as_ref()).ok()?.into();
        let permits = u32::try_from(raw::load_unsigned(rdb).ok()?).ok()?;
        let fence = raw::load_unsigned(rdb).ok()?;
        let expires_at = raw::load_unsigned(rdb).ok()?;
        sum += u64::from(permits);
        let valid = permits >= 1
            && sum <= u64::from(limit)
            && expires_at <= baton_core::MAX_FENCE
            && node::with(|node| node.accepts_fence(fence))
            && tokens.insert(token.clone());
        if !valid {
            return None;
        }
        leases.push((
            token,
            Lease {
                permits,
                fence,
                expires_at,
            },
        ));
    }
    let highest = leases.iter().map(|(_, l)| l.fence).max().unwrap_or(0);
    let last = match encver {
        1 => highest,
        _ => raw::load_unsigned(rdb).ok()?,
    };
    if last < highest || !node::with(|node| node.accepts_fence(last)) {
        return None;
    }
    let mut sem = SemValue::new(limit);
    node::with(|node| {
        for (token, lease) in leases {
            sem.apply(&token, lease, node.fences());
        }
        node.fences().observe(last);
    });
    sem.observe_fence(last);
    Some(sem)
}

extern "C" fn aof_rewrite(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    value: *mut c_void,
) {
    let Some(sem) = ffi::value_ref::<SemValue>(value) else {
        return;
    };
    for (token, lease) in sem.leases() {
        ffi::emit_aof_sem_apply(aof, key, sem.limit(), token, lease);
    }
}

extern "C" fn mem_usage(value: *const c_void) -> usize {
    let Some(sem) = ffi::value_ref::<SemValue>(value) else {
        return 0;
    };
    // At most: a lease costs its token twice (by token, by expiry) and two
    // map entries once there are many (a few sit in one vector); a waiter
    // its entry in the queue's deque and two maps.
    let per_lease = std::mem::size_of::<Lease>() + 96;
    let tokens: usize = sem.leases().map(|(t, _)| 2 * t.len()).sum();
    let per_waiter = std::mem::size_of::<baton_core::Waiter<baton_core::Request<()>>>() + 64;
    std::mem::size_of::<SemValue>()
        + tokens
        + sem.holders() * per_lease
        + sem.waiters() * per_waiter
}

extern "C" fn free(value: *mut c_void) {
    let Some(sem) = ffi::value_from_raw::<SemValue>(value) else {
        return;
    };
    stats::SEMAPHORES.decr();
    stats::LEASES.sub(sem.holders() as u64);
}

extern "C" fn unlink(ctx: *mut raw::RedisModuleKeyOptCtx, value: *const c_void) {
    // The value leaves the keyspace; it is freed, if at all, after this.
    let Some(sem) = ffi::value_mut::<SemValue>(value) else {
        return;
    };
    external::unlinked_semaphore(ffi::opt_ctx_key(ctx), sem);
}
