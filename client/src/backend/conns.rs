//! Connections to Redis: one node, or a Redis Cluster found from one seed.
//!
//! - Short commands go through a deadpool pool ([`Conns::get`]) of
//!   multiplexed single-node connections, or of cluster connections (`redis`
//!   `cluster-async`) that route each command by its first key, follow
//!   `MOVED`/`ASK` and learn the topology. `EVALSHA` routes by its first key
//!   (every key of one lock shares a slot); `LOCK.*` by the lock key. The
//!   pool's manager ([`NoPing`]) opens connections with deadpool-redis's
//!   and recycles them with no round trip (deadpool-redis pings on every
//!   checkout); a connection that failed with a connection error is
//!   dropped at its next checkout. A checkout hands out a clone of the
//!   connection and returns it at once, so concurrent commands pipeline on
//!   the pool's connections.
//! - Waits that block on the server (`LOCK.ACQUIRE .. WAIT`, `WAIT`) need a
//!   dedicated connection with no response timeout, opened on the node that
//!   serves the key ([`Conns::owner`], a slot table read from
//!   `CLUSTER SLOTS` and corrected by `MOVED`): a `MOVED slot host:port`
//!   reply reconnects there and retries, an `ASK` retries there once after
//!   `ASKING`, at most [`MAX_REDIRECTS`] times ([`Conns::redirect`]). Each
//!   node keeps up to [`IDLE_WAIT_CONNS`] idle wait connections with their
//!   [`ClientName`] (`CLIENT INFO` id and address, what a `CLIENT KILL`
//!   names; [`Node::wait_conn`], [`Node::put_back`]).
//!
//! Cluster mode is chosen by [`Mode`]: detected from `INFO cluster`
//! (`cluster_enabled:1`) on the seed by default. A `redis+sentinel://` URL
//! finds the primary through Sentinel instead and follows its promotions
//! (see [`super::sentinel`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use deadpool::managed;
use redis::aio::ConnectionLike;
use redis::{ConnectionAddr, RedisError, Value};

use super::sentinel::{Sentinel, SentinelManager, SentinelUrl};
use crate::error::{Error, Result};

/// How many redirects one blocking command follows before it gives up.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// Number of hash slots in Redis Cluster.
const SLOTS: usize = 16384;

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How many idle wait connections a client keeps per node.
pub(crate) const IDLE_WAIT_CONNS: usize = 16;

/// Whether the client talks to one node or to a Redis Cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Asks the seed: `INFO cluster` reports `cluster_enabled:1`.
    Detect,
    /// One node (or a proxy that hides the cluster).
    Single,
    /// A Redis Cluster; the URL is one seed node.
    Cluster,
}

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
struct NoPing<M> {
    manager: M,
    /// Sentinel mode: a timeout or `READONLY` also breaks a connection, so
    /// that the next one goes to the primary the Sentinels name then.
    follows_primary: bool,
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
    conn: C,
    /// Set when a command on it failed with a connection error: the pool
    /// drops it at its next checkout.
    broken: Arc<AtomicBool>,
    /// See [`NoPing::follows_primary`].
    follows_primary: bool,
}

/// Marks `broken` when `e` says its connection cannot serve again (see
/// [`NoPing::follows_primary`]).
fn note(broken: &AtomicBool, follows_primary: bool, e: &RedisError) {
    if is_connection_error(e) || (follows_primary && is_stale_primary(e)) {
        broken.store(true, Ordering::Release);
    }
}

type SinglePool = managed::Pool<NoPing<deadpool_redis::Manager>>;
type SentinelPool = managed::Pool<NoPing<SentinelManager>>;
type ClusterPool = managed::Pool<NoPing<deadpool_redis::cluster::Manager>>;

#[derive(Clone)]
enum Pool {
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
fn watch_errors<'a, T: Send + 'a>(
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

/// How a server names one of its connections: its `CLIENT ID` and the
/// client address it sees (`addr` in `CLIENT INFO`). Ids restart from 1
/// when the server restarts, so an id alone may name an unrelated client
/// by then; [`ClientName::kill`] names both (`CLIENT KILL` filters AND
/// together), so it can only hit a connection that also has the waiting
/// connection's ip and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientName {
    pub(crate) id: i64,
    pub(crate) addr: String,
}

impl ClientName {
    /// Asks the server for `conn`'s name (`CLIENT INFO`, Redis 6.2+).
    async fn of(conn: &mut redis::aio::MultiplexedConnection) -> Result<Self> {
        let info: String = redis::cmd("CLIENT").arg("INFO").query_async(conn).await?;
        Self::parse(&info).ok_or_else(|| {
            Error::BackendUnavailable(format!("CLIENT INFO without id= and addr=: {info:?}"))
        })
    }

