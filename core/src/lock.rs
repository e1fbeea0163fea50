//! One lock: its holder, its FIFO wait queue, and every transition.
//!
//! The rules, each enforced here and nowhere else:
//! - at most one holder;
//! - every grant takes a new fence from the node's [`FenceCounter`];
//! - when the holder goes (release, expiry, force-release) the head of the
//!   queue becomes the holder in the same call, so no newcomer can barge in;
//! - a newcomer never overtakes a waiter;
//! - a call that is refused changes nothing.
//!
//! Callers run [`Lock::expire_due`] before any other call, so that an expired
//! holder is never treated as live.

use crate::fence::FenceCounter;
use crate::queue::{AlreadyWaiting, WaitQueue, Waiter};

/// The party that holds the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The holder's token; only it can release or extend.
    pub token: Box<[u8]>,
    /// The fence issued with the grant.
    pub fence: u64,
    /// Absolute expiry, unix ms.
    pub expires_at: u64,
    /// A value stored with the holder (`META`, 0 to 1024 bytes), e.g. a
    /// leader's address.
    pub meta: Option<Box<[u8]>>,
}

impl Holder {
    /// True once `now` reaches the expiry.
    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.expires_at
    }

    /// Milliseconds left, 0 once expired.
    pub fn pttl(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }
}

/// The outcome of [`Lock::acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
    /// The lock was free: granted with a new fence.
    Granted { fence: u64 },
    /// The token already held the lock: expiry reset, same fence.
    Renewed { fence: u64 },
    /// Someone else holds the lock or waits ahead.
    Busy,
    /// The token is already in the queue.
    AlreadyWaiting,
}

/// Why [`Lock::enqueue`] refused a waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueue {
    /// The token is already in the queue.
    AlreadyWaiting,
    /// Nobody holds the lock: acquire it instead.
    Free,
    /// The token holds the lock: acquire renews it instead.
    Holds,
}

/// A waiter that became the holder.
#[derive(Debug, PartialEq, Eq)]
pub struct Grant<W> {
    /// The waiter's id.
    pub id: u64,
    /// The waiter's handle, to wake it with `fence`.
    pub payload: W,
    /// The fence of the grant.
    pub fence: u64,
    /// Absolute expiry of the grant, unix ms.
    pub expires_at: u64,
}

/// A holder that [`Lock::expire_due`] expired, and the waiter that took
/// over.
#[derive(Debug, PartialEq, Eq)]
pub struct Expired<W> {
    /// The expired holder's fence.
    pub fence: u64,
    /// The waiter that now holds the lock.
    pub handoff: Option<Grant<W>>,
}

/// The outcome of [`Lock::release`] and [`Lock::force_release`].
#[derive(Debug, PartialEq, Eq)]
pub enum Release<W> {
    /// Nothing was released: the token does not hold the lock (or, for a
    /// force-release, nobody did).
    NotHolder,
    /// The holder is gone; `handoff` is the waiter that now holds the lock.
    Released { handoff: Option<Grant<W>> },
}

/// A lock and its wait queue.
#[derive(Debug)]
pub struct Lock<W> {
    holder: Option<Holder>,
    // Boxed and optional: most locks never see a waiter, and an empty queue
    // would cost three words of maps in every held lock.
    queue: Option<Box<WaitQueue<W>>>,
}

impl<W> Default for Lock<W> {
    fn default() -> Self {
        Self {
            holder: None,
            queue: None,
        }
    }
}

impl<W> Lock<W> {
    /// A free lock.
    pub fn new() -> Self {
        Self::default()
    }

    /// A lock held by `holder` (after a load, or from replication); raises
    /// `fences` to the holder's fence.
    pub fn held_by(holder: Holder, fences: &mut FenceCounter) -> Self {
        fences.observe(holder.fence);
        Self {
            holder: Some(holder),
            queue: None,
        }
    }

    /// The holder, if any (expired or not: see [`Lock::expire_due`]).
    pub fn holder(&self) -> Option<&Holder> {
        self.holder.as_ref()
    }

    /// The wait queue, if anyone ever waited since it last emptied.
    pub fn queue(&self) -> Option<&WaitQueue<W>> {
        self.queue.as_deref()
    }

    /// Number of waiters.
    pub fn waiters(&self) -> usize {
        self.queue.as_ref().map_or(0, |queue| queue.len())
    }

    /// True when nobody holds or waits: the lock can be forgotten.
    pub fn is_idle(&self) -> bool {
        self.holder.is_none() && self.waiters() == 0
    }

    /// Sets the holder as the primary decided it (replication, AOF). Waiters
    /// are left alone; `fences` rises to the holder's fence.
    pub fn apply(&mut self, holder: Holder, fences: &mut FenceCounter) {
        fences.observe(holder.fence);
        self.holder = Some(holder);
    }

