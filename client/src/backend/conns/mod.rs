//! Connections to Redis: one node, or a Redis Cluster found from one seed.
//!
//! - Short commands share one multiplexed connection ([`Conns::get`]): to
//!   the node, or a cluster connection (`redis` `cluster-async`) that
//!   routes each command by its first key, follows `MOVED`/`ASK` and
//!   learns the topology. `EVALSHA` routes by its first key (every key of
//!   one lock shares a slot); `LOCK.*` by the lock key. A checkout is a
//!   clone (no round trip, no pool), so concurrent commands pipeline on
//!   it; a connection that failed with a connection error is replaced at
//!   the next checkout (`pool`).
//! - Waits that block on the server (`LOCK.ACQUIRE .. WAIT`, `WAIT`) need a
//!   dedicated connection with no response timeout, opened on the node that
//!   serves the key ([`Conns::owner`], a slot table read from
//!   `CLUSTER SLOTS` and corrected by `MOVED`): a `MOVED slot host:port`
//!   reply reconnects there and retries, an `ASK` retries there once after
//!   `ASKING`, at most [`MAX_REDIRECTS`] times (`Conns::redirect`). Each
//!   node keeps up to `IDLE_WAIT_CONNS` idle wait connections with their
//!   [`ClientName`] (`CLIENT INFO` id and address, what a `CLIENT KILL`
//!   names; [`Node::wait_conn`], [`Node::put_back`]).
//!
//! Cluster mode is chosen by [`Mode`]: detected from `INFO cluster`
//! (`cluster_enabled:1`) on the seed by default. A `redis+sentinel://` URL
//! finds the primary through Sentinel instead and follows its promotions.
//!
//! TLS (`rediss://`, the `tls` feature): every connection (the shared one, waits,
//! pub/sub, the bus's readers, other cluster nodes) is opened from the
//! seed's settings, so all of them trust the CA given to the builder
//! ([`open_client`]), or the system's roots (and `SSL_CERT_FILE`) when none
//! was given.
//!
//! # Layout
//!
//! - this file: [`Conns`], what the backends use;
//! - `pool`: the shared connection, how it is (re)opened, and the errors
//!   that break it;
//! - `node`: one node's own connections (waits, `CLIENT KILL`) and
//!   [`ClientName`];
//! - `cluster`: the slot table, redirects, cluster detection, hash slots;
//! - `sentinel`: `redis+sentinel://` URLs and finding the primary.

mod cluster;
mod node;
mod pool;
pub(crate) mod sentinel;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::{RedisError, Value};

use cluster::{detect_cluster, SlotTable, SLOTS};
pub(crate) use cluster::{key_slot, too_many_redirects, MAX_REDIRECTS};
pub(crate) use node::{ClientName, Node};
pub(crate) use pool::{is_connection_error, Conn};
use pool::{watch_errors, ClusterManager, Opener, Pool, Pooled, Shared};
use sentinel::{Sentinel, SentinelManager, SentinelUrl};

use crate::error::{Error, Result};

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The error of the first failed command of a pipeline (its failure holds
/// one per command, and only a single one names a redirect), or `e` itself.
fn first_failure(e: &RedisError) -> RedisError {
    e.clone()
        .into_server_errors()
        .and_then(|errors| errors.first().map(|(_, first)| first.clone().into()))
        .unwrap_or_else(|| e.clone())
}

/// How long to let a failover progress before the topology is asked again
/// after a node failed.
pub(crate) const FAILOVER_PAUSE: Duration = Duration::from_millis(100);

/// A client for `url`, trusting the CA certificates in `ca` (PEM) instead
/// of the system's roots when given (only `rediss://` URLs take one).
pub(crate) fn open_client(url: &str, ca: Option<&[u8]>) -> Result<redis::Client> {
    #[cfg(feature = "tls")]
    if url.starts_with("rediss:") || ca.is_some() {
        crypto_provider();
    }
    let Some(ca) = ca else {
        return Ok(redis::Client::open(url)?);
    };
    #[cfg(feature = "tls")]
    {
        if !url.starts_with("rediss:") {
            return Err(Error::InvalidOptions(
                "a TLS CA was given for a URL without TLS: use rediss://".into(),
            ));
        }
        let certs = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.to_vec()),
        };
        Ok(redis::Client::build_with_tls(url, certs)?)
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = ca;
        Err(Error::InvalidOptions(
            "a TLS CA needs the `tls` feature of baton-client".into(),
        ))
    }
}

/// rustls needs a process-wide crypto provider, and the `redis` crate
/// builds it with none enabled (so that applications choose): without one
/// every TLS connect panics. Installs ring's unless the application
/// installed another first.
#[cfg(feature = "tls")]
fn crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err: another thread installed one meanwhile, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

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

