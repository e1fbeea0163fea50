//! Node-wide counters for `LOCK.STATS` and `INFO baton`.
//!
//! Atomics, because a lock value may be freed off the main thread (lazy free)
//! and the free callback keeps `locks` and `held` right.

use baton_core::wire::STATS_FIELDS;
use std::sync::atomic::{AtomicI64, Ordering};

/// One counter.
pub struct Counter(AtomicI64);

impl Counter {
    const fn new() -> Self {
        Self(AtomicI64::new(0))
    }

    pub fn incr(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn decr(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn add(&self, n: u64) {
        if n > 0 {
            self.0
                .fetch_add(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
        }
    }

    pub fn sub(&self, n: u64) {
        if n > 0 {
            self.0
                .fetch_sub(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
        }
    }

    /// The value, never below zero.
    pub fn get(&self) -> u64 {
        u64::try_from(self.0.load(Ordering::Relaxed)).unwrap_or(0)
    }
}

pub static LOCKS: Counter = Counter::new();
pub static HELD: Counter = Counter::new();
pub static WAITERS: Counter = Counter::new();
pub static GRANTS: Counter = Counter::new();
pub static RELEASES: Counter = Counter::new();
pub static EXTENDS: Counter = Counter::new();
pub static EXPIRATIONS: Counter = Counter::new();
pub static WAIT_TIMEOUTS: Counter = Counter::new();
pub static FORCE_RELEASES: Counter = Counter::new();

pub static SEMAPHORES: Counter = Counter::new();
pub static LEASES: Counter = Counter::new();
pub static SEM_GRANTS: Counter = Counter::new();
pub static SEM_RELEASES: Counter = Counter::new();
pub static SEM_EXTENDS: Counter = Counter::new();
pub static SEM_EXPIRATIONS: Counter = Counter::new();
pub static SEM_FORCE_RELEASES: Counter = Counter::new();

/// Adds what one change counted.
pub fn count(counts: &baton_core::Counts) {
    for (counter, n) in [
        (&GRANTS, counts.grants),
        (&RELEASES, counts.releases),
        (&EXTENDS, counts.extends),
        (&EXPIRATIONS, counts.expirations),
        (&FORCE_RELEASES, counts.force_releases),
    ] {
        counter.add(n);
    }
}

/// Adds what one change of a semaphore counted.
pub fn count_sem(counts: &baton_core::Counts) {
    for (counter, n) in [
        (&SEM_GRANTS, counts.grants),
        (&SEM_RELEASES, counts.releases),
        (&SEM_EXTENDS, counts.extends),
        (&SEM_EXPIRATIONS, counts.expirations),
        (&SEM_FORCE_RELEASES, counts.force_releases),
    ] {
        counter.add(n);
    }
}

/// The semaphore counters by name, as `INFO baton` shows them after the
/// lock counters (`LOCK.STATS` is about locks; `waiters` there counts every
/// blocked client, of locks and semaphores).
pub fn sem_all() -> [(&'static str, u64); 7] {
    [
        ("semaphores", SEMAPHORES.get()),
        ("leases", LEASES.get()),
        ("sem_grants", SEM_GRANTS.get()),
        ("sem_releases", SEM_RELEASES.get()),
        ("sem_extends", SEM_EXTENDS.get()),
        ("sem_expirations", SEM_EXPIRATIONS.get()),
        ("sem_force_releases", SEM_FORCE_RELEASES.get()),
    ]
}

/// Every counter by name, in the order `LOCK.STATS` replies them.
pub fn all() -> [(&'static str, u64); 9] {
    let counters = [
        &LOCKS,
        &HELD,
        &WAITERS,
        &GRANTS,
        &RELEASES,
        &EXTENDS,
        &EXPIRATIONS,
        &WAIT_TIMEOUTS,
        &FORCE_RELEASES,
    ];
    std::array::from_fn(|i| (STATS_FIELDS[i], counters[i].get()))
}
