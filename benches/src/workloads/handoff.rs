//! Workload 3, hand-off latency: from the holder's release reply to the next
//! waiter's grant, taken from the records of a contended run.
//!
//! Only hand-offs to a task that was already waiting count (it arrived before
//! the release reply): otherwise the gap is idle time, not a hand-off. A
//! waiter can learn of its grant before the releaser gets its reply (the
//! module grants in the same step as the release); such hand-offs count as
//! 0 and are reported as `early`.

use serde::Serialize;

use super::contended::Acquisition;
use crate::stats::{Latencies, Summary};

/// Hand-off latency of one run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Handoff {
    /// Release reply to next grant, clamped at 0.
    pub latency: Summary,
    /// Hand-offs whose grant arrived before the release reply.
    pub early: u64,
}

/// Hand-offs among `acqs` (sorted by grant) whose grant lies in
/// `from..=to` ns.
pub fn from_acquisitions(acqs: &[Acquisition], from: i64, to: i64) -> Handoff {
    let mut lat = Latencies::default();
    let mut early = 0;
    for pair in acqs.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        if next.grant < from || next.grant > to || next.arrival >= prev.release {
            continue;
        }
        let gap = next.grant - prev.release;
        if gap <= 0 {
            early += 1;
        }
        lat.record_ns(gap.max(0) as u64);
    }
    Handoff {
        latency: lat.summary(),
        early,
    }
}
