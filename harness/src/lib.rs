//! Test harness for baton: starts real `redis-server` processes with the baton
//! module loaded (single node, replicas, a small Cluster) and gives tests typed
//! helpers for the `LOCK.*` commands.
//!
//! The module's integration tests (`module/tests/`) use it, and so do the
//! client's and the CLI's tests, the xtask demo and the benches. A missing
//! `redis-server` or module is a loud panic, never a skip: a test that did
//! not run must not look like a test that passed.
//!
//! # Layout
//!
//! - [`paths`]: where the module and `redis-server` are ([`module_path()`],
//!   [`redis_server_bin`]).
//! - [`server`]: [`RedisServer`], one child process on a free loopback port in
//!   a temp dir, killed in `Drop`; [`ServerBuilder`] for persistence, replicas,
//!   TLS, `requirepass` and extra config; ACL users; clean and crash restarts.
//! - [`tls`]: [`Certificates`], a CA and a server certificate made with
//!   `openssl` at test time.
//! - [`replication`]: wait for a replica to catch up, promote it.
//! - [`cluster`]: [`RedisCluster`], n primaries with every slot assigned,
//!   and replicas added to them.
//! - [`sentinel`]: [`SentinelGroup`], a primary and replicas under three
//!   Sentinels.
//! - [`dump`]: DUMP payloads of lock keys, crafted and checksummed, for
//!   RESTORE tests.
//! - [`lock`]: typed wrappers for the `LOCK.*` commands, [`LockInfo`],
//!   [`Stats`] and exact error texts.
//! - [`resp`]: a raw RESP2 connection that reads replies byte for byte, for
//!   tests that must see exactly what the server framed.
//! - [`waiter`]: a blocked `LOCK.ACQUIRE ... WAIT` on its own thread and
//!   connection, for queue tests.
//! - [`poll`]: [`wait_until`], polling a condition with a deadline instead of
//!   sleeping and hoping.
//! - `port`: [`free_port`], a loopback port that was free a moment ago (for
//!   extra listeners such as `tls-port`).

pub mod cluster;
pub mod dump;
pub mod lock;
pub mod paths;
pub mod poll;
mod port;
pub mod replication;
pub mod resp;
pub mod sentinel;
pub mod server;
pub mod tls;
pub mod waiter;

pub use cluster::RedisCluster;
pub use lock::{err_text, LockInfo, Stats};
pub use paths::{module_path, redis_server_bin};
pub use poll::{assert_eventually, wait_until};
pub use port::free_port;
pub use replication::{promote, wait_for_sync};
pub use sentinel::SentinelGroup;
pub use server::{RedisServer, ServerBuilder, CLUSTER_NODE_TIMEOUT};
pub use tls::Certificates;
pub use waiter::Waiter;
