//! Workload 8, hand-off with a long queue (issue 11): `waiters` tasks
//! queued on ONE semaphore of limit 1, module backend, through the client
//! (`client.semaphore(key, 1).acquire`: each wait has its own connection,
//! as the client gives every blocking wait). Run with 10 and with 10,000
//! waiters: the cost of a grant must not grow with the queue.
//!
//! A gate lease is taken first and every waiter queued behind it (the
//! run waits until `SEM.INFO` counts them all). Then the gate is released
//! and the queue turns: each waiter, once granted, releases at once (no
//! hold) and queues again at the back, so the queue stays `waiters - 1`
//! long for the whole run.
//!
//! Hand-off latency, as seen by the client: from the moment the holder
//! starts its release call to the moment the next waiter's acquire call
//! returns its lease. It spans the release's trip to the server, the
//! server's grant, the grant reply's trip and both tasks' wake-ups, so it
//! bounds the server-side hand-off from above. Leases are paired by fence
//! (fence order is the server's grant order; the limit is 1, so
//! consecutive fences are consecutive holders).
//!
//! 10,000 waits are 10,000 connections: the server is one of its own
//! ([`QueueServer`]), with `maxclients` raised; the process' open-file
//! limit is raised by `baton-bench` (setrlimit) before anything starts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use baton_client::{Backend, Client, LockOptions};
use baton_harness::RedisServer;
use serde::Serialize;
use tokio::time::Instant;

use crate::stats::{Latencies, Summary};

/// How many waits are started before the run waits for them to be queued
/// (a burst of 10,000 connects would overflow the listen backlog).
pub const RAMP_BATCH: usize = 250;

/// How long queueing one batch may take before the run fails.
const RAMP_DEADLINE: Duration = Duration::from_secs(30);

/// A wait long enough for any run: the waiters are ended by the stop flag,
/// not by a timeout.
const LONG_WAIT: Duration = Duration::from_secs(300);

/// Lease ttl: far longer than a run (no watchdog).
const TTL: Duration = Duration::from_secs(300);

/// The `maxclients` of the server of the many-waiter workloads.
pub const MAX_CLIENTS: u32 = 30_000;

/// The server of the many-waiter workloads (8 and 9): the module loaded,
/// `maxclients` raised, nothing else on it (its memory figures are its
/// own). Killed on drop.
#[derive(Debug)]
pub struct QueueServer {
    /// The server.
    pub server: RedisServer,
}

impl QueueServer {
    /// Starts it; fails when the server could not raise its own limit to
    /// `needed` clients (it lowers `maxclients` to what its open-file
    /// limit allows).
    pub fn start(module: &std::path::Path, needed: u32) -> Result<Self> {
        let server = RedisServer::builder()
            .module(module)
            .config("maxclients", &MAX_CLIENTS.to_string())
            .config("tcp-backlog", "4096")
            .start();
        let mut con = server.connection();
        let got: (String, u32) = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxclients")
            .query(&mut con)
            .context("CONFIG GET maxclients")?;
        if got.1 < needed {
            bail!(
                "redis-server's maxclients is {} (its open-file limit), {needed} needed: \
                 raise the hard RLIMIT_NOFILE",
                got.1
            );
        }
        Ok(Self { server })
    }
}

/// The figures of one long-queue run.
#[derive(Debug, Clone, Serialize)]
pub struct QueueRun {
    /// Waiters on the semaphore (the queue is one shorter while one holds).
    pub waiters: usize,
    /// Seconds it took to queue them all.
    pub queue_secs: f64,
    /// Measured seconds.
    pub secs: f64,
    /// Hand-offs measured.
    pub handoffs: u64,
    /// `handoffs / secs`.
    pub per_sec: f64,
    /// Release call start to the next waiter's grant.
    pub latency: Summary,
    /// The server's own time per `SEM.ACQUIRE` call in the window
    /// (`INFO commandstats` `usec_per_call`), µs.
    pub server_acquire_us: f64,
    /// The same per `SEM.RELEASE` (which grants the queue's head), µs.
    pub server_release_us: f64,
    /// The server process' CPU time per hand-off in the window
    /// (`/proc/PID/stat`, 10 ms ticks), µs.
    pub server_cpu_us: f64,
}

/// One lease: when its acquire started, when it was granted, when its
/// release started (ns since the gate's release), and its fence.
#[derive(Debug, Clone, Copy)]
struct Lease {
    arrival: i64,
    grant: i64,
    release: i64,
    fence: u64,
}

