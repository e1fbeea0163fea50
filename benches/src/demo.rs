//! The closing act of `cargo xtask demo`: workload 2 in short (8 tasks on
//! ONE key, hold 1 ms), baton's module against Redlock on 3 instances with
//! its best retry setting, as a small side-by-side table.
//!
//! xtask runs it through the release `baton-bench --demo SECS` (the figures
//! of a debug build would not be representative).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;
use baton_client::Backend;

use crate::contenders::{Kind, Retry, Spec, REDLOCK_TUNED_DELAY};
use crate::report::{MODULE, REDLOCK_3};
use crate::setup::Servers;
use crate::workloads::contended::{self, Contended};

/// Concurrent tasks on the one key.
pub const TASKS: usize = 8;
/// How long each holder keeps the lock.
pub const HOLD: Duration = Duration::from_millis(1);
/// Unmeasured time before each contender's run.
pub const WARMUP: Duration = Duration::from_millis(500);

/// Runs the contended workload for `each` per contender: the baton module,
/// then Redlock x3 (`rslock`, endless tries with a random
/// 0..[`REDLOCK_TUNED_DELAY`] delay, its best setting at this shape). One
/// row per contender, in that order.
pub async fn demo_contended(servers: &Servers, each: Duration) -> Result<Vec<Contended>> {
    let urls = servers.redlock_urls();
    let delay = REDLOCK_TUNED_DELAY.as_millis() as u64;
    let specs = [
        Spec::new(MODULE, Kind::Baton(Backend::Module)),
        Spec::new(
            format!("{REDLOCK_3} (rslock, retry 0..{delay} ms)"),
            Kind::Redlock(3, Retry::Tuned(delay)),
        ),
    ];
    let mut rows = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        eprintln!(
            "  running {:<38} {TASKS} tasks, 1 key, hold {HOLD:?}, {each:?} ...",
            spec.name
        );
        let c = spec.build(&urls).await?;
        rows.push(contended::run(&c, &format!("demo{i}"), TASKS, HOLD, WARMUP, each).await?);
    }
    Ok(rows)
}

/// The rows as an aligned text table, and a line comparing the first row
/// (baton) with the second (Redlock).
pub fn demo_table(rows: &[Contended]) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "{:<38} {:>7} {:>9} {:>9} {:>9} {:>9} {:>6} {:>18}",
        "contender",
        "acq/s",
        "of 1/hold",
        "wait p50",
        "wait p99",
        "wait max",
        "Jain",
        "order viol (>1ms)"
    );
    for r in rows {
        let name = if r.stuck_tasks > 0 {
            format!("{} ({} hung)", r.contender, r.stuck_tasks)
        } else {
            r.contender.clone()
        };
        let _ = writeln!(
            w,
            "{name:<38} {:>7.0} {:>9} {:>9} {:>9} {:>9} {:>6.3} {:>18}",
            r.acq_per_sec,
            r.of_limit
                .map_or("-".into(), |f| format!("{:.0}%", f * 100.0)),
            ms(r.wait.p50_us),
            ms(r.wait.p99_us),
            ms(r.max_wait_us),
            r.jain,
            format!("{} ({})", r.order_violations, r.order_violations_1ms)
        );
    }
    let _ = writeln!(
        w,
        "wait: start of the acquire call to the grant; order violations: pairs where the later \
         arrival was granted first (in brackets: arrivals more than 1 ms apart)"
    );
    if let [baton, redlock, ..] = rows {
        if redlock.acq_per_sec > 0.0 && baton.max_wait_us > 0.0 {
            let _ = writeln!(
                w,
                "baton / redlock: {:.2}x the acquisitions, max wait {:.1}x shorter, {} vs {} order violations",
                baton.acq_per_sec / redlock.acq_per_sec,
                redlock.max_wait_us / baton.max_wait_us,
                baton.order_violations,
                redlock.order_violations
            );
        }
    }
    s
}

/// Microseconds as milliseconds with one decimal.
fn ms(us: f64) -> String {
    format!("{:.1} ms", us / 1000.0)
}
