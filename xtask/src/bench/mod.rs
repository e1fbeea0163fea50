//! `cargo xtask bench`: the module against raw Redis, on one server in one
//! run, for the performance goals:
//!
//! - `throughput`: `LOCK.ACQUIRE` vs `SET NX PX`, `LOCK.RELEASE` vs `DEL`,
//!   with redis-benchmark at 50 clients (ratio module/raw, goal >= 0.95);
//! - `memory`: bytes per held lock vs per string key with PX (goal <= 2x);
//! - `stall`: the longest event-loop stall while 1M locks expire at once
//!   (goal <= 5 ms), measured with a PING probe, with raw Redis' own
//!   expiry of as many PX keys alongside for comparison.
//!
//! `load` fills the keyspace with pipelined commands for all three.

mod load;
mod memory;
mod stall;
mod throughput;

use crate::cargo::{build_module, header};
use crate::deps;
use anyhow::{bail, Context, Result};
use baton_tests::RedisServer;

/// Command-line options of `cargo xtask bench`.
#[derive(Debug, Clone)]
pub struct Options {
    /// redis-benchmark rounds per command (the median is kept).
    rounds: usize,
    /// Requests per redis-benchmark run.
    requests: u64,
    /// Keys/locks for the memory and expiry measurements.
    locks: u64,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut opts = Options {
            rounds: 5,
            requests: 200_000,
            locks: 1_000_000,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .with_context(|| format!("{flag} needs a value"))?;
            let number: u64 = value
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| format!("{flag} needs a positive integer, got '{value}'"))?;
            match flag.as_str() {
                "--rounds" => opts.rounds = number as usize,
                "--requests" => opts.requests = number,
                "--locks" => opts.locks = number,
                _ => bail!("unknown option '{flag}' (see cargo xtask help)"),
            }
        }
        Ok(opts)
    }
}

pub fn run(opts: Options) -> Result<()> {
    header("system dependencies: redis-server 7.x, libclang");
    deps::ensure()?;
    header("cargo build --release -p baton-module");
    let module = build_module(true)?;
    let server = RedisServer::builder().module(&module).start();
    let version = crate::reply::info_field(&mut server.connection(), "server", "redis_version")?;
    header(&format!(
        "bench: redis-server {version} on port {} with {}",
        server.port(),
        module.display()
    ));

    let tp = throughput::measure(&server, opts.rounds, opts.requests)?;
    let mem = memory::measure(&server, opts.locks)?;
    let waves = stall::measure(&server, opts.locks, mem.lock_load)?;

    header("results: ratios (module / raw Redis; throughput: median of per-round ratios)");
    let rows = [
        (
            "LOCK.ACQUIRE / SET NX PX, throughput",
            tp.acquire.ratio(),
            ">= 0.95",
            tp.acquire.ratio() >= 0.95,
        ),
        (
            "LOCK.RELEASE / DEL, throughput",
            tp.release.ratio(),
            ">= 0.95",
            tp.release.ratio() >= 0.95,
        ),
        (
            "held lock / string key with PX, memory",
            mem.ratio(),
            "<= 2.00",
            mem.ratio() <= 2.0,
        ),
    ];
    println!("{:<44} {:>9} {:>9}  met", "measure", "ratio", "goal");
    for (name, ratio, goal, met) in rows {
        println!("{name:<44} {ratio:>9.3} {goal:>9}  {}", yes_no(met));
    }
    let stall_ms = waves.module.max_rtt_ms();
    println!(
        "{:<44} {:>6.2} ms {:>9}  {}",
        format!("max PING RTT, {} locks expiring at once", opts.locks),
        stall_ms,
        "<= 5 ms",
        yes_no(stall_ms <= 5.0)
    );

    header("results: absolutes");
    println!(
        "throughput: redis-benchmark -c 50 -n {} -r 1000000 -P 1, median of {} rounds (requests/s)",
        opts.requests, opts.rounds
    );
    tp.print();
    mem.print();
    waves.print();
    Ok(())
}

fn yes_no(met: bool) -> &'static str {
    if met {
        "yes"
    } else {
        "NO"
    }
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
