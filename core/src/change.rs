//! One change to one lock, from the lazy expiry check to what follows: the
//! driver that the Redis module and the client's in-memory backend both run,
//! so "expire, act, compare holder before and after, hand off, pass a grant
//! on whose waiter is gone, forget an idle lock, count" is written once.
//!
//! ```
//! use baton_core::{FenceCounter, Lock};
//! let (mut lock, mut fences) = (Lock::<()>::new(), FenceCounter::default());
//! let mut change = lock.change(0, &mut fences);
//! change.acquire(b"t", 100);
//! let t = change.finish(|_| true);
//! assert_eq!(t.after.map(|h| h.fence), Some(1)); // schedule it, replicate it
//! assert_eq!(t.counts.grants, 1);
//! assert!(!t.forget);
//! ```
//!
//! The adapters execute the [`Transition`]: unschedule `before`, schedule
//! `after`, replicate when `changed` (the holder of the lock, or its
//! absence), delete the key when `forget`, add `counts`, wake `grants`.

use crate::fence::FenceCounter;
use crate::lock::{Acquire, Grant, Holder, Lock, Release};

/// A grant as the schedule and the replication stream name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The grant's fence.
    pub fence: u64,
    /// Its absolute expiry, unix ms.
    pub expires_at: u64,
}

/// What one change counted, for `LOCK.STATS`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Grants, hand-offs included (renewals are not).
    pub grants: u64,
    /// Releases by the holder.
    pub releases: u64,
    /// Extends by the holder.
    pub extends: u64,
    /// Holders whose time ran out.
    pub expirations: u64,
    /// Force-releases that removed a holder.
    pub force_releases: u64,
}

/// What a change means outside the lock.
#[derive(Debug, PartialEq, Eq)]
pub struct Transition<W> {
    /// The holder before the change: unschedule it when `changed`.
    pub before: Option<Mark>,
    /// The holder after: schedule it (and replicate it) when `changed`.
    pub after: Option<Mark>,
    /// The holder changed (granted, renewed, extended, released, expired,
    /// given a new value): replicate the lock's holder, or that it is free.
    pub changed: bool,
    /// Waiters that became holders, to wake, in order. Each one's waiter
    /// was alive when the change finished.
    pub grants: Vec<Grant<W>>,
    /// Nobody holds or waits: forget the lock (delete its key).
    pub forget: bool,
    /// What to add to the counters.
    pub counts: Counts,
}

impl<W> Transition<W> {
    /// +1 when the lock became held, -1 when it became free, else 0: the
    /// change of the "locks held" gauge.
    pub fn held_delta(&self) -> i64 {
        match (self.before, self.after) {
            (None, Some(_)) => 1,
            (Some(_), None) => -1,
            _ => 0,
        }
    }
}

/// A change in progress; made by [`Lock::change`].
#[derive(Debug)]
pub struct Change<'a, W> {
    lock: &'a mut Lock<W>,
    fences: &'a mut FenceCounter,
    now: u64,
    before: Option<Mark>,
    expired: bool,
    /// The holder's value was replaced: replicate even if its mark is the
    /// same.
    meta_replaced: bool,
    grants: Vec<Grant<W>>,
    counts: Counts,
}

fn mark<W>(lock: &Lock<W>) -> Option<Mark> {
    lock.holder().map(|h| Mark {
        fence: h.fence,
        expires_at: h.expires_at,
    })
}

impl<W> Lock<W> {
    /// Starts a change at `now`: a holder whose time has passed expires
    /// first (and the lock passes to the head of the queue), so no call of
    /// the change sees an expired holder.
    pub fn change<'a>(&'a mut self, now: u64, fences: &'a mut FenceCounter) -> Change<'a, W> {
        let before = mark(self);
        let mut change = Change {
            lock: self,
            fences,
            now,
            before,
            expired: false,
            meta_replaced: false,
            grants: Vec::new(),
            counts: Counts::default(),
        };
        if let Some(expired) = change.lock.expire_due(now, change.fences) {
            change.expired = true;
            change.counts.expirations += 1;
            change.take(expired.handoff);
        }
        change
    }
}

