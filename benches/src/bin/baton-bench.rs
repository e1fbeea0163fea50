//! `baton-bench`: measures the module against raw Redis (throughput with
//! `redis-benchmark`, memory, expiry stall: [`baton_benches::scale`]), then
//! runs every workload against every contender, each on servers of its
//! own, prints the tables, and writes `BENCHMARKS.md` and
//! `benchmarks.json` into the output dir.
//!
//! ```text
//! cargo run --release -p baton-benches --bin baton-bench -- [--quick] [--out DIR]
//! ```
//!
//! `cargo xtask bench` builds it and runs it with its own arguments and
//! `--command` (itself, for the report's header); `cargo xtask demo` runs
//! `--demo SECS`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use baton_benches::contenders::{Kind, Retry, Spec, GRACE, REDLOCK_TUNED_DELAY};
use baton_benches::report::{
    Results, LUA, MODULE, MODULE_WATCHDOG, RAW, RAW_HANDOFF, REDLOCK_1, REDLOCK_3,
};
use baton_benches::scale::{self, Scale, Sizes};
use baton_benches::setup::{bench_module, now_utc, Machine, Servers};
use baton_benches::workloads::queue::QueueServer;
use baton_benches::workloads::{
    bus, contended, queue, rwlock, semaphore, uncontended, waiters, Plan,
};
use baton_client::Backend;

const USAGE: &str = "usage: baton-bench [--quick] [--out DIR] [--redlock-delay-ms N]

  --quick               short runs (about 5 minutes), for a smoke check:
                        also 3 rounds, 100k requests over 200k keys and 100k
                        locks for the module-vs-raw figures (full: 5 rounds,
                        200k requests over 1M keys, 1M locks)
  --rounds N            redis-benchmark rounds per command (the median is kept)
  --requests N          requests per redis-benchmark run
  --keyspace N          redis-benchmark's -r (and the keys a release run holds)
  --locks N             locks for the memory and expiry measurements
  --out DIR             where BENCHMARKS.md and benchmarks.json go (default: docs)
  --redlock-delay-ms N  rslock's tuned retry delay (default 5; at least 2)
  --only TEXT           run only the contenders whose name contains TEXT
                        (the goals then lack figures: for exploring only;
                        `--only scale`: only the module-vs-raw figures;
                        `--only bus`: only the bus workload)
  --waits-only          only workloads 6 to 9 (semaphore, read-write lock, long
                        queue, many waiters; the other goals then lack figures)
  --waiters-only        only workload 9 (many waiters over many locks, with
                        its BLPOP baselines)
  --command TEXT        the command to name in the report (default: this one)
  --demo SECS           only workload 2 at 8 tasks / hold 1 ms, SECS seconds for
                        the module and for Redlock x3, as a small table (for
                        cargo xtask demo; writes nothing)
  --durable SECS        only what durable acquire costs: uncontended cycles
                        on a primary with one replica, with and without
                        durable(1), SECS seconds per run, 3 alternating rounds
                        (a markdown table; writes nothing)";

