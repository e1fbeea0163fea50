//! Where the locks live during a chaos run, and how to read its state:
//! which server is the primary, whether the topology has settled.
//!
//! - [`Kind::Cluster`]: a Redis Cluster of three primaries; the first has
//!   one replica and serves every lock key of the run (the "faulted
//!   shard"). The other two never fail: the client's seed URL names one of
//!   them, and they make the majority that votes a replica in when the
//!   faulted primary dies (a cluster of one primary cannot fail over by
//!   itself).
//! - [`Kind::Sentinel`]: a primary and two replicas under three Sentinels
//!   (`redis+sentinel://` URL). Not run yet: the client cannot follow a
//!   Sentinel URL until its Sentinel support lands.
//!
//! Every probe uses a connection that gives up within a second, so a frozen
//! or dead server reads as "not answering", never as a hang.

use std::time::Duration;

use baton_client::Backend;
use baton_harness::replication::parse_info_field;
use baton_harness::sentinel::SERVICE;
use baton_harness::{wait_until, RedisCluster, RedisServer, SentinelGroup, ServerBuilder};

/// How long a probe may wait for a server.
const PROBE: Duration = Duration::from_millis(800);
/// How long a fault's command may take (a busy machine can be slow).
const COMMAND: Duration = Duration::from_secs(5);

/// Which topology a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Cluster,
    Sentinel,
}

/// A server's replication role, as it reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub master: bool,
    /// For a replica: the port of its primary, and whether the link is up.
    pub master_port: Option<u16>,
    pub link_up: bool,
}

/// The servers of a run.
#[derive(Debug)]
pub enum Topology {
    Cluster(RedisCluster),
    Sentinel(SentinelGroup),
}

/// A server to build for `backend`: with the module or without it.
fn builder(backend: Backend, node_timeout: Duration) -> ServerBuilder {
    let b = RedisServer::builder().cluster_node_timeout(node_timeout);
    match backend {
        Backend::Module => b,
        _ => b.without_module(),
    }
}

impl Topology {
    /// Starts the servers of `kind` for `backend`, with cluster nodes that
    /// declare a primary failed after `node_timeout`.
    pub fn start(kind: Kind, backend: Backend, node_timeout: Duration) -> Topology {
        match kind {
            Kind::Cluster => {
                let mut cluster = RedisCluster::start_with(3, || builder(backend, node_timeout));
                cluster.add_replica_with(0, builder(backend, node_timeout));
                Topology::Cluster(cluster)
            }
            Kind::Sentinel => Topology::Sentinel(SentinelGroup::start_with(2, || {
                builder(backend, node_timeout)
            })),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Topology::Cluster(_) => Kind::Cluster,
            Topology::Sentinel(_) => Kind::Sentinel,
        }
    }

    /// The URL clients are built from: a primary that is never faulted
    /// (cluster), or the Sentinels.
    pub fn url(&self) -> String {
        match self {
            Topology::Cluster(c) => c.nodes()[1].url(),
            Topology::Sentinel(g) => g.url(),
        }
    }

    /// `n` lock keys, all served by the faulted servers.
    pub fn keys(&self, n: usize) -> Vec<String> {
        match self {
            Topology::Cluster(c) => (0..)
                .map(|i| format!("chaos:{i}"))
                .filter(|k| c.node_index_for(k.as_bytes()) == 0)
                .take(n)
                .collect(),
            Topology::Sentinel(_) => (0..n).map(|i| format!("chaos:{i}")).collect(),
        }
    }

    /// How many servers hold the locks (primary and replicas).
    pub fn len(&self) -> usize {
        match self {
            Topology::Cluster(c) => 1 + c.replicas().len(),
            Topology::Sentinel(g) => g.servers().len(),
        }
    }

    /// Server `i` of those that hold the locks.
    pub fn server(&self, i: usize) -> &RedisServer {
        match self {
            Topology::Cluster(c) if i == 0 => &c.nodes()[0],
            Topology::Cluster(c) => &c.replicas()[i - 1],
            Topology::Sentinel(g) => &g.servers()[i],
        }
    }

