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
    let r = rt.block_on(async {
        let c = Spec::new("profiled", kind).build(&[server.url()]).await?;
        uncontended::run(
            &c,
            "p",
            tasks,
            Duration::from_millis(300),
            Duration::from_secs(secs),
        )
        .await
    })?;
    println!(
        "{tasks} tasks: {:.0} cycles/s, p50 {:.0} µs, p99 {:.0} µs",
        r.cycles_per_sec, r.latency.p50_us, r.latency.p99_us
    );
    Ok(())
}
