//! Workload 9, many waiters (issue 13's scale goal): `waiters` waits
//! blocked over `keys` locks (`LOCK.ACQUIRE .. WAIT`), on the many-waiter
//! server of its own ([`QueueServer`](super::queue::QueueServer)).
//!
//! The waits go out on raw `redis::aio::MultiplexedConnection`s, one per
//! waiter, not through the client: so that the connections can be opened
//! first and their memory told apart from the waits', and so that every
//! wait can be given the same deadline to the millisecond. The client's own
//! cost per wait is what workload 8 measures.
//!
//! Per key: one holder connection and `waiters / keys` waiter connections.
//! Four phases:
//!
//! 1. **Memory**: `used_memory` (and `mem_clients_normal`, the clients'
//!    share) on the empty server, after every connection is open, after the
//!    holders took their locks, and once every waiter is blocked
//!    (`blocked_clients`). Per connection = the second step over the
//!    connections; per waiter = the last step over the waiters (the queue
//!    entry, the blocked-client state, what the command keeps). Each
//!    reading waits [`SETTLE`] first, so that Redis has given back the
//!    buffers of idle clients. On Redis 7.0 a module-blocked client also
//!    gets a reply client of its own (`RM_BlockClient`), with its reply
//!    buffer: that counts here, in `used_memory`, not in
//!    `mem_clients_normal`.
//! 2. **Hand-off**: every task (holders and waiters alike) holds for
//!    [`CHURN_HOLD`], releases, and queues again at once, so each key keeps
//!    one holder and all its waiters queued, for the plan's contended time.
//!    Hand-off: from the start of the holder's `LOCK.RELEASE` to the reply
//!    of the next waiter's `LOCK.ACQUIRE`, on the client, for waiters that
//!    were already queued. With 1,000 keys and a 100 ms hold that is about
//!    10,000 hand-offs/s on the server.
//! 3. The waiters drain (no one queues again), and the holders lock again.
//! 4. **Timeouts at once**: every waiter sends `LOCK.ACQUIRE .. WAIT t`
//!    with `t` the time left to one common deadline, so all of them time
//!    out in the same millisecond or two; a thread of its own PINGs every
//!    ~1 ms on another connection (as the expiry-stall measurement of
//!    `cargo xtask bench` does). The stall is the longest round trip of a
//!    ping sent between just before the deadline and the last timeout's
//!    reply. Its RTT counts this process' own scheduling too (2 runtime
//!    workers reading 10,000 replies), so it bounds the server's stall from
//!    above.
//! 5. **Baseline, memory** (run in phase 1, once the connections are open
//!    and before the holders lock, so that both readings start from
//!    connections that never ran a command): the waiter connections block in
//!    Redis' own `BLPOP` on `keys` empty lists (same shape: `waiters / keys`
//!    per list); `used_memory` per blocked `BLPOP` against the same
//!    connections idle. Pushes then wake them all.
//! 6. **Baseline, timeouts at once**: phase 4 with `BLPOP` (its timeout in
//!    seconds, to the ms): what Redis' own unblocking of that many clients
//!    in one go costs, beside the module's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use baton_harness::RedisServer;
use futures_util::future::try_join_all;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use serde::Serialize;
use tokio::time::Instant;

use crate::stats::{Latencies, Summary};

use super::queue::{cpu_time, usec_per_call};

/// How long each task holds its lock in the hand-off phase.
pub const CHURN_HOLD: Duration = Duration::from_millis(100);

/// Lock ttl: far longer than a run.
const TTL_MS: u64 = 300_000;

/// A wait that the run, not a timeout, ends (phases 1 and 2), ms.
const LONG_WAIT_MS: u64 = 300_000;

/// Connections opened at once, and waits sent before the run waits for
/// them to block (a burst of 11,000 would overflow the listen backlog).
const BATCH: usize = 250;

/// How long any one step may take before the run fails.
const STEP_DEADLINE: Duration = Duration::from_secs(60);

/// Idle time before a memory reading (see [`settled_mem`]). Redis frees an
/// idle client's query buffer once `idle > 2` in whole seconds, so up to
/// 4 s after its last command, plus up to 1 s until `clientsCron` visits
/// it: 3.5 s left some of them in, and the readings swung by several KB a
/// waiter.
const SETTLE: Duration = Duration::from_millis(7000);

