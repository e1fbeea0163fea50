//! The Jepsen-style checker (SPEC §9 "Failover"): workers take fenced locks
//! through `baton-client` on a Redis Cluster whose primary a nemesis
//! kills, pauses, fails over, cuts off from its clients and whose replica
//! it restarts; the workers write to a fenced register under every grant;
//! the history they leave is checked for a fence issued twice, two holders
//! at once, a fence that went back, and hung waits.
//!
//! With durable acquire every count must be 0. Without it the counts are
//! the measurement of the asynchronous replication window (docs/CHAOS.md):
//! those tests only run and print them.
//!
//! Each test runs ~20 s of faults (`BATON_CHAOS_CI_SECONDS` changes it).
//! `long_run` (ignored) is what `cargo xtask chaos --minutes N` runs.
//!
//! # Layout
//!
//! - `chaos/history.rs`: the history, the checker (pure, unit-tested), the
//!   summary table.
//! - `chaos/topology.rs`: the servers (cluster, or Sentinel later) and
//!   probes of their roles.
//! - `chaos/nemesis.rs`: the faults, on a thread of their own.
//! - `chaos/register.rs`: the fenced register.
//! - `chaos/worker.rs`: one worker's loop.
//! - `chaos/scenario.rs`: a run put together, its report.

use std::time::Duration;

use baton_client::Backend;
use futures_util::future::join_all;

/// The checker's parts, in `chaos/` (see the layout above).
mod chaos {
    pub mod history;
    pub mod nemesis;
    pub mod register;
    pub mod scenario;
    pub mod topology;
    pub mod worker;
}

use chaos::nemesis::FaultKind;
use chaos::scenario::{self, Config, Report};
use chaos::topology;