    pub fn server_mut(&mut self, i: usize) -> &mut RedisServer {
        match self {
            Topology::Cluster(c) => match i {
                0 => &mut c.nodes_mut()[0],
                _ => &mut c.replicas_mut()[i - 1],
            },
            Topology::Sentinel(g) => &mut g.servers_mut()[i],
        }
    }

    /// The roles of the servers that hold the locks (`None`: not answering).
    pub fn roles(&self) -> Vec<Option<Role>> {
        (0..self.len()).map(|i| role(self.server(i))).collect()
    }

    /// The one server that reports `role:master`, if exactly one does.
    pub fn sole_master(&self) -> Option<usize> {
        let masters: Vec<usize> = self
            .roles()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.as_ref().is_some_and(|r| r.master))
            .map(|(i, _)| i)
            .collect();
        match masters[..] {
            [one] => Some(one),
            _ => None,
        }
    }

    /// The port the rest of the system routes the locks to: the primary of
    /// slot 0 as every never-faulted cluster node names it, or the one
    /// every Sentinel names. `None` while they disagree.
    fn routed_port(&self) -> Option<u16> {
        let named: Vec<Option<u16>> = match self {
            Topology::Cluster(c) => c.nodes()[1..].iter().map(slot_zero_owner).collect(),
            Topology::Sentinel(g) => g.primary_ports(),
        };
        let first = (*named.first()?)?;
        named.iter().all(|p| *p == Some(first)).then_some(first)
    }

    /// True when the topology is whole: one primary, named by the rest of
    /// the system; every other server a replica of it with its link up;
    /// for a cluster, every node reports `cluster_state:ok`.
    pub fn settled(&self) -> Option<usize> {
        let roles = self.roles();
        let primary = self.sole_master()?;
        let port = self.server(primary).port();
        let replicas_ok = roles.iter().enumerate().all(|(i, r)| {
            i == primary
                || r.as_ref()
                    .is_some_and(|r| !r.master && r.link_up && r.master_port == Some(port))
        });
        if !replicas_ok || self.routed_port() != Some(port) {
            return None;
        }
        if let Topology::Cluster(c) = self {
            let all_ok = c
                .nodes()
                .iter()
                .chain(c.replicas())
                .all(|n| cluster_state(n).as_deref() == Some("ok"));
            if !all_ok {
                return None;
            }
        }
        Some(primary)
    }

    /// Waits until [`Topology::settled`]; returns the primary.
    pub fn settle(&self, timeout: Duration) -> Result<usize, String> {
        let mut primary = None;
        if wait_until(timeout, || {
            primary = self.settled();
            primary.is_some()
        }) {
            return Ok(primary.expect("settled"));
        }
        Err(format!(
            "the topology did not settle within {timeout:?}\n{}",
            self.describe()
        ))
    }

    /// Waits until a server other than `old` is the primary and the rest of
    /// the system routes to it; returns it.
    pub fn wait_promoted(&self, old: usize, timeout: Duration) -> Result<usize, String> {
        let mut new = None;
        let promoted = wait_until(timeout, || {
            new = (0..self.len()).filter(|&i| i != old).find(|&i| {
                role(self.server(i)).is_some_and(|r| r.master)
                    && self.routed_port() == Some(self.server(i).port())
            });
            new.is_some()
        });
        if promoted {
            return Ok(new.expect("promoted"));
        }
        Err(format!(
            "no server replaced primary {old} within {timeout:?}\n{}",
            self.describe()
        ))
    }

    /// Asks for a failover that hands over without losing writes: `CLUSTER
    /// FAILOVER` on a replica of `primary` (it waits for the replica to
    /// catch up), or `SENTINEL FAILOVER`.
    pub fn failover(&self, primary: usize) -> Result<(), String> {
        match self {
            Topology::Cluster(_) => self.cluster_failover(primary, None),
            Topology::Sentinel(g) => {
                let mut con = g.sentinels()[0]
                    .quick_connection(COMMAND)
                    .map_err(|e| format!("connect to a Sentinel: {e}"))?;
                redis::cmd("SENTINEL")
                    .arg("FAILOVER")
                    .arg(SERVICE)
                    .query::<()>(&mut con)
                    .map_err(|e| format!("SENTINEL FAILOVER: {e}"))
            }
        }
    }

    /// Whether [`Topology::takeover`] can be asked of this topology (not of
    /// Sentinels: they would undo a switch they did not make).
    pub fn can_take_over(&self) -> bool {
        self.kind() == Kind::Cluster
    }

    /// `CLUSTER FAILOVER TAKEOVER` on a replica of `primary`: it takes the
    /// slots at once, without the primary's agreement or a vote, and
    /// without waiting for the writes still on their way to it.
    pub fn takeover(&self, primary: usize) -> Result<(), String> {
        self.cluster_failover(primary, Some("TAKEOVER"))
    }

    fn cluster_failover(&self, primary: usize, how: Option<&str>) -> Result<(), String> {
        let replica = (0..self.len())
            .find(|&i| i != primary)
            .ok_or("no replica")?;
        let mut con = self
            .server(replica)
            .quick_connection(COMMAND)
            .map_err(|e| format!("connect to the replica: {e}"))?;
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("FAILOVER");
        if let Some(how) = how {
            cmd.arg(how);
        }
        cmd.query::<()>(&mut con)
            .map_err(|e| format!("CLUSTER FAILOVER {how:?}: {e}"))
    }

    /// `CLIENT KILL TYPE normal` on `server`: every client connection, the
    /// workers' pooled and waiting ones too. Returns how many were killed.
    pub fn kill_clients(&self, server: usize) -> Result<u64, String> {
        let mut con = self
            .server(server)
            .quick_connection(COMMAND)
            .map_err(|e| format!("connect to the primary: {e}"))?;
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("normal")
            .query(&mut con)
            .map_err(|e| format!("CLIENT KILL TYPE normal: {e}"))
    }

    /// `FLUSHALL` on `server`.
    pub fn flush(&self, server: usize) -> Result<(), String> {
        let mut con = self
            .server(server)
            .quick_connection(COMMAND)
            .map_err(|e| format!("connect to the primary: {e}"))?;
        redis::cmd("FLUSHALL")
            .query(&mut con)
            .map_err(|e| format!("FLUSHALL: {e}"))
    }

    /// The roles and the log tails of the servers that hold the locks.
    pub fn describe(&self) -> String {
        let mut s = format!("routed to port {:?}\n", self.routed_port());
        for i in 0..self.len() {
            let server = self.server(i);
            s.push_str(&format!(
                "server {i} (port {}, running {}): {:?}, cluster_state {:?}\n--- log tail:\n{}\n",
                server.port(),
                server.is_running(),
                role(server),
                cluster_state(server),
                server.log_tail()
            ));
        }
        s
    }
}

