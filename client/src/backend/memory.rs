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

use baton_core::{Acquire, FenceCounter, Grant, Lock, Release, Waiter};
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
    /// Delivers a hand-off; a waiter that is gone gives the lock straight
    /// back (to the next waiter).
    fn deliver(&mut self, key: &str, mut grant: Option<Grant<Wake>>, now: u64) {
        while let Some(g) = grant.take() {
            self.stats.grants += 1;
            if g.payload.send((g.fence, g.expires_at)).is_ok() {
                return;
            }
            let Some(lock) = self.locks.get_mut(key) else {
                return;
            };
            let token = lock.holder().map(|h| h.token.clone());
            if let Some(token) = token {
                if let Release::Released { handoff } = lock.release(&token, now, &mut self.fences) {
                    grant = handoff;
                }
            }
        }
    }

    /// Expires a due holder (handing off), then forgets an idle lock.
    fn settle(&mut self, key: &str, now: u64) {
        let Some(lock) = self.locks.get_mut(key) else {
            return;
        };
        if let Some((_, handoff)) = lock.expire_due(now, &mut self.fences) {
            self.stats.expirations += 1;
            self.deliver(key, handoff, now);
        }
        self.forget_if_idle(key);
    }

    fn forget_if_idle(&mut self, key: &str) {
        if self.locks.get(key).is_some_and(Lock::is_idle) {
            self.locks.remove(key);
        }
    }

    fn holder_expiry(&self, key: &str) -> Option<u64> {
        self.locks.get(key)?.holder().map(|h| h.expires_at)
    }

    fn vacate(&mut self, key: &str, release: Release<Wake>, now: u64) -> bool {
        let released = matches!(release, Release::Released { .. });
        if let Release::Released { handoff } = release {
            self.deliver(key, handoff, now);
        }
        self.forget_if_idle(key);
        released
    }
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
        let mut guard = self.backend.lock();
        let st = &mut *guard;
        let removed = st
            .locks
            .get_mut(self.key)
            .and_then(|l| l.remove_waiter(self.id))
            .is_some();
        if removed {
            st.forget_if_idle(self.key);
        } else if let Some(lock) = st.locks.get_mut(self.key) {
            let release = lock.release(self.token.as_bytes(), now, &mut st.fences);
            st.vacate(self.key, release, now);
        }
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
        let (mut rx, id) = {
            let mut guard = self.lock();
            let st = &mut *guard;
            st.settle(key, now);
            let lock = st.locks.entry(key.to_owned()).or_default();
            match lock.acquire(token.as_bytes(), ttl, now, &mut st.fences) {
                Acquire::Granted { fence } => {
                    st.stats.grants += 1;
                    return Ok(Some(granted(fence, now)));
                }
                Acquire::Renewed { fence } => return Ok(Some(granted(fence, now))),
                Acquire::AlreadyWaiting => {
                    return Err(Error::InvalidOptions(
                        "token is already waiting for this lock".into(),
                    ))
                }
                Acquire::Busy if wait.is_zero() => {
                    st.forget_if_idle(key);
                    return Ok(None);
                }
                Acquire::Busy => {}
            }
            let (tx, rx) = oneshot::channel();
            st.next_id += 1;
            let id = st.next_id;
            let waiter = Waiter {
                id,
                token: token.as_bytes().into(),
                ttl,
                payload: tx,
            };
            if lock.enqueue(waiter).is_err() {
                return Err(Error::InvalidOptions(
                    "token is already waiting for this lock".into(),
                ));
            }
            (rx, id)
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
                if let Some(l) = st.locks.get_mut(key) {
                    l.remove_waiter(id);
                }
                st.forget_if_idle(key);
                st.stats.wait_timeouts += 1;
                cleanup.armed = false;
                return Ok(None);
            }
        }
    }

    pub(crate) async fn release(&self, key: &str, token: &str) -> Result<bool> {
        let now = self.now();
        let mut guard = self.lock();
        let st = &mut *guard;
        st.settle(key, now);
        let Some(lock) = st.locks.get_mut(key) else {
            return Ok(false);
        };
        let release = lock.release(token.as_bytes(), now, &mut st.fences);
        let released = st.vacate(key, release, now);
        if released {
            st.stats.releases += 1;
        }
        Ok(released)
    }

    /// The release a dropped guard does: synchronous, no runtime needed.
    pub(crate) fn release_now(&self, key: &str, token: &str) {
        let now = self.now();
        let mut guard = self.lock();
        let st = &mut *guard;
        st.settle(key, now);
        if let Some(lock) = st.locks.get_mut(key) {
            let release = lock.release(token.as_bytes(), now, &mut st.fences);
            if st.vacate(key, release, now) {
                st.stats.releases += 1;
            }
        }
    }

    pub(crate) async fn extend(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let now = self.now();
        let mut st = self.lock();
        st.settle(key, now);
        let ok = st
            .locks
            .get_mut(key)
            .and_then(|l| l.extend(token.as_bytes(), ms(ttl, 1), now))
            .is_some();
        if ok {
            st.stats.extends += 1;
        }
        Ok(ok)
    }

    pub(crate) async fn force_release(&self, key: &str) -> Result<bool> {
        let now = self.now();
        let mut guard = self.lock();
        let st = &mut *guard;
        st.settle(key, now);
        let Some(lock) = st.locks.get_mut(key) else {
            return Ok(false);
        };
        let release = lock.force_release(now, &mut st.fences);
        let released = st.vacate(key, release, now);
        if released {
            st.stats.force_releases += 1;
        }
        Ok(released)
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
            },
            Some(lock) => LockInfo {
                held: lock.holder().is_some(),
                fence: lock.holder().map_or(0, |h| h.fence),
                pttl: lock.holder().map(|h| h.pttl(now)),
                waiters: lock.waiters() as u64,
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
