//! The module backend: `LOCK.*` commands for locks, `SEM.*` for leases of
//! semaphores (and read-write locks), one code path for both: what differs
//! is the command's prefix and the `LIMIT n PERMITS p` of a semaphore's
//! acquire ([`command`], [`acquire_cmd`]).
//!
//! Short commands go on the shared connection. A wait (`LOCK.ACQUIRE .. WAIT t`,
//! `SEM.ACQUIRE .. WAIT t`) blocks on the server, so it runs on a
//! connection of its own with no response timeout, on the node that serves
//! the key (in a Redis Cluster: following `MOVED`/`ASK`, see
//! [`Conns::redirect`]). Such connections and their [`ClientName`] (id and
//! address, when the user may run `CLIENT INFO`) are cached per node
//! ([`Node::wait_conn`]): one whose wait got a reply (granted or timed out)
//! is reused by a later wait.
//!
//! Cancelling a wait needs no `CLIENT` command ([`withdraw`]): a RELEASE by
//! the wait's token goes behind the ACQUIRE on the wait's own connection
//! (so it runs after the ACQUIRE, whatever that was answered), and RELEASEs
//! on the shared connection withdraw the wait from the queue (the module's
//! RELEASE by a queued token does that) until the one behind has its
//! reply; then nothing is held or queued, and the connection is dropped. A
//! connection whose wait failed is never reused; a cached one that turns
//! out dead is taken off its node (`CLIENT KILL ID .. ADDR ..`, best
//! effort, when it has a name: after a server restart the id alone may be
//! another client's) before the wait is retried on a new connection. A try
//! (no wait) that is dropped after its ACQUIRE went out releases in the
//! background too, on the same shared connection, so that the RELEASE runs
//! after the ACQUIRE.
//!
//! A wait that the server ends with an `UNBLOCKED` error (the module: the
//! lock's key was deleted, renamed, moved or flushed under its queue;
//! Redis: the node became a replica) holds nothing: it is retried with the
//! time left, or ends as a timeout when none is left. Redirects and such
//! retries together make at most [`MAX_REDIRECTS`] + 1 attempts.
//!
//! Failover: a wait whose connection dies or whose node stops answering
//! (no reply [`WAIT_GRACE`] past its deadline) is taken off that node
//! (`CLIENT KILL`, best effort) and, with Sentinel or in a cluster, sent
//! again with the same token and the time left to whichever node serves the
//! key then ([`Conns::failed`] learns the topology again). A grant that
//! raced the failure is renewed by that retry, not lost. On a single node,
//! or when no node answers before the deadline, the caller gets the
//! connection error (`Error::is_unreachable`), never a hang.
//!
//! On a Redis Cluster, [`ModuleBackend::stats`] sums `LOCK.STATS` over every
//! primary, and the module counts as present only when every primary has it.

use std::time::Duration;

use tokio::time::{timeout_at, Instant};

use super::conns::{too_many_redirects, ClientName, Conn, Node, FAILOVER_PAUSE, MAX_REDIRECTS};
use super::{info_reply, pairs, sem_info_from_pairs, Conns, Granted, Kind, LockInfo};
use super::{SemInfo, Stats};
use crate::client::Runtime;
use crate::error::{Error, Result};
use crate::options::ms;

/// What a command does, in both its `LOCK.` and its `SEM.` spelling.
#[derive(Debug, Clone, Copy)]
enum Verb {
    Acquire,
    Release,
    Extend,
    ForceRelease,
}

