//! Throughput: redis-benchmark at 50 clients, module command vs the raw
//! Redis command it replaces, alternating raw/module each round and keeping
//! the median, so drift and noise hit both sides alike.
//!
//! Four pairs: `LOCK.ACQUIRE` / `SET NX PX` and `LOCK.RELEASE` / `DEL`
//! (locks, goal >= 0.95x), and `SEM.ACQUIRE .. LIMIT 10` / `SET NX PX` and
//! `SEM.RELEASE` / `DEL` (semaphores, issue 11, goal >= 0.9x): the raw
//! baseline is run again next to each module command, in the same round.
//!
//! Fairness: each acquire run starts from an empty keyspace; each release
//! run starts from the same held keys (`lock:000000000000` ..), the whole
//! keyspace, filled for that side, so both mostly hit an existing key
//! (about 90% with the default 200k random requests over 1M keys; about
//! 80% with `--quick`'s 100k over 200k). A semaphore key holds one lease
//! of token `tok` (limit 10); an acquire by `tok` on a key it already holds
//! renews that lease, as `SET NX` on an existing key does nothing.

use super::load;
use crate::scale;
use crate::stats::median;
use anyhow::{bail, Context, Result};
use baton_harness::RedisServer;
use redis::{Connection, Value};
use std::process::Command;

/// The keyspace for one measurement: `-r` of redis-benchmark
/// (`__rand_int__` is a 12-digit number below it), and how many keys each
/// release run starts with.
#[derive(Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) rounds: usize,
    pub(crate) requests: u64,
    pub(crate) keyspace: u64,
}
const CLIENTS: u32 = 50;

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Raw,
    Module,
}

/// What a module command works on, for filling the keyspace before a
/// release run.
#[derive(Clone, Copy, PartialEq)]
enum Family {
    Lock,
    Sem,
}

/// One comparison: requests/s per round for each side.
pub(crate) struct Pair {
    raw_cmd: &'static str,
    module_cmd: &'static str,
    /// The lowest acceptable ratio module / raw.
    pub(crate) goal: f64,
    /// `Some`: a release, run on a keyspace held by this family (or by
    /// string keys for the raw side).
    fill: Option<Family>,
    raw: Vec<f64>,
    module: Vec<f64>,
}

impl Pair {
    fn new(
        raw_cmd: &'static str,
        module_cmd: &'static str,
        goal: f64,
        fill: Option<Family>,
    ) -> Self {
        Pair {
            raw_cmd,
            module_cmd,
            goal,
            fill,
            raw: Vec::new(),
            module: Vec::new(),
        }
    }

    /// The module command's name, e.g. `SEM.ACQUIRE`.
    pub(crate) fn module_name(&self) -> &'static str {
        first_word(self.module_cmd)
    }

    /// The raw command's name, e.g. `SET NX PX`.
    pub(crate) fn raw_name(&self) -> String {
        scale::raw_name(self.raw_cmd)
    }

    fn command(&self, side: Side) -> &'static str {
        match side {
            Side::Raw => self.raw_cmd,
            Side::Module => self.module_cmd,
        }
    }

    fn record(&mut self, side: Side, rps: f64) {
        match side {
            Side::Raw => self.raw.push(rps),
            Side::Module => self.module.push(rps),
        }
    }

    /// The median of the per-round ratios module/raw: the two runs of a
    /// round are back to back, so they share the machine's load of the moment.
    pub(crate) fn ratio(&self) -> f64 {
        let ratios: Vec<f64> = self
            .module
            .iter()
            .zip(&self.raw)
            .map(|(m, r)| m / r)
            .collect();
        median(&ratios)
    }

    fn to_scale(&self) -> scale::Pair {
        scale::Pair {
            raw_cmd: self.raw_cmd.into(),
            module_cmd: self.module_cmd.into(),
            raw_rps: self.raw.clone(),
            module_rps: self.module.clone(),
            ratio: self.ratio(),
            goal: self.goal,
        }
    }

    fn print(&self) {
        for (cmd, runs) in [(self.raw_cmd, &self.raw), (self.module_cmd, &self.module)] {
            let rounds: Vec<String> = runs.iter().map(|r| format!("{r:.0}")).collect();
            println!(
                "  {cmd:<40} {:>10.0}   rounds: {}",
                median(runs),
                rounds.join(" ")
            );
        }
    }
}

pub(crate) struct Throughput {
    /// Locks' acquire and release, then semaphores'.
    pub(crate) pairs: Vec<Pair>,
}

impl Throughput {
    pub(crate) fn print(&self) {
        for p in &self.pairs {
            p.print();
        }
    }

    /// The figures for the report.
    pub(crate) fn to_scale(&self, shape: Shape) -> scale::Throughput {
        scale::Throughput {
            clients: CLIENTS,
            requests: shape.requests,
            keyspace: shape.keyspace,
            rounds: shape.rounds,
            pairs: self.pairs.iter().map(Pair::to_scale).collect(),
        }
    }
}

