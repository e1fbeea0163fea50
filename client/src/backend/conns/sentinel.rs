//! Redis Sentinel: `redis+sentinel://` URLs, finding the primary through
//! the Sentinels, and a pool manager whose connections always go to the
//! primary the Sentinels name when the connection is made.
//!
//! The URL is `redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]`:
//! the Sentinels' addresses, the name they monitor the primary under, and
//! the database; user and password are the data nodes' (the Sentinels are
//! asked without credentials).
//!
//! Following a promotion: a pooled connection is dropped at its next
//! checkout once a command on it fails with a connection error, a timeout
//! or `READONLY` (the node was demoted), and a new one asks the Sentinels
//! again ([`SentinelManager`]); the node for server-side waits is the one
//! last found ([`Sentinel::primary`]), asked again after a wait on it
//! failed ([`Sentinel::forget`]). The `redis` crate checks with `ROLE`
//! that a node the Sentinels name really is a primary.

use std::future::Future;
use std::sync::RwLock;
use std::time::Duration;

use deadpool::managed;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::RedisError;

use super::Node;
use crate::error::{Error, Result};

/// The URL scheme of a Sentinel-monitored primary.
pub(crate) const SCHEME: &str = "redis+sentinel://";

/// How long opening a connection to a node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed `redis+sentinel://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SentinelUrl {
    /// `redis://host:port` of every Sentinel.
    pub(crate) sentinels: Vec<String>,
    /// The name the Sentinels monitor the primary under.
    pub(crate) service: String,
    /// `redis://[user:password@]host/db`: the data nodes' settings, with
    /// the first Sentinel's host as a placeholder address.
    pub(crate) node_url: String,
}

impl SentinelUrl {
    /// Parses `url`; `None` when it does not start with [`SCHEME`].
    pub(crate) fn parse(url: &str) -> Option<Result<Self>> {
        let rest = url.strip_prefix(SCHEME)?;
        Some(Self::parse_rest(rest).ok_or_else(|| {
            Error::InvalidOptions(format!(
                "bad Sentinel URL {:?}: expected \
                 redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]",
                crate::error::redact_url(url)
            ))
        }))
    }

    fn parse_rest(rest: &str) -> Option<Self> {
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((auth, rest)) => (Some(auth), rest),
            None => (None, rest),
        };
        let (hosts, path) = rest.split_once('/')?;
        let (service, db) = match path.split_once('/') {
            Some((service, db)) => (service, Some(db)),
            None => (path, None),
        };
        let db: i64 = match db {
            None | Some("") => 0,
            Some(db) => db.parse().ok()?,
        };
        if service.is_empty() || hosts.is_empty() {
            return None;
        }
        let sentinels: Vec<String> = hosts
            .split(',')
            .map(|host| {
                let (h, p) = host.rsplit_once(':')?;
                let port: u16 = p.parse().ok()?;
                (!h.is_empty()).then(|| format!("redis://{h}:{port}"))
            })
            .collect::<Option<_>>()?;
        let first = hosts.split(',').next()?;
        let auth = auth.map_or_else(String::new, |a| format!("{a}@"));
        Some(Self {
            sentinels,
            service: service.to_owned(),
            node_url: format!("redis://{auth}{first}/{db}"),
        })
    }
}

/// The Sentinels of one service and the primary they last named.
pub(crate) struct Sentinel {
    client: tokio::sync::Mutex<SentinelClient>,
    primary: RwLock<Option<Node>>,
}

impl std::fmt::Debug for Sentinel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sentinel").finish_non_exhaustive()
    }
}

impl Sentinel {
    /// The Sentinels of `url` (nothing is asked yet).
    pub(crate) fn new(url: &SentinelUrl) -> Result<Self> {
        let node = redis::Client::open(url.node_url.as_str())?;
        let settings = node.get_connection_info().redis_settings().clone();
        let client = SentinelClient::build(
            url.sentinels.clone(),
            url.service.clone(),
            Some(SentinelNodeConnectionInfo::default().set_redis_connection_info(settings)),
            SentinelServerType::Master,
        )?;
        Ok(Self {
            client: tokio::sync::Mutex::new(client),
            primary: RwLock::new(None),
        })
    }

