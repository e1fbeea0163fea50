//! The results of a run: the goals (met / missed), the Markdown report
//! (`docs/BENCHMARKS.md`) and the raw figures as JSON (`docs/benchmarks.json`).

use std::fmt::Write as _;

use serde::Serialize;

use crate::scale::{self, Scale};
use crate::setup::Machine;
use crate::workloads::bus::{AckMode, BusRun, PublishVsRaw};
use crate::workloads::contended::Contended;
use crate::workloads::queue::QueueRun;
use crate::workloads::rwlock::RwRun;
use crate::workloads::semaphore::{SemFair, MIN_GAP_US};
use crate::workloads::uncontended::Uncontended;
use crate::workloads::waiters::{WaitersRun, CHURN_HOLD};
use crate::workloads::Plan;

/// Name of the baseline every uncontended ratio is taken against.
pub const RAW: &str = "raw SET NX PX + check-and-delete";
/// Name of the contended workload's measured limit: a token handed on with
/// raw `BLPOP`/`LPUSH`.
pub const RAW_HANDOFF: &str = "raw BLPOP/LPUSH hand-off";
/// Name of baton's module backend.
pub const MODULE: &str = "baton module";
/// The module backend with the watchdog on (the client's default).
pub const MODULE_WATCHDOG: &str = "baton module, watchdog on";
/// Name of baton's Lua backend.
pub const LUA: &str = "baton lua";
/// Prefix of the Redlock contenders on one instance.
pub const REDLOCK_1: &str = "redlock x1";
/// Prefix of the Redlock contenders on three instances.
pub const REDLOCK_3: &str = "redlock x3";
/// Name of the etcd contender.
pub const ETCD: &str = "etcd";

/// Everything one run measured, as written to the JSON file.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// When (UTC).
    pub date: String,
    /// The command that produced it.
    pub command: String,
    /// Where.
    pub machine: Machine,
    /// Which module build the server loaded.
    pub module: String,
    /// Durations and shapes.
    pub plan: Plan,
    /// rslock's tuned retry delay, ms.
    pub redlock_tuned_delay_ms: u64,
    /// Workload 1.
    pub uncontended: Vec<Uncontended>,
    /// Workloads 2 and 3.
    pub contended: Vec<Contended>,
    /// Workload 5.
    pub bus: Vec<BusRun>,
    /// Workload 5: one `publish` call against raw `XADD`.
    pub bus_publish: Option<PublishVsRaw>,
    /// Workload 6: semaphore fairness, per backend.
    pub semaphore: Vec<SemFair>,
    /// Workload 7: read-write lock against a mutex.
    pub rwlock: Option<RwRun>,
    /// Workload 8: hand-off with a short and a long queue.
    pub queue: Vec<QueueRun>,
    /// Workload 9: many waiters over many keys.
    pub waiters: Option<WaitersRun>,
    /// Module vs raw Redis, memory and expiry stall ([`crate::scale`]);
    /// none when `--only` left it out.
    pub scale: Option<Scale>,
    /// The etcd server of the run (version), or why etcd is not in it.
    pub etcd: String,
    /// Runs that failed or hung, with the reason.
    pub failures: Vec<String>,
    /// The goals, judged.
    pub goals: Vec<Goal>,
}

/// One goal of the issue, judged against this run.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    /// What is measured.
    pub what: String,
    /// The target.
    pub target: String,
    /// What was measured.
    pub measured: String,
    /// Whether the target was met (`None`: a figure was missing).
    pub met: Option<bool>,
}

impl Results {
    fn unc(&self, name: &str, tasks: usize) -> Option<&Uncontended> {
        self.uncontended
            .iter()
            .find(|u| u.contender == name && u.tasks == tasks)
    }

    fn con(&self, name: &str, tasks: usize, hold_us: u64) -> Option<&Contended> {
        self.contended
            .iter()
            .find(|c| c.contender == name && c.tasks == tasks && c.hold_us == hold_us)
    }

    /// The Redlock runs (any retry setting) with `prefix` for a shape.
    fn redlocks(&self, prefix: &str, tasks: usize, hold_us: u64) -> Vec<&Contended> {
        self.contended
            .iter()
            .filter(|c| c.contender.starts_with(prefix) && c.tasks == tasks && c.hold_us == hold_us)
            .collect()
    }

