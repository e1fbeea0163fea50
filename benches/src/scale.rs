//! The module against raw Redis, on one server of its own: command
//! throughput with redis-benchmark (locks and semaphores), memory per held
//! lock and per semaphore lease, and the event-loop stall while many locks
//! expire at once.
//!
//! `baton-bench` runs [`measure`] before the workloads (it drives
//! `redis-benchmark` and bulk loads with the sync `redis` crate) and puts
//! the [`Scale`] it returns into the same report (`docs/BENCHMARKS.md`) and
//! the same JSON (`docs/benchmarks.json`) as the workloads.
//!
//! # Layout
//!
//! - this file: the figures ([`Scale`] and its parts), their goals and
//!   their Markdown section;
//! - `measure`: [`Sizes`] (full and `--quick`) and [`measure`], which runs
//!   the three below in turn and prints the results;
//! - `throughput`: redis-benchmark, module command vs raw command, rounds
//!   alternating who goes first;
//! - `memory`: `used_memory` growth per string key, held lock, lease;
//! - `stall`: PING round trips while N locks (or N PX keys) expire at once;
//! - `load`: pipelined bulk loading and the server's own counts.

mod load;
mod measure;
mod memory;
mod stall;
mod throughput;

pub use measure::{measure, Sizes};

use std::fmt::Write as _;

use serde::Serialize;

use crate::stats::median;

/// Everything measured against raw Redis.
#[derive(Debug, Clone, Serialize)]
pub struct Scale {
    /// Module command vs the raw command it replaces, redis-benchmark.
    pub throughput: Throughput,
    /// `used_memory` per held lock vs per string key with PX.
    pub memory: Memory,
    /// PING round trips while keys / locks expire all at once.
    pub expiry: Expiry,
}

/// The redis-benchmark comparisons.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// `-c`: concurrent connections.
    pub clients: u32,
    /// `-n`: requests per run.
    pub requests: u64,
    /// `-r`: keys drawn from this many.
    pub keyspace: u64,
    /// Rounds (raw and module alternate who goes first).
    pub rounds: usize,
    /// One comparison per module command.
    pub pairs: Vec<Pair>,
}

/// One module command against the raw command it replaces.
#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    /// The raw Redis command, as given to redis-benchmark.
    pub raw_cmd: String,
    /// The module command.
    pub module_cmd: String,
    /// Requests/s of the raw command, one per round.
    pub raw_rps: Vec<f64>,
    /// Requests/s of the module command, one per round.
    pub module_rps: Vec<f64>,
    /// Median of the per-round ratios module / raw.
    pub ratio: f64,
    /// The goal: at least this ratio (0.95 for locks, 0.9 for semaphores).
    pub goal: f64,
}

/// Memory per key.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    /// Keys / locks loaded.
    pub keys: u64,
    /// Their ttl (long enough that none expires while measured).
    pub ttl_ms: u64,
    /// `used_memory` growth per `SET k <32 hex> PX ttl`.
    pub string_bytes: f64,
    /// `used_memory` growth per `LOCK.ACQUIRE k <32 hex> ttl`.
    pub lock_bytes: f64,
    /// `used_memory` growth per `SEM.ACQUIRE k <32 hex> ttl LIMIT 10`, one
    /// lease per key (issue 11).
    pub lease_bytes: f64,
    /// The same per lease when every key is full: 10 leases (10 tokens)
    /// on each of `keys / 10` keys, the key's own cost shared by 10.
    pub full_lease_bytes: f64,
}

impl Memory {
    /// Bytes per held lock over bytes per string key.
    pub fn ratio(&self) -> f64 {
        self.lock_bytes / self.string_bytes
    }

    /// Bytes per semaphore lease (one per key) over bytes per string key.
    pub fn lease_ratio(&self) -> f64 {
        self.lease_bytes / self.string_bytes
    }
}

