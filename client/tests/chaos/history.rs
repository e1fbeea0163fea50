//! The history of a chaos run and what it proves: every grant, release and
//! loss the workers saw, every write the fenced register took or refused,
//! every wait that ended badly and every fault the nemesis caused, checked
//! for the violations a lock service must never show (SPEC §9 "Failover").
//! Pure: no I/O, so every rule is unit-tested below.
//!
//! Times are `Instant`s of the one test process, so intervals from
//! different workers compare directly. A grant's hold is the interval from
//! the moment its `lock()` returned to the first of: its release was sent,
//! its loss was signalled, its proven validity ran out (the guard's own
//! bound, as [`LockGuard::valid_for`](baton_client::LockGuard::valid_for)
//! told it). Two holds of one key that overlap are two holders at once.
//!
//! Violations (must be 0 with durable acquire):
//! - **fence reissued**: two grants with one fence (one key; with
//!   [`FenceScope::Node`] also across keys, the module's fences being
//!   node-wide);
//! - **overlapping holds**: pairs of holds of one key that overlap in time;
//! - **fence went back**: a grant whose acquire was sent after another
//!   grant of its key had arrived, with a smaller fence;
//! - **hung waits**: `lock()` calls that did not return within their wait,
//!   the durable timeout and a grace.
//!
//! Everything else is counted, not judged: refused register writes (a stale
//! holder stopped by its fence: the fence doing its job), lost guards,
//! `NotAcquired`/`NotReplicated`, errors, and starved waits (a `NotAcquired`
//! while no recorded grant held the key: its holder was a ghost, e.g. a
//! grant whose reply a fault cut off, or the service lost the waiter).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

/// Over which set of grants a fence must be unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceScope {
    /// The module: one counter per node, so no two grants of any keys on
    /// one shard share a fence.
    Node,
    /// The Lua backend: one counter per lock, so only grants of one key
    /// must differ.
    Key,
}

/// One grant a worker received.
#[derive(Debug, Clone)]
pub struct Grant {
    pub worker: usize,
    pub key: String,
    pub fence: u64,
    /// When the acquire was sent.
    pub sent: Instant,
    /// When `lock()` returned it: the start of the hold.
    pub granted: Instant,
    /// When the hold ended: release sent, loss signalled, or validity over.
    pub ended: Instant,
    /// True when the hold ended by a loss (signal or validity) before the
    /// release was sent.
    pub lost: bool,
    /// Register writes under this grant: accepted, refused.
    pub accepted: u32,
    pub refused: u32,
    /// What the release answered: `Some(true)` released, `Some(false)` the
    /// lock was no longer this guard's, `None` it failed or timed out.
    pub released: Option<bool>,
    /// The release answered "not held" before the validity the guard
    /// proved when it sent the release had run out.
    pub gone_while_valid: bool,
}

/// A `lock()` call that did not end in a grant: `NotAcquired`, or hung.
#[derive(Debug, Clone)]
pub struct Wait {
    pub worker: usize,
    pub key: String,
    /// The wait it asked for (zero: one try).
    pub wait: Duration,
    pub sent: Instant,
    /// When it returned (`NotAcquired`) or was given up on (hung).
    pub returned: Instant,
}

/// One fault of the nemesis.
#[derive(Debug, Clone)]
pub struct Fault {
    pub kind: &'static str,
    pub started: Instant,
    /// When the topology was whole again (one primary, replicas in sync).
    pub settled: Instant,
    /// True when another server became the primary.
    pub promoted: bool,
}