    /// Takes the lock for `token` when it is free and nobody waits, or renews
    /// it when `token` already holds it. `meta` is stored with a new holder;
    /// a renewal replaces the holder's when it is given.
    pub fn acquire(
        &mut self,
        token: &[u8],
        ttl: u64,
        meta: Option<&[u8]>,
        now: u64,
        fences: &mut FenceCounter,
    ) -> Acquire {
        if self.queue.as_ref().is_some_and(|q| q.contains_token(token)) {
            return Acquire::AlreadyWaiting;
        }
        let waiting = self.waiters();
        match &mut self.holder {
            Some(holder) if *holder.token == *token => {
                holder.expires_at = now.saturating_add(ttl);
                if let Some(meta) = meta {
                    holder.meta = Some(meta.into());
                }
                Acquire::Renewed {
                    fence: holder.fence,
                }
            }
            Some(_) => Acquire::Busy,
            None if waiting > 0 => Acquire::Busy,
            None => {
                let fence = fences.issue();
                self.holder = Some(Holder {
                    token: token.into(),
                    fence,
                    expires_at: now.saturating_add(ttl),
                    meta: meta.map(Into::into),
                });
                Acquire::Granted { fence }
            }
        }
    }

    /// Queues a waiter behind the others. Refused, with nothing changed, when
    /// its token is already queued, or when an acquire is what the caller
    /// wants: the lock is free (a free lock with waiters would invite barging)
    /// or the token holds it.
    pub fn enqueue(&mut self, waiter: Waiter<W>) -> Result<(), Enqueue> {
        match &self.holder {
            None => return Err(Enqueue::Free),
            Some(holder) if holder.token == waiter.token => return Err(Enqueue::Holds),
            Some(_) => {}
        }
        let queue = self.queue.get_or_insert_with(Default::default);
        let pushed = queue
            .push(waiter)
            .map_err(|AlreadyWaiting| Enqueue::AlreadyWaiting);
        if queue.is_empty() {
            self.queue = None;
        }
        pushed
    }

    /// Removes a waiter (timeout, disconnect). It is never granted afterwards.
    pub fn remove_waiter(&mut self, id: u64) -> Option<Waiter<W>> {
        let queue = self.queue.as_mut()?;
        let waiter = queue.remove(id);
        if queue.is_empty() {
            self.queue = None;
        }
        waiter
    }

    /// Removes the waiter queued with `token`, if any (a withdrawal by
    /// RELEASE). It is never granted afterwards.
    pub fn remove_waiter_by_token(&mut self, token: &[u8]) -> Option<Waiter<W>> {
        let id = self.queue.as_ref()?.id_of(token)?;
        self.remove_waiter(id)
    }

    /// Removes every waiter, in arrival order, and leaves the holder alone.
    pub fn drain_waiters(&mut self) -> Vec<Waiter<W>> {
        self.queue.take().map_or_else(Vec::new, |mut q| q.drain())
    }

    /// Releases the lock if `token` holds it; the head waiter takes over.
    pub fn release(&mut self, token: &[u8], now: u64, fences: &mut FenceCounter) -> Release<W> {
        match &self.holder {
            Some(holder) if *holder.token == *token => self.vacate(now, fences),
            _ => Release::NotHolder,
        }
    }

    /// Resets the expiry to `now + ttl` if `token` holds the lock; returns the
    /// holder's fence.
    pub fn extend(&mut self, token: &[u8], ttl: u64, now: u64) -> Option<u64> {
        self.extend_with(token, ttl, None, now)
    }

    /// [`Lock::extend`] that also replaces the holder's value when `meta`
    /// is given (`LOCK.EXTEND ... META v`): never a grant, so a value can
    /// change only under the fence that stored the first one.
    pub fn extend_with(
        &mut self,
        token: &[u8],
        ttl: u64,
        meta: Option<&[u8]>,
        now: u64,
    ) -> Option<u64> {
        let holder = self.holder.as_mut().filter(|h| *h.token == *token)?;
        holder.expires_at = now.saturating_add(ttl);
        if let Some(meta) = meta {
            holder.meta = Some(meta.into());
        }
        Some(holder.fence)
    }

    /// Removes the holder, whoever it is; the head waiter takes over.
    pub fn force_release(&mut self, now: u64, fences: &mut FenceCounter) -> Release<W> {
        if self.holder.is_some() {
            self.vacate(now, fences)
        } else {
            Release::NotHolder
        }
    }

    /// Expires the holder if its time has come; the head waiter takes over.
    pub fn expire_due(&mut self, now: u64, fences: &mut FenceCounter) -> Option<Expired<W>> {
        let fence = self.holder.as_ref().filter(|h| h.is_expired(now))?.fence;
        match self.vacate(now, fences) {
            Release::Released { handoff } => Some(Expired { fence, handoff }),
            Release::NotHolder => None,
        }
    }

    fn vacate(&mut self, now: u64, fences: &mut FenceCounter) -> Release<W> {
        self.holder = None;
        Release::Released {
            handoff: self.hand_off(now, fences),
        }
    }