/// The expiry stall measurements.
#[derive(Debug, Clone, Serialize)]
pub struct Expiry {
    /// Keys / locks made due at once.
    pub keys: u64,
    /// Their ttl.
    pub ttl_ms: u64,
    /// The probe on an idle server (baseline).
    pub idle: Wave,
    /// `keys` string keys with PX (Redis' own active expiry).
    pub raw: Wave,
    /// `keys` held locks (the module's expiry).
    pub module: Wave,
}

/// What the PING probe saw during one measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Wave {
    /// Pings counted.
    pub pings: usize,
    /// Longest round trip, ms.
    pub max_rtt_ms: f64,
    /// 99th percentile round trip, ms.
    pub p99_rtt_ms: f64,
    /// From the end of the hold to nothing left, ms (none for the idle probe).
    pub drained_ms: Option<f64>,
    /// The longest `baton-expire-cycle` batch in Redis' latency monitor, ms
    /// (module only).
    pub longest_batch_ms: Option<i64>,
}

/// The goals of the issue on these figures: `(what, target, measured, met)`.
pub(crate) fn goals(s: &Scale) -> Vec<(String, String, String, bool)> {
    let mut goals = Vec::new();
    for p in &s.throughput.pairs {
        goals.push((
            format!(
                "throughput: `{}` / `{}` (redis-benchmark, {} clients)",
                first_word(&p.module_cmd),
                raw_name(&p.raw_cmd),
                s.throughput.clients
            ),
            format!(">= {}x", p.goal),
            format!("{:.2}x", p.ratio),
            p.ratio >= p.goal,
        ));
    }
    let m = &s.memory;
    goals.push((
        "memory: held lock / string key with PX".into(),
        "<= 2x".into(),
        format!(
            "{:.2}x ({:.0} vs {:.0} bytes)",
            m.ratio(),
            m.lock_bytes,
            m.string_bytes
        ),
        m.ratio() <= 2.0,
    ));
    goals.push((
        "memory: semaphore lease (one per key, limit 10) / string key with PX".into(),
        "<= 2x".into(),
        format!(
            "{:.2}x ({:.0} vs {:.0} bytes)",
            m.lease_ratio(),
            m.lease_bytes,
            m.string_bytes
        ),
        m.lease_ratio() <= 2.0,
    ));
    let e = &s.expiry;
    goals.push((
        format!(
            "expiry: longest PING round trip while {} locks expire at once",
            e.keys
        ),
        "<= 5 ms".into(),
        format!("{:.2} ms", e.module.max_rtt_ms),
        e.module.max_rtt_ms <= 5.0,
    ));
    goals
}

