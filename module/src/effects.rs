//! Running core's driver on a lock or semaphore stored in a key, and
//! executing the [`Transition`] / [`SemTransition`] it returns: the expiry
//! schedule, the replication stream, key deletion, the counters, keyspace
//! events, and waking granted waiters.
//!
//! Commands open the key with [`Write::begin`] and act through `run`;
//! timers and `*.APPLY` call [`execute`] / [`execute_sem`] with the
//! transition core computed. What to propagate follows from what changed:
//! for a lock `LOCK.APPLY` of a new or renewed holder and `DEL` when it
//! became free; for a semaphore `SEM.APPLY` of each lease that began or was
//! renewed, `SEM.DROP` of each that ended, `DEL` when none is left. The
//! replica sees the resulting state, never a relative ttl.

use crate::keyspace::{Key, LockKey, SemKey, Stored};
use crate::lock_type::LockValue;
use crate::node::KeyRef;
use crate::sem_type::SemValue;
use crate::{expiry, ffi, node, stats, waiting};
use baton_core::{Change, Counts, SemChange, SemTransition, Transition};
use redis_module::{Context, RedisError, RedisString};
use std::ffi::CStr;

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

/// Fires the module keyspace events of one change: `<kind>.expire`,
/// `.release`, `.forcerelease`, `.grant`, one per counted event. Ends come
/// before grants, in the order a change makes them (due expiries first,
/// the hand-off last), so that a watcher keeping the last event of a key
/// sees it held after a hand-off.
fn notify(scope: &Scope<'_>, kind: &str, counts: &Counts) {
    let events: [(&CStr, &CStr, u64); 4] = [
        (c"lock.expire", c"sem.expire", counts.expirations),
        (c"lock.release", c"sem.release", counts.releases),
        (
            c"lock.forcerelease",
            c"sem.forcerelease",
            counts.force_releases,
        ),
        (c"lock.grant", c"sem.grant", counts.grants),
    ];
    for (lock, sem, n) in events {
        let event = if kind == "sem" { sem } else { lock };
        for _ in 0..n {
            ffi::notify(scope.ctx, event, scope.key);
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
                Some(h) => ffi::replicate_apply(scope.ctx, scope.key, h),
                None => ffi::replicate_del(scope.ctx, scope.key),
            }
        }
    }
    if scope.replicate {
        notify(scope, "lock", &t.counts);
    }
    if t.forget && key.lock().is_some() {
        key.delete();
    }
    for grant in &t.grants {
        waiting::wake(scope.ctx, grant);
    }
}

