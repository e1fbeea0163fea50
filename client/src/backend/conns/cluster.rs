//! Redis Cluster: the slot table, `MOVED`/`ASK` redirects, detecting a
//! cluster from one seed, and hash slots.

use redis::{ConnectionAddr, RedisError, Value};

use super::{Conns, Node, CONNECT_TIMEOUT};
use crate::error::{Error, Result};

/// How many redirects one blocking command follows before it gives up.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// Number of hash slots in Redis Cluster.
pub(super) const SLOTS: usize = 16384;

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
pub(super) struct SlotTable {
    pub(super) nodes: Vec<(String, u16, Node)>,
    /// Index into `nodes` per slot; `u16::MAX` unknown.
    pub(super) owner: Vec<u16>,
}

impl SlotTable {
    pub(super) fn node_index(&mut self, host: &str, port: u16, make: impl FnOnce() -> Node) -> u16 {
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

impl Conns {
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

    /// Reads the slot table (`CLUSTER SLOTS`) through the shared cluster connection.
    pub(super) async fn refresh_slots(&self) -> Result<()> {
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
}

/// The error after [`MAX_REDIRECTS`] redirects of one command.
pub(crate) fn too_many_redirects(key: &[u8]) -> Error {
    Error::TooManyRedirects {
        key: String::from_utf8_lossy(key).into_owned(),
        redirects: MAX_REDIRECTS,
    }
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
pub(super) async fn detect_cluster(client: &redis::Client) -> Result<bool> {
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
            tracing::info!(
                error = %e,
                "INFO cluster refused: taking the server for a single node \
                 (ClientBuilder::cluster(true) for a cluster)"
            );
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
