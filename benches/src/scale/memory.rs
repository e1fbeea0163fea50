//! Memory: `used_memory` grown by N string keys with PX vs by N held locks
//! and by N semaphore leases (one per key, limit 10), same key names and
//! 32-hex-char values/tokens, each on a flushed server; and per lease when
//! every semaphore is full (10 leases on each of N/10 keys).

use super::load;
use crate::scale;
use anyhow::{ensure, Result};
use baton_harness::RedisServer;
use redis::Connection;
use std::time::Duration;

/// Long enough that nothing expires while we measure.
const TTL_MS: u64 = 600_000;

pub(crate) struct Memory {
    keys: u64,
    string_bytes: f64,
    lock_bytes: f64,
    lease_bytes: f64,
    full_lease_bytes: f64,
    /// How long loading the locks took: the expiry test sizes its ttl on it.
    pub(crate) lock_load: Duration,
}

impl Memory {
    /// Bytes per held lock over bytes per string key with PX.
    pub(crate) fn ratio(&self) -> f64 {
        self.lock_bytes / self.string_bytes
    }

    /// Bytes per semaphore lease (one per key) over bytes per string key.
    pub(crate) fn lease_ratio(&self) -> f64 {
        self.lease_bytes / self.string_bytes
    }

    /// The figures for the report.
    pub(crate) fn to_scale(&self) -> scale::Memory {
        scale::Memory {
            keys: self.keys,
            ttl_ms: TTL_MS,
            string_bytes: self.string_bytes,
            lock_bytes: self.lock_bytes,
            lease_bytes: self.lease_bytes,
            full_lease_bytes: self.full_lease_bytes,
        }
    }

    pub(crate) fn print(&self) {
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
        println!(
            "  {:<40} {:>10.1} bytes/lease",
            "SEM.ACQUIRE k <token> 600000 LIMIT 10", self.lease_bytes
        );
        println!(
            "  {:<40} {:>10.1} bytes/lease",
            format!("the same, 10 leases on {} keys", self.keys / 10),
            self.full_lease_bytes
        );
    }
}

pub(crate) fn measure(server: &RedisServer, keys: u64) -> Result<Memory> {
    let mut con = server.connection();
    println!(
        "memory: loading {keys} string keys, then {keys} locks, {keys} leases on as many keys, {keys} leases on {} keys",
        keys / 10
    );
    let (string_bytes, _) = grown_by(&mut con, keys, keys, |i| {
        redis::cmd("SET")
            .arg(key(i))
            .arg(load::token(i))
            .arg("PX")
            .arg(TTL_MS)
            .clone()
    })?;
    let (lock_bytes, lock_load) = grown_by(&mut con, keys, keys, |i| {
        redis::cmd("LOCK.ACQUIRE")
            .arg(key(i))
            .arg(load::token(i))
            .arg(TTL_MS)
            .clone()
    })?;
    let held = load::lock_stat(&mut con, "held")?;
    ensure!(
        held == keys as i64,
        "LOCK.STATS held is {held}, expected {keys}"
    );
    let (lease_bytes, _) = grown_by(&mut con, keys, keys, |i| {
        redis::cmd("SEM.ACQUIRE")
            .arg(key(i))
            .arg(load::token(i))
            .arg(TTL_MS)
            .arg("LIMIT")
            .arg(10)
            .clone()
    })?;
    let leases = sem_leases(&mut con)?;
    ensure!(leases == keys as i64, "{leases} leases, expected {keys}");
    // Lease i on key i / 10: ten distinct tokens fill each semaphore.
    let (full_lease_bytes, _) = grown_by(&mut con, keys, keys.div_ceil(10), |i| {
        redis::cmd("SEM.ACQUIRE")
            .arg(key(i / 10))
            .arg(load::token(i))
            .arg(TTL_MS)
            .arg("LIMIT")
            .arg(10)
            .clone()
    })?;
    let leases = sem_leases(&mut con)?;
    ensure!(leases == keys as i64, "{leases} leases, expected {keys}");
    load::flushall(&mut con)?;
    println!("  loaded {keys} locks in {} ms", lock_load.as_millis());
    Ok(Memory {
        keys,
        string_bytes,
        lock_bytes,
        lease_bytes,
        full_lease_bytes,
        lock_load,
    })
}

fn key(i: u64) -> String {
    format!("mem:{i:012}")
}

/// The module's count of leases held (`INFO baton`).
fn sem_leases(con: &mut Connection) -> Result<i64> {
    Ok(load::info_field(con, "baton", "baton_leases")?.parse()?)
}

/// Bytes per command that loading `n` commands adds to `used_memory`;
/// they must leave `keys` keys.
fn grown_by(
    con: &mut Connection,
    n: u64,
    keys: u64,
    make: impl Fn(u64) -> redis::Cmd,
) -> Result<(f64, Duration)> {
    load::flushall(con)?;
    let before = used_memory(con)?;
    let took = load::pipelined(con, n, make)?;
    let after = used_memory(con)?;
    let dbsize: u64 = redis::cmd("DBSIZE").query(con)?;
    ensure!(
        dbsize == keys,
        "DBSIZE is {dbsize} after loading {n} commands, expected {keys}"
    );
    Ok(((after - before) as f64 / n as f64, took))
}

fn used_memory(con: &mut Connection) -> Result<i64> {
    Ok(load::info_field(con, "memory", "used_memory")?.parse()?)
}
