//! The pool of multiplexed connections for short commands: a manager that
//! recycles without a round trip, and the errors that break a connection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use deadpool::managed;
use redis::aio::ConnectionLike;
use redis::{RedisError, Value};

use super::sentinel::SentinelManager;

/// Creates connections with deadpool-redis's manager (`M`) and recycles
/// them without a round trip.
///
/// deadpool-redis pings (`UNWATCH` + `PING`) on every checkout: one more
/// round trip per command. A multiplexed connection (single node or
/// cluster) needs no such check: it is shared (see [`Conns::get`]), never
/// left inside a `WATCH`/`MULTI` (only short commands run on it), and a
/// connection whose command failed with a connection error is marked
/// ([`Pooled::broken`]), which makes its next recycle fail, so the pool
/// drops it and opens another.
pub(super) struct NoPing<M> {
    pub(super) manager: M,
    /// Sentinel mode: a timeout or `READONLY` also breaks a connection, so
    /// that the next one goes to the primary the Sentinels name then.
    pub(super) follows_primary: bool,
}

impl<M> std::fmt::Debug for NoPing<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NoPing")
    }
}

impl<M> managed::Manager for NoPing<M>
where
    M: managed::Manager + Send + Sync,
    M::Type: Clone,
{
    type Type = Pooled<M::Type>;
    type Error = M::Error;

    async fn create(&self) -> std::result::Result<Self::Type, Self::Error> {
        Ok(Pooled {
            conn: self.manager.create().await?,
            broken: Arc::default(),
            follows_primary: self.follows_primary,
        })
    }

    async fn recycle(
        &self,
        conn: &mut Self::Type,
        _: &managed::Metrics,
    ) -> managed::RecycleResult<Self::Error> {
        if conn.broken.load(Ordering::Acquire) {
            return Err(managed::RecycleError::message(
                "a command failed with a connection error",
            ));
        }
        Ok(())
    }
}

/// A multiplexed connection of the pool and whether it is known broken.
#[derive(Clone)]
pub(crate) struct Pooled<C> {
    pub(super) conn: C,
    /// Set when a command on it failed with a connection error: the pool
    /// drops it at its next checkout.
    pub(super) broken: Arc<AtomicBool>,
    /// See [`NoPing::follows_primary`].
    pub(super) follows_primary: bool,
}

/// Marks `broken` when `e` says its connection cannot serve again (see
/// [`NoPing::follows_primary`]).
fn note(broken: &AtomicBool, follows_primary: bool, e: &RedisError) {
    if is_connection_error(e) || (follows_primary && is_stale_primary(e)) {
        broken.store(true, Ordering::Release);
    }
}

pub(super) type SinglePool = managed::Pool<NoPing<deadpool_redis::Manager>>;
pub(super) type SentinelPool = managed::Pool<NoPing<SentinelManager>>;
pub(super) type ClusterPool = managed::Pool<NoPing<ClusterManager>>;

/// Opens cluster connections from the seed's settings (user, password,
/// TLS) and, unlike deadpool-redis's cluster manager, with the CA given to
/// the builder: `ClusterClientBuilder::certs` is the only way to hand one
/// to the cluster client. Recycling is [`NoPing`]'s.
pub(super) struct ClusterManager(redis::cluster::ClusterClient);

impl ClusterManager {
    pub(super) fn new(seed: redis::ConnectionInfo, ca: Option<&[u8]>) -> redis::RedisResult<Self> {
        #[allow(unused_mut)]
        let mut builder = redis::cluster::ClusterClientBuilder::new(vec![seed]);
        #[cfg(feature = "tls")]
        if let Some(ca) = ca {
            builder = builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.to_vec()),
            });
        }
        #[cfg(not(feature = "tls"))]
        let _ = ca;
        Ok(Self(builder.build()?))
    }
}

impl managed::Manager for ClusterManager {
    type Type = redis::cluster_async::ClusterConnection;
    type Error = RedisError;

    async fn create(&self) -> std::result::Result<Self::Type, Self::Error> {
        self.0.get_async_connection().await
    }

    async fn recycle(
        &self,
        _: &mut Self::Type,
        _: &managed::Metrics,
    ) -> managed::RecycleResult<Self::Error> {
        Ok(())
    }
}

#[derive(Clone)]
pub(super) enum Pool {
    Single(SinglePool),
    Sentinel(SentinelPool),
    Cluster(ClusterPool),
}

/// A connection for short commands: a clone of a pooled multiplexed
/// connection (single node, or a cluster connection), shared with other
/// concurrent commands, which it pipelines with. Clones share the socket:
/// commands sent on them run in the order sent.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(Pooled<redis::aio::MultiplexedConnection>),
    Cluster(Pooled<redis::cluster_async::ClusterConnection>),
}

/// True when `e` means the connection it came from cannot be used again. A
/// response timeout does not: a multiplexed connection matches a late
/// reply to its (abandoned) request.
pub(crate) fn is_connection_error(e: &RedisError) -> bool {
    e.is_unrecoverable_error() || e.is_connection_dropped() || (e.is_io_error() && !e.is_timeout())
}

/// True when `e` suggests the node is no longer (or not yet reachable as)
/// the primary: a timeout (frozen, partitioned), `READONLY` (demoted),
/// `MASTERDOWN` or `LOADING`.
pub(crate) fn is_stale_primary(e: &RedisError) -> bool {
    e.is_timeout() || matches!(e.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
}

/// Notes how `fut` failed (see [`note`]).
pub(super) fn watch_errors<'a, T: Send + 'a>(
    fut: redis::RedisFuture<'a, T>,
    broken: &'a AtomicBool,
    follows_primary: bool,
) -> redis::RedisFuture<'a, T> {
    Box::pin(async move {
        let reply = fut.await;
        if let Err(e) = &reply {
            note(broken, follows_primary, e);
        }
        reply
    })
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Conn::Single(Pooled {
                conn,
                broken,
                follows_primary,
            }) => watch_errors(conn.req_packed_command(cmd), broken, *follows_primary),
            Conn::Cluster(Pooled {
                conn,
                broken,
                follows_primary,
            }) => watch_errors(conn.req_packed_command(cmd), broken, *follows_primary),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(Pooled {
                conn,
                broken,
                follows_primary,
            }) => watch_errors(
                conn.req_packed_commands(cmd, offset, count),
                broken,
                *follows_primary,
            ),
            Conn::Cluster(Pooled {
                conn,
                broken,
                follows_primary,
            }) => watch_errors(
                conn.req_packed_commands(cmd, offset, count),
                broken,
                *follows_primary,
            ),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.conn.get_db(),
            Conn::Cluster(c) => c.conn.get_db(),
        }
    }
}

/// A pool of `manager`'s connections, with deadpool-redis's default size.
pub(super) fn build_pool<M>(
    manager: NoPing<M>,
) -> std::result::Result<managed::Pool<NoPing<M>>, managed::BuildError>
where
    M: managed::Manager + Send + Sync,
    M::Type: Clone,
{
    managed::Pool::builder(manager)
        .config(deadpool_redis::PoolConfig::default())
        .runtime(deadpool_redis::Runtime::Tokio1)
        .build()
}
