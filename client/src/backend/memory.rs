//! The in-memory backend: `baton-core`'s [`Lock`] behind a mutex, for tests
//! and single-process use. Not distributed.
//!
//! Time is `tokio::time::Instant` milliseconds since the backend was made, so
//! tests under `tokio::time::pause()` control it. Expiry hand-off is driven by
//! the waiters themselves: each sleeps until the holder's expiry at the
//! latest, then settles the lock (the core hands it to the queue's head).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use baton_core::{Acquire, Change, FenceCounter, Lock, Waiter};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Granted, LockInfo, Stats};
use crate::client::Runtime;
use crate::error::{Error, Result};
use crate::options::ms;

/// Wakes a waiter with its hand-off: the fence and the grant's expiry.
type Wake = oneshot::Sender<(u64, u64)>;

#[derive(Debug, Default)]
struct State {
    locks: HashMap<String, Lock<Wake>>,
    fences: FenceCounter,
    next_id: u64,
    stats: Stats,
}

#[derive(Debug)]
pub(crate) struct MemoryBackend {
    state: Mutex<State>,
    epoch: Instant,
}

impl State {
    /// Runs `act` as one change of lock `key` (created first when `create`;
    /// `None` when missing otherwise), then does what follows: counts,
    /// forgets an idle lock, and hands each grant to its waiter. A waiter
    /// that is gone gets none: core passes its grant on.
    fn run<R>(
        &mut self,
        key: &str,
        now: u64,
        create: bool,
        act: impl FnOnce(&mut Change<'_, Wake>) -> R,
    ) -> Option<R> {
        let lock = if create {
            self.locks.entry(key.to_owned()).or_default()
        } else {
            self.locks.get_mut(key)?
        };
        let mut change = lock.change(now, &mut self.fences);
        let reply = act(&mut change);
        let t = change.finish(|grant| !grant.payload.is_closed());
        self.stats.count(&t.counts);
        if t.forget {
            self.locks.remove(key);
        }
        for grant in t.grants {
            // Under this state's mutex: a waiter dropped since `finish`
            // runs its cleanup after us, which releases the grant.
            let _ = grant.payload.send((grant.fence, grant.expires_at));
        }
        Some(reply)
    }

    /// Expires a due holder (handing off) and forgets an idle lock.
    fn settle(&mut self, key: &str, now: u64) {
        self.run(key, now, false, |_| ());
    }

    fn holder_expiry(&self, key: &str) -> Option<u64> {
        self.locks.get(key)?.holder().map(|h| h.expires_at)
    }
}

/// What the first call of an acquire found.
enum First {
    Granted(u64),
    Busy,
    AlreadyWaiting,
    /// Queued: the grant comes on this channel.
    Queued(oneshot::Receiver<(u64, u64)>),
}

/// Takes a dropped waiter out of the queue, or releases its raced grant.
struct Cleanup<'a> {
    backend: &'a MemoryBackend,
    key: &'a str,
    token: &'a str,
    id: u64,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let now = self.backend.now();
        let (id, token) = (self.id, self.token.as_bytes());
        self.backend.lock().run(self.key, now, false, |change| {
            if change.lock().remove_waiter(id).is_none() {
                change.release(token);
            }
        });
    }
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

    pub(crate) async fn acquire(
        &self,
        _rt: &Runtime,
        key: &str,
        token: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Option<Granted>> {
        let ttl = ms(ttl, 1);
        let deadline = Instant::now() + wait;
        let now = self.now();
        // The exact grant: its ttl counts from `at` (backend ms).
        let granted = |fence, at| Granted {
            fence,
            since: self.instant(at),
            blind: false,
        };
        let (id, first) = {
            let mut st = self.lock();
            st.next_id += 1;
            let id = st.next_id;
            let first = st.run(key, now, true, |change| {
                match change.acquire(token.as_bytes(), ttl) {
                    Acquire::Granted { fence } | Acquire::Renewed { fence } => {
                        First::Granted(fence)
                    }
                    Acquire::AlreadyWaiting => First::AlreadyWaiting,
                    Acquire::Busy if wait.is_zero() => First::Busy,
                    Acquire::Busy => {
                        let (tx, rx) = oneshot::channel();
                        let waiter = Waiter {
                            id,
                            token: token.as_bytes().into(),
                            ttl,
                            meta: None,
                            payload: tx,
                        };
                        match change.lock().enqueue(waiter) {
                            Ok(()) => First::Queued(rx),
                            Err(_) => First::AlreadyWaiting,
                        }
                    }
                }
            });
            (id, first)
        };
        let mut rx = match first {
            Some(First::Queued(rx)) => rx,
            Some(First::Granted(fence)) => return Ok(Some(granted(fence, now))),
            Some(First::Busy) => return Ok(None),
            Some(First::AlreadyWaiting) | None => {
                return Err(Error::InvalidOptions(
                    "token is already waiting for this lock".into(),
                ))
            }
        };
        let mut cleanup = Cleanup {
            backend: self,
            key,
            token,
            id,
            armed: true,
        };
        loop {
            let expiry = self.lock().holder_expiry(key).map(|ms| self.instant(ms));
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
            st.settle(key, now);
            if let Ok(grant) = rx.try_recv() {
                cleanup.armed = false;
                return Ok(Some(handed(grant)));
            }
            if Instant::now() >= deadline {
                st.run(key, now, false, |change| change.lock().remove_waiter(id));
                st.stats.wait_timeouts += 1;
                cleanup.armed = false;
                return Ok(None);
            }
        }
    }

    pub(crate) async fn release(&self, key: &str, token: &str) -> Result<bool> {
        Ok(self.release_now(key, token))
    }

    /// The release, synchronous: a dropped guard's needs no runtime.
    pub(crate) fn release_now(&self, key: &str, token: &str) -> bool {
        let now = self.now();
        let mut st = self.lock();
        let released = st.run(key, now, false, |change| change.release(token.as_bytes()));
        released.unwrap_or(false)
    }

    pub(crate) async fn extend(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let now = self.now();
        let mut st = self.lock();
        let extended = st.run(key, now, false, |change| {
            change.extend(token.as_bytes(), ms(ttl, 1))
        });
        Ok(extended.unwrap_or(false))
    }

    /// Removes the holder, whoever it is; as on the server, a holder whose
    /// time had run out was not held any more, and its successor stays.
    pub(crate) async fn force_release(&self, key: &str) -> Result<bool> {
        let now = self.now();
        let mut st = self.lock();
        let removed = st.run(key, now, false, |change| change.force_release());
        Ok(removed.unwrap_or(false))
    }

    pub(crate) async fn fence(&self, key: &str) -> Result<u64> {
        Ok(self.info(key).await?.fence)
    }

    pub(crate) async fn info(&self, key: &str) -> Result<LockInfo> {
        let now = self.now();
        let mut st = self.lock();
        st.settle(key, now);
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

    pub(crate) async fn stats(&self) -> Result<Stats> {
        let now = self.now();
        let mut st = self.lock();
        let keys: Vec<String> = st.locks.keys().cloned().collect();
        for key in &keys {
            st.settle(key, now);
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
        key: &str,
        token: &str,
        ttl: Duration,
        _replicas: u64,
        _timeout: Duration,
    ) -> Result<Option<u64>> {
        Ok(self.extend(key, token, ttl).await?.then_some(0))
    }
}