/// `LOCK.<verb>` or `SEM.<verb>`, by what `kind` names (static names: no
/// formatting on every call), with room for `args` more arguments of
/// `data` bytes in all: the command's buffers are then allocated once
/// instead of grown argument by argument.
fn command(kind: Kind, verb: Verb, args: usize, data: usize) -> redis::Cmd {
    let name = match (kind, verb) {
        (Kind::Lock, Verb::Acquire) => "LOCK.ACQUIRE",
        (Kind::Lock, Verb::Release) => "LOCK.RELEASE",
        (Kind::Lock, Verb::Extend) => "LOCK.EXTEND",
        (Kind::Lock, Verb::ForceRelease) => "LOCK.FORCERELEASE",
        (Kind::Sem { .. }, Verb::Acquire) => "SEM.ACQUIRE",
        (Kind::Sem { .. }, Verb::Release) => "SEM.RELEASE",
        (Kind::Sem { .. }, Verb::Extend) => "SEM.EXTEND",
        (Kind::Sem { .. }, Verb::ForceRelease) => "SEM.FORCERELEASE",
    };
    let mut cmd = redis::Cmd::with_capacity(1 + args, name.len() + data);
    cmd.arg(name);
    cmd
}

/// Room for a ttl (or a wait) in milliseconds: at most 10 digits.
const MS_DIGITS: usize = 10;

/// `LOCK.ACQUIRE key token ttl`, or `SEM.ACQUIRE key token ttl LIMIT n
/// PERMITS p`; a wait adds `WAIT t`.
fn acquire_cmd(
    kind: Kind,
    key: &str,
    token: &str,
    ttl: Duration,
    meta: Option<&[u8]>,
) -> redis::Cmd {
    let meta_len = meta.map_or(0, |m| "META".len() + m.len());
    // Room for `LIMIT n PERMITS p` and for a wait's `WAIT t` too.
    let data = key.len() + token.len() + MS_DIGITS + 32 + meta_len + 4 + MS_DIGITS;
    let mut cmd = command(kind, Verb::Acquire, 3 + 4 + 2 + 2, data);
    cmd.arg(key).arg(token).arg(ms(ttl, 1));
    if let Kind::Sem { limit, permits } = kind {
        cmd.arg("LIMIT").arg(limit).arg("PERMITS").arg(permits);
    }
    if let Some(meta) = meta {
        cmd.arg("META").arg(meta);
    }
    cmd
}

/// `LOCK.RELEASE key token` or `SEM.RELEASE key token`.
fn release_cmd(kind: Kind, key: &str, token: &str) -> redis::Cmd {
    let mut cmd = command(kind, Verb::Release, 2, key.len() + token.len());
    cmd.arg(key).arg(token);
    cmd
}

/// `LOCK.EXTEND key token ttl [META v]` or `SEM.EXTEND key token ttl`.
fn extend_cmd(
    kind: Kind,
    key: &str,
    token: &str,
    ttl: Duration,
    meta: Option<&[u8]>,
) -> redis::Cmd {
    let meta_len = meta.map_or(0, |m| "META".len() + m.len());
    let data = key.len() + token.len() + MS_DIGITS + meta_len;
    let mut cmd = command(kind, Verb::Extend, 3 + 2, data);
    cmd.arg(key).arg(token).arg(ms(ttl, 1));
    if let Some(meta) = meta {
        cmd.arg("META").arg(meta);
    }
    cmd
}

#[derive(Debug)]
pub(crate) struct ModuleBackend {
    conns: Conns,
}

/// Cleans up after an acquire whose future was dropped once its command
/// may have gone out: withdraws a wait, or releases a try that may have
/// been granted ([`withdraw`]).
struct Cleanup<'a> {
    rt: &'a Runtime,
    conns: &'a Conns,
    kind: Kind,
    key: &'a str,
    token: &'a str,
    /// A wait: its connection and deadline.
    waiting: Option<Pending>,
    /// A try: the shared connection its ACQUIRE went out on, so that the
    /// RELEASE runs after it.
    sent_on: Option<Conn>,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (conns, kind, key, token, waiting, sent_on) = (
            self.conns.clone(),
            self.kind,
            self.key.to_owned(),
            self.token.to_owned(),
            self.waiting.take(),
            self.sent_on.take(),
        );
        self.rt.spawn(async move {
            let _ = withdraw(&conns, waiting, sent_on, kind, &key, &token).await;
        });
    }
}

