//! Workload 1, uncontended: `tasks` tasks each run acquire+release cycles on
//! a key of their own for a fixed time; cycles/s and cycle latency.

use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::time::Instant;

use crate::contenders::{Contender, GRACE};
use crate::stats::{Latencies, Summary};

/// The figures of one uncontended run.
#[derive(Debug, Clone, Serialize)]
pub struct Uncontended {
    /// Contender name.
    pub contender: String,
    /// Concurrent tasks.
    pub tasks: usize,
    /// Measured seconds.
    pub secs: f64,
    /// Cycles that started and ended inside the measured window.
    pub cycles: u64,
    /// `cycles / secs`.
    pub cycles_per_sec: f64,
    /// One cycle: acquire call to release reply.
    pub latency: Summary,
    /// Tries that were not granted (should be 0: nobody else holds the key).
    pub not_granted: u64,
}

/// Runs the workload; keys are `bench:u:{run}:{task}`.
pub async fn run(
    contender: &Contender,
    run: &str,
    tasks: usize,
    warmup: Duration,
    measure: Duration,
) -> Result<Uncontended> {
    run_spread(std::slice::from_ref(contender), run, tasks, warmup, measure).await
}

/// [`run`] with task `i` on `contenders[i % len]` (for an experiment: N
/// clients, each with its own connection, in place of one).
pub async fn run_spread(
    contenders: &[Contender],
    run: &str,
    tasks: usize,
    warmup: Duration,
    measure: Duration,
) -> Result<Uncontended> {
    let contender = contenders.first().context("no contender")?;
    // Per-task contenders first (etcd grants a lease for each), so the
    // warmup is all spent on the workload.
    let mut per_task = Vec::with_capacity(tasks);
    for task in 0..tasks {
        per_task.push(contenders[task % contenders.len()].for_task().await?);
    }
    let start = Instant::now() + warmup;
    let end = start + measure;
    let mut handles = Vec::with_capacity(tasks);
    for (task, c) in per_task.into_iter().enumerate() {
        let key = format!("bench:u:{run}:{task}");
        handles.push(tokio::spawn(async move {
            let mut lat = Latencies::default();
            let (mut cycles, mut not_granted) = (0u64, 0u64);
            while Instant::now() < end {
                let t0 = Instant::now();
                match c.try_acquire(&key).await? {
                    Some(held) => c.release(held).await?,
                    None => {
                        not_granted += 1;
                        continue;
                    }
                }
                let t1 = Instant::now();
                if t0 >= start && t1 <= end {
                    lat.record(t1 - t0);
                    cycles += 1;
                }
            }
            anyhow::Ok((lat, cycles, not_granted))
        }));
    }
    let mut lat = Latencies::default();
    let (mut cycles, mut not_granted) = (0, 0);
    let aborts: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
    for h in handles {
        let Ok(joined) = tokio::time::timeout_at(end + 2 * GRACE, h).await else {
            aborts.iter().for_each(|a| a.abort());
            anyhow::bail!("a task hung: no reply {:?} after the end", 2 * GRACE);
        };
        let (l, c, n) = joined??;
        lat.merge(&l);
        cycles += c;
        not_granted += n;
    }
    let secs = measure.as_secs_f64();
    Ok(Uncontended {
        contender: contender.name().into(),
        tasks,
        secs,
        cycles,
        cycles_per_sec: cycles as f64 / secs,
        latency: lat.summary(),
        not_granted,
    })
}
