//! baton-client: take distributed locks held in Redis.
//!
//! ```no_run
//! use std::time::Duration;
//! use baton_client::{Backend, Client, LockOptions};
//!
//! # async fn demo() -> baton_client::Result<()> {
//! let client = Client::builder("redis://127.0.0.1:6379")
//!     .backend(Backend::Auto)
//!     .build()
//!     .await?;
//! let opts = LockOptions::new()
//!     .ttl(Duration::from_secs(10))
//!     .wait(Duration::from_secs(5));
//! let guard = client.lock("orders:42", &opts).await?;
//! println!("holding orders:42 with fence {}", guard.fence());
//! tokio::select! {
//!     _ = guard.lost() => eprintln!("lost the lock: stop writing"),
//!     _ = tokio::time::sleep(Duration::from_secs(1)) => {}
//! }
//! guard.release().await?;
//!
//! let total = client
//!     .with_lock("orders:42", &opts, async |guard| guard.fence() * 2)
//!     .await?;
//! # let _ = total;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - [`client`](Client): [`Client`], its builder, backend choice, the lock
//!   calls (`lock`, `try_lock`, `with_lock`, `force_release`, `stats`), the
//!   `semaphore` and `rwlock` handles, and the one acquire path that locks
//!   and leases share.
//! - `semaphore`: [`Semaphore`] (leases of permits: `acquire`,
//!   `try_acquire`, `info`, `force_release`) and [`RwLock`] (a semaphore of
//!   [`RW_LIMIT`] permits: `read`, `write`, their `try_` forms) with its
//!   [`ReadGuard`] and [`WriteGuard`].
//! - `election`: leader election on a lock ([`Client::campaign`],
//!   [`Client::leader`], [`Client::observe`]): the [`Leadership`] guard
//!   (term = fence, `proclaim` = `LOCK.EXTEND ... META`, `resign`) and the
//!   [`Observer`] of changes.
//! - `guard`: [`LockGuard`] and [`SemGuard`], one machinery under both:
//!   fence, its proven validity, extend (one at a time per guard), release,
//!   the lost signal, the release in the background on drop.
//! - `watchdog`: the task that extends a held lock or lease every ttl/3 and
//!   fires the lost signal.
//! - [`options`]: the [`LockOptions`] builder.
//! - [`error`]: the [`Error`] enum and the [`Result`] alias.
//! - `backend`: [`Backend`] and the three implementations: `module`
//!   (`LOCK.*`, `SEM.*`), `lua` (the scripts of `lua/` and `lua/sem/`,
//!   pub/sub wake-ups) and `memory` (`baton-core`'s drivers in-process); `backend::conns`: connections to
//!   one node, a Sentinel-monitored primary or a Redis Cluster (`pool`: the
//!   shared multiplexed connections and the errors that break one; `node`:
//!   a node's wait connections and their idle cache; `cluster`: slot table,
//!   `MOVED`/`ASK`, detection; `sentinel`: `redis+sentinel://` URLs and
//!   following a promotion).
//! - [`bus`]: the message bus on Redis Streams ([`Bus`]: publish,
//!   broadcast subscribe, consumer-group work queue, dead letters) and its
//!   in-memory twin; see its own layout.
//! - `scripts`: the embedded Lua scripts (locks, semaphores and bus), their
//!   SHA-1, the one EVALSHA-with-NOSCRIPT-fallback, the Lua key layout.
//! - `examples/demo/`: the client part of `cargo xtask demo`, every claim
//!   checked (`cargo run -p baton-client --example demo -- REDIS_URL`).
//!
//! # Lua backend key layout
//!
//! For a lock `k` the Lua scripts use `baton:{k}` (holder hash),
//! `baton:{k}:q` (FIFO queue), `baton:{k}:w` (queue entries' leases and ttls),
//! `baton:{k}:c` (fence and arrival counters, never expires) and the pub/sub
//! channel `baton:{k}:ch`. Braces and `%` in `k` are escaped (`%7B`, `%7D`,
//! `%25`) so the whole name is the hash tag and all keys of one lock share a
//! slot. The counter key stays after the lock is freed (a few dozen bytes per
//! lock name ever used). Fences (and arrival numbers) are `max(last + 1,
//! the server clock in µs)`, so they keep increasing even when the counter
//! key is lost (`DEL`, `FLUSHALL`, eviction), unless the server's clock
//! goes back.
//!
//! A semaphore `k` uses `baton:sem:{k}` (limit, permits used, last fence,
//! and each lease's permits, fence and expiry), `baton:sem:{k}:e` (leases
//! by expiry), `baton:sem:{k}:q` and `baton:sem:{k}:w` (the FIFO queue of
//! requests with their permits and queue leases), `baton:sem:{k}:c`
//! (counters, never expires) and the channel `baton:sem:{k}:ch`: one hash
//! tag, and never a lock's keys (those begin `baton:{`), so a lock and a
//! semaphore of the same name are apart (on the module they are one Redis
//! key, and the second gets `WRONGTYPE`).
//!
//! # Redis Cluster
//!
//! One seed URL is enough: by default the client asks it (`INFO cluster`,
//! `cluster_enabled:1`) and, on a cluster, discovers the other nodes;
//! [`ClientBuilder::cluster`] forces either mode. Short commands go through a
//! pool of cluster connections that route each command by its key (the lock
//! key, or for Lua the first of the lock's keys, which share one slot).
//! Server-side waits (`LOCK.ACQUIRE .. WAIT`, durable `WAIT`) run on a
//! connection of their own to the node that serves the key, following
//! `MOVED`/`ASK` redirects; a cancelled wait is withdrawn by a RELEASE of its
//! token. Lua hand-off messages use classic `PUBLISH`, which the cluster
//! forwards to every node, so one subscriber connection hears them all. Scripts are
//! reloaded per node on `NOSCRIPT`. [`Client::stats`] sums the module's
//! `LOCK.STATS` over every primary; [`Backend::Auto`] picks the module only
//! when every primary has it loaded.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_code)]

mod backend;
#[cfg(feature = "bus")]
pub mod bus;
mod client;
mod election;
pub mod error;
mod guard;
pub mod options;
mod scripts;
mod semaphore;
mod watchdog;

pub use backend::{Backend, BackendKind, LockInfo, SemInfo, Stats};
#[cfg(feature = "bus")]
pub use bus::Bus;
pub use client::{Client, ClientBuilder};
pub use election::{Leader, Leadership, Observer};
pub use error::{Error, Result};
pub use guard::{LockGuard, SemGuard};
pub use options::{Durable, LockOptions, DEFAULT_WAIT, MAX_DURATION, MAX_META_LEN};
pub use semaphore::{ReadGuard, RwLock, Semaphore, WriteGuard, RW_LIMIT};
pub use watchdog::MIN_PERIOD;

/// The README's Rust examples, compiled as doctests so that they keep up
/// with the API.
#[cfg(all(doctest, feature = "bus"))]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;