    /// `id` and `addr` out of a `CLIENT INFO` line
    /// (`id=7 addr=127.0.0.1:50312 laddr=... fd=9 name= ...`).
    fn parse(info: &str) -> Option<Self> {
        let field = |name: &str| {
            info.split_ascii_whitespace()
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
        };
        Some(Self {
            id: field("id")?.parse().ok()?,
            addr: field("addr").filter(|a| !a.is_empty())?.to_owned(),
        })
    }

    /// `CLIENT KILL ID <id> ADDR <addr>`: kills this connection, and no
    /// other that merely got the same id.
    pub(crate) fn kill(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("CLIENT");
        cmd.arg("KILL")
            .arg("ID")
            .arg(self.id)
            .arg("ADDR")
            .arg(&self.addr);
        cmd
    }
}

/// An idle connection for server-side waits, and its [`ClientName`].
pub(crate) struct WaitConn {
    pub(crate) conn: redis::aio::MultiplexedConnection,
    pub(crate) name: ClientName,
    /// True when it comes from the idle cache (it may have died there).
    pub(crate) reused: bool,
}

/// One Redis node, for connections of its own (blocking waits, `CLIENT
/// KILL` of such a wait), with a small cache of idle wait connections.
#[derive(Clone)]
pub(crate) struct Node {
    client: redis::Client,
    /// Idle wait connections (no response timeout) and their names,
    /// shared by the clones of this node; at most [`IDLE_WAIT_CONNS`].
    idle: Arc<Mutex<Vec<(redis::aio::MultiplexedConnection, ClientName)>>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({})", self.client.get_connection_info().addr())
    }
}

impl Node {
    pub(crate) fn new(client: redis::Client) -> Self {
        Self {
            client,
            idle: Arc::default(),
        }
    }

    /// The node's address.
    pub(crate) fn addr(&self) -> &ConnectionAddr {
        self.client.get_connection_info().addr()
    }

    /// A client for the node.
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// A connection for a server-side wait and its name: an idle one of
    /// the cache, else a new [`Node::dedicated`] one.
    pub(crate) async fn wait_conn(&self) -> Result<WaitConn> {
        let idle = self
            .idle
            .lock()
            .expect("idle wait connections poisoned")
            .pop();
        if let Some((conn, name)) = idle {
            return Ok(WaitConn {
                conn,
                name,
                reused: true,
            });
        }
        let mut conn = self.dedicated().await?;
        let name = ClientName::of(&mut conn).await?;
        Ok(WaitConn {
            conn,
            name,
            reused: false,
        })
    }

    /// Drops every idle wait connection (one of them was found dead: the
    /// others likely are too).
    pub(crate) fn clear_idle(&self) {
        self.idle
            .lock()
            .expect("idle wait connections poisoned")
            .clear();
    }

    /// Gives back a wait connection whose last command got a reply that
    /// left it idle (granted, timed out): it is kept for the next wait
    /// unless the cache is full. Never call this for a connection whose
    /// wait was cancelled or failed.
    pub(crate) fn put_back(&self, conn: WaitConn) {
        let mut idle = self.idle.lock().expect("idle wait connections poisoned");
        if idle.len() < IDLE_WAIT_CONNS {
            idle.push((conn.conn, conn.name));
        }
    }

    /// A new connection whose replies never time out: for server-side
    /// waits (`LOCK.ACQUIRE .. WAIT`, `WAIT`), which the default 500 ms
    /// response timeout would cut short.
    pub(crate) async fn dedicated(&self) -> Result<redis::aio::MultiplexedConnection> {
        let cfg = redis::AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(Some(CONNECT_TIMEOUT));
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await?)
    }

    /// A new connection with the default response timeout, for one short
    /// command on this very node (`CLIENT KILL`).
    pub(crate) async fn short(&self) -> Result<redis::aio::MultiplexedConnection> {
        let cfg = redis::AsyncConnectionConfig::new().set_connection_timeout(Some(CONNECT_TIMEOUT));
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await?)
    }
}

