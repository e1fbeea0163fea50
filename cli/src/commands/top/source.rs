//! Where `baton top` reads its counters: the one server (or the primary the
//! Sentinels name), or every primary of a Cluster, each on its own.
//!
//! The client sums a Cluster's counters, so for the per-node rows this
//! module lists the primaries itself (`CLUSTER NODES` on the seed, read
//! again every frame so a failover shows) and keeps a single-node client
//! per primary.

use std::collections::BTreeMap;
use std::time::Duration;

use baton_client::{Backend, Client, Stats};
use tokio::task::JoinSet;

use crate::args::Conn;
use crate::url::{hosts, redact, with_host};

/// One node's counters, or why they could not be read.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    /// `host:port`, or `primary` behind Sentinels.
    pub(crate) node: String,
    /// The counters, or the error text.
    pub(crate) stats: Result<Stats, String>,
}

/// The nodes to read.
#[derive(Debug)]
pub(crate) enum Source {
    /// One server: the client's own.
    Single {
        /// The row's label.
        node: String,
        /// The client.
        client: Client,
    },
    /// The primaries of a Cluster.
    Cluster(Box<Cluster>),
}

/// The primaries of a Cluster and a client for each.
#[derive(Debug)]
pub(crate) struct Cluster {
    /// The seed URL, for the nodes' URLs (same scheme and credentials).
    url: String,
    /// The seed, asked for the primaries each frame.
    seed: redis::Client,
    /// A client per primary, by `host:port`, or why there is none yet.
    nodes: BTreeMap<String, Result<Client, String>>,
    /// Why the last `CLUSTER NODES` failed (the rows then are the nodes
    /// known before).
    trouble: Option<String>,
}

impl Cluster {
    /// Lists the primaries again: new ones get a client, gone ones are
    /// dropped, and ones that could not be reached are tried again.
    async fn refresh(&mut self) {
        match primaries(&self.seed).await {
            Ok(now) => {
                self.trouble = None;
                self.nodes.retain(|node, _| now.contains(node));
                for node in now {
                    if !matches!(self.nodes.get(&node), Some(Ok(_))) {
                        let client = node_client(&self.url, &node).await;
                        self.nodes.insert(node, client);
                    }
                }
            }
            Err(e) => {
                self.trouble = Some(format!(
                    "cannot list the Cluster's primaries from {}: {e}",
                    redact(&self.url)
                ))
            }
        }
    }
}

impl Source {
    /// The nodes behind `client` (built from `conn`).
    ///
    /// # Errors
    ///
    /// The seed URL of a Cluster cannot be opened by the plain redis client
    /// (it could by baton's, so this does not happen in practice).
    pub(crate) fn new(conn: &Conn, client: Client) -> Result<Self, String> {
        if !client.is_cluster() {
            let node = if conn.url.starts_with("redis+sentinel://") {
                "primary".to_string()
            } else {
                hosts(&conn.url).to_string()
            };
            return Ok(Self::Single { node, client });
        }
        let seed = redis::Client::open(conn.url.as_str()).map_err(|e| e.to_string())?;
        Ok(Self::Cluster(Box::new(Cluster {
            url: conn.url.clone(),
            seed,
            nodes: BTreeMap::new(),
            trouble: None,
        })))
    }

    /// A problem that concerns the whole view (the Cluster's node list).
    pub(crate) fn trouble(&self) -> Option<&str> {
        match self {
            Self::Single { .. } => None,
            Self::Cluster(c) => c.trouble.as_deref(),
        }
    }

    /// Reads every node, each within `timeout`, in the order of their
    /// labels.
    pub(crate) async fn read(&mut self, timeout: Duration) -> Vec<Reading> {
        let clients: Vec<(String, Result<Client, String>)> = match self {
            Self::Single { node, client } => vec![(node.clone(), Ok(client.clone()))],
            Self::Cluster(c) => {
                c.refresh().await;
                c.nodes
                    .iter()
                    .map(|(node, client)| (node.clone(), client.clone()))
                    .collect()
            }
        };
        let mut set = JoinSet::new();
        for (i, (node, client)) in clients.into_iter().enumerate() {
            set.spawn(async move {
                let stats = match client {
                    Err(why) => Err(why),
                    Ok(client) => match tokio::time::timeout(timeout, client.stats()).await {
                        Ok(Ok(stats)) => Ok(stats),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!("no answer within {timeout:?}")),
                    },
                };
                (i, Reading { node, stats })
            });
        }
        let mut readings: Vec<(usize, Reading)> = set.join_all().await;
        readings.sort_by_key(|(i, _)| *i);
        readings.into_iter().map(|(_, r)| r).collect()
    }
}

/// `host:port` of every primary that is not failed, from `CLUSTER NODES`.
async fn primaries(seed: &redis::Client) -> redis::RedisResult<Vec<String>> {
    let mut con = seed.get_multiplexed_async_connection().await?;
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut con)
        .await?;
    Ok(parse_primaries(&text))
}

fn parse_primaries(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let addr = fields.nth(1)?;
            let flags = fields.next()?;
            let usable = flags.split(',').any(|f| f == "master")
                && !flags
                    .split(',')
                    .any(|f| matches!(f, "fail" | "noaddr" | "handshake"));
            let host_port = addr.split(['@', ',']).next()?;
            (usable && !host_port.starts_with(':')).then(|| host_port.to_string())
        })
        .collect();
    out.sort();
    out
}

/// A single-node client with the module for the primary at `node`, or why
/// it cannot be had now (it is tried again next frame).
async fn node_client(url: &str, node: &str) -> Result<Client, String> {
    Client::builder(with_host(url, node))
        .cluster(false)
        .backend(Backend::Module)
        .build()
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_live_primaries_only() {
        let text = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7002@17002,node-b master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7003@17003 master,fail - 0 0 3 connected 10923-16383
d4 127.0.0.1:7004@17004 slave a1 0 0 1 connected
e5 :0@0 master,noaddr - 0 0 0 disconnected
";
        assert_eq!(parse_primaries(text), ["127.0.0.1:7001", "127.0.0.1:7002"]);
    }
}