/// How long each CI test faults the servers.
fn ci_duration() -> Duration {
    let secs = std::env::var("BATON_CHAOS_CI_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(secs)
}

fn print(reports: &[Report]) {
    println!("\n{}", Report::table(reports));
    for r in reports {
        println!("{}", r.details(5));
    }
}

/// What every run must show, durable or not: faults happened, the
/// register saw every write the workers recorded, grants went on.
fn assert_ran(r: &Report) {
    let h = &r.history;
    let label = r.config.label();
    assert!(
        h.faults.len() >= r.config.min_faults,
        "{label}: {} faults",
        h.faults.len()
    );
    assert!(!h.grants.is_empty(), "{label}: no grant");
    assert_eq!(
        r.register,
        (h.counts.register_accepted, h.counts.register_refused),
        "{label}: the register's counts (accepted, refused) and the workers'"
    );
    assert_eq!(
        h.counts.register_errors, 0,
        "{label}: writes to the register (never faulted) failed"
    );
}

/// A durable run: every violation count 0, over failovers that really
/// happened and were served after.
fn assert_durable_clean(r: &Report) {
    assert_ran(r);
    let h = &r.history;
    let label = r.config.label();
    let v = h.check();
    assert!(v.is_clean(), "{label}: {v}\n{}", r.details(10));
    assert!(
        h.promotions() >= 2,
        "{label}: {} promotions",
        h.promotions()
    );
    assert!(
        h.promotions_served() >= 1,
        "{label}: no grant between a promotion and the next fault"
    );
    assert!(
        h.grants_after_a_promotion() >= 10,
        "{label}: {} grants after the first promotion",
        h.grants_after_a_promotion()
    );
}

async fn durable(backend: Backend) {
    let r = scenario::run(Config::new(backend, true, ci_duration())).await;
    print(std::slice::from_ref(&r));
    assert_durable_clean(&r);
}

async fn non_durable(backend: Backend) {
    let r = scenario::run(Config::new(backend, false, ci_duration())).await;
    print(std::slice::from_ref(&r));
    assert_ran(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_durable_acquire_has_no_violations() {
    durable(Backend::Module).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lua_durable_acquire_has_no_violations() {
    durable(Backend::Lua).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_non_durable_acquire_is_measured() {
    non_durable(Backend::Module).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lua_non_durable_acquire_is_measured() {
    non_durable(Backend::Lua).await;
}

/// The checker is not blind: `FLUSHALL` under the holders (an operator
/// error no lock service survives, durable or not) grants every lock again
/// while its holders still count on it, and the history shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_under_the_holders_shows_as_overlapping_holds() {
    let mut config = Config::new(Backend::Module, true, Duration::from_secs(10));
    config.faults = vec![FaultKind::Flush];
    let r = scenario::run(config).await;
    print(std::slice::from_ref(&r));
    assert_ran(&r);
    let v = r.history.check();
    assert!(v.overlapping_holds > 0, "{v}");
    assert_eq!(v.fence_reissued + v.fence_went_back, 0, "{v}");
}

/// The same checker on a primary and two replicas under Sentinels, the
/// client following `redis+sentinel://`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_module_durable_acquire_has_no_violations() {
    let mut config = Config::new(Backend::Module, true, ci_duration());
    config.topology = topology::Kind::Sentinel;
    let r = scenario::run(config).await;
    print(std::slice::from_ref(&r));
    assert_durable_clean(&r);
}

/// An environment variable, or `default`.
fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// `cargo xtask chaos`: the runs `BATON_CHAOS_BACKENDS` (module, lua,
/// both) x `BATON_CHAOS_MODES` (durable, non-durable, both) at once, for
/// `BATON_CHAOS_SECONDS` each, seeded with `BATON_CHAOS_SEED` (+0, +1, ...
/// for the runs in that order), with the
/// faults `BATON_CHAOS_FAULTS` (names, comma-separated; all by default,
/// e.g. `kill,pause` to narrow a finding down; `BATON_CHAOS_TRACE` prints
/// the timeline around each fault), on `BATON_CHAOS_TOPOLOGY` (cluster, or
/// sentinel once the client follows Sentinel URLs) with
/// `BATON_CHAOS_WORKERS` workers (6); the summary
/// table goes to `BATON_CHAOS_REPORT` (a file) before the durable runs are
/// asserted clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by cargo xtask chaos --minutes N"]
async fn long_run() {
    let secs: u64 = env_or("BATON_CHAOS_SECONDS", "60")
        .parse()
        .expect("BATON_CHAOS_SECONDS: seconds");
    let seed: u64 = env_or("BATON_CHAOS_SEED", "1")
        .parse()
        .expect("BATON_CHAOS_SEED: a number");
    let backends = match env_or("BATON_CHAOS_BACKENDS", "both").as_str() {
        "module" => vec![Backend::Module],
        "lua" => vec![Backend::Lua],
        "both" => vec![Backend::Module, Backend::Lua],
        other => panic!("BATON_CHAOS_BACKENDS: module, lua or both, not {other:?}"),
    };
    let modes = match env_or("BATON_CHAOS_MODES", "both").as_str() {
        "durable" => vec![true],
        "non-durable" => vec![false],
        "both" => vec![true, false],
        other => panic!("BATON_CHAOS_MODES: durable, non-durable or both, not {other:?}"),
    };
    let faults: Option<Vec<FaultKind>> = std::env::var("BATON_CHAOS_FAULTS").ok().map(|s| {
        s.split(',')
            .map(|k| FaultKind::parse(k.trim()).unwrap_or_else(|| panic!("unknown fault {k:?}")))
            .collect()
    });
    let topology = match env_or("BATON_CHAOS_TOPOLOGY", "cluster").as_str() {
        "cluster" => topology::Kind::Cluster,
        "sentinel" => topology::Kind::Sentinel,
        other => panic!("BATON_CHAOS_TOPOLOGY: cluster or sentinel, not {other:?}"),
    };
    let workers: Option<usize> = std::env::var("BATON_CHAOS_WORKERS")
        .ok()
        .map(|w| w.parse().expect("BATON_CHAOS_WORKERS: a number"));
    let mut configs = Vec::new();
    for &backend in &backends {
        for &durable in &modes {
            let mut c = Config::new(backend, durable, Duration::from_secs(secs));
            // Seeds of their own: runs at the same time do not fault in
            // lockstep.
            c.seed = seed + configs.len() as u64;
            c.topology = topology;
            if let Some(w) = workers {
                c.workers = w;
            }
            if let Some(f) = &faults {
                c.faults = f.clone();
            }
            configs.push(c);
        }
    }
    // Each run in a task of its own: one whose servers failed (a panic)
    // leaves the others' reports.
    let labels: Vec<String> = configs.iter().map(Config::label).collect();
    let tasks = configs.into_iter().map(|c| tokio::spawn(scenario::run(c)));
    let mut reports = Vec::new();
    let mut failed = Vec::new();
    for (label, done) in labels.into_iter().zip(join_all(tasks).await) {
        match done {
            Ok(r) => reports.push(r),
            Err(e) => failed.push(format!("{label}: {e}")),
        }
    }
    if !reports.is_empty() {
        print(&reports);
    }
    if std::env::var_os("BATON_CHAOS_TRACE").is_some() {
        // The timeline around each fault, to read a run by hand.
        for r in &reports {
            println!("--- {}", r.config.label());
            for f in &r.history.faults {
                let at = f.started - r.history.start;
                let around = Duration::from_secs(2);
                println!(
                    "{}",
                    r.history.timeline(
                        at.saturating_sub(around),
                        at + around + (f.settled - f.started)
                    )
                );
            }
        }
    }
    if let Ok(path) = std::env::var("BATON_CHAOS_REPORT") {
        let mut text = if reports.is_empty() {
            String::new()
        } else {
            Report::table(&reports)
        };
        for r in &reports {
            text.push_str(&format!("\n<!-- {} -->\n", r.details(3).trim_end()));
        }
        for f in &failed {
            text.push_str(&format!("\n**Void run** {f}\n"));
        }
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
    assert!(failed.is_empty(), "runs whose servers failed: {failed:#?}");
    for r in reports.iter().filter(|r| r.config.durable) {
        assert_durable_clean(r);
    }
    for r in reports.iter().filter(|r| !r.config.durable) {
        assert_ran(r);
    }
}