/// `INFO replication` of `server`, if it answers in time.
pub fn role(server: &RedisServer) -> Option<Role> {
    if !server.is_running() {
        return None;
    }
    let mut con = server.quick_connection(PROBE).ok()?;
    let info: String = redis::cmd("INFO").arg("replication").query(&mut con).ok()?;
    let field = |f: &str| parse_info_field(&info, f);
    Some(Role {
        master: field("role").as_deref() == Some("master"),
        master_port: field("master_port").and_then(|p| p.parse().ok()),
        link_up: field("master_link_status").as_deref() == Some("up"),
    })
}

/// `cluster_state` from `CLUSTER INFO`, if `server` answers in time.
fn cluster_state(server: &RedisServer) -> Option<String> {
    if !server.is_running() {
        return None;
    }
    let mut con = server.quick_connection(PROBE).ok()?;
    let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut con).ok()?;
    parse_info_field(&info, "cluster_state")
}

/// The port of the primary of slot 0 in `node`'s `CLUSTER SLOTS`.
fn slot_zero_owner(node: &RedisServer) -> Option<u16> {
    let mut con = node.quick_connection(PROBE).ok()?;
    let slots: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut con).ok()?;
    slots.into_iter().find_map(|range| {
        let redis::Value::Array(items) = range else {
            return None;
        };
        let first: i64 = redis::from_redis_value(items.first()?.clone()).ok()?;
        if first != 0 {
            return None;
        }
        let redis::Value::Array(primary) = items.get(2)? else {
            return None;
        };
        let port: i64 = redis::from_redis_value(primary.get(1)?.clone()).ok()?;
        u16::try_from(port).ok()
    })
}
