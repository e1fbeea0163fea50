//! Node-wide state: the fence counter, the expiry schedule, the blocked
//! waiters and the holders of evicted locks. It lives on Redis' main thread,
//! where every command, timer and callback that touches it runs.
//!
//! `free` of a lock value may run on a lazy-free thread (FLUSHALL ASYNC), so it
//! never touches this state.

use crate::ffi;
use crate::lock_type::LockValue;
use crate::sem_type::SemValue;
use baton_core::{
    Change, ExpirySchedule, FenceCounter, Holder, Lease, SemChange, SemTransition, Transition,
};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

/// Where a lock lives: database and key name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyRef {
    pub db: i32,
    pub key: Box<[u8]>,
}

/// What eviction took from a key, kept until it expires.
#[derive(Debug, Clone)]
pub enum Evicted {
    /// A lock's holder.
    Lock(Holder),
    /// A semaphore's limit and leases.
    Sem {
        limit: u32,
        leases: Vec<(Box<[u8]>, Lease)>,
    },
}

/// Whether a waiter queued for a lock or a semaphore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Lock,
    Sem,
}

/// A blocked waiter: how to wake it and the lock it queued for.
#[derive(Debug)]
pub struct Waiting {
    /// Its blocked-client handle.
    pub bc: ffi::BlockedClient,
    /// When its wait ends, on [`ffi::monotonic_us`]'s clock; from then on it is
    /// never granted, even before `waiting`'s slices answer it.
    pub deadline: u64,
    pub lock: KeyRef,
    pub kind: Kind,
}

/// The module's state on this node.
#[derive(Debug, Default)]
pub struct Node {
    fences: FenceCounter,
    pub schedule: ExpirySchedule<KeyRef>,
    /// The expiry timer in flight: (deadline it was armed for, timer id).
    pub armed: Option<(u64, u64)>,
    /// True while the expiry timer runs a batch: it re-arms itself at the end,
    /// so nothing else may arm one meanwhile.
    pub expiring: bool,
    /// Blocked waiters by waiter id. A grant names its waiter by id, never
    /// by handle: Redis reuses the addresses of freed handles.
    pub waiting: HashMap<u64, Waiting>,
    /// Waiter id by blocked-client address, for the callbacks that only know
    /// the handle (disconnect, CLIENT UNBLOCK). An address is in here exactly
    /// while its client is blocked by us, so it is never stale.
    pub waiter_of: HashMap<ffi::BlockedClient, u64>,
    /// Every waiter's `(deadline, id)`, earliest first: one module timer for
    /// all of them (see `waiting`), not one each.
    pub wait_deadlines: BTreeSet<(u64, u64)>,
    /// The waiters' timeout timer in flight: (µs it was armed for, timer id).
    pub wait_timer: Option<(u64, u64)>,
    pub next_waiter_id: u64,
    /// What eviction took from held locks and semaphores, until it
    /// expires: the next command on the key puts it back (see `external`).
    pub evicted: HashMap<KeyRef, Evicted>,
    /// What the last key removal took from the keyspace, for the `evicted`
    /// event that may follow it.
    pub unlinked: Option<(KeyRef, Evicted)>,
    /// Semaphores whose queue may let a request through (one left while
    /// writes were paused): the expiry timer settles them.
    pub unsettled: Vec<KeyRef>,
}

impl Node {
    /// The fence counter, its clock floor brought up to now.
    pub fn fences(&mut self) -> &mut FenceCounter {
        self.fences.tick(ffi::now_us());
        &mut self.fences
    }

    /// Runs `act` as one change of `lock` at `now` (core's driver: the
    /// lazy expiry first, the fence counter floored by the clock) and
    /// finishes it: a grant whose waiter no longer waits passes on.
    pub fn change<R>(
        &mut self,
        lock: &mut LockValue,
        now: u64,
        act: impl FnOnce(&mut Change<'_, ()>) -> R,
    ) -> (R, Transition<()>) {
        self.fences.tick(ffi::now_us());
        let mut change = lock.change(now, &mut self.fences);
        let reply = act(&mut change);
        let (waiting, mono) = (&self.waiting, ffi::monotonic_us());
        (
            reply,
            change.finish(|grant| still_waits(waiting, grant.id, mono)),
        )
    }

    /// As [`Node::change`], for a semaphore.
    pub fn change_sem<R>(
        &mut self,
        sem: &mut SemValue,
        now: u64,
        act: impl FnOnce(&mut SemChange<'_, ()>) -> R,
    ) -> (R, SemTransition<()>) {
        self.fences.tick(ffi::now_us());
        let mut change = sem.change(now, &mut self.fences);
        let reply = act(&mut change);
        let (waiting, mono) = (&self.waiting, ffi::monotonic_us());
        (
            reply,
            change.finish(|grant| still_waits(waiting, grant.id, mono)),
        )
    }

    /// True when a fence from outside (RDB, RESTORE, replication) is in
    /// range (see `FenceCounter::accepts`).
    pub fn accepts_fence(&mut self, fence: u64) -> bool {
        self.fences().accepts(fence)
    }
}

/// True when waiter `id` is blocked and its deadline is still ahead at
/// `mono`: a waiter whose deadline passed is not granted, though its null
/// reply may come a little later (timeouts are answered in slices).
fn still_waits(waiting: &HashMap<u64, Waiting>, id: u64, mono: u64) -> bool {
    waiting.get(&id).is_some_and(|w| w.deadline > mono)
}

thread_local! {
    static NODE: RefCell<Node> = RefCell::new(Node::default());
}

/// Runs `f` on the node state. Callers never call back into Redis in a way
/// that re-enters the module while inside `f`.
pub fn with<R>(f: impl FnOnce(&mut Node) -> R) -> R {
    NODE.with(|node| f(&mut node.borrow_mut()))
}
