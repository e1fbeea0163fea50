//! What follows a change to a lock, in one place: the expiry schedule, the
//! replication stream, key deletion, the counters, and waking granted waiters.
//!
//! Commands and timers mark the holder before they change a lock, then call
//! [`settle`]. Comparing the holder before and after (fence and expiry name a
//! grant) tells what to propagate: `LOCK.APPLY` for a new or renewed holder,
//! `DEL` when the lock became free. The replica sees the resulting state, never
//! a relative ttl.

use crate::keyspace::LockKey;
use crate::lock_type::{LockGrant, LockValue};
use crate::node::KeyRef;
use crate::{expiry, external, ffi, node, stats, waiting};
use baton_core::Release;
use redis_module::{raw, Context, RedisError, RedisString};

/// A holder as (fence, expiry): enough to tell whether it changed.
pub type Mark = Option<(u64, u64)>;

/// The mark of a lock (or of a missing one).
pub fn mark(lock: Option<&LockValue>) -> Mark {
    lock.and_then(|lock| lock.holder())
        .map(|h| (h.fence, h.expires_at))
}

/// Where a change happens and what it may do.
pub struct Scope<'a> {
    pub ctx: ffi::Ctx,
    pub db: i32,
    pub key: &'a [u8],
    /// Propagate effects (a primary executing a client's command or a timer;
    /// not a replica applying its primary's stream, not an AOF load).
    pub replicate: bool,
    /// Keep the expiry schedule (a primary that is not loading).
    pub schedule: bool,
    /// This node is a primary, or it applies its primary's stream or an AOF
    /// (where a replica's writes come from).
    pub primary: bool,
}

impl<'a> Scope<'a> {
    /// The scope of a command run by a client or a timer on this node.
    pub fn local(ctx: ffi::Ctx, key: &'a [u8]) -> Self {
        let flags = ffi::context_flags(ctx);
        let applying = flags
            & (raw::REDISMODULE_CTX_FLAGS_REPLICATED | raw::REDISMODULE_CTX_FLAGS_LOADING)
            != 0;
        let primary = flags & raw::REDISMODULE_CTX_FLAGS_SLAVE == 0;
        Self {
            ctx,
            db: ffi::selected_db(ctx),
            key,
            replicate: primary && !applying,
            schedule: primary && flags & raw::REDISMODULE_CTX_FLAGS_LOADING == 0,
            primary: primary || applying,
        }
    }

    pub fn key_ref(&self) -> KeyRef {
        KeyRef {
            db: self.db,
            key: self.key.into(),
        }
    }
}

/// Brings everything in line with the lock's new state. `before` is the mark
/// taken before the change; `grants` are waiters that became holders.
pub fn settle(scope: &Scope<'_>, key: &LockKey, before: Mark, grants: Vec<LockGrant>) {
    let grants = deliverable(key, grants);
    let lock = key.lock();
    let after = mark(lock.as_deref());
    if before != after {
        match (before, after) {
            (None, Some(_)) => stats::HELD.incr(),
            (Some(_), None) => stats::HELD.decr(),
            _ => {}
        }
        if scope.schedule {
            node::with(|node| {
                if let Some((fence, expires_at)) = before {
                    node.schedule.remove(expires_at, fence);
                }
                if let Some((fence, expires_at)) = after {
                    node.schedule.insert(expires_at, fence, scope.key_ref());
                }
            });
            expiry::ensure_armed(scope.ctx);
        }
        if scope.replicate {
            match lock.as_deref().and_then(|lock| lock.holder()) {
                Some(h) => {
                    ffi::replicate_apply(scope.ctx, scope.key, &h.token, h.fence, h.expires_at)
                }
                None => ffi::replicate_del(scope.ctx, scope.key),
            }
        }
    }
    if lock.is_some_and(|lock| lock.is_idle()) {
        key.delete();
    }
    for grant in &grants {
        stats::GRANTS.incr();
        waiting::wake(scope.ctx, grant);
    }
}

/// The grants whose waiters still wait. A grant made for a waiter that is
/// gone is taken back and the lock passes on to the next waiter, before
/// anything is propagated, so a grant only ever reaches the waiter it was
/// made for. (Every path that ends a wait also leaves the queue, so this is
/// the backstop, not the rule.)
fn deliverable(key: &LockKey, mut grants: Vec<LockGrant>) -> Vec<LockGrant> {
    let mut i = 0;
    while i < grants.len() {
        if waiting::is_waiting(grants[i].id) {
            i += 1;
            continue;
        }
        let ghost = grants.remove(i);
        let Some(lock) = key.lock() else { continue };
        if lock.holder().map(|h| h.fence) != Some(ghost.fence) {
            continue;
        }
        let now = ffi::now_ms();
        if let Release::Released { handoff } =
            node::with(|node| lock.force_release(now, node.fences()))
        {
            grants.extend(handoff);
        }
    }
    grants
}

/// A write command's change to one lock, from open to settle: the key opened
/// for writing, the holder marked, and the holder expired first if its time
/// has passed (the lazy check every write command makes).
pub struct Change<'a> {
    pub key: LockKey,
    pub scope: Scope<'a>,
    pub now: u64,
    /// True when the lazy check expired the holder.
    pub expired: bool,
    /// Waiters that became holders; woken by `finish`.
    pub grants: Vec<LockGrant>,
    before: Mark,
}

impl<'a> Change<'a> {
    /// Opens the lock under `name`: READONLY on a replica (also one with
    /// `replica-read-only no`: only the primary grants, expires and numbers
    /// fences), WRONGTYPE when the key holds another type. A held lock that
    /// eviction took is put back first (see `external`).
    pub fn begin(ctx: &Context, name: &'a RedisString) -> Result<Self, RedisError> {
        let scope = Scope::local(ctx.get_raw(), name.as_slice());
        if !scope.primary {
            return Err(RedisError::Str(
                "READONLY You can't write against a read only replica.",
            ));
        }
        let key = LockKey::open(ctx, name)?;
        let now = ffi::now_ms();
        let before = mark(key.lock().as_deref());
        if key.lock().is_none() {
            external::restore_evicted(&key, &scope.key_ref(), now)?;
        }
        let expiry = expire_if_due(key.lock(), now);
        Ok(Self {
            scope,
            now,
            expired: expiry.is_some(),
            grants: expiry.flatten().into_iter().collect(),
            before,
            key,
        })
    }

    /// Settles what changed (see [`settle`]).
    pub fn finish(self) {
        settle(&self.scope, &self.key, self.before, self.grants);
    }
}

/// Expires the holder if its time has passed (the lazy check every write
/// command makes first). `Some` when it expired, with the hand-off if any.
pub fn expire_if_due(lock: Option<&mut LockValue>, now: u64) -> Option<Option<LockGrant>> {
    let lock = lock?;
    let (_, grant) = node::with(|node| lock.expire_due(now, node.fences()))?;
    stats::EXPIRATIONS.incr();
    Some(grant)
}
