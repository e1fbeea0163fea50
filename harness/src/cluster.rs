//! A small Redis Cluster of primaries with the baton module loaded, and
//! replicas added on demand.
//!
//! Slots are split evenly with `CLUSTER ADDSLOTSRANGE`, the nodes meet through
//! the first one, and [`RedisCluster::start`] returns once every node reports
//! `cluster_state:ok` and knows every other node. [`RedisCluster::add_replica`]
//! returns once the new replica streams from its primary.

use std::time::Duration;

use crate::poll::wait_until;
use crate::server::{RedisServer, ServerBuilder};

/// Number of hash slots in Redis Cluster.
pub const SLOTS: u16 = 16384;
/// How long the cluster may take to form.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// `n` primaries that together serve every slot, and their replicas; killed
/// on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    replicas: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `n` cluster-enabled primaries with the module loaded.
    pub fn start(n: usize) -> RedisCluster {
        Self::start_with(n, RedisServer::builder)
    }

    /// Like [`RedisCluster::start`], each node from `builder()` (cluster mode
    /// is switched on for it), e.g. to start nodes without the module.
    pub fn start_with(n: usize, builder: impl Fn() -> ServerBuilder) -> RedisCluster {
        assert!(
            n >= 1 && n <= usize::from(SLOTS),
            "a cluster needs 1..=16384 nodes"
        );
        let nodes: Vec<RedisServer> = (0..n).map(|_| builder().cluster(true).start()).collect();
        for (i, node) in nodes.iter().enumerate() {
            let (first, last) = slot_range(i, n);
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query(&mut node.connection())
                .expect("CLUSTER ADDSLOTSRANGE");
        }
        let mut first = nodes[0].connection();
        for node in &nodes[1..] {
            let _: () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port())
                .arg(node.bus_port().expect("cluster node has a bus port"))
                .query(&mut first)
                .expect("CLUSTER MEET");
        }
        let cluster = RedisCluster {
            nodes,
            replicas: Vec::new(),
        };
        let formed = wait_until(FORM_TIMEOUT, || cluster.is_formed());
        assert!(
            formed,
            "cluster of {n} did not reach cluster_state:ok within {FORM_TIMEOUT:?}; first node log:\n{}",
            cluster.nodes[0].log_tail()
        );
        cluster
    }

    /// Every node says `cluster_state:ok` and lists every other node.
    fn is_formed(&self) -> bool {
        let all = self.nodes.len() + self.replicas.len();
        self.nodes.iter().chain(&self.replicas).all(|node| {
            let ok = info_field_cluster(node).as_deref() == Some("ok");
            let known: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query(&mut node.connection())
                .unwrap_or_default();
            ok && known.lines().count() == all
        })
    }

    /// Starts a replica of primary `of` (an index into [`RedisCluster::nodes`])
    /// and returns it once it streams from that primary.
    ///
    /// # Panics
    ///
    /// When it does not within the cluster's forming timeout.
    pub fn add_replica(&mut self, of: usize) -> &RedisServer {
        self.add_replica_with(of, RedisServer::builder())
    }

    /// Like [`RedisCluster::add_replica`], the replica from `builder`
    /// (cluster mode is switched on for it), e.g. one without the module
    /// for a cluster started with [`RedisCluster::start_with`].
    ///
    /// # Panics
    ///
    /// As [`RedisCluster::add_replica`].
    pub fn add_replica_with(&mut self, of: usize, builder: ServerBuilder) -> &RedisServer {
        let replica = builder.cluster(true).start();
        let primary = &self.nodes[of];
        let _: () = redis::cmd("CLUSTER")
            .arg("MEET")
            .arg("127.0.0.1")
            .arg(primary.port())
            .arg(primary.bus_port().expect("cluster node has a bus port"))
            .query(&mut replica.connection())
            .expect("CLUSTER MEET");
        let primary_id: String = redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut primary.connection())
            .expect("CLUSTER MYID");
        self.replicas.push(replica);
        assert!(
            wait_until(FORM_TIMEOUT, || self.is_formed()),
            "the new replica did not join the cluster"
        );
        let replica = self.replicas.last().expect("just pushed");
        let _: () = redis::cmd("CLUSTER")
            .arg("REPLICATE")
            .arg(&primary_id)
            .query(&mut replica.connection())
            .expect("CLUSTER REPLICATE");
        crate::replication::wait_for_sync(primary, replica);
        // A manual failover needs the primary to know its replica, which it
        // learns by gossip, after the replication link is up.
        let replica_id: String = redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut replica.connection())
            .expect("CLUSTER MYID");
        let known = wait_until(FORM_TIMEOUT, || {
            self.nodes.iter().chain(&self.replicas).all(|node| {
                let nodes: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query(&mut node.connection())
                    .unwrap_or_default();
                // `<id> <addr> <flags> <primary id> ...`
                nodes.lines().any(|line| {
                    let fields: Vec<&str> = line.split(' ').collect();
                    fields.len() > 3
                        && fields[0] == replica_id
                        && fields[2].split(',').any(|flag| flag == "slave")
                        && fields[3] == primary_id
                })
            })
        });
        assert!(known, "not every node sees the new replica of {primary_id}");
        replica
    }

    /// The replicas added with [`RedisCluster::add_replica`].
    pub fn replicas(&self) -> &[RedisServer] {
        &self.replicas
    }

    /// The nodes, in the order their slot ranges go.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The nodes, to kill, freeze or restart one. After a failover a node
    /// may serve as a replica: the index says where it started, not its
    /// role now.
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// The replicas, to kill, freeze or restart one (after a failover one
    /// may be a primary).
    pub fn replicas_mut(&mut self) -> &mut [RedisServer] {
        &mut self.replicas
    }

    /// `redis://127.0.0.1:PORT` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The hash slot of `key` (asked of the server: `CLUSTER KEYSLOT`).
    pub fn slot(&self, key: &[u8]) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.nodes[0].connection())
            .expect("CLUSTER KEYSLOT")
    }

    /// Index of the node that serves `key`.
    pub fn node_index_for(&self, key: &[u8]) -> usize {
        let slot = self.slot(key);
        let n = self.nodes.len();
        (0..n)
            .find(|&i| {
                let (first, last) = slot_range(i, n);
                (first..=last).contains(&slot)
            })
            .expect("every slot is assigned")
    }

    /// The node that serves `key`.
    pub fn node_for(&self, key: &[u8]) -> &RedisServer {
        &self.nodes[self.node_index_for(key)]
    }
}

/// `cluster_state` from `CLUSTER INFO`.
fn info_field_cluster(node: &RedisServer) -> Option<String> {
    let text: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut node.connection())
        .ok()?;
    crate::replication::parse_info_field(&text, "cluster_state")
}

/// The slots of node `i` of `n`: an even split of 0..16384.
fn slot_range(i: usize, n: usize) -> (u16, u16) {
    let slots = usize::from(SLOTS);
    let first = i * slots / n;
    let last = (i + 1) * slots / n - 1;
    (first as u16, last as u16)
}
