//! baton-benches: how fast and how fair baton is, next to Redlock and to what
//! Redis itself allows, measured on one machine in one run.
//!
//! The `baton-bench` binary (`src/bin/baton-bench.rs`) starts its own Redis
//! servers, measures the module against raw Redis ([`scale`], with
//! `redis-benchmark`), runs the workloads against every contender, prints
//! the tables and writes `docs/BENCHMARKS.md` and `docs/benchmarks.json`:
//!
//! ```text
//! cargo build --release -p baton-module
//! cargo run --release -p baton-benches --bin baton-bench -- [--quick] [--out docs]
//! ```
//!
//! `cargo xtask bench [--quick]` installs the etcd contender's dependencies,
//! builds it with the `etcd` feature and runs it.
//!
//! `benches/cycle.rs` holds the criterion micro-benches (one acquire+release
//! cycle per backend: `cargo bench -p baton-benches`).
//!
//! # Layout
//!
//! - [`setup`]: the servers of a run (through `baton_harness`), which module
//!   build they load, the machine description.
//! - [`contenders`]: [`Contender`](contenders::Contender): baton's backends,
//!   Redlock (`rslock`) and the raw `SET NX PX` baseline behind one enum.
//! - [`workloads`]: uncontended cycles, one contended key, hand-off latency,
//!   the bus (Streams publish and consume), a semaphore's fairness, a
//!   read-write lock against a mutex, hand-off with a long queue, many
//!   waiters over many locks,
//!   and the [`Plan`](workloads::Plan) of durations.
//! - `etcd` (feature `etcd`, which `cargo xtask bench` turns on): an etcd
//!   server of the run's own and its lock service, the etcd contender.
//! - [`stats`]: HDR latency histograms, Jain's fairness index, order
//!   violations.
//! - [`report`]: the goals (met / missed), the Markdown tables, the JSON.
//! - [`scale`]: the module against raw Redis on a server of its own:
//!   redis-benchmark throughput (locks, semaphores), memory per lock and
//!   lease, the stall while many locks expire at once; their goals and
//!   report section (submodules `throughput`, `memory`, `stall`, `load`).
//! - [`demo`]: the short contended side-by-side of `cargo xtask demo`
//!   (`baton-bench --demo SECS`).

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod contenders;
pub mod demo;
pub mod durable;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod report;
pub mod scale;
pub mod setup;
pub mod stats;
pub mod workloads;
