//! The in-memory backend: `baton-core`'s [`Lock`] and [`Semaphore`] behind a
//! mutex, for tests and single-process use. Not distributed.
//!
//! Time is `tokio::time::Instant` milliseconds since the backend was made, so
//! tests under `tokio::time::pause()` control it. Expiry hand-off is driven by
//! the waiters themselves: each sleeps until the next expiry (the lock's
//! holder, or the semaphore's earliest lease) at the latest, then settles it
//! (the core hands on to the queue's head).
//!
//! Locks and semaphores are two tables of one [`State`], each a core state
//! machine behind the [`Machine`] trait, so waiting, cleanup after a
//! cancelled wait and "execute what the change decided" are written once.
//! A lock and a semaphore of the same name are apart (as in the Lua
//! backend; on the module they are one Redis key, and the second gets
//! `WRONGTYPE`).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Mutex;
use std::time::Duration;

use baton_core::{Acquire, Change, Counts, FenceCounter, Grant, Lock, Waiter};
use baton_core::{Request, SemAcquire, SemChange, Semaphore};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::{Granted, Kind, LockInfo, SemInfo, Stats};
use crate::client::Runtime;
use crate::error::{Error, Result};
use crate::options::ms;

/// Wakes a waiter with its hand-off: the fence and the grant's expiry.
type Wake = oneshot::Sender<(u64, u64)>;

/// Bumped by every change of a lock's holder (grant, release, expiry,
/// extend, new value): what an election observer waits on in-process.
#[derive(Debug)]
struct Changes(watch::Sender<u64>);

impl Default for Changes {
    fn default() -> Self {
        Self(watch::channel(0).0)
    }
}

#[derive(Debug, Default)]
struct State {
    changes: Changes,
    locks: HashMap<String, Lock<Wake>>,
    sems: HashMap<String, Semaphore<Wake>>,
    fences: FenceCounter,
    next_id: u64,
    stats: Stats,
}

/// What a finished change leaves to do here.
struct Done {
    grants: Vec<Grant<Wake>>,
    forget: bool,
    counts: Counts,
    /// A lock's holder changed (see [`Changes`]).
    changed: bool,
}

impl Done {
    fn of(grants: Vec<Grant<Wake>>, forget: bool, counts: Counts, changed: bool) -> Self {
        Self {
            grants,
            forget,
            counts,
            changed,
        }
    }
}

/// What every change offers, for the calls that serve both kinds.
trait Step {
    /// Takes request `id` out of the queue (those behind it that now fit
    /// are granted); false when it was not queued.
    fn remove_waiter(&mut self, id: u64) -> bool;
    /// Releases what `token` holds, or withdraws its wait (answered not
    /// granted), as the module's and the scripts' RELEASE do; true when it
    /// released.
    fn release(&mut self, token: &[u8]) -> bool;
    /// A lock's extend may also replace the holder's value; a
    /// semaphore's takes none.
    fn extend(&mut self, token: &[u8], ttl: u64, meta: Option<&[u8]>) -> bool;
}

/// A core state machine kept by key: a lock or a semaphore.
trait Machine: Sized {
    type Change<'a>: Step
    where
        Self: 'a;
    /// Its table, the node's fences and the counters.
    fn table(st: &mut State) -> (&mut HashMap<String, Self>, &mut FenceCounter, &mut Stats);
    fn change<'a>(&'a mut self, now: u64, fences: &'a mut FenceCounter) -> Self::Change<'a>;
    fn finish(change: Self::Change<'_>, alive: impl Fn(&Grant<Wake>) -> bool) -> Done;
    /// When a change may next expire something (and hand on).
    fn next_expiry(&self) -> Option<u64>;
    /// Whether `stats()` counts its changes (`LOCK.STATS` counts locks only).
    const COUNTED: bool;
}

impl Step for Change<'_, Wake> {
    fn remove_waiter(&mut self, id: u64) -> bool {
        self.lock().remove_waiter(id).is_some()
    }
    fn release(&mut self, token: &[u8]) -> bool {
        Change::release_or_withdraw(self, token).0
    }
    fn extend(&mut self, token: &[u8], ttl: u64, meta: Option<&[u8]>) -> bool {
        Change::extend_with(self, token, ttl, meta)
    }
}

