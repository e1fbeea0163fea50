//! Property tests of the lock invariants over random sequences of calls:
//! at most one holder, fences strictly increase, waiters are granted in
//! arrival order, a removed waiter is never granted, a refused call changes
//! nothing.

use baton_core::{Acquire, FenceCounter, Grant, Lock, Release, Waiter};
use proptest::prelude::*;
use std::collections::VecDeque;

#[derive(Debug, Clone)]
enum Op {
    Acquire { token: u8, ttl: u64 },
    Enqueue { token: u8, ttl: u64 },
    RemoveWaiter { nth: usize },
    Release { token: u8 },
    Extend { token: u8, ttl: u64 },
    ForceRelease,
    Advance { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    let token = 0u8..5;
    let ttl = 1u64..50;
    prop_oneof![
        (token.clone(), ttl.clone()).prop_map(|(token, ttl)| Op::Acquire { token, ttl }),
        (token.clone(), ttl.clone()).prop_map(|(token, ttl)| Op::Enqueue { token, ttl }),
        (0usize..6).prop_map(|nth| Op::RemoveWaiter { nth }),
        token.clone().prop_map(|token| Op::Release { token }),
        (token, ttl).prop_map(|(token, ttl)| Op::Extend { token, ttl }),
        Just(Op::ForceRelease),
        (0u64..60).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// What the lock looks like from outside: compared before and after a call
/// that was refused.
fn snapshot(lock: &Lock<u64>) -> (Option<baton_core::Holder>, Vec<u64>) {
    let ids = lock.queue().map(|q| q.ids().collect()).unwrap_or_default();
    (lock.holder().cloned(), ids)
}

struct Model {
    lock: Lock<u64>,
    fences: FenceCounter,
    now: u64,
    next_id: u64,
    /// Arrival order of the waiters still queued.
    arrivals: VecDeque<u64>,
    removed: Vec<u64>,
    last_fence: u64,
}

impl Model {
    fn check_grant(&mut self, grant: Option<Grant<u64>>) {
        let Some(grant) = grant else { return };
        let head = self.arrivals.pop_front();
        assert_eq!(Some(grant.id), head, "granted out of arrival order");
        assert_eq!(grant.payload, grant.id);
        assert!(
            !self.removed.contains(&grant.id),
            "a removed waiter was granted"
        );
        self.check_fence(grant.fence);
    }

    fn check_fence(&mut self, fence: u64) {
        assert!(
            fence > self.last_fence,
            "fence {fence} after {}",
            self.last_fence
        );
        self.last_fence = fence;
    }

    fn run(&mut self, op: Op) {
        // Callers expire first; so does the model.
        if let Some(expired) = self.lock.expire_due(self.now, &mut self.fences) {
            self.check_grant(expired.handoff);
        }
        let before = snapshot(&self.lock);
        let now = self.now;
        let refused = match op {
            Op::Acquire { token, ttl } => {
                match self
                    .lock
                    .acquire(&[token], ttl, None, now, &mut self.fences)
                {
                    Acquire::Granted { fence } => {
                        assert!(before.0.is_none() && before.1.is_empty(), "barged");
                        self.check_fence(fence);
                        false
                    }
                    Acquire::Renewed { fence } => {
                        assert_eq!(before.0.as_ref().map(|h| h.fence), Some(fence));
                        false
                    }
                    Acquire::Busy | Acquire::AlreadyWaiting => true,
                }
            }
            Op::Enqueue { token, ttl } => {
                let id = self.next_id;
                self.next_id += 1;
                let waiter = Waiter {
                    id,
                    token: vec![token].into(),
                    ttl,
                    meta: None,
                    payload: id,
                };
                match self.lock.enqueue(waiter) {
                    Ok(()) => {
                        self.arrivals.push_back(id);
                        false
                    }
                    Err(_) => true,
                }
            }
            Op::RemoveWaiter { nth } => match self.arrivals.get(nth).copied() {
                Some(id) => {
                    assert_eq!(self.lock.remove_waiter(id).map(|w| w.id), Some(id));
                    self.arrivals.retain(|&other| other != id);
                    self.removed.push(id);
                    false
                }
                None => self.lock.remove_waiter(u64::MAX).is_none(),
            },
            Op::Release { token } => match self.lock.release(&[token], now, &mut self.fences) {
                Release::Released { handoff } => {
                    self.check_grant(handoff);
                    false
                }
                Release::NotHolder => true,
            },
            Op::Extend { token, ttl } => self.lock.extend(&[token], ttl, now).is_none(),
            Op::ForceRelease => match self.lock.force_release(now, &mut self.fences) {
                Release::Released { handoff } => {
                    self.check_grant(handoff);
                    false
                }
                Release::NotHolder => true,
            },
            Op::Advance { ms } => {
                self.now += ms;
                false
            }
        };
        if refused {
            assert_eq!(
                snapshot(&self.lock),
                before,
                "a refused call changed the lock"
            );
        }
        self.check_shape();
    }

    fn check_shape(&self) {
        let (holder, ids) = snapshot(&self.lock);
        assert_eq!(ids, Vec::from(self.arrivals.clone()), "queue order drifted");
        if let Some(holder) = holder {
            let queue = self.lock.queue();
            assert!(
                !queue.is_some_and(|q| q.contains_token(&holder.token)),
                "the holder is also queued"
            );
        } else {
            // Free with waiters would let a newcomer barge in.
            assert!(ids.is_empty(), "free lock with waiters");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold_for_any_sequence(ops in proptest::collection::vec(op(), 1..120)) {
        let mut model = Model {
            lock: Lock::new(),
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
