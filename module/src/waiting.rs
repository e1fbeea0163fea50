//! Server-side FIFO waiting: a client that asks to WAIT on a held lock is
//! blocked by the server (`RM_BlockClient`) until the lock passes to it, its
//! timeout timer fires, it disconnects, its token's RELEASE withdraws it,
//! or its lock's key is taken away (DEL, RENAME, MOVE, SWAPDB, FLUSH*,
//! eviction: see `external`).
//!
//! The node's registry of waiters (id → handle, timer, lock) is the one
//! truth about who waits; a lock's queue holds only ids, in order. Every
//! blocked client is unblocked exactly once: whoever takes a waiter out of
//! the registry (grant, timeout, disconnect, withdrawal, key removal) is the one that
//! calls `RM_UnblockClient`, and a path that finds it gone does nothing.
//! Waiters are named by id, never by handle address: Redis reuses those.

use crate::keyspace::{Key, Stored};
use crate::lock_type::LockValue;
use crate::node::{KeyRef, Kind, Waiting};
use crate::sem_type::SemValue;
use crate::{effects, ffi, node, stats};
use baton_core::Grant;
use redis_module::{raw, Context, RedisString};
use std::ffi::c_void;
use std::os::raw::c_int;

/// How a wait ended; the reply callback turns it into the reply.
enum Outcome {
    Granted(u64),
    TimedOut,
    KeyRemoved,
}

/// True when the calling context cannot block (MULTI, Lua, the replication
/// stream, AOF loading, a module's RM_Call): there WAIT acts as WAIT 0.
pub fn cannot_block(ctx: ffi::Ctx) -> bool {
    ffi::Flags::of(ctx).cannot_block()
}

/// Blocks the calling client in the queue of the lock or semaphore at
/// `lock` for `wait_ms`: `enqueue` puts the waiter of the id it is given in
/// the queue (the lock is busy and `token` is not queued, so it succeeds).
pub fn block(
    ctx: &Context,
    lock: KeyRef,
    kind: Kind,
    wait_ms: u64,
    enqueue: impl FnOnce(u64) -> bool,
) {
    let raw_ctx = ctx.get_raw();
    let Some(bc) = ffi::block_client(
        raw_ctx,
        Some(on_reply),
        Some(on_timeout),
        Some(free_outcome),
    ) else {
        ffi::reply_null(raw_ctx);
        return;
    };
    ffi::set_disconnect_callback(bc, Some(on_disconnect));
    let id = node::with(|node| {
        node.next_waiter_id += 1;
        node.next_waiter_id
    });
    // The timer carries the waiter's id.
    let timer = ffi::create_timer_with(raw_ctx, wait_ms, Some(on_wait_timer), id);
    if enqueue(id) {
        stats::WAITERS.incr();
        node::with(|node| {
            let waiting = Waiting {
                bc,
                timer,
                lock,
                kind,
            };
            node.waiting.insert(id, waiting);
            node.waiter_of.insert(bc, id);
        });
    } else {
        // Cannot happen after a Busy acquire; answer null rather than hang.
        drop_timer(raw_ctx, timer);
        unblock(bc, Outcome::TimedOut);
    }
}

/// Wakes the waiter a grant (of a lock or a semaphore) was made for. False
/// when that waiter is gone.
pub fn wake<W>(ctx: ffi::Ctx, grant: &Grant<W>) -> bool {
    answer(ctx, grant.id, Outcome::Granted(grant.fence))
}

/// Answers waiter `id`, which its token's RELEASE took out of the queue
/// already, as not granted (null).
pub fn withdrawn(ctx: ffi::Ctx, id: u64) {
    answer(ctx, id, Outcome::TimedOut);
}

/// Answers the waiters of ids taken out of a lock or semaphore whose key is
/// going away: they get `wire::KEY_REMOVED` at once and hold nothing. Runs
/// where Redis may hand us no context (a type's unlink callback), so timers
/// are stopped through the module's own.
pub fn dismiss(ids: impl IntoIterator<Item = u64>) {
    for id in ids {
        answer(ffi::module_ctx(), id, Outcome::KeyRemoved);
    }
}

/// Answers every waiter whose lock was in a database for which `moved_to`
/// says where that lock is now (the same database for a flush, the other one
/// for a swap), taking it out of that lock's queue first.
pub fn dismiss_where(ctx: ffi::Ctx, moved_to: impl Fn(i32) -> Option<i32>) {
    let affected: Vec<(u64, KeyRef, Kind)> = node::with(|node| {
        node.waiting
            .iter()
            .filter_map(|(id, w)| {
                let db = moved_to(w.lock.db)?;
                let key = w.lock.key.clone();
                Some((*id, KeyRef { db, key }, w.kind))
            })
            .collect()
    });
    let selected = ffi::selected_db(ctx);
    for (id, lock, kind) in affected {
        // Answered already with an earlier waiter of the same lock, or not.
        let drained: Vec<u64> = match kind {
            Kind::Lock => with_value(ctx, &lock, |l: &mut LockValue| {
                l.drain_waiters().into_iter().map(|w| w.id).collect()
            }),
            Kind::Sem => with_value(ctx, &lock, |s: &mut SemValue| {
                s.drain_waiters().into_iter().map(|w| w.id).collect()
            }),
        }
        .unwrap_or_default();
        dismiss(drained);
        answer(ctx, id, Outcome::KeyRemoved);
    }
    ffi::select_db(ctx, selected);
}