/// A wait in flight: the connection its ACQUIRE went out on, and when the
/// server answers it at the latest.
struct Pending {
    conn: redis::aio::MultiplexedConnection,
    deadline: Instant,
}

/// True when an ACQUIRE's outcome is unknown (no reply: the connection
/// broke or timed out); a reply, even an error, is definitive.
fn unanswered<T>(reply: &redis::RedisResult<T>) -> bool {
    matches!(reply, Err(e) if is_unanswered(e))
}

/// See [`unanswered`].
fn is_unanswered(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout()
}

/// How often a cancelled wait's withdrawal sends its RELEASE on the shared
/// connection again while the RELEASE behind the ACQUIRE has no reply
/// (the shared one's may have overtaken an ACQUIRE the server had not read yet).
const WITHDRAW_RETRY: Duration = Duration::from_millis(100);

/// Withdraws an acquire whose outcome is unknown, so that `token` is left
/// with nothing, held or queued. A try: a RELEASE behind its ACQUIRE on
/// `sent_on`. A wait: a RELEASE behind its ACQUIRE on the wait's own
/// connection, whose reply proves the ACQUIRE answered and any grant
/// released; meanwhile RELEASEs on the shared connection take the wait out of
/// the queue (which answers the ACQUIRE, and so the RELEASE behind it).
/// No `CLIENT KILL`, so a user without `CLIENT` can cancel. `Err` when a
/// try's release could not be sent. A wait not seen answered by its
/// deadline is logged and its connection dropped (which takes a wait still
/// queued out; a grant is left to its ttl).
async fn withdraw(
    conns: &Conns,
    waiting: Option<Pending>,
    sent_on: Option<Conn>,
    kind: Kind,
    key: &str,
    token: &str,
) -> Result<()> {
    let release = release_cmd(kind, key, token);
    let Some(Pending { mut conn, deadline }) = waiting else {
        if let Err(e) = conns.send_after(sent_on, &release).await {
            tracing::warn!(%key, error = %e, "release after a cancelled acquire failed; the ttl will free the lock");
            return Err(e);
        }
        return Ok(());
    };
    let behind_cmd = release.clone();
    let behind = async move { behind_cmd.query_async::<i64>(&mut conn).await };
    tokio::pin!(behind);
    let give_up = deadline + WAIT_GRACE;
    loop {
        if let Err(e) = conns.send_after(None, &release).await {
            tracing::debug!(%key, error = %e, "release of a cancelled wait failed; trying again");
        }
        tokio::select! {
            answered = &mut behind => {
                let Err(e) = answered else { return Ok(()) };
                // The wait's connection failed: the server drops a queued
                // wait with it; a grant made before is released here.
                tracing::debug!(%key, error = %e, "the cancelled wait's connection failed");
                return conns.send_after(None, &release).await.map(drop);
            }
            _ = tokio::time::sleep(WITHDRAW_RETRY) => {}
        }
        if Instant::now() >= give_up {
            tracing::warn!(%key, "a cancelled wait was not seen answered; its connection is dropped and the ttl frees a grant");
            return Ok(());
        }
    }
}

/// Takes a wait off `node` by killing its connection there (`CLIENT KILL
/// ID .. ADDR ..`, which leaves the queue synchronously), when the
/// connection has a name (the user may run `CLIENT`). Best effort: a dead
/// node refuses at once, a frozen one times out.
async fn kill_wait(node: &Node, name: Option<&ClientName>, key: &str) {
    let Some(name) = name else { return };
    let killed = match node.short().await {
        Ok(mut conn) => name
            .kill()
            .query_async::<i64>(&mut conn)
            .await
            .map_err(crate::error::Error::from),
        Err(e) => Err(e),
    };
    if let Err(e) = killed {
        tracing::debug!(%key, ?node, error = %e, "CLIENT KILL of a wait failed");
    }
}