struct Args {
    quick: bool,
    out: PathBuf,
    redlock_delay_ms: u64,
    only: Option<String>,
    /// `--rounds`, `--requests`, `--keyspace`, `--locks`, over the sizes
    /// `--quick` picks.
    rounds: Option<u64>,
    requests: Option<u64>,
    keyspace: Option<u64>,
    locks: Option<u64>,
    /// `--waits-only`, `--waiters-only`.
    workloads: Workloads,
    command: Option<String>,
    demo: Option<u64>,
    durable: Option<u64>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        quick: false,
        out: PathBuf::from("docs"),
        redlock_delay_ms: REDLOCK_TUNED_DELAY.as_millis() as u64,
        only: None,
        rounds: None,
        requests: None,
        keyspace: None,
        locks: None,
        workloads: Workloads::All,
        command: None,
        demo: None,
        durable: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => args.quick = true,
            "--out" => args.out = it.next().context("--out needs a dir")?.into(),
            "--redlock-delay-ms" => {
                args.redlock_delay_ms = it
                    .next()
                    .context("--redlock-delay-ms needs a value")?
                    .parse()
                    .context("--redlock-delay-ms needs an integer")?;
                if args.redlock_delay_ms < 2 {
                    bail!("--redlock-delay-ms must be at least 2 (rslock jitters in 0..delay ms)");
                }
            }
            "--waits-only" => args.workloads = Workloads::Waits,
            "--waiters-only" => args.workloads = Workloads::Waiters,
            "--only" => args.only = Some(it.next().context("--only needs a name")?),
            "--rounds" | "--requests" | "--keyspace" | "--locks" => {
                let value = it.next().with_context(|| format!("{a} needs a value"))?;
                let n: u64 = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("{a} needs a positive integer, got '{value}'"))?;
                *match a.as_str() {
                    "--rounds" => &mut args.rounds,
                    "--requests" => &mut args.requests,
                    "--keyspace" => &mut args.keyspace,
                    _ => &mut args.locks,
                } = Some(n);
            }
            "--command" => args.command = Some(it.next().context("--command needs a text")?),
            "--demo" => {
                let secs: u64 = it
                    .next()
                    .context("--demo needs seconds")?
                    .parse()
                    .context("--demo needs an integer")?;
                if secs == 0 {
                    bail!("--demo needs at least 1 second");
                }
                args.demo = Some(secs);
            }
            "--durable" => {
                let secs: u64 = it
                    .next()
                    .context("--durable needs seconds")?
                    .parse()
                    .context("--durable needs an integer")?;
                if secs == 0 {
                    bail!("--durable needs at least 1 second");
                }
                args.durable = Some(secs);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    if let Some(secs) = args.demo {
        return demo(secs);
    }
    if let Some(secs) = args.durable {
        return durable(secs);
    }
    let plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let command = args.command.clone().unwrap_or_else(|| {
        std::iter::once("cargo run --release -p baton-benches --bin baton-bench --".into())
            .chain(std::env::args().skip(1))
            .collect::<Vec<String>>()
            .join(" ")
    });
    let started = Instant::now();
    // The many-waiter workloads open 11,000 connections; the servers are
    // started below and inherit the limit.
    match raise_nofile() {
        Some(n) => eprintln!("open-file limit: {n}"),
        None => eprintln!("open-file limit: unlimited"),
    }
    let (module, module_note) = bench_module();
    // The module against raw Redis first, on a server of its own.
    let scale: Option<Scale> = if args.workloads == Workloads::All
        && args.only.as_deref().is_none_or(|o| "scale".contains(o))
    {
        Some(scale::measure(&module, sizes(&args))?)
    } else {
        None
    };
    let scale_secs = started.elapsed().as_secs_f64();
    println!("\n==> workloads against Redlock, raw Redis and etcd");
    eprintln!("starting redis-server x3 (module: {})", module.display());
    let servers = Servers::start(&module);
    let machine = Machine::detect();
    eprintln!(
        "machine: {} CPUs, {}, {}",
        machine.nproc, machine.cpu, machine.redis
    );
    let etcd = start_etcd(args.only.as_deref());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut results = rt.block_on(run_all(
        &servers,
        &module,
        etcd.available,
        &plan,
        args.redlock_delay_ms,
        args.only.as_deref(),
        args.workloads,
    ))?;
    drop(servers);
    results.etcd = etcd.note.clone();
    results.failures.extend(etcd.failure.clone());
    results.date = now_utc();
    results.command = command;
    results.machine = machine;
    results.module = module_note;
    results.scale = scale;
    results.judge();

    println!("\n{}", results.tables());
    std::fs::create_dir_all(&args.out).with_context(|| format!("create {}", args.out.display()))?;
    let md = args.out.join("BENCHMARKS.md");
    let json = args.out.join("benchmarks.json");
    std::fs::write(&md, results.markdown()).with_context(|| format!("write {}", md.display()))?;
    std::fs::write(&json, serde_json::to_string_pretty(&results)? + "\n")
        .with_context(|| format!("write {}", json.display()))?;
    eprintln!(
        "wrote {} and {} in {:.0} s (module vs raw Redis {:.0} s, workloads {:.0} s)",
        md.display(),
        json.display(),
        started.elapsed().as_secs_f64(),
        scale_secs,
        started.elapsed().as_secs_f64() - scale_secs
    );
    Ok(())
}

/// The module-vs-raw sizes: `--quick`'s or the full ones, with the
/// options given on top.
fn sizes(args: &Args) -> Sizes {
    let mut sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    if let Some(n) = args.rounds {
        sizes.rounds = n as usize;
    }
    sizes.requests = args.requests.unwrap_or(sizes.requests);
    sizes.keyspace = args.keyspace.unwrap_or(sizes.keyspace);
    sizes.locks = args.locks.unwrap_or(sizes.locks);
    sizes
}

