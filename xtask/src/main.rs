//! `cargo xtask`: the commands the README promises. Orchestration only:
//! installing what is missing, building, starting servers, running the
//! programs that do the work (tests, the client's `demo` example,
//! `baton-bench`) as named steps.
//!
//! Layout:
//! - `deps`   makes sure `redis-server` 7.x and libclang are installed
//! - `cargo`  workspace paths and running child processes as named steps
//! - `test`   fmt, clippy, module build, then every test (what CI runs)
//! - `demo`   starts a server with the module and runs the client's example
//!   `client/examples/demo/` against it (a transcript of baton_client at
//!   work, every claim checked), then `baton-bench --demo` (a short
//!   contended run against Redlock)
//! - `fuzz`   the server fuzz tests (arguments, RESTORE payloads), long
//! - `chaos`  the chaos checker (`client/tests/chaos.rs`) for N minutes,
//!   its summary table written to docs/CHAOS.md
//! - `bench`  every benchmark, one report: `baton-bench` (the module
//!   against raw Redis, then the workloads against the contenders) with
//!   the etcd contender's dependencies installed

mod bench;
mod cargo;
mod chaos;
mod demo;
mod deps;
mod fuzz;
mod test;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test    install redis-server/libclang if missing, then fmt, clippy,
          build the module and run every test (what CI runs)
  demo    build the module and baton-bench (release) and the client's demo
          example, run the example (the client at work) on a local server,
          then 8 tasks on one key against Redlock (~25 s)
  fuzz    the server fuzz tests for longer: random arguments at every LOCK
          command and mutated DUMP payloads at RESTORE, 200000 rounds each
          options: --rounds N
  chaos   the Jepsen-style checker for N minutes per run: workers take
          fenced locks on a Redis Cluster whose primary is killed, paused,
          failed over; prints progress and the summary table, writes it to
          docs/CHAOS.md; fails when a durable run shows a violation
          options: --minutes N (required)
                   --durable | --non-durable | --both (default both)
                   --backend module|lua|both (both)  --seed S (1)
                   --faults kill,pause,short-pause,failover,takeover,
                            client-kill,replica-restart (all)
                   --topology cluster|sentinel (cluster; sentinel needs the
                            client's redis+sentinel:// support)
                   --no-write (print the table only)
  bench   build in release and run baton-bench: the module against raw
          Redis (throughput, memory, expiry stall), then the workloads
          against Redlock, raw Redis and etcd; writes docs/BENCHMARKS.md and
          docs/benchmarks.json
          options (baton-bench's, passed on): --quick (about 5 minutes: 3
                   rounds, 100k requests over 200k keys, 100k locks, short
                   workloads)  --rounds N (5)  --requests N (200000)
                   --locks N (1000000)  --keyspace N (1000000)
                   --only TEXT  --redlock-delay-ms N  (baton-bench --help)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") if args.len() == 1 => test::run_all(),
        Some("demo") if args.len() == 1 => demo::run(),
        Some("fuzz") => fuzz::run_fuzz(&args[1..]),
        Some("chaos") => chaos::Options::parse(&args[1..]).and_then(chaos::run_chaos),
        Some("bench") => bench::run(&args[1..]),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nxtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
