//! Pipelined bulk loading and the server's own counts (`LOCK.STATS`,
//! `INFO` fields, read with `baton_harness`'s reply parsers), shared by
//! the throughput, memory and expiry measurements.

use anyhow::{Context, Result};
use baton_harness::lock::to_int_map;
use baton_harness::replication::parse_info_field;
use redis::{Connection, Value};
use std::time::{Duration, Instant};

/// Commands per pipeline: large enough to keep the server busy, small
/// enough to keep client buffers (and so `used_memory`) modest.
const BATCH: u64 = 10_000;

/// Sends `make(i)` for every `i in 0..n` in pipelined batches; any error
/// reply fails the load. Returns how long it took.
pub(crate) fn pipelined(
    con: &mut Connection,
    n: u64,
    make: impl Fn(u64) -> redis::Cmd,
) -> Result<Duration> {
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        let mut pipe = redis::pipe();
        for j in i..(i + BATCH).min(n) {
            pipe.add_command(make(j)).ignore();
        }
        pipe.query::<()>(con)?;
        i += BATCH;
    }
    Ok(start.elapsed())
}

/// A token shaped like the client's (128 bits, 32 hex chars), distinct per lock.
pub(crate) fn token(i: u64) -> String {
    format!(
        "{:032x}",
        (u128::from(i) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    )
}

/// `FLUSHALL` (synchronous, so memory is back before the next reading).
pub(crate) fn flushall(con: &mut Connection) -> Result<()> {
    redis::cmd("FLUSHALL").arg("SYNC").query::<()>(con)?;
    Ok(())
}

/// `LOCK.STATS` counter, e.g. `held`.
pub(crate) fn lock_stat(con: &mut Connection, field: &str) -> Result<i64> {
    let reply: Value = redis::cmd("LOCK.STATS").query(con)?;
    to_int_map(&reply)
        .with_context(|| format!("LOCK.STATS is not a map of integers: {reply:?}"))?
        .get(field)
        .copied()
        .with_context(|| format!("LOCK.STATS has no '{field}'"))
}

/// A `name:value` line of `INFO section`.
pub(crate) fn info_field(con: &mut Connection, section: &str, field: &str) -> Result<String> {
    let info: String = redis::cmd("INFO").arg(section).query(con)?;
    parse_info_field(&info, field)
        .map(|v| v.trim().to_string())
        .with_context(|| format!("INFO {section} has no '{field}'"))
}
