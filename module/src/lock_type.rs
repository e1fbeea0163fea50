//! The `baton-lck` data type: a lock stored under the user's key, with RDB
//! save/load, AOF rewrite, memory usage and free.
//!
//! Only the holder is persisted (token, fence, absolute expiry): waiters are
//! connections, and no connection survives a restart. Loading checks every
//! field (RESTORE hands us whatever a client sent). The node's fence counter
//! is saved as aux data before the keyspace, so fences of deleted locks are not
//! reissued after a restart.

use crate::{external, ffi, node, stats};
use baton_core::{Holder, Lock};
use redis_module::native_types::RedisType;
use redis_module::raw;
use std::ffi::c_void;
use std::os::raw::c_int;

/// The encoding version of the RDB format below: 2 adds the holder's
/// value (`META`); 1 (no value) still loads.
const ENCODING_VERSION: i32 = 2;

/// A lock as stored in the keyspace. Its queue holds waiter ids only: how to
/// wake each (handle, deadline) is in the node's registry (`waiting`).
pub type LockValue = Lock<()>;

pub static LOCK_TYPE: RedisType = RedisType::new(
    "baton-lck",
    ENCODING_VERSION,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(rdb_load),
        rdb_save: Some(rdb_save),
        aof_rewrite: Some(aof_rewrite),
        mem_usage: Some(mem_usage),
        digest: None,
        free: Some(free),
        aux_load: Some(aux_load),
        aux_save: Some(aux_save),
        aux_save2: None,
        aux_save_triggers: raw::REDISMODULE_AUX_BEFORE_RDB as c_int,
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

/// Puts a new lock value in the counters; every value Redis holds went
/// through here or through `rdb_load`.
pub fn count_new(lock: &LockValue) {
    stats::LOCKS.incr();
    if lock.holder().is_some() {
        stats::HELD.incr();
    }
}

extern "C" fn rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    let Some(lock) = ffi::value_ref::<LockValue>(value) else {
        return;
    };
    let (fence, expires_at, token, meta) = lock.holder().map_or((0, 0, &b""[..], None), |h| {
        (h.fence, h.expires_at, &h.token[..], h.meta.as_deref())
    });
    raw::save_unsigned(rdb, fence);
    raw::save_unsigned(rdb, expires_at);
    raw::save_slice(rdb, token);
    raw::save_unsigned(rdb, u64::from(meta.is_some()));
    if let Some(meta) = meta {
        raw::save_slice(rdb, meta);
    }
}

extern "C" fn rdb_load(rdb: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    // Every read is checked: with REDISMODULE_OPTIONS_HANDLE_IO_ERRORS set at
    // load, a short or malformed payload (RESTORE) is an error we see here,
    // not a panic of Redis. Null makes RESTORE reply an error.
    match load_holder(rdb, encver) {
        Some(holder) => {
            let lock = node::with(|node| LockValue::held_by(holder, node.fences()));
            count_new(&lock);
            ffi::value_into_raw(lock)
        }
        None => std::ptr::null_mut(),
    }
}

/// Reads and checks one saved holder: a valid value always has one (a free
/// lock has no key), its token is 1 to 256 bytes, and its fence is in range
/// (`FenceCounter::accepts`), so a forged payload cannot push the node's
/// counter out of the range fences live in.
fn load_holder(rdb: *mut raw::RedisModuleIO, encver: c_int) -> Option<Holder> {
    if !(1..=ENCODING_VERSION).contains(&encver) {
        return None;
    }
    let fence = raw::load_unsigned(rdb).ok()?;
    let expires_at = raw::load_unsigned(rdb).ok()?;
    let token = raw::load_string_buffer(rdb).ok()?;
    let token = baton_core::args::token(token.as_ref()).ok()?;
    let meta = match encver {
        1 => None,
        _ => load_meta(rdb)?,
    };
    if expires_at > baton_core::MAX_FENCE || !node::with(|node| node.accepts_fence(fence)) {
        return None;
    }
    Some(Holder {
        token: token.into(),
        fence,
        expires_at,
        meta,
    })
}

/// Reads a saved value: a flag, then the bytes (at most `MAX_META_LEN`).
/// `None` when malformed; `Some(None)` when the holder has none.
fn load_meta(rdb: *mut raw::RedisModuleIO) -> Option<Option<Box<[u8]>>> {
    match raw::load_unsigned(rdb).ok()? {
        0 => Some(None),
        1 => {
            let meta = raw::load_string_buffer(rdb).ok()?;
            let meta = meta.as_ref();
            (meta.len() <= baton_core::args::MAX_META_LEN).then(|| Some(meta.into()))
        }
        _ => None,
    }
}

extern "C" fn aof_rewrite(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    value: *mut c_void,
) {
    let Some(lock) = ffi::value_ref::<LockValue>(value) else {
        return;
    };
    if let Some(holder) = lock.holder() {
        ffi::emit_aof_apply(aof, key, holder);
    }
}

extern "C" fn mem_usage(value: *const c_void) -> usize {
    let Some(lock) = ffi::value_ref::<LockValue>(value) else {
        return 0;
    };
    let token = lock.holder().map_or(0, |h| h.token.len());
    // A waiter costs its entry in the queue's deque and two maps.
    let per_waiter = std::mem::size_of::<baton_core::Waiter<()>>() + 64;
    std::mem::size_of::<LockValue>() + token + lock.waiters() * per_waiter
}

extern "C" fn free(value: *mut c_void) {
    let Some(lock) = ffi::value_from_raw::<LockValue>(value) else {
        return;
    };
    stats::LOCKS.decr();
    if lock.holder().is_some() {
        stats::HELD.decr();
    }
}

extern "C" fn aux_save(rdb: *mut raw::RedisModuleIO, _when: c_int) {
    raw::save_unsigned(rdb, node::with(|node| node.fences().last()));
}

extern "C" fn aux_load(rdb: *mut raw::RedisModuleIO, encver: c_int, _when: c_int) -> c_int {
    if !(1..=ENCODING_VERSION).contains(&encver) {
        return raw::REDISMODULE_ERR as c_int;
    }
    match raw::load_unsigned(rdb) {
        // 0: no fence issued yet. Anything out of range is refused like a
        // forged value (see `load_holder`).
        Ok(last) if last == 0 || node::with(|node| node.accepts_fence(last)) => {
            node::with(|node| node.fences().observe(last));
            raw::REDISMODULE_OK as c_int
        }
        _ => raw::REDISMODULE_ERR as c_int,
    }
}

extern "C" fn unlink(ctx: *mut raw::RedisModuleKeyOptCtx, value: *const c_void) {
    // The value leaves the keyspace; it is freed, if at all, after this.
    let Some(lock) = ffi::value_mut::<LockValue>(value) else {
        return;
    };
    external::unlinked(ffi::opt_ctx_key(ctx), lock);
}