/// From the start of phase 4 to the common deadline of its waits.
const TIMEOUT_LEAD: Duration = Duration::from_secs(3);

/// `used_memory` and `mem_clients_normal` at one point.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Mem {
    /// `used_memory`, bytes.
    pub used: u64,
    /// `mem_clients_normal`, bytes.
    pub clients: u64,
}

/// Phase 1.
#[derive(Debug, Clone, Serialize)]
pub struct WaiterMemory {
    /// The empty server (one admin connection).
    pub empty: Mem,
    /// Every connection open, idle.
    pub connected: Mem,
    /// The holders hold.
    pub held: Mem,
    /// Every waiter blocked.
    pub blocked: Mem,
    /// `(connected - empty).used / connections`.
    pub per_connection: f64,
    /// `(blocked - held).used / waiters`: the goal's figure.
    pub per_waiter: f64,
    /// `(blocked - held).clients / waiters`: of which the clients' share.
    pub per_waiter_clients: f64,
}

/// Phase 4.
#[derive(Debug, Clone, Serialize)]
pub struct TimeoutWave {
    /// Waits that timed out (null replies).
    pub timed_out: u64,
    /// Waits that were granted instead (none expected).
    pub granted: u64,
    /// All waits were blocked before the deadline.
    pub all_blocked: bool,
    /// Pings counted in the wave.
    pub pings: usize,
    /// Longest ping round trip in the wave, ms.
    pub max_rtt_ms: f64,
    /// p99 ping round trip in the wave, ms.
    pub p99_rtt_ms: f64,
    /// Longest ping round trip with every waiter blocked, before the
    /// deadline (baseline), ms.
    pub idle_max_rtt_ms: f64,
    /// The deadline to the last timeout's reply, ms.
    pub last_reply_ms: f64,
    /// The server process' CPU time from just before the deadline to the
    /// last reply (`/proc/PID/stat`, 10 ms ticks), ms: what the timeouts
    /// cost the server, whatever the scheduling of this process.
    pub server_cpu_ms: f64,
}

/// The figures of the many-waiter run.
#[derive(Debug, Clone, Serialize)]
pub struct WaitersRun {
    /// Lock keys.
    pub keys: usize,
    /// Blocked waiters (over all keys).
    pub waiters: usize,
    /// Connections opened (holders and waiters).
    pub connections: usize,
    /// Seconds to open them.
    pub connect_secs: f64,
    /// Seconds to block every waiter.
    pub block_secs: f64,
    /// Phase 1.
    pub memory: WaiterMemory,
    /// Phase 2's hold, ms.
    pub hold_ms: u64,
    /// Phase 2's measured seconds.
    pub churn_secs: f64,
    /// Phase 2's hand-offs per second.
    pub handoffs_per_sec: f64,
    /// Phase 2's hand-off latency.
    pub handoff: Summary,
    /// Phase 2: the server's CPU time per hand-off (a release, an acquire,
    /// and their replies), µs.
    pub server_cpu_per_handoff_us: f64,
    /// Phase 2: the server's CPU time over the phase's wall time: well below
    /// 1, the server waits for the load generator.
    pub server_busy: f64,
    /// Phase 2: `INFO commandstats` µs per `LOCK.RELEASE`, in the server
    /// itself (the hand-off is made inside it).
    pub release_usec_per_call: f64,
    /// Phase 2: the same per `LOCK.ACQUIRE`.
    pub acquire_usec_per_call: f64,
    /// Phase 4.
    pub timeout: TimeoutWave,
    /// Phases 5 and 6: the same shapes with Redis' own `BLPOP`.
    pub blpop: BlpopBaseline,
}

/// Phases 5 and 6: `waiters` clients blocked in `BLPOP` over `keys` lists.
#[derive(Debug, Clone, Serialize)]
pub struct BlpopBaseline {
    /// Every connection open, idle (phase 1's `connected`).
    pub idle: Mem,
    /// Every waiter blocked in `BLPOP`.
    pub blocked: Mem,
    /// `(blocked - idle).used / waiters`.
    pub per_waiter: f64,
    /// `(blocked - idle).clients / waiters`.
    pub per_waiter_clients: f64,
    /// Every `BLPOP` times out at one deadline.
    pub timeout: TimeoutWave,
}

/// One acquisition of phase 2, ns since the start of the phase.
#[derive(Debug, Clone, Copy)]
struct Held {
    arrival: i64,
    grant: i64,
    release: i64,
}