impl Machine for Lock<Wake> {
    type Change<'a> = Change<'a, Wake>;
    fn table(st: &mut State) -> (&mut HashMap<String, Self>, &mut FenceCounter, &mut Stats) {
        (&mut st.locks, &mut st.fences, &mut st.stats)
    }
    fn change<'a>(&'a mut self, now: u64, fences: &'a mut FenceCounter) -> Change<'a, Wake> {
        Lock::change(self, now, fences)
    }
    fn finish(change: Change<'_, Wake>, alive: impl Fn(&Grant<Wake>) -> bool) -> Done {
        let t = change.finish(alive);
        Done::of(t.grants, t.forget, t.counts, t.changed)
    }
    fn next_expiry(&self) -> Option<u64> {
        self.holder().map(|h| h.expires_at)
    }
    const COUNTED: bool = true;
}

impl Step for SemChange<'_, Wake> {
    fn remove_waiter(&mut self, id: u64) -> bool {
        let removed = self.semaphore().remove_waiter(id).is_some();
        self.settle_queue();
        removed
    }
    fn release(&mut self, token: &[u8]) -> bool {
        SemChange::release_or_withdraw(self, token).0
    }
    fn extend(&mut self, token: &[u8], ttl: u64, _meta: Option<&[u8]>) -> bool {
        SemChange::extend(self, token, ttl)
    }
}

impl Machine for Semaphore<Wake> {
    type Change<'a> = SemChange<'a, Wake>;
    fn table(st: &mut State) -> (&mut HashMap<String, Self>, &mut FenceCounter, &mut Stats) {
        (&mut st.sems, &mut st.fences, &mut st.stats)
    }
    fn change<'a>(&'a mut self, now: u64, fences: &'a mut FenceCounter) -> SemChange<'a, Wake> {
        Semaphore::change(self, now, fences)
    }
    fn finish(change: SemChange<'_, Wake>, alive: impl Fn(&Grant<Wake>) -> bool) -> Done {
        let t = change.finish(alive);
        Done::of(t.grants, t.forget, t.counts, false)
    }
    fn next_expiry(&self) -> Option<u64> {
        Semaphore::next_expiry(self)
    }
    const COUNTED: bool = false;
}

impl State {
    /// Runs `act` as one change of `key` in `M`'s table (created from
    /// `create` when missing; `None` when missing otherwise), then does what
    /// follows: counts, forgets an idle one, and hands each grant to its
    /// waiter. A waiter that is gone gets none: core passes its grant on.
    fn run<M: Machine, R>(
        &mut self,
        key: &str,
        now: u64,
        create: Option<M>,
        act: impl FnOnce(&mut M::Change<'_>) -> R,
    ) -> Option<R> {
        let (table, fences, stats) = M::table(self);
        let machine = match create {
            Some(fresh) => table.entry(key.to_owned()).or_insert(fresh),
            None => table.get_mut(key)?,
        };
        let mut change = machine.change(now, fences);
        let reply = act(&mut change);
        let done = M::finish(change, |grant| !grant.payload.is_closed());
        if M::COUNTED {
            stats.count(&done.counts);
        }
        if done.forget {
            table.remove(key);
        }
        if done.changed {
            self.changes.0.send_modify(|n| *n += 1);
        }
        for grant in done.grants {
            // Under this state's mutex: a waiter dropped since `finish`
            // runs its cleanup after us, which releases the grant.
            let _ = grant.payload.send((grant.fence, grant.expires_at));
        }
        Some(reply)
    }

    /// Expires what is due (handing on) and forgets an idle one.
    fn settle<M: Machine>(&mut self, key: &str, now: u64) {
        self.run::<M, _>(key, now, None, |_| ());
    }

    fn next_expiry<M: Machine>(&mut self, key: &str) -> Option<u64> {
        M::table(self).0.get(key)?.next_expiry()
    }

    /// [`State::run`] on the table of `kind`, for a call both kinds make.
    fn run_kind<R>(
        &mut self,
        kind: Kind,
        key: &str,
        now: u64,
        act: impl FnOnce(&mut dyn Step) -> R,
    ) -> Option<R> {
        match kind {
            Kind::Lock => self.run::<Lock<Wake>, _>(key, now, None, |c| act(c)),
            Kind::Sem { .. } => self.run::<Semaphore<Wake>, _>(key, now, None, |c| act(c)),
        }
    }
}

/// What the first call of an acquire found.
enum First {
    Granted(u64),
    Busy,
    /// Queued: the grant comes on the waiter's channel.
    Queued,
    Refused(Error),
}

fn already_waiting() -> Error {
    Error::InvalidOptions("token is already waiting for this lock".into())
}

/// Takes a dropped waiter out of the queue, or releases its raced grant.
struct Cleanup<'a, M: Machine> {
    backend: &'a MemoryBackend,
    key: &'a str,
    token: &'a str,
    id: u64,
    armed: bool,
    machine: PhantomData<M>,
}

