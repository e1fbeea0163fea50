//! What happens to lock keys without a LOCK command: an operator's DEL,
//! UNLINK, RENAME, MOVE, SWAPDB, FLUSHDB/FLUSHALL, RESTORE or SET, and
//! Redis' own eviction. Each has one outcome:
//!
//! - **Waiters** of a key that is deleted, renamed, moved, overwritten,
//!   evicted, swapped or flushed are answered at once with an `UNBLOCKED`
//!   error and hold nothing (the type's unlink callback, the FLUSHDB and
//!   SWAPDB server events).
//! - **A held lock that moved** (RENAME, MOVE, RESTORE, SWAPDB) keeps its
//!   holder under its new name and is scheduled there at once, so it still
//!   expires on time (keyspace events `rename_to`, `move_to`, `restore`).
//! - **A held lock that eviction took** is not lost: its holder is kept
//!   here until its expiry, and the next LOCK command on the key puts the lock
//!   back (and propagates it), so nobody else is granted it meanwhile and its
//!   holder's extends keep working. Reads answer from the kept holder.
//!   Redis offers no way to exempt a key from eviction; this is the next best.

use crate::keyspace::{self, LockKey, SemKey};
use crate::lock_type::{LockValue, LOCK_TYPE};
use crate::node::{Evicted, KeyRef};
use crate::sem_type::{SemValue, SEM_TYPE};
use crate::{expiry, ffi, node, waiting};
use baton_core::Holder;
use redis_module::{raw, Context, RedisError, RedisString};
use std::ffi::c_void;
use std::os::raw::{c_char, c_int};

/// Subscribes to the events above (at module load).
///
/// Eviction is told by the key-removal server event where the server has it
/// (Redis 7.2+, Valkey), else by the `evicted` keyspace event that follows
/// the unlink (Redis 7.0). Valkey 8.1 leaves a client on the destination
/// database after `MOVE` or `COPY ... DB` when any module subscribes to
/// generic keyspace events (valkey-io/valkey#4024), so there moved locks are
/// left to the backstop sweep instead.
pub fn subscribe(ctx: ffi::Ctx) -> bool {
    let key_event =
        ffi::subscribe_server_event(ctx, raw::REDISMODULE_EVENT_KEY, Some(on_key_removed));
    let mut classes = 0;
    if !ffi::server_is_valkey(ctx) {
        classes |= raw::REDISMODULE_NOTIFY_GENERIC;
    }
    if !key_event {
        classes |= raw::REDISMODULE_NOTIFY_EVICTED;
    }
    (classes == 0 || ffi::subscribe_keyspace_events(ctx, classes, Some(on_keyspace_event)))
        && ffi::subscribe_server_event(ctx, raw::REDISMODULE_EVENT_FLUSHDB, Some(on_flush))
        && ffi::subscribe_server_event(ctx, raw::REDISMODULE_EVENT_SWAPDB, Some(on_swapdb))
}

/// A lock value is leaving the keyspace under `at` (the type's unlink
/// callback: DEL, UNLINK, RENAME, MOVE, overwrite, expiry of a Redis TTL,
/// eviction). Its waiters are answered; its holder is remembered for an
/// `evicted` event that may follow.
pub fn unlinked(at: Option<(i32, &[u8])>, lock: &mut LockValue) {
    waiting::dismiss(lock.drain_waiters().into_iter().map(|w| w.id));
    let kept = lock.holder().cloned().map(Evicted::Lock);
    node::with(|node| node.unlinked = key_ref(at).zip(kept));
}

/// As [`unlinked`], for a semaphore: its waiters are answered, its leases
/// remembered.
pub fn unlinked_semaphore(at: Option<(i32, &[u8])>, sem: &mut SemValue) {
    waiting::dismiss(sem.drain_waiters().into_iter().map(|w| w.id));
    let kept = evicted_of(sem);
    node::with(|node| node.unlinked = key_ref(at).zip(kept));
}

fn key_ref(at: Option<(i32, &[u8])>) -> Option<KeyRef> {
    at.map(|(db, key)| KeyRef {
        db,
        key: key.into(),
    })
}

