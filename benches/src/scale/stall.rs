//! Expiry stall: the longest the event loop stays busy while N locks expire
//! at once, measured as the round-trip time of a PING probe.
//!
//! Loading N locks takes a while, so their deadlines spread over that time.
//! To make them all due at the same moment, a Lua script holds the event
//! loop (busy-waiting on `TIME`) from just before the first deadline to just
//! after the last: when it returns, all N are overdue together. A probe
//! connection sends PING every ~1 ms throughout; the pings sent after the
//! script returned and before everything was gone (`LOCK.STATS held` = 0)
//! show how long the expiry work keeps other clients waiting. The same is
//! done with N string keys with PX (Redis' own active expiry) and on an idle
//! server, for comparison.
//!
//! The module also reports each expiry batch to Redis' latency monitor
//! (`baton-expire-cycle`); the longest batch it recorded is the stall as the
//! server saw it, free of the probe's own scheduling noise.

use super::load;
use crate::scale;
use anyhow::{bail, ensure, Result};
use baton_harness::RedisServer;
use redis::{Connection, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Busy-waits on the server until unix time ARGV[1] (ms) has passed.
const HOLD_SCRIPT: &str = "\
local until_ms = tonumber(ARGV[1])
repeat
  local t = redis.call('TIME')
until tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) >= until_ms
return 1";

/// Margin before the first and after the last deadline.
const MARGIN_MS: u64 = 200;

#[derive(Clone, Copy)]
enum Side {
    Raw,
    Module,
}

/// What the probe saw during one measurement.
pub(crate) struct Wave {
    pings: usize,
    max_rtt: Duration,
    p99_rtt: Duration,
    /// From the end of the hold to nothing left (None for the idle probe).
    drained: Option<Duration>,
    /// The longest expiry batch in Redis' latency monitor (module only).
    longest_batch_ms: Option<i64>,
}

impl Wave {
    pub(crate) fn max_rtt_ms(&self) -> f64 {
        self.max_rtt.as_secs_f64() * 1e3
    }

    fn to_scale(&self) -> scale::Wave {
        scale::Wave {
            pings: self.pings,
            max_rtt_ms: self.max_rtt_ms(),
            p99_rtt_ms: self.p99_rtt.as_secs_f64() * 1e3,
            drained_ms: self.drained.map(|d| d.as_secs_f64() * 1e3),
            longest_batch_ms: self.longest_batch_ms,
        }
    }

    fn print(&self, label: &str) {
        let mut drained = match self.drained {
            Some(d) => format!(", all gone {} ms after the hold", d.as_millis()),
            None => String::new(),
        };
        if let Some(ms) = self.longest_batch_ms {
            drained.push_str(&format!(", longest expiry batch {ms} ms (LATENCY)"));
        }
        println!(
            "  {label:<40} max {:>7.2} ms, p99 {:>6.2} ms over {} pings{drained}",
            self.max_rtt_ms(),
            self.p99_rtt.as_secs_f64() * 1e3,
            self.pings
        );
    }
}

pub(crate) struct Waves {
    keys: u64,
    ttl_ms: u64,
    idle: Wave,
    raw: Wave,
    pub(crate) module: Wave,
}

impl Waves {
    /// The figures for the report.
    pub(crate) fn to_scale(&self) -> scale::Expiry {
        scale::Expiry {
            keys: self.keys,
            ttl_ms: self.ttl_ms,
            idle: self.idle.to_scale(),
            raw: self.raw.to_scale(),
            module: self.module.to_scale(),
        }
    }

    pub(crate) fn print(&self) {
        println!(
            "expiry: {} keys/locks with ttl {} ms, all made due at once; PING RTT on another connection",
            self.keys, self.ttl_ms
        );
        self.idle.print("idle server (baseline)");
        self.raw.print("string keys with PX (raw Redis)");
        self.module.print("held locks (module)");
    }
}

/// `lock_load`: how long loading `keys` locks took (from the memory test),
/// to pick a ttl that outlasts the load: 4x and 2 s more, as a loaded
/// machine has taken 2.4x as long to load them again here.
pub(crate) fn measure(server: &RedisServer, keys: u64, lock_load: Duration) -> Result<Waves> {
    let ttl_ms = (lock_load.as_millis() as u64 * 4 + 2000).max(2000);
    println!(
        "expiry: idle probe, then {keys} string keys and {keys} locks expiring, ttl {ttl_ms} ms"
    );
    let probe = Probe::start(server);
    thread::sleep(Duration::from_secs(2));
    let idle = summarize(
        probe.finish().into_iter().map(|(_, rtt)| rtt).collect(),
        None,
    );
    let raw = wave(server, Side::Raw, keys, ttl_ms)?;
    let module = wave(server, Side::Module, keys, ttl_ms)?;
    Ok(Waves {
        keys,
        ttl_ms,
        idle,
        raw,
        module,
    })
}

