//! The module backend: `LOCK.*` commands (SPEC §2).
//!
//! Short commands go through the pool. A wait (`LOCK.ACQUIRE .. WAIT t`)
//! blocks on the server, so it runs on a connection of its own with no
//! response timeout, on the node that serves the key (in a Redis Cluster:
//! following `MOVED`/`ASK`, see [`Conns::redirect`]). Such connections and
//! their [`ClientName`] (id and address) are cached per node
//! ([`Node::wait_conn`]): one whose wait got a reply (granted or timed out)
//! is reused by a later wait. Cancelling a wait kills its connection on
//! that node (`CLIENT KILL ID .. ADDR ..`: after a server restart the id
//! alone may be another client's) and releases a raced grant; that
//! connection is never reused, nor is one that failed. A cached connection
//! that turns out dead is withdrawn the same way before the wait is retried
//! on a new connection. A try (no wait) that is dropped after its ACQUIRE
//! went out releases in the background too, on the same pool connection,
//! so that the RELEASE runs after the ACQUIRE.
//!
//! A wait that the server ends with an `UNBLOCKED` error (the module: the
//! lock's key was deleted, renamed, moved or flushed under its queue;
//! Redis: the node became a replica) holds nothing: it is retried with the
//! time left, or ends as a timeout when none is left. Redirects, dead
//! cached connections and such retries together make at most
//! [`MAX_REDIRECTS`] + 1 attempts.
//!
//! On a Redis Cluster, [`ModuleBackend::stats`] sums `LOCK.STATS` over every
//! primary, and the module counts as present only when every primary has it.

use std::time::Duration;

use tokio::time::Instant;

use super::conns::{too_many_redirects, ClientName, Conn, Node, MAX_REDIRECTS};
use super::{info_from_pairs, pairs, Conns, Granted, LockInfo, Stats};
use crate::client::Runtime;
use crate::error::Result;
use crate::options::ms;

#[derive(Debug)]
pub(crate) struct ModuleBackend {
    conns: Conns,
}

/// Cleans up after an acquire whose future was dropped once its command
/// may have gone out: kills the waiting connection of a wait on the node it
/// waits on (which takes it out of the queue, synchronously), then releases
/// in case the lock was granted.
struct Cleanup<'a> {
    rt: &'a Runtime,
    conns: &'a Conns,
    key: &'a str,
    token: &'a str,
    /// A wait: the node of the waiting connection and its name there.
    waiting: Option<(Node, ClientName)>,
    /// A try: the pool connection its ACQUIRE went out on, so that the
    /// RELEASE runs after it.
    sent_on: Option<Conn>,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (conns, key, token, waiting, sent_on) = (
            self.conns.clone(),
            self.key.to_owned(),
            self.token.to_owned(),
            self.waiting.take(),
            self.sent_on.take(),
        );
        self.rt.spawn(async move {
            let _ = withdraw(&conns, waiting, sent_on, &key, &token).await;
        });
    }
}

/// True when an ACQUIRE's outcome is unknown (no reply: the connection
/// broke or timed out); a reply, even an error, is definitive.
fn unanswered<T>(reply: &redis::RedisResult<T>) -> bool {
    matches!(reply, Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_timeout())
}

/// Withdraws an acquire whose outcome is unknown: kills the waiting
/// connection of a wait on its node (`CLIENT KILL ID .. ADDR ..`, which
/// takes it out of the queue, synchronously), then releases in case the
/// lock was granted (a try's RELEASE goes behind its ACQUIRE, on
/// `sent_on`). `Err` when the release could not be sent.
async fn withdraw(
    conns: &Conns,
    waiting: Option<(Node, ClientName)>,
    sent_on: Option<Conn>,
    key: &str,
    token: &str,
) -> Result<()> {
    if let Some((node, name)) = waiting {
        let killed = match node.short().await {
            Ok(mut conn) => name
                .kill()
                .query_async::<i64>(&mut conn)
                .await
                .map_err(crate::error::Error::from),
            Err(e) => Err(e),
        };
        if let Err(e) = killed {
            tracing::debug!(%key, ?node, error = %e, "CLIENT KILL of a cancelled wait failed");
        }
    }
    let mut release = redis::cmd("LOCK.RELEASE");
    release.arg(key).arg(token);
    if let Err(e) = conns.send_after(sent_on, &release).await {
        tracing::warn!(%key, error = %e, "release after a cancelled acquire failed; the ttl will free the lock");
        return Err(e);
    }
    Ok(())
}

impl ModuleBackend {
    /// The backend on `conns`, whose primaries were found to have the
    /// module ([`has_module`]).
    pub(crate) fn new(conns: Conns) -> Self {
        Self { conns }
    }

    pub(crate) fn conns(&self) -> &Conns {
        &self.conns
    }

