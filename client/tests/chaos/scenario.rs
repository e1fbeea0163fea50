//! One chaos run: the topology, the fenced register, the workers and the
//! nemesis, put together for a while, and the history they leave checked.
//!
//! The run: start the servers; build one client per worker; let the
//! workers run alone for a moment (grants before any fault), then with the
//! nemesis for `duration`; stop the nemesis (it finishes its fault and the
//! topology settles), let the workers run for a `tail` on the settled
//! topology (the service must come back), stop them, and check.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton_client::{Backend, Client};
use tokio_util::sync::CancellationToken;

use super::history::{self, FenceScope, History};
use super::nemesis::{self, FaultKind, Plan};
use super::register::Register;
use super::topology::{Kind, Topology};
use super::worker::{self, Work};

/// A run's settings; [`Config::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct Config {
    pub topology: Kind,
    pub backend: Backend,
    pub durable: bool,
    /// How long the nemesis runs at least.
    pub duration: Duration,
    /// Faults the nemesis does at least: past `duration` it goes on until
    /// it has done these many (a loaded machine settles slowly), but no
    /// longer than three times `duration`.
    pub min_faults: usize,
    pub workers: usize,
    pub keys: usize,
    pub ttl: Duration,
    pub node_timeout: Duration,
    pub faults: Vec<FaultKind>,
    /// The pause before each fault.
    pub gap: (Duration, Duration),
    pub seed: u64,
    /// Print a progress line this often (a sixtieth of the run, 5 to 30 s).
    pub progress: Duration,
}

impl Config {
    /// Six workers on three keys with a ttl of 1.5 s, on a cluster whose
    /// node timeout is 1 s; every kind of fault, one every 1 to 3 s.
    pub fn new(backend: Backend, durable: bool, duration: Duration) -> Config {
        Config {
            topology: Kind::Cluster,
            backend,
            durable,
            duration,
            min_faults: 4,
            workers: 6,
            keys: 3,
            ttl: Duration::from_millis(1500),
            node_timeout: Duration::from_millis(1000),
            faults: FaultKind::ALL.to_vec(),
            gap: (Duration::from_secs(1), Duration::from_secs(3)),
            seed: 1,
            progress: (duration / 60).clamp(Duration::from_secs(5), Duration::from_secs(30)),
        }
    }

    /// `module durable`, `lua non-durable`, ...
    pub fn label(&self) -> String {
        let backend = match self.backend {
            Backend::Module => "module",
            Backend::Lua => "lua",
            _ => "other",
        };
        let durable = if self.durable {
            "durable"
        } else {
            "non-durable"
        };
        let topology = match self.topology {
            Kind::Cluster => "",
            Kind::Sentinel => " sentinel",
        };
        format!("{backend} {durable}{topology}")
    }

    /// What the workers do.
    fn work(&self, keys: Vec<String>) -> Work {
        Work {
            keys,
            ttl: self.ttl,
            waits: vec![
                Duration::ZERO,
                Duration::from_secs(1),
                Duration::from_secs(2),
            ],
            durable: self.durable.then_some((1, Duration::from_secs(1))),
            // A wait on a frozen primary returns when it resumes; a
            // connection may take 5 s to give up.
            grace: self.node_timeout * 10 + Duration::from_secs(5),
            writes: (1, 4),
            write_gap: (Duration::from_millis(10), Duration::from_millis(150)),
            long_holds: 0.1,
        }
    }
}

/// What a run left: its history, checked.
#[derive(Debug)]
pub struct Report {
    pub config: Config,
    pub history: History,
    pub elapsed: Duration,
    /// The register's own counts (accepted, refused).
    pub register: (usize, usize),
}

impl Report {
    /// The summary table of `reports`, a column each.
    pub fn table(reports: &[Report]) -> String {
        let columns: Vec<history::Column<'_>> = reports
            .iter()
            .map(|r| history::Column {
                label: r.config.label(),
                elapsed: r.elapsed,
                history: &r.history,
            })
            .collect();
        history::table(&columns)
    }

    /// The violations with their history excerpts (at most `max`), and the
    /// most frequent errors: what to read when a run went wrong.
    pub fn details(&self, max: usize) -> String {
        let mut s = format!("{}: {}\n", self.config.label(), self.history.check());
        for f in self.history.findings().iter().take(max) {
            s.push_str(&self.history.excerpt(f));
        }
        let mut errors: Vec<(&String, &usize)> = self.history.errors.iter().collect();
        errors.sort_by(|a, b| b.1.cmp(a.1));
        for (e, n) in errors.iter().take(8) {
            s.push_str(&format!("  error x{n}: {e}\n"));
        }
        s
    }
}