/// Where a redirected command goes next.
#[derive(Debug)]
pub(crate) struct Redirect {
    /// The node named by the redirect.
    pub(crate) node: Node,
    /// `ASK`: send `ASKING` first, and do not remember the node.
    pub(crate) asking: bool,
}

/// Which node serves which slot, as far as this client knows.
#[derive(Debug, Default)]
struct SlotTable {
    nodes: Vec<(String, u16, Node)>,
    /// Index into `nodes` per slot; `u16::MAX` unknown.
    owner: Vec<u16>,
}

impl SlotTable {
    fn node_index(&mut self, host: &str, port: u16, make: impl FnOnce() -> Node) -> u16 {
        if let Some(i) = self
            .nodes
            .iter()
            .position(|(h, p, _)| h == host && *p == port)
        {
            return i as u16;
        }
        self.nodes.push((host.to_owned(), port, make()));
        (self.nodes.len() - 1) as u16
    }
}

/// Connections to one Redis server, a Sentinel-monitored primary, or a
/// cluster: a pool for ordinary commands, dedicated connections to a key's
/// node for blocking ones.
#[derive(Clone)]
pub(crate) struct Conns {
    pool: Pool,
    /// The seed node (the URL given; in Sentinel mode the primary found
    /// first): the first guess for a slot this client knows nothing about.
    client: redis::Client,
    /// The seed as a [`Node`], with its cache of idle wait connections.
    seed: Node,
    /// `Some` in cluster mode.
    slots: Option<Arc<RwLock<SlotTable>>>,
    /// `Some` in Sentinel mode.
    sentinel: Option<Arc<Sentinel>>,
}

impl std::fmt::Debug for Conns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Conns");
        match &self.pool {
            Pool::Single(p) => d.field("pool", &p.status()),
            Pool::Sentinel(p) => d.field("sentinel_pool", &p.status()),
            Pool::Cluster(p) => d.field("cluster_pool", &p.status()),
        };
        d.finish_non_exhaustive()
    }
}

impl Conns {
    /// Connections to one node (no cluster detection).
    pub(crate) fn new(url: &str) -> Result<Self> {
        let client = redis::Client::open(url)?;
        let manager = NoPing {
            manager: deadpool_redis::Manager::new(url)?,
            follows_primary: false,
        };
        let pool = build_pool(manager)
            .map_err(|e| Error::InvalidOptions(format!("cannot build pool for {url:?}: {e}")))?;
        Ok(Self {
            pool: Pool::Single(pool),
            seed: Node::new(client.clone()),
            client,
            slots: None,
            sentinel: None,
        })
    }

    /// Connections to the primary that the Sentinels of `url` name, found
    /// at once (an error when no Sentinel names a reachable primary).
    async fn sentinel(url: &SentinelUrl) -> Result<Self> {
        let sentinel = Arc::new(Sentinel::new(url)?);
        let primary = sentinel.find().await?;
        let manager = NoPing {
            manager: SentinelManager(sentinel.clone()),
            follows_primary: true,
        };
        let pool = build_pool(manager).map_err(|e| {
            Error::InvalidOptions(format!("cannot build pool for {:?}: {e}", url.service))
        })?;
        Ok(Self {
            pool: Pool::Sentinel(pool),
            client: primary.client().clone(),
            seed: primary,
            slots: None,
            sentinel: Some(sentinel),
        })
    }

    /// Connections for `mode`: one node, a Redis Cluster discovered from
    /// the seed `url` (whose slot table is read at once), or with a
    /// `redis+sentinel://` URL the primary the Sentinels name.
    pub(crate) async fn connect(url: &str, mode: Mode) -> Result<Self> {
        if let Some(sentinel) = SentinelUrl::parse(url) {
            if mode == Mode::Cluster {
                return Err(Error::InvalidOptions(
                    "a redis+sentinel:// URL names one primary, not a cluster".into(),
                ));
            }
            return Self::sentinel(&sentinel?).await;
        }
        let client = redis::Client::open(url)?;
        let cluster = match mode {
            Mode::Single => false,
            Mode::Cluster => true,
            Mode::Detect => detect_cluster(&client).await?,
        };
        if !cluster {
            return Self::new(url);
        }
        let manager = NoPing {
            manager: deadpool_redis::cluster::Manager::new(vec![url], false)?,
            follows_primary: false,
        };
        let pool = build_pool(manager).map_err(|e| {
            Error::InvalidOptions(format!("cannot build cluster pool for {url:?}: {e}"))
        })?;
        let conns = Self {
            pool: Pool::Cluster(pool),
            seed: Node::new(client.clone()),
            client,
            slots: Some(Arc::new(RwLock::new(SlotTable {
                nodes: Vec::new(),
                owner: vec![u16::MAX; SLOTS],
            }))),
            sentinel: None,
        };
        conns.refresh_slots().await?;
        Ok(conns)
    }