/// Runs the workload on `server`, key `bench:q:{run}`.
pub async fn run(
    server: &RedisServer,
    run: &str,
    waiters: usize,
    measure: Duration,
) -> Result<QueueRun> {
    let client = Client::builder(server.url())
        .backend(Backend::Module)
        .build()
        .await
        .context("connect baton")?;
    let sem = client.semaphore(&format!("bench:q:{run}"), 1);
    let opts = LockOptions::new().ttl(TTL).wait(LONG_WAIT).watchdog(false);
    let gate = sem.try_acquire(1, &opts).await?.context("the gate lease")?;

    // Times are taken against `origin`, set when the gate is released.
    let origin: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<Vec<Lease>>> = Arc::default();
    let started = Instant::now();
    let mut handles = Vec::with_capacity(waiters);
    for i in 0..waiters {
        let (mine_sem, opts, origin, stop, log) = (
            sem.clone(),
            opts.clone(),
            origin.clone(),
            stop.clone(),
            log.clone(),
        );
        handles.push(tokio::spawn(async move {
            let ns = |t: Instant| -> i64 {
                match origin.get() {
                    Some(&o) if t >= o => (t - o).as_nanos() as i64,
                    Some(&o) => -((o - t).as_nanos() as i64),
                    None => i64::MIN / 2,
                }
            };
            let mut mine = Vec::new();
            loop {
                let arrival = Instant::now();
                let lease = mine_sem.acquire(1, &opts).await?;
                let grant = Instant::now();
                let fence = lease.fence();
                let release = Instant::now();
                lease.release().await?;
                mine.push(Lease {
                    arrival: ns(arrival),
                    grant: ns(grant),
                    release: ns(release),
                    fence,
                });
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            log.lock().expect("log").append(&mut mine);
            anyhow::Ok(())
        }));
        if (i + 1).is_multiple_of(RAMP_BATCH) || i + 1 == waiters {
            queued_at_least(&sem, i + 1).await?;
        }
    }
    let queue_secs = started.elapsed().as_secs_f64();
    let mut admin = server.connection();
    redis::cmd("CONFIG").arg("RESETSTAT").exec(&mut admin)?;
    let cpu_before = cpu_time(server.pid());
    let gate_release = Instant::now();
    origin.set(gate_release).ok();
    let gate_fence = gate.fence();
    gate.release().await?;
    tokio::time::sleep(measure).await;
    let measure_ns = measure.as_nanos() as i64;
    let cpu = cpu_time(server.pid()).saturating_sub(cpu_before);
    let stats: String = redis::cmd("INFO").arg("commandstats").query(&mut admin)?;
    stop.store(true, Ordering::Relaxed);
    // Every waiter still queued is granted once more and leaves.
    for h in handles {
        h.await??;
    }
    let mut leases = std::mem::take(&mut *log.lock().expect("log"));
    leases.push(Lease {
        arrival: i64::MIN / 2,
        grant: i64::MIN / 2,
        release: 0,
        fence: gate_fence,
    });
    leases.sort_by_key(|l| l.fence);
    let mut lat = Latencies::default();
    for pair in leases.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        // Only hand-offs to a waiter already queued, inside the window.
        if next.grant < 0 || next.grant > measure_ns || next.arrival >= prev.release {
            continue;
        }
        lat.record_ns((next.grant - prev.release).max(0) as u64);
    }
    let latency = lat.summary();
    Ok(QueueRun {
        waiters,
        queue_secs,
        secs: measure.as_secs_f64(),
        handoffs: latency.samples,
        per_sec: latency.samples as f64 / measure.as_secs_f64(),
        latency,
        server_acquire_us: usec_per_call(&stats, "sem.acquire").unwrap_or(f64::NAN),
        server_release_us: usec_per_call(&stats, "sem.release").unwrap_or(f64::NAN),
        server_cpu_us: cpu.as_secs_f64() * 1e6 / latency.samples.max(1) as f64,
    })
}

/// `usec_per_call` of `cmd` in an `INFO commandstats` reply.
pub(crate) fn usec_per_call(stats: &str, cmd: &str) -> Option<f64> {
    let line = stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:")))?;
    line.split(',')
        .find_map(|f| f.strip_prefix("usec_per_call="))?
        .parse()
        .ok()
}

/// User + system CPU time of process `pid` so far (`/proc/PID/stat`, in
/// clock ticks of 10 ms); zero when it cannot be read.
pub(crate) fn cpu_time(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may hold spaces, in parens):
    // utime and stime are the 14th and 15th fields of the line.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Waits until `SEM.INFO` counts at least `n` waiters.
async fn queued_at_least(sem: &baton_client::Semaphore, n: usize) -> Result<()> {
    let deadline = Instant::now() + RAMP_DEADLINE;
    loop {
        let info = sem.info().await?;
        if info.waiters as usize >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} waiters queued after {RAMP_DEADLINE:?}",
                info.waiters
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