/// Outcomes counted as they happened.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub attempts: usize,
    pub not_acquired: usize,
    /// Durable acquires whose replicas did not confirm in time.
    pub not_replicated: usize,
    /// Durable acquires whose lock was gone before `WAIT` (EXTEND 0).
    pub lost_at_acquire: usize,
    /// Other errors of `lock()`.
    pub errors: usize,
    /// Releases that found the lock no longer held by the guard.
    pub released_gone: usize,
    /// Of those, the ones answered while the guard still proved validity
    /// (as of the release's send): the server had lost a lock its holder
    /// counted on (a lost write: a grant or an extend that a failover
    /// dropped), with or without a second holder to show it as an overlap.
    pub released_gone_while_valid: usize,
    /// Releases that failed or timed out (the ttl frees the lock).
    pub release_errors: usize,
    pub register_accepted: usize,
    /// Writes the register refused: a stale holder stopped by its fence.
    pub register_refused: usize,
    pub register_errors: usize,
    /// The longest `lock()` call that returned.
    pub longest_call: Duration,
    /// The most a `lock()` call that returned took beyond its wait (and
    /// durable timeout): how much of the hung-wait grace was used.
    pub longest_overrun: Duration,
}

/// Everything a run recorded.
#[derive(Debug, Clone)]
pub struct History {
    pub start: Instant,
    pub scope: FenceScope,
    pub grants: Vec<Grant>,
    /// `lock()` calls that returned `NotAcquired`.
    pub timeouts: Vec<Wait>,
    /// `lock()` calls that did not return within their wait and a grace.
    pub hung: Vec<Wait>,
    pub faults: Vec<Fault>,
    pub counts: Counts,
    /// Errors by their message with digits blanked (ports, ids), counted.
    pub errors: BTreeMap<String, usize>,
}

/// What went wrong, counted over a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Violations {
    /// Grants that repeat an earlier grant's fence.
    pub fence_reissued: usize,
    /// Pairs of holds of one key that overlap in time.
    pub overlapping_holds: usize,
    /// Grants sent after another grant of the key had arrived, with a
    /// smaller fence than it.
    pub fence_went_back: usize,
    /// Waits that hung past their deadline (plus a grace).
    pub hung_waits: usize,
}

impl Violations {
    /// True when nothing went wrong.
    pub fn is_clean(&self) -> bool {
        *self == Violations::default()
    }

    pub fn total(&self) -> usize {
        self.fence_reissued + self.overlapping_holds + self.fence_went_back + self.hung_waits
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fence reissued {}, overlapping holds {}, fence went back {}, hung waits {}",
            self.fence_reissued, self.overlapping_holds, self.fence_went_back, self.hung_waits
        )
    }
}

/// One violation, with the grants (indices into [`History::grants`]) that
/// show it; a hung wait names its index in [`History::hung`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    FenceReissued {
        first: usize,
        again: usize,
    },
    Overlap {
        first: usize,
        second: usize,
        by: Duration,
    },
    FenceWentBack {
        larger: usize,
        smaller: usize,
    },
    HungWait {
        wait: usize,
    },
}

impl History {
    pub fn new(start: Instant, scope: FenceScope) -> Self {
        Self {
            start,
            scope,
            grants: Vec::new(),
            timeouts: Vec::new(),
            hung: Vec::new(),
            faults: Vec::new(),
            counts: Counts::default(),
            errors: BTreeMap::new(),
        }
    }

    /// Counts an error by its message, digits blanked so that one kind of
    /// error on different ports or ids counts once.
    pub fn error(&mut self, message: &str) {
        self.counts.errors += 1;
        let kind: String = message
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .take(120)
            .collect();
        *self.errors.entry(kind).or_default() += 1;
    }

    /// The violations in this history.
    pub fn check(&self) -> Violations {
        let mut v = Violations::default();
        for f in self.findings() {
            match f {
                Finding::FenceReissued { .. } => v.fence_reissued += 1,
                Finding::Overlap { .. } => v.overlapping_holds += 1,
                Finding::FenceWentBack { .. } => v.fence_went_back += 1,
                Finding::HungWait { .. } => v.hung_waits += 1,
            }
        }
        v
    }