/// Runs the workload on `server` with keys `bench:w:{run}:{k}`.
pub async fn run(
    server: &RedisServer,
    run: &str,
    keys: usize,
    waiters: usize,
    churn: Duration,
) -> Result<WaitersRun> {
    ensure!(
        keys > 0 && waiters.is_multiple_of(keys),
        "waiters must be a multiple of keys"
    );
    let per_key = waiters / keys;
    let client = redis::Client::open(server.url())?;
    let config = AsyncConnectionConfig::new()
        .set_response_timeout(None)
        .set_connection_timeout(Some(Duration::from_secs(30)));
    let mut admin = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    // Settled too: the connections of an earlier run on this server may
    // still be giving memory back.
    let empty = settled_mem(&mut admin).await?;

    // Phase 1: connections, holders, blocked waiters.
    let started = Instant::now();
    let mut conns: Vec<MultiplexedConnection> = Vec::with_capacity(keys + waiters);
    while conns.len() < keys + waiters {
        let n = BATCH.min(keys + waiters - conns.len());
        let batch = (0..n).map(|_| client.get_multiplexed_async_connection_with_config(&config));
        conns.extend(
            try_join_all(batch)
                .await
                .context("open a waiter connection")?,
        );
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let connected = settled_mem(&mut admin).await?;
    // conns[k] holds key k; conns[keys + k * per_key + i] is waiter i of key k.
    let key = |k: usize| format!("bench:w:{run}:{k}");
    let token = |k: usize, i: usize| format!("t{k}.{i}");
    let waiter_conns = conns.split_off(keys);
    let mut holders = conns;
    // Phase 5 first, on connections that never ran a command, as the
    // module's readings below are.
    let list = |k: usize| format!("bench:wl:{run}:{k}");
    let blpop_blocked = blpop_memory(&mut admin, &waiter_conns, per_key, &list).await?;
    lock_all(&mut holders, &key, &token).await?;
    let held = settled_mem(&mut admin).await?;

    let origin: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<Vec<(usize, Held)>>> = Arc::default();
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(keys + waiters);
    for (k, con) in holders.iter().enumerate() {
        let mut go = go_rx.clone();
        let task = Task {
            con: con.clone(),
            key: key(k),
            token: token(k, 0),
            k,
            origin: origin.clone(),
            stop: stop.clone(),
            log: log.clone(),
        };
        tasks.push(tokio::spawn(async move {
            go.wait_for(|go| *go).await?;
            task.churn(true).await
        }));
    }
    let mut blocked_target: usize = 0;
    for (j, con) in waiter_conns.iter().enumerate() {
        let (k, i) = (j / per_key, j % per_key + 1);
        let task = Task {
            con: con.clone(),
            key: key(k),
            token: token(k, i),
            k,
            origin: origin.clone(),
            stop: stop.clone(),
            log: log.clone(),
        };
        tasks.push(tokio::spawn(async move { task.churn(false).await }));
        blocked_target += 1;
        if blocked_target.is_multiple_of(BATCH) || blocked_target == waiters {
            blocked_at_least(&mut admin, blocked_target as u64).await?;
        }
    }
    let block_secs = started.elapsed().as_secs_f64();
    let blocked = settled_mem(&mut admin).await?;

    // Phase 2: hand-offs.
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut admin)
        .await?;
    let churn_cpu = cpu_time(server.pid());
    origin.set(Instant::now()).ok();
    go_tx.send(true)?;
    tokio::time::sleep(churn).await;
    let churn_cpu = cpu_time(server.pid()).saturating_sub(churn_cpu);
    let calls: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut admin)
        .await?;
    stop.store(true, Ordering::Relaxed);
    // Phase 3: every task ends after its last release.
    for t in tasks {
        t.await??;
    }
    let churn_ns = churn.as_nanos() as i64;
    let mut records = std::mem::take(&mut *log.lock().expect("log"));
    records.sort_by_key(|&(k, h)| (k, h.grant));
    let mut lat = Latencies::default();
    for pair in records.windows(2) {
        let ((ka, prev), (kb, next)) = (pair[0], pair[1]);
        if ka != kb || next.grant < 0 || next.grant > churn_ns || next.arrival >= prev.release {
            continue;
        }
        lat.record_ns((next.grant - prev.release).max(0) as u64);
    }
    let handoff = lat.summary();

    // Phase 4: every wait times out at once.
    lock_all(&mut holders, &key, &token).await?;
    let timeout = timeout_wave(server, &mut admin, &waiter_conns, "LOCK.ACQUIRE", |j| {
        let (k, i) = (j / per_key, j % per_key + 1);
        let (key, token) = (key(k), token(k, i));
        Box::new(move |ms| {
            let mut cmd = redis::cmd("LOCK.ACQUIRE");
            cmd.arg(key).arg(token).arg(TTL_MS).arg("WAIT").arg(ms);
            cmd
        })
    })
    .await?;

    // Phase 6: Redis' own timeouts, on the same connections.
    let blpop_timeout = blpop_timeouts(server, &mut admin, &waiter_conns, per_key, &list).await?;
    let per_blpop = |a: u64, b: u64| (a as i64 - b as i64) as f64 / waiters as f64;
    let blpop = BlpopBaseline {
        idle: connected,
        blocked: blpop_blocked,
        per_waiter: per_blpop(blpop_blocked.used, connected.used),
        per_waiter_clients: per_blpop(blpop_blocked.clients, connected.clients),
        timeout: blpop_timeout,
    };

    let per = |bytes: i64, n: usize| bytes as f64 / n as f64;
    Ok(WaitersRun {
        keys,
        waiters,
        connections: keys + waiters,
        connect_secs,
        block_secs,
        memory: WaiterMemory {
            empty,
            connected,
            held,
            blocked,
            per_connection: per(connected.used as i64 - empty.used as i64, keys + waiters),
            per_waiter: per(blocked.used as i64 - held.used as i64, waiters),
            per_waiter_clients: per(blocked.clients as i64 - held.clients as i64, waiters),
        },
        hold_ms: CHURN_HOLD.as_millis() as u64,
        churn_secs: churn.as_secs_f64(),
        handoffs_per_sec: handoff.samples as f64 / churn.as_secs_f64(),
        server_cpu_per_handoff_us: churn_cpu.as_secs_f64() * 1e6 / handoff.samples.max(1) as f64,
        server_busy: churn_cpu.as_secs_f64() / churn.as_secs_f64(),
        release_usec_per_call: usec_per_call(&calls, "lock.release").unwrap_or(f64::NAN),
        acquire_usec_per_call: usec_per_call(&calls, "lock.acquire").unwrap_or(f64::NAN),
        handoff,
        timeout,
        blpop,
    })
}

