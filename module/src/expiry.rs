//! Active expiry: one module timer armed at the earliest deadline of the
//! node's expiry schedule. When it fires it expires due locks (handing each to
//! its next waiter) in batches of about a millisecond of work, yielding to the
//! event loop between batches, so a million locks expiring at once never stall
//! Redis for long.
//!
//! Each batch's duration goes to Redis' latency monitor as
//! `baton-expire-cycle` (`LATENCY HISTORY baton-expire-cycle`).
//!
//! Only a primary expires locks; a replica waits for the primary's `DEL` or
//! `LOCK.APPLY`, and rebuilds its schedule when promoted (see `sweep`).

use crate::effects::{self, Scope};
use crate::keyspace::{LockKey, SemKey};
use crate::node::KeyRef;
use crate::{external, ffi, node};
use redis_module::{Context, RedisString};
use std::ffi::c_void;

/// Work per batch, in µs, before yielding to the event loop.
const BATCH_BUDGET_US: u64 = 1000;
/// How many expiries between two looks at the clock.
const CLOCK_EVERY: u32 = 8;
/// While writes are paused, how often the timer looks whether the pause is
/// over (expiry resumes within this much of its end).
const PAUSE_POLL_MS: u64 = 5;

/// Arms the timer for the earliest deadline, unless one is armed for it or
/// earlier, or a batch is running (it re-arms when it ends).
pub fn ensure_armed(ctx: ffi::Ctx) {
    let (next, armed, expiring) =
        node::with(|node| (node.schedule.next_deadline(), node.armed, node.expiring));
    let Some(deadline) = next.filter(|_| !expiring) else {
        return;
    };
    if armed.is_some_and(|(at, _)| at <= deadline) {
        return;
    }
    if let Some((_, timer)) = armed {
        ffi::stop_timer(ctx, timer);
    }
    arm(ctx, deadline, deadline.saturating_sub(ffi::now_ms()));
}

/// Forgets the schedule (a replica keeps none).
pub fn disarm(ctx: ffi::Ctx) {
    if let Some((_, timer)) = node::with(|node| node.armed.take()) {
        ffi::stop_timer(ctx, timer);
    }
    node::with(|node| node.schedule.clear());
}

fn arm(ctx: ffi::Ctx, deadline: u64, delay_ms: u64) {
    let timer = ffi::create_timer(ctx, delay_ms, Some(on_timer));
    node::with(|node| node.armed = Some((deadline, timer)));
}

extern "C" fn on_timer(ctx: ffi::Ctx, _data: *mut c_void) {
    // This timer is done (Redis frees it after we return).
    node::with(|node| node.armed = None);
    if ffi::writes_paused() {
        // CLIENT PAUSE, FAILOVER: expire nothing, hand nothing off and
        // propagate nothing until writes resume (Redis asserts that nothing
        // is propagated meanwhile), as Redis does with its own expiry.
        arm(ctx, 0, PAUSE_POLL_MS);
        return;
    }
    // No other timer may be armed until the batch ends: one timer per batch,
    // never a cascade.
    node::with(|node| node.expiring = true);
    let started = ffi::monotonic_us();
    if ffi::is_primary(ctx) {
        settle_unsettled(ctx);
    }
    let more = ffi::is_primary(ctx) && run_batch(ctx, started);
    node::with(|node| node.expiring = false);
    let took_ms = ffi::monotonic_us().saturating_sub(started) / 1000;
    ffi::latency_sample(c"baton-expire-cycle", took_ms);
    if more {
        // Come back on the next turn of the event loop, after clients.
        arm(ctx, 0, 0);
    } else {
        ensure_armed(ctx);
    }
}

/// Expires due locks for about `BATCH_BUDGET_US`; true when it stopped with
/// more possibly due.
fn run_batch(ctx: ffi::Ctx, started: u64) -> bool {
    let now = ffi::now_ms();
    let mut done = 0u32;
    loop {
        if done % CLOCK_EVERY == CLOCK_EVERY - 1
            && ffi::monotonic_us().saturating_sub(started) > BATCH_BUDGET_US
        {
            return true;
        }
        let Some((_, fence, lock)) = node::with(|node| node.schedule.pop_due(now)) else {
            return false;
        };
        expire(ctx, &lock, fence, now);
        done += 1;
    }
}

/// Expires one scheduled grant (a lock's holder or a semaphore's lease), if
/// it is still there and due.
fn expire(ctx: ffi::Ctx, at: &KeyRef, fence: u64, now: u64) {
    if !ffi::select_db(ctx, at.db) {
        return;
    }
    let context = Context::new(ctx);
    let name = RedisString::create_from_slice(ctx, &at.key);
    let scope = Scope::local(ctx, &at.key);
    match LockKey::open(&context, &name) {
        Ok(key) => expire_lock(&scope, &key, at, fence, now),
        // Not a lock: a semaphore, or another type that took the name.
        Err(_) => {
            if let Ok(key) = SemKey::open(&context, &name) {
                expire_leases(&scope, &key, at, fence, now);
            }
        }
    }
}

fn expire_lock(scope: &Scope<'_>, key: &LockKey, at: &KeyRef, fence: u64, now: u64) {
    let Some(lock) = key.lock() else {
        // The key is gone; eviction may have kept its holder until now.
        external::forget_evicted(at, fence, now);
        return;
    };
    // The grant this entry was for is gone (released, renewed): stale.
    let Some(expires_at) = lock
        .holder()
        .filter(|h| h.fence == fence)
        .map(|h| h.expires_at)
    else {
        return;
    };
    let ((), transition) = effects::change(lock, now, |_| ());
    if transition.changed {
        effects::execute(scope, key, transition);
    } else {
        // Renewed past this deadline without a schedule update: re-queue.
        node::with(|node| node.schedule.insert(expires_at, fence, at.clone()));
    }
}

fn expire_leases(scope: &Scope<'_>, key: &SemKey, at: &KeyRef, fence: u64, now: u64) {
    let Some(sem) = key.value() else {
        external::forget_evicted(at, fence, now);
        return;
    };
    // Every due lease expires in the change; a lease renewed past this
    // deadline was rescheduled by its renewal.
    let ((), transition) = effects::change_sem(sem, now, |_| ());
    effects::execute_sem(scope, key, transition);
}

/// Settles the semaphores whose queue a request left while writes were
/// paused (see `effects::settle_semaphore`).
fn settle_unsettled(ctx: ffi::Ctx) {
    for at in node::with(|node| std::mem::take(&mut node.unsettled)) {
        effects::settle_semaphore(ctx, &at);
    }
}

/// Runs the timer on the next turn of the event loop (something waits for
/// it: a semaphore to settle).
pub fn wake_soon(ctx: ffi::Ctx) {
    let (armed, expiring) = node::with(|node| (node.armed, node.expiring));
    if expiring || armed.is_some_and(|(at, _)| at == 0) {
        return;
    }
    if let Some((_, timer)) = armed {
        ffi::stop_timer(ctx, timer);
    }
    arm(ctx, 0, 0);
}