/// How long after its deadline a wait may go unanswered before the client
/// gives up on the node (frozen, partitioned): the server itself answers at
/// the deadline.
const WAIT_GRACE: Duration = Duration::from_secs(1);

impl ModuleBackend {
    /// The backend on `conns`, whose primaries were found to have the
    /// module ([`has_module`]).
    pub(crate) fn new(conns: Conns) -> Self {
        Self { conns }
    }

    pub(crate) fn conns(&self) -> &Conns {
        &self.conns
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn acquire(
        &self,
        rt: &Runtime,
        kind: Kind,
        key: &str,
        token: &str,
        ttl: Duration,
        wait: Duration,
        meta: Option<&[u8]>,
    ) -> Result<Option<Granted>> {
        let cmd = acquire_cmd(kind, key, token, ttl, meta);
        let wait_ms = ms(wait, 0);
        let mut guard = Cleanup {
            rt,
            conns: &self.conns,
            kind,
            key,
            token,
            waiting: None,
            sent_on: None,
            armed: false,
        };
        if wait_ms == 0 {
            // Kept by the cleanup (not a clone of it: one checkout per try).
            let conn = guard.sent_on.insert(self.conns.get().await?);
            guard.armed = true;
            let since = Instant::now();
            let reply: redis::RedisResult<Option<u64>> = conn.query(&cmd).await;
            guard.armed = unanswered(&reply);
            return Ok(reply?.map(|fence| Granted {
                fence,
                since,
                blind: false,
            }));
        }
        let deadline = Instant::now() + wait;
        let mut node = self.conns.owner(key.as_bytes()).await?;
        let mut asking = false;
        let mut redirects = 0;
        let mut first = true;
        loop {
            // A retry waits for the time left; it may be 0 (one try).
            let left = match first {
                true => wait_ms,
                false => ms(deadline.saturating_duration_since(Instant::now()), 0),
            };
            first = false;
            let mut cmd = cmd.clone();
            cmd.arg("WAIT").arg(left);
            let mut wait = match node.wait_conn().await {
                Ok(wait) => wait,
                Err(e) if e.is_unreachable() => {
                    node = self.after_failure(&node, e, deadline, key).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            guard.waiting = Some(Pending {
                conn: wait.conn.clone(),
                deadline,
            });
            guard.armed = true;
            if asking {
                let _: redis::Value = redis::cmd("ASKING").query_async(&mut wait.conn).await?;
            }
            let sent = Instant::now();
            let reply: redis::RedisResult<Option<u64>> =
                match timeout_at(deadline + WAIT_GRACE, cmd.query_async(&mut wait.conn)).await {
                    Ok(reply) => reply,
                    Err(_) => Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no reply to a wait past its deadline",
                    )
                    .into()),
                };
            let reply = match reply {
                Err(e) if is_unanswered(&e) => {
                    // No reply: the connection died (idle in the cache, or
                    // under the wait: the node failed, or a CLIENT KILL) or
                    // the node stopped answering. Take this wait off the
                    // node if it still answers, then wait again where the
                    // key is served now, for the time left: with the same
                    // token, a grant that raced the failure is renewed,
                    // not lost. With no time left, withdraw (a raced grant
                    // is released).
                    kill_wait(&node, wait.name.as_ref(), key).await;
                    guard.armed = false;
                    if wait.reused {
                        // It died while idle in the cache (a server
                        // restart, an idle timeout): the others likely did
                        // too. Wait again at once on a new connection.
                        node.clear_idle();
                        continue;
                    }
                    if deadline <= Instant::now() {
                        withdraw(&self.conns, None, None, kind, key, token).await?;
                        return Ok(None);
                    }
                    node = self.after_failure(&node, e.into(), deadline, key).await?;
                    continue;
                }
                other => other,
            };
            match &reply {
                Ok(_) => node.put_back(wait),
                Err(e)
                    if e.code() == Some("UNBLOCKED")
                        || (e.code() == Some("READONLY") && self.conns.follows_failover()) =>
                {
                    // The server ended the wait and holds nothing for us:
                    // the lock's key went away under its queue (module), or
                    // the node became a replica (Redis), or already was.
                    // Wait again for the time left, on a new connection
                    // (Redis closes this one), where the key is served now.
                    guard.armed = false;
                    if deadline <= Instant::now() || redirects >= MAX_REDIRECTS {
                        return Ok(None);
                    }
                    redirects += 1;
                    tracing::debug!(%key, error = %e, "wait ended by the server; waiting again");
                    self.conns.failed(&node).await;
                    node = self.conns.owner(key.as_bytes()).await?;
                    continue;
                }
                Err(e) => {
                    guard.armed = false;
                    // Another node serves the key: wait there instead.
                    if let Some(r) = self.conns.redirect(key.as_bytes(), e) {
                        if redirects >= MAX_REDIRECTS {
                            return Err(too_many_redirects(key.as_bytes()));
                        }
                        redirects += 1;
                        (node, asking) = (r.node, r.asking);
                        continue;
                    }
                }
            }
            guard.armed = false;
            // Granted at the hand-off, at some time after `sent`.
            return Ok(reply?.map(|fence| Granted {
                fence,
                since: sent,
                blind: true,
            }));
        }
    }

    /// After `node` failed under a wait (`error`): where to wait next. With
    /// Sentinel or a cluster the topology is learnt again, after a short
    /// pause, until a node answers or `deadline` passes; on one node there
    /// is nowhere else to go, and `error` is the answer (match it with
    /// [`Error::is_unreachable`](crate::Error::is_unreachable)).
    async fn after_failure(
        &self,
        node: &Node,
        error: crate::error::Error,
        deadline: Instant,
        key: &str,
    ) -> Result<Node> {
        if !self.conns.follows_failover() || deadline <= Instant::now() {
            return Err(error);
        }
        tracing::debug!(%key, ?node, %error, "the node of a wait failed; looking for its successor");
        tokio::time::sleep_until((Instant::now() + FAILOVER_PAUSE).min(deadline)).await;
        self.conns.failed(node).await;
        match self.conns.owner(key.as_bytes()).await {
            Ok(next) => Ok(next),
            // No primary yet (the Sentinels still name the failed one): the
            // next attempt on it fails again and comes back here.
            Err(_) => Ok(node.clone()),
        }
    }

    /// Sends `cmd` on the shared connection; true when it answered 1.
    async fn one(&self, cmd: &redis::Cmd) -> Result<bool> {
        let n: i64 = self.conns.get().await?.query(cmd).await?;
        Ok(n == 1)
    }

    pub(crate) async fn release(&self, kind: Kind, key: &str, token: &str) -> Result<bool> {
        self.one(&release_cmd(kind, key, token)).await
    }

    pub(crate) async fn extend(
        &self,
        kind: Kind,
        key: &str,
        token: &str,
        ttl: Duration,
        meta: Option<&[u8]>,
    ) -> Result<bool> {
        self.one(&extend_cmd(kind, key, token, ttl, meta)).await
    }

    pub(crate) async fn force_release(&self, key: &str) -> Result<bool> {
        self.one(command(Kind::Lock, Verb::ForceRelease, 1, key.len()).arg(key))
            .await
    }

    pub(crate) async fn sem_force_release(&self, key: &str) -> Result<u64> {
        let mut conn = self.conns.get().await?;
        Ok(redis::cmd("SEM.FORCERELEASE")
            .arg(key)
            .query_async(&mut conn)
            .await?)
    }

    pub(crate) async fn sem_info(&self, key: &str) -> Result<SemInfo> {
        let mut conn = self.conns.get().await?;
        let v: redis::Value = redis::cmd("SEM.INFO")
            .arg(key)
            .query_async(&mut conn)
            .await?;
        Ok(sem_info_from_pairs(&pairs(v)?))
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
        info_reply(v)
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
        kind: Kind,
        key: &str,
        token: &str,
        ttl: Duration,
        replicas: u64,
        timeout: Duration,
    ) -> Result<Option<u64>> {
        self.conns
            .wait_replicas(
                key.as_bytes(),
                extend_cmd(kind, key, token, ttl, None),
                replicas,
                timeout,
            )
            .await
    }
}

/// What the server says of the baton module, for this client's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Detected {
    /// Loaded (on every primary of a cluster), and the user may run
    /// `LOCK.ACQUIRE`: how that was found.
    Loaded(String),
    /// Not loaded (or on some cluster primaries only): how that was found.
    Absent(String),
    /// Loaded, but the user may not run `LOCK.ACQUIRE`: the server's
    /// refusal.
    Denied(String),
}