    pub(crate) async fn acquire(
        &self,
        rt: &Runtime,
        key: &str,
        token: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Option<Granted>> {
        let mut cmd = redis::cmd("LOCK.ACQUIRE");
        cmd.arg(key).arg(token).arg(ms(ttl, 1));
        let wait_ms = ms(wait, 0);
        let mut guard = Cleanup {
            rt,
            conns: &self.conns,
            key,
            token,
            waiting: None,
            sent_on: None,
            armed: false,
        };
        if wait_ms == 0 {
            let mut conn = self.conns.get().await?;
            guard.sent_on = Some(conn.clone());
            guard.armed = true;
            let since = Instant::now();
            let reply: redis::RedisResult<Option<u64>> = cmd.query_async(&mut conn).await;
            guard.armed = unanswered(&reply);
            return Ok(reply?.map(|fence| Granted {
                fence,
                since,
                blind: false,
            }));
        }
        let deadline = Instant::now() + wait;
        let mut node = self.conns.owner(key.as_bytes());
        let mut asking = false;
        for attempt in 0..=MAX_REDIRECTS {
            // A retry waits for the time left; it may be 0 (one try).
            let left = match attempt {
                0 => wait_ms,
                _ => ms(deadline.saturating_duration_since(Instant::now()), 0),
            };
            let mut cmd = cmd.clone();
            cmd.arg("WAIT").arg(left);
            let mut wait = node.wait_conn().await?;
            guard.waiting = Some((node.clone(), wait.name.clone()));
            guard.armed = true;
            if asking {
                let _: redis::Value = redis::cmd("ASKING").query_async(&mut wait.conn).await?;
            }
            let sent = Instant::now();
            let reply: redis::RedisResult<Option<u64>> = cmd.query_async(&mut wait.conn).await;
            let broken = unanswered(&reply);
            guard.armed = broken;
            match &reply {
                Ok(_) => node.put_back(wait),
                Err(_) if broken && wait.reused => {
                    // The cached connection died while idle (server
                    // restart, idle timeout): withdraw this attempt now,
                    // then wait again on a new connection. Dropped midway,
                    // the armed guard withdraws again.
                    node.clear_idle();
                    withdraw(&self.conns, guard.waiting.clone(), None, key, token).await?;
                    guard.armed = false;
                    continue;
                }
                Err(e) if e.code() == Some("UNBLOCKED") && attempt < MAX_REDIRECTS => {
                    // The server ended the wait and holds nothing for us:
                    // the lock's key went away under its queue (module), or
                    // the node became a replica (Redis; the retry then gets
                    // READONLY or MOVED). Wait again for the time left, on
                    // a new connection (Redis closes this one).
                    if deadline <= Instant::now() {
                        return Ok(None);
                    }
                    tracing::debug!(%key, error = %e, "wait unblocked by the server; waiting again");
                    continue;
                }
                Err(e) => {
                    // Another node serves the key: wait there instead.
                    if let Some(r) = self.conns.redirect(key.as_bytes(), e) {
                        (node, asking) = (r.node, r.asking);
                        continue;
                    }
                }
            }
            // Granted at the hand-off, at some time after `sent`.
            return Ok(reply?.map(|fence| Granted {
                fence,
                since: sent,
                blind: true,
            }));
        }
        Err(too_many_redirects(key.as_bytes()))
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

    /// `LOCK.STATS` of the node, or on a cluster the sum over every primary
    /// (a lock lives on the primary of its slot, so no lock is counted
    /// twice; replicas are left out, they mirror their primary).
    pub(crate) async fn stats(&self) -> Result<Stats> {
        let mut total = Stats::default();
        for (_, v) in self.conns.on_primaries(&redis::cmd("LOCK.STATS")).await? {
            total.add(&Stats::from_pairs(&pairs(v)?));
        }
        Ok(total)
    }

    pub(crate) async fn wait_replicas(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
        replicas: u64,
        timeout: Duration,
    ) -> Result<Option<u64>> {
        self.conns
            .wait_replicas(
                key.as_bytes(),
                Self::extend_cmd(key, token, ttl),
                replicas,
                timeout,
            )
            .await
    }
}

/// True when the server knows `LOCK.ACQUIRE`; on a cluster, when every
/// primary does (a lock may live on any of them).
pub(crate) async fn has_module(conns: &Conns) -> Result<bool> {
    let mut cmd = redis::cmd("COMMAND");
    cmd.arg("INFO").arg("LOCK.ACQUIRE");
    let replies = conns.on_primaries(&cmd).await?;
    let with: Vec<bool> = replies
        .into_iter()
        .map(|(_, v)| {
            let v: Vec<redis::Value> = redis::from_redis_value(v).unwrap_or_default();
            matches!(v.first(), Some(v) if !matches!(v, redis::Value::Nil))
        })
        .collect();
    if with.contains(&true) && with.contains(&false) {
        tracing::warn!("the baton module is loaded on some cluster primaries only: not using it");
    }
    Ok(!with.is_empty() && with.iter().all(|&w| w))
}