/// Takes waiter `id` out of the registry, stops its timer and unblocks it
/// with `outcome`. False when it was not waiting.
fn answer(ctx: ffi::Ctx, id: u64, outcome: Outcome) -> bool {
    let Some(waiting) = take(id) else {
        return false;
    };
    drop_timer(ctx, waiting.timer);
    unblock(waiting.bc, outcome);
    true
}

fn unblock(bc: ffi::BlockedClient, outcome: Outcome) {
    ffi::unblock_with(bc, Some(outcome));
}

/// Takes waiter `id` out of the registry; the caller owns its unblocking.
fn take(id: u64) -> Option<Waiting> {
    let waiting = node::with(|node| {
        let waiting = node.waiting.remove(&id)?;
        node.waiter_of.remove(&waiting.bc);
        Some(waiting)
    })?;
    stats::WAITERS.decr();
    Some(waiting)
}

/// Takes the waiter blocked on handle `bc` out of the registry.
fn take_client(bc: ffi::BlockedClient) -> Option<(u64, Waiting)> {
    let id = node::with(|node| node.waiter_of.get(&bc).copied())?;
    take(id).map(|waiting| (id, waiting))
}

/// Stops a waiter's timeout timer (and frees the id it carries).
fn drop_timer(ctx: ffi::Ctx, timer: u64) {
    let _ = ffi::stop_timer_with::<u64>(ctx, timer);
}

/// Runs `f` on the value of type `V` stored at `at`, if there is one;
/// leaves `at.db` selected.
fn with_value<V: Stored, R>(ctx: ffi::Ctx, at: &KeyRef, f: impl FnOnce(&mut V) -> R) -> Option<R> {
    if !ffi::select_db(ctx, at.db) {
        return None;
    }
    let context = Context::new(ctx);
    let name = RedisString::create_from_slice(ctx, &at.key);
    let key = Key::<V>::open(&context, &name).ok()?;
    key.value().map(f)
}

/// Takes waiter `id` out of its queue, if the lock or semaphore is still
/// there. A semaphore's queue may then let requests behind it through: they
/// are granted now, or once writes resume (nothing is granted while they
/// are paused).
fn leave_queue(ctx: ffi::Ctx, id: u64, waiting: &Waiting) {
    match waiting.kind {
        Kind::Lock => {
            let _ = with_value(ctx, &waiting.lock, |lock: &mut LockValue| {
                lock.remove_waiter(id)
            });
        }
        Kind::Sem => {
            let removed = with_value(ctx, &waiting.lock, |sem: &mut SemValue| {
                sem.remove_waiter(id).is_some()
            });
            if removed == Some(true) {
                effects::settle_semaphore(ctx, &waiting.lock);
            }
        }
    }
}

extern "C" fn on_wait_timer(ctx: ffi::Ctx, data: *mut c_void) {
    let Some(id) = ffi::timer_data::<u64>(data) else {
        return;
    };
    // Not `answer`: Redis frees this timer after we return, so stopping it
    // here would free it twice.
    let Some(waiting) = take(id) else {
        return;
    };
    stats::WAIT_TIMEOUTS.incr();
    leave_queue(ctx, id, &waiting);
    unblock(waiting.bc, Outcome::TimedOut);
}

extern "C" fn on_disconnect(ctx: ffi::Ctx, bc: *mut raw::RedisModuleBlockedClient) {
    let bc = ffi::BlockedClient::from_raw(bc);
    if let Some((id, waiting)) = take_client(bc) {
        leave_queue(ctx, id, &waiting);
        drop_timer(ctx, waiting.timer);
        ffi::unblock_with::<Outcome>(bc, None);
    }
}

/// Redis' own timeout (we set none, but CLIENT UNBLOCK can still end a wait).
extern "C" fn on_timeout(
    ctx: ffi::Ctx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    let taken = ffi::blocked_client_handle(ctx).and_then(|bc| Some((bc, take_client(bc)?)));
    if let Some((bc, (id, waiting))) = taken {
        stats::WAIT_TIMEOUTS.incr();
        leave_queue(ctx, id, &waiting);
        drop_timer(ctx, waiting.timer);
        ffi::unblock_with::<Outcome>(bc, None);
    }
    ffi::reply_null(ctx);
    raw::REDISMODULE_OK as c_int
}

extern "C" fn on_reply(
    ctx: ffi::Ctx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    match ffi::blocked_data::<Outcome>(ctx) {
        Some(Outcome::Granted(fence)) => ffi::reply_integer(ctx, *fence),
        Some(Outcome::KeyRemoved) => ffi::reply_error(ctx, baton_core::wire::KEY_REMOVED),
        Some(Outcome::TimedOut) | None => ffi::reply_null(ctx),
    }
    raw::REDISMODULE_OK as c_int
}

extern "C" fn free_outcome(_ctx: ffi::Ctx, privdata: *mut c_void) {
    ffi::free_blocked_data::<Outcome>(privdata);
}
