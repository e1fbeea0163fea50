//! Workload 2, contended: `tasks` tasks take ONE key over and over for a
//! fixed time, each holding it for `hold` before releasing.
//!
//! Every acquisition is recorded as `(task, arrival, grant, release)`, where
//! arrival is when the task started its acquire call (the wait counts from
//! there, across every retry), grant when the call returned the lock and
//! release when the release reply arrived. From those come acquisitions/s,
//! wait percentiles, Jain's fairness index over tasks, order violations, and
//! (in [`super::handoff`]) hand-off latency.
//!
//! The hold is a precise blocking pause of the holder (`block_in_place`, a
//! sleep and a short spin): tokio timers round to whole milliseconds, which
//! would turn a 1 ms hold into 1-2 ms for everyone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;
use tokio::time::Instant;

use crate::contenders::{Contender, Stuck};
use crate::stats::{jain, order_violations, Latencies, Summary};

use super::handoff::{self, Handoff};

/// One acquisition, in ns since the run's start (end of warmup).
#[derive(Debug, Clone, Copy)]
pub struct Acquisition {
    /// Which task.
    pub task: usize,
    /// The task started its acquire call.
    pub arrival: i64,
    /// The acquire call returned the lock.
    pub grant: i64,
    /// The release reply arrived.
    pub release: i64,
}

/// What one task did, shared with the runner so that a hung task's records
/// are not lost.
#[derive(Debug, Default)]
struct TaskLog {
    acqs: Vec<Acquisition>,
    /// Start of the wait under way, if any.
    waiting_since: Option<Instant>,
    /// The wait hung and was cancelled.
    stuck: bool,
}

/// The figures of one contended run.
#[derive(Debug, Clone, Serialize)]
pub struct Contended {
    /// Contender name.
    pub contender: String,
    /// Concurrent tasks on the key.
    pub tasks: usize,
    /// Hold time, microseconds.
    pub hold_us: u64,
    /// Measured seconds.
    pub secs: f64,
    /// Grants inside the measured window.
    pub acquisitions: u64,
    /// `acquisitions / secs`.
    pub acq_per_sec: f64,
    /// `acq_per_sec` over the physical limit `1/hold` (none for hold 0).
    pub of_limit: Option<f64>,
    /// Wait (arrival to grant) of the granted acquisitions.
    pub wait: Summary,
    /// Longest wait, counting waits still open at the end of the run.
    pub max_wait_us: f64,
    /// Waits still open when the run ended.
    pub open_waits: u64,
    /// Tasks whose wait or release did not return within the grace time
    /// after the end (a hung client); their open wait counts in the max.
    pub stuck_tasks: u64,
    /// Jain's fairness index of acquisitions per task.
    pub jain: f64,
    /// Later arrival granted before an earlier one (any gap).
    pub order_violations: u64,
    /// The same, arrivals more than 1 ms apart only.
    pub order_violations_1ms: u64,
    /// Release reply to the next waiter's grant.
    pub handoff: Handoff,
}

/// Runs the workload on key `bench:c:{run}`.
pub async fn run(
    contender: &Contender,
    run: &str,
    tasks: usize,
    hold: Duration,
    warmup: Duration,
    measure: Duration,
) -> Result<Contended> {
    let key = format!("bench:c:{run}");
    contender.prepare(&key).await?;
    // Per-task contenders first (etcd grants a lease for each), so the
    // warmup is all spent on the workload.
    let mut per_task = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        per_task.push(contender.for_task().await?);
    }
    let origin = Instant::now() + warmup;
    let end = origin + measure;
    let ns = move |t: Instant| -> i64 {
        if t >= origin {
            (t - origin).as_nanos() as i64
        } else {
            -((origin - t).as_nanos() as i64)
        }
    };
    let logs: Vec<Arc<Mutex<TaskLog>>> = (0..tasks).map(|_| Arc::default()).collect();
    let mut handles = Vec::with_capacity(tasks);
    for ((task, log), c) in logs.iter().enumerate().zip(per_task) {
        let key = key.clone();
        let log = log.clone();
        handles.push(tokio::spawn(async move {
            while Instant::now() < end {
                let arrival = Instant::now();
                log.lock().expect("log").waiting_since = Some(arrival);
                let held = match c.acquire_until(&key, end).await {
                    Ok(Some(held)) => held,
                    Ok(None) => break,
                    Err(e) if e.is::<Stuck>() => {
                        log.lock().expect("log").stuck = true;
                        break;
                    }
                    Err(e) => return Err(e),
                };
                let grant = Instant::now();
                log.lock().expect("log").waiting_since = None;
                hold_for(hold);
                c.release(held).await?;
                log.lock().expect("log").acqs.push(Acquisition {
                    task,
                    arrival: ns(arrival),
                    grant: ns(grant),
                    release: ns(Instant::now()),
                });
            }
            anyhow::Ok(())
        }));
    }
    // A task hung elsewhere (a release) is cut off too.
    let mut stuck_tasks = super::join_by_deadline(handles, end).await?;
    let mut all = Vec::new();
    let mut open = Vec::new();
    for log in &logs {
        let mut log = log.lock().expect("log");
        all.append(&mut log.acqs);
        if let Some(since) = log.waiting_since {
            open.push(end.saturating_duration_since(since.max(origin)));
        }
        stuck_tasks += u64::from(log.stuck);
    }
    let measure_ns = measure.as_nanos() as i64;
    all.sort_by_key(|a| a.grant);
    let handoff = handoff::from_acquisitions(&all, 0, measure_ns);
    let window: Vec<Acquisition> = all
        .into_iter()
        .filter(|a| a.grant >= 0 && a.grant <= measure_ns)
        .collect();
    let mut wait = Latencies::default();
    let mut per_task = vec![0u64; tasks];
    for a in &window {
        wait.record_ns((a.grant - a.arrival) as u64);
        per_task[a.task] += 1;
    }
    let pairs: Vec<(u64, u64)> = window
        .iter()
        .map(|a| {
            (
                (a.arrival - i64::MIN / 2) as u64,
                (a.grant - i64::MIN / 2) as u64,
            )
        })
        .collect();
    let wait = wait.summary();
    let open_max = open.iter().max().map_or(0.0, |d| d.as_nanos() as f64 / 1e3);
    let secs = measure.as_secs_f64();
    let acq_per_sec = window.len() as f64 / secs;
    Ok(Contended {
        contender: contender.name().into(),
        tasks,
        hold_us: hold.as_micros() as u64,
        secs,
        acquisitions: window.len() as u64,
        acq_per_sec,
        of_limit: (!hold.is_zero()).then_some(acq_per_sec * hold.as_secs_f64()),
        wait,
        max_wait_us: wait.max_us.max(open_max),
        open_waits: open.len() as u64,
        stuck_tasks,
        jain: jain(&per_task),
        order_violations: order_violations(&pairs, 0),
        order_violations_1ms: order_violations(&pairs, 1_000_000),
        handoff,
    })
}

/// Holds the lock for `hold` precisely, blocking this worker (the other
/// worker keeps serving the waiters' I/O meanwhile).
fn hold_for(hold: Duration) {
    if hold.is_zero() {
        return;
    }
    let until = std::time::Instant::now() + hold;
    tokio::task::block_in_place(|| {
        let slack = Duration::from_micros(150);
        if hold > slack {
            std::thread::sleep(hold - slack);
        }
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
    });
}
