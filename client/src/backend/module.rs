//! The module backend: `LOCK.*` commands (SPEC §2).
//!
//! Short commands go through the pool. A wait (`LOCK.ACQUIRE .. WAIT t`)
//! blocks on the server, so it runs on a dedicated connection with no
//! response timeout, opened for that wait alone.

use std::time::Duration;

use super::{info_from_pairs, pairs, Conns, LockInfo, Stats};
use crate::client::Runtime;
use crate::error::Result;
use crate::options::ms;

#[derive(Debug)]
pub(crate) struct ModuleBackend {
    conns: Conns,
}

/// Cleans up after a wait whose future was dropped: kills the waiting
/// connection on the server (which takes it out of the queue, synchronously),
/// then releases in case the grant raced with the drop.
struct WaitCleanup<'a> {
    rt: &'a Runtime,
    conns: &'a Conns,
    key: &'a str,
    token: &'a str,
    client_id: Option<i64>,
    armed: bool,
}

impl Drop for WaitCleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (conns, key, token, id) = (
            self.conns.clone(),
            self.key.to_owned(),
            self.token.to_owned(),
            self.client_id,
        );
        self.rt.spawn(async move {
            if let Ok(mut conn) = conns.get().await {
                if let Some(id) = id {
                    let killed: redis::RedisResult<i64> = redis::cmd("CLIENT")
                        .arg("KILL")
                        .arg("ID")
                        .arg(id)
                        .query_async(&mut conn)
                        .await;
                    if let Err(e) = killed {
                        tracing::debug!(%key, error = %e, "CLIENT KILL of a cancelled wait failed");
                    }
                }
                let released: redis::RedisResult<i64> = redis::cmd("LOCK.RELEASE")
                    .arg(&key)
                    .arg(&token)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = released {
                    tracing::warn!(%key, error = %e, "release after a cancelled wait failed; the ttl will free the lock");
                }
            }
        });
    }
}

impl ModuleBackend {
    /// Checks that the server has the module.
    pub(crate) async fn connect(conns: Conns) -> Result<Option<Self>> {
        Ok(has_module(&conns).await?.then_some(Self { conns }))
    }

    pub(crate) async fn acquire(
        &self,
        rt: &Runtime,
        key: &str,
        token: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Option<u64>> {
        let mut cmd = redis::cmd("LOCK.ACQUIRE");
        cmd.arg(key).arg(token).arg(ms(ttl, 1));
        let wait_ms = ms(wait, 0);
        if wait_ms == 0 {
            let mut conn = self.conns.get().await?;
            return Ok(cmd.query_async(&mut conn).await?);
        }
        cmd.arg("WAIT").arg(wait_ms);
        let mut guard = WaitCleanup {
            rt,
            conns: &self.conns,
            key,
            token,
            client_id: None,
            armed: false,
        };
        let mut conn = self.conns.dedicated().await?;
        guard.client_id = Some(
            redis::cmd("CLIENT")
                .arg("ID")
                .query_async(&mut conn)
                .await?,
        );
        guard.armed = true;
        let reply: redis::RedisResult<Option<u64>> = cmd.query_async(&mut conn).await;
        // A reply (fence, null or error) is definitive: nothing to clean up.
        // A broken connection leaves the outcome unknown: clean up.
        guard.armed = matches!(&reply, Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout());
        Ok(reply?)
    }

    pub(crate) async fn release(&self, key: &str, token: &str) -> Result<bool> {
        let mut conn = self.conns.get().await?;
        let n: i64 = redis::cmd("LOCK.RELEASE")
            .arg(key)
            .arg(token)
            .query_async(&mut conn)
            .await?;
        Ok(n == 1)
    }

    fn extend_cmd(key: &str, token: &str, ttl: Duration) -> redis::Cmd {
        let mut cmd = redis::cmd("LOCK.EXTEND");
        cmd.arg(key).arg(token).arg(ms(ttl, 1));
        cmd
    }

    pub(crate) async fn extend(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        let mut conn = self.conns.get().await?;
        let n: i64 = Self::extend_cmd(key, token, ttl)
            .query_async(&mut conn)
            .await?;
        Ok(n == 1)
    }

    pub(crate) async fn force_release(&self, key: &str) -> Result<bool> {
        let mut conn = self.conns.get().await?;
        let n: i64 = redis::cmd("LOCK.FORCERELEASE")
            .arg(key)
            .query_async(&mut conn)
            .await?;
        Ok(n == 1)
    }

    pub(crate) async fn fence(&self, key: &str) -> Result<u64> {
        let mut conn = self.conns.get().await?;
        Ok(redis::cmd("LOCK.FENCE")
            .arg(key)
            .query_async(&mut conn)
            .await?)
    }

    pub(crate) async fn info(&self, key: &str) -> Result<LockInfo> {
        let mut conn = self.conns.get().await?;
        let v: redis::Value = redis::cmd("LOCK.INFO")
            .arg(key)
            .query_async(&mut conn)
            .await?;
        Ok(info_from_pairs(&pairs(v)?))
    }

    pub(crate) async fn stats(&self) -> Result<Stats> {
        let mut conn = self.conns.get().await?;
        let v: redis::Value = redis::cmd("LOCK.STATS").query_async(&mut conn).await?;
        Ok(Stats::from_pairs(&pairs(v)?))
    }

    pub(crate) async fn wait_replicas(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
        replicas: u64,
        timeout: Duration,
    ) -> Result<u64> {
        self.conns
            .wait_replicas(Self::extend_cmd(key, token, ttl), replicas, timeout)
            .await
    }
}

/// True when the server knows `LOCK.ACQUIRE`.
pub(crate) async fn has_module(conns: &Conns) -> Result<bool> {
    let mut conn = conns.get().await?;
    let v: Vec<redis::Value> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("LOCK.ACQUIRE")
        .query_async(&mut conn)
        .await?;
    Ok(matches!(v.first(), Some(v) if !matches!(v, redis::Value::Nil)))
}
