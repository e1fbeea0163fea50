//! One semaphore: `limit` permits, leases that each hold some of them until
//! their own expiry with their own fence, and a strict FIFO queue of
//! requests.
//!
//! The rules, each enforced here and nowhere else:
//! - the permits held never exceed the limit;
//! - every lease takes a new fence from the node's [`FenceCounter`];
//! - strict FIFO: a request is granted only when nobody is queued before it,
//!   so a newcomer never overtakes a waiter, also when a smaller request
//!   would fit (no starvation of large requests);
//! - on every release, expiry or force-release the head of the queue is
//!   granted while it fits, in order, in the same call;
//! - a call that is refused changes nothing.
//!
//! A read-write lock is a semaphore used with a large limit: a reader takes
//! one permit, a writer takes all of them.
//!
//! As with [`crate::Lock`], callers start a change with
//! [`Semaphore::change`] (which expires due leases first) and execute the
//! [`SemTransition`] it finishes with.

use crate::change::{Counts, Mark};
use crate::fence::FenceCounter;
use crate::leases::Leases;
use crate::lock::Grant;
use crate::queue::{WaitQueue, Waiter};

/// What one lease holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Permits held.
    pub permits: u32,
    /// The fence issued with the grant.
    pub fence: u64,
    /// Absolute expiry, unix ms.
    pub expires_at: u64,
}

impl Lease {
    fn mark(&self) -> Mark {
        Mark {
            fence: self.fence,
            expires_at: self.expires_at,
        }
    }
}

/// A queued request's payload: how many permits, and the caller's handle.
#[derive(Debug)]
pub struct Request<W> {
    /// Permits asked for.
    pub permits: u32,
    /// The caller's handle on the waiting party.
    pub payload: W,
}

/// The outcome of [`SemChange::acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemAcquire {
    /// Granted with a new fence.
    Granted { fence: u64 },
    /// The token already held a lease: renewed, same fence.
    Renewed { fence: u64 },
    /// Not enough permits free, or someone is queued first.
    Busy,
    /// The token is already queued.
    AlreadyWaiting,
    /// The semaphore has holders or waiters under another limit.
    OtherLimit { limit: u32 },
    /// The token holds a lease of another number of permits.
    OtherPermits { held: u32 },
    /// More permits asked than the limit.
    TooMany,
}

/// A semaphore and its queue.
#[derive(Debug)]
pub struct Semaphore<W> {
    limit: u32,
    used: u32,
    leases: Leases,
    queue: Option<Box<WaitQueue<Request<W>>>>,
    /// The last fence of a lease of this semaphore.
    last_fence: u64,
}