impl<W> Lock<W> {
    /// Sets the holder as the primary decided it (replication, AOF) and
    /// tells what changed; nothing expires, nothing is handed off.
    pub fn change_applied(&mut self, holder: Holder, fences: &mut FenceCounter) -> Transition<W> {
        let before = mark(self);
        let mut change = Change {
            lock: self,
            fences,
            now: 0,
            before,
            expired: false,
            meta_replaced: false,
            grants: Vec::new(),
            counts: Counts::default(),
        };
        change.apply(holder);
        change.finish(|_| true)
    }
}

impl<W> Change<'_, W> {
    fn take(&mut self, handoff: Option<Grant<W>>) {
        if let Some(grant) = handoff {
            self.counts.grants += 1;
            self.grants.push(grant);
        }
    }

    /// True when the holder's time had run out when the change started.
    pub fn expired(&self) -> bool {
        self.expired
    }

    /// The lock, for calls that need no bookkeeping (enqueue a waiter).
    pub fn lock(&mut self) -> &mut Lock<W> {
        self.lock
    }

    /// [`Lock::acquire`] without a value, counted.
    pub fn acquire(&mut self, token: &[u8], ttl: u64) -> Acquire {
        self.acquire_with(token, ttl, None)
    }

    /// [`Lock::acquire`] with `meta` stored with a new holder (or replacing
    /// a renewed holder's), counted.
    pub fn acquire_with(&mut self, token: &[u8], ttl: u64, meta: Option<&[u8]>) -> Acquire {
        let outcome = self.lock.acquire(token, ttl, meta, self.now, self.fences);
        match outcome {
            Acquire::Granted { .. } => self.counts.grants += 1,
            Acquire::Renewed { .. } => self.meta_replaced |= meta.is_some(),
            Acquire::AlreadyWaiting | Acquire::Busy => {}
        }
        outcome
    }

    /// [`Lock::release`], counted; true when `token` held the lock.
    pub fn release(&mut self, token: &[u8]) -> bool {
        match self.lock.release(token, self.now, self.fences) {
            Release::Released { handoff } => {
                self.counts.releases += 1;
                self.take(handoff);
                true
            }
            Release::NotHolder => false,
        }
    }

    /// [`Change::release`], or when `token` does not hold the lock but is
    /// queued for it, takes it out of the queue: one call that leaves
    /// `token` with nothing, held or queued, whatever it had (a client
    /// withdrawing a wait it gave up on, without knowing whether a grant
    /// raced). Returns whether it released, and the id of the waiter it
    /// took out, whom the caller answers as not granted.
    pub fn release_or_withdraw(&mut self, token: &[u8]) -> (bool, Option<u64>) {
        if self.release(token) {
            return (true, None);
        }
        (false, self.lock.remove_waiter_by_token(token).map(|w| w.id))
    }

    /// [`Lock::extend`], counted; true when `token` held the lock.
    pub fn extend(&mut self, token: &[u8], ttl: u64) -> bool {
        self.extend_with(token, ttl, None)
    }

    /// [`Lock::extend_with`], counted; true when `token` held the lock.
    pub fn extend_with(&mut self, token: &[u8], ttl: u64, meta: Option<&[u8]>) -> bool {
        let extended = self.lock.extend_with(token, ttl, meta, self.now).is_some();
        if extended {
            self.counts.extends += 1;
            // Same expiry to the ms is possible: replicate the new value all
            // the same.
            self.meta_replaced |= meta.is_some();
        }
        extended
    }

    /// [`Lock::force_release`], counted; true when a holder was removed. A
    /// holder whose time had run out when the change started was not held
    /// when this call came: its expiry handed the lock on, and the new
    /// holder is left alone.
    pub fn force_release(&mut self) -> bool {
        if self.expired {
            return false;
        }
        match self.lock.force_release(self.now, self.fences) {
            Release::Released { handoff } => {
                self.counts.force_releases += 1;
                self.take(handoff);
                true
            }
            Release::NotHolder => false,
        }
    }

    /// Sets the holder as the primary decided it. Only for a change made
    /// with [`Lock::change_applied`]: a replica never expires locks itself.
    fn apply(&mut self, holder: Holder) {
        self.lock.apply(holder, self.fences);
    }

    /// Ends the change. A grant whose waiter is gone (`alive` says no) is
    /// taken back and the lock passes to the next waiter, so a grant only
    /// ever reaches the waiter it was made for.
    pub fn finish(mut self, alive: impl Fn(&Grant<W>) -> bool) -> Transition<W> {
        let mut i = 0;
        while i < self.grants.len() {
            if alive(&self.grants[i]) {
                i += 1;
                continue;
            }
            let ghost = self.grants.remove(i);
            self.counts.grants -= 1;
            if self.lock.holder().map(|h| h.fence) == Some(ghost.fence) {
                if let Release::Released { handoff } =
                    self.lock.force_release(self.now, self.fences)
                {
                    self.take(handoff);
                }
            }
        }
        let after = mark(self.lock);
        Transition {
            before: self.before,
            after,
            changed: self.before != after || self.meta_replaced,
            grants: self.grants,
            forget: self.lock.is_idle(),
            counts: self.counts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Waiter;

    fn waiter(id: u64, token: &str) -> Waiter<u64> {
        Waiter {
            id,
            token: token.as_bytes().into(),
            ttl: 100,
            meta: None,
            payload: id,
        }
    }

    #[test]
    fn a_release_with_a_waiter_hands_off_and_replicates_the_new_holder() {
        let (mut lock, mut fences) = (Lock::new(), FenceCounter::default());
        lock.acquire(b"a", 100, None, 0, &mut fences);
        lock.enqueue(waiter(7, "b")).unwrap();
        let mut change = lock.change(10, &mut fences);
        assert!(change.release(b"a"));
        let t = change.finish(|_| true);
        assert_eq!(t.before.map(|m| m.fence), Some(1));
        assert_eq!(
            t.after,
            Some(Mark {
                fence: 2,
                expires_at: 110
            })
        );
        assert!(t.changed && !t.forget);
        assert_eq!(t.held_delta(), 0);
        assert_eq!(t.grants.iter().map(|g| g.id).collect::<Vec<_>>(), vec![7]);
        let counts = Counts {
            grants: 1,
            releases: 1,
            ..Counts::default()
        };
        assert_eq!(t.counts, counts);
    }

    #[test]
    fn a_renewal_that_replaces_the_value_is_a_change_even_at_the_same_expiry() {
        let (mut lock, mut fences) = (Lock::<u64>::new(), FenceCounter::default());
        lock.acquire(b"a", 100, Some(b"one"), 0, &mut fences);
        let mut change = lock.change(0, &mut fences);
        assert_eq!(change.acquire(b"a", 100), Acquire::Renewed { fence: 1 });
        assert!(!change.finish(|_| true).changed, "same mark, same value");
        let mut change = lock.change(0, &mut fences);
        change.acquire_with(b"a", 100, Some(b"two"));
        assert!(change.finish(|_| true).changed);
        assert_eq!(
            lock.holder().and_then(|h| h.meta.as_deref()),
            Some(&b"two"[..])
        );
    }

    #[test]
    fn an_expired_holder_goes_first_and_cannot_be_force_released() {
        let (mut lock, mut fences) = (Lock::<u64>::new(), FenceCounter::default());
        lock.acquire(b"a", 100, None, 0, &mut fences);
        let mut change = lock.change(100, &mut fences);
        assert!(change.expired());
        assert!(!change.force_release());
        let t = change.finish(|_| true);
        assert!(t.changed && t.forget && t.after.is_none());
        assert_eq!(t.held_delta(), -1);
        assert_eq!(t.counts.expirations, 1);
        assert_eq!(t.counts.force_releases, 0);
    }

    #[test]
    fn a_grant_for_a_waiter_that_is_gone_passes_to_the_next() {
        let (mut lock, mut fences) = (Lock::new(), FenceCounter::default());
        lock.acquire(b"a", 100, None, 0, &mut fences);
        lock.enqueue(waiter(1, "ghost")).unwrap();
        lock.enqueue(waiter(2, "b")).unwrap();
        let mut change = lock.change(5, &mut fences);
        assert!(change.release(b"a"));
        let t = change.finish(|g| g.id != 1);
        assert_eq!(t.grants.iter().map(|g| g.id).collect::<Vec<_>>(), vec![2]);
        assert_eq!(t.counts.grants, 1, "the ghost's grant is not counted");
        assert_eq!(lock.holder().map(|h| &*h.token), Some(&b"b"[..]));
    }

    /// A RELEASE by a token that is queued, not holding, takes it out of
    /// the queue and nothing else: the holder stays, nothing to replicate,
    /// and the token is never granted afterwards.
    #[test]
    fn a_release_by_a_queued_token_withdraws_it() {
        let (mut lock, mut fences) = (Lock::new(), FenceCounter::default());
        lock.acquire(b"a", 100, None, 0, &mut fences);
        lock.enqueue(waiter(1, "b")).unwrap();
        lock.enqueue(waiter(2, "c")).unwrap();
        let mut change = lock.change(5, &mut fences);
        assert_eq!(change.release_or_withdraw(b"b"), (false, Some(1)));
        assert_eq!(change.release_or_withdraw(b"b"), (false, None));
        assert_eq!(change.release_or_withdraw(b"nobody"), (false, None));
        let t = change.finish(|_| true);
        assert!(!t.changed && t.grants.is_empty());
        assert_eq!(t.counts, Counts::default());
        assert_eq!(lock.waiters(), 1);
        // The holder's release goes past the withdrawn token to `c`.
        let mut change = lock.change(6, &mut fences);
        assert_eq!(change.release_or_withdraw(b"a"), (true, None));
        let t = change.finish(|_| true);
        assert_eq!(t.grants.iter().map(|g| g.id).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn a_refused_call_changes_nothing_to_replicate() {
        let (mut lock, mut fences) = (Lock::<u64>::new(), FenceCounter::default());
        lock.acquire(b"a", 100, None, 0, &mut fences);
        let mut change = lock.change(5, &mut fences);
        assert_eq!(change.acquire(b"b", 100), Acquire::Busy);
        assert!(!change.release(b"b"));
        assert!(!change.extend(b"b", 100));
        let t = change.finish(|_| true);
        assert!(!t.changed && !t.forget && t.grants.is_empty());
        assert_eq!(t.counts, Counts::default());
    }

    #[test]
    fn an_extend_with_a_value_replaces_it_under_the_same_fence() {
        let (mut lock, mut fences) = (Lock::<u64>::new(), FenceCounter::default());
        lock.acquire(b"a", 100, Some(b"one"), 0, &mut fences);
        let mut change = lock.change(0, &mut fences);
        assert!(!change.extend_with(b"b", 100, Some(b"x")), "not the holder");
        assert!(change.extend_with(b"a", 100, Some(b"two")));
        let t = change.finish(|_| true);
        assert!(t.changed, "same expiry, new value: replicated");
        assert_eq!(t.counts.grants, 0);
        let holder = lock.holder().unwrap();
        assert_eq!(
            (holder.fence, holder.meta.as_deref()),
            (1, Some(&b"two"[..]))
        );
        let mut change = lock.change(0, &mut fences);
        assert!(change.extend(b"a", 100));
        assert!(!change.finish(|_| true).changed, "a plain extend keeps it");
        assert_eq!(lock.holder().unwrap().meta.as_deref(), Some(&b"two"[..]));
    }

    #[test]
    fn a_renewal_replicates_but_counts_no_grant() {
        let (mut lock, mut fences) = (Lock::<u64>::new(), FenceCounter::default());
        lock.acquire(b"a", 100, None, 0, &mut fences);
        let mut change = lock.change(5, &mut fences);
        assert_eq!(change.acquire(b"a", 100), Acquire::Renewed { fence: 1 });
        let t = change.finish(|_| true);
        assert!(t.changed);
        assert_eq!(t.after.map(|m| m.expires_at), Some(105));
        assert_eq!(t.counts, Counts::default());
    }
}
