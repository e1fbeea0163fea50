//! Workload 7, read-write lock (issue 11): `readers` reader tasks and one
//! writer task on ONE `client.rwlock(key)`, each holding for `hold`,
//! releasing and coming back at once, for a fixed time; then, in the same
//! run, a mutex (`client.lock`) driven by the same number of tasks at the
//! same hold, as the baseline.
//!
//! Figures: total acquisitions of each, their ratio (readers share the
//! lock, so the RW lock should do several times the mutex), and the
//! writer's waits.
//!
//! # The writer's bound
//!
//! Strict FIFO means a writer that queues waits for the readers granted
//! before it, and readers that come after it wait behind it. Those before
//! it were granted together (each reader re-queues after its release, so
//! at most one round of readers is ahead), so the writer waits for one hold
//! plus the hand-off round trips: the bound is [`writer_bound`] =
//! `2 x hold + 2 ms` (a hold of the readers that may have just started,
//! one more hold of slack for a reader whose grant raced the writer's
//! arrival, and 2 ms of round trips on a loaded machine).
//!
//! A writer that comes back at once takes every other turn, so this shape
//! caps the RW lock at about `(readers + 1) / 2` times the mutex, whatever
//! the implementation: readers run one hold, the writer the next.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use baton_client::{Backend, Client, LockOptions};
use serde::Serialize;
use tokio::time::Instant;

use crate::stats::{Latencies, Summary};

use super::semaphore::hold_lease;

/// Lock ttl: far longer than a run (no watchdog).
const TTL: Duration = Duration::from_secs(30);

/// The writer's max wait that the goal allows: `2 x hold + 2 ms`.
pub fn writer_bound(hold: Duration) -> Duration {
    2 * hold + Duration::from_millis(2)
}

/// The figures of one RW-lock-vs-mutex run.
#[derive(Debug, Clone, Serialize)]
pub struct RwRun {
    /// Reader tasks (there is one writer).
    pub readers: usize,
    /// Hold time of every acquisition, µs.
    pub hold_us: u64,
    /// Measured seconds (each of the two runs).
    pub secs: f64,
    /// Read grants in the window.
    pub reads: u64,
    /// Write grants in the window.
    pub writes: u64,
    /// Mutex grants in the window (`readers + 1` tasks).
    pub mutex: u64,
    /// `(reads + writes) / mutex`.
    pub ratio: f64,
    /// The writer's waits (arrival to grant).
    pub writer_wait: Summary,
    /// The readers' waits.
    pub reader_wait: Summary,
    /// The goal's bound on the writer's max wait, µs ([`writer_bound`]).
    pub writer_bound_us: f64,
    /// Tasks that hung past the grace time.
    pub stuck_tasks: u64,
}

/// What a task of either run does.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    Reader,
    Writer,
    Mutex,
}

/// Runs the RW lock on `bench:rw:{run}`, then the mutex on
/// `bench:rwm:{run}`, module backend on `url`.
pub async fn run(
    url: &str,
    run: &str,
    readers: usize,
    hold: Duration,
    warmup: Duration,
    measure: Duration,
) -> Result<RwRun> {
    let client = Client::builder(url)
        .backend(Backend::Module)
        .build()
        .await
        .with_context(|| format!("connect baton to {url}"))?;
    let roles: Vec<Role> = std::iter::repeat_n(Role::Reader, readers)
        .chain([Role::Writer])
        .collect();
    let (rw, stuck_rw) = drive(
        &client,
        &format!("bench:rw:{run}"),
        &roles,
        hold,
        warmup,
        measure,
    )
    .await?;
    let mutex_roles = vec![Role::Mutex; readers + 1];
    let (mx, stuck_mx) = drive(
        &client,
        &format!("bench:rwm:{run}"),
        &mutex_roles,
        hold,
        warmup,
        measure,
    )
    .await?;
    let mut writer_wait = Latencies::default();
    let mut reader_wait = Latencies::default();
    let (mut reads, mut writes) = (0, 0);
    for (role, wait) in rw {
        match role {
            Role::Writer => {
                writes += 1;
                writer_wait.record(wait);
            }
            _ => {
                reads += 1;
                reader_wait.record(wait);
            }
        }
    }
    let mutex = mx.len() as u64;
    Ok(RwRun {
        readers,
        hold_us: hold.as_micros() as u64,
        secs: measure.as_secs_f64(),
        reads,
        writes,
        mutex,
        ratio: (reads + writes) as f64 / mutex.max(1) as f64,
        writer_wait: writer_wait.summary(),
        reader_wait: reader_wait.summary(),
        writer_bound_us: writer_bound(hold).as_nanos() as f64 / 1e3,
        stuck_tasks: stuck_rw + stuck_mx,
    })
}

/// One task per role on `key` until `warmup + measure`; returns the
/// `(role, wait)` of every grant inside the measured window, and how many
/// tasks hung.
async fn drive(
    client: &Client,
    key: &str,
    roles: &[Role],
    hold: Duration,
    warmup: Duration,
    measure: Duration,
) -> Result<(Vec<(Role, Duration)>, u64)> {
    let origin = Instant::now() + warmup;
    let end = origin + measure;
    let log: Arc<Mutex<Vec<(Role, Duration)>>> = Arc::default();
    let mut handles = Vec::new();
    for &role in roles {
        let (client, log, key) = (client.clone(), log.clone(), key.to_owned());
        handles.push(tokio::spawn(async move {
            let rw = client.rwlock(&key);
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
                // Each arm holds, then releases its own guard type.
                let granted = match role {
                    Role::Reader => match rw.read(&opts).await {
                        Ok(g) => {
                            let grant = Instant::now();
                            hold_lease(hold);
                            g.release().await?;
                            Some(grant)
                        }
                        Err(e) => not_acquired(e)?,
                    },
                    Role::Writer => match rw.write(&opts).await {
                        Ok(g) => {
                            let grant = Instant::now();
                            hold_lease(hold);
                            g.release().await?;
                            Some(grant)
                        }
                        Err(e) => not_acquired(e)?,
                    },
                    Role::Mutex => match client.lock(&key, &opts).await {
                        Ok(g) => {
                            let grant = Instant::now();
                            hold_lease(hold);
                            g.release().await?;
                            Some(grant)
                        }
                        Err(e) => not_acquired(e)?,
                    },
                };
                let Some(grant) = granted else { break };
                if grant >= origin && grant <= end {
                    log.lock().expect("log").push((role, grant - arrival));
                }
            }
            anyhow::Ok(())
        }));
    }
    let stuck = super::join_by_deadline(handles, end).await?;
    let log = std::mem::take(&mut *log.lock().expect("log"));
    Ok((log, stuck))
}

/// `None` for a wait that ran out (the end of the run), else the error.
fn not_acquired(e: baton_client::Error) -> Result<Option<Instant>> {
    match e {
        baton_client::Error::NotAcquired { .. } => Ok(None),
        e => Err(e.into()),
    }
}
