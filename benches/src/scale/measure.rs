//! The module against raw Redis on one server of its own: the sizes of a
//! run, and [`measure`], which runs the three measurements in turn, prints
//! the results (ratios first, absolutes second) and returns them as a
//! [`Scale`] for the report.

use std::path::Path;

use anyhow::Result;
use baton_harness::RedisServer;

use super::{load, memory, stall, throughput, Scale};

/// How big the module-vs-raw measurements are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// redis-benchmark rounds per command (the median is kept).
    pub rounds: usize,
    /// Requests per redis-benchmark run.
    pub requests: u64,
    /// Keys/locks for the memory and expiry measurements.
    pub locks: u64,
    /// redis-benchmark's `-r` (and the keys held before a release run).
    pub keyspace: u64,
}

impl Sizes {
    /// A full run: 5 rounds of 200k requests over 1M keys, 1M locks.
    pub fn full() -> Self {
        Sizes {
            rounds: 5,
            requests: 200_000,
            locks: 1_000_000,
            keyspace: 1_000_000,
        }
    }

    /// `--quick`: 3 rounds of 100k requests over 200k keys, 100k locks.
    pub fn quick() -> Self {
        Sizes {
            rounds: 3,
            requests: 100_000,
            locks: 100_000,
            keyspace: 200_000,
        }
    }
}

/// Starts a server with `module` loaded, measures throughput, memory and
/// the expiry stall on it, prints the results and returns them.
pub fn measure(module: &Path, sizes: Sizes) -> Result<Scale> {
    let server = RedisServer::builder().module(module).start();
    let version = load::info_field(&mut server.connection(), "server", "redis_version")?;
    header(&format!(
        "module vs raw Redis: redis-server {version} on port {} with {}",
        server.port(),
        module.display()
    ));

    let shape = throughput::Shape {
        rounds: sizes.rounds,
        requests: sizes.requests,
        keyspace: sizes.keyspace,
    };
    let tp = throughput::measure(&server, shape)?;
    let mem = memory::measure(&server, sizes.locks)?;
    let waves = stall::measure(&server, sizes.locks, mem.lock_load)?;
    drop(server);

    header("results: ratios (module / raw Redis; throughput: median of per-round ratios)");
    let mut rows: Vec<(String, f64, String, bool)> = tp
        .pairs
        .iter()
        .map(|p| {
            (
                format!("{} / {}, throughput", p.module_name(), p.raw_name()),
                p.ratio(),
                format!(">= {:.2}", p.goal),
                p.ratio() >= p.goal,
            )
        })
        .collect();
    rows.push((
        "held lock / string key with PX, memory".into(),
        mem.ratio(),
        "<= 2.00".into(),
        mem.ratio() <= 2.0,
    ));
    rows.push((
        "semaphore lease / string key with PX, memory".into(),
        mem.lease_ratio(),
        "<= 2.00".into(),
        mem.lease_ratio() <= 2.0,
    ));
    println!("{:<44} {:>9} {:>9}  met", "measure", "ratio", "goal");
    for (name, ratio, goal, met) in rows {
        println!("{name:<44} {ratio:>9.3} {goal:>9}  {}", yes_no(met));
    }
    let stall_ms = waves.module.max_rtt_ms();
    println!(
        "{:<44} {:>6.2} ms {:>9}  {}",
        format!("max PING RTT, {} locks expiring at once", sizes.locks),
        stall_ms,
        "<= 5 ms",
        yes_no(stall_ms <= 5.0)
    );

    header("results: absolutes");
    println!(
        "throughput: redis-benchmark -c 50 -n {} -r {} -P 1, median of {} rounds (requests/s)",
        sizes.requests, sizes.keyspace, sizes.rounds
    );
    tp.print();
    mem.print();
    waves.print();

    Ok(Scale {
        throughput: tp.to_scale(shape),
        memory: mem.to_scale(),
        expiry: waves.to_scale(),
    })
}

/// A step header, as `cargo xtask` prints them.
pub(crate) fn header(text: &str) {
    println!("\n==> {text}");
}

fn yes_no(met: bool) -> &'static str {
    if met {
        "yes"
    } else {
        "NO"
    }
}
