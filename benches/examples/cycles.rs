//! Uncontended acquire+release cycles through the client for a profiler:
//! one contender, one task count, nothing else in the process.
//!
//! ```text
//! cargo build --release -p baton-module -p baton-benches --example cycles
//! perf record -g target/release/examples/cycles module 64 5
//! ```
//!
//! Arguments: `module`, `module-watchdog`, `lua` or `raw`; tasks; seconds.
//! It starts its own `redis-server` with the release module and prints
//! cycles/s, the CPU time per cycle of this process and of the server
//! (`INFO cpu`), and the server's `usec_per_call` of each command it ran
//! (`INFO commandstats`): figures that a loaded machine blurs less than
//! cycles/s.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use baton_benches::contenders::{Kind, Spec};
use baton_benches::setup::bench_module;
use baton_benches::workloads::uncontended;
use baton_client::Backend;
use baton_harness::RedisServer;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let kind = match args.next().as_deref() {
        Some("module") => Kind::Baton(Backend::Module),
        Some("module-watchdog") => Kind::BatonWatchdog,
        Some("lua") => Kind::Baton(Backend::Lua),
        Some("raw") => Kind::Raw(true),
        other => bail!("usage: cycles module|module-watchdog|lua|raw TASKS SECS (got {other:?})"),
    };
    let tasks: usize = args.next().context("TASKS")?.parse()?;
    let secs: u64 = args.next().context("SECS")?.parse()?;
    let (module, _) = bench_module();
    let server = RedisServer::builder().module(&module).start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let warmup = Duration::from_millis(300);
    let (r, client_cpu, server_cpu, stats) = rt.block_on(async {
        let mut admin = redis::Client::open(server.url())?
            .get_multiplexed_async_connection()
            .await?;
        // CONNS=n: n clients (each its own shared connection), the tasks
        // spread over them round robin.
        let conns: usize = std::env::var("CONNS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let mut cs = Vec::new();
        for _ in 0..conns.max(1) {
            cs.push(Spec::new("profiled", kind).build(&[server.url()]).await?);
        }
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut admin)
            .await?;
        let (cpu0, server0) = (own_cpu_secs(), server_cpu_secs(&mut admin).await?);
        let r = uncontended::run_spread(&cs, "p", tasks, warmup, Duration::from_secs(secs)).await?;
        let (cpu1, server1) = (own_cpu_secs(), server_cpu_secs(&mut admin).await?);
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut admin)
            .await?;
        anyhow::Ok((r, cpu1 - cpu0, server1 - server0, stats))
    })?;
    // The CPU was spent on the warmup's cycles too, at about the same rate.
    let all = r.cycles as f64 * (warmup.as_secs_f64() + r.secs) / r.secs;
    println!(
        "{tasks} tasks: {:.0} cycles/s, p50 {:.0} µs, p99 {:.0} µs; CPU µs/cycle: client {:.1}, server {:.1}",
        r.cycles_per_sec,
        r.latency.p50_us,
        r.latency.p99_us,
        client_cpu * 1e6 / all,
        server_cpu * 1e6 / all,
    );
    for line in stats.lines().filter(|l| l.starts_with("cmdstat_")) {
        let field = |name: &str| {
            line.split([':', ','])
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or("?")
        };
        let name = line.split(':').next().unwrap_or(line);
        println!(
            "  {name}: calls {} usec_per_call {}",
            field("calls"),
            field("usec_per_call")
        );
    }
    Ok(())
}

/// User + system CPU seconds of this process so far (`/proc/self/stat`,
/// in clock ticks of 1/100 s).
fn own_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime: fields 14 and 15 of the line, 11 and 12 (from 0) here.
    (ticks(11) + ticks(12)) / 100.0
}

/// `used_cpu_sys + used_cpu_user` of the server (`INFO cpu`).
async fn server_cpu_secs(conn: &mut redis::aio::MultiplexedConnection) -> Result<f64> {
    let info: String = redis::cmd("INFO").arg("cpu").query_async(conn).await?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok(field("used_cpu_sys") + field("used_cpu_user"))
}
