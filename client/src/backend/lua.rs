//! The Lua backend: the scripts of `lua/` by EVALSHA (SPEC §3), those of
//! `lua/sem/` for semaphores (and read-write locks): the same replies, the
//! same waiting loop, other keys (`scripts::sem_keys`).
//!
//! Waiting is done here, since a script cannot block: the acquire script
//! queues the token (a FIFO the scripts own, each entry with a lease) and
//! replies `-n`, n being the holder's time left (a semaphore's: the time to
//! its earliest lease's expiry). The waiter then sleeps until a hand-off
//! message on the pub/sub channel names its token (a semaphore's message
//! names every token one hand-off granted, space separated), until that
//! expiry, or until its lease needs renewing (every [`LEASE`] / 3),
//! whichever comes first, and calls the script again. It never polls faster.
//!
//! # Redis Cluster
//!
//! Every key of one lock shares a hash tag, so EVALSHA routes by its first
//! key to the one node that serves the lock. Script caches are per node: on
//! `NOSCRIPT` the script is sent whole (EVAL) on the same route, which also
//! caches it on that node. Hand-offs are announced with classic `PUBLISH`,
//! which Redis Cluster forwards to every node, so the one pub/sub connection
//! of a client (on the seed node) hears every lock's channel. Sharded pub/sub
//! (SPUBLISH/SSUBSCRIBE) would spare that broadcast but need one connection
//! per shard, resubscribed whenever a slot moves; a missed message only
//! delays a waiter to its next timer (holder expiry, lease renewal), never
//! breaks FIFO or safety, so the simpler broadcast is the better trade here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use std::sync::atomic::AtomicBool;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::conns::{Conn, FAILOVER_PAUSE};
use super::{info_reply, pairs, sem_info_from_pairs, Conns, Granted, Kind, LockInfo};
use super::{SemInfo, Stats};
use crate::client::Runtime;
use crate::error::{Error, Result};
use crate::options::ms;
use crate::scripts::{channel, keys, Script, SCRIPTS};

/// How long a queue entry lives without renewal: a crashed waiter holds its
/// place (and may be handed the lock) for at most this long.
pub(crate) const LEASE: Duration = Duration::from_secs(3);

#[derive(Debug, Default)]
struct Counters {
    grants: AtomicU64,
    releases: AtomicU64,
    extends: AtomicU64,
    wait_timeouts: AtomicU64,
    force_releases: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct LuaBackend {
    conns: Conns,
    hub: tokio::sync::Mutex<Option<Arc<Hub>>>,
    counters: Arc<Counters>,
}

impl LuaBackend {
    /// Loads every script (which also checks that scripting works).
    pub(crate) async fn connect(conns: Conns) -> Result<Self> {
        let mut conn = conns.get().await?;
        for s in SCRIPTS.all() {
            let loaded: redis::RedisResult<String> = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(&s.body)
                .query_async(&mut conn)
                .await;
            let sha = match loaded.map_err(Error::from) {
                Ok(sha) => sha,
                // Managed Redis may deny SCRIPT: EVALSHA then finds no
                // script and sends it whole (EVAL) once per node.
                Err(Error::NoPermission(why)) => {
                    tracing::info!(%why, "SCRIPT LOAD refused: scripts are sent whole (EVAL) on first use");
                    break;
                }
                Err(e) => {
                    return Err(Error::BackendUnavailable(format!(
                        "the server does not run Lua scripts (SCRIPT LOAD of {}.lua: {e})",
                        s.name
                    )))
                }
            };
            if sha != s.sha {
                // EVALSHA of our own hash then gets NOSCRIPT and falls back
                // to EVAL, so this costs speed, not correctness.
                tracing::warn!(script = s.name, server = %sha, local = %s.sha, "SCRIPT LOAD answered another SHA-1");
            }
        }
        for (node, policy) in evicting_policies(&conns).await {
            tracing::warn!(
                %node,
                %policy,
                "maxmemory-policy {policy} lets Redis evict the Lua backend's lock keys: \
                 a held lock can vanish and be granted to another client (its holder learns \
                 it at its next extend); use maxmemory-policy noeviction"
            );
        }
        Ok(Self {
            conns,
            hub: tokio::sync::Mutex::new(None),
            counters: Arc::default(),
        })
    }

    pub(crate) fn conns(&self) -> &Conns {
        &self.conns
    }