/// Asks whether the module is loaded: `COMMAND INFO LOCK.ACQUIRE` on every
/// primary (a lock may live on any of them), and, when that is refused
/// (ACL, or `COMMAND` renamed away, as managed Redis may), an empty
/// `LOCK.ACQUIRE` ([`probe`]), which also says whether the user may run
/// it.
pub(crate) async fn detect(conns: &Conns) -> Result<Detected> {
    let mut cmd = redis::cmd("COMMAND");
    cmd.arg("INFO").arg("LOCK.ACQUIRE");
    let replies = match conns.on_primaries(&cmd).await {
        Ok(replies) => replies,
        Err(e) if e.is_unreachable() => return Err(e),
        Err(refused) => {
            tracing::info!(error = %refused, "COMMAND INFO refused: asking an empty LOCK.ACQUIRE instead");
            return probe(conns, &format!("COMMAND INFO was refused ({refused})")).await;
        }
    };
    let with: Vec<bool> = replies
        .into_iter()
        .map(|(_, v)| {
            let v: Vec<redis::Value> = redis::from_redis_value(v).unwrap_or_default();
            matches!(v.first(), Some(v) if !matches!(v, redis::Value::Nil))
        })
        .collect();
    if with.contains(&true) && with.contains(&false) {
        tracing::warn!("the baton module is loaded on some cluster primaries only: not using it");
        return Ok(Detected::Absent(
            "loaded on some cluster primaries only".into(),
        ));
    }
    if with.is_empty() || !with.iter().all(|&w| w) {
        return Ok(Detected::Absent(
            "COMMAND INFO LOCK.ACQUIRE is empty".into(),
        ));
    }
    probe(conns, "COMMAND INFO knows LOCK.ACQUIRE").await
}