/// Phase 5: every waiter connection blocks in `BLPOP` on its key's list;
/// the settled reading with all of them blocked; pushes then wake them.
async fn blpop_memory(
    admin: &mut MultiplexedConnection,
    waiter_conns: &[MultiplexedConnection],
    per_key: usize,
    list: &impl Fn(usize) -> String,
) -> Result<Mem> {
    let waiters = waiter_conns.len();
    let mut pops = Vec::with_capacity(waiters);
    for (j, con) in waiter_conns.iter().enumerate() {
        let (mut con, list) = (con.clone(), list(j / per_key));
        pops.push(tokio::spawn(async move {
            let popped: Option<(String, String)> = redis::cmd("BLPOP")
                .arg(&list)
                .arg(LONG_WAIT_MS / 1000)
                .query_async(&mut con)
                .await?;
            ensure!(popped.is_some(), "a BLPOP of {LONG_WAIT_MS} ms timed out");
            anyhow::Ok(())
        }));
        if (j + 1).is_multiple_of(BATCH) || j + 1 == waiters {
            blocked_at_least(admin, j as u64 + 1).await?;
        }
    }
    let blocked = settled_mem(admin).await?;
    for k in 0..waiters / per_key {
        let _: i64 = redis::cmd("RPUSH")
            .arg(list(k))
            .arg(vec!["x"; per_key])
            .query_async(admin)
            .await?;
    }
    for p in pops {
        tokio::time::timeout(STEP_DEADLINE, p)
            .await
            .context("a BLPOP was not woken by its push")???;
    }
    Ok(blocked)
}

