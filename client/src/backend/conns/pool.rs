//! The shared multiplexed connection for short commands: how it is
//! (re)opened, and the errors that break it.
//!
//! One multiplexed connection (single node, Sentinel primary, or a cluster
//! connection) serves every short command of a client: a checkout
//! ([`Shared::get`]) clones it under a short lock, with no round trip and
//! no await, and concurrent commands pipeline on its socket, as they do on
//! the one connection a plain `redis` user shares. A command that fails
//! with a connection error marks it broken ([`Pooled::broken`]); the next
//! checkout opens another, one attempt at a time, whose outcome every
//! checkout that waited for it shares (so a node that is down is not asked
//! once per waiting task).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use deadpool::managed;
use redis::aio::ConnectionLike;
use redis::{RedisError, RedisResult, Value};

use super::sentinel::SentinelManager;

/// Opens connections with `M` (deadpool-redis's manager for one node, or
/// ours for Sentinel and Cluster: only their `create` is used) and wraps
/// them with their broken flag.
pub(super) struct Opener<M> {
    pub(super) manager: M,
    /// Sentinel mode: a timeout or `READONLY` also breaks a connection, so
    /// that the next one goes to the primary the Sentinels name then.
    pub(super) follows_primary: bool,
}

impl<M> std::fmt::Debug for Opener<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opener")
    }
}

impl<M> Opener<M>
where
    M: managed::Manager<Error = RedisError> + Send + Sync,
    M::Type: Clone,
{
    async fn create(&self) -> RedisResult<Pooled<M::Type>> {
        Ok(Pooled {
            conn: self.manager.create().await?,
            broken: Arc::default(),
            follows_primary: self.follows_primary,
        })
    }
}

/// What a [`Shared`] holds under its lock.
struct State<C> {
    /// The connection, once one was opened (it may be broken since).
    conn: Option<Pooled<C>>,
    /// Connection attempts that ended, and how the last one failed (`None`
    /// when it succeeded): a checkout that waited behind an attempt takes
    /// its outcome instead of making one more.
    attempts: u64,
    failure: Option<RedisError>,
}

/// The one multiplexed connection of a client's short commands, opened on
/// first use and again after it broke.
pub(super) struct Shared<M: managed::Manager> {
    opener: Opener<M>,
    state: Mutex<State<M::Type>>,
    /// Held while a connection is being opened: one attempt at a time.
    connecting: tokio::sync::Mutex<()>,
}

impl<M: managed::Manager> std::fmt::Debug for Shared<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Shared")
            .field("connected", &s.conn.as_ref().is_some_and(Pooled::live))
            .field("attempts", &s.attempts)
            .finish()
    }
}

impl<M> Shared<M>
where
    M: managed::Manager<Error = RedisError> + Send + Sync,
    M::Type: Clone + Send,
{
    pub(super) fn new(opener: Opener<M>) -> Self {
        Self {
            opener,
            state: Mutex::new(State {
                conn: None,
                attempts: 0,
                failure: None,
            }),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    /// The live connection, or the number of attempts ended so far.
    fn live(&self) -> Result<Pooled<M::Type>, u64> {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match &s.conn {
            Some(c) if c.live() => Ok(c.clone()),
            _ => Err(s.attempts),
        }
    }

    /// A clone of the connection: at once when it is live, else after one
    /// connection attempt (boxed: it is rare, and its future is large, so
    /// that every caller's future stays small).
    pub(super) async fn get(&self) -> RedisResult<Pooled<M::Type>> {
        match self.live() {
            Ok(conn) => Ok(conn),
            Err(seen) => self.reconnect(seen).await,
        }
    }

    /// [`Shared::connect`], boxed and type-erased: its future (the
    /// connect's) is large and deep, and a caller that held it inline
    /// would copy it at every await, and make rustc's layout queries of
    /// every future above it overflow their depth limit.
    #[inline(never)]
    fn reconnect(&self, seen: u64) -> redis::RedisFuture<'_, Pooled<M::Type>> {
        Box::pin(self.connect(seen))
    }

    /// Opens a new connection, unless another checkout did while this one
    /// waited (`seen`: the attempts ended when it started): then that
    /// attempt's outcome is this one's too.
    async fn connect(&self, seen: u64) -> RedisResult<Pooled<M::Type>> {
        let _one_at_a_time = self.connecting.lock().await;
        {
            let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            match (&s.conn, &s.failure) {
                (Some(c), _) if c.live() => return Ok(c.clone()),
                (_, Some(e)) if s.attempts != seen => return Err(e.clone()),
                _ => {}
            }
        }
        let made = self.opener.create().await;
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.attempts += 1;
        match made {
            Ok(conn) => {
                s.conn = Some(conn.clone());
                s.failure = None;
                Ok(conn)
            }
            Err(e) => {
                s.failure = Some(e.clone());
                Err(e)
            }
        }
    }
}

/// A multiplexed connection and whether it is known broken.
#[derive(Clone)]
pub(crate) struct Pooled<C> {
    pub(super) conn: C,
    /// Set when a command on it failed with a connection error: the next
    /// checkout opens another.
    pub(super) broken: Arc<AtomicBool>,
    /// See [`Opener::follows_primary`].
    pub(super) follows_primary: bool,
}

impl<C> Pooled<C> {
    /// Not known broken.
    fn live(&self) -> bool {
        !self.broken.load(Ordering::Acquire)
    }
}

/// Marks `broken` when `e` says its connection cannot serve again (see
/// [`Opener::follows_primary`]).
fn note(broken: &AtomicBool, follows_primary: bool, e: &RedisError) {
    if is_connection_error(e) || (follows_primary && is_stale_primary(e)) {
        broken.store(true, Ordering::Release);
    }
}

/// Opens cluster connections from the seed's settings (user, password,
/// TLS) and, unlike deadpool-redis's cluster manager, with the CA given to
/// the builder: `ClusterClientBuilder::certs` is the only way to hand one
/// to the cluster client.
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

/// The shared connection of one node, a Sentinel primary or a cluster.
#[derive(Clone, Debug)]
pub(super) enum Pool {
    Single(Arc<Shared<deadpool_redis::Manager>>),
    Sentinel(Arc<Shared<SentinelManager>>),
    Cluster(Arc<Shared<ClusterManager>>),
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

impl Conn {
    /// `cmd`'s reply as `T`, as `cmd.query_async(self)` gives it, without
    /// the two boxed futures per command of the `ConnectionLike` path on a
    /// single node (this one's and the redis crate's): on the hot path
    /// (acquire, release, extend) those allocations were a measurable part
    /// of a cycle. A cluster connection goes the `ConnectionLike` way.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
    ) -> RedisResult<T> {
        let value = match self {
            Conn::Single(Pooled {
                conn,
                broken,
                follows_primary,
            }) => {
                let reply = conn.send_packed_command(cmd).await;
                if let Err(e) = &reply {
                    note(broken, *follows_primary, e);
                }
                reply?
            }
            Conn::Cluster(_) => self.req_packed_command(cmd).await?,
        };
        Ok(redis::from_redis_value(value.extract_error()?)?)
    }
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