    /// Every violation, with the grants that show it.
    pub fn findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        // Fence reissued: in the order grants arrived, any grant whose
        // fence an earlier one had.
        let mut order: Vec<usize> = (0..self.grants.len()).collect();
        order.sort_by_key(|&i| self.grants[i].granted);
        let mut seen: BTreeMap<(u64, &str), usize> = BTreeMap::new();
        for &i in &order {
            let g = &self.grants[i];
            let scope_key = match self.scope {
                FenceScope::Node => "",
                FenceScope::Key => g.key.as_str(),
            };
            if let Some(&first) = seen.get(&(g.fence, scope_key)) {
                out.push(Finding::FenceReissued { first, again: i });
            } else {
                seen.insert((g.fence, scope_key), i);
            }
        }
        for idx in self.by_key().values() {
            // Overlaps: holds sorted by start; a later hold that starts
            // before an earlier one ended overlaps it.
            for (n, &a) in idx.iter().enumerate() {
                let ga = &self.grants[a];
                for &b in &idx[n + 1..] {
                    let gb = &self.grants[b];
                    if gb.granted >= ga.ended {
                        break;
                    }
                    let by = ga.ended.min(gb.ended) - gb.granted;
                    out.push(Finding::Overlap {
                        first: a,
                        second: b,
                        by,
                    });
                }
            }
            // Fence went back: B was sent after A's grant arrived, so B
            // comes after A in real time and its fence must be larger. A
            // sweep over B in send order, keeping the largest fence of the
            // grants that had arrived by then.
            let mut by_sent = idx.clone();
            by_sent.sort_by_key(|&i| self.grants[i].sent);
            let mut arrived = 0;
            let mut largest: Option<usize> = None;
            for &b in &by_sent {
                let gb = &self.grants[b];
                while arrived < idx.len() && self.grants[idx[arrived]].granted < gb.sent {
                    let a = idx[arrived];
                    if largest.is_none_or(|l| self.grants[a].fence > self.grants[l].fence) {
                        largest = Some(a);
                    }
                    arrived += 1;
                }
                if let Some(a) = largest {
                    if gb.fence < self.grants[a].fence {
                        out.push(Finding::FenceWentBack {
                            larger: a,
                            smaller: b,
                        });
                    }
                }
            }
        }
        out.extend((0..self.hung.len()).map(|wait| Finding::HungWait { wait }));
        out
    }

    /// Grant indices per key, sorted by the start of their hold.
    fn by_key(&self) -> BTreeMap<&str, Vec<usize>> {
        let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, g) in self.grants.iter().enumerate() {
            by_key.entry(&g.key).or_default().push(i);
        }
        for idx in by_key.values_mut() {
            idx.sort_by_key(|&i| self.grants[i].granted);
        }
        by_key
    }

    /// Waits (not tries) that ran out while no recorded grant of their key
    /// was asked for or held (from its acquire's send to its hold's end):
    /// all of them, and those far from any fault (none began between 5 s
    /// before the wait and its end). Near a fault a ghost explains them (a
    /// grant whose reply the fault cut off holds until its ttl); far from
    /// faults the service lost a waiter.
    pub fn starved_waits(&self) -> (usize, usize) {
        // Per key: (sent, latest end of the grants sent so far), by send
        // time. A grant was out during [s, r] iff one sent before r ended
        // after s.
        let mut spans: BTreeMap<&str, Vec<(Instant, Instant)>> = BTreeMap::new();
        for g in &self.grants {
            spans.entry(&g.key).or_default().push((g.sent, g.ended));
        }
        for v in spans.values_mut() {
            v.sort();
            for i in 1..v.len() {
                v[i].1 = v[i].1.max(v[i - 1].1);
            }
        }
        let starved: Vec<&Wait> = self
            .timeouts
            .iter()
            .filter(|w| !w.wait.is_zero())
            .filter(|w| {
                let Some(v) = spans.get(w.key.as_str()) else {
                    return true;
                };
                match v.partition_point(|(sent, _)| *sent < w.returned) {
                    0 => true,
                    n => v[n - 1].1 <= w.sent,
                }
            })
            .collect();
        let near = Duration::from_secs(5);
        let far = starved
            .iter()
            .filter(|w| {
                !self
                    .faults
                    .iter()
                    .any(|f| f.started < w.returned && f.settled + near > w.sent)
            })
            .count();
        (starved.len(), far)
    }

    /// Faults in which another server became the primary.
    pub fn promotions(&self) -> usize {
        self.faults.iter().filter(|f| f.promoted).count()
    }

    /// Promotions after which a grant was sent (and arrived) before the
    /// next fault began, or before the run ended: the service came back.
    pub fn promotions_served(&self) -> usize {
        let mut faults: Vec<&Fault> = self.faults.iter().collect();
        faults.sort_by_key(|f| f.started);
        faults
            .iter()
            .enumerate()
            .filter(|(_, f)| f.promoted)
            .filter(|(i, f)| {
                let next = faults.get(i + 1).map(|n| n.started);
                self.grants
                    .iter()
                    .any(|g| g.sent >= f.settled && next.is_none_or(|n| g.granted < n))
            })
            .count()
    }

    /// Grants whose acquire was sent after the first promotion settled.
    pub fn grants_after_a_promotion(&self) -> usize {
        let Some(first) = self
            .faults
            .iter()
            .filter(|f| f.promoted)
            .map(|f| f.settled)
            .min()
        else {
            return 0;
        };
        self.grants.iter().filter(|g| g.sent >= first).count()
    }

    /// The fault that began last before `t`, if any.
    fn fault_before(&self, t: Instant) -> Option<&Fault> {
        self.faults
            .iter()
            .filter(|f| f.started <= t)
            .max_by_key(|f| f.started)
    }

    /// What the overlaps add up to: the size of the window in which two
    /// holders held one key.
    pub fn overlap_window(&self, findings: &[Finding]) -> OverlapWindow {
        let mut w = OverlapWindow::default();
        let mut faults: BTreeMap<Instant, &'static str> = BTreeMap::new();
        for f in findings {
            if let Finding::Overlap { second, by, .. } = f {
                w.pairs += 1;
                w.total += *by;
                w.longest = w.longest.max(*by);
                let fault = self.fault_before(self.grants[*second].granted);
                match fault {
                    Some(fault) => {
                        faults.insert(fault.started, fault.kind);
                    }
                    None => w.without_fault += 1,
                }
            }
        }
        for kind in faults.values() {
            *w.faults_by_kind.entry(kind).or_default() += 1;
        }
        w.faults = faults.len();
        w
    }

    /// Seconds since the start of the run, for excerpts.
    fn at(&self, t: Instant) -> String {
        format!(
            "{:.3}s",
            t.saturating_duration_since(self.start).as_secs_f64()
        )
    }

    fn describe(&self, i: usize) -> String {
        let g = &self.grants[i];
        format!(
            "worker {} key {} fence {}: sent {} granted {} ended {} ({}, release {}; {} writes accepted, {} refused)",
            g.worker,
            g.key,
            g.fence,
            self.at(g.sent),
            self.at(g.granted),
            self.at(g.ended),
            if g.lost { "lost" } else { "held" },
            match (g.released, g.gone_while_valid) {
                (Some(true), _) => "released",
                (Some(false), false) => "found it gone",
                (Some(false), true) => "found it gone while valid",
                (None, _) => "failed",
            },
            g.accepted,
            g.refused,
        )
    }

    /// Everything that happened between `from` and `to` (seconds since the
    /// start), in time order: faults, grants (by the start of their hold),
    /// waits that ran out or hung. For reading a run by hand.
    pub fn timeline(&self, from: Duration, to: Duration) -> String {
        let (from, to) = (self.start + from, self.start + to);
        let mut events: Vec<(Instant, String)> = Vec::new();
        for f in &self.faults {
            if f.settled >= from && f.started <= to {
                events.push((
                    f.started,
                    format!(
                        "fault {} until {}{}",
                        f.kind,
                        self.at(f.settled),
                        if f.promoted { " (promoted)" } else { "" }
                    ),
                ));
            }
        }
        for (i, g) in self.grants.iter().enumerate() {
            if g.ended >= from && g.sent <= to {
                events.push((g.granted, self.describe(i)));
            }
        }
        for (what, waits) in [("ran out", &self.timeouts), ("hung", &self.hung)] {
            for w in waits.iter().filter(|w| w.returned >= from && w.sent <= to) {
                events.push((
                    w.returned,
                    format!(
                        "wait {what}: worker {} key {} wait {:?} sent {}",
                        w.worker,
                        w.key,
                        w.wait,
                        self.at(w.sent)
                    ),
                ));
            }
        }
        events.sort_by_key(|(t, _)| *t);
        events
            .iter()
            .map(|(t, e)| format!("{:>9} {e}\n", self.at(*t)))
            .collect()
    }

    /// A finding as text: the grants involved and the faults around them.
    pub fn excerpt(&self, finding: &Finding) -> String {
        let mut s = String::new();
        let (what, grants): (String, Vec<usize>) = match finding {
            Finding::FenceReissued { first, again } => {
                ("fence reissued".into(), vec![*first, *again])
            }
            Finding::Overlap { first, second, by } => {
                (format!("holds overlap by {by:?}"), vec![*first, *second])
            }
            Finding::FenceWentBack { larger, smaller } => {
                ("fence went back".into(), vec![*larger, *smaller])
            }
            Finding::HungWait { wait } => {
                let w = &self.hung[*wait];
                let _ = writeln!(
                    s,
                    "hung wait: worker {} key {} sent {}, given up {}",
                    w.worker,
                    w.key,
                    self.at(w.sent),
                    self.at(w.returned)
                );
                (String::new(), vec![])
            }
        };
        if !what.is_empty() {
            let _ = writeln!(s, "{what}:");
        }
        for &i in &grants {
            let _ = writeln!(s, "  {}", self.describe(i));
        }
        let (from, to) = match finding {
            Finding::HungWait { wait } => (self.hung[*wait].sent, self.hung[*wait].returned),
            _ => (
                grants.iter().map(|&i| self.grants[i].sent).min().unwrap(),
                grants.iter().map(|&i| self.grants[i].ended).max().unwrap(),
            ),
        };
        let margin = Duration::from_secs(3);
        for f in &self.faults {
            if f.settled + margin >= from && f.started <= to + margin {
                let _ = writeln!(
                    s,
                    "  fault {} from {} to {}{}",
                    f.kind,
                    self.at(f.started),
                    self.at(f.settled),
                    if f.promoted {
                        " (promoted a replica)"
                    } else {
                        ""
                    }
                );
            }
        }
        s
    }
}

