//! etcd as a contender (feature `etcd`): a single-member `etcd` (Debian's
//! `etcd-server`, 3.4) on loopback with its default fsync, started by the
//! benchmark, and its v3 lock service driven through `etcd-client`.
//!
//! Each task holds a session lease of its own (granted once, before the
//! run, as etcd's `concurrency.Session` does) and calls `lock` with it and
//! `unlock` with the key `lock` returned. A lock call waits on the server
//! until granted; a dropped call is withdrawn by the client.
//!
//! Every run has a member of its own: on one member kept for the whole
//! benchmark, the waits cut off at the end of the earlier runs (about a
//! hundred after the 64-task runs; revoking their leases did not help)
//! left the next run with no grant at all, on a key of its own, for its
//! whole 10 s.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant as StdInstant};

use anyhow::{bail, Context, Result};
use etcd_client::{Client, LockOptions};
use tokio::time::Instant;

/// Lease ttl of a task's session, in seconds: longer than any run (warmup,
/// measured time and grace stay under 20 s), so no keep-alive is needed
/// and none competes with the lock calls.
const SESSION_TTL_SECS: i64 = 60;

/// How long `etcd` may take to answer after its start.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// An `etcd` process on 127.0.0.1 with a data dir of its own; killed and
/// its dir removed on drop.
#[derive(Debug)]
pub struct EtcdServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl EtcdServer {
    /// The `etcd` binary: `$ETCD`, else `etcd` on `PATH`.
    pub fn bin() -> PathBuf {
        std::env::var_os("ETCD").map_or_else(|| "etcd".into(), PathBuf::from)
    }

    /// Starts a single member on free ports and waits until it answers.
    pub fn start() -> Result<Self> {
        let dir = tempfile::tempdir().context("temp dir for etcd")?;
        let (port, peer) = (baton_harness::free_port(), baton_harness::free_port());
        let client_url = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log"))?;
        let child = Command::new(Self::bin())
            .arg("--name=bench")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=bench={peer_url}"))
            .arg("--logger=zap")
            .arg("--log-level=error")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {} (Debian: etcd-server)", Self::bin().display()))?;
        let mut server = Self {
            child,
            port,
            _dir: dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's version, e.g. `etcd 3.4.23`.
    pub fn version() -> String {
        Command::new(Self::bin())
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                let version = text
                    .lines()
                    .find_map(|l| l.strip_prefix("etcd Version: "))?
                    .trim()
                    .to_owned();
                Some(format!("etcd {version}"))
            })
            .unwrap_or_else(|| "etcd (version unknown)".into())
    }

    /// Polls the client port, then a status call, until both answer.
    fn wait_ready(&mut self) -> Result<()> {
        let started = StdInstant::now();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let url = self.url();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("etcd exited at start ({status}); see its log");
            }
            let ready = rt.block_on(async {
                let mut client = Client::connect([url.as_str()], None).await?;
                client.status().await
            });
            if ready.is_ok() {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("etcd did not answer on {url} within {START_TIMEOUT:?}: {ready:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One task's handle on etcd: a client (a clone shares the channel) and,
/// once [`Etcd::for_task`] made it, the task's session lease.
#[derive(Clone)]
pub struct Etcd {
    client: Client,
    lease: Option<i64>,
}

// `etcd_client::Client` has no `Debug`.
impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd").field("lease", &self.lease).finish()
    }
}

impl Etcd {
    /// Connects to `url`.
    pub async fn connect(url: &str) -> Result<Self> {
        let client = Client::connect([url], None)
            .await
            .with_context(|| format!("connect to etcd at {url}"))?;
        Ok(Self {
            client,
            lease: None,
        })
    }

    /// A handle for one task, with a session lease of its own.
    pub async fn for_task(&self) -> Result<Self> {
        let mut client = self.client.clone();
        let lease = client.lease_grant(SESSION_TTL_SECS, None).await?.id();
        Ok(Self {
            client,
            lease: Some(lease),
        })
    }

    fn options(&self) -> Option<LockOptions> {
        self.lease.map(|id| LockOptions::new().with_lease(id))
    }

    /// Locks `name`, waiting as long as it takes; the key to unlock with.
    pub async fn lock(&self, name: &str) -> Result<Vec<u8>> {
        let mut client = self.client.clone();
        let resp = client.lock(name, self.options()).await?;
        Ok(resp.key().to_vec())
    }

    /// Locks `name` unless `deadline` passes first (the call is dropped,
    /// which cancels it on the server).
    pub async fn lock_until(&self, name: &str, deadline: Instant) -> Result<Option<Vec<u8>>> {
        match tokio::time::timeout_at(deadline, self.lock(name)).await {
            Ok(key) => key.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Unlocks with the key `lock` returned.
    pub async fn unlock(&self, key: Vec<u8>) -> Result<()> {
        self.client.clone().unlock(key).await?;
        Ok(())
    }
}