    /// True for a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        self.slots.is_some()
    }

    /// True when another node can take over a failed one (Sentinel, or a
    /// cluster), so a failed wait should look for it.
    pub(crate) fn follows_failover(&self) -> bool {
        self.slots.is_some() || self.sentinel.is_some()
    }

    /// A connection for short commands (never for blocking ones: they
    /// would hold up the commands that share it).
    ///
    /// The pool hands out one of its multiplexed connections, which goes
    /// back at once: the caller keeps a clone, and concurrent commands
    /// share (pipeline on) the pool's connections instead of queueing for
    /// one each. The pool opens connections as checkouts overlap, up to
    /// its size, and replaces one after a connection error (see
    /// [`NoPing`]).
    pub(crate) async fn get(&self) -> Result<Conn> {
        Ok(match &self.pool {
            Pool::Single(p) => Conn::Single(p.get().await?.clone()),
            Pool::Sentinel(p) => Conn::Single(p.get().await?.clone()),
            Pool::Cluster(p) => Conn::Cluster(p.get().await?.clone()),
        })
    }

    /// Sends `cmd` behind a command whose caller gave up on it (a cancelled
    /// acquire): on `conn`, the connection that command went out on, so
    /// that the server runs `cmd` after it; if `conn` turns out broken,
    /// once more on a pool connection (the server ran whatever it had read
    /// from the broken one before it noticed). `None`: a pool connection.
    pub(crate) async fn send_after(&self, conn: Option<Conn>, cmd: &redis::Cmd) -> Result<Value> {
        if let Some(mut conn) = conn {
            match cmd.query_async(&mut conn).await {
                Err(e) if is_connection_error(&e) => {}
                other => return Ok(other?),
            }
        }
        let mut conn = self.get().await?;
        Ok(cmd.query_async(&mut conn).await?)
    }

    fn seed(&self) -> Node {
        self.seed.clone()
    }

    /// A client for the node that pub/sub messages of this client's locks
    /// reach: the seed, or in Sentinel mode the primary now (asked again
    /// after a failure, see [`Conns::failed`]).
    pub(crate) async fn pubsub_client(&self) -> Result<redis::Client> {
        match &self.sentinel {
            Some(sentinel) => Ok(sentinel.primary().await?.client().clone()),
            None => Ok(self.client.clone()),
        }
    }

    /// The node that serves `key` as far as this client knows: the seed for
    /// a single node or an unknown slot, the primary last found in Sentinel
    /// mode.
    pub(crate) async fn owner(&self, key: &[u8]) -> Result<Node> {
        if let Some(sentinel) = &self.sentinel {
            return sentinel.primary().await;
        }
        let Some(slots) = &self.slots else {
            return Ok(self.seed());
        };
        let table = slots.read().expect("slot table poisoned");
        Ok(match table.owner[usize::from(key_slot(key))] {
            u16::MAX => self.seed(),
            i => table.nodes[usize::from(i)].2.clone(),
        })
    }

    /// A command on `node` failed the way a failover makes commands fail
    /// (no reply, `READONLY`): learns the topology again, so the next
    /// [`Conns::owner`] may name another node. In Sentinel mode the
    /// Sentinels are asked again; in a cluster the slot table is read again
    /// (best effort: the cluster may still be electing).
    pub(crate) async fn failed(&self, node: &Node) {
        node.clear_idle();
        if let Some(sentinel) = &self.sentinel {
            sentinel.forget(node);
        }
        if let Err(e) = self.refresh_slots().await {
            tracing::debug!(?node, error = %e, "slot table not refreshed after a failure");
        }
    }

    /// The node a `MOVED`/`ASK` error sends the command of `key` to (a
    /// `MOVED` is remembered for the slot); `None` for any other error.
    pub(crate) fn redirect(&self, key: &[u8], err: &RedisError) -> Option<Redirect> {
        let asking = match err.code() {
            Some("MOVED") => false,
            Some("ASK") => true,
            _ => return None,
        };
        // `MOVED 3999 127.0.0.1:6381`: (address, slot).
        let (addr, slot) = err.redirect_node()?;
        let (host, port) = addr.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        let host = match host.trim_start_matches('[').trim_end_matches(']') {
            "" => seed_host(&self.client),
            h => h.to_owned(),
        };
        tracing::debug!(key = %String::from_utf8_lossy(key), %addr, slot, asking, "redirected");
        let node = match &self.slots {
            Some(slots) if !asking => {
                let mut table = slots.write().expect("slot table poisoned");
                let i = table.node_index(&host, port, || self.node_at(&host, port));
                if let Some(owner) = table.owner.get_mut(usize::from(slot)) {
                    *owner = i;
                }
                table.nodes[usize::from(i)].2.clone()
            }
            _ => self.node_at(&host, port),
        };
        Some(Redirect { node, asking })
    }

    /// A node at `host:port` with the seed's settings (user, password, TLS,
    /// protocol).
    fn node_at(&self, host: &str, port: u16) -> Node {
        let info = self.client.get_connection_info().clone();
        let addr = match info.addr().clone() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure,
                tls_params,
            },
            _ => ConnectionAddr::Tcp(host.to_owned(), port),
        };
        match redis::Client::open(info.set_addr(addr)) {
            Ok(client) => Node::new(client),
            Err(_) => self.seed(),
        }
    }

    /// Reads the slot table (`CLUSTER SLOTS`) through the cluster pool.
    async fn refresh_slots(&self) -> Result<()> {
        let Some(slots) = &self.slots else {
            return Ok(());
        };
        let mut conn = self.get().await?;
        let reply: Vec<Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await?;
        let seed_host = seed_host(&self.client);
        let mut table = slots.write().expect("slot table poisoned");
        for range in reply {
            let Value::Array(items) = range else { continue };
            let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(primary))) =
                (items.first(), items.get(1), items.get(2))
            else {
                continue;
            };
            let host = match primary.first() {
                Some(Value::BulkString(b)) if !b.is_empty() && b.as_slice() != b"?" => {
                    String::from_utf8_lossy(b).into_owned()
                }
                _ => seed_host.clone(),
            };
            let Some(Value::Int(port)) = primary.get(1) else {
                continue;
            };
            let Ok(port) = u16::try_from(*port) else {
                continue;
            };
            let i = table.node_index(&host, port, || self.node_at(&host, port));
            let (first, last) = ((*first).max(0) as usize, (*last).max(0) as usize);
            for slot in first..=last.min(SLOTS - 1) {
                table.owner[slot] = i;
            }
        }
        Ok(())
    }

    /// Sends `cmd` to every primary (the seed alone for a single node) and
    /// returns each node's reply, keyed by its address.
    pub(crate) async fn on_primaries(&self, cmd: &redis::Cmd) -> Result<Vec<(String, Value)>> {
        use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
        match self.get().await? {
            mut c @ Conn::Single(_) => {
                let v: Value = cmd.query_async(&mut c).await?;
                Ok(vec![(
                    self.client.get_connection_info().addr().to_string(),
                    v,
                )])
            }
            Conn::Cluster(Pooled {
                mut conn,
                broken,
                follows_primary,
            }) => {
                let v = watch_errors(
                    Box::pin(conn.route_command(
                        cmd.clone(),
                        RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
                    )),
                    &broken,
                    follows_primary,
                )
                .await?;
                let pairs = match v {
                    Value::Map(m) => m,
                    other => {
                        return Err(Error::BackendUnavailable(format!(
                            "unexpected reply from all primaries: {other:?}"
                        )))
                    }
                };
                Ok(pairs
                    .into_iter()
                    .map(|(k, v)| {
                        let addr = redis::from_redis_value::<String>(k).unwrap_or_default();
                        (addr, v)
                    })
                    .collect())
            }
        }
    }

    /// `WAIT replicas timeout` after a write by `token` on the same
    /// connection (an EXTEND of `key`), on the node that serves `key`, so
    /// every earlier write, the grant included, is covered. Returns the
    /// replicas that acknowledged, or `None` when the EXTEND answered 0
    /// (the lock is no longer held: nothing to wait for).
    pub(crate) async fn wait_replicas(
        &self,
        key: &[u8],
        extend: redis::Cmd,
        replicas: u64,
        timeout: Duration,
    ) -> Result<Option<u64>> {
        let mut node = self.owner(key).await?;
        let mut asking = false;
        for _ in 0..=MAX_REDIRECTS {
            // A connection of the node's idle wait cache: WAIT blocks, and
            // opening a new connection per durable grant would cost more
            // than the WAIT itself.
            let mut wait = node.wait_conn().await?;
            // One round trip: the EXTEND makes this connection's last write
            // the lock's, so the WAIT behind it covers the grant.
            let mut pipe = redis::pipe();
            if asking {
                pipe.cmd("ASKING").ignore();
            }
            pipe.add_command(extend.clone())
                .cmd("WAIT")
                .arg(replicas)
                .arg(crate::options::ms(timeout, 0));
            match pipe.query_async::<(i64, u64)>(&mut wait.conn).await {
                Ok((extended, acked)) => {
                    node.put_back(wait);
                    return Ok((extended != 0).then_some(acked));
                }
                Err(e) if wait.reused && is_connection_error(&e) => {
                    // It died while idle in the cache: try a new one.
                    node.clear_idle();
                }
                Err(e) => {
                    let r = self.redirect(key, &e).ok_or(e)?;
                    (node, asking) = (r.node, r.asking);
                }
            }
        }
        Err(too_many_redirects(key))
    }
}