/// What to keep of a semaphore that eviction takes: `None` without leases.
fn evicted_of(sem: &SemValue) -> Option<Evicted> {
    let leases: Vec<_> = sem.leases().map(|(t, l)| (t.into(), l.clone())).collect();
    (!leases.is_empty()).then_some(Evicted::Sem {
        limit: sem.limit(),
        leases,
    })
}

/// Puts back the held lock that eviction took from `at`, unless its time has
/// passed; true when it did. `key` is `at`, open and empty.
pub fn restore_evicted(key: &LockKey, at: &KeyRef, now: u64) -> Result<bool, RedisError> {
    let Some(Evicted::Lock(holder)) = take_evicted(at) else {
        return Ok(false);
    };
    if holder.is_expired(now) {
        return Ok(false);
    }
    let lock = key.create(LockValue::new())?;
    node::with(|node| lock.apply(holder, node.fences()));
    Ok(true)
}

/// As [`restore_evicted`], for a semaphore: its leases that have not run
/// out. They are added after the value is stored, so the counters see them
/// when the command's change is executed, as new leases.
pub fn restore_evicted_semaphore(key: &SemKey, at: &KeyRef, now: u64) -> Result<bool, RedisError> {
    let Some(restored) = take_evicted(at).and_then(|e| semaphore_of(e, now)) else {
        return Ok(false);
    };
    let sem = key.create(SemValue::new(restored.limit()))?;
    node::with(|node| {
        for (token, lease) in restored.leases() {
            sem.apply(token, lease.clone(), node.fences());
        }
    });
    Ok(true)
}

fn take_evicted(at: &KeyRef) -> Option<Evicted> {
    node::with(|node| node.evicted.remove(at))
}

/// The semaphore that eviction took, with its leases still running at
/// `now`; `None` when none is.
fn semaphore_of(evicted: Evicted, now: u64) -> Option<SemValue> {
    let Evicted::Sem { limit, leases } = evicted else {
        return None;
    };
    let mut sem = SemValue::new(limit);
    node::with(|node| {
        for (token, lease) in leases.into_iter().filter(|(_, l)| l.expires_at > now) {
            sem.apply(&token, lease, node.fences());
        }
    });
    (sem.holders() > 0).then_some(sem)
}

/// The holder that eviction took from `at`, for reads (which cannot put the
/// lock back).
pub fn evicted_holder(at: &KeyRef) -> Option<Holder> {
    match node::with(|node| node.evicted.get(at).cloned())? {
        Evicted::Lock(holder) => Some(holder),
        Evicted::Sem { .. } => None,
    }
}

/// The semaphore that eviction took from `at`, for reads.
pub fn evicted_semaphore(at: &KeyRef) -> Option<SemValue> {
    let evicted = node::with(|node| node.evicted.get(at).cloned())?;
    semaphore_of(evicted, ffi::now_ms())
}

/// Forgets what eviction took from `at` once nothing of it runs at `now`
/// (the expiry of grant `fence` was due).
pub fn forget_evicted(at: &KeyRef, fence: u64, now: u64) {
    node::with(|node| {
        let done = match node.evicted.get(at) {
            Some(Evicted::Lock(holder)) => holder.fence == fence,
            Some(Evicted::Sem { leases, .. }) => leases.iter().all(|(_, l)| l.expires_at <= now),
            None => false,
        };
        if done {
            node.evicted.remove(at);
        }
    });
}

/// Forgets everything eviction took (this node became a replica).
pub fn forget_all_evicted() {
    node::with(|node| node.evicted.clear());
}

extern "C" fn on_keyspace_event(
    ctx: ffi::Ctx,
    _class: c_int,
    event: *const c_char,
    key: *mut raw::RedisModuleString,
) -> c_int {
    let Some(event) = ffi::c_str(event) else {
        return 0;
    };
    if key.is_null() || !ffi::is_primary(ctx) {
        return 0;
    }
    let name = redis_module::RedisString::string_as_slice(key);
    let at = KeyRef {
        db: ffi::selected_db(ctx),
        key: name.into(),
    };
    match event {
        b"rename_to" | b"move_to" | b"restore" => schedule_moved(ctx, at),
        b"evicted" => node::with(|node| {
            if let Some((unlinked, holder)) = node.unlinked.take() {
                if unlinked == at {
                    node.evicted.insert(at, holder);
                }
            }
        }),
        _ => {}
    }
    0
}

