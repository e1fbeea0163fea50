//! The contenders: baton (module, Lua, memory backends), Redlock through
//! `rslock`, the raw `SET NX PX` baseline and (feature `etcd`) etcd's lock
//! service, behind one enum so that every workload drives them the same way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use baton_client::{Backend, Client, LockGuard, LockOptions};
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use tokio::time::Instant;

/// Lock ttl used by every contender: far longer than any hold, so no lock
/// expires during a run.
pub const TTL: Duration = Duration::from_secs(10);

/// The check-and-delete release of a single-instance Redis lock (the same
/// script as Redlock's unlock).
const CHECK_AND_DELETE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// rslock's own defaults: 3 tries, a random delay in `0..200` ms between them.
pub const REDLOCK_DEFAULT_RETRY: (u32, Duration) = (3, Duration::from_millis(200));

/// The tuned retry for rslock: retry without end (the run's deadline bounds
/// it), with a random delay in `0..REDLOCK_TUNED_DELAY` between tries.
///
/// Chosen by a sweep of 2, 5, 10 and 20 ms (`--redlock-delay-ms`, quick
/// runs, 2 cores): 5 ms gave Redlock x3 its best rate at 8 tasks / hold
/// 1 ms (801/s, vs 696, 791, 782) and was within 20% of the best at every
/// other shape; 2 ms gave the smallest max waits but floods the servers
/// (half the rate at hold 0). rslock jitters in whole ms below the delay,
/// so 1 ms would busy-spin.
pub const REDLOCK_TUNED_DELAY: Duration = Duration::from_millis(5);

/// Which retry settings a Redlock contender uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Retry {
    /// rslock's defaults (3 tries, 0..200 ms), called again until granted.
    Default,
    /// Endless tries with a short random delay (0..delay ms).
    Tuned(u64),
}

/// How the raw baseline releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawRelease {
    /// EVALSHA of the check-and-delete script: a correct single-instance lock.
    CheckAndDelete(String),
    /// Plain `DEL`: not a safe release (it can delete someone else's lock),
    /// only the floor of two commands per cycle.
    PlainDel,
}

/// How long after its deadline a wait may take to return before it counts
/// as [`Stuck`]: the benchmark always ends by itself, even when a client
/// hangs.
pub const GRACE: Duration = Duration::from_secs(2);

/// A wait that did not return [`GRACE`] after its deadline.
#[derive(Debug, Clone, Copy)]
pub struct Stuck;

impl std::fmt::Display for Stuck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a wait did not return {GRACE:?} after its deadline")
    }
}

impl std::error::Error for Stuck {}

/// One lock implementation under test.
#[derive(Debug, Clone)]
pub enum Contender {
    /// baton through `baton_client`.
    Baton {
        /// Short name in the tables.
        name: String,
        /// The client (its backend is fixed at build time).
        client: Client,
        /// Durable acquire: `WAIT` for this many replicas after each grant.
        durable: Option<u64>,
        /// Whether each guard's watchdog runs (the client's default; off
        /// elsewhere, as no other contender has one).
        watchdog: bool,
    },
    /// `SET key token NX PX ttl`, then the release, on one multiplexed
    /// connection shared by all tasks.
    Raw {
        /// Short name in the tables.
        name: String,
        /// The shared connection.
        conn: MultiplexedConnection,
        /// How it releases.
        release: RawRelease,
    },
    /// The floor of any lock hand-off through Redis, not a lock: one token
    /// in a list, taken with `BLPOP` (each task on a connection of its own,
    /// Redis serves its blocked clients in FIFO order) and put back with
    /// `LPUSH` on the shared connection. Only for the contended workload.
    RawHandoff {
        /// Short name in the tables.
        name: String,
        /// Its connections (boxed: far larger than the other variants).
        conns: Box<HandoffConns>,
    },
    /// Redlock (`rslock`), on one or more instances.
    Redlock {
        /// Short name in the tables.
        name: String,
        /// The lock manager (one multiplexed connection per instance).
        manager: rslock::LockManager,
        /// Its retry settings.
        retry: Retry,
    },
    /// etcd's v3 lock service, a session lease per task.
    #[cfg(feature = "etcd")]
    Etcd {
        /// Short name in the tables.
        name: String,
        /// The client, with the task's lease after [`Contender::for_task`]
        /// (boxed: etcd's client is far larger than the other variants).
        etcd: Box<crate::etcd::Etcd>,
        /// The run's own etcd member, stopped when the last clone goes.
        _server: std::sync::Arc<crate::etcd::EtcdServer>,
    },
}