/// The error after [`MAX_REDIRECTS`] redirects of one command.
pub(crate) fn too_many_redirects(key: &[u8]) -> Error {
    Error::BackendUnavailable(format!(
        "the cluster redirected the command of {:?} more than {MAX_REDIRECTS} times (slots migrating?)",
        String::from_utf8_lossy(key)
    ))
}

/// A pool of `manager`'s connections, with deadpool-redis's default size.
fn build_pool<M>(
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

fn seed_host(client: &redis::Client) -> String {
    match client.get_connection_info().addr() {
        ConnectionAddr::Tcp(h, _) => h.clone(),
        ConnectionAddr::TcpTls { host, .. } => host.clone(),
        _ => "127.0.0.1".to_owned(),
    }
}

/// `INFO cluster` on the seed: `cluster_enabled:1`. A server that refuses
/// INFO (renamed or ACL-denied) counts as a single node.
async fn detect_cluster(client: &redis::Client) -> Result<bool> {
    let cfg = redis::AsyncConnectionConfig::new().set_connection_timeout(Some(CONNECT_TIMEOUT));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await?;
    let info: redis::RedisResult<String> = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut conn)
        .await;
    match info {
        Ok(text) => Ok(text.lines().any(|l| l.trim() == "cluster_enabled:1")),
        Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => Err(e.into()),
        Err(e) => {
            tracing::debug!(error = %e, "INFO cluster refused: assuming a single node");
            Ok(false)
        }
    }
}

/// The hash slot of `key` (CRC16-XMODEM of the hash tag or the whole key,
/// mod 16384), as Redis Cluster computes it.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(tagged) % SLOTS as u16
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_parse_from_client_info() {
        let info = "id=7 addr=127.0.0.1:50312 laddr=127.0.0.1:6379 fd=9 name= age=0 idle=0\n";
        let name = ClientName::parse(info).unwrap();
        assert_eq!(
            name,
            ClientName {
                id: 7,
                addr: "127.0.0.1:50312".into()
            }
        );
        let ipv6 = ClientName::parse("id=12 addr=[::1]:6000 laddr=[::1]:6379").unwrap();
        assert_eq!(ipv6.addr, "[::1]:6000");
        assert_eq!(ClientName::parse("id=7 laddr=127.0.0.1:6379 addr="), None);
        assert_eq!(ClientName::parse("addr=1.2.3.4:5"), None);
    }

    #[test]
    fn slots_match_redis() {
        // CRC16 check value and examples from the Redis Cluster spec.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"baton:{k}:q"), key_slot(b"k"));
    }
}