pub(crate) fn measure(server: &RedisServer, shape: Shape) -> Result<Throughput> {
    let Shape {
        rounds,
        requests,
        keyspace,
    } = shape;
    let mut con = server.connection();
    sanity_check(&mut con)?;
    let mut tp = Throughput {
        pairs: vec![
            Pair::new(
                "SET lock:__rand_int__ tok NX PX 30000",
                "LOCK.ACQUIRE lock:__rand_int__ tok 30000",
                0.95,
                None,
            ),
            Pair::new(
                "DEL lock:__rand_int__",
                "LOCK.RELEASE lock:__rand_int__ tok",
                0.95,
                Some(Family::Lock),
            ),
            Pair::new(
                "SET lock:__rand_int__ tok NX PX 30000",
                "SEM.ACQUIRE lock:__rand_int__ tok 30000 LIMIT 10",
                0.9,
                None,
            ),
            Pair::new(
                "DEL lock:__rand_int__",
                "SEM.RELEASE lock:__rand_int__ tok",
                0.9,
                Some(Family::Sem),
            ),
        ],
    };
    println!(
        "throughput: {rounds} rounds of {requests} requests, {CLIENTS} clients, keys drawn from {keyspace}"
    );
    for round in 0..rounds {
        // Swap who goes first every round.
        let order = if round % 2 == 0 {
            [Side::Raw, Side::Module]
        } else {
            [Side::Module, Side::Raw]
        };
        let mut line = Vec::new();
        for pair in &mut tp.pairs {
            for side in order {
                load::flushall(&mut con)?;
                if let Some(family) = pair.fill {
                    fill(&mut con, side, family, keyspace)?;
                }
                let rps = redis_benchmark(server.port(), shape, pair.command(side))?;
                pair.record(side, rps);
                line.push(format!("{} {rps:.0}", first_word(pair.command(side))));
            }
        }
        println!("  round {}/{rounds}: {}", round + 1, line.join(", "));
    }
    load::flushall(&mut con)?;
    Ok(tp)
}

fn first_word(cmd: &str) -> &str {
    cmd.split(' ').next().unwrap_or(cmd)
}

/// A benchmark of a command that only returns errors would look fast:
/// check once that both sides really do their job.
fn sanity_check(con: &mut Connection) -> Result<()> {
    let set: Value = redis::cmd("SET")
        .arg("lock:check")
        .arg("tok")
        .arg("NX")
        .arg("PX")
        .arg(30000)
        .query(con)?;
    let del: i64 = redis::cmd("DEL").arg("lock:check").query(con)?;
    let acquire: Value = redis::cmd("LOCK.ACQUIRE")
        .arg("lock:check")
        .arg("tok")
        .arg(30000)
        .query(con)?;
    let release: i64 = redis::cmd("LOCK.RELEASE")
        .arg("lock:check")
        .arg("tok")
        .query(con)?;
    if set != Value::Okay || del != 1 || !matches!(acquire, Value::Int(_)) || release != 1 {
        bail!("sanity check failed: SET {set:?}, DEL {del}, LOCK.ACQUIRE {acquire:?}, LOCK.RELEASE {release}");
    }
    let sem_acquire: Value = redis::cmd("SEM.ACQUIRE")
        .arg("lock:check")
        .arg("tok")
        .arg(30000)
        .arg("LIMIT")
        .arg(10)
        .query(con)?;
    let sem_release: i64 = redis::cmd("SEM.RELEASE")
        .arg("lock:check")
        .arg("tok")
        .query(con)?;
    if !matches!(sem_acquire, Value::Int(_)) || sem_release != 1 {
        bail!("sanity check failed: SEM.ACQUIRE {sem_acquire:?}, SEM.RELEASE {sem_release}");
    }
    Ok(())
}

/// Holds every key of the benchmark's keyspace with token `tok`: string
/// keys for the raw side, locks or one-lease semaphores for the module's.
fn fill(con: &mut Connection, side: Side, family: Family, keyspace: u64) -> Result<()> {
    load::pipelined(con, keyspace, |i| {
        let key = format!("lock:{i:012}");
        match (side, family) {
            (Side::Module, Family::Sem) => redis::cmd("SEM.ACQUIRE")
                .arg(key)
                .arg("tok")
                .arg(600_000)
                .arg("LIMIT")
                .arg(10)
                .clone(),
            (Side::Raw, _) => redis::cmd("SET")
                .arg(key)
                .arg("tok")
                .arg("PX")
                .arg(600_000)
                .clone(),
            (Side::Module, Family::Lock) => redis::cmd("LOCK.ACQUIRE")
                .arg(key)
                .arg("tok")
                .arg(600_000)
                .clone(),
        }
    })?;
    Ok(())
}

/// Runs redis-benchmark on `command` and returns its requests per second.
fn redis_benchmark(port: u16, shape: Shape, command: &str) -> Result<f64> {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-c",
            &CLIENTS.to_string(),
            "-n",
            &shape.requests.to_string(),
        ])
        .args(["-r", &shape.keyspace.to_string(), "-P", "1", "--csv"])
        .args(command.split(' '))
        .output()
        .context("could not run redis-benchmark")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "redis-benchmark '{command}' failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // CSV: a header, then `"<command>","<rps>","<avg ms>",...`.
    stdout
        .lines()
        .filter(|line| !line.starts_with("\"test\""))
        .find_map(|line| line.split("\",\"").nth(1)?.parse::<f64>().ok())
        .with_context(|| format!("no requests/s in redis-benchmark output: {stdout}"))
}
