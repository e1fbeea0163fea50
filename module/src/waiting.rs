//! Server-side FIFO waiting: a client that asks to WAIT on a held lock is
//! blocked by the server (`RM_BlockClient`) until the lock passes to it, its
//! deadline passes, it disconnects, its token's RELEASE withdraws it,
//! or its lock's key is taken away (DEL, RENAME, MOVE, SWAPDB, FLUSH*,
//! eviction: see `external`).
//!
//! The node's registry of waiters (id → handle, deadline, lock) is the one
//! truth about who waits; a lock's queue holds only ids, in order.
//!
//! Timeouts: one module timer, armed at the earliest deadline of all
//! waiters, answers due waiters in slices of at most [`TIMEOUT_SLICE`] and
//! then yields to the event loop. Answering a blocked client costs Redis
//! about 20 µs (its reply's write, on loopback most of it in the kernel):
//! 10,000 waits that end at once, answered in one go, stalled Redis for
//! over 200 ms, as many `BLPOP` timeouts do. In slices no turn of the event
//! loop answers more than [`TIMEOUT_SLICE`] timeouts, and the last of a large
//! wave is answered late by about the time they all take. A waiter whose
//! deadline passed is never granted meanwhile (`node::Node::change`). Every
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

/// Most timeouts answered in one turn of the event loop: about 1.5 ms of
/// Redis' work at ~20 µs each.
pub const TIMEOUT_SLICE: usize = 64;
/// The module's own time per slice, at most, in µs (a backstop: its own
/// share is about 1 µs a timeout).
const SLICE_BUDGET_US: u64 = 1000;

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
    let deadline = ffi::monotonic_us().saturating_add(wait_ms.saturating_mul(1000));
    if enqueue(id) {
        stats::WAITERS.incr();
        node::with(|node| {
            let waiting = Waiting {
                bc,
                deadline,
                lock,
                kind,
            };
            node.waiting.insert(id, waiting);
            node.waiter_of.insert(bc, id);
            node.wait_deadlines.insert((deadline, id));
        });
        arm_timeouts(raw_ctx);
    } else {
        // Cannot happen after a Busy acquire; answer null rather than hang.
        unblock(bc, Outcome::TimedOut);
    }
}

/// Arms the timeout timer for the earliest deadline, unless it is armed
/// for that or earlier.
fn arm_timeouts(ctx: ffi::Ctx) {
    let (next, armed) = node::with(|node| {
        let next = node.wait_deadlines.first().map(|&(deadline, _)| deadline);
        (next, node.wait_timer)
    });
    let Some(deadline) = next else {
        return;
    };
    if armed.is_some_and(|(at, _)| at <= deadline) {
        return;
    }
    if let Some((_, timer)) = armed {
        ffi::stop_timer(ctx, timer);
    }
    // Rounded up: a timer that fires before the deadline finds nothing due.
    let delay_ms = deadline.saturating_sub(ffi::monotonic_us()).div_ceil(1000);
    arm_timer(ctx, deadline, delay_ms);
}

fn arm_timer(ctx: ffi::Ctx, at: u64, delay_ms: u64) {
    let timer = ffi::create_timer(ctx, delay_ms, Some(on_timeouts));
    node::with(|node| node.wait_timer = (timer != 0).then_some((at, timer)));
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
/// where Redis may hand us no context (a type's unlink callback).
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

/// Takes waiter `id` out of the registry and unblocks it with `outcome`.
/// False when it was not waiting.
fn answer(_ctx: ffi::Ctx, id: u64, outcome: Outcome) -> bool {
    let Some(waiting) = take(id) else {
        return false;
    };
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
        node.wait_deadlines.remove(&(waiting.deadline, id));
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

/// The timeout timer: answers due waiters (null), at most a slice of them,
/// and comes back about 1 ms later while more are due.
extern "C" fn on_timeouts(ctx: ffi::Ctx, _data: *mut c_void) {
    // This timer is done (Redis frees it after we return).
    node::with(|node| node.wait_timer = None);
    let started = ffi::monotonic_us();
    let mut answered = 0;
    while answered < TIMEOUT_SLICE
        && (answered == 0 || ffi::monotonic_us().saturating_sub(started) < SLICE_BUDGET_US)
    {
        let now = ffi::monotonic_us();
        let due = node::with(|node| {
            let &(deadline, id) = node.wait_deadlines.first()?;
            (deadline <= now).then_some(id)
        });
        let Some(id) = due else {
            break;
        };
        let Some(waiting) = take(id) else {
            // Never: the set holds only registered waiters. Drop the entry.
            node::with(|node| node.wait_deadlines.pop_first());
            continue;
        };
        stats::WAIT_TIMEOUTS.incr();
        leave_queue(ctx, id, &waiting);
        unblock(waiting.bc, Outcome::TimedOut);
        answered += 1;
    }
    let now = ffi::monotonic_us();
    let more = node::with(|node| {
        node.wait_deadlines
            .first()
            .is_some_and(|&(deadline, _)| deadline <= now)
    });
    if more {
        // After Redis has sent this slice's replies and served its clients:
        // Redis runs a timer made in a timer callback 1 ms later at the
        // earliest, so a wave drains at about a slice per ms (10,000 in
        // ~0.3 s with the replies' writes).
        arm_timer(ctx, now, 0);
    } else {
        arm_timeouts(ctx);
    }
}

extern "C" fn on_disconnect(ctx: ffi::Ctx, bc: *mut raw::RedisModuleBlockedClient) {
    let bc = ffi::BlockedClient::from_raw(bc);
    if let Some((id, waiting)) = take_client(bc) {
        leave_queue(ctx, id, &waiting);
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