/// Connections to one Redis server, a Sentinel-monitored primary, or a
/// cluster: a shared connection for ordinary commands, dedicated
/// connections to a key's node for blocking ones.
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
        f.debug_struct("Conns")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl Conns {
    /// Connections to one node (no cluster detection), for `Bus::connect`.
    #[cfg(any(feature = "bus", test))]
    pub(crate) fn new(url: &str) -> Result<Self> {
        Self::single(open_client(url, None)?)
    }

    /// Connections to the one node of `client`.
    fn single(client: redis::Client) -> Result<Self> {
        let opener = Opener {
            // Its settings: TLS and the CA included.
            manager: deadpool_redis::Manager::new(client.get_connection_info().clone())?,
            follows_primary: false,
        };
        Ok(Self {
            pool: Pool::Single(Arc::new(Shared::new(opener))),
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
        let opener = Opener {
            manager: SentinelManager(sentinel.clone()),
            follows_primary: true,
        };
        Ok(Self {
            pool: Pool::Sentinel(Arc::new(Shared::new(opener))),
            client: primary.client().clone(),
            seed: primary,
            slots: None,
            sentinel: Some(sentinel),
        })
    }

    /// Connections for `mode`: one node, a Redis Cluster discovered from
    /// the seed `url` (whose slot table is read at once), or with a
    /// `redis+sentinel://` URL the primary the Sentinels name. `ca`: the CA
    /// certificates (PEM) to trust for TLS, see [`open_client`].
    pub(crate) async fn connect(url: &str, mode: Mode, ca: Option<&[u8]>) -> Result<Self> {
        if let Some(sentinel) = SentinelUrl::parse(url) {
            if mode == Mode::Cluster {
                return Err(Error::InvalidOptions(
                    "a redis+sentinel:// URL names one primary, not a cluster".into(),
                ));
            }
            if ca.is_some() {
                // Its data nodes are reached as redis:// (no TLS).
                return Err(Error::InvalidOptions(
                    "a TLS CA was given, but redis+sentinel:// URLs have no TLS".into(),
                ));
            }
            return Self::sentinel(&sentinel?).await;
        }
        let client = open_client(url, ca)?;
        let cluster = match mode {
            Mode::Single => false,
            Mode::Cluster => true,
            Mode::Detect => detect_cluster(&client).await?,
        };
        if !cluster {
            return Self::single(client);
        }
        let opener = Opener {
            manager: ClusterManager::new(client.get_connection_info().clone(), ca)?,
            follows_primary: false,
        };
        let conns = Self {
            pool: Pool::Cluster(Arc::new(Shared::new(opener))),
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
    /// A clone of the client's one multiplexed connection: concurrent
    /// commands share (pipeline on) it, as on the one connection a plain
    /// `redis` user shares. It is opened on first use, and again after a
    /// connection error (see [`Shared::get`]).
    pub(crate) async fn get(&self) -> Result<Conn> {
        Ok(match &self.pool {
            Pool::Single(p) => Conn::Single(p.get().await?),
            Pool::Sentinel(p) => Conn::Single(p.get().await?),
            Pool::Cluster(p) => Conn::Cluster(p.get().await?),
        })
    }

    /// Sends `cmd` behind a command whose caller gave up on it (a cancelled
    /// acquire): on `conn`, the connection that command went out on, so
    /// that the server runs `cmd` after it; if `conn` turns out broken,
    /// once more on a new connection (the server ran whatever it had read
    /// from the broken one before it noticed). `None`: the shared one.
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

    /// `node`, which served `key`, is down (`error`): after a short pause,
    /// learns who serves `key` now (a dead node never redirects) and names
    /// it.
    async fn successor(&self, node: &Node, key: &[u8], error: &Error) -> Result<Node> {
        tracing::debug!(key = %String::from_utf8_lossy(key), ?node, %error, "node down; looking for its successor");
        tokio::time::sleep(FAILOVER_PAUSE).await;
        self.failed(node).await;
        self.owner(key).await
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
                        return Err(Error::UnexpectedReply(format!(
                            "from all primaries: {other:?}"
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
            let mut wait = match node.wait_conn().await {
                Ok(wait) => wait,
                Err(e) if e.is_unreachable() && self.follows_failover() => {
                    node = self.successor(&node, key, &e).await?;
                    asking = false;
                    continue;
                }
                Err(e) => return Err(e),
            };
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
                Err(e) if is_connection_error(&e) && self.follows_failover() => {
                    // On the successor the EXTEND answers 0 unless the
                    // grant reached it, so nothing unreplicated is
                    // confirmed.
                    node = self.successor(&node, key, &e.into()).await?;
                    asking = false;
                }
                Err(e) => {
                    let r = self.redirect(key, &first_failure(&e)).ok_or(e)?;
                    (node, asking) = (r.node, r.asking);
                }
            }
        }
        Err(too_many_redirects(key))
    }
}