/// The raw hand-off's connections.
#[derive(Debug, Clone)]
pub struct HandoffConns {
    /// For the per-task connections.
    client: redis::Client,
    /// Where `LPUSH` goes.
    shared: MultiplexedConnection,
    /// The task's own connection for `BLPOP`, once [`Contender::for_task`]
    /// made it.
    wait: Option<MultiplexedConnection>,
}

/// How to build a contender; the load generator builds a fresh one for
/// every run, so that nothing (a broken connection, a hung subscription)
/// carries over from one run to the next.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Name in the tables.
    pub name: String,
    /// What to build.
    pub kind: Kind,
}

/// The kinds of contender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// baton with this backend, on the main server, watchdog off.
    Baton(Backend),
    /// baton's module with the watchdog on, as the client's default.
    BatonWatchdog,
    /// baton's module with durable acquire: `WAIT` for this many replicas
    /// after each grant (the main server needs them).
    BatonDurable(u64),
    /// The raw baseline on the main server; `true`: check-and-delete.
    Raw(bool),
    /// The raw `BLPOP`/`LPUSH` token hand-off on the main server.
    RawHandoff,
    /// Redlock on 1 (the main server) or 3 instances.
    Redlock(usize, Retry),
    /// etcd's lock service, on a member started for the run: etcd 3.4
    /// carries the waits a run cancelled over to the next (see
    /// [`crate::etcd`]).
    #[cfg(feature = "etcd")]
    Etcd,
}

impl Spec {
    /// A spec.
    pub fn new(name: impl Into<String>, kind: Kind) -> Self {
        Self {
            name: name.into(),
            kind,
        }
    }

    /// Connects it: `urls[0]` is the main server, Redlock x3 uses the first
    /// three.
    pub async fn build(&self, urls: &[String]) -> Result<Contender> {
        match self.kind {
            Kind::Baton(backend) => Contender::baton(&self.name, &urls[0], backend, None).await,
            Kind::BatonWatchdog => {
                let mut c = Contender::baton(&self.name, &urls[0], Backend::Module, None).await?;
                if let Contender::Baton { watchdog, .. } = &mut c {
                    *watchdog = true;
                }
                Ok(c)
            }
            Kind::BatonDurable(replicas) => {
                Contender::baton(&self.name, &urls[0], Backend::Module, Some(replicas)).await
            }
            Kind::Raw(cad) => Contender::raw(&self.name, &urls[0], cad).await,
            Kind::RawHandoff => Contender::raw_handoff(&self.name, &urls[0]).await,
            Kind::Redlock(n, retry) => Ok(Contender::redlock(&self.name, &urls[..n], retry)),
            #[cfg(feature = "etcd")]
            Kind::Etcd => {
                let server = tokio::task::spawn_blocking(crate::etcd::EtcdServer::start).await??;
                Ok(Contender::Etcd {
                    name: self.name.clone(),
                    etcd: Box::new(crate::etcd::Etcd::connect(&server.url()).await?),
                    _server: std::sync::Arc::new(server),
                })
            }
        }
    }
}

/// A held lock, whatever the contender.
#[derive(Debug)]
pub enum Held {
    /// A baton guard.
    Baton(LockGuard),
    /// A raw lock: key and token.
    Raw(String, String),
    /// The raw hand-off's token, taken from the list at this key.
    RawHandoff(String),
    /// A Redlock lock.
    Redlock(rslock::Lock),
    /// An etcd lock: the key `lock` returned.
    #[cfg(feature = "etcd")]
    Etcd(Vec<u8>),
}

/// Unique tokens for the raw baseline.
static RAW_TOKENS: AtomicU64 = AtomicU64::new(0);

impl Contender {
    /// baton with `backend` on `url` (`Backend::Memory` ignores the url),
    /// durable when `durable` names a replica count.
    pub async fn baton(
        name: &str,
        url: &str,
        backend: Backend,
        durable: Option<u64>,
    ) -> Result<Self> {
        let client = Client::builder(url)
            .backend(backend)
            .build()
            .await
            .with_context(|| format!("connect baton ({backend:?}) to {url}"))?;
        Ok(Self::Baton {
            name: name.into(),
            client,
            durable,
            watchdog: false,
        })
    }

