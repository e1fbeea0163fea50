//! Server-side FIFO waiting: a client that asks to WAIT on a held lock is
//! blocked by the server (`RM_BlockClient`) until the lock passes to it, its
//! timeout timer fires, or it disconnects.
//!
//! Every blocked client is unblocked exactly once. The `node` registry of
//! waiting clients is the proof of that: whoever removes a client from it
//! (grant, timeout, disconnect) is the one that calls `RM_UnblockClient`, and
//! a path that finds it gone does nothing.

use crate::keyspace::LockKey;
use crate::lock_type::Blocked;
use crate::node::{KeyRef, Waiting};
use crate::{ffi, node, stats};
use baton_core::{Grant, Waiter};
use redis_module::{raw, Context, RedisString};
use std::ffi::c_void;
use std::os::raw::c_int;

/// How a wait ended; the reply callback turns it into the reply.
enum Outcome {
    Granted(u64),
    TimedOut,
}

/// The data of a waiter's timeout timer.
struct WaitTimer {
    bc: usize,
    id: u64,
}

/// True when the calling context cannot block (MULTI, Lua, the replication
/// stream, AOF loading, a module's RM_Call): there WAIT acts as WAIT 0.
pub fn cannot_block(ctx: ffi::Ctx) -> bool {
    let denied = raw::REDISMODULE_CTX_FLAGS_MULTI
        | raw::REDISMODULE_CTX_FLAGS_LUA
        | raw::REDISMODULE_CTX_FLAGS_REPLICATED
        | raw::REDISMODULE_CTX_FLAGS_LOADING
        | raw::REDISMODULE_CTX_FLAGS_DENY_BLOCKING;
    ffi::context_flags(ctx) & denied != 0
}

/// Blocks the calling client in the queue of `key`'s lock for `wait_ms`.
/// The lock is held by someone else and `token` is not queued.
pub fn block(ctx: &Context, lock: KeyRef, key: &LockKey, token: &[u8], ttl: u64, wait_ms: u64) {
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
    let timer_data = Box::into_raw(Box::new(WaitTimer {
        bc: bc as usize,
        id,
    }));
    let timer = ffi::create_timer(raw_ctx, wait_ms, Some(on_wait_timer), timer_data.cast());
    let waiter = Waiter {
        id,
        token: token.into(),
        ttl,
        payload: Blocked {
            bc: bc as usize,
            timer,
        },
    };
    let queued = key.lock().map(|l| l.enqueue(waiter));
    if let Some(Ok(())) = queued {
        stats::WAITERS.incr();
        node::with(|node| node.waiting.insert(bc as usize, Waiting { id, lock }));
    } else {
        // Cannot happen after a Busy acquire; answer null rather than hang.
        drop_timer(raw_ctx, timer);
        unblock(bc as usize, Outcome::TimedOut);
    }
}

/// Wakes a waiter that became the holder.
pub fn wake(ctx: ffi::Ctx, grant: Grant<Blocked>) {
    drop_timer(ctx, grant.payload.timer);
    if forget(grant.payload.bc).is_some() {
        unblock(grant.payload.bc, Outcome::Granted(grant.fence));
    }
}

fn unblock(bc: usize, outcome: Outcome) {
    let privdata = Box::into_raw(Box::new(outcome));
    ffi::unblock_client(bc as ffi::BlockedClient, privdata.cast());
}

/// Removes a waiter from the registry; the caller owns its unblocking.
fn forget(bc: usize) -> Option<Waiting> {
    let waiting = node::with(|node| node.waiting.remove(&bc))?;
    stats::WAITERS.decr();
    Some(waiting)
}

/// Stops a waiter's timeout timer and frees its data.
fn drop_timer(ctx: ffi::Ctx, timer: u64) {
    if let Some(data) = ffi::stop_timer(ctx, timer) {
        if !data.is_null() {
            // SAFETY: every waiter timer carries a Box<WaitTimer>.
            drop(unsafe { Box::from_raw(data.cast::<WaitTimer>()) });
        }
    }
}

/// Takes a waiter out of its lock's queue, if the lock is still there, and
/// returns its timeout timer.
fn leave_queue(ctx: ffi::Ctx, waiting: &Waiting) -> Option<u64> {
    if !ffi::select_db(ctx, waiting.lock.db) {
        return None;
    }
    let context = Context::new(ctx);
    let name = RedisString::create_from_slice(ctx, &waiting.lock.key);
    let key = LockKey::open(&context, &name).ok()?;
    let waiter = key.lock()?.remove_waiter(waiting.id)?;
    Some(waiter.payload.timer)
}

/// Ends a wait that did not end by its own timer: leaves the queue and stops
/// the timer.
fn abandon(ctx: ffi::Ctx, waiting: &Waiting) {
    if let Some(timer) = leave_queue(ctx, waiting) {
        drop_timer(ctx, timer);
    }
}

unsafe extern "C" fn on_wait_timer(ctx: ffi::Ctx, data: *mut c_void) {
    if data.is_null() {
        return;
    }
    // SAFETY: made by Box::into_raw in `block`; a fired timer is never stopped.
    let timer = unsafe { Box::from_raw(data.cast::<WaitTimer>()) };
    let Some(waiting) = node::with(|node| {
        let same = node
            .waiting
            .get(&timer.bc)
            .is_some_and(|w| w.id == timer.id);
        same.then(|| node.waiting.remove(&timer.bc)).flatten()
    }) else {
        return;
    };
    stats::WAITERS.decr();
    stats::WAIT_TIMEOUTS.incr();
    // Not `abandon`: Redis frees this timer after we return, so stopping it
    // here would free it twice.
    let _ = leave_queue(ctx, &waiting);
    unblock(timer.bc, Outcome::TimedOut);
}

unsafe extern "C" fn on_disconnect(ctx: ffi::Ctx, bc: ffi::BlockedClient) {
    if let Some(waiting) = forget(bc as usize) {
        abandon(ctx, &waiting);
        ffi::unblock_client(bc, std::ptr::null_mut());
    }
}

/// Redis' own timeout (we set none, but CLIENT UNBLOCK can still end a wait).
unsafe extern "C" fn on_timeout(
    ctx: ffi::Ctx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    let bc = ffi::blocked_client_handle(ctx);
    if let Some(waiting) = forget(bc as usize) {
        stats::WAIT_TIMEOUTS.incr();
        abandon(ctx, &waiting);
        ffi::unblock_client(bc, std::ptr::null_mut());
    }
    ffi::reply_null(ctx);
    raw::REDISMODULE_OK as c_int
}

unsafe extern "C" fn on_reply(
    ctx: ffi::Ctx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    let outcome = ffi::blocked_private_data(ctx).cast::<Outcome>();
    // SAFETY: the private data is the Box<Outcome> given to `unblock`, freed
    // only by `free_outcome` after this callback.
    match unsafe { outcome.as_ref() } {
        Some(Outcome::Granted(fence)) => ffi::reply_integer(ctx, *fence),
        Some(Outcome::TimedOut) | None => ffi::reply_null(ctx),
    }
    raw::REDISMODULE_OK as c_int
}

unsafe extern "C" fn free_outcome(_ctx: ffi::Ctx, privdata: *mut c_void) {
    if !privdata.is_null() {
        // SAFETY: made by Box::into_raw in `unblock`, freed once by Redis.
        drop(unsafe { Box::from_raw(privdata.cast::<Outcome>()) });
    }
}
