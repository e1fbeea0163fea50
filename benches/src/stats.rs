//! Statistics over what the workloads record: latency histograms, Jain's
//! fairness index, order violations (inversions of arrival and grant), and
//! the median used for ratios of repeated rounds.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency a histogram tracks: 10 minutes, far above any bounded run.
const MAX_NS: u64 = 600_000_000_000;

/// A latency histogram in nanoseconds (HDR, 3 significant figures).
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, MAX_NS, 3).expect("valid histogram bounds"))
    }
}

impl Latencies {
    /// Records one latency (clamped to 1 ns ..= 10 min).
    pub fn record(&mut self, d: Duration) {
        self.record_ns(d.as_nanos() as u64);
    }

    /// Records one latency given in nanoseconds.
    pub fn record_ns(&mut self, ns: u64) {
        self.0.saturating_record(ns.clamp(1, MAX_NS));
    }

    /// Adds another histogram's samples (per-task histograms are merged).
    pub fn merge(&mut self, other: &Latencies) {
        self.0.add(&other.0).expect("same bounds");
    }

    /// How many samples.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// p50, p99 and max, in microseconds.
    pub fn summary(&self) -> Summary {
        if self.0.is_empty() {
            return Summary::default();
        }
        let us = |ns: u64| ns as f64 / 1_000.0;
        Summary {
            samples: self.0.len(),
            p50_us: us(self.0.value_at_quantile(0.50)),
            p99_us: us(self.0.value_at_quantile(0.99)),
            max_us: us(self.0.max()),
            mean_us: self.0.mean() / 1_000.0,
        }
    }
}

/// Percentiles of one latency distribution, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    /// Number of samples.
    pub samples: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Largest sample.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

/// Jain's fairness index of per-task shares: `(Σx)² / (n·Σx²)`, 1 when all
/// tasks got the same, `1/n` when one task got everything. 1 for no data.
pub fn jain(shares: &[u64]) -> f64 {
    let n = shares.len() as f64;
    let sum: f64 = shares.iter().map(|&x| x as f64).sum();
    let sq: f64 = shares.iter().map(|&x| (x as f64) * (x as f64)).sum();
    if sq == 0.0 {
        1.0
    } else {
        sum * sum / (n * sq)
    }
}

/// Order violations among acquisitions given as `(arrival, grant)` times (ns
/// since the run started): pairs where `a` arrived more than `min_gap_ns`
/// before `b` and yet `b` was granted first. Such waits overlapped (b arrived
/// before its own grant, hence before a's), so each pair is a later arrival
/// served before an earlier one. O(n log n) with a Fenwick tree.
pub fn order_violations(acqs: &[(u64, u64)], min_gap_ns: u64) -> u64 {
    let mut by_arrival: Vec<(u64, u64)> = acqs.to_vec();
    by_arrival.sort_unstable();
    // Grant ranks (1-based) for the Fenwick tree.
    let mut grants: Vec<u64> = by_arrival.iter().map(|&(_, g)| g).collect();
    grants.sort_unstable();
    grants.dedup();
    let rank = |g: u64| grants.partition_point(|&x| x < g) + 1;
    let mut tree = Fenwick::new(grants.len());
    let mut inserted = 0u64;
    let mut next = 0usize;
    let mut violations = 0u64;
    for &(arrival_b, grant_b) in &by_arrival {
        // Insert every `a` that arrived more than `min_gap_ns` before `b`.
        while next < by_arrival.len() && by_arrival[next].0.saturating_add(min_gap_ns) < arrival_b {
            tree.add(rank(by_arrival[next].1));
            inserted += 1;
            next += 1;
        }
        // Those of them granted after `b`.
        violations += inserted - tree.prefix(rank(grant_b));
    }
    violations
}

/// A Fenwick (binary indexed) tree of counts over ranks `1..=n`.
struct Fenwick(Vec<u64>);

impl Fenwick {
    fn new(n: usize) -> Self {
        Self(vec![0; n + 1])
    }

    fn add(&mut self, mut i: usize) {
        while i < self.0.len() {
            self.0[i] += 1;
            i += i & i.wrapping_neg();
        }
    }

    /// How many were added with rank `<= i`.
    fn prefix(&self, mut i: usize) -> u64 {
        let mut s = 0;
        while i > 0 {
            s += self.0[i];
            i -= i & i.wrapping_neg();
        }
        s
    }
}

/// The median of `values` (the mean of the middle two for an even count;
/// NaN for none).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_bounds() {
        assert_eq!(jain(&[5, 5, 5, 5]), 1.0);
        assert!((jain(&[8, 0, 0, 0]) - 0.25).abs() < 1e-12);
        assert_eq!(jain(&[]), 1.0);
    }

    #[test]
    fn violations_fifo_is_zero() {
        let acqs = [(0, 10), (1, 20), (2, 30), (3, 40)];
        assert_eq!(order_violations(&acqs, 0), 0);
    }

    #[test]
    fn violations_counts_pairs() {
        // Arrived 0,1,2; granted in order 2,1,0: three inverted pairs.
        let acqs = [(0, 30), (1, 20), (2, 10)];
        assert_eq!(order_violations(&acqs, 0), 3);
        // With a gap of 1 only (0, 2) is more than 1 apart.
        assert_eq!(order_violations(&acqs, 1), 1);
    }

    #[test]
    fn violations_matches_brute_force() {
        let mut acqs = Vec::new();
        let mut x: u64 = 7;
        for _ in 0..300 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let a = (x >> 33) % 1000;
            let g = a + (x >> 13) % 500;
            acqs.push((a, g));
        }
        for gap in [0, 5, 100] {
            let mut brute = 0;
            for &(aa, ga) in &acqs {
                for &(ab, gb) in &acqs {
                    if aa + gap < ab && gb < ga {
                        brute += 1;
                    }
                }
            }
            assert_eq!(order_violations(&acqs, gap), brute, "gap {gap}");
        }
    }

    #[test]
    fn latencies_summary() {
        let mut l = Latencies::default();
        for us in 1..=100 {
            l.record(Duration::from_micros(us));
        }
        let s = l.summary();
        assert_eq!(s.samples, 100);
        assert!((s.p50_us - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.max_us - 100.0).abs() < 0.1, "{s:?}");
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
