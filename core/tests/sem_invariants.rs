//! Property tests of the semaphore over random sequences of calls: the
//! permits held never exceed the limit and always equal the leases' sum;
//! requests are granted in arrival order and only while they fit; the head
//! of the queue never waits while it fits; fences strictly increase; a
//! removed request is never granted; a refused call changes nothing; a
//! newcomer is granted only when nobody is queued and it fits; a retry by
//! a holder renews with its fence (another permit count is refused); an
//! acquire naming another limit while anyone holds or waits is refused.

use baton_core::{FenceCounter, Request, SemAcquire, Semaphore, Waiter};
use proptest::prelude::*;
use std::collections::VecDeque;

const LIMIT: u32 = 5;

#[derive(Debug, Clone)]
enum Op {
    Acquire {
        token: u8,
        permits: u32,
        ttl: u64,
    },
    /// An acquire naming another limit (only sent while someone holds or
    /// waits: an idle semaphore takes the new limit, which the model keeps
    /// fixed).
    OtherLimit {
        token: u8,
    },
    Enqueue {
        token: u8,
        permits: u32,
    },
    RemoveWaiter {
        nth: usize,
    },
    Release {
        token: u8,
    },
    Extend {
        token: u8,
        ttl: u64,
    },
    ForceRelease {
        token: Option<u8>,
    },
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let token = 0u8..6;
    let permits = 1u32..=LIMIT;
    let ttl = 1u64..50;
    prop_oneof![
        (token.clone(), permits.clone(), ttl.clone()).prop_map(|(token, permits, ttl)| {
            Op::Acquire {
                token,
                permits,
                ttl,
            }
        }),
        (token.clone(), permits).prop_map(|(token, permits)| Op::Enqueue { token, permits }),
        token.clone().prop_map(|token| Op::OtherLimit { token }),
        (0usize..6).prop_map(|nth| Op::RemoveWaiter { nth }),
        token.clone().prop_map(|token| Op::Release { token }),
        (token.clone(), ttl).prop_map(|(token, ttl)| Op::Extend { token, ttl }),
        proptest::option::of(token).prop_map(|token| Op::ForceRelease { token }),
        (0u64..60).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// A lease as (token, permits, fence, expiry).
type LeaseRow = (Vec<u8>, u32, u64, u64);

/// What the semaphore looks like from outside.
fn snapshot(sem: &Semaphore<u64>) -> (u32, Vec<LeaseRow>, usize) {
    let mut leases: Vec<_> = sem
        .leases()
        .map(|(t, l)| (t.to_vec(), l.permits, l.fence, l.expires_at))
        .collect();
    leases.sort();
    (sem.used(), leases, sem.waiters())
}

struct Model {
    sem: Semaphore<u64>,
    fences: FenceCounter,
    now: u64,
    next_id: u64,
    /// Queued requests in arrival order: (id, permits).
    arrivals: VecDeque<(u64, u32)>,
    removed: Vec<u64>,
    last_fence: u64,
}

impl Model {
    fn check_fence(&mut self, fence: u64) {
        assert!(
            fence > self.last_fence,
            "fence {fence} after {}",
            self.last_fence
        );
        self.last_fence = fence;
    }

    fn check_invariants(&self) {
        let sum: u32 = self.sem.leases().map(|(_, l)| l.permits).sum();
        assert_eq!(self.sem.used(), sum, "used is not the sum of the leases");
        assert!(
            self.sem.used() <= LIMIT,
            "{} permits held of {LIMIT}",
            self.sem.used()
        );
        if let Some(&(_, permits)) = self.arrivals.front() {
            assert!(
                self.sem.used() + permits > LIMIT,
                "the head waits although it fits"
            );
        }
        assert_eq!(self.sem.waiters(), self.arrivals.len());
    }

    fn run(&mut self, op: Op) {
        let before = snapshot(&self.sem);
        let mut change = self.sem.change(self.now, &mut self.fences);
        let refused = match op {
            Op::Acquire {
                token,
                permits,
                ttl,
            } => {
                // What the change sees once due leases have expired.
                let sem = change.semaphore();
                let held = sem.lease(&[token]).cloned();
                let (queued, used) = (sem.waiters() > 0, sem.used());
                let reply = change.acquire(&[token], permits, LIMIT, ttl);
                match (&held, reply) {
                    (Some(l), SemAcquire::Renewed { fence }) => {
                        assert_eq!((fence, permits), (l.fence, l.permits), "a renewal");
                    }
                    (Some(l), SemAcquire::OtherPermits { held }) => {
                        assert!(held == l.permits && permits != l.permits);
                    }
                    (None, SemAcquire::Granted { .. }) => {
                        assert!(!queued, "granted past a queued request");
                        assert!(used + permits <= LIMIT, "granted beyond the limit");
                    }
                    (None, SemAcquire::Busy) => {
                        assert!(queued || used + permits > LIMIT, "refused although it fits");
                    }
                    (_, SemAcquire::AlreadyWaiting) => {}
                    (held, reply) => panic!("{reply:?} for a token holding {held:?}"),
                }
                !matches!(
                    reply,
                    SemAcquire::Granted { .. } | SemAcquire::Renewed { .. }
                )
            }
            Op::OtherLimit { token } => {
                if change.semaphore().is_idle() {
                    true
                } else {
                    let reply = change.acquire(&[token], 1, LIMIT + 1, 10);
                    assert_eq!(reply, SemAcquire::OtherLimit { limit: LIMIT });
                    true
                }
            }
            Op::Enqueue { token, permits } => {
                self.next_id += 1;
                let waiter = Waiter {
                    id: self.next_id,
                    token: vec![token].into(),
                    ttl: 30,
                    meta: None,
                    payload: Request {
                        permits,
                        payload: self.next_id,
                    },
                };
                // Only a request that could not be granted may queue.
                let fits = change.semaphore().waiters() == 0
                    && change.semaphore().used() + permits <= LIMIT;
                let queued = !fits && change.semaphore().enqueue(waiter).is_ok();
                if queued {
                    self.arrivals.push_back((self.next_id, permits));
                }
                !queued
            }
            Op::RemoveWaiter { nth } => {
                let id = self.arrivals.get(nth).map(|(id, _)| *id);
                match id.and_then(|id| change.semaphore().remove_waiter(id)) {
                    Some(w) => {
                        self.arrivals.retain(|(id, _)| *id != w.id);
                        self.removed.push(w.id);
                        change.settle_queue();
                        false
                    }
                    None => true,
                }
            }
            Op::Release { token } => !change.release(&[token]),
            Op::Extend { token, ttl } => !change.extend(&[token], ttl),
            Op::ForceRelease { token } => {
                let t = token.map(|t| vec![t]);
                change.force_release(t.as_deref()) == 0
            }
            Op::Advance { ms } => {
                self.now += ms;
                true
            }
        };
        let t = change.finish(|_| true);
        for grant in &t.grants {
            let head = self.arrivals.pop_front().map(|(id, _)| id);
            assert_eq!(Some(grant.id), head, "granted out of arrival order");
            assert!(
                !self.removed.contains(&grant.id),
                "a removed request was granted"
            );
            self.check_fence(grant.fence);
        }
        for lease in &t.began {
            if !t.ended.iter().any(|e| e.mark.fence == lease.mark.fence)
                && lease.mark.fence > self.last_fence
            {
                self.check_fence(lease.mark.fence);
            }
        }
        let expired_or_granted = t.counts.expirations > 0 || !t.grants.is_empty();
        if refused && !expired_or_granted {
            assert_eq!(
                snapshot(&self.sem),
                before,
                "a refused {op:?} changed the semaphore"
            );
        }
        self.check_invariants();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn invariants_hold_for_any_sequence(ops in proptest::collection::vec(op(), 1..80)) {
        let mut model = Model {
            sem: Semaphore::new(LIMIT),
            fences: FenceCounter::default(),
            now: 0,
            next_id: 0,
            arrivals: VecDeque::new(),
            removed: Vec::new(),
            last_fence: 0,
        };
        for op in ops {
            model.run(op);
        }
    }
}
