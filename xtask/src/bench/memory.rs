//! Memory: `used_memory` grown by N string keys with PX vs by N held locks,
//! same key names and 32-hex-char values/tokens, each on a flushed server.

use super::load;
use crate::reply;
use anyhow::{ensure, Result};
use baton_benches::scale;
use baton_tests::RedisServer;
use redis::Connection;
use std::time::Duration;

/// Long enough that nothing expires while we measure.
const TTL_MS: u64 = 600_000;

pub struct Memory {
    keys: u64,
    string_bytes: f64,
    lock_bytes: f64,
    /// How long loading the locks took: the expiry test sizes its ttl on it.
    pub lock_load: Duration,
}

impl Memory {
    /// Bytes per held lock over bytes per string key with PX.
    pub fn ratio(&self) -> f64 {
        self.lock_bytes / self.string_bytes
    }

    /// The figures for the report.
    pub fn to_scale(&self) -> scale::Memory {
        scale::Memory {
            keys: self.keys,
            ttl_ms: TTL_MS,
            string_bytes: self.string_bytes,
            lock_bytes: self.lock_bytes,
        }
    }

    pub fn print(&self) {
        println!(
            "memory: used_memory growth for {} keys, 32-hex values/tokens, ttl {TTL_MS} ms",
            self.keys
        );
        println!(
            "  {:<40} {:>10.1} bytes/key",
            "SET k <token> PX 600000", self.string_bytes
        );
        println!(
            "  {:<40} {:>10.1} bytes/lock",
            "LOCK.ACQUIRE k <token> 600000", self.lock_bytes
        );
    }
}

pub fn measure(server: &RedisServer, keys: u64) -> Result<Memory> {
    let mut con = server.connection();
    println!("memory: loading {keys} string keys, then {keys} locks");
    let (string_bytes, _) = grown_by(&mut con, keys, |i| {
        redis::cmd("SET")
            .arg(key(i))
            .arg(load::token(i))
            .arg("PX")
            .arg(TTL_MS)
            .clone()
    })?;
    let (lock_bytes, lock_load) = grown_by(&mut con, keys, |i| {
        redis::cmd("LOCK.ACQUIRE")
            .arg(key(i))
            .arg(load::token(i))
            .arg(TTL_MS)
            .clone()
    })?;
    let held = reply::lock_stats(&mut con, "held")?;
    ensure!(
        held == keys as i64,
        "LOCK.STATS held is {held}, expected {keys}"
    );
    load::flushall(&mut con)?;
    println!("  loaded {keys} locks in {} ms", lock_load.as_millis());
    Ok(Memory {
        keys,
        string_bytes,
        lock_bytes,
        lock_load,
    })
}

fn key(i: u64) -> String {
    format!("mem:{i:012}")
}

/// Bytes per key that loading `n` commands adds to `used_memory`.
fn grown_by(
    con: &mut Connection,
    n: u64,
    make: impl Fn(u64) -> redis::Cmd,
) -> Result<(f64, Duration)> {
    load::flushall(con)?;
    let before = used_memory(con)?;
    let took = load::pipelined(con, n, make)?;
    let after = used_memory(con)?;
    let dbsize: u64 = redis::cmd("DBSIZE").query(con)?;
    ensure!(dbsize == n, "DBSIZE is {dbsize} after loading {n} keys");
    Ok(((after - before) as f64 / n as f64, took))
}

fn used_memory(con: &mut Connection) -> Result<i64> {
    Ok(reply::info_field(con, "memory", "used_memory")?.parse()?)
}