impl<W> Semaphore<W> {
    /// A semaphore of `limit` permits, none held.
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            used: 0,
            leases: Leases::default(),
            queue: None,
            last_fence: 0,
        }
    }

    /// The number of permits.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Permits held.
    pub fn used(&self) -> u32 {
        self.used
    }

    /// Leases (holders).
    pub fn holders(&self) -> usize {
        self.leases.len()
    }

    /// Queued requests.
    pub fn waiters(&self) -> usize {
        self.queue.as_ref().map_or(0, |q| q.len())
    }

    /// The lease of `token`, if it holds one (expired or not: see
    /// [`Semaphore::change`]).
    pub fn lease(&self, token: &[u8]) -> Option<&Lease> {
        self.leases.get(token)
    }

    /// Every lease with its token, in no order.
    pub fn leases(&self) -> impl Iterator<Item = (&[u8], &Lease)> {
        self.leases.iter()
    }

    /// The last fence issued (or applied) for a lease of this semaphore.
    pub fn last_fence(&self) -> u64 {
        self.last_fence
    }

    /// Raises the last fence to `fence` (a load that saved it: the lease
    /// that had it may be gone).
    pub fn observe_fence(&mut self, fence: u64) {
        self.last_fence = self.last_fence.max(fence);
    }

    /// The earliest expiry of a lease, unix ms: when a change may next
    /// expire one (and hand on); `None` without leases.
    pub fn next_expiry(&self) -> Option<u64> {
        self.leases.earliest().map(|(_, lease)| lease.expires_at)
    }

    /// True when nobody holds or waits: the semaphore can be forgotten.
    pub fn is_idle(&self) -> bool {
        self.leases.is_empty() && self.waiters() == 0
    }

    /// Sets a lease as the primary decided it (replication, AOF, a load):
    /// `fences` rises to its fence. An earlier lease of the token is
    /// replaced. Waiters are left alone.
    pub fn apply(&mut self, token: &[u8], lease: Lease, fences: &mut FenceCounter) {
        fences.observe(lease.fence);
        self.remove(token);
        self.insert(token.into(), lease);
    }

    /// Removes `token`'s lease as the primary decided (replication, AOF).
    pub fn drop_lease(&mut self, token: &[u8]) -> Option<Lease> {
        self.remove(token)
    }

    /// Queues a request behind the others. Refused, with nothing changed,
    /// when its token is already queued or holds a lease, or when it asks
    /// for more than the limit.
    pub fn enqueue(&mut self, waiter: Waiter<Request<W>>) -> Result<(), SemAcquire> {
        if waiter.payload.permits > self.limit || waiter.payload.permits == 0 {
            return Err(SemAcquire::TooMany);
        }
        if let Some(held) = self.leases.get(&waiter.token) {
            return Err(SemAcquire::OtherPermits { held: held.permits });
        }
        let queue = self.queue.get_or_insert_with(Default::default);
        let pushed = queue.push(waiter).map_err(|_| SemAcquire::AlreadyWaiting);
        if queue.is_empty() {
            self.queue = None;
        }
        pushed
    }

    /// Removes a queued request (timeout, disconnect). It is never granted
    /// afterwards; requests behind it that now fit are granted by the
    /// caller's next change (see [`SemChange::hand_off`]).
    pub fn remove_waiter(&mut self, id: u64) -> Option<Waiter<Request<W>>> {
        let queue = self.queue.as_mut()?;
        let waiter = queue.remove(id);
        if queue.is_empty() {
            self.queue = None;
        }
        waiter
    }

    /// Removes every request, in arrival order; leases stay.
    pub fn drain_waiters(&mut self) -> Vec<Waiter<Request<W>>> {
        self.queue.take().map_or_else(Vec::new, |mut q| q.drain())
    }

    fn insert(&mut self, token: Box<[u8]>, lease: Lease) {
        self.used += lease.permits;
        self.last_fence = self.last_fence.max(lease.fence);
        self.leases.insert(token, lease);
    }

    fn remove(&mut self, token: &[u8]) -> Option<Lease> {
        let lease = self.leases.remove(token)?;
        self.used -= lease.permits;
        Some(lease)
    }

    /// Starts a change at `now`: every lease whose time has passed expires
    /// first, and the queue's head is granted while it fits.
    pub fn change<'a>(&'a mut self, now: u64, fences: &'a mut FenceCounter) -> SemChange<'a, W> {
        let mut change = SemChange {
            sem: self,
            fences,
            now,
            ended: Vec::new(),
            began: Vec::new(),
            grants: Vec::new(),
            counts: Counts::default(),
        };
        change.expire_due();
        change
    }
}

/// A lease the change ended or began, for the schedule and replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseChange {
    /// The lease's token.
    pub token: Box<[u8]>,
    /// Its fence and expiry.
    pub mark: Mark,
    /// Its permits.
    pub permits: u32,
}

