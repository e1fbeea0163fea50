//! Pipelined bulk loading, shared by the memory and expiry measurements.

use anyhow::Result;
use redis::Connection;
use std::time::{Duration, Instant};

/// Commands per pipeline: large enough to keep the server busy, small
/// enough to keep client buffers (and so `used_memory`) modest.
const BATCH: u64 = 10_000;

/// Sends `make(i)` for every `i in 0..n` in pipelined batches; any error
/// reply fails the load. Returns how long it took.
pub fn pipelined(
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
pub fn token(i: u64) -> String {
    format!(
        "{:032x}",
        (u128::from(i) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    )
}

/// `FLUSHALL` (synchronous, so memory is back before the next reading).
pub fn flushall(con: &mut Connection) -> Result<()> {
    redis::cmd("FLUSHALL").arg("SYNC").query::<()>(con)?;
    Ok(())
}