/// Sends `LOCK.ACQUIRE` without arguments, which changes nothing (it is an
/// error) and tells three cases apart: the module's own arity error (loaded,
/// and the user may run it: Redis checks the ACL first), Redis's `unknown
/// command` (not loaded), and `NOPERM` (loaded, not for this user). `found`
/// says how the module was looked for so far.
async fn probe(conns: &Conns, found: &str) -> Result<Detected> {
    let mut conn = conns.get().await?;
    let reply: redis::RedisResult<redis::Value> =
        redis::cmd("LOCK.ACQUIRE").query_async(&mut conn).await;
    let e = match reply {
        Ok(v) => {
            return Err(Error::BackendUnavailable(format!(
                "an empty LOCK.ACQUIRE answered {v:?}, not an error"
            )))
        }
        Err(e) => e,
    };
    let detail = e.detail().unwrap_or_default();
    if e.code() == Some("ERR") && detail.starts_with("wrong number of arguments") {
        return Ok(Detected::Loaded(format!(
            "{found}; an empty LOCK.ACQUIRE answered as the module does"
        )));
    }
    if e.code() == Some("ERR") && detail.starts_with("unknown command") {
        return Ok(Detected::Absent(format!(
            "{found}; LOCK.ACQUIRE is an unknown command"
        )));
    }
    match Error::from(e) {
        Error::NoPermission(why) => Ok(Detected::Denied(why)),
        other => Err(other),
    }
}