/// Executes what a change to the semaphore under `key` means outside it
/// (see [`SemTransition`]).
pub fn execute_sem(scope: &Scope<'_>, key: &SemKey, t: SemTransition<()>) {
    stats::LEASES.add(t.began.len() as u64);
    stats::LEASES.sub(t.ended.len() as u64);
    stats::count_sem(&t.counts);
    if scope.schedule && !(t.began.is_empty() && t.ended.is_empty()) {
        node::with(|node| {
            for lease in &t.ended {
                node.schedule
                    .remove(lease.mark.expires_at, lease.mark.fence);
            }
            for lease in &t.began {
                node.schedule
                    .insert(lease.mark.expires_at, lease.mark.fence, scope.key_ref());
            }
        });
        expiry::ensure_armed(scope.ctx);
    }
    if scope.replicate {
        match key.value().filter(|_| !t.forget) {
            Some(sem) => {
                for ended in &t.ended {
                    if !t.began.iter().any(|b| b.token == ended.token) {
                        ffi::replicate_sem_drop(scope.ctx, scope.key, &ended.token);
                    }
                }
                for began in &t.began {
                    if let Some(lease) = sem.lease(&began.token) {
                        ffi::replicate_sem_apply(
                            scope.ctx,
                            scope.key,
                            sem.limit(),
                            &began.token,
                            lease,
                        );
                    }
                }
            }
            None if !t.ended.is_empty() || !t.began.is_empty() => {
                ffi::replicate_del(scope.ctx, scope.key)
            }
            None => {}
        }
        notify(scope, "sem", &t.counts);
    }
    if t.forget && key.value().is_some() {
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

/// As [`change`], for a semaphore.
pub fn change_sem<R>(
    sem: &mut SemValue,
    now: u64,
    act: impl FnOnce(&mut SemChange<'_, ()>) -> R,
) -> (R, SemTransition<()>) {
    node::with(|node| node.change_sem(sem, now, act))
}

/// Grants what fits of the semaphore at `at` after a request left its
/// queue (timeout, disconnect). While writes are paused nothing may be
/// granted or propagated: the expiry timer settles it when they resume.
pub fn settle_semaphore(ctx: ffi::Ctx, at: &KeyRef) {
    if ffi::writes_paused() || !ffi::is_primary(ctx) {
        node::with(|node| node.unsettled.push(at.clone()));
        expiry::wake_soon(ctx);
        return;
    }
    if !ffi::select_db(ctx, at.db) {
        return;
    }
    let context = Context::new(ctx);
    let name = RedisString::create_from_slice(ctx, &at.key);
    let Ok(key) = SemKey::open(&context, &name) else {
        return;
    };
    let scope = Scope::local(ctx, &at.key);
    let Some(sem) = key.value() else {
        return;
    };
    let ((), t) = change_sem(sem, ffi::now_ms(), |change| change.settle_queue());
    execute_sem(&scope, &key, t);
}

/// A write command on one key of type `V`: opened for writing, refused on a
/// replica, with what eviction took put back first.
pub struct Write<'a, V: Stored> {
    pub key: Key<V>,
    pub scope: Scope<'a>,
    pub now: u64,
    /// True when the value came back from eviction in this command: to the
    /// replicas and the schedule it is new.
    restored: bool,
}

impl<'a, V: Stored> Write<'a, V> {
    /// Opens the value under `name`: READONLY on a replica (also one with
    /// `replica-read-only no`: only the primary grants, expires and numbers
    /// fences), WRONGTYPE when the key holds another type. What eviction
    /// took is put back first (see `external`).
    pub fn begin(ctx: &Context, name: &'a RedisString) -> Result<Self, RedisError> {
        let scope = Scope::local(ctx.get_raw(), name.as_slice());
        if !scope.primary {
            return Err(RedisError::Str(baton_core::wire::READONLY));
        }
        let key = Key::<V>::open(ctx, name)?;
        let now = ffi::now_ms();
        let restored = key.value().is_none() && V::restore(&key, &scope.key_ref(), now)?;
        Ok(Self {
            key,
            scope,
            now,
            restored,
        })
    }
}

impl Write<'_, LockValue> {
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

impl Write<'_, SemValue> {
    /// As the lock's `run`; a missing semaphore is created with `limit`
    /// when one is given.
    pub fn run<R>(
        &self,
        limit: Option<u32>,
        act: impl FnOnce(&mut SemChange<'_, ()>) -> R,
    ) -> Result<Option<R>, RedisError> {
        let sem = match (self.key.value(), limit) {
            (Some(sem), _) => sem,
            (None, Some(limit)) => self.key.create(SemValue::new(limit))?,
            (None, None) => return Ok(None),
        };
        let (reply, mut t) = change_sem(sem, self.now, act);
        if self.restored {
            // Every lease it has is new to the replicas and the schedule.
            let sem = self.key.value();
            t.began = sem
                .map(|sem| {
                    sem.leases()
                        .map(|(token, lease)| baton_core::LeaseChange {
                            token: token.into(),
                            mark: baton_core::Mark {
                                fence: lease.fence,
                                expires_at: lease.expires_at,
                            },
                            permits: lease.permits,
                        })
                        .collect()
                })
                .unwrap_or_default();
            t.ended.clear();
        }
        execute_sem(&self.scope, &self.key, t);
        Ok(Some(reply))
    }
}
