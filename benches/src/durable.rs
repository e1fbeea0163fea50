//! What durable acquire costs: uncontended acquire+release cycles through
//! the client on a primary with one replica, with `durable(1, 1 s)` (a
//! `WAIT 1` after every grant) and without, in alternating rounds, as a
//! small table of the medians and their ratio (`baton-bench --durable SECS`).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;
use baton_client::Backend;
use baton_harness::{wait_for_sync, RedisServer};

use crate::contenders::{Kind, Spec};
use crate::stats::median;
use crate::workloads::uncontended;

/// Alternating rounds per shape.
const ROUNDS: usize = 3;
/// Concurrent tasks of the two shapes measured.
const TASKS: [usize; 2] = [1, 16];
/// Unmeasured time before each run.
const WARMUP: Duration = Duration::from_millis(300);

/// A primary with the module and one replica of it.
#[derive(Debug)]
pub struct Pair {
    /// The primary the client talks to.
    pub primary: RedisServer,
    /// Its replica, which every durable grant waits for.
    pub replica: RedisServer,
}

impl Pair {
    /// Starts both with `module` and waits until the replica streams.
    pub fn start(module: &std::path::Path) -> Self {
        let primary = RedisServer::builder().module(module).start();
        let replica = RedisServer::builder()
            .module(module)
            .replica_of(&primary)
            .start();
        wait_for_sync(&primary, &replica);
        Self { primary, replica }
    }
}

/// One shape's medians: (tasks, plain cycles/s, durable cycles/s).
pub type Row = (usize, f64, f64);

/// Measures every shape for `each` per run.
pub async fn measure(pair: &Pair, each: Duration) -> Result<Vec<Row>> {
    let urls = [pair.primary.url()];
    let plain = Spec::new("baton module", Kind::Baton(Backend::Module));
    let durable = Spec::new("baton module, durable(1)", Kind::BatonDurable(1));
    let mut rows = Vec::new();
    for tasks in TASKS {
        let (mut p, mut d) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            for (spec, out) in [(&plain, &mut p), (&durable, &mut d)] {
                eprintln!(
                    "  round {round}: {:<26} {tasks:>2} tasks, {each:?}",
                    spec.name
                );
                let c = spec.build(&urls).await?;
                let run = format!("d{tasks}-{round}-{}", out.len());
                let r = uncontended::run(&c, &run, tasks, WARMUP, each).await?;
                anyhow::ensure!(
                    r.not_granted == 0,
                    "{}: {} tries refused",
                    spec.name,
                    r.not_granted
                );
                out.push(r.cycles_per_sec);
            }
        }
        rows.push((tasks, median(&p), median(&d)));
    }
    Ok(rows)
}

/// The rows as a markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| tasks | cycles/s | durable(1) cycles/s | durable / plain |\n| ---: | ---: | ---: | ---: |\n",
    );
    for (tasks, plain, durable) in rows {
        let _ = writeln!(
            s,
            "| {tasks} | {plain:.0} | {durable:.0} | {:.2}× |",
            durable / plain
        );
    }
    s
}