/// Phase 6: every waiter's `BLPOP` times out at one deadline.
async fn blpop_timeouts(
    server: &RedisServer,
    admin: &mut MultiplexedConnection,
    waiter_conns: &[MultiplexedConnection],
    per_key: usize,
    list: &impl Fn(usize) -> String,
) -> Result<TimeoutWave> {
    timeout_wave(server, admin, waiter_conns, "BLPOP", |j| {
        let list = list(j / per_key);
        Box::new(move |ms| {
            let mut cmd = redis::cmd("BLPOP");
            cmd.arg(list).arg(format!("{}.{:03}", ms / 1000, ms % 1000));
            cmd
        })
    })
    .await
}

/// A wait command given the ms left to the deadline.
type WaitCmd = Box<dyn FnOnce(u64) -> redis::Cmd + Send>;

/// Phases 4 and 6: waiter `j` sends `wait(j)(ms)` with `ms` the time left
/// to one common deadline, reckoned just before it is sent; a null reply
/// is a timeout. The probe PINGs
/// throughout; the wave is what it saw from just before the deadline to
/// the last reply.
async fn timeout_wave(
    server: &RedisServer,
    admin: &mut MultiplexedConnection,
    waiter_conns: &[MultiplexedConnection],
    what: &str,
    wait: impl Fn(usize) -> WaitCmd,
) -> Result<TimeoutWave> {
    let waiters = waiter_conns.len();
    let probe = Probe::start(server);
    let deadline = std::time::Instant::now() + TIMEOUT_LEAD;
    eprintln!(
        "[9 waiters]     {what}: {waiters} waits time out in {TIMEOUT_LEAD:?} (server pid {})",
        server.pid()
    );
    let mut waits = Vec::with_capacity(waiters);
    for (j, con) in waiter_conns.iter().enumerate() {
        let (mut con, cmd) = (con.clone(), wait(j));
        waits.push(tokio::spawn(async move {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let cmd = cmd((left.as_millis() as u64).max(1));
            let reply: redis::Value = cmd.query_async(&mut con).await?;
            anyhow::Ok((reply != redis::Value::Nil, std::time::Instant::now()))
        }));
    }
    let all_blocked = blocked_by(admin, waiters as u64, deadline).await?;
    let blocked_at = std::time::Instant::now();
    let pause = deadline
        .saturating_duration_since(std::time::Instant::now())
        .saturating_sub(Duration::from_millis(20));
    tokio::time::sleep(pause).await;
    let wave_cpu = cpu_time(server.pid());
    let (mut timed_out, mut granted) = (0, 0);
    let mut last_reply = deadline;
    for w in waits {
        let (was_granted, at) = w.await??;
        if was_granted {
            granted += 1;
        } else {
            timed_out += 1;
        }
        last_reply = last_reply.max(at);
    }
    let wave_cpu = cpu_time(server.pid()).saturating_sub(wave_cpu);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let pings = probe.finish();
    let wave_from = deadline - Duration::from_millis(10);
    let mut wave = Latencies::default();
    let mut idle_max = Duration::ZERO;
    for &(sent, rtt) in &pings {
        if sent >= wave_from && sent <= last_reply {
            wave.record(rtt);
        } else if sent > blocked_at + Duration::from_millis(50)
            && sent + Duration::from_millis(50) < deadline
        {
            idle_max = idle_max.max(rtt);
        }
    }
    let wave = wave.summary();
    Ok(TimeoutWave {
        server_cpu_ms: wave_cpu.as_secs_f64() * 1e3,
        timed_out,
        granted,
        all_blocked,
        pings: wave.samples as usize,
        max_rtt_ms: wave.max_us / 1e3,
        p99_rtt_ms: wave.p99_us / 1e3,
        idle_max_rtt_ms: idle_max.as_secs_f64() * 1e3,
        last_reply_ms: last_reply.saturating_duration_since(deadline).as_secs_f64() * 1e3,
    })
}

/// One task of phase 2: a holder (starts holding) or a waiter (starts by
/// queueing).
struct Task {
    con: MultiplexedConnection,
    key: String,
    token: String,
    k: usize,
    origin: Arc<std::sync::OnceLock<Instant>>,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<(usize, Held)>>>,
}

impl Task {
    fn ns(&self, t: Instant) -> i64 {
        match self.origin.get() {
            Some(&o) if t >= o => (t - o).as_nanos() as i64,
            Some(&o) => -((o - t).as_nanos() as i64),
            None => i64::MIN / 2,
        }
    }

