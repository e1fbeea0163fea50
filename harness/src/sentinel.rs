//! A primary with replicas under three Sentinels, all real processes.
//!
//! [`SentinelGroup::start`] returns once every Sentinel knows the primary,
//! every replica and the two other Sentinels, so a failover can start at
//! once. The primary is whichever server the Sentinels name now
//! ([`SentinelGroup::primary`]); tests kill, freeze or fail it over and wait
//! for the new topology with [`SentinelGroup::wait_for_new_primary`].

use std::collections::BTreeMap;
use std::time::Duration;

use crate::poll::wait_until;
use crate::replication::{parse_info_field, wait_for_sync};
use crate::server::{RedisServer, ServerBuilder};

/// The name the Sentinels monitor the primary under.
pub const SERVICE: &str = "baton";
/// How long the group may take to form or to fail over.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Sentinels in a group; two must agree for a failover.
const SENTINELS: usize = 3;
const QUORUM: u32 = 2;

/// Data servers (one primary, the rest replicas) and three Sentinels.
#[derive(Debug)]
pub struct SentinelGroup {
    servers: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
}

impl SentinelGroup {
    /// A primary and `replicas` replicas with the baton module, and three
    /// Sentinels watching them.
    pub fn start(replicas: usize) -> SentinelGroup {
        Self::start_with(replicas, RedisServer::builder)
    }

    /// Like [`SentinelGroup::start`], each data server from `builder()`.
    ///
    /// # Panics
    ///
    /// When the group does not form within 30 s.
    pub fn start_with(replicas: usize, builder: impl Fn() -> ServerBuilder) -> SentinelGroup {
        let primary = builder().start();
        let mut servers = vec![];
        for _ in 0..replicas {
            let replica = builder().replica_of(&primary).start();
            wait_for_sync(&primary, &replica);
            servers.push(replica);
        }
        servers.insert(0, primary);
        let sentinels = (0..SENTINELS)
            .map(|_| {
                RedisServer::builder()
                    .sentinel(SERVICE, servers[0].port(), QUORUM)
                    .start()
            })
            .collect();
        let group = SentinelGroup { servers, sentinels };
        let formed = wait_until(TIMEOUT, || {
            group.sentinels.iter().all(|s| {
                let master = sentinel_master(s);
                let count = |field: &str| master.get(field).and_then(|v| v.parse().ok());
                count("num-other-sentinels") == Some(SENTINELS - 1)
                    && count("num-slaves") == Some(replicas)
            })
        });
        assert!(
            formed,
            "the Sentinels did not see each other and {replicas} replicas within {TIMEOUT:?}:\n{}",
            group.sentinels[0].log_tail()
        );
        group
    }

    /// `redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/baton`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        format!("redis+sentinel://{}/{SERVICE}", hosts.join(","))
    }

    /// Every data server, primary or replica, in the order they started.
    pub fn servers(&self) -> &[RedisServer] {
        &self.servers
    }

    /// Every data server, to kill, freeze or restart one.
    pub fn servers_mut(&mut self) -> &mut [RedisServer] {
        &mut self.servers
    }

    /// The Sentinels.
    pub fn sentinels(&self) -> &[RedisServer] {
        &self.sentinels
    }

    /// The port of the primary as each Sentinel names it (`None` for one
    /// that does not answer within a second), in Sentinel order.
    pub fn primary_ports(&self) -> Vec<Option<u16>> {
        self.sentinels.iter().map(primary_port_of).collect()
    }

    /// The port of the primary as the first Sentinel that answers names it.
    pub fn primary_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(primary_port_of)
    }

    /// Index in [`SentinelGroup::servers`] of the primary the Sentinels name.
    ///
    /// # Panics
    ///
    /// When no Sentinel answers or it names an unknown server.
    pub fn primary_index(&self) -> usize {
        let port = self.primary_port().expect("a Sentinel names the primary");
        self.servers
            .iter()
            .position(|s| s.port() == port)
            .unwrap_or_else(|| panic!("the Sentinels name an unknown primary on {port}"))
    }

    /// The primary the Sentinels name.
    pub fn primary(&self) -> &RedisServer {
        &self.servers[self.primary_index()]
    }

    /// Waits until every Sentinel names a primary other than `old_port` and
    /// that server says `role:master`; returns its index.
    ///
    /// # Panics
    ///
    /// When that takes longer than 30 s; the message holds a Sentinel's log.
    pub fn wait_for_new_primary(&self, old_port: u16) -> usize {
        let moved = wait_until(TIMEOUT, || {
            let named: Vec<Option<u16>> = self.sentinels.iter().map(primary_port_of).collect();
            let Some(Some(port)) = named.first().copied() else {
                return false;
            };
            port != old_port
                && named.iter().all(|p| *p == Some(port))
                && self
                    .servers
                    .iter()
                    .any(|s| s.port() == port && s.is_running() && is_master(s))
        });
        assert!(
            moved,
            "no new primary replaced {old_port} within {TIMEOUT:?}:\n{}",
            self.sentinels[0].log_tail()
        );
        self.primary_index()
    }
}

/// True when `server` answers `role:master` within a second (a frozen or
/// dead server does not).
fn is_master(server: &RedisServer) -> bool {
    let Ok(mut con) = quick_connection(server) else {
        return false;
    };
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut con)
        .unwrap_or_default();
    parse_info_field(&info, "role").as_deref() == Some("master")
}

/// A connection that gives up after a second, to ask servers that may be
/// frozen or dead.
fn quick_connection(server: &RedisServer) -> redis::RedisResult<redis::Connection> {
    server.quick_connection(Duration::from_secs(1))
}

/// `SENTINEL MASTER baton` as field -> value.
fn sentinel_master(sentinel: &RedisServer) -> BTreeMap<String, String> {
    let Ok(mut con) = quick_connection(sentinel) else {
        return BTreeMap::new();
    };
    let flat: Vec<String> = redis::cmd("SENTINEL")
        .arg("MASTER")
        .arg(SERVICE)
        .query(&mut con)
        .unwrap_or_default();
    flat.chunks(2)
        .filter_map(|kv| Some((kv.first()?.clone(), kv.get(1)?.clone())))
        .collect()
}

/// The primary's port as one Sentinel names it.
fn primary_port_of(sentinel: &RedisServer) -> Option<u16> {
    let mut con = quick_connection(sentinel).ok()?;
    let addr: Vec<String> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(SERVICE)
        .query(&mut con)
        .ok()?;
    addr.get(1)?.parse().ok()
}
