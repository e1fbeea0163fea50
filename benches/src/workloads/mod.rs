//! The workloads of the load generator, each in its own module, and the
//! [`Plan`] that says how long each one runs.
//!
//! - [`uncontended`]: acquire+release cycles, every task on its own key.
//! - [`contended`]: many tasks on one key, holding for a while, for a fixed
//!   time; records `(arrival, grant, release)` of every acquisition.
//! - [`handoff`]: release-to-next-grant latency, derived from the contended
//!   records.
//! - [`bus`]: publish and work-queue consume on `baton_client::bus`.
//! - [`semaphore`]: many tasks on one semaphore (throughput, Jain, FIFO
//!   order by fence).
//! - [`rwlock`]: readers and a writer on one read-write lock, against a
//!   mutex driven by as many tasks.
//! - [`queue`]: hand-off latency with 10 and 10,000 waiters queued on one
//!   semaphore, and the many-waiter server.
//! - [`waiters`]: 10,000 waiters over 1,000 locks: memory per waiter,
//!   hand-off, and the event-loop stall when they all time out at once.
//!
//! Scale of locks (1M locks, memory per lock, expiry stalls) lives in
//! `cargo xtask bench`; scale of waiters is [`waiters`].

use std::time::Duration;

use serde::Serialize;

use crate::contenders::GRACE;

pub mod bus;
pub mod contended;
pub mod handoff;
pub mod queue;
pub mod rwlock;
pub mod semaphore;
pub mod uncontended;
pub mod waiters;

/// Joins a run's tasks, each given until `end` + 2 x [`GRACE`]; a task
/// still running then (hung in a call) is aborted and counted. A task's
/// error is the run's. Returns how many were cut off.
pub(crate) async fn join_by_deadline(
    handles: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    end: tokio::time::Instant,
) -> anyhow::Result<u64> {
    let mut stuck = 0;
    for h in handles {
        let abort = h.abort_handle();
        match tokio::time::timeout_at(end + 2 * GRACE, h).await {
            Ok(joined) => joined??,
            Err(_) => {
                abort.abort();
                stuck += 1;
            }
        }
    }
    Ok(stuck)
}

/// Durations and shapes of one benchmark run.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Whether this is the `--quick` smoke plan.
    pub quick: bool,
    /// Not measured, at the start of every run.
    pub warmup: Duration,
    /// Measured time of one uncontended run.
    pub uncontended: Duration,
    /// Measured time of one contended run.
    pub contended: Duration,
    /// Concurrent tasks of the uncontended runs.
    pub uncontended_tasks: Vec<usize>,
    /// `(tasks, hold)` of the contended runs.
    pub contended_shapes: Vec<(usize, Duration)>,
    /// `(tasks, limit, hold)` of the semaphore fairness runs (each task
    /// takes 1 permit), measured for `contended`.
    pub semaphore: (usize, u32, Duration),
    /// `(readers, hold)` of the read-write lock run (one writer), measured
    /// for `contended`, and the mutex baseline with `readers + 1` tasks.
    pub rwlock: (usize, Duration),
    /// Queue lengths of the long-queue hand-off runs, measured for
    /// `queue`.
    pub queue_waiters: Vec<usize>,
    /// Measured time of one long-queue run.
    pub queue: Duration,
    /// `(keys, waiters)` of the many-waiter run, whose hand-off phase runs
    /// for `queue`.
    pub waiters: (usize, usize),
}

impl Plan {
    /// The full plan: about 7 minutes with all contenders.
    pub fn full() -> Self {
        Self {
            quick: false,
            warmup: Duration::from_millis(1000),
            uncontended: Duration::from_secs(8),
            contended: Duration::from_secs(10),
            queue: Duration::from_secs(6),
            ..Self::quick()
        }
    }

    /// The smoke plan: about 2 minutes.
    pub fn quick() -> Self {
        Self {
            quick: true,
            warmup: Duration::from_millis(300),
            uncontended: Duration::from_secs(2),
            contended: Duration::from_secs(3),
            uncontended_tasks: vec![1, 64],
            contended_shapes: vec![
                (8, Duration::ZERO),
                (8, Duration::from_millis(1)),
                (64, Duration::ZERO),
                (64, Duration::from_millis(1)),
            ],
            semaphore: (64, 8, Duration::from_millis(1)),
            rwlock: (8, Duration::from_millis(1)),
            queue_waiters: vec![10, 10_000],
            queue: Duration::from_secs(3),
            waiters: (1_000, 10_000),
        }
    }
}