    async fn acquire(&mut self) -> Result<()> {
        let fence: Option<i64> = redis::cmd("LOCK.ACQUIRE")
            .arg(&self.key)
            .arg(&self.token)
            .arg(TTL_MS)
            .arg("WAIT")
            .arg(LONG_WAIT_MS)
            .query_async(&mut self.con)
            .await?;
        ensure!(fence.is_some(), "a wait of {LONG_WAIT_MS} ms timed out");
        Ok(())
    }

    async fn churn(mut self, holding: bool) -> Result<()> {
        let (mut arrival, mut grant) = (i64::MIN / 2, i64::MIN / 2);
        if !holding {
            self.acquire().await?;
            grant = self.ns(Instant::now());
        }
        let mut mine = Vec::new();
        loop {
            tokio::time::sleep(CHURN_HOLD).await;
            let release = self.ns(Instant::now());
            let released: i64 = redis::cmd("LOCK.RELEASE")
                .arg(&self.key)
                .arg(&self.token)
                .query_async(&mut self.con)
                .await?;
            ensure!(released == 1, "{} lost its lock", self.token);
            mine.push((
                self.k,
                Held {
                    arrival,
                    grant,
                    release,
                },
            ));
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            arrival = self.ns(Instant::now());
            self.acquire().await?;
            grant = self.ns(Instant::now());
        }
        self.log.lock().expect("log").append(&mut mine);
        Ok(())
    }
}

/// Each holder connection takes its key's lock (no wait).
async fn lock_all(
    holders: &mut [MultiplexedConnection],
    key: &impl Fn(usize) -> String,
    token: &impl Fn(usize, usize) -> String,
) -> Result<()> {
    let calls = holders.iter_mut().enumerate().map(|(k, con)| {
        let (key, token) = (key(k), token(k, 0));
        async move {
            let fence: Option<i64> = redis::cmd("LOCK.ACQUIRE")
                .arg(&key)
                .arg(&token)
                .arg(TTL_MS)
                .query_async(con)
                .await?;
            ensure!(fence.is_some(), "{key} was not free");
            anyhow::Ok(())
        }
    });
    try_join_all(calls).await?;
    Ok(())
}

/// A field of an `INFO` reply.
fn info_field(info: &str, name: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

async fn mem(con: &mut MultiplexedConnection) -> Result<Mem> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(con).await?;
    Ok(Mem {
        used: info_field(&info, "used_memory").context("INFO used_memory")?,
        clients: info_field(&info, "mem_clients_normal").context("INFO mem_clients_normal")?,
    })
}

/// [`mem`] once `clientsCron` has had time to give back the query and
/// reply buffers of clients idle for 2 s (it visits every client about
/// once a second): otherwise the buffers of the last commands, not the
/// waits, dominate the deltas.
async fn settled_mem(con: &mut MultiplexedConnection) -> Result<Mem> {
    tokio::time::sleep(SETTLE).await;
    mem(con).await
}

async fn blocked_clients(con: &mut MultiplexedConnection) -> Result<u64> {
    let info: String = redis::cmd("INFO").arg("clients").query_async(con).await?;
    info_field(&info, "blocked_clients").context("INFO blocked_clients")
}

/// Waits until the server counts `n` blocked clients.
async fn blocked_at_least(con: &mut MultiplexedConnection, n: u64) -> Result<()> {
    let deadline = Instant::now() + STEP_DEADLINE;
    loop {
        let got = blocked_clients(con).await?;
        if got >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {got} of {n} waits blocked after {STEP_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `n` clients are blocked or `deadline` passes; whether they
/// all were.
async fn blocked_by(
    con: &mut MultiplexedConnection,
    n: u64,
    deadline: std::time::Instant,
) -> Result<bool> {
    loop {
        if blocked_clients(con).await? >= n {
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A thread that PINGs every ~1 ms on a connection of its own and records
/// `(sent, round trip)`; off the runtime, so that the runtime's own work
/// delays it only through the CPU it takes.
struct Probe {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<(std::time::Instant, Duration)>>,
}

impl Probe {
    fn start(server: &RedisServer) -> Self {
        let mut con = server.connection();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let sent = std::time::Instant::now();
                let _: redis::RedisResult<redis::Value> = redis::cmd("PING").query(&mut con);
                samples.push((sent, sent.elapsed()));
                std::thread::sleep(Duration::from_millis(1));
            }
            samples
        });
        Self { stop, handle }
    }

    fn finish(self) -> Vec<(std::time::Instant, Duration)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}