    /// Judges the goals of the issue; Redlock is always given its best
    /// figure over its retry settings.
    pub fn judge(&mut self) {
        let mut goals = Vec::new();
        if let Some(scale) = &self.scale {
            for (what, target, measured, met) in scale::goals(scale) {
                goals.push(Goal {
                    what,
                    target,
                    measured,
                    met: Some(met),
                });
            }
        }
        // Issue 13's goals.
        let unc_ratio = |a: &str, b: &str, tasks: usize| {
            self.unc(a, tasks)
                .zip(self.unc(b, tasks))
                .map(|(a, b)| a.cycles_per_sec / b.cycles_per_sec)
        };
        for tasks in [1, 64] {
            goals.push(ratio_goal(
                format!("uncontended, {tasks} task(s): module cycles/s vs raw SET NX PX"),
                unc_ratio(MODULE, RAW, tasks),
                0.9,
            ));
        }
        goals.push(ratio_goal(
            "uncontended, 64 tasks: module cycles/s vs rslock on 1 instance".into(),
            unc_ratio(MODULE, REDLOCK_1, 64),
            1.5,
        ));
        for tasks in [1, 64] {
            goals.push(ratio_goal(
                format!(
                    "uncontended, {tasks} task(s): module with the watchdog on cycles/s vs raw SET NX PX"
                ),
                unc_ratio(MODULE_WATCHDOG, RAW, tasks),
                0.85,
            ));
        }
        for tasks in [1, 64] {
            goals.push(ratio_goal(
                format!("uncontended, {tasks} task(s): Lua cycles/s vs raw SET NX PX"),
                unc_ratio(LUA, RAW, tasks),
                0.6,
            ));
        }
        let tasks = 8;
        let m0 = self.con(MODULE, tasks, 0);
        let best_rate0 = self
            .redlocks(REDLOCK_3, tasks, 0)
            .iter()
            .map(|c| c.acq_per_sec)
            .fold(None, max_opt);
        goals.push(ratio_goal(
            "contended, 1 key, 8 tasks, hold 0: module acquisitions/s vs Redlock x3 (best retry setting)"
                .into(),
            m0.zip(best_rate0).map(|(m, r)| m.acq_per_sec / r),
            3.0,
        ));
        let hold = 1000;
        let m = self.con(MODULE, tasks, hold);
        let r3 = self.redlocks(REDLOCK_3, tasks, hold);
        let best_max_wait = r3
            .iter()
            .map(|c| c.max_wait_us)
            .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.min(b))));
        let shape = "contended, 1 key, 8 tasks, hold 1 ms";
        goals.push(ratio_goal(
            format!("{shape}: module acquisitions/s vs 1/hold"),
            m.and_then(|m| m.of_limit),
            0.93,
        ));
        goals.push(ratio_goal(
            format!(
                "{shape}: module acquisitions/s vs the measured limit ({RAW_HANDOFF}, same harness)"
            ),
            m.zip(self.con(RAW_HANDOFF, tasks, hold))
                .filter(|(_, r)| r.acq_per_sec > 0.0)
                .map(|(m, r)| m.acq_per_sec / r.acq_per_sec),
            0.93,
        ));
        goals.push(Goal {
            what: format!("{shape}: module max wait vs Redlock x3 (best retry setting)"),
            target: "<= 1/50".into(),
            // In FIFO order every wait spans the holds of the others queued
            // in front: at least (tasks - 1) x hold, whatever Redlock does.
            measured: m.zip(best_max_wait).map_or("n/a".into(), |(m, r)| {
                format!(
                    "{} vs {} (1/{:.1}; FIFO floor {} x hold = {})",
                    us(m.max_wait_us),
                    us(r),
                    r / m.max_wait_us,
                    tasks - 1,
                    us((tasks - 1) as f64 * hold as f64)
                )
            }),
            met: m.zip(best_max_wait).map(|(m, r)| m.max_wait_us * 50.0 <= r),
        });
        goals.push(Goal {
            what: format!("{shape}: module Jain fairness index"),
            target: ">= 0.99".into(),
            measured: m.map_or("n/a".into(), |m| format!("{:.4}", m.jain)),
            met: m.map(|m| m.jain >= 0.99),
        });
        goals.push(Goal {
            what: format!("{shape}: module order violations"),
            target: "0".into(),
            measured: m.map_or("n/a".into(), |m| {
                format!(
                    "{} ({} with arrivals > 1 ms apart)",
                    m.order_violations, m.order_violations_1ms
                )
            }),
            met: m.map(|m| m.order_violations == 0),
        });
        goals.push(Goal {
            what: format!("{shape}: module hand-off p99"),
            target: "<= 1 ms".into(),
            measured: m.map_or("n/a".into(), |m| us(m.handoff.latency.p99_us)),
            met: m.map(|m| m.handoff.latency.samples > 0 && m.handoff.latency.p99_us <= 1000.0),
        });
        let flat = self
            .bus
            .iter()
            .find(|b| b.publishers == 1 && b.rate.is_none() && b.ack == AckMode::Queued);
        goals.push(Goal {
            what: "bus, 1 publisher flat out, 1 consumer (ack_queued each): all delivered within the run, acks applied".into(),
            target: "all".into(),
            measured: flat.map_or("n/a".into(), |b| {
                format!("{} / {}, {} pending after close", b.delivered, b.published, b.pending_after)
            }),
            met: flat.map(|b| b.delivered == b.published && b.pending_after == 0),
        });
        goals.push(Goal {
            what: "bus, 1 publisher flat out, 1 consumer (ack_queued each): end-to-end p99".into(),
            target: "<= 50 ms".into(),
            measured: flat.map_or("n/a".into(), |b| us(b.end_to_end.p99_us)),
            met: flat.map(|b| b.end_to_end.p99_us <= 50_000.0),
        });
        let raw = self.bus_publish.as_ref();
        goals.push(Goal {
            what: "bus, publish one per call vs raw XADD (one multiplexed connection)".into(),
            target: ">= 0.95x".into(),
            measured: raw.map_or("n/a".into(), |r| {
                format!(
                    "{:.2}x ({:.0} vs {:.0}/s)",
                    r.ratio, r.publish_per_sec, r.raw_per_sec
                )
            }),
            met: raw.map(|r| r.ratio >= 0.95),
        });
        self.issue11_goals(&mut goals);
        self.waiter_goals(&mut goals);
        self.goals = goals;
    }

    /// Issue 11's goals on workloads 6, 7 and 8.
    fn issue11_goals(&self, goals: &mut Vec<Goal>) {
        let sem = self.semaphore.iter().find(|s| s.contender == MODULE);
        let (tasks, limit, hold) = self.plan.semaphore;
        let shape = format!(
            "semaphore, {tasks} tasks, limit {limit}, hold {}",
            self::hold(hold.as_micros() as u64)
        );
        goals.push(Goal {
            what: format!("{shape}: module acquisitions/s vs limit/hold"),
            target: ">= 0.9x".into(),
            measured: sem.map_or("n/a".into(), |s| {
                format!(
                    "{:.2}x ({:.0} of {:.0}/s)",
                    s.of_limit,
                    s.acq_per_sec,
                    s.acq_per_sec / s.of_limit
                )
            }),
            met: sem.map(|s| s.of_limit >= 0.9),
        });
        goals.push(Goal {
            what: format!("{shape}: module Jain fairness index over tasks"),
            target: ">= 0.99".into(),
            measured: sem.map_or("n/a".into(), |s| format!("{:.4}", s.jain)),
            met: sem.map(|s| s.jain >= 0.99),
        });
        goals.push(Goal {
            what: format!(
                "{shape}: module FIFO order violations (by fence, arrivals > {MIN_GAP_US} µs apart)"
            ),
            target: "0".into(),
            measured: sem.map_or("n/a".into(), |s| {
                format!(
                    "{} ({} any gap, {} > 1 ms)",
                    s.order_violations_gap, s.order_violations, s.order_violations_1ms
                )
            }),
            met: sem.map(|s| s.order_violations_gap == 0),
        });
        let rw = self.rwlock.as_ref();
        let (readers, hold) = self.plan.rwlock;
        let shape = format!(
            "read-write lock, {readers} readers + 1 writer, hold {}",
            self::hold(hold.as_micros() as u64)
        );
        goals.push(ratio_goal(
            format!(
                "{shape}: acquisitions vs a mutex with {} tasks",
                readers + 1
            ),
            rw.map(|r| r.ratio),
            6.0,
        ));
        goals.push(Goal {
            what: format!("{shape}: the writer's max wait (one round of readers)"),
            target: rw.map_or("<= 2 x hold + 2 ms".into(), |r| {
                format!("<= {} (2 x hold + 2 ms)", us(r.writer_bound_us))
            }),
            measured: rw.map_or("n/a".into(), |r| {
                format!(
                    "{} (p99 {})",
                    us(r.writer_wait.max_us),
                    us(r.writer_wait.p99_us)
                )
            }),
            met: rw.map(|r| r.writes > 0 && r.writer_wait.max_us <= r.writer_bound_us),
        });
        let long = self.queue.iter().max_by_key(|q| q.waiters);
        let short = self.queue.iter().min_by_key(|q| q.waiters);
        goals.push(Goal {
            what: format!(
                "hand-off, {} waiters on one semaphore (limit 1): p99, release call to next grant",
                long.map_or(0, |q| q.waiters)
            ),
            target: "<= 1 ms".into(),
            measured: long.map_or("n/a".into(), |q| {
                let vs = short
                    .filter(|s| s.waiters < q.waiters)
                    .map_or(String::new(), |s| {
                        format!(" ({} waiters: {})", s.waiters, us(s.latency.p99_us))
                    });
                format!("{}{vs}", us(q.latency.p99_us))
            }),
            met: long.map(|q| q.latency.samples > 0 && q.latency.p99_us <= 1000.0),
        });
    }

    /// Issue 13's scale goals on workload 9.
    fn waiter_goals(&self, goals: &mut Vec<Goal>) {
        let w = self.waiters.as_ref();
        let (keys, n) = self.plan.waiters;
        let shape = format!("{n} waiters blocked over {keys} locks");
        goals.push(Goal {
            what: format!("{shape}: hand-off p99"),
            target: "<= 1 ms".into(),
            measured: w.map_or("n/a".into(), |w| us(w.handoff.p99_us)),
            met: w.map(|w| w.handoff.samples > 0 && w.handoff.p99_us <= 1000.0),
        });
        goals.push(Goal {
            what: format!("{shape}: server memory per waiter (its connection not counted)"),
            target: "<= 1024 bytes".into(),
            measured: w.map_or("n/a".into(), |w| {
                format!(
                    "{:.0} bytes (a connection: {:.0} bytes more; a blocked BLPOP: {:.0} bytes)",
                    w.memory.per_waiter, w.memory.per_connection, w.blpop.per_waiter
                )
            }),
            met: w.map(|w| w.memory.per_waiter <= 1024.0),
        });
        goals.push(Goal {
            what: format!("{shape}: longest PING round trip when all of them time out at once"),
            target: "<= 5 ms".into(),
            measured: w.map_or("n/a".into(), |w| {
                format!(
                    "{:.2} ms ({} of {} timed out; BLPOP: {:.2} ms)",
                    w.timeout.max_rtt_ms,
                    w.timeout.timed_out,
                    w.waiters,
                    w.blpop.timeout.max_rtt_ms
                )
            }),
            met: w.map(|w| {
                w.timeout.all_blocked
                    && w.timeout.timed_out == w.waiters as u64
                    && w.timeout.max_rtt_ms <= 5.0
            }),
        });
    }

    /// Workloads 6 to 9 as tables.
    fn semaphore_tables(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "\n## Semaphore: many tasks, one semaphore\n");
        if self.semaphore.is_empty() {
            let _ = writeln!(w, "Not measured in this run.");
        } else {
            let _ = writeln!(
                w,
                "Each task takes 1 permit, holds, releases, and comes back. Order violations: \
                 arrived first, granted later, grant order by fence (the server's order); all \
                 pairs / arrivals more than {MIN_GAP_US} µs apart / more than 1 ms apart.\n"
            );
            let _ = writeln!(
                w,
                "| contender | tasks | limit | hold | of limit/hold | acq/s | wait p50 | wait p99 | wait max | Jain | order violations | connections opened |"
            );
            let _ = writeln!(
                w,
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
            );
            for r in &self.semaphore {
                let _ = writeln!(
                    w,
                    "| {} | {} | {} | {} | {:.0}% | {:.0} | {} | {} | {} | {:.4} | {} / {} / {} | {} |",
                    r.contender,
                    r.tasks,
                    r.limit,
                    hold(r.hold_us),
                    r.of_limit * 100.0,
                    r.acq_per_sec,
                    us(r.wait.p50_us),
                    us(r.wait.p99_us),
                    us(r.wait.max_us),
                    r.jain,
                    r.order_violations,
                    r.order_violations_gap,
                    r.order_violations_1ms,
                    r.connections_opened
                );
            }
        }
        let _ = writeln!(w, "\n## Read-write lock vs mutex\n");
        match &self.rwlock {
            None => {
                let _ = writeln!(w, "Not measured in this run.");
            }
            Some(r) => {
                let _ = writeln!(
                    w,
                    "{} readers and 1 writer on one `rwlock`, then {} tasks on one `lock`, same \
                     client, hold {}, {:.0} s each. A writer that comes back at once takes every \
                     other turn under strict FIFO, which caps this shape near {:.1}x.\n",
                    r.readers,
                    r.readers + 1,
                    hold(r.hold_us),
                    r.secs,
                    (r.readers as f64 + 1.0) / 2.0
                );
                let _ = writeln!(
                    w,
                    "| reads | writes | mutex | x mutex | writer wait p50 | p99 | max | bound | reader wait p50 | p99 | max |"
                );
                let _ = writeln!(
                    w,
                    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
                );
                let _ = writeln!(
                    w,
                    "| {} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {} |",
                    r.reads,
                    r.writes,
                    r.mutex,
                    r.ratio,
                    us(r.writer_wait.p50_us),
                    us(r.writer_wait.p99_us),
                    us(r.writer_wait.max_us),
                    us(r.writer_bound_us),
                    us(r.reader_wait.p50_us),
                    us(r.reader_wait.p99_us),
                    us(r.reader_wait.max_us)
                );
            }
        }
        let _ = writeln!(w, "\n## Hand-off with a long queue\n");
        if self.queue.is_empty() {
            let _ = writeln!(w, "Not measured in this run.");
        } else {
            let _ = writeln!(
                w,
                "One semaphore of limit 1, module backend, through the client (one connection \
                 per wait); every granted waiter releases at once and queues again at the back, \
                 so the queue stays full. Latency: from the start of the holder's release call \
                 to the return of the next waiter's acquire call (client-side; it bounds the \
                 server's hand-off from above).\n"
            );
            let _ = writeln!(
                w,
                "| waiters | hand-offs/s | p50 | p99 | max | hand-offs | server µs per SEM.ACQUIRE / SEM.RELEASE | server CPU per hand-off | time to queue them |"
            );
            let _ = writeln!(
                w,
                "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
            );
            for q in &self.queue {
                let _ = writeln!(
                    w,
                    "| {} | {:.0} | {} | {} | {} | {} | {:.2} / {:.2} | {:.0} µs | {:.1} s |",
                    q.waiters,
                    q.per_sec,
                    us(q.latency.p50_us),
                    us(q.latency.p99_us),
                    us(q.latency.max_us),
                    q.latency.samples,
                    q.server_acquire_us,
                    q.server_release_us,
                    q.server_cpu_us,
                    q.queue_secs
                );
            }
        }
        let _ = writeln!(w, "\n## Many waiters over many locks\n");
        match &self.waiters {
            None => {
                let _ = writeln!(w, "Not measured in this run.");
            }
            Some(r) => {
                let m = &r.memory;
                let t = &r.timeout;
                let _ = writeln!(
                    w,
                    "{} waiters blocked over {} locks (`LOCK.ACQUIRE .. WAIT` on raw connections, \
                     one per waiter, plus one holder connection per lock: {} connections, opened \
                     in {:.1} s, waits blocked in {:.1} s).\n",
                    r.waiters, r.keys, r.connections, r.connect_secs, r.block_secs
                );
                let (b, bt) = (&r.blpop, &r.blpop.timeout);
                let _ = writeln!(
                    w,
                    "| measure | module (`LOCK.ACQUIRE .. WAIT`) | Redis itself (`BLPOP`, same shape) |"
                );
                let _ = writeln!(w, "| --- | ---: | ---: |");
                let _ = writeln!(
                    w,
                    "| `used_memory` per blocked waiter (blocked - idle) | {:.0} bytes | {:.0} bytes |",
                    m.per_waiter, b.per_waiter
                );
                let _ = writeln!(
                    w,
                    "| of which `mem_clients_normal` | {:.0} bytes | {:.0} bytes |",
                    m.per_waiter_clients, b.per_waiter_clients
                );
                let _ = writeln!(
                    w,
                    "| `used_memory` per idle connection (not counted above) | {:.0} bytes | |",
                    m.per_connection
                );
                let _ = writeln!(
                    w,
                    "| hand-off p50 / p99 / max (hold {} ms, {:.0} hand-offs/s, {:.0} s) | {} / {} / {} | |",
                    r.hold_ms,
                    r.handoffs_per_sec,
                    r.churn_secs,
                    us(r.handoff.p50_us),
                    us(r.handoff.p99_us),
                    us(r.handoff.max_us)
                );
                let _ = writeln!(
                    w,
                    "| server CPU per hand-off; the server's CPU / wall time | {:.0} µs; {:.0}% | |",
                    r.server_cpu_per_handoff_us,
                    r.server_busy * 100.0
                );
                let _ = writeln!(
                    w,
                    "| in the server (`INFO commandstats`): µs per `LOCK.RELEASE` / `LOCK.ACQUIRE` | {:.1} / {:.1} | |",
                    r.release_usec_per_call, r.acquire_usec_per_call
                );
                let _ = writeln!(
                    w,
                    "| all time out at once: max / p99 PING round trip | {:.2} ms / {:.2} ms ({} pings) | {:.2} ms / {:.2} ms ({} pings) |",
                    t.max_rtt_ms, t.p99_rtt_ms, t.pings, bt.max_rtt_ms, bt.p99_rtt_ms, bt.pings
                );
                let _ = writeln!(
                    w,
                    "| the server's CPU time from the deadline to the last reply | {:.0} ms | {:.0} ms |",
                    t.server_cpu_ms, bt.server_cpu_ms
                );
                let _ = writeln!(
                    w,
                    "| the same, every waiter blocked, before the deadline (baseline) | {:.2} ms | {:.2} ms |",
                    t.idle_max_rtt_ms, bt.idle_max_rtt_ms
                );
                let _ = writeln!(
                    w,
                    "| timed out / granted / all blocked before the deadline | {} / {} / {} | {} / {} / {} |",
                    t.timed_out, t.granted, t.all_blocked, bt.timed_out, bt.granted, bt.all_blocked
                );
                let _ = writeln!(
                    w,
                    "| deadline to the last timeout's reply | {:.1} ms | {:.1} ms |",
                    t.last_reply_ms, bt.last_reply_ms
                );
            }
        }
        s
    }

    /// The Markdown report.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "# baton benchmarks\n");
        let _ = writeln!(
            w,
            "Measured {} on {} ({} CPUs, {}), {}. Module: {}.\n",
            self.date,
            self.machine.cpu,
            self.machine.nproc,
            self.machine.kernel,
            self.machine.redis,
            self.module
        );
        let _ = writeln!(w, "Command: `{}`\n", self.command);
        if self.plan.quick {
            let _ = writeln!(
                w,
                "**Quick mode**: short runs for a smoke check; run without `--quick` for figures to quote.\n"
            );
        }
        let _ = writeln!(w, "{}", self.tables());
        let _ = writeln!(w, "{}", self.method());
        s
    }

    /// The goal, uncontended, contended and hand-off tables (also printed).
    pub fn tables(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "## Goals\n");
        let _ = writeln!(w, "| goal | target | measured | result |");
        let _ = writeln!(w, "| --- | --- | --- | --- |");
        for g in &self.goals {
            let verdict = match g.met {
                Some(true) => "met",
                Some(false) => "**missed**",
                None => "not measured",
            };
            let _ = writeln!(
                w,
                "| {} | {} | {} | {verdict} |",
                g.what, g.target, g.measured
            );
        }

        let _ = writeln!(w, "\n## Module vs raw Redis, memory, and expiry stall\n");
        match &self.scale {
            Some(scale) => {
                let _ = write!(w, "{}", scale::section(scale));
            }
            None => {
                let _ = writeln!(
                    w,
                    "Not measured in this run (`--only`; `--only scale` measures it)."
                );
            }
        }

        let _ = writeln!(
            w,
            "\n## Uncontended: acquire+release cycles, one key per task\n"
        );
        let _ = writeln!(
            w,
            "Ratio: cycles/s over `{RAW}` at the same concurrency, same run.\n"
        );
        let _ = writeln!(w, "| contender | tasks | x raw | cycles/s | p50 | p99 |");
        let _ = writeln!(w, "| --- | ---: | ---: | ---: | ---: | ---: |");
        for u in &self.uncontended {
            let ratio = self.unc(RAW, u.tasks).map_or("n/a".into(), |r| {
                format!("{:.2}", u.cycles_per_sec / r.cycles_per_sec)
            });
            let _ = writeln!(
                w,
                "| {} | {} | {ratio} | {:.0} | {} | {} |",
                u.contender,
                u.tasks,
                u.cycles_per_sec,
                us(u.latency.p50_us),
                us(u.latency.p99_us)
            );
        }

        let _ = writeln!(w, "\n## Contended: one key, fixed time\n");
        let _ = writeln!(
            w,
            "Ratios: acquisitions/s over the physical limit 1/hold, and over the best Redlock x3 \
             run of the same shape. `{RAW_HANDOFF}` is not a lock: one token in a list, \
             `BLPOP` by each task on its own connection, `LPUSH` back on a shared one: raw \
             Redis' own hand-off, measured by the same harness. Wait: from the start of the acquire call to the grant; max \
             counts waits still open at the end. Order violations: later arrival granted first \
             (all pairs / arrivals more than 1 ms apart).\n"
        );
        let _ = writeln!(
            w,
            "| contender | tasks | hold | of 1/hold | x redlock x3 | acq/s | wait p50 | wait p99 | wait max | Jain | order violations |"
        );
        let _ = writeln!(
            w,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for c in &self.contended {
            let limit = c
                .of_limit
                .map_or("-".into(), |f| format!("{:.0}%", f * 100.0));
            let vs = self
                .redlocks(REDLOCK_3, c.tasks, c.hold_us)
                .iter()
                .map(|r| r.acq_per_sec)
                .fold(None, max_opt)
                .filter(|r| *r > 0.0)
                .map_or("n/a".into(), |r| format!("{:.2}", c.acq_per_sec / r));
            let name = if c.stuck_tasks > 0 {
                format!("{} ({} task(s) hung)", c.contender, c.stuck_tasks)
            } else {
                c.contender.clone()
            };
            let _ = writeln!(
                w,
                "| {name} | {} | {} | {limit} | {vs} | {:.0} | {} | {} | {} | {:.3} | {} / {} |",
                c.tasks,
                hold(c.hold_us),
                c.acq_per_sec,
                us(c.wait.p50_us),
                us(c.wait.p99_us),
                us(c.max_wait_us),
                c.jain,
                c.order_violations,
                c.order_violations_1ms
            );
        }

        let _ = write!(w, "{}", self.etcd_table());

        let _ = writeln!(
            w,
            "\n## Hand-off: holder's release reply to the next waiter's grant\n"
        );
        let _ = writeln!(
            w,
            "Only hand-offs to a task already waiting count. `early`: the waiter saw its grant \
             before the holder saw its release reply (counted as 0).\n"
        );
        let _ = writeln!(
            w,
            "| contender | tasks | hold | p50 | p99 | hand-offs | early |"
        );
        let _ = writeln!(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        for c in &self.contended {
            let h = &c.handoff;
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {} |",
                c.contender,
                c.tasks,
                hold(c.hold_us),
                us(h.latency.p50_us),
                us(h.latency.p99_us),
                h.latency.samples,
                h.early
            );
        }
        let _ = writeln!(w, "\n## Bus: publish, one work-queue consumer (ack each)\n");
        if self.bus.is_empty() {
            let _ = writeln!(w, "Not measured in this run.");
        } else {
            let _ = writeln!(
                w,
                "| publishers | pace | consumer acks | published/s | publish p50 | publish p99 | end-to-end p50 | end-to-end p99 | ack call p50 | ack call p99 | delivered / published | pending after close |"
            );
            let _ = writeln!(
                w,
                "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
            );
            for b in &self.bus {
                let _ = writeln!(
                    w,
                    "| {} | {} | `{}` | {:.0} | {} | {} | {} | {} | {} | {} | {} / {} | {} |",
                    b.publishers,
                    b.rate.map_or("flat out".into(), |r| format!("{r}/s")),
                    b.ack.label(),
                    b.published_per_sec,
                    us(b.publish.p50_us),
                    us(b.publish.p99_us),
                    us(b.end_to_end.p50_us),
                    us(b.end_to_end.p99_us),
                    us(b.consumer_ack.p50_us),
                    us(b.consumer_ack.p99_us),
                    b.delivered,
                    b.published,
                    b.pending_after
                );
            }
        }
        if let Some(r) = &self.bus_publish {
            let _ = writeln!(
                w,
                "\nPublish alone (no consumer), one task, {} alternating rounds of {:.1} s each:\n\n\
                 | publisher | calls/s | p50 | p99 |\n| --- | ---: | ---: | ---: |\n\
                 | `bus.publish` | {:.0} | {} | {} |\n\
                 | raw `XADD` (one multiplexed redis-rs connection) | {:.0} | {} | {} |\n\n\
                 `bus.publish` / raw `XADD`: {:.2}x.",
                r.rounds,
                r.round_secs,
                r.publish_per_sec,
                us(r.publish.p50_us),
                us(r.publish.p99_us),
                r.raw_per_sec,
                us(r.raw.p50_us),
                us(r.raw.p99_us),
                r.ratio
            );
        }
        let _ = write!(w, "{}", self.semaphore_tables());
        if !self.failures.is_empty() {
            let _ = writeln!(w, "\n## Failed or hung runs\n");
            for f in &self.failures {
                let _ = writeln!(w, "- {f}");
            }
        }
        s
    }

    /// baton's module next to etcd, every shape both ran.
    fn etcd_table(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "\n## baton vs etcd\n");
        let _ = writeln!(w, "etcd: {}.\n", self.etcd);
        let mut rows = Vec::new();
        for e in self.uncontended.iter().filter(|u| u.contender == ETCD) {
            if let Some(m) = self.unc(MODULE, e.tasks) {
                rows.push((
                    format!("uncontended cycles/s, {} task(s)", e.tasks),
                    m.cycles_per_sec,
                    e.cycles_per_sec,
                ));
            }
        }
        for e in self.contended.iter().filter(|c| c.contender == ETCD) {
            if let Some(m) = self.con(MODULE, e.tasks, e.hold_us) {
                rows.push((
                    format!(
                        "contended acquisitions/s, {} tasks, hold {}",
                        e.tasks,
                        hold(e.hold_us)
                    ),
                    m.acq_per_sec,
                    e.acq_per_sec,
                ));
            }
        }
        if rows.is_empty() {
            let _ = writeln!(w, "No etcd figures in this run.");
            return s;
        }
        let _ = writeln!(w, "| workload | baton module | etcd | baton / etcd |");
        let _ = writeln!(w, "| --- | ---: | ---: | ---: |");
        for (what, m, e) in rows {
            let ratio = if e > 0.0 {
                format!("{:.0}x", m / e)
            } else {
                "n/a".into()
            };
            let _ = writeln!(w, "| {what} | {m:.0} | {e:.0} | {ratio} |");
        }
        s
    }

    fn method(&self) -> String {
        format!(
            "## How it was measured\n\n\
             - One process, one tokio runtime (multi-thread, 2 workers); every server is a \
             `redis-server` on 127.0.0.1 started by the benchmark (`baton_harness`), no \
             persistence. Warmup {warm:?} before each run, then {unc:?} per uncontended run \
             and {con:?} per contended run.\n\
             - `{RAW}`: `SET key token NX PX 10000`, then EVALSHA of \
             `if GET == token then DEL` (a correct single-instance lock), on one multiplexed \
             connection shared by all tasks. `raw SET NX PX + DEL` releases with a plain `DEL` \
             (not a safe release; the floor of two commands).\n\
             - baton: `baton_client` with `Backend::Module` or `Backend::Lua` on the same server, \
             ttl 10 s, watchdog off (no contender has one) except in `{MODULE_WATCHDOG}` \
             (the client's default: a renewal every ttl/3). Uncontended: `try_lock` (no wait); \
             contended: `lock` with a wait up to the end of the run (the module blocks the \
             waiter on the server; Lua waits for a pub/sub wake-up).\n\
             - Redlock: `rslock` 0.10 `LockManager::lock`, ttl 10 s, on 1 instance (the baton \
             server) and on 3 (the baton server and two plain ones), quorum 2 of 3. `default`: \
             rslock's defaults (3 tries, random 0..200 ms between them), called again until \
             granted; `tuned`: endless tries with a random 0..{tuned} ms delay (chosen by a \
             sweep of 2, 5, 10, 20 ms as Redlock x3's best rate at 8 tasks / hold 1 ms). \
             Goals compare with Redlock's best figure over both settings. The wait counts \
             from the first try.\n\
             - etcd: `etcd` from Debian's `etcd-server`, one member on 127.0.0.1 with a \
             data dir in a temp dir and its default fsync, started by the benchmark afresh \
             for each run (on one member kept throughout, the waits cut off at the end of \
             earlier runs left later runs with no grant at all); `etcd-client` 0.21, one session lease (ttl 60 s) per task, `lock(name, lease)` \
             and `unlock(key)` (etcd's lock service waits on the server; uncontended it grants \
             at once).\n\
             - Contended hold: a precise blocking pause of the holder (sleep + spin in \
             `block_in_place`). Arrival: the start of the acquire call; order violations count \
             pairs (a, b) with a arriving before b and b granted before a.\n\
             - Latencies are HDR histograms (3 significant digits) per task, merged. p50 / p99 \
             / max in µs or ms.\n\
             - Bus: `baton_client` `Client::bus()` on the baton server, one topic \
             (unbounded), 1 task calling `publish` in a loop, flat out or paced at 1000/s for the contended run time, one consumer \
             (`consume(..).block(50 ms)`) acking each message (`ack().await`, one round trip \
             each, or `ack_queued()`, sent many per `XACK` in the background and all applied \
             by `close()`: the pending count after close says so); end-to-end is from the start of \
             the `publish` call to the consumer's receipt; the consumer gets {grace:?} after the \
             end to catch up.\n\
             - Semaphore: `client.semaphore(key, limit)`, `acquire(1, ..)` with a wait up to \
             the end of the run, watchdog off, the hold as above. Order violations by fence \
             (see `benches/src/workloads/semaphore.rs`). Read-write lock: `client.rwlock(key)` \
             `read` / `write`, then `client.lock` with as many tasks; the writer's bound is \
             `2 x hold + 2 ms`: one hold of the readers granted before it, one more for a \
             reader whose grant raced its arrival, and round trips.\n\
             - Long queue: a dedicated server (`maxclients` {maxclients}, the process' \
             RLIMIT_NOFILE raised), a gate lease taken, every waiter queued behind it \
             (`SEM.INFO`), then measured for {queue:?}. Many waiters: the same server, raw \
             connections (so that the connections' own memory can be told apart), memory from \
             `INFO memory`, hand-off with each task holding {churn:?} then queueing again, and \
             a PING probe on its own thread and connection while every wait times out at one \
             common deadline (see `benches/src/workloads/waiters.rs`).\n\
             - Module vs raw Redis, memory and expiry stall: measured by `baton-bench` \
             on a server of its own before the workloads (the method is with its table).\n\
             - Raw figures: `benchmarks.json` next to this file.\n",
            warm = self.plan.warmup,
            unc = self.plan.uncontended,
            con = self.plan.contended,
            tuned = self.redlock_tuned_delay_ms,
            grace = crate::contenders::GRACE,
            maxclients = crate::workloads::queue::MAX_CLIENTS,
            queue = self.plan.queue,
            churn = CHURN_HOLD,
        )
    }
}

fn ratio_goal(what: String, ratio: Option<f64>, min: f64) -> Goal {
    Goal {
        what,
        target: format!(">= {min}x"),
        measured: ratio.map_or("n/a".into(), |r| format!("{r:.2}x")),
        met: ratio.map(|r| r >= min),
    }
}

fn max_opt(a: Option<f64>, b: f64) -> Option<f64> {
    Some(a.map_or(b, |a| a.max(b)))
}

/// Microseconds, shown in µs below 10 ms and in ms above.
fn us(v: f64) -> String {
    if v < 10_000.0 {
        format!("{v:.0} µs")
    } else {
        format!("{:.1} ms", v / 1000.0)
    }
}

fn hold(hold_us: u64) -> String {
    if hold_us == 0 {
        "0".into()
    } else {
        format!("{} ms", hold_us as f64 / 1000.0)
    }
}