/// `--demo SECS`: the contended side-by-side of `cargo xtask demo`, on
/// servers of its own (the module's and two plain ones for Redlock x3).
fn demo(secs: u64) -> Result<()> {
    let (module, _) = bench_module();
    let servers = Servers::start(&module);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let rows = rt.block_on(baton_benches::demo::demo_contended(
        &servers,
        std::time::Duration::from_secs(secs),
    ))?;
    drop(servers);
    print!("{}", baton_benches::demo::demo_table(&rows));
    Ok(())
}

/// `--durable SECS`: the cost of durable acquire, on a pair of its own.
fn durable(secs: u64) -> Result<()> {
    let (module, _) = bench_module();
    let pair = baton_benches::durable::Pair::start(&module);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let rows = rt.block_on(baton_benches::durable::measure(
        &pair,
        std::time::Duration::from_secs(secs),
    ))?;
    drop(pair);
    print!("{}", baton_benches::durable::table(&rows));
    Ok(())
}

/// Whether etcd is in the run (each etcd run starts a member of its own;
/// this one start checks that it can, and reads its version).
struct EtcdRun {
    available: bool,
    /// For the report: its version, or why it is not in the run.
    note: String,
    failure: Option<String>,
}

#[cfg(feature = "etcd")]
fn start_etcd(only: Option<&str>) -> EtcdRun {
    use baton_benches::etcd::EtcdServer;
    use baton_benches::report::ETCD;
    if only.is_some_and(|o| !ETCD.contains(o)) {
        return EtcdRun {
            available: false,
            note: "not in this run (--only)".into(),
            failure: None,
        };
    }
    eprintln!("starting {} (single member)", EtcdServer::version());
    match EtcdServer::start() {
        Ok(_) => EtcdRun {
            available: true,
            note: format!(
                "{}, single member on 127.0.0.1, default fsync, a fresh one for each run",
                EtcdServer::version()
            ),
            failure: None,
        },
        Err(e) => EtcdRun {
            available: false,
            note: "could not start (see failures)".into(),
            failure: Some(format!("etcd: {e:#}")),
        },
    }
}

#[cfg(not(feature = "etcd"))]
fn start_etcd(_only: Option<&str>) -> EtcdRun {
    EtcdRun {
        available: false,
        note: "not in this build (baton-benches feature `etcd`; `cargo xtask bench` turns it on)"
            .into(),
        failure: None,
    }
}

/// The etcd contender's spec, when etcd is in the run.
fn etcd_spec(available: bool) -> Option<Spec> {
    #[cfg(feature = "etcd")]
    return available.then(|| Spec::new(baton_benches::report::ETCD, Kind::Etcd));
    #[cfg(not(feature = "etcd"))]
    {
        let _ = available;
        None
    }
}

/// Raises this process' RLIMIT_NOFILE soft limit to its hard limit, and
/// both to 65,536 when allowed (root); returns the soft limit now (`None`:
/// unlimited).
fn raise_nofile() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    const WANT: u64 = 65_536;
    let now = getrlimit(Resource::Nofile);
    let hard = now.maximum;
    let raised = hard.map(|h| h.max(WANT));
    let wanted = Rlimit {
        current: raised,
        maximum: raised,
    };
    if setrlimit(Resource::Nofile, wanted).is_ok() {
        return raised;
    }
    // Not root: the hard limit is as far as it goes.
    let at_hard = Rlimit {
        current: hard,
        maximum: hard,
    };
    match setrlimit(Resource::Nofile, at_hard) {
        Ok(()) => hard,
        Err(_) => now.current,
    }
}

/// Which workloads a run takes (`--waits-only`, `--waiters-only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workloads {
    All,
    /// 6 to 9.
    Waits,
    /// 9 only.
    Waiters,
}