/// The overlaps of a run, summed up.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OverlapWindow {
    pub pairs: usize,
    pub total: Duration,
    pub longest: Duration,
    /// Distinct faults that the overlaps followed (the last fault begun
    /// before the second grant arrived).
    pub faults: usize,
    pub faults_by_kind: BTreeMap<&'static str, usize>,
    /// Overlaps with no fault before them.
    pub without_fault: usize,
}

/// One column of the summary table: a run's label, length and history.
#[derive(Debug)]
pub struct Column<'a> {
    pub label: String,
    pub elapsed: Duration,
    pub history: &'a History,
}

/// The markdown summary table of one or more runs, a column each.
pub fn table(columns: &[Column<'_>]) -> String {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, f: &dyn Fn(&History, Duration) -> String| {
        rows.push((
            name.to_owned(),
            columns.iter().map(|c| f(c.history, c.elapsed)).collect(),
        ));
    };
    let violations = |h: &History| h.check();
    row("run time", &|_, e| format!("{:.0} s", e.as_secs_f64()));
    row("faults", &|h, _| h.faults.len().to_string());
    row("faults by kind", &|h, _| {
        let mut by: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &h.faults {
            *by.entry(f.kind).or_default() += 1;
        }
        by.iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    row("promotions (failovers)", &|h, _| h.promotions().to_string());
    row("promotions followed by a grant", &|h, _| {
        h.promotions_served().to_string()
    });
    row("lock() calls", &|h, _| h.counts.attempts.to_string());
    row("grants", &|h, _| h.grants.len().to_string());
    row("grants after the first promotion", &|h, _| {
        h.grants_after_a_promotion().to_string()
    });
    row("not acquired (wait ran out)", &|h, _| {
        h.counts.not_acquired.to_string()
    });
    row("not replicated (durable)", &|h, _| {
        h.counts.not_replicated.to_string()
    });
    row("lost at acquire (EXTEND 0)", &|h, _| {
        h.counts.lost_at_acquire.to_string()
    });
    row("errors", &|h, _| h.counts.errors.to_string());
    row("guards lost before release", &|h, _| {
        h.grants.iter().filter(|g| g.lost).count().to_string()
    });
    row(
        "releases that found the lock gone: all / guard still valid",
        &|h, _| {
            format!(
                "{} / {}",
                h.counts.released_gone, h.counts.released_gone_while_valid
            )
        },
    );
    row("releases failed or timed out", &|h, _| {
        h.counts.release_errors.to_string()
    });
    row("register writes accepted", &|h, _| {
        h.counts.register_accepted.to_string()
    });
    row("register writes refused (stale fence)", &|h, _| {
        h.counts.register_refused.to_string()
    });
    row("starved waits: all / far from faults", &|h, _| {
        let (all, far) = h.starved_waits();
        format!("{all} / {far}")
    });
    row("longest lock() call / beyond its wait", &|h, _| {
        format!(
            "{} ms / {} ms",
            h.counts.longest_call.as_millis(),
            h.counts.longest_overrun.as_millis()
        )
    });
    row("**fence reissued**", &|h, _| {
        violations(h).fence_reissued.to_string()
    });
    row("**overlapping holds**", &|h, _| {
        violations(h).overlapping_holds.to_string()
    });
    row("**fence went back**", &|h, _| {
        violations(h).fence_went_back.to_string()
    });
    row("**hung waits**", &|h, _| {
        violations(h).hung_waits.to_string()
    });
    row("overlap: total / longest", &|h, _| {
        let w = h.overlap_window(&h.findings());
        format!("{} ms / {} ms", w.total.as_millis(), w.longest.as_millis())
    });
    row("faults followed by an overlap", &|h, _| {
        let w = h.overlap_window(&h.findings());
        let mut s = w.faults.to_string();
        if !w.faults_by_kind.is_empty() {
            let kinds: Vec<String> = w
                .faults_by_kind
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = write!(s, " ({})", kinds.join(", "));
        }
        s
    });
    let mut out = String::new();
    let labels: Vec<&str> = columns.iter().map(|c| c.label.as_str()).collect();
    let _ = writeln!(out, "| | {} |", labels.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(columns.len()));
    for (name, cells) in rows {
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A grant of `key` sent 1 ms before `from_ms`, held from `from_ms` to
    /// `to_ms` after `t`.
    fn grant(key: &str, fence: u64, t: Instant, from_ms: u64, to_ms: u64) -> Grant {
        Grant {
            worker: 0,
            key: key.into(),
            fence,
            sent: t + MS * from_ms.saturating_sub(1) as u32,
            granted: t + MS * from_ms as u32,
            ended: t + MS * to_ms as u32,
            lost: false,
            accepted: 1,
            refused: 0,
            released: Some(true),
            gone_while_valid: false,
        }
    }

    fn history(t: Instant, scope: FenceScope, grants: Vec<Grant>) -> History {
        History {
            grants,
            ..History::new(t, scope)
        }
    }

    fn fault(t: Instant, kind: &'static str, from_ms: u32, to_ms: u32, promoted: bool) -> Fault {
        Fault {
            kind,
            started: t + MS * from_ms,
            settled: t + MS * to_ms,
            promoted,
        }
    }

    #[test]
    fn a_clean_history_has_no_violations() {
        let t = Instant::now();
        let h = history(
            t,
            FenceScope::Node,
            vec![
                grant("a", 1, t, 0, 10),
                // Starts as the first ends: back to back, no overlap.
                grant("a", 2, t, 10, 20),
                grant("b", 3, t, 5, 30),
            ],
        );
        assert!(h.check().is_clean(), "{}", h.check());
        assert!(h.findings().is_empty());
    }

    #[test]
    fn each_violation_is_counted() {
        let t = Instant::now();
        let mut h = history(
            t,
            FenceScope::Node,
            vec![
                grant("a", 5, t, 0, 10),
                // Overlaps the first and has a smaller fence, sent after it.
                grant("a", 4, t, 5, 15),
                // Same fence as another key's grant.
                grant("b", 5, t, 0, 10),
            ],
        );
        h.hung = vec![
            Wait {
                worker: 1,
                key: "a".into(),
                wait: Duration::ZERO,
                sent: t,
                returned: t + MS * 20,
            };
            2
        ];
        let v = h.check();
        assert_eq!(
            v,
            Violations {
                fence_reissued: 1,
                overlapping_holds: 1,
                fence_went_back: 1,
                hung_waits: 2,
            }
        );
        assert_eq!(v.total(), 5);
        assert!(h.findings().contains(&Finding::Overlap {
            first: 0,
            second: 1,
            by: MS * 5
        }));
    }

    #[test]
    fn fences_of_other_keys_may_repeat_only_with_per_key_counters() {
        let t = Instant::now();
        let grants = vec![grant("a", 7, t, 0, 10), grant("b", 7, t, 1, 10)];
        let node = history(t, FenceScope::Node, grants.clone());
        assert_eq!(node.check().fence_reissued, 1);
        let key = history(t, FenceScope::Key, grants);
        assert!(key.check().is_clean(), "{}", key.check());
        let again = history(
            t,
            FenceScope::Key,
            vec![grant("a", 7, t, 0, 10), grant("a", 7, t, 20, 30)],
        );
        assert_eq!(again.check().fence_reissued, 1);
    }

    #[test]
    fn concurrent_acquires_may_get_fences_in_either_order() {
        let t = Instant::now();
        // B was sent before A's grant arrived: they raced, either order is
        // fine. C was sent after both arrived, with a fence below A's.
        let mut a = grant("k", 10, t, 5, 8);
        a.sent = t;
        let mut b = grant("k", 9, t, 9, 12);
        b.sent = t + MS * 2;
        let c = grant("k", 8, t, 20, 25);
        let h = history(t, FenceScope::Key, vec![a, b, c]);
        let found = h.findings();
        assert_eq!(
            found,
            vec![Finding::FenceWentBack {
                larger: 0,
                smaller: 2
            }]
        );
    }

    #[test]
    fn every_pair_of_overlapping_holds_counts() {
        let t = Instant::now();
        let h = history(
            t,
            FenceScope::Key,
            vec![
                grant("k", 1, t, 0, 100),
                grant("k", 2, t, 10, 20),
                grant("k", 3, t, 30, 40),
                // Another key: never overlaps with k.
                grant("j", 4, t, 0, 100),
            ],
        );
        assert_eq!(h.check().overlapping_holds, 2);
        let w = h.overlap_window(&h.findings());
        assert_eq!((w.pairs, w.total, w.longest), (2, MS * 20, MS * 10));
        assert_eq!(w.without_fault, 2);
    }

    #[test]
    fn overlaps_are_put_down_to_the_fault_before_them() {
        let t = Instant::now();
        let mut h = history(
            t,
            FenceScope::Key,
            vec![grant("k", 1, t, 0, 100), grant("k", 2, t, 50, 60)],
        );
        h.faults = vec![
            fault(t, "kill", 10, 40, true),
            fault(t, "pause", 70, 80, false),
        ];
        let w = h.overlap_window(&h.findings());
        assert_eq!(w.faults, 1);
        assert_eq!(w.faults_by_kind.get("kill"), Some(&1));
        let text = h.excerpt(&h.findings()[0]);
        assert!(text.contains("holds overlap by 10ms"), "{text}");
        assert!(text.contains("fault kill from 0.010s"), "{text}");
    }

    #[test]
    fn a_wait_is_starved_when_no_recorded_grant_held_its_key() {
        let t = Instant::now();
        let mut h = history(
            t,
            FenceScope::Key,
            vec![grant("k", 1, t, 0, 100), grant("k", 2, t, 300, 400)],
        );
        let wait = |key: &str, from: u32, to: u32| Wait {
            worker: 1,
            key: key.into(),
            wait: Duration::from_secs(1),
            sent: t + MS * from,
            returned: t + MS * to,
        };
        h.timeouts = vec![
            // Overlaps the first hold: it was busy.
            wait("k", 50, 150),
            // Between the holds: nobody held k.
            wait("k", 150, 250),
            // Overlaps the second grant's acquire.
            wait("k", 250, 300),
            // A key never granted.
            wait("x", 0, 10),
            // A try, not a wait: not counted.
            Wait {
                wait: Duration::ZERO,
                ..wait("x", 0, 10)
            },
        ];
        assert_eq!(h.starved_waits(), (2, 2));
        // A fault shortly before the second: only the first is far from it.
        h.faults = vec![fault(t, "kill", 5, 6, false)];
        assert_eq!(h.starved_waits(), (2, 0));
    }

    #[test]
    fn promotions_count_as_served_when_a_grant_followed_before_the_next_fault() {
        let t = Instant::now();
        let mut h = history(
            t,
            FenceScope::Node,
            vec![grant("k", 1, t, 0, 10), grant("k", 2, t, 600, 700)],
        );
        h.faults = vec![
            // No grant between its end and the next fault.
            fault(t, "kill", 100, 200, true),
            fault(t, "pause", 300, 400, true),
            // Not a promotion.
            fault(t, "client-kill", 800, 810, false),
        ];
        assert_eq!(h.promotions(), 2);
        assert_eq!(h.promotions_served(), 1);
        assert_eq!(h.grants_after_a_promotion(), 1);
    }

    #[test]
    fn errors_are_grouped_by_their_message_without_digits() {
        let t = Instant::now();
        let mut h = History::new(t, FenceScope::Node);
        h.error("Connection refused (os error 111) 127.0.0.1:7001");
        h.error("Connection refused (os error 111) 127.0.0.1:7002");
        assert_eq!(h.counts.errors, 2);
        assert_eq!(h.errors.len(), 1);
    }

    #[test]
    fn the_table_has_a_column_per_run_and_the_violation_rows() {
        let t = Instant::now();
        let clean = history(t, FenceScope::Node, vec![grant("a", 1, t, 0, 10)]);
        let bad = history(
            t,
            FenceScope::Node,
            vec![grant("a", 1, t, 0, 10), grant("a", 2, t, 5, 15)],
        );
        let text = table(&[
            Column {
                label: "durable".into(),
                elapsed: Duration::from_secs(20),
                history: &clean,
            },
            Column {
                label: "not durable".into(),
                elapsed: Duration::from_secs(20),
                history: &bad,
            },
        ]);
        assert!(text.starts_with("| | durable | not durable |"), "{text}");
        assert!(text.contains("| **overlapping holds** | 0 | 1 |"), "{text}");
        assert!(
            text.contains("| overlap: total / longest | 0 ms / 0 ms | 5 ms / 5 ms |"),
            "{text}"
        );
        assert!(text.contains("| run time | 20 s | 20 s |"), "{text}");
    }
}
