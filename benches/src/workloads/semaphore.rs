//! Workload 6, semaphore fairness (issue 11): `tasks` tasks on ONE
//! semaphore of `limit` permits (`client.semaphore(key, limit)`), each
//! taking 1 permit, holding it for `hold`, releasing, and again, for a fixed
//! time.
//!
//! Figures: acquisitions/s against the physical limit `limit / hold`,
//! Jain's fairness index over per-task acquisitions, and FIFO order
//! violations.
//!
//! # Order violations of a semaphore
//!
//! As for the lock (workload 2), a violation is a pair of acquisitions
//! `(a, b)` where `a` arrived first (its acquire call started earlier) and
//! yet `b` was granted first. What differs is how "granted first" is told:
//! with 8 holders, grants are often microseconds apart and their replies
//! come back on 8 connections that the runtime reads in any order, so the
//! client's grant timestamps cannot order them. The lease's fence can: it
//! comes from one counter on the server, taken at the grant, so fence order
//! IS the server's grant order. A violation is therefore `arrival(a) <
//! arrival(b)` and `fence(b) < fence(a)`.
//!
//! Arrival stays a client-side time (the start of the call): two calls
//! started a few microseconds apart can reach the server in either order,
//! and the server's queue order is then the other one, which is not a FIFO
//! violation. So the figures are given for every pair and for pairs whose
//! arrivals are more than [`MIN_GAP_US`] apart (longer than any request
//! takes to reach the server on loopback, including a busy runtime); the
//! goal is judged on the latter.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use baton_client::{Backend, Client, LockOptions};
use serde::Serialize;
use tokio::time::Instant;

use crate::stats::{jain, order_violations, Latencies, Summary};

/// Arrivals closer than this are not ordered by the violation count the
/// goal is judged on (see the module docs), µs.
pub const MIN_GAP_US: u64 = 100;

/// Lease ttl: far longer than a run, so nothing expires (no watchdog).
const TTL: Duration = Duration::from_secs(30);

/// One acquisition, ns since the run's start (end of warmup).
#[derive(Debug, Clone, Copy)]
struct Lease {
    task: usize,
    arrival: i64,
    grant: i64,
    fence: u64,
}

/// The figures of one semaphore fairness run.
#[derive(Debug, Clone, Serialize)]
pub struct SemFair {
    /// Contender name (baton's backend).
    pub contender: String,
    /// Concurrent tasks.
    pub tasks: usize,
    /// The semaphore's limit (permits); each acquisition takes 1.
    pub limit: u32,
    /// Hold time, µs.
    pub hold_us: u64,
    /// Measured seconds.
    pub secs: f64,
    /// Grants inside the measured window.
    pub acquisitions: u64,
    /// `acquisitions / secs`.
    pub acq_per_sec: f64,
    /// `acq_per_sec` over the physical limit `limit / hold`.
    pub of_limit: f64,
    /// Wait (arrival to grant) of the granted acquisitions.
    pub wait: Summary,
    /// Jain's fairness index of acquisitions per task.
    pub jain: f64,
    /// Arrived first, granted (fence) later: every pair.
    pub order_violations: u64,
    /// The same, arrivals more than [`MIN_GAP_US`] apart.
    pub order_violations_gap: u64,
    /// The same, arrivals more than 1 ms apart.
    pub order_violations_1ms: u64,
    /// Tasks whose wait did not return within the grace time after the end.
    pub stuck_tasks: u64,
    /// Connections the server accepted during the run (`INFO stats`
    /// `total_connections_received`): waits beyond the client's cache of
    /// idle wait connections each open one, after the call started.
    pub connections_opened: u64,
}

