//! One node's own connections: for server-side waits (cached when idle) and
//! for one short command on that very node, and how the node names them.
//!
//! A name (`CLIENT INFO`) is only a help for taking a wait off a node whose
//! connection failed (`CLIENT KILL`); waits need none, so a user who may
//! not run `CLIENT` waits all the same: the first refusal is remembered
//! per node and no name is asked for again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use redis::ConnectionAddr;

use super::CONNECT_TIMEOUT;
use crate::error::{Error, Result};

/// How many idle wait connections a client keeps per node.
pub(crate) const IDLE_WAIT_CONNS: usize = 16;

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
    /// Asks the server for `conn`'s name (`CLIENT INFO`, Redis 6.2+);
    /// `None` when the user may not run it.
    async fn of(conn: &mut redis::aio::MultiplexedConnection) -> Result<Option<Self>> {
        let info: String = match redis::cmd("CLIENT").arg("INFO").query_async(conn).await {
            Ok(info) => info,
            Err(e) => match Error::from(e) {
                Error::NoPermission(why) => {
                    tracing::debug!(%why, "CLIENT INFO refused: waits go without a connection name");
                    return Ok(None);
                }
                e => return Err(e),
            },
        };
        Self::parse(&info).map(Some).ok_or_else(|| {
            Error::UnexpectedReply(format!("CLIENT INFO without id= and addr=: {info:?}"))
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

/// An idle connection for server-side waits, and its [`ClientName`] (none
/// when the user may not run `CLIENT`).
pub(crate) struct WaitConn {
    pub(crate) conn: redis::aio::MultiplexedConnection,
    pub(crate) name: Option<ClientName>,
    /// True when it comes from the idle cache (it may have died there).
    pub(crate) reused: bool,
}

/// An idle wait connection and its name, if it has one.
type Idle = (redis::aio::MultiplexedConnection, Option<ClientName>);

/// One Redis node, for connections of its own (blocking waits, `CLIENT
/// KILL` of such a wait), with a small cache of idle wait connections.
#[derive(Clone)]
pub(crate) struct Node {
    client: redis::Client,
    /// Idle wait connections (no response timeout) and their names,
    /// shared by the clones of this node; at most [`IDLE_WAIT_CONNS`].
    idle: Arc<Mutex<Vec<Idle>>>,
    /// Set once the node refused `CLIENT INFO` (the user's ACL): names are
    /// not asked for again.
    unnamed: Arc<AtomicBool>,
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
            unnamed: Arc::default(),
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
        let name = match self.unnamed.load(Ordering::Relaxed) {
            true => None,
            false => ClientName::of(&mut conn).await?,
        };
        if name.is_none() {
            self.unnamed.store(true, Ordering::Relaxed);
        }
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
}