/// One progress line.
fn progress(label: &str, started: Instant, total: Duration, h: &History) -> String {
    let v = h.check();
    format!(
        "chaos [{label}] {:>5.0}s/{:.0}s  calls {} grants {} faults {} (promotions {}) \
         not-acquired {} not-replicated {} errors {} refused-writes {} gone-while-valid {} \
         hung {}  violations {}",
        started.elapsed().as_secs_f64(),
        total.as_secs_f64(),
        h.counts.attempts,
        h.grants.len(),
        h.faults.len(),
        h.promotions(),
        h.counts.not_acquired,
        h.counts.not_replicated,
        h.counts.errors,
        h.counts.register_refused,
        h.counts.released_gone_while_valid,
        h.hung.len(),
        v.total(),
    )
}

/// Runs the scenario of `config`.
///
/// # Panics
///
/// When the servers misbehave (a topology that does not settle, a client
/// that cannot be built): the harness failed, not the lock service.
pub async fn run(config: Config) -> Report {
    let label = config.label();
    let (kind, backend, node_timeout) = (config.topology, config.backend, config.node_timeout);
    let (topology, register) = tokio::task::spawn_blocking(move || {
        (
            Topology::start(kind, backend, node_timeout),
            Register::start(),
        )
    })
    .await
    .expect("start the servers");
    let scope = match backend {
        Backend::Module => FenceScope::Node,
        _ => FenceScope::Key,
    };
    let work = Arc::new(config.work(topology.keys(config.keys)));
    let start = Instant::now();
    let history = Arc::new(Mutex::new(History::new(start, scope)));
    let stop = CancellationToken::new();
    let mut workers = Vec::new();
    for id in 0..config.workers {
        let client = Client::builder(topology.url())
            .backend(backend)
            .build()
            .await
            .unwrap_or_else(|e| panic!("{label}: build client {id}: {e}"));
        workers.push(tokio::spawn(worker::run(
            id,
            client,
            register.writer().await,
            work.clone(),
            history.clone(),
            stop.clone(),
            config.seed.wrapping_mul(1000).wrapping_add(id as u64),
        )));
    }
    let ticker = {
        let (history, label, every, total) = (
            history.clone(),
            label.clone(),
            config.progress,
            config.duration,
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                let h = history.lock().expect("history poisoned").clone();
                println!("{}", progress(&label, start, total, &h));
            }
        })
    };
    // Grants before the first fault.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (stop_nemesis, stopped) = mpsc::channel();
    let nemesis = nemesis::spawn(
        topology,
        Plan {
            kinds: config.faults.clone(),
            gap: config.gap,
            node_timeout: config.node_timeout,
            seed: config.seed,
        },
        history.clone(),
        stopped,
    );
    // The nemesis ends early only when the servers failed (a topology that
    // did not settle): the run stops there, it would measure nothing.
    let mut joined = tokio::task::spawn_blocking(move || nemesis.join());
    let enough = {
        let history = history.clone();
        let (min, least) = (config.min_faults, config.duration);
        async move {
            tokio::time::sleep(least).await;
            let deadline = tokio::time::Instant::now() + least * 2;
            while history.lock().expect("history poisoned").faults.len() < min
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let joined = tokio::select! {
        () = enough => {
            drop(stop_nemesis);
            joined.await
        }
        early = &mut joined => early,
    };
    let topology = match joined.expect("join the nemesis") {
        Ok(Ok(t)) => t,
        failed => {
            stop.cancel();
            let h = history.lock().expect("history poisoned").clone();
            let why = match failed {
                Ok(Err(e)) => e,
                _ => "the nemesis panicked".into(),
            };
            panic!(
                "{label}: the servers failed after {:.0} s, the run is void: {why}\n{}",
                start.elapsed().as_secs_f64(),
                progress(&label, start, config.duration, &h)
            );
        }
    };
    // The settled topology must serve again.
    tokio::time::sleep(config.ttl * 2).await;
    stop.cancel();
    for w in workers {
        w.await.expect("worker task");
    }
    ticker.abort();
    let elapsed = start.elapsed();
    let register_counts = tokio::task::spawn_blocking(move || {
        let counts = register.counts();
        drop(topology);
        counts
    })
    .await
    .expect("read the register");
    let history = history.lock().expect("history poisoned").clone();
    println!("{}", progress(&label, start, config.duration, &history));
    Report {
        config,
        history,
        elapsed,
        register: register_counts,
    }
}