    async fn eval<A: redis::ToRedisArgs>(
        &self,
        kind: Kind,
        script: &Script,
        key: &str,
        args: &[A],
    ) -> Result<redis::Value> {
        eval_on(&mut self.conns.get().await?, kind, script, key, args).await
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
        let script = &SCRIPTS.of(kind).acquire;
        // Bytes: a META value need not be UTF-8.
        let word = |w: &str| w.as_bytes().to_vec();
        let mut args = vec![word(token), word(&ms(ttl, 1).to_string())];
        if let Kind::Sem { limit, permits } = kind {
            args.extend([word("LIMIT"), word(&limit.to_string())]);
            args.extend([word("PERMITS"), word(&permits.to_string())]);
        }
        if let Some(meta) = meta {
            args.extend([word("META"), meta.to_vec()]);
        }
        if wait.is_zero() {
            let mut conn = self.conns.get().await?;
            // Dropped once the ACQUIRE may have gone out: release.
            let mut cleanup = Cleanup::new(rt, &self.conns, &conn, kind, key, token);
            let sent = Instant::now();
            let v = eval_on(&mut conn, kind, script, key, &args).await;
            cleanup.armed = matches!(&v, Err(e) if e.is_unreachable());
            return Ok(self.granted(kind, reply_int(v?)?, sent));
        }
        let deadline = Instant::now() + wait;
        let mut sub = self.subscription(rt, kind, key).await?;
        // One connection for the whole wait, so that a cleanup's RELEASE
        // runs after the last ACQUIRE. From here a drop leaves the queue, or
        // releases a raced grant.
        let mut conn = match self.conns.get().await {
            Err(e) if e.is_unreachable() && self.conns.follows_failover() => {
                reconnect(&self.conns, deadline, e).await?
            }
            conn => conn?,
        };
        let mut cleanup = Cleanup::new(rt, &self.conns, &conn, kind, key, token);
        let lease = ms(LEASE, 1).to_string();
        // A hand-off message names the tokens granted.
        let names_us = |msg: &[u8]| msg.split(|&b| b == b' ').any(|t| t == token.as_bytes());
        loop {
            if let Some(sub) = sub.as_mut() {
                sub.skip_past();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let mut args = args.clone();
            args.extend([word("WAIT"), word(&ms(left, 0).to_string())]);
            args.extend([word("LEASE"), word(&lease)]);
            // A grant, or the renewal that collects a hand-off, counts the
            // ttl from when the script ran: after `sent`.
            let sent = Instant::now();
            let reply = match eval_on(&mut conn, kind, script, key, &args).await {
                Err(e) if e.is_unreachable() && self.conns.follows_failover() => {
                    // The node failed under the wait (a Sentinel or Cluster
                    // failover): wait on where the key is served now, with
                    // the same token, so that a queue entry or a grant that
                    // reached the successor is renewed, not doubled.
                    conn = reconnect(&self.conns, deadline, e).await?;
                    cleanup.sent_on = conn.clone();
                    if sub.is_none() {
                        sub = self.subscription(rt, kind, key).await?;
                    }
                    continue;
                }
                reply => reply_int(reply?)?,
            };
            match reply {
                Some(fence) if fence > 0 => {
                    cleanup.armed = false;
                    return Ok(self.granted(kind, Some(fence), sent));
                }
                Some(n) if !left.is_zero() => {
                    // Queued: wake on our hand-off, the holder's expiry, the
                    // lease renewal or the deadline.
                    let hint = Duration::from_millis(n.unsigned_abs() + 1);
                    let wake = Instant::now() + hint.min(LEASE / 3);
                    let wake = wake.min(deadline);
                    let handed_off = async {
                        let Some(sub) = sub.as_mut() else {
                            return std::future::pending().await;
                        };
                        sub.named(&names_us).await
                    };
                    tokio::select! {
                        () = handed_off => {}
                        () = tokio::time::sleep_until(wake) => {}
                    }
                }
                _ => {
                    // The last call had WAIT 0: it left the queue.
                    cleanup.armed = false;
                    if kind == Kind::Lock {
                        self.counters.wait_timeouts.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(None);
                }
            }
        }
    }

    /// The wake-ups of `key`'s channel; `None` while the node that carries
    /// them is down in a failover (the wait then goes by its timers, and
    /// subscribes again once it found the successor).
    async fn subscription<'a>(
        &self,
        rt: &'a Runtime,
        kind: Kind,
        key: &str,
    ) -> Result<Option<Subscription<'a>>> {
        let subscribed = match self.hub(rt).await {
            Ok(hub) => Hub::subscribe(&hub, rt, channel(kind, key)).await,
            Err(e) => Err(e),
        };
        match subscribed {
            Ok(sub) => Ok(Some(sub)),
            Err(e) if e.is_unreachable() && self.conns.follows_failover() => {
                // Ask who the primary is before the next try.
                if let Ok(node) = self.conns.owner(key.as_bytes()).await {
                    self.conns.failed(&node).await;
                }
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The shared pub/sub connection (to the seed node, also in a cluster:
    /// see the module docs), opened on first use and again after it broke.
    async fn hub(&self, rt: &Runtime) -> Result<Arc<Hub>> {
        let mut slot = self.hub.lock().await;
        if let Some(hub) = slot.as_ref().filter(|h| !h.dead.load(Ordering::Acquire)) {
            return Ok(hub.clone());
        }
        let hub = Arc::new(Hub::connect(self.conns.pubsub_client().await?, rt).await?);
        *slot = Some(hub.clone());
        Ok(hub)
    }

    /// A grant in `reply` (a positive fence), counted for a lock (`stats()`
    /// counts locks only, as `LOCK.STATS` does).
    fn granted(&self, kind: Kind, reply: Option<i64>, sent: Instant) -> Option<Granted> {
        let fence = reply.filter(|f| *f > 0)? as u64;
        self.count(kind, &self.counters.grants);
        Some(Granted {
            fence,
            since: sent,
            blind: false,
        })
    }

    fn count(&self, kind: Kind, counter: &AtomicU64) {
        if kind == Kind::Lock {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) async fn release(&self, kind: Kind, key: &str, token: &str) -> Result<bool> {
        let script = &SCRIPTS.of(kind).release;
        let v = self.eval(kind, script, key, &[token]).await?;
        let ok = reply_int(v)? == Some(1);
        if ok {
            self.count(kind, &self.counters.releases);
        }
        Ok(ok)
    }

    pub(crate) async fn extend(
        &self,
        kind: Kind,
        key: &str,
        token: &str,
        ttl: Duration,
        meta: Option<&[u8]>,
    ) -> Result<bool> {
        let script = &SCRIPTS.of(kind).extend;
        let mut args = vec![
            token.as_bytes().to_vec(),
            ms(ttl, 1).to_string().into_bytes(),
        ];
        if let Some(meta) = meta {
            args.extend([b"META".to_vec(), meta.to_vec()]);
        }
        let ok = reply_int(self.eval(kind, script, key, &args).await?)? == Some(1);
        if ok {
            self.count(kind, &self.counters.extends);
        }
        Ok(ok)
    }

    pub(crate) async fn force_release(&self, key: &str) -> Result<bool> {
        let script = &SCRIPTS.lock.force_release;
        let ok = reply_int(self.eval(Kind::Lock, script, key, NO_ARGS).await?)? == Some(1);
        if ok {
            self.count(Kind::Lock, &self.counters.force_releases);
        }
        Ok(ok)
    }

    pub(crate) async fn sem_force_release(&self, key: &str) -> Result<u64> {
        let v = self
            .eval(SEM, &SCRIPTS.sem.force_release, key, NO_ARGS)
            .await?;
        Ok(reply_int(v)?.unwrap_or(0).max(0) as u64)
    }

    pub(crate) async fn sem_info(&self, key: &str) -> Result<SemInfo> {
        let v = self.eval(SEM, &SCRIPTS.sem.info, key, NO_ARGS).await?;
        Ok(sem_info_from_pairs(&pairs(v)?))
    }

    pub(crate) async fn fence(&self, key: &str) -> Result<u64> {
        let v = self.eval(Kind::Lock, &SCRIPTS.fence, key, NO_ARGS).await?;
        Ok(reply_int(v)?.unwrap_or(0) as u64)
    }

    pub(crate) async fn info(&self, key: &str) -> Result<LockInfo> {
        let v = self
            .eval(Kind::Lock, &SCRIPTS.lock.info, key, NO_ARGS)
            .await?;
        info_reply(v)
    }

    /// Lua keeps no node-wide counters: these are this client's own calls.
    pub(crate) async fn stats(&self) -> Result<Stats> {
        let c = &self.counters;
        Ok(Stats {
            grants: c.grants.load(Ordering::Relaxed),
            releases: c.releases.load(Ordering::Relaxed),
            extends: c.extends.load(Ordering::Relaxed),
            wait_timeouts: c.wait_timeouts.load(Ordering::Relaxed),
            force_releases: c.force_releases.load(Ordering::Relaxed),
            client_side: true,
            ..Stats::default()
        })
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
        let keys = keys(kind, key);
        let cmd =
            SCRIPTS
                .of(kind)
                .extend
                .cmd(true, &keys, &[token.to_owned(), ms(ttl, 1).to_string()]);
        self.conns
            .wait_replicas(keys[0].as_bytes(), cmd, replicas, timeout)
            .await
    }
}

/// True for the `maxmemory-policy` values under which Redis evicts keys
/// that the Lua backend's locks live in: `volatile-*` may evict the holder
/// hash (it has an expiry), `allkeys-*` any key of a lock. `noeviction` is
/// safe (writes fail instead).
pub(crate) fn policy_can_evict(policy: &str) -> bool {
    let policy = policy.to_ascii_lowercase();
    policy.starts_with("allkeys-") || policy.starts_with("volatile-")
}

/// The primaries (address, policy) whose `maxmemory-policy` can evict lock
/// keys, as far as `CONFIG GET` is allowed: a refused or failed CONFIG
/// (managed Redis often renames or denies it) tells nothing, and is no
/// error.
pub(crate) async fn evicting_policies(conns: &Conns) -> Vec<(String, String)> {
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("GET").arg("maxmemory-policy");
    let replies = match conns.on_primaries(&cmd).await {
        Ok(replies) => replies,
        Err(e) => {
            tracing::debug!(error = %e, "CONFIG GET maxmemory-policy failed: eviction not checked");
            return Vec::new();
        }
    };
    replies
        .into_iter()
        .filter_map(|(node, v)| {
            // RESP2: [name, value]; RESP3: {name: value}.
            let config: HashMap<String, String> = redis::from_redis_value(v).ok()?;
            let policy = config.into_values().next()?;
            policy_can_evict(&policy).then_some((node, policy))
        })
        .collect()
}

/// The arguments of a script that takes none.
const NO_ARGS: &[&str] = &[];

/// What the semaphore calls that need no limit pass as their kind (the
/// scripts and keys are the same for every limit).
const SEM: Kind = Kind::Sem {
    limit: 0,
    permits: 0,
};

/// Runs `script` on the keys of what `kind` names at `key` (which share one
/// slot, so the command routes to the node that serves them).
async fn eval_on<A: redis::ToRedisArgs>(
    conn: &mut Conn,
    kind: Kind,
    script: &Script,
    key: &str,
    args: &[A],
) -> Result<redis::Value> {
    script.eval_on(conn, &keys(kind, key), args).await
}

fn reply_int(v: redis::Value) -> Result<Option<i64>> {
    Ok(redis::from_redis_value(v).map_err(redis::RedisError::from)?)
}

/// Leaves the queue (or releases a raced grant) when an acquire is dropped
/// once its ACQUIRE may have gone out.
struct Cleanup<'a> {
    rt: &'a Runtime,
    conns: &'a Conns,
    /// The connection of the ACQUIRE calls, so that the RELEASE runs after
    /// the last one.
    sent_on: Conn,
    kind: Kind,
    key: &'a str,
    token: &'a str,
    armed: bool,
}

impl<'a> Cleanup<'a> {
    fn new(
        rt: &'a Runtime,
        conns: &'a Conns,
        sent_on: &Conn,
        kind: Kind,
        key: &'a str,
        token: &'a str,
    ) -> Self {
        Self {
            rt,
            conns,
            sent_on: sent_on.clone(),
            kind,
            key,
            token,
            armed: true,
        }
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let conns = self.conns.clone();
        let conn = self.sent_on.clone();
        let key = self.key.to_owned();
        // The whole script: no NOSCRIPT round trip on this rare path.
        let release =
            SCRIPTS
                .of(self.kind)
                .release
                .cmd(true, &keys(self.kind, self.key), &[self.token]);
        self.rt.spawn(async move {
            // RELEASE releases a raced grant, or takes a queued token out.
            if let Err(e) = conns.send_after(Some(conn), &release).await {
                tracing::warn!(%key, error = %e, "release after a cancelled acquire failed; the ttl (or the queue lease) will free it");
            }
        });
    }
}

/// A connection for a wait whose node failed, once the client finds where
/// the key is served again, tried every [`FAILOVER_PAUSE`] until
/// `deadline`; past it, the last error.
async fn reconnect(conns: &Conns, deadline: Instant, mut error: Error) -> Result<Conn> {
    while Instant::now() < deadline {
        tokio::time::sleep_until((Instant::now() + FAILOVER_PAUSE).min(deadline)).await;
        match conns.get().await {
            Ok(conn) => return Ok(conn),
            Err(e) if e.is_unreachable() => error = e,
            Err(e) => return Err(e),
        }
    }
    Err(error)
}

/// A message on a channel (the tokens a hand-off granted); `None` when the
/// connection closed (wake everyone).
type Message = Option<Arc<[u8]>>;

/// Messages a waiter may fall behind by before it re-checks at once: every
/// message reaches every waiter of the channel, not only the last one
/// (semaphore hand-offs to different waiters come in quick succession).
const BACKLOG: usize = 64;

/// Subscribed channels: their sender and how many waiters use them.
type Channels = Arc<Mutex<HashMap<String, (broadcast::Sender<Message>, usize)>>>;

/// One pub/sub connection shared by every waiter of a client, one broadcast
/// per subscribed channel.
struct Hub {
    sink: Arc<tokio::sync::Mutex<redis::aio::PubSubSink>>,
    channels: Channels,
    dead: Arc<AtomicBool>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

/// A waiter's interest in one channel; the last one to go unsubscribes.
struct Subscription<'a> {
    hub: Arc<Hub>,
    rt: &'a Runtime,
    channel: String,
    rx: broadcast::Receiver<Message>,
}

impl Subscription<'_> {
    /// Forgets the messages so far (a call about to go out sees their
    /// effects).
    fn skip_past(&mut self) {
        while !matches!(
            self.rx.try_recv(),
            Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed)
        ) {}
    }

    /// Returns at the first message that `names_us`, after the connection
    /// closed, or once messages were missed (the backlog overflowed):
    /// each time the wait should ask the server again.
    async fn named(&mut self, names_us: impl Fn(&[u8]) -> bool) {
        loop {
            match self.rx.recv().await {
                Ok(Some(msg)) if !names_us(&msg) => {}
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => return,
                // No sender: nothing will come; the timers do the rest.
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        let mut map = self.hub.channels.lock().expect("hub map poisoned");
        let last = match map.get_mut(&self.channel) {
            Some((_, n)) => {
                *n -= 1;
                *n == 0
            }
            None => false,
        };
        if last {
            map.remove(&self.channel);
            drop(map);
            let sink = self.hub.sink.clone();
            let channels = self.hub.channels.clone();
            let channel = std::mem::take(&mut self.channel);
            self.rt.spawn(async move {
                let mut sink = sink.lock().await;
                // Only if nobody subscribed again meanwhile: subscribing
                // holds the same sink lock, so this check cannot race.
                if !channels
                    .lock()
                    .expect("hub map poisoned")
                    .contains_key(&channel)
                {
                    let _ = sink.unsubscribe(&channel).await;
                }
            });
        }
    }
}

impl Hub {
    async fn connect(client: redis::Client, rt: &Runtime) -> Result<Self> {
        let (sink, mut stream) = client.get_async_pubsub().await?.split();
        let channels: Channels = Arc::default();
        let dead = Arc::new(AtomicBool::new(false));
        let (map, flag) = (channels.clone(), dead.clone());
        // Outside the tracker: it lives as long as the connection, and
        // `Client::flush` must not wait for it.
        let spawned = rt.spawn_untracked(async move {
            while let Some(msg) = stream.next().await {
                let map = map.lock().expect("hub map poisoned");
                if let Some((tx, _)) = map.get(msg.get_channel_name()) {
                    // No receiver left is no error: nobody waits.
                    let _ = tx.send(Some(msg.get_payload_bytes().into()));
                }
            }
            // The connection is gone: the next wait opens a new one; the
            // waiters of this one wake now and fall back to their timers
            // (holder expiry, lease renewal).
            flag.store(true, Ordering::Release);
            tracing::warn!("baton pub/sub connection closed; waiters fall back to timers");
            for (tx, _) in map.lock().expect("hub map poisoned").values() {
                let _ = tx.send(None);
            }
        });
        if !spawned {
            return Err(Error::BackendUnavailable(
                "no tokio runtime for the pub/sub reader of Lua waits".into(),
            ));
        }
        Ok(Self {
            sink: Arc::new(tokio::sync::Mutex::new(sink)),
            channels,
            dead,
        })
    }

    async fn subscribe<'a>(
        hub: &Arc<Hub>,
        rt: &'a Runtime,
        channel: String,
    ) -> Result<Subscription<'a>> {
        let mut sink = hub.sink.lock().await;
        let (rx, new) = {
            let mut map = hub.channels.lock().expect("hub map poisoned");
            match map.get_mut(&channel) {
                Some((tx, n)) => {
                    *n += 1;
                    (tx.subscribe(), false)
                }
                None => {
                    let (tx, rx) = broadcast::channel(BACKLOG);
                    map.insert(channel.clone(), (tx, 1));
                    (rx, true)
                }
            }
        };
        let sub = Subscription {
            hub: hub.clone(),
            rt,
            channel: channel.clone(),
            rx,
        };
        if new {
            sink.subscribe(&channel).await?;
        }
        Ok(sub)
    }
}

#[cfg(test)]
mod tests {
    use baton_harness::RedisServer;

    use super::*;
    use crate::{Backend, Client, LockOptions};

    #[test]
    fn evicting_policies_are_allkeys_and_volatile() {
        for p in [
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
            "ALLKEYS-LRU",
        ] {
            assert!(policy_can_evict(p), "{p}");
        }
        for p in ["noeviction", "NoEviction", ""] {
            assert!(!policy_can_evict(p), "{p}");
        }
    }

    /// Two hand-offs in a row to two waiters of one channel (a semaphore's
    /// leases end close together): each waiter sees its own. When the hub
    /// kept only a channel's last message, the first waiter missed its
    /// grant and slept until its timer (a Lua semaphore ran at 3-6% of its
    /// permits' rate).
    #[tokio::test]
    async fn every_waiter_of_a_channel_sees_its_hand_off_when_they_come_in_a_row() {
        let server = RedisServer::builder().without_module().start();
        let client = redis::Client::open(server.url()).unwrap();
        let rt = Runtime::current();
        let hub = Arc::new(Hub::connect(client.clone(), &rt).await.unwrap());
        let mut first = Hub::subscribe(&hub, &rt, "ch".into()).await.unwrap();
        let mut second = Hub::subscribe(&hub, &rt, "ch".into()).await.unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = redis::pipe()
            .atomic()
            .cmd("PUBLISH")
            .arg("ch")
            .arg("tok-a")
            .cmd("PUBLISH")
            .arg("ch")
            .arg("tok-b")
            .query_async(&mut con)
            .await
            .unwrap();
        let within = Duration::from_secs(5);
        // Both messages have reached the hub once the second one is seen.
        tokio::time::timeout(within, second.named(|m| m == b"tok-b"))
            .await
            .expect("the second waiter sees its hand-off");
        tokio::time::timeout(within, first.named(|m| m == b"tok-a"))
            .await
            .expect("the first waiter sees its hand-off, not only the last message");
    }

    /// The policy is read from the server; a server that refuses CONFIG
    /// gives no warning and the client builds all the same.
    #[tokio::test]
    async fn eviction_is_checked_where_config_is_allowed() {
        let evicting = RedisServer::builder()
            .without_module()
            .config("maxmemory-policy", "allkeys-lru")
            .start();
        let safe = RedisServer::builder().without_module().start();
        let denied = RedisServer::builder()
            .without_module()
            .config("maxmemory-policy", "volatile-lru")
            .start();
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("default")
            .arg("-config")
            .query(&mut denied.connection())
            .unwrap();
        let policies = |s: &RedisServer| {
            let conns = Conns::new(&s.url()).unwrap();
            async move { evicting_policies(&conns).await }
        };
        let found = policies(&evicting).await;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1, "allkeys-lru");
        assert!(
            policies(&safe).await.is_empty(),
            "noeviction is the default"
        );
        assert!(
            policies(&denied).await.is_empty(),
            "CONFIG refused: no answer"
        );
        for kind in [Backend::Lua, Backend::Auto] {
            let c = Client::builder(denied.url()).backend(kind).build().await;
            assert_eq!(
                c.expect("built without CONFIG").backend_kind(),
                Backend::Lua
            );
        }
    }

    /// Runs `script` on the keys of what `kind` names at `key`, as a
    /// client would.
    fn raw_eval(
        con: &mut redis::Connection,
        kind: Kind,
        script: &Script,
        key: &str,
        args: &[&str],
    ) -> redis::Value {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        script
            .cmd(true, &keys(kind, key), &args)
            .query(con)
            .unwrap()
    }

    /// Releases the holder (`release`), after which `waiter` (a task that
    /// acquires and then releases) must be granted within 3 s: a 1 s queue
    /// lease, not a 60 s ttl.
    async fn granted_soon_after(
        release: impl std::future::Future<Output = Result<bool>>,
        waiter: tokio::task::JoinHandle<Result<bool>>,
    ) {
        let released = Instant::now();
        assert!(release.await.unwrap());
        let g = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .unwrap()
            .unwrap()
            .expect("granted after the crashed waiter's lease");
        assert!(
            released.elapsed() < Duration::from_secs(3),
            "the queue stalled for {:?}",
            released.elapsed()
        );
        assert!(g, "released by the waiter");
    }

    /// A waiter that queued (with a lease) and then crashed is handed the
    /// lock when its turn comes, but only until its lease would have run
    /// out, not for its ttl: the waiter behind it gets the lock within
    /// about the lease.
    #[tokio::test]
    async fn a_crashed_waiter_delays_the_queue_by_its_lease_not_its_ttl() {
        let s = RedisServer::builder().without_module().start();
        let c = Client::builder(s.url())
            .backend(Backend::Lua)
            .build()
            .await
            .unwrap();
        let ttl = |s| LockOptions::new().ttl(Duration::from_secs(s));
        let holder = c.lock("cw", &ttl(60)).await.unwrap();
        // Queued with a 1 s lease and a 60 s ttl; it never calls again.
        let queued = raw_eval(
            &mut s.connection(),
            Kind::Lock,
            &SCRIPTS.lock.acquire,
            "cw",
            &["crashed", "60000", "WAIT", "60000", "LEASE", "1000"],
        );
        assert!(
            matches!(queued, redis::Value::Int(n) if n < 0),
            "{queued:?}"
        );
        let waiter = {
            let c = c.clone();
            let wait = ttl(10).wait(Duration::from_secs(10));
            tokio::spawn(async move { c.lock("cw", &wait).await?.release().await })
        };
        while c.info("cw").await.unwrap().waiters < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        granted_soon_after(holder.release(), waiter).await;
    }

    /// The same for a semaphore: a request for every permit that queued
    /// and crashed is handed them when its turn comes, but only until its
    /// queue lease runs out; the request behind it gets through within
    /// about the lease, not the crashed one's ttl.
    #[tokio::test]
    async fn a_crashed_sem_waiter_delays_the_queue_by_its_lease_not_its_ttl() {
        let s = RedisServer::builder().without_module().start();
        let c = Client::builder(s.url())
            .backend(Backend::Lua)
            .build()
            .await
            .unwrap();
        let ttl = |s| LockOptions::new().ttl(Duration::from_secs(s));
        let sem = c.semaphore("cs", 2);
        let holder = sem.acquire(1, &ttl(60)).await.unwrap();
        let args = ["crashed", "60000", "LIMIT", "2", "PERMITS", "2"];
        let queued = raw_eval(
            &mut s.connection(),
            SEM,
            &SCRIPTS.sem.acquire,
            "cs",
            &[&args[..], &["WAIT", "60000", "LEASE", "1000"]].concat(),
        );
        assert!(
            matches!(queued, redis::Value::Int(n) if n < 0),
            "{queued:?}"
        );
        let waiter = {
            let sem = sem.clone();
            let wait = ttl(10).wait(Duration::from_secs(10));
            tokio::spawn(async move { sem.acquire(1, &wait).await?.release().await })
        };
        while sem.info().await.unwrap().waiters < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        granted_soon_after(holder.release(), waiter).await;
    }

    /// The release script by a token that is queued, not holding, takes it
    /// out of the queue (reply 0), as the module's `LOCK.RELEASE` does: the
    /// holder's release then leaves the lock free, not handed to it.
    #[tokio::test]
    async fn a_release_by_a_queued_token_withdraws_it() {
        let s = RedisServer::builder().without_module().start();
        let c = Client::builder(s.url())
            .backend(Backend::Lua)
            .build()
            .await
            .unwrap();
        let holder = c
            .lock("rq", &LockOptions::new().ttl(Duration::from_secs(60)))
            .await
            .unwrap();
        let con = &mut s.connection();
        let (lock, key) = (&SCRIPTS.lock, "rq");
        let queued = raw_eval(
            con,
            Kind::Lock,
            &lock.acquire,
            key,
            &["w", "60000", "WAIT", "60000"],
        );
        assert!(
            matches!(queued, redis::Value::Int(n) if n < 0),
            "{queued:?}"
        );
        assert_eq!(c.info(key).await.unwrap().waiters, 1);
        let withdrawn = raw_eval(con, Kind::Lock, &lock.release, key, &["w"]);
        assert_eq!(withdrawn, redis::Value::Int(0), "w held nothing");
        assert_eq!(c.info(key).await.unwrap().waiters, 0, "w left the queue");
        assert!(holder.release().await.unwrap());
        assert!(!c.info(key).await.unwrap().held, "nothing was handed to w");
    }

    /// The same for a semaphore: a queued request withdrawn by its token's
    /// release lets the one behind it, which now fits, through.
    #[tokio::test]
    async fn a_sem_release_by_a_queued_token_withdraws_it() {
        let s = RedisServer::builder().without_module().start();
        let c = Client::builder(s.url())
            .backend(Backend::Lua)
            .build()
            .await
            .unwrap();
        let sem = c.semaphore("rqs", 3);
        let opts = LockOptions::new().ttl(Duration::from_secs(60));
        let _holder = sem.acquire(2, &opts).await.unwrap();
        let con = &mut s.connection();
        let script = &SCRIPTS.sem;
        let request = |tok: &'static str, permits: &'static str| {
            [
                tok, "60000", "LIMIT", "3", "PERMITS", permits, "WAIT", "60000",
            ]
        };
        for (tok, permits) in [("big", "3"), ("small", "1")] {
            let queued = raw_eval(con, SEM, &script.acquire, "rqs", &request(tok, permits));
            assert!(
                matches!(queued, redis::Value::Int(n) if n < 0),
                "{tok}: {queued:?}"
            );
        }
        let withdrawn = raw_eval(con, SEM, &script.release, "rqs", &["big"]);
        assert_eq!(withdrawn, redis::Value::Int(0), "big held no lease");
        let info = sem.info().await.unwrap();
        assert_eq!(
            (info.used, info.waiters),
            (3, 0),
            "small got through: {info:?}"
        );
    }

    /// The lock's acquire and extend scripts refuse bad `META` (and the
    /// other options around it) with the module's texts, in the module's
    /// order, and a refused call changes nothing: the holder keeps its
    /// fence, expiry and value on both.
    #[test]
    fn lock_meta_argument_errors_match_the_module_and_change_nothing() {
        let module = RedisServer::start();
        let plain = RedisServer::builder().without_module().start();
        let text = |r: redis::RedisResult<redis::Value>| match r {
            Err(e) => baton_harness::err_text(&e),
            Ok(v) => format!("no error: {v:?}"),
        };
        let long = "x".repeat(1025);
        let acquires: Vec<Vec<&str>> = vec![
            vec!["holder", "100", "META"],
            vec!["holder", "100", "META", &long],
            vec!["holder", "100", "META", "a", "META", "b"],
            vec!["holder", "100", "WAIT", "x", "META", &long],
            vec!["holder", "100", "META", "a", "WAIT"],
            vec!["holder", "100", "META", "a", "WAIT", "-1"],
            vec!["holder", "100", "META", "a", "NX"],
            vec!["other", "100", "META", &long],
        ];
        let extends: Vec<Vec<&str>> = vec![
            vec!["holder", "100", "META"],
            vec!["holder", "100", "META", &long],
            vec!["holder", "100", "META", "a", "META", "b"],
            vec!["holder", "100", "WAIT", "5"],
            vec!["holder", "0", "META", "a"],
        ];
        let m = &mut module.connection();
        let p = &mut plain.connection();
        let mut grant = redis::cmd("LOCK.ACQUIRE");
        grant
            .arg("k")
            .arg("holder")
            .arg(60_000)
            .arg("META")
            .arg("kept");
        let _: i64 = grant.query(m).unwrap();
        let grant = SCRIPTS.lock.acquire.cmd(
            true,
            &keys(Kind::Lock, "k"),
            &["holder", "60000", "META", "kept"],
        );
        let _: i64 = grant.query(p).unwrap();
        let before = |c: &mut redis::Connection, lua: bool| -> redis::Value {
            match lua {
                true => raw_eval(c, Kind::Lock, &SCRIPTS.lock.info, "k", &[]),
                false => redis::cmd("LOCK.INFO").arg("k").query(c).unwrap(),
            }
        };
        let (info_m, info_p) = (before(m, false), before(p, true));
        for (verb, script, cases) in [
            ("ACQUIRE", &SCRIPTS.lock.acquire, &acquires),
            ("EXTEND", &SCRIPTS.lock.extend, &extends),
        ] {
            for args in cases {
                let mut cmd = redis::cmd(&format!("LOCK.{verb}"));
                cmd.arg("k").arg(args);
                let want = text(cmd.query(m));
                assert!(want.starts_with("ERR "), "{verb} {args:?}: {want}");
                let got = script.cmd(true, &keys(Kind::Lock, "k"), args);
                assert_eq!(text(got.query(p)), want, "{verb} {args:?}");
            }
        }
        // pttl may only have gone down; fence and value are the same.
        let fields = |v: redis::Value| {
            let info = crate::backend::info_reply(v).unwrap();
            (info.held, info.fence, info.meta)
        };
        assert_eq!(fields(before(m, false)), fields(info_m));
        assert_eq!(fields(before(p, true)), fields(info_p));
        assert_eq!(fields(before(p, true)).2.as_deref(), Some(&b"kept"[..]));
    }

    /// The semaphore acquire script refuses bad arguments with the module's
    /// texts, in the module's order (a client that sends them raw sees one
    /// protocol).
    #[test]
    fn sem_acquire_argument_errors_match_the_module() {
        let module = RedisServer::start();
        let plain = RedisServer::builder().without_module().start();
        let text = |r: redis::RedisResult<redis::Value>| match r {
            Err(e) => baton_harness::err_text(&e),
            Ok(v) => format!("no error: {v:?}"),
        };
        let cases: [&[&str]; 10] = [
            &["", "100", "LIMIT", "2"],
            &["t", "0", "LIMIT", "2"],
            &["t", "100"],
            &["t", "100", "LIMIT", "0"],
            &["t", "100", "LIMIT"],
            &["t", "100", "LIMIT", "2", "PERMITS", "3"],
            &["t", "100", "LIMIT", "2", "WAIT"],
            &["t", "100", "LIMIT", "2", "WAIT", "-1"],
            &["t", "100", "LIMIT", "2", "LIMIT", "2"],
            &["t", "100", "LIMIT", "2", "NX", "1"],
        ];
        for args in cases {
            let mut cmd = redis::cmd("SEM.ACQUIRE");
            cmd.arg("k").arg(args);
            let want = text(cmd.query(&mut module.connection()));
            assert!(want.starts_with("ERR "), "{args:?}: {want}");
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let got = SCRIPTS.sem.acquire.cmd(true, &keys(SEM, "k"), &args);
            assert_eq!(text(got.query(&mut plain.connection())), want, "{args:?}");
        }
    }
}