async fn run_all(
    servers: &Servers,
    module: &std::path::Path,
    etcd: bool,
    plan: &Plan,
    delay_ms: u64,
    only: Option<&str>,
    workloads: Workloads,
) -> Result<Results> {
    let waits_only = workloads != Workloads::All;
    let waiters_only = workloads == Workloads::Waiters;
    let urls = servers.redlock_urls();
    let chosen = |s: &&Spec| !waits_only && only.is_none_or(|o| s.name.contains(o));
    let mut failures = Vec::new();
    let mut run = 0;

    // Workload 1: uncontended.
    let specs = [
        Spec::new(RAW, Kind::Raw(true)),
        Spec::new("raw SET NX PX + DEL", Kind::Raw(false)),
        Spec::new(MODULE, Kind::Baton(Backend::Module)),
        Spec::new(MODULE_WATCHDOG, Kind::BatonWatchdog),
        Spec::new(LUA, Kind::Baton(Backend::Lua)),
        Spec::new(REDLOCK_1, Kind::Redlock(1, Retry::Default)),
        Spec::new(REDLOCK_3, Kind::Redlock(3, Retry::Default)),
    ]
    .into_iter()
    .chain(etcd_spec(etcd))
    .collect::<Vec<_>>();
    let mut unc = Vec::new();
    for &tasks in &plan.uncontended_tasks {
        for spec in specs.iter().filter(chosen) {
            run += 1;
            let what = format!("uncontended, {}, {tasks} tasks", spec.name);
            let r = async {
                let c = spec.build(&urls).await?;
                uncontended::run(&c, &run.to_string(), tasks, plan.warmup, plan.uncontended).await
            };
            match r.await {
                Ok(r) => {
                    eprintln!(
                        "[1 uncontended] {:<34} {:>3} tasks: {:>8.0} cycles/s  p50 {:>7.0} µs  p99 {:>7.0} µs",
                        r.contender, r.tasks, r.cycles_per_sec, r.latency.p50_us, r.latency.p99_us
                    );
                    unc.push(r);
                }
                Err(e) => {
                    eprintln!("[1 uncontended] {what}: FAILED: {e:#}");
                    failures.push(format!("{what}: {e:#}"));
                }
            }
        }
    }

    // Workload 2: contended.
    let tuned = Retry::Tuned(delay_ms);
    let specs = [
        Spec::new(RAW_HANDOFF, Kind::RawHandoff),
        Spec::new(MODULE, Kind::Baton(Backend::Module)),
        Spec::new(LUA, Kind::Baton(Backend::Lua)),
        Spec::new(
            format!("{REDLOCK_1} default"),
            Kind::Redlock(1, Retry::Default),
        ),
        Spec::new(format!("{REDLOCK_1} tuned"), Kind::Redlock(1, tuned)),
        Spec::new(
            format!("{REDLOCK_3} default"),
            Kind::Redlock(3, Retry::Default),
        ),
        Spec::new(format!("{REDLOCK_3} tuned"), Kind::Redlock(3, tuned)),
    ]
    .into_iter()
    .chain(etcd_spec(etcd))
    .collect::<Vec<_>>();
    let mut con = Vec::new();
    for &(tasks, hold) in &plan.contended_shapes {
        for spec in specs.iter().filter(chosen) {
            run += 1;
            let what = format!("contended, {}, {tasks} tasks, hold {hold:?}", spec.name);
            let r = async {
                let c = spec.build(&urls).await?;
                contended::run(
                    &c,
                    &run.to_string(),
                    tasks,
                    hold,
                    plan.warmup,
                    plan.contended,
                )
                .await
            };
            match r.await {
                Ok(r) => {
                    eprintln!(
                        "[2 contended]   {:<34} {:>3} tasks hold {:>4} µs: {:>7.0} acq/s  wait p99 {:>8.0} µs max {:>8.0} µs  Jain {:.3}  violations {}{}",
                        r.contender, r.tasks, r.hold_us, r.acq_per_sec, r.wait.p99_us, r.max_wait_us, r.jain, r.order_violations,
                        if r.stuck_tasks > 0 { format!("  STUCK tasks {}", r.stuck_tasks) } else { String::new() }
                    );
                    if r.stuck_tasks > 0 {
                        failures.push(format!(
                            "{what}: {} task(s) hung (no reply {:?} after the end) and were cancelled",
                            r.stuck_tasks, GRACE
                        ));
                    }
                    con.push(r);
                }
                Err(e) => {
                    eprintln!("[2 contended]   {what}: FAILED: {e:#}");
                    failures.push(format!("{what}: {e:#}"));
                }
            }
        }
    }

    // Workload 3: hand-off, from the contended records.
    for r in &con {
        eprintln!(
            "[3 hand-off]    {:<34} {:>3} tasks hold {:>4} µs: p50 {:>7.0} µs  p99 {:>7.0} µs  ({} hand-offs)",
            r.contender, r.tasks, r.hold_us, r.handoff.latency.p50_us, r.handoff.latency.p99_us, r.handoff.latency.samples
        );
    }

    // Workload 5: the bus (Redis Streams), 1 publisher flat out and paced,
    // one consumer.
    let mut bus_runs = Vec::new();
    let mut bus_publish = None;
    if !waits_only && only.is_none_or(|o| "bus".contains(o)) {
        use bus::AckMode::{Await, Queued};
        for (rate, ack) in [(None, Queued), (None, Await), (Some(1000), Await)] {
            run += 1;
            match bus::run(&urls[0], &run.to_string(), 1, rate, ack, plan.contended).await {
                Ok(r) => {
                    eprintln!(
                    "[5 bus]         {} publisher(s) {}, {}: {:>7.0} msgs/s  publish p99 {:>7.0} µs  end-to-end p50 {:>7.0} µs p99 {:>8.0} µs  delivered {}/{}  pending after close {}  consumer next() p50 {:.1} µs, ack p50 {:.1} µs",
                    r.publishers, r.rate.map_or("flat out".into(), |r| format!("paced {r}/s")), r.ack.label(), r.published_per_sec, r.publish.p99_us, r.end_to_end.p50_us, r.end_to_end.p99_us, r.delivered, r.published, r.pending_after, r.consumer_next.p50_us, r.consumer_ack.p50_us
                );
                    bus_runs.push(r);
                }
                Err(e) => {
                    eprintln!("[5 bus]         FAILED: {e:#}");
                    failures.push(format!("bus: {e:#}"));
                }
            }
        }
        run += 1;
        match bus::publish_vs_raw(&urls[0], &run.to_string(), plan.contended).await {
            Ok(r) => {
                eprintln!(
                    "[5 bus]         publish alone: bus.publish {:.0}/s (p50 {:.0} µs) vs raw XADD {:.0}/s (p50 {:.0} µs) = {:.3}x",
                    r.publish_per_sec, r.publish.p50_us, r.raw_per_sec, r.raw.p50_us, r.ratio
                );
                bus_publish = Some(r);
            }
            Err(e) => {
                eprintln!("[5 bus]         publish vs raw XADD: FAILED: {e:#}");
                failures.push(format!("bus publish vs raw XADD: {e:#}"));
            }
        }
    }

    // Workloads 6 and 7: a semaphore's fairness, a read-write lock.
    let mut sems = Vec::new();
    let (tasks, limit, hold) = plan.semaphore;
    for (name, backend) in [(MODULE, Backend::Module), (LUA, Backend::Lua)] {
        if waiters_only || !only.is_none_or(|o| name.contains(o)) {
            continue;
        }
        run += 1;
        let url = servers.main.url();
        let r = semaphore::run(
            name,
            &url,
            backend,
            &run.to_string(),
            tasks,
            limit,
            hold,
            plan.warmup,
            plan.contended,
        )
        .await;
        match r {
            Ok(r) => {
                eprintln!(
                    "[6 semaphore]   {:<34} {:>3} tasks limit {} hold {:>4} µs: {:>7.0} acq/s ({:.0}% of limit/hold)  wait p99 {:>7.0} µs  Jain {:.4}  violations {} / {} / {}",
                    r.contender, r.tasks, r.limit, r.hold_us, r.acq_per_sec, r.of_limit * 100.0, r.wait.p99_us, r.jain,
                    r.order_violations, r.order_violations_gap, r.order_violations_1ms
                );
                if r.stuck_tasks > 0 {
                    failures.push(format!("semaphore, {name}: {} task(s) hung", r.stuck_tasks));
                }
                sems.push(r);
            }
            Err(e) => {
                eprintln!("[6 semaphore]   {name}: FAILED: {e:#}");
                failures.push(format!("semaphore, {name}: {e:#}"));
            }
        }
    }
    let mut rw = None;
    if !waiters_only && only.is_none_or(|o| MODULE.contains(o)) {
        run += 1;
        let (readers, hold) = plan.rwlock;
        let url = servers.main.url();
        match rwlock::run(
            &url,
            &run.to_string(),
            readers,
            hold,
            plan.warmup,
            plan.contended,
        )
        .await
        {
            Ok(r) => {
                eprintln!(
                    "[7 rwlock]      {} readers + 1 writer hold {} µs: {} reads + {} writes vs mutex {} = {:.2}x  writer wait p99 {:.0} µs max {:.0} µs (bound {:.0} µs)",
                    r.readers, r.hold_us, r.reads, r.writes, r.mutex, r.ratio, r.writer_wait.p99_us, r.writer_wait.max_us, r.writer_bound_us
                );
                if r.stuck_tasks > 0 {
                    failures.push(format!("rwlock: {} task(s) hung", r.stuck_tasks));
                }
                rw = Some(r);
            }
            Err(e) => {
                eprintln!("[7 rwlock]      FAILED: {e:#}");
                failures.push(format!("rwlock: {e:#}"));
            }
        }
    }

    // Workloads 8 and 9: many waiters, on a server of their own.
    let mut queues = Vec::new();
    let mut many = None;
    if only.is_none_or(|o| MODULE.contains(o)) {
        let (keys, n) = plan.waiters;
        let most = plan
            .queue_waiters
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(keys + n);
        match QueueServer::start(module, most as u32 + 100) {
            Ok(qs) => {
                // The many-waiter run first: its memory readings start from
                // a server no earlier run has used.
                run += 1;
                match waiters::run(&qs.server, &run.to_string(), keys, n, plan.queue).await {
                    Ok(r) => {
                        let t = &r.timeout;
                        eprintln!(
                            "[9 waiters]     {} waiters over {} keys: {:.0} B/waiter ({:.0} B of it client memory), {:.0} B/connection; hand-off p50 {:.0} µs p99 {:.0} µs ({:.0}/s); all time out at once: max PING {:.2} ms (idle {:.2} ms), {} timed out, last {:.1} ms after the deadline",
                            r.waiters, r.keys, r.memory.per_waiter, r.memory.per_waiter_clients, r.memory.per_connection,
                            r.handoff.p50_us, r.handoff.p99_us, r.handoffs_per_sec,
                            t.max_rtt_ms, t.idle_max_rtt_ms, t.timed_out, t.last_reply_ms
                        );
                        let (b, bt) = (&r.blpop, &r.blpop.timeout);
                        eprintln!(
                            "[9 waiters]     BLPOP baseline: {:.0} B/waiter ({:.0} B of it client memory); all time out at once: max PING {:.2} ms (idle {:.2} ms), server CPU {:.0} ms (module: {:.0} ms), {} timed out, last {:.1} ms after the deadline",
                            b.per_waiter, b.per_waiter_clients, bt.max_rtt_ms, bt.idle_max_rtt_ms,
                            bt.server_cpu_ms, t.server_cpu_ms, bt.timed_out, bt.last_reply_ms
                        );
                        many = Some(r);
                    }
                    Err(e) => {
                        eprintln!("[9 waiters]     FAILED: {e:#}");
                        failures.push(format!("many waiters: {e:#}"));
                    }
                }
                for &n in plan.queue_waiters.iter().filter(|_| !waiters_only) {
                    run += 1;
                    match queue::run(&qs.server, &run.to_string(), n, plan.queue).await {
                        Ok(r) => {
                            eprintln!(
                                "[8 queue]       {:>5} waiters on 1 semaphore (limit 1): {:>6.0} hand-offs/s  p50 {:>5.0} µs  p99 {:>5.0} µs  max {:>6.0} µs  server µs/call SEM.ACQUIRE {:.1} SEM.RELEASE {:.1}  (queued in {:.1} s)",
                                r.waiters, r.per_sec, r.latency.p50_us, r.latency.p99_us, r.latency.max_us,
                                r.server_acquire_us, r.server_release_us, r.queue_secs
                            );
                            queues.push(r);
                        }
                        Err(e) => {
                            eprintln!("[8 queue]       {n} waiters: FAILED: {e:#}");
                            failures.push(format!("long queue, {n} waiters: {e:#}"));
                        }
                    }
                }
            }
            Err(e) => {
                eprintln!("[8 queue]       FAILED: {e:#}");
                failures.push(format!("many-waiter server: {e:#}"));
            }
        }
    }

    Ok(Results {
        date: String::new(),
        command: String::new(),
        machine: Machine::detect(),
        module: String::new(),
        plan: plan.clone(),
        redlock_tuned_delay_ms: delay_ms,
        uncontended: unc,
        contended: con,
        bus: bus_runs,
        bus_publish,
        semaphore: sems,
        rwlock: rw,
        queue: queues,
        waiters: many,
        scale: None,
        etcd: String::new(),
        failures,
        goals: Vec::new(),
    })
}