impl<M: Machine> Drop for Cleanup<'_, M> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let now = self.backend.now();
        let (id, token) = (self.id, self.token.as_bytes());
        self.backend
            .lock()
            .run::<M, _>(self.key, now, None, |change| {
                if !change.remove_waiter(id) {
                    change.release(token);
                }
            });
    }
}

#[derive(Debug)]
pub(crate) struct MemoryBackend {
    state: Mutex<State>,
    epoch: Instant,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            epoch: Instant::now(),
        }
    }
}

impl MemoryBackend {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn instant(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn acquire(
        &self,
        _rt: &Runtime,
        kind: Kind,
        key: &str,
        token: &str,
        ttl: Duration,
        wait: Duration,
        meta: Option<&[u8]>,
    ) -> Result<Option<Granted>> {
        let ttl = ms(ttl, 1);
        let tok = token.as_bytes();
        match kind {
            Kind::Lock => {
                self.wait_for(
                    key,
                    token,
                    ttl,
                    wait,
                    Lock::new(),
                    |change, queue| match change.acquire_with(tok, ttl, meta) {
                        Acquire::Granted { fence } | Acquire::Renewed { fence } => {
                            First::Granted(fence)
                        }
                        Acquire::AlreadyWaiting => First::Refused(already_waiting()),
                        Acquire::Busy => match queue {
                            None => First::Busy,
                            Some((id, tx)) => {
                                let waiter = Waiter {
                                    id,
                                    token: tok.into(),
                                    ttl,
                                    meta: meta.map(Into::into),
                                    payload: tx,
                                };
                                match change.lock().enqueue(waiter) {
                                    Ok(()) => First::Queued,
                                    Err(_) => First::Refused(already_waiting()),
                                }
                            }
                        },
                    },
                )
                .await
            }
            Kind::Sem { limit, permits } => {
                let fresh = Semaphore::new(limit);
                self.wait_for(key, token, ttl, wait, fresh, |change, queue| {
                    match change.acquire(tok, permits, limit, ttl) {
                        SemAcquire::Granted { fence } | SemAcquire::Renewed { fence } => {
                            First::Granted(fence)
                        }
                        SemAcquire::AlreadyWaiting => First::Refused(already_waiting()),
                        SemAcquire::OtherLimit { limit: held } => {
                            First::Refused(Error::OtherLimit {
                                key: key.to_owned(),
                                limit: held,
                                asked: limit,
                            })
                        }
                        SemAcquire::OtherPermits { held } => First::Refused(Error::OtherPermits {
                            key: key.to_owned(),
                            held,
                            asked: permits,
                        }),
                        SemAcquire::TooMany => First::Refused(Error::InvalidOptions(format!(
                            "permits must be between 1 and the limit {limit}, got {permits}"
                        ))),
                        SemAcquire::Busy => match queue {
                            None => First::Busy,
                            Some((id, tx)) => {
                                let waiter = Waiter {
                                    id,
                                    token: tok.into(),
                                    ttl,
                                    meta: None,
                                    payload: Request {
                                        permits,
                                        payload: tx,
                                    },
                                };
                                match change.semaphore().enqueue(waiter) {
                                    Ok(()) => First::Queued,
                                    Err(_) => First::Refused(already_waiting()),
                                }
                            }
                        },
                    }
                })
                .await
            }
        }
    }

    /// One acquire of `key` in `M`'s table (`fresh` when missing): `first`
    /// tries it, and queues it with the id and channel it is given (only
    /// when the call may wait); then waits for the grant on that channel,
    /// settling `key` at each expiry, until `wait` has passed.
    async fn wait_for<M: Machine>(
        &self,
        key: &str,
        token: &str,
        ttl: u64,
        wait: Duration,
        fresh: M,
        first: impl FnOnce(&mut M::Change<'_>, Option<(u64, Wake)>) -> First,
    ) -> Result<Option<Granted>> {
        let deadline = Instant::now() + wait;
        let now = self.now();
        // The exact grant: its ttl counts from `at` (backend ms).
        let granted = |fence, at| Granted {
            fence,
            since: self.instant(at),
            blind: false,
        };
        let (tx, mut rx) = oneshot::channel();
        let (id, first) = {
            let mut st = self.lock();
            st.next_id += 1;
            let id = st.next_id;
            let queue = (!wait.is_zero()).then_some((id, tx));
            (id, st.run(key, now, Some(fresh), |c| first(c, queue)))
        };
        match first.unwrap_or(First::Busy) {
            First::Queued => {}
            First::Granted(fence) => return Ok(Some(granted(fence, now))),
            First::Busy => return Ok(None),
            First::Refused(e) => return Err(e),
        }
        let mut cleanup = Cleanup::<M> {
            backend: self,
            key,
            token,
            id,
            armed: true,
            machine: PhantomData,
        };
        loop {
            let expiry = self.lock().next_expiry::<M>(key).map(|ms| self.instant(ms));
            let wake = expiry.map_or(deadline, |e| e.min(deadline));
            let handed =
                |(fence, expires_at): (u64, u64)| granted(fence, expires_at.saturating_sub(ttl));
            tokio::select! {
                grant = &mut rx => {
                    cleanup.armed = false;
                    return Ok(grant.ok().map(handed));
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
            let now = self.now();
            let mut st = self.lock();
            st.settle::<M>(key, now);
            if let Ok(grant) = rx.try_recv() {
                cleanup.armed = false;
                return Ok(Some(handed(grant)));
            }
            if Instant::now() >= deadline {
                st.run::<M, _>(key, now, None, |change| change.remove_waiter(id));
                if M::COUNTED {
                    st.stats.wait_timeouts += 1;
                }
                cleanup.armed = false;
                return Ok(None);
            }
        }
    }

    pub(crate) async fn release(&self, kind: Kind, key: &str, token: &str) -> Result<bool> {
        Ok(self.release_now(kind, key, token))
    }

    /// The release, synchronous: a dropped guard's needs no runtime.
    pub(crate) fn release_now(&self, kind: Kind, key: &str, token: &str) -> bool {
        let now = self.now();
        let mut st = self.lock();
        let released = st.run_kind(kind, key, now, |change| change.release(token.as_bytes()));
        released.unwrap_or(false)
    }

    pub(crate) async fn extend(
        &self,
        kind: Kind,
        key: &str,
        token: &str,
        ttl: Duration,
        meta: Option<&[u8]>,
    ) -> Result<bool> {
        let now = self.now();
        let mut st = self.lock();
        let extended = st.run_kind(kind, key, now, |change| {
            change.extend(token.as_bytes(), ms(ttl, 1), meta)
        });
        Ok(extended.unwrap_or(false))
    }

    /// Removes the holder, whoever it is; as on the server, a holder whose
    /// time had run out was not held any more, and its successor stays.
    pub(crate) async fn force_release(&self, key: &str) -> Result<bool> {
        let now = self.now();
        let mut st = self.lock();
        let removed = st.run::<Lock<Wake>, _>(key, now, None, |change| change.force_release());
        Ok(removed.unwrap_or(false))
    }

    pub(crate) async fn sem_force_release(&self, key: &str) -> Result<u64> {
        let now = self.now();
        let mut st = self.lock();
        let removed =
            st.run::<Semaphore<Wake>, _>(key, now, None, |change| change.force_release(None));
        Ok(removed.unwrap_or(0) as u64)
    }

    pub(crate) async fn fence(&self, key: &str) -> Result<u64> {
        Ok(self.info(key).await?.fence)
    }

    pub(crate) async fn info(&self, key: &str) -> Result<LockInfo> {
        let now = self.now();
        let mut st = self.lock();
        st.settle::<Lock<Wake>>(key, now);
        Ok(match st.locks.get(key) {
            None => LockInfo {
                held: false,
                fence: 0,
                pttl: None,
                waiters: 0,
                meta: None,
            },
            Some(lock) => LockInfo {
                held: lock.holder().is_some(),
                fence: lock.holder().map_or(0, |h| h.fence),
                pttl: lock.holder().map(|h| h.pttl(now)),
                waiters: lock.waiters() as u64,
                meta: lock
                    .holder()
                    .and_then(|h| h.meta.as_ref())
                    .map(|m| m.to_vec()),
            },
        })
    }

    pub(crate) async fn sem_info(&self, key: &str) -> Result<SemInfo> {
        let now = self.now();
        let mut st = self.lock();
        st.settle::<Semaphore<Wake>>(key, now);
        Ok(st
            .sems
            .get(key)
            .map_or_else(SemInfo::default, |sem| SemInfo {
                limit: sem.limit(),
                used: sem.used(),
                holders: sem.holders() as u64,
                waiters: sem.waiters() as u64,
                fence: sem.last_fence(),
            }))
    }

    /// A receiver that sees every change of a lock's holder (see
    /// [`Changes`]).
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.lock().changes.0.subscribe()
    }

    pub(crate) async fn stats(&self) -> Result<Stats> {
        let now = self.now();
        let mut st = self.lock();
        let keys: Vec<String> = st.locks.keys().cloned().collect();
        for key in &keys {
            st.settle::<Lock<Wake>>(key, now);
        }
        let mut stats = st.stats;
        stats.locks = st.locks.len() as u64;
        stats.held = st.locks.values().filter(|l| l.holder().is_some()).count() as u64;
        stats.waiters = st.locks.values().map(|l| l.waiters() as u64).sum();
        Ok(stats)
    }

    /// An in-process lock has no replicas: 0 acknowledge, after the same
    /// EXTEND the servers get (`None` when it answers 0).
    pub(crate) async fn wait_replicas(
        &self,
        kind: Kind,
        key: &str,
        token: &str,
        ttl: Duration,
        _replicas: u64,
        _timeout: Duration,
    ) -> Result<Option<u64>> {
        Ok(self.extend(kind, key, token, ttl, None).await?.then_some(0))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A RELEASE by a token that waits withdraws its wait, as on the module
    /// and the scripts: the release answers false, the waiter is answered
    /// not granted at once, and the holder's release then leaves the lock
    /// free (nothing was handed to the withdrawn token).
    #[tokio::test]
    async fn a_release_by_a_waiting_token_withdraws_its_wait() {
        let backend = Arc::new(MemoryBackend::default());
        let rt = Runtime::current();
        let (ttl, long) = (Duration::from_secs(30), Duration::from_secs(20));
        let held = backend.acquire(&rt, Kind::Lock, "k", "holder", ttl, Duration::ZERO, None);
        assert!(held.await.unwrap().is_some());
        let waiter = {
            let backend = backend.clone();
            tokio::spawn(async move {
                let rt = Runtime::current();
                backend
                    .acquire(&rt, Kind::Lock, "k", "w", ttl, long, None)
                    .await
            })
        };
        let queued = async {
            while backend.info("k").await.unwrap().waiters == 0 {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), queued)
            .await
            .expect("the waiter queued");
        assert!(!backend.release(Kind::Lock, "k", "w").await.unwrap());
        let answered = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(answered.unwrap().unwrap().unwrap().is_none(), "not granted");
        assert!(backend.release(Kind::Lock, "k", "holder").await.unwrap());
        assert!(!backend.info("k").await.unwrap().held);
    }
}