    /// The raw `SET NX PX` baseline on `url`.
    pub async fn raw(name: &str, url: &str, check_and_delete: bool) -> Result<Self> {
        let mut conn = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("connect to {url}"))?;
        let release = if check_and_delete {
            let sha: String = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(CHECK_AND_DELETE)
                .query_async(&mut conn)
                .await?;
            RawRelease::CheckAndDelete(sha)
        } else {
            RawRelease::PlainDel
        };
        Ok(Self::Raw {
            name: name.into(),
            conn,
            release,
        })
    }

    /// The raw `BLPOP`/`LPUSH` hand-off on `url`.
    pub async fn raw_handoff(name: &str, url: &str) -> Result<Self> {
        let client = redis::Client::open(url)?;
        let shared = client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("connect to {url}"))?;
        Ok(Self::RawHandoff {
            name: name.into(),
            conns: Box::new(HandoffConns {
                client,
                shared,
                wait: None,
            }),
        })
    }

    /// Redlock on `urls` (quorum `n/2 + 1`) with `retry`.
    pub fn redlock(name: &str, urls: &[String], retry: Retry) -> Self {
        let mut manager = rslock::LockManager::new(urls.to_vec());
        match retry {
            Retry::Default => manager.set_retry(REDLOCK_DEFAULT_RETRY.0, REDLOCK_DEFAULT_RETRY.1),
            Retry::Tuned(ms) => manager.set_retry(u32::MAX, Duration::from_millis(ms)),
        }
        Self::Redlock {
            name: name.into(),
            manager,
            retry,
        }
    }

    /// The name in the tables.
    pub fn name(&self) -> &str {
        match self {
            Self::Baton { name, .. }
            | Self::Raw { name, .. }
            | Self::RawHandoff { name, .. }
            | Self::Redlock { name, .. } => name,
            #[cfg(feature = "etcd")]
            Self::Etcd { name, .. } => name,
        }
    }

    /// The contender one task of a workload drives: a clone, and for etcd
    /// one with a session lease of the task's own.
    pub async fn for_task(&self) -> Result<Self> {
        match self {
            Self::RawHandoff { name, conns } => Ok(Self::RawHandoff {
                name: name.clone(),
                conns: Box::new(HandoffConns {
                    // No response timeout (redis-rs' default is 500 ms): a
                    // BLPOP given up by the client would stay queued on the
                    // server and take the next LPUSH's token with it.
                    wait: Some(
                        conns
                            .client
                            .get_multiplexed_async_connection_with_config(
                                &redis::AsyncConnectionConfig::new().set_response_timeout(None),
                            )
                            .await?,
                    ),
                    ..(**conns).clone()
                }),
            }),
            #[cfg(feature = "etcd")]
            Self::Etcd {
                name,
                etcd,
                _server,
            } => Ok(Self::Etcd {
                name: name.clone(),
                etcd: Box::new(etcd.for_task().await?),
                _server: _server.clone(),
            }),
            _ => Ok(self.clone()),
        }
    }

    /// Readies `key` for a contended run: the raw hand-off puts its one
    /// token in; the locks need nothing.
    pub async fn prepare(&self, key: &str) -> Result<()> {
        if let Self::RawHandoff { conns, .. } = self {
            redis::pipe()
                .del(key)
                .ignore()
                .lpush(key, "token")
                .ignore()
                .query_async::<()>(&mut conns.shared.clone())
                .await?;
        }
        Ok(())
    }

    /// One try, no wait: `Some` when granted.
    pub async fn try_acquire(&self, key: &str) -> Result<Option<Held>> {
        match self {
            Self::Baton {
                client,
                durable,
                watchdog,
                ..
            } => {
                let mut opts = LockOptions::new().ttl(TTL).watchdog(*watchdog);
                if let Some(replicas) = durable {
                    opts = opts.durable(*replicas, Duration::from_secs(1));
                }
                Ok(client.try_lock(key, &opts).await?.map(Held::Baton))
            }
            Self::Raw { conn, .. } => {
                let token = RAW_TOKENS.fetch_add(1, Ordering::Relaxed).to_string();
                let ok: Option<String> = redis::cmd("SET")
                    .arg(key)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(TTL.as_millis() as u64)
                    .query_async(&mut conn.clone())
                    .await?;
                Ok(ok.map(|_| Held::Raw(key.to_owned(), token)))
            }
            Self::Redlock { manager, .. } => match manager.lock(key, TTL).await {
                Ok(lock) => Ok(Some(Held::Redlock(lock))),
                Err(rslock::LockError::Unavailable) => Ok(None),
                Err(e) => Err(e.into()),
            },
            Self::RawHandoff { .. } => bail!("the raw hand-off has no try"),
            // etcd's lock has no try: on a key nobody else holds it is
            // granted at once.
            #[cfg(feature = "etcd")]
            Self::Etcd { etcd, .. } => Ok(Some(Held::Etcd(etcd.lock(key).await?))),
        }
    }

    /// Waits for the lock until `deadline`: baton waits in its queue
    /// (`lock` with a wait), Redlock calls `lock` (its own retry loop) again
    /// until granted. `None` when the deadline passed first.
    ///
    /// # Errors
    ///
    /// [`Stuck`] when a baton wait has not returned [`GRACE`] after the
    /// deadline (it is cancelled then), and the contender's own errors.
    pub async fn acquire_until(&self, key: &str, deadline: Instant) -> Result<Option<Held>> {
        match self {
            Self::Baton { client, .. } => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                // Whole ms, rounded up, so the wait covers the deadline.
                let wait = Duration::from_millis(left.as_millis() as u64 + 1);
                let opts = LockOptions::new().ttl(TTL).wait(wait).watchdog(false);
                let lock = client.lock(key, &opts);
                match tokio::time::timeout_at(deadline + GRACE, lock).await {
                    Err(_) => Err(Stuck.into()),
                    Ok(Ok(guard)) => Ok(Some(Held::Baton(guard))),
                    Ok(Err(baton_client::Error::NotAcquired { .. })) => Ok(None),
                    Ok(Err(e)) => Err(e.into()),
                }
            }
            Self::Redlock { manager, .. } => {
                let attempts = async {
                    loop {
                        match manager.lock(key, TTL).await {
                            Ok(lock) => return Ok(lock),
                            Err(rslock::LockError::Unavailable) => continue,
                            Err(e) => return Err(e),
                        }
                    }
                };
                match tokio::time::timeout_at(deadline, attempts).await {
                    Ok(lock) => Ok(Some(Held::Redlock(lock?))),
                    Err(_) => Ok(None),
                }
            }
            #[cfg(feature = "etcd")]
            Self::Etcd { etcd, .. } => Ok(etcd.lock_until(key, deadline).await?.map(Held::Etcd)),
            Self::RawHandoff { conns, .. } => {
                let mut conn = (conns.wait.clone())
                    .context("a raw hand-off waits on a connection of the task's own")?;
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                // BLPOP takes seconds (0 would mean forever): at least 1 ms.
                let secs = left.as_secs_f64().max(0.001);
                let popped: Option<(String, String)> = redis::cmd("BLPOP")
                    .arg(key)
                    .arg(format!("{secs:.3}"))
                    .query_async(&mut conn)
                    .await?;
                Ok(popped.map(|_| Held::RawHandoff(key.to_owned())))
            }
            Self::Raw { .. } => bail!("the raw baseline does not wait"),
        }
    }

    /// Releases `held`; returns when the release reply arrived.
    pub async fn release(&self, held: Held) -> Result<()> {
        match (self, held) {
            (Self::Baton { .. }, Held::Baton(guard)) => {
                guard.release().await?;
            }
            (Self::Raw { conn, release, .. }, Held::Raw(key, token)) => {
                let mut conn = conn.clone();
                let _: i64 = match release {
                    RawRelease::CheckAndDelete(sha) => {
                        redis::cmd("EVALSHA")
                            .arg(sha)
                            .arg(1)
                            .arg(&key)
                            .arg(&token)
                            .query_async(&mut conn)
                            .await?
                    }
                    RawRelease::PlainDel => {
                        redis::cmd("DEL").arg(&key).query_async(&mut conn).await?
                    }
                };
            }
            (Self::RawHandoff { conns, .. }, Held::RawHandoff(key)) => {
                let _: i64 = redis::cmd("LPUSH")
                    .arg(&key)
                    .arg("token")
                    .query_async(&mut conns.shared.clone())
                    .await?;
            }
            (Self::Redlock { .. }, Held::Redlock(lock)) => lock.release().await,
            #[cfg(feature = "etcd")]
            (Self::Etcd { etcd, .. }, Held::Etcd(key)) => etcd.unlock(key).await?,
            (c, h) => bail!("{} cannot release {h:?}", c.name()),
        }
        Ok(())
    }
}
