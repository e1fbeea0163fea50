//! `cargo xtask bench [--quick]`: every benchmark, one report.
//!
//! 1. Builds the module and `baton-bench` in release, once.
//! 2. On one server of its own, the module against raw Redis, for the
//!    issue's performance goals:
//!    - `throughput`: `LOCK.ACQUIRE` vs `SET NX PX`, `LOCK.RELEASE` vs `DEL`,
//!      with redis-benchmark at 50 clients (ratio module/raw, goal >= 0.95),
//!      and the same for `SEM.ACQUIRE .. LIMIT 10` / `SEM.RELEASE` (goal
//!      >= 0.9, issue 11);
//!    - `memory`: bytes per held lock and per semaphore lease vs per string
//!      key with PX (goal <= 2x);
//!    - `stall`: the longest event-loop stall while N locks expire at once
//!      (goal <= 5 ms), measured with a PING probe, with raw Redis' own
//!      expiry of as many PX keys alongside for comparison.
//!
//!    `load` fills the keyspace with pipelined commands for all three.
//! 3. Runs `baton-bench` (workloads 1, 2, 3, 5 against Redlock, raw Redis
//!    and etcd, on servers of its own; built with the `etcd` feature, whose
//!    `etcd-server`, `protobuf-compiler` and `libprotobuf-dev` only this
//!    command installs) and hands it the figures of step 2
//!    (`--scale FILE`, a [`baton_benches::scale::Scale`] as JSON): it writes
//!    both into `docs/BENCHMARKS.md` (machine, command, date, goals, ratios
//!    first, then absolutes) and `docs/benchmarks.json`.
//!
//! `--quick` shrinks step 2 (100k locks, 3 rounds of 100k requests over
//! 200k keys) and passes `--quick` to `baton-bench`: under 3 minutes after
//! the build.

mod load;
mod memory;
mod stall;
mod throughput;

use crate::cargo::{build_release, header, run as run_step, target_dir, workspace_root};
use crate::deps;
use anyhow::{bail, Context, Result};
use baton_benches::scale::Scale;
use baton_harness::RedisServer;
use std::process::Command;
use std::time::Instant;

/// Command-line options of `cargo xtask bench`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Short runs (`--quick`), here and in `baton-bench`.
    quick: bool,
    /// The arguments as given, for the report's command line.
    args: Vec<String>,
    /// redis-benchmark rounds per command (the median is kept).
    rounds: usize,
    /// Requests per redis-benchmark run.
    requests: u64,
    /// Keys/locks for the memory and expiry measurements.
    locks: u64,
    /// redis-benchmark's `-r` (and the keys held before a release run).
    keyspace: u64,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self> {
        let quick = args.iter().any(|a| a == "--quick");
        let mut opts = if quick {
            Options {
                quick,
                args: args.to_vec(),
                rounds: 3,
                requests: 100_000,
                locks: 100_000,
                keyspace: 200_000,
            }
        } else {
            Options {
                quick,
                args: args.to_vec(),
                rounds: 5,
                requests: 200_000,
                locks: 1_000_000,
                keyspace: 1_000_000,
            }
        };
        let mut args = args.iter().filter(|a| *a != "--quick");
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
                "--keyspace" => opts.keyspace = number,
                _ => bail!("unknown option '{flag}' (see cargo xtask help)"),
            }
        }
        Ok(opts)
    }
}

pub fn run(opts: Options) -> Result<()> {
    header("system dependencies: redis-server 7.x, libclang; etcd, protoc");
    deps::ensure()?;
    deps::ensure_bench()?;
    header("cargo build --release -p baton-module -p baton-benches --features baton-benches/etcd");
    let built = build_release(&["baton-benches/etcd"])?;
    let started = Instant::now();

    let scale = measure_scale(&built.module, &opts)?;
    let scale_file = target_dir().join("xtask-bench").join("scale.json");
    std::fs::create_dir_all(scale_file.parent().context("scale file dir")?)?;
    std::fs::write(&scale_file, serde_json::to_string_pretty(&scale)? + "\n")
        .with_context(|| format!("write {}", scale_file.display()))?;
    let scale_secs = started.elapsed().as_secs_f64();

    header(&format!(
        "[2/2] baton-bench{}: workloads 1, 2, 3, 5 against Redlock and raw Redis",
        if opts.quick { " --quick" } else { "" }
    ));
    let command = std::iter::once("cargo xtask bench".to_string())
        .chain(opts.args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut bench = Command::new(&built.bench);
    if opts.quick {
        bench.arg("--quick");
    }
    bench
        .arg("--out")
        .arg("docs")
        .arg("--scale")
        .arg(&scale_file)
        .args(["--command", &command])
        .current_dir(workspace_root());
    run_step("baton-bench", &mut bench)?;
    println!(
        "cargo xtask bench: done in {:.0} s after the build (module vs raw Redis {:.0} s, baton-bench {:.0} s)",
        started.elapsed().as_secs_f64(),
        scale_secs,
        started.elapsed().as_secs_f64() - scale_secs
    );
    Ok(())
}

/// Step 2: the module against raw Redis on a server of its own; prints
/// the results (ratios first, absolutes second) and returns them.
fn measure_scale(module: &std::path::Path, opts: &Options) -> Result<Scale> {
    let server = RedisServer::builder().module(module).start();
    let version = crate::reply::info_field(&mut server.connection(), "server", "redis_version")?;
    header(&format!(
        "[1/2] module vs raw Redis: redis-server {version} on port {} with {}",
        server.port(),
        module.display()
    ));

    let shape = throughput::Shape {
        rounds: opts.rounds,
        requests: opts.requests,
        keyspace: opts.keyspace,
    };
    let tp = throughput::measure(&server, shape)?;
    let mem = memory::measure(&server, opts.locks)?;
    let waves = stall::measure(&server, opts.locks, mem.lock_load)?;
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
        format!("max PING RTT, {} locks expiring at once", opts.locks),
        stall_ms,
        "<= 5 ms",
        yes_no(stall_ms <= 5.0)
    );

    header("results: absolutes");
    println!(
        "throughput: redis-benchmark -c 50 -n {} -r {} -P 1, median of {} rounds (requests/s)",
        opts.requests, opts.keyspace, opts.rounds
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

fn yes_no(met: bool) -> &'static str {
    if met {
        "yes"
    } else {
        "NO"
    }
}