fn wave(server: &RedisServer, side: Side, keys: u64, ttl_ms: u64) -> Result<Wave> {
    let mut con = server.connection();
    load::flushall(&mut con)?;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("latency-monitor-threshold")
        .arg(1)
        .query(&mut con)?;
    let _: i64 = redis::cmd("LATENCY").arg("RESET").query(&mut con)?;
    let expirations_before = expirations(&mut con, side)?;
    let first = now_ms();
    load::pipelined(&mut con, keys, |i| {
        let key = format!("exp:{i:012}");
        match side {
            Side::Raw => redis::cmd("SET")
                .arg(key)
                .arg(load::token(i))
                .arg("PX")
                .arg(ttl_ms)
                .clone(),
            Side::Module => redis::cmd("LOCK.ACQUIRE")
                .arg(key)
                .arg(load::token(i))
                .arg(ttl_ms)
                .clone(),
        }
    })?;
    let last = now_ms();
    ensure!(
        last + 2 * MARGIN_MS < first + ttl_ms,
        "loading took {} ms, too close to the ttl of {ttl_ms} ms",
        last - first
    );
    ensure!(
        remaining(&mut con, side)? == keys,
        "not all {keys} keys were loaded"
    );

    let probe = Probe::start(server);
    sleep_until_ms(first + ttl_ms - MARGIN_MS);
    let _: Value = redis::cmd("EVAL")
        .arg(HOLD_SCRIPT)
        .arg(0)
        .arg(last + ttl_ms + MARGIN_MS)
        .query(&mut con)?;
    let released = Instant::now();
    while remaining(&mut con, side)? > 0 {
        if released.elapsed() > Duration::from_secs(120) {
            bail!("keys still left 120 s after they expired");
        }
        thread::sleep(Duration::from_millis(10));
    }
    let drained = released.elapsed();
    let expired = expirations(&mut con, side)? - expirations_before;
    ensure!(
        expired == keys as i64,
        "{expired} expirations counted, expected {keys}"
    );

    let during = probe
        .finish()
        .into_iter()
        .filter(|(sent, _)| *sent >= released && *sent <= released + drained)
        .map(|(_, rtt)| rtt)
        .collect();
    let mut wave = summarize(during, Some(drained));
    if let Side::Module = side {
        wave.longest_batch_ms = Some(longest_batch_ms(&mut con)?);
    }
    Ok(wave)
}

/// The longest `baton-expire-cycle` sample since the last `LATENCY RESET`
/// (0 when none reached the 1 ms threshold).
fn longest_batch_ms(con: &mut Connection) -> Result<i64> {
    let history: Vec<(i64, i64)> = redis::cmd("LATENCY")
        .arg("HISTORY")
        .arg("baton-expire-cycle")
        .query(con)?;
    Ok(history.into_iter().map(|(_, ms)| ms).max().unwrap_or(0))
}

/// Keys not yet expired: `LOCK.STATS held` for locks, `DBSIZE` for strings.
fn remaining(con: &mut Connection, side: Side) -> Result<u64> {
    Ok(match side {
        Side::Raw => redis::cmd("DBSIZE").query(con)?,
        Side::Module => load::lock_stat(con, "held")? as u64,
    })
}

/// The server's own count of expired keys or locks.
fn expirations(con: &mut Connection, side: Side) -> Result<i64> {
    Ok(match side {
        Side::Raw => load::info_field(con, "stats", "expired_keys")?.parse()?,
        Side::Module => load::lock_stat(con, "expirations")?,
    })
}

fn summarize(mut rtts: Vec<Duration>, drained: Option<Duration>) -> Wave {
    rtts.sort();
    let at = |q: f64| {
        rtts.get(((rtts.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    Wave {
        pings: rtts.len(),
        max_rtt: at(1.0),
        p99_rtt: at(0.99),
        drained,
        longest_batch_ms: None,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn sleep_until_ms(unix_ms: u64) {
    let now = now_ms();
    if unix_ms > now {
        thread::sleep(Duration::from_millis(unix_ms - now));
    }
}

/// A thread that PINGs every ~1 ms on its own connection and records
/// (send time, round-trip time); error replies (e.g. BUSY) count alike.
struct Probe {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<Vec<(Instant, Duration)>>,
}

impl Probe {
    fn start(server: &RedisServer) -> Self {
        let mut con = server.connection();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop_flag.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let _: redis::RedisResult<Value> = redis::cmd("PING").query(&mut con);
                samples.push((sent, sent.elapsed()));
                thread::sleep(Duration::from_millis(1));
            }
            samples
        });
        Probe { stop, handle }
    }

    fn finish(self) -> Vec<(Instant, Duration)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}