    fn hand_off(&mut self, now: u64, fences: &mut FenceCounter) -> Option<Grant<W>> {
        let queue = self.queue.as_mut()?;
        let waiter = queue.pop_front();
        if queue.is_empty() {
            self.queue = None;
        }
        let waiter = waiter?;
        let fence = fences.issue();
        let expires_at = now.saturating_add(waiter.ttl);
        self.holder = Some(Holder {
            token: waiter.token,
            fence,
            expires_at,
            meta: waiter.meta,
        });
        Some(Grant {
            id: waiter.id,
            payload: waiter.payload,
            fence,
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(id: u64, token: &str, ttl: u64) -> Waiter<&'static str> {
        Waiter {
            id,
            token: token.as_bytes().into(),
            ttl,
            meta: None,
            payload: "wake",
        }
    }

    #[test]
    fn grants_a_free_lock_and_refuses_the_next() {
        let (mut lock, mut fences) = (Lock::<()>::new(), FenceCounter::default());
        assert_eq!(
            lock.acquire(b"a", 100, None, 0, &mut fences),
            Acquire::Granted { fence: 1 }
        );
        assert_eq!(lock.acquire(b"b", 100, None, 0, &mut fences), Acquire::Busy);
        assert_eq!(lock.holder().map(|h| h.expires_at), Some(100));
    }

    #[test]
    fn retry_by_the_holder_renews_with_the_same_fence() {
        let (mut lock, mut fences) = (Lock::<()>::new(), FenceCounter::default());
        lock.acquire(b"a", 100, None, 0, &mut fences);
        assert_eq!(
            lock.acquire(b"a", 500, None, 50, &mut fences),
            Acquire::Renewed { fence: 1 }
        );
        assert_eq!(lock.holder().map(|h| h.expires_at), Some(550));
    }

    #[test]
    fn release_hands_off_to_the_head_waiter() {
        let (mut lock, mut fences) = (Lock::new(), FenceCounter::default());
        lock.acquire(b"a", 100, None, 0, &mut fences);
        lock.enqueue(waiter(7, "b", 300)).unwrap();
        lock.enqueue(waiter(8, "c", 300)).unwrap();
        assert_eq!(lock.release(b"x", 10, &mut fences), Release::NotHolder);
        let Release::Released {
            handoff: Some(grant),
        } = lock.release(b"a", 10, &mut fences)
        else {
            panic!("expected a hand-off");
        };
        assert_eq!((grant.id, grant.fence, grant.expires_at), (7, 2, 310));
        assert_eq!(&*lock.holder().unwrap().token, b"b");
        assert_eq!(lock.waiters(), 1);
    }

    #[test]
    fn a_newcomer_never_overtakes_a_waiter() {
        let (mut lock, mut fences) = (Lock::new(), FenceCounter::default());
        lock.acquire(b"a", 100, None, 0, &mut fences);
        lock.enqueue(waiter(1, "b", 100)).unwrap();
        lock.release(b"a", 1, &mut fences);
        assert_eq!(lock.acquire(b"c", 100, None, 1, &mut fences), Acquire::Busy);
    }

    #[test]
    fn expiry_hands_off_and_reports_the_old_fence() {
        let (mut lock, mut fences) = (Lock::new(), FenceCounter::default());
        lock.acquire(b"a", 100, None, 0, &mut fences);
        lock.enqueue(waiter(1, "b", 100)).unwrap();
        assert!(lock.expire_due(99, &mut fences).is_none());
        let expired = lock.expire_due(100, &mut fences).unwrap();
        assert_eq!(
            (expired.fence, expired.handoff.map(|g| g.fence)),
            (1, Some(2))
        );
    }

    #[test]
    fn a_queued_token_cannot_acquire_or_queue_again() {
        let (mut lock, mut fences) = (Lock::new(), FenceCounter::default());
        lock.acquire(b"a", 100, None, 0, &mut fences);
        lock.enqueue(waiter(1, "b", 100)).unwrap();
        assert_eq!(
            lock.acquire(b"b", 100, None, 0, &mut fences),
            Acquire::AlreadyWaiting
        );
        assert_eq!(
            lock.enqueue(waiter(2, "b", 100)),
            Err(Enqueue::AlreadyWaiting)
        );
    }

    #[test]
    fn a_free_lock_takes_no_waiters() {
        let mut lock = Lock::new();
        assert_eq!(lock.enqueue(waiter(1, "b", 100)), Err(Enqueue::Free));
        assert!(lock.is_idle());
    }

    #[test]
    fn a_removed_waiter_is_never_granted() {
        let (mut lock, mut fences) = (Lock::new(), FenceCounter::default());
        lock.acquire(b"a", 100, None, 0, &mut fences);
        lock.enqueue(waiter(1, "b", 100)).unwrap();
        assert!(lock.remove_waiter(1).is_some());
        assert_eq!(
            lock.force_release(5, &mut fences),
            Release::Released { handoff: None }
        );
        assert!(lock.is_idle());
    }
}
