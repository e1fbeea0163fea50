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