    /// The primary last found, or the one the Sentinels name now.
    pub(crate) async fn primary(&self) -> Result<Node> {
        if let Some(node) = self.primary.read().expect("primary poisoned").clone() {
            return Ok(node);
        }
        self.find_boxed().await
    }

    /// [`Sentinel::find`], boxed: the Sentinel client's futures nest deep
    /// (and are large), and held inline they would make every wait's
    /// future carry them and overflow rustc's layout query depth.
    fn find_boxed(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<Node>> + Send + '_>> {
        Box::pin(self.find())
    }

    /// Asks the Sentinels for the primary now (and checks its role).
    pub(crate) async fn find(&self) -> Result<Node> {
        let client = self.client.lock().await.async_get_client().await?;
        let mut cached = self.primary.write().expect("primary poisoned");
        // Keep the node (and its idle wait connections) when it did not move.
        match cached.as_ref() {
            Some(node) if node.addr() == client.get_connection_info().addr() => Ok(node.clone()),
            _ => {
                let node = Node::new(client);
                *cached = Some(node.clone());
                Ok(node)
            }
        }
    }

    /// Forgets the primary if it is `stale` (a wait on it failed): the next
    /// [`Sentinel::primary`] asks the Sentinels again.
    pub(crate) fn forget(&self, stale: &Node) {
        let mut cached = self.primary.write().expect("primary poisoned");
        if cached
            .as_ref()
            .is_some_and(|node| node.addr() == stale.addr())
        {
            *cached = None;
        }
    }
}

/// Opens pool connections to the primary the Sentinels name at that moment.
pub(crate) struct SentinelManager(pub(crate) std::sync::Arc<Sentinel>);

impl std::fmt::Debug for SentinelManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SentinelManager")
    }
}

impl managed::Manager for SentinelManager {
    type Type = redis::aio::MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> std::result::Result<Self::Type, Self::Error> {
        let node = self.0.find().await.map_err(|e| match e {
            Error::Redis(e) => e,
            other => RedisError::from((
                redis::ErrorKind::Io,
                "no primary from the Sentinels",
                other.to_string(),
            )),
        })?;
        let cfg = redis::AsyncConnectionConfig::new().set_connection_timeout(Some(CONNECT_TIMEOUT));
        node.client()
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
    }

    async fn recycle(
        &self,
        _: &mut Self::Type,
        _: &managed::Metrics,
    ) -> managed::RecycleResult<Self::Error> {
        // Broken connections are told apart by `NoPing`, which wraps this.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_parse() {
        let url = SentinelUrl::parse("redis+sentinel://127.0.0.1:26379,h2:26380/baton")
            .unwrap()
            .unwrap();
        assert_eq!(
            url.sentinels,
            vec!["redis://127.0.0.1:26379", "redis://h2:26380"]
        );
        assert_eq!(url.service, "baton");
        assert_eq!(url.node_url, "redis://127.0.0.1:26379/0");
        let auth = SentinelUrl::parse("redis+sentinel://u:p%40ss@h:1/svc/3")
            .unwrap()
            .unwrap();
        assert_eq!(auth.node_url, "redis://u:p%40ss@h:1/3");
        assert!(SentinelUrl::parse("redis://h:1").is_none());
        for bad in [
            "redis+sentinel://h:1",
            "redis+sentinel://h:1/",
            "redis+sentinel:///svc",
            "redis+sentinel://h/svc",
            "redis+sentinel://h:x/svc",
            "redis+sentinel://h:1/svc/x",
        ] {
            assert!(SentinelUrl::parse(bad).unwrap().is_err(), "{bad}");
        }
    }
}
