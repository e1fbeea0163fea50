//! The workloads of the load generator, each in its own module, and the
//! [`Plan`] that says how long each one runs.
//!
//! - [`uncontended`]: acquire+release cycles, every task on its own key.
//! - [`contended`]: many tasks on one key, holding for a while, for a fixed
//!   time; records `(arrival, grant, release)` of every acquisition.
//! - [`handoff`]: release-to-next-grant latency, derived from the contended
//!   records.
//! - [`bus`]: publish and work-queue consume on `baton_client::bus`.
//!
//! Scale (1M locks, memory per lock, expiry stalls) lives in `cargo xtask
//! bench`, not here.

use std::time::Duration;

use serde::Serialize;

pub mod bus;
pub mod contended;
pub mod handoff;
pub mod uncontended;

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
}

impl Plan {
    /// The full plan: about 7 minutes with all contenders.
    pub fn full() -> Self {
        Self {
            quick: false,
            warmup: Duration::from_millis(1000),
            uncontended: Duration::from_secs(8),
            contended: Duration::from_secs(10),
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
        }
    }
}