/// Runs the workload with a client of `backend` on `url`, key
/// `bench:sem:{run}`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    name: &str,
    url: &str,
    backend: Backend,
    run: &str,
    tasks: usize,
    limit: u32,
    hold: Duration,
    warmup: Duration,
    measure: Duration,
) -> Result<SemFair> {
    let client = Client::builder(url)
        .backend(backend)
        .build()
        .await
        .with_context(|| format!("connect baton ({backend:?}) to {url}"))?;
    let sem = client.semaphore(&format!("bench:sem:{run}"), limit);
    let mut admin = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let connections_before = connections_received(&mut admin).await?;
    let origin = Instant::now() + warmup;
    let end = origin + measure;
    let ns = move |t: Instant| -> i64 {
        if t >= origin {
            (t - origin).as_nanos() as i64
        } else {
            -((origin - t).as_nanos() as i64)
        }
    };
    let logs: Vec<Arc<Mutex<Vec<Lease>>>> = (0..tasks).map(|_| Arc::default()).collect();
    let mut handles = Vec::with_capacity(tasks);
    for (task, log) in logs.iter().enumerate() {
        let (sem, log) = (sem.clone(), log.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let arrival = Instant::now();
                let left = end.saturating_duration_since(arrival);
                if left.is_zero() {
                    break;
                }
                let opts = LockOptions::new()
                    .ttl(TTL)
                    .wait(Duration::from_millis(left.as_millis() as u64 + 1))
                    .watchdog(false);
                let lease = match sem.acquire(1, &opts).await {
                    Ok(lease) => lease,
                    Err(baton_client::Error::NotAcquired { .. }) => break,
                    Err(e) => return Err(anyhow::Error::from(e)),
                };
                let grant = Instant::now();
                let fence = lease.fence();
                hold_lease(hold);
                lease.release().await?;
                log.lock().expect("log").push(Lease {
                    task,
                    arrival: ns(arrival),
                    grant: ns(grant),
                    fence,
                });
            }
            anyhow::Ok(())
        }));
    }
    let stuck_tasks = super::join_by_deadline(handles, end).await?;
    let connections_opened = connections_received(&mut admin)
        .await?
        .saturating_sub(connections_before);
    let measure_ns = measure.as_nanos() as i64;
    let window: Vec<Lease> = logs
        .iter()
        .flat_map(|l| l.lock().expect("log").clone())
        .filter(|a| a.grant >= 0 && a.grant <= measure_ns)
        .collect();
    let mut wait = Latencies::default();
    let mut per_task = vec![0u64; tasks];
    for a in &window {
        wait.record_ns((a.grant - a.arrival) as u64);
        per_task[a.task] += 1;
    }
    // (arrival, fence): the fence stands for the grant's place in the
    // server's order (see the module docs).
    let pairs: Vec<(u64, u64)> = window
        .iter()
        .map(|a| ((a.arrival - i64::MIN / 2) as u64, a.fence))
        .collect();
    let secs = measure.as_secs_f64();
    let acq_per_sec = window.len() as f64 / secs;
    Ok(SemFair {
        contender: name.into(),
        tasks,
        limit,
        hold_us: hold.as_micros() as u64,
        secs,
        acquisitions: window.len() as u64,
        acq_per_sec,
        of_limit: acq_per_sec * hold.as_secs_f64() / f64::from(limit),
        wait: wait.summary(),
        jain: jain(&per_task),
        order_violations: order_violations(&pairs, 0),
        order_violations_gap: order_violations(&pairs, MIN_GAP_US * 1000),
        order_violations_1ms: order_violations(&pairs, 1_000_000),
        stuck_tasks,
        connections_opened,
    })
}

/// `total_connections_received` of `INFO stats`.
async fn connections_received(con: &mut redis::aio::MultiplexedConnection) -> Result<u64> {
    let info: String = redis::cmd("INFO").arg("stats").query_async(con).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO total_connections_received")
}

/// Holds a lease for `hold` precisely, blocking this worker (as the lock's
/// contended workload does), but with a shorter spin: up to 8 holders hold
/// at once here, and 8 spinning threads on a small machine would take the
/// CPU from the server. The sleep ends about 50 µs late (Linux' timer
/// slack), so sleeping `hold - 70 µs` leaves a spin of some 20 µs.
pub(crate) fn hold_lease(hold: Duration) {
    if hold.is_zero() {
        return;
    }
    let until = std::time::Instant::now() + hold;
    tokio::task::block_in_place(|| {
        let slack = Duration::from_micros(70);
        if hold > slack {
            std::thread::sleep(hold - slack);
        }
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
    });
}