/// Keeps the holder of a held lock that eviction is taking (the key-removal
/// event, fired just before the type's unlink callback).
extern "C" fn on_key_removed(
    ctx: ffi::Ctx,
    _event: raw::RedisModuleEvent,
    subevent: u64,
    data: *mut c_void,
) {
    if subevent != raw::REDISMODULE_SUBEVENT_KEY_EVICTED || !ffi::is_primary(ctx) {
        return;
    }
    let Some(info) = ffi::event_data::<raw::RedisModuleKeyInfo>(data) else {
        return;
    };
    let ty = ffi::key_module_type(info.key);
    if ty != *LOCK_TYPE.raw_type.borrow() && ty != *SEM_TYPE.raw_type.borrow() {
        return;
    }
    let value = ffi::key_module_value(info.key);
    let kept = if ffi::key_module_type(info.key) == *LOCK_TYPE.raw_type.borrow() {
        ffi::value_ref::<LockValue>(value)
            .and_then(|lock| lock.holder().cloned())
            .map(Evicted::Lock)
    } else {
        ffi::value_ref::<SemValue>(value).and_then(evicted_of)
    };
    if let Some((at, kept)) = key_ref(ffi::module_key_name(info.key)).zip(kept) {
        node::with(|node| node.evicted.insert(at, kept));
    }
}

/// Schedules the holder of a lock that arrived under `at` without a LOCK
/// command (the backstop sweep would find it too, but later).
fn schedule_moved(ctx: ffi::Ctx, at: KeyRef) {
    let context = Context::new(ctx);
    let name = RedisString::create_from_slice(ctx, &at.key);
    let marks: Vec<(u64, u64)> =
        match keyspace::read(&context, &name, |lock: Option<&LockValue>| {
            lock.and_then(|lock| lock.holder())
                .map(|h| (h.expires_at, h.fence))
        }) {
            Ok(lock) => lock.into_iter().collect(),
            // Not a lock: a semaphore, with a deadline per lease.
            Err(_) => keyspace::read(&context, &name, |sem: Option<&SemValue>| {
                sem.map(|sem| sem.leases().map(|(_, l)| (l.expires_at, l.fence)).collect())
                    .unwrap_or_default()
            })
            .unwrap_or_default(),
        };
    if marks.is_empty() {
        return;
    }
    node::with(|node| {
        for (expires_at, fence) in marks {
            node.schedule.insert(expires_at, fence, at.clone());
        }
    });
    expiry::ensure_armed(ctx);
}

extern "C" fn on_flush(
    ctx: ffi::Ctx,
    _event: raw::RedisModuleEvent,
    subevent: u64,
    data: *mut c_void,
) {
    if subevent != raw::REDISMODULE_SUBEVENT_FLUSHDB_START {
        return;
    }
    let Some(info) = ffi::event_data::<raw::RedisModuleFlushInfo>(data) else {
        return;
    };
    let flushed = |db: i32| info.dbnum == -1 || info.dbnum == db;
    waiting::dismiss_where(ctx, |db| flushed(db).then_some(db));
    node::with(|node| node.evicted.retain(|at, _| !flushed(at.db)));
}

extern "C" fn on_swapdb(
    ctx: ffi::Ctx,
    _event: raw::RedisModuleEvent,
    _subevent: u64,
    data: *mut c_void,
) {
    let Some(info) = ffi::event_data::<raw::RedisModuleSwapDbInfo>(data) else {
        return;
    };
    let (a, b) = (info.dbnum_first, info.dbnum_second);
    let swapped = |db: i32| match db {
        _ if db == a => Some(b),
        _ if db == b => Some(a),
        _ => None,
    };
    waiting::dismiss_where(ctx, swapped);
    node::with(|node| {
        node.schedule.for_each_key_mut(|at| {
            if let Some(db) = swapped(at.db) {
                at.db = db;
            }
        });
        node.evicted = std::mem::take(&mut node.evicted)
            .into_iter()
            .map(|(mut at, holder)| {
                at.db = swapped(at.db).unwrap_or(at.db);
                (at, holder)
            })
            .collect();
    });
}
