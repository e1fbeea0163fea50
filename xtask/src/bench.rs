//! `cargo xtask bench [--quick] [OPTIONS]`: every benchmark, one report.
//!
//! 1. Installs what the contenders need (`etcd-server`, `protobuf-compiler`,
//!    `libprotobuf-dev`: only this command does).
//! 2. Builds the module and `baton-bench` (with its `etcd` feature) in
//!    release, once.
//! 3. Runs `baton-bench --out docs --command "cargo xtask bench ..."` with
//!    the options given. It measures the module against raw Redis first
//!    (throughput with redis-benchmark, memory per lock and lease, expiry
//!    stall: `baton_benches::scale`), then the workloads against Redlock,
//!    raw Redis and etcd, and writes both into `docs/BENCHMARKS.md`
//!    (machine, command, date, goals, ratios first, then absolutes) and
//!    `docs/benchmarks.json`.
//!
//! `--quick` (about 5 minutes after the build) and the sizes (`--rounds`,
//! `--requests`, `--keyspace`, `--locks`) are `baton-bench`'s own options.

use crate::cargo::{build_release, header, run as run_step, workspace_root};
use crate::deps;
use anyhow::Result;
use std::process::Command;
use std::time::Instant;

pub fn run(args: &[String]) -> Result<()> {
    header("system dependencies: redis-server 7.x, libclang; etcd, protoc");
    deps::ensure()?;
    deps::ensure_bench()?;
    header("cargo build --release -p baton-module -p baton-benches --features baton-benches/etcd");
    let built = build_release(&["baton-benches/etcd"])?;
    let started = Instant::now();

    let command = std::iter::once("cargo xtask bench".to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    header(format!("baton-bench {}", args.join(" ")).trim_end());
    // The defaults first: an `--out` among the user's options wins.
    let mut bench = Command::new(&built.bench);
    bench
        .args(["--out", "docs", "--command", &command])
        .args(args)
        .current_dir(workspace_root());
    run_step("baton-bench", &mut bench)?;
    println!(
        "cargo xtask bench: done in {:.0} s after the build",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