/// What a change of a semaphore means outside it.
#[derive(Debug, PartialEq, Eq)]
pub struct SemTransition<W> {
    /// Leases that ended or were renewed: unschedule; replicate the end of
    /// those not in `began` (unless `forget`).
    pub ended: Vec<LeaseChange>,
    /// Leases that began or were renewed: schedule and replicate them.
    pub began: Vec<LeaseChange>,
    /// Requests that were granted, to wake in order.
    pub grants: Vec<Grant<W>>,
    /// Nobody holds or waits: forget the semaphore (delete its key).
    pub forget: bool,
    /// What to add to the counters.
    pub counts: Counts,
}

/// A change in progress; made by [`Semaphore::change`].
#[derive(Debug)]
pub struct SemChange<'a, W> {
    sem: &'a mut Semaphore<W>,
    fences: &'a mut FenceCounter,
    now: u64,
    ended: Vec<LeaseChange>,
    began: Vec<LeaseChange>,
    grants: Vec<Grant<W>>,
    counts: Counts,
}

impl<W> SemChange<'_, W> {
    /// The semaphore, for calls that need no bookkeeping (enqueue).
    pub fn semaphore(&mut self) -> &mut Semaphore<W> {
        self.sem
    }

    fn end(&mut self, token: &[u8]) -> Option<Lease> {
        let lease = self.sem.remove(token)?;
        self.ended.push(LeaseChange {
            token: token.into(),
            mark: lease.mark(),
            permits: lease.permits,
        });
        Some(lease)
    }

    fn begin(&mut self, token: Box<[u8]>, lease: Lease) {
        self.began.push(LeaseChange {
            token: token.clone(),
            mark: lease.mark(),
            permits: lease.permits,
        });
        self.sem.insert(token, lease);
    }

    fn expire_due(&mut self) {
        loop {
            let due = self
                .sem
                .leases
                .earliest()
                .filter(|(_, lease)| lease.expires_at <= self.now)
                .map(|(token, _)| Box::<[u8]>::from(token));
            let Some(token) = due else { break };
            self.end(&token);
            self.counts.expirations += 1;
        }
        self.hand_off();
    }

    /// Grants the queue's head while it fits, in order.
    fn hand_off(&mut self) {
        loop {
            let Some(queue) = self.sem.queue.as_mut() else {
                return;
            };
            let Some(head) = queue.ids().next().and_then(|id| queue.get(id)) else {
                self.sem.queue = None;
                return;
            };
            if self.sem.used + head.payload.permits > self.sem.limit {
                return;
            }
            let id = head.id;
            let Some(waiter) = queue.remove(id) else {
                return;
            };
            if queue.is_empty() {
                self.sem.queue = None;
            }
            let fence = self.fences.issue();
            let expires_at = self.now.saturating_add(waiter.ttl);
            let lease = Lease {
                permits: waiter.payload.permits,
                fence,
                expires_at,
            };
            self.begin(waiter.token, lease);
            self.counts.grants += 1;
            self.grants.push(Grant {
                id,
                payload: waiter.payload.payload,
                fence,
                expires_at,
            });
        }
    }

    /// Takes `permits` of a semaphore of `limit` for `token` for `ttl` ms
    /// when they are free and nobody is queued, or renews the token's lease.
    pub fn acquire(&mut self, token: &[u8], permits: u32, limit: u32, ttl: u64) -> SemAcquire {
        if limit != self.sem.limit && !self.sem.is_idle() {
            return SemAcquire::OtherLimit {
                limit: self.sem.limit,
            };
        }
        if permits == 0 || permits > limit {
            return SemAcquire::TooMany;
        }
        if self
            .sem
            .queue
            .as_ref()
            .is_some_and(|q| q.contains_token(token))
        {
            return SemAcquire::AlreadyWaiting;
        }
        self.sem.limit = limit;
        if let Some(held) = self.sem.lease(token).cloned() {
            if held.permits != permits {
                return SemAcquire::OtherPermits { held: held.permits };
            }
            self.end(token);
            let renewed = Lease {
                expires_at: self.now.saturating_add(ttl),
                ..held
            };
            self.begin(token.into(), renewed);
            return SemAcquire::Renewed { fence: held.fence };
        }
        if self.sem.waiters() > 0 || self.sem.used + permits > self.sem.limit {
            return SemAcquire::Busy;
        }
        let fence = self.fences.issue();
        let lease = Lease {
            permits,
            fence,
            expires_at: self.now.saturating_add(ttl),
        };
        self.begin(token.into(), lease);
        self.counts.grants += 1;
        SemAcquire::Granted { fence }
    }

    /// Releases `token`'s lease; the queue's head takes over while it fits.
    /// True when it held one.
    pub fn release(&mut self, token: &[u8]) -> bool {
        if self.end(token).is_none() {
            return false;
        }
        self.counts.releases += 1;
        self.hand_off();
        true
    }

    /// [`SemChange::release`], or when `token` holds no lease but is queued,
    /// takes it out of the queue (those behind it are granted while they
    /// fit): `token` is left with nothing, leased or queued. Returns
    /// whether it released, and the id of the waiter it took out, whom the
    /// caller answers as not granted.
    pub fn release_or_withdraw(&mut self, token: &[u8]) -> (bool, Option<u64>) {
        if self.release(token) {
            return (true, None);
        }
        let id = self.sem.queue.as_ref().and_then(|q| q.id_of(token));
        let withdrawn = id.and_then(|id| self.sem.remove_waiter(id)).map(|w| w.id);
        if withdrawn.is_some() {
            self.hand_off();
        }
        (false, withdrawn)
    }

    /// Renews `token`'s lease to now + `ttl`; true when it holds one.
    pub fn extend(&mut self, token: &[u8], ttl: u64) -> bool {
        let Some(held) = self.end(token) else {
            return false;
        };
        let renewed = Lease {
            expires_at: self.now.saturating_add(ttl),
            ..held
        };
        self.begin(token.into(), renewed);
        self.counts.extends += 1;
        true
    }

    /// Removes every lease, or `token`'s; the queue's head takes over while
    /// it fits. Returns how many leases were removed.
    pub fn force_release(&mut self, token: Option<&[u8]>) -> usize {
        let tokens: Vec<Box<[u8]>> = match token {
            Some(t) if self.sem.leases.get(t).is_some() => vec![t.into()],
            Some(_) => Vec::new(),
            None => self.sem.leases.iter().map(|(t, _)| t.into()).collect(),
        };
        for token in &tokens {
            self.end(token);
        }
        self.counts.force_releases += tokens.len() as u64;
        self.hand_off();
        tokens.len()
    }

    /// Grants what fits after a request left the queue (its removal may
    /// let the ones behind it through).
    pub fn settle_queue(&mut self) {
        self.hand_off();
    }

    /// Ends the change. A grant whose waiter is gone (`alive` says no) is
    /// taken back, and the queue's head is granted while it fits.
    pub fn finish(mut self, alive: impl Fn(&Grant<W>) -> bool) -> SemTransition<W> {
        while let Some(i) = self.grants.iter().position(|g| !alive(g)) {
            let ghost = self.grants.remove(i);
            self.counts.grants -= 1;
            let token = self
                .sem
                .leases
                .iter()
                .find(|(_, l)| l.fence == ghost.fence)
                .map(|(t, _)| Box::<[u8]>::from(t));
            if let Some(token) = token {
                self.end(&token);
                // It never was: not a lease that began.
                self.began.retain(|b| b.mark.fence != ghost.fence);
                self.ended.retain(|e| e.mark.fence != ghost.fence);
            }
            self.hand_off();
        }
        SemTransition {
            ended: self.ended,
            began: self.began,
            grants: self.grants,
            forget: self.sem.is_idle(),
            counts: self.counts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: u64, token: &str, permits: u32) -> Waiter<Request<u64>> {
        Waiter {
            id,
            token: token.as_bytes().into(),
            ttl: 100,
            meta: None,
            payload: Request {
                permits,
                payload: id,
            },
        }
    }

    fn ids(t: &SemTransition<u64>) -> Vec<u64> {
        t.grants.iter().map(|g| g.id).collect()
    }

    #[test]
    fn grants_while_permits_are_free_and_renews_with_the_same_fence() {
        let (mut sem, mut fences) = (Semaphore::<u64>::new(3), FenceCounter::default());
        let mut c = sem.change(0, &mut fences);
        assert_eq!(c.acquire(b"a", 2, 3, 100), SemAcquire::Granted { fence: 1 });
        assert_eq!(c.acquire(b"b", 1, 3, 100), SemAcquire::Granted { fence: 2 });
        assert_eq!(c.acquire(b"c", 1, 3, 100), SemAcquire::Busy);
        assert_eq!(c.acquire(b"a", 2, 3, 500), SemAcquire::Renewed { fence: 1 });
        assert_eq!(
            c.acquire(b"a", 1, 3, 500),
            SemAcquire::OtherPermits { held: 2 }
        );
        assert_eq!(
            c.acquire(b"d", 1, 4, 100),
            SemAcquire::OtherLimit { limit: 3 }
        );
        assert_eq!(c.acquire(b"e", 4, 3, 100), SemAcquire::TooMany);
        let t = c.finish(|_| true);
        assert_eq!(t.counts.grants, 2);
        assert_eq!(sem.used(), 3);
        assert_eq!(sem.lease(b"a").map(|l| l.expires_at), Some(500));
    }

    #[test]
    fn strict_fifo_no_small_request_overtakes_a_large_one() {
        let (mut sem, mut fences) = (Semaphore::new(3), FenceCounter::default());
        let mut c = sem.change(0, &mut fences);
        c.acquire(b"a", 2, 3, 100);
        c.semaphore().enqueue(req(1, "big", 3)).unwrap();
        // One permit is free, but `big` is queued first.
        assert_eq!(c.acquire(b"small", 1, 3, 100), SemAcquire::Busy);
        c.semaphore().enqueue(req(2, "small", 1)).unwrap();
        assert!(c.release(b"a"));
        let t = c.finish(|_| true);
        assert_eq!(ids(&t), vec![1], "big first; small waits behind it");
        assert_eq!(sem.used(), 3);
        let mut c = sem.change(1, &mut fences);
        assert!(c.release(b"big"));
        assert_eq!(ids(&c.finish(|_| true)), vec![2]);
    }

    /// A RELEASE by a queued token takes it out of the queue, and the
    /// request behind it that now fits is granted in the same change.
    #[test]
    fn a_release_by_a_queued_token_withdraws_it_and_lets_the_next_through() {
        let (mut sem, mut fences) = (Semaphore::new(3), FenceCounter::default());
        let mut c = sem.change(0, &mut fences);
        c.acquire(b"a", 2, 3, 100);
        c.semaphore().enqueue(req(1, "big", 3)).unwrap();
        c.semaphore().enqueue(req(2, "small", 1)).unwrap();
        assert_eq!(c.release_or_withdraw(b"big"), (false, Some(1)));
        assert_eq!(c.release_or_withdraw(b"big"), (false, None));
        let t = c.finish(|_| true);
        assert_eq!(ids(&t), vec![2], "small fits once big is gone");
        assert_eq!(sem.used(), 3);
        let mut c = sem.change(1, &mut fences);
        assert_eq!(c.release_or_withdraw(b"small"), (true, None));
        c.finish(|_| true);
        assert_eq!(sem.used(), 2);
    }

    #[test]
    fn a_release_grants_every_head_that_fits_in_order() {
        let (mut sem, mut fences) = (Semaphore::new(4), FenceCounter::default());
        let mut c = sem.change(0, &mut fences);
        c.acquire(b"a", 4, 4, 100);
        for (id, t, p) in [(1, "w1", 1), (2, "w2", 2), (3, "w3", 1), (4, "w4", 1)] {
            c.semaphore().enqueue(req(id, t, p)).unwrap();
        }
        c.release(b"a");
        let t = c.finish(|_| true);
        assert_eq!(ids(&t), vec![1, 2, 3], "w4 does not fit yet");
        let fences: Vec<u64> = t.grants.iter().map(|g| g.fence).collect();
        assert!(fences.windows(2).all(|w| w[1] > w[0]));
        assert_eq!(t.began.len(), 4, "a's lease and three grants");
        assert_eq!(t.ended.len(), 1);
    }

    #[test]
    fn leases_expire_each_at_its_own_time_and_hand_on() {
        let (mut sem, mut fences) = (Semaphore::new(2), FenceCounter::default());
        let mut c = sem.change(0, &mut fences);
        c.acquire(b"a", 1, 2, 10);
        c.acquire(b"b", 1, 2, 20);
        c.semaphore().enqueue(req(1, "w", 2)).unwrap();
        c.finish(|_| true);
        let t = sem.change(15, &mut fences).finish(|_| true);
        assert_eq!(t.counts.expirations, 1);
        assert!(t.grants.is_empty(), "b still holds one of the two");
        assert_eq!(sem.next_expiry(), Some(20), "b's lease is the next due");
        let t = sem.change(20, &mut fences).finish(|_| true);
        assert_eq!((t.counts.expirations, ids(&t)), (1, vec![1]));
        assert_eq!(sem.lease(b"w").map(|l| l.expires_at), Some(120));
    }

    #[test]
    fn force_release_of_all_or_one_and_ghost_grants_pass_on() {
        let (mut sem, mut fences) = (Semaphore::new(2), FenceCounter::default());
        let mut c = sem.change(0, &mut fences);
        c.acquire(b"a", 1, 2, 100);
        c.acquire(b"b", 1, 2, 100);
        c.semaphore().enqueue(req(1, "ghost", 1)).unwrap();
        c.semaphore().enqueue(req(2, "w", 1)).unwrap();
        assert_eq!(c.force_release(Some(b"a")), 1);
        let t = c.finish(|g| g.id != 1);
        assert_eq!(ids(&t), vec![2], "the ghost's grant passed to w");
        assert!(sem.lease(b"ghost").is_none());
        let mut c = sem.change(1, &mut fences);
        assert_eq!(c.force_release(None), 2);
        let t = c.finish(|_| true);
        assert!(t.forget);
        assert_eq!(t.counts.force_releases, 2);
    }

    #[test]
    fn a_removed_waiter_lets_the_next_through_when_it_fits() {
        let (mut sem, mut fences) = (Semaphore::new(2), FenceCounter::default());
        let mut c = sem.change(0, &mut fences);
        c.acquire(b"a", 1, 2, 100);
        c.semaphore().enqueue(req(1, "big", 2)).unwrap();
        c.semaphore().enqueue(req(2, "small", 1)).unwrap();
        assert!(c.semaphore().remove_waiter(1).is_some());
        c.settle_queue();
        assert_eq!(ids(&c.finish(|_| true)), vec![2]);
    }

    #[test]
    fn a_refused_call_changes_nothing() {
        let (mut sem, mut fences) = (Semaphore::<u64>::new(1), FenceCounter::default());
        sem.change(0, &mut fences).acquire(b"a", 1, 1, 100);
        let mut c = sem.change(1, &mut fences);
        assert_eq!(c.acquire(b"b", 1, 1, 100), SemAcquire::Busy);
        assert!(!c.release(b"b"));
        assert!(!c.extend(b"b", 100));
        assert_eq!(c.force_release(Some(b"b")), 0);
        let t = c.finish(|_| true);
        assert!(t.began.is_empty() && t.ended.is_empty() && t.grants.is_empty());
        assert_eq!(t.counts, Counts::default());
    }
}
