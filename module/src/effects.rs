//! Running core's driver on a lock stored in a key, and executing the
//! [`Transition`] it returns: the expiry schedule, the replication stream,
//! key deletion, the counters, and waking granted waiters.
//!
//! Commands open the key with [`Write::begin`] and act through
//! [`Write::run`]; timers and `LOCK.APPLY` call [`execute`] with the
//! transition core computed. What to propagate follows from the holder
//! before and after: `LOCK.APPLY` for a new or renewed holder, `DEL` when
//! the lock became free. The replica sees the resulting state, never a
//! relative ttl.

use crate::keyspace::LockKey;
use crate::lock_type::LockValue;
use crate::node::KeyRef;
use crate::{expiry, external, ffi, node, stats, waiting};
use baton_core::{Change, Transition};
use redis_module::{Context, RedisError, RedisString};

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
        let flags = ffi::Flags::of(ctx);
        let primary = !flags.is_replica();
        Self {
            ctx,
            db: ffi::selected_db(ctx),
            key,
            replicate: primary && !flags.is_applying(),
            schedule: primary && !flags.is_loading(),
            primary: primary || flags.is_applying(),
        }
    }

    pub fn key_ref(&self) -> KeyRef {
        KeyRef {
            db: self.db,
            key: self.key.into(),
        }
    }
}

/// Executes what a change to the lock under `key` means outside it (see
/// [`Transition`]).
pub fn execute(scope: &Scope<'_>, key: &LockKey, t: Transition<()>) {
    match t.held_delta() {
        1 => stats::HELD.incr(),
        -1 => stats::HELD.decr(),
        _ => {}
    }
    stats::count(&t.counts);
    if t.changed {
        if scope.schedule {
            node::with(|node| {
                if let Some(m) = t.before {
                    node.schedule.remove(m.expires_at, m.fence);
                }
                if let Some(m) = t.after {
                    node.schedule.insert(m.expires_at, m.fence, scope.key_ref());
                }
            });
            expiry::ensure_armed(scope.ctx);
        }
        if scope.replicate {
            match key.lock().and_then(|lock| lock.holder()) {
                Some(h) => {
                    ffi::replicate_apply(scope.ctx, scope.key, &h.token, h.fence, h.expires_at)
                }
                None => ffi::replicate_del(scope.ctx, scope.key),
            }
        }
    }
    if t.forget && key.lock().is_some() {
        key.delete();
    }
    for grant in &t.grants {
        waiting::wake(scope.ctx, grant);
    }
}

/// Runs `act` as one change of `lock` at `now` (see [`node::Node::change`])
/// and returns what it answered with the transition to execute.
pub fn change<R>(
    lock: &mut LockValue,
    now: u64,
    act: impl FnOnce(&mut Change<'_, ()>) -> R,
) -> (R, Transition<()>) {
    node::with(|node| node.change(lock, now, act))
}

/// A write command on one lock key: opened for writing, refused on a
/// replica, with a held lock that eviction took put back first.
pub struct Write<'a> {
    pub key: LockKey,
    pub scope: Scope<'a>,
    pub now: u64,
    /// True when the lock came back from eviction in this command: to the
    /// replicas and the schedule it is new.
    restored: bool,
}

impl<'a> Write<'a> {
    /// Opens the lock under `name`: READONLY on a replica (also one with
    /// `replica-read-only no`: only the primary grants, expires and numbers
    /// fences), WRONGTYPE when the key holds another type. A held lock that
    /// eviction took is put back first (see `external`).
    pub fn begin(ctx: &Context, name: &'a RedisString) -> Result<Self, RedisError> {
        let scope = Scope::local(ctx.get_raw(), name.as_slice());
        if !scope.primary {
            return Err(RedisError::Str(baton_core::wire::READONLY));
        }
        let key = LockKey::open(ctx, name)?;
        let now = ffi::now_ms();
        let restored =
            key.lock().is_none() && external::restore_evicted(&key, &scope.key_ref(), now)?;
        Ok(Self {
            key,
            scope,
            now,
            restored,
        })
    }

    /// Runs `act` as one change of the lock (created first when missing and
    /// `create`), executes what followed, and returns what `act` answered;
    /// `None` when there is no lock and `create` is false.
    pub fn run<R>(
        &self,
        create: bool,
        act: impl FnOnce(&mut Change<'_, ()>) -> R,
    ) -> Result<Option<R>, RedisError> {
        let lock = match self.key.lock() {
            Some(lock) => lock,
            None if create => self.key.create(LockValue::new())?,
            None => return Ok(None),
        };
        let (reply, mut t) = change(lock, self.now, act);
        if self.restored {
            t.before = None;
            t.changed = t.after.is_some();
        }
        execute(&self.scope, &self.key, t);
        Ok(Some(reply))
    }
}