/// The Markdown section: ratios first, then the absolute figures.
pub(crate) fn section(s: &Scale) -> String {
    let mut out = String::new();
    let w = &mut out;
    let t = &s.throughput;
    let _ = writeln!(
        w,
        "Measured by `baton-bench` on one server with the module loaded, module command \
         against the raw Redis command it replaces.\n"
    );
    let _ = writeln!(w, "| measure | module / raw | goal |");
    let _ = writeln!(w, "| --- | ---: | ---: |");
    for p in &t.pairs {
        let _ = writeln!(
            w,
            "| throughput, `{}` / `{}` | {:.3} | >= {:.2} |",
            first_word(&p.module_cmd),
            raw_name(&p.raw_cmd),
            p.ratio,
            p.goal
        );
    }
    let _ = writeln!(
        w,
        "| memory, held lock / string key with PX | {:.3} | <= 2.00 |",
        s.memory.ratio()
    );
    let _ = writeln!(
        w,
        "| memory, semaphore lease (one per key) / string key with PX | {:.3} | <= 2.00 |",
        s.memory.lease_ratio()
    );
    let e = &s.expiry;
    let _ = writeln!(
        w,
        "| expiry, longest PING round trip, {} locks due at once / idle | {:.2} ms / {:.2} ms | <= 5 ms |",
        e.keys, e.module.max_rtt_ms, e.idle.max_rtt_ms
    );

    let _ = writeln!(
        w,
        "\nThroughput: `redis-benchmark -c {} -n {} -r {} -P 1`, {} rounds, raw and module \
         alternating who goes first; the ratio is the median of the per-round ratios. Each \
         acquire run starts from an empty keyspace, each release run from all {} keys held \
         (string keys, locks, or semaphores of limit 10 with one lease each). The raw command \
         runs again next to each module command, in the same round.\n",
        t.clients, t.requests, t.keyspace, t.rounds, t.keyspace
    );
    let _ = writeln!(w, "| command | requests/s (median) | per round |");
    let _ = writeln!(w, "| --- | ---: | --- |");
    for p in &t.pairs {
        for (cmd, runs) in [(&p.raw_cmd, &p.raw_rps), (&p.module_cmd, &p.module_rps)] {
            let rounds: Vec<String> = runs.iter().map(|r| format!("{r:.0}")).collect();
            let _ = writeln!(
                w,
                "| `{cmd}` | {:.0} | {} |",
                median(runs),
                rounds.join(" ")
            );
        }
    }

    let m = &s.memory;
    let _ = writeln!(
        w,
        "\nMemory: `used_memory` growth for {} keys on a flushed server, same key names, \
         32-hex-char values / tokens, ttl {} ms.\n",
        m.keys, m.ttl_ms
    );
    let _ = writeln!(w, "| what | bytes per key |");
    let _ = writeln!(w, "| --- | ---: |");
    let _ = writeln!(
        w,
        "| `SET k <token> PX {}` | {:.1} |",
        m.ttl_ms, m.string_bytes
    );
    let _ = writeln!(
        w,
        "| `LOCK.ACQUIRE k <token> {}` | {:.1} |",
        m.ttl_ms, m.lock_bytes
    );
    let _ = writeln!(
        w,
        "| `SEM.ACQUIRE k <token> {} LIMIT 10` (one lease per key) | {:.1} |",
        m.ttl_ms, m.lease_bytes
    );
    let _ = writeln!(
        w,
        "| the same, 10 leases on each of {} keys (per lease) | {:.1} |",
        m.keys / 10,
        m.full_lease_bytes
    );

    let _ = writeln!(
        w,
        "\nExpiry: {} keys / locks with ttl {} ms, all made due at the same moment (a Lua \
         script holds the event loop across every deadline); a probe PINGs every ~1 ms on \
         another connection. The pings counted are those sent between the end of the hold \
         and nothing left.\n",
        e.keys, e.ttl_ms
    );
    let _ = writeln!(
        w,
        "| what | max RTT | p99 RTT | pings | all gone after | longest expiry batch (LATENCY) |"
    );
    let _ = writeln!(w, "| --- | ---: | ---: | ---: | ---: | ---: |");
    for (what, wave) in [
        ("idle server (baseline)", &e.idle),
        ("string keys with PX (raw Redis)", &e.raw),
        ("held locks (module)", &e.module),
    ] {
        let _ = writeln!(
            w,
            "| {what} | {:.2} ms | {:.2} ms | {} | {} | {} |",
            wave.max_rtt_ms,
            wave.p99_rtt_ms,
            wave.pings,
            wave.drained_ms.map_or("-".into(), |d| format!("{d:.0} ms")),
            wave.longest_batch_ms
                .map_or("-".into(), |b| format!("{b} ms")),
        );
    }
    out
}

fn first_word(cmd: &str) -> &str {
    cmd.split(' ').next().unwrap_or(cmd)
}

/// `SET NX PX` for `SET lock:.. tok NX PX 30000`, `DEL` for `DEL lock:..`.
pub fn raw_name(cmd: &str) -> String {
    let words: Vec<&str> = cmd.split(' ').collect();
    match words.first() {
        Some(&"SET") => {
            let opts: Vec<&str> = words
                .iter()
                .skip(3)
                .copied()
                .filter(|w| w.chars().all(|c| c.is_ascii_uppercase()))
                .collect();
            format!("SET {}", opts.join(" "))
        }
        Some(w) => (*w).to_owned(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::raw_name;

    #[test]
    fn raw_names() {
        assert_eq!(
            raw_name("SET lock:__rand_int__ tok NX PX 30000"),
            "SET NX PX"
        );
        assert_eq!(raw_name("DEL lock:__rand_int__"), "DEL");
    }
}
