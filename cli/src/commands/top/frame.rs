//! One refresh of `baton top`: each node's counters, their rates since the
//! last refresh, and the total over the nodes.

use std::collections::HashMap;
use std::time::SystemTime;

use tokio::time::Instant;

use super::source::Reading;
use crate::view::counters;

/// Counters by their `LOCK.STATS` names (see [`counters`]).
pub(crate) type Counters = [(&'static str, u64); 9];

/// The counters shown per second.
pub(crate) const RATED: [&str; 3] = ["grants", "releases", "expirations"];

/// One row: a node, or the total.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    /// `host:port`, or `total`.
    pub(crate) node: String,
    /// The counters, or the error that kept them from being read.
    pub(crate) counters: Result<Counters, String>,
    /// Per second since the last frame, for each of [`RATED`]; `None` on
    /// the first frame, or after the counters went back (a restart).
    pub(crate) rates: Option<[f64; 3]>,
}

impl Row {
    /// The value of counter `name`, when read.
    pub(crate) fn get(&self, name: &str) -> Option<u64> {
        self.counters.as_ref().ok().map(|c| value(c, name))
    }
}

/// A whole frame.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Frame {
    /// When it was read.
    pub(crate) at: SystemTime,
    /// One row per node, in order.
    pub(crate) rows: Vec<Row>,
    /// The sum over the rows that were read.
    pub(crate) total: Row,
    /// A problem with the whole view, shown above the rows.
    pub(crate) trouble: Option<String>,
}

/// Turns readings into frames, remembering the last counters of each node
/// for the rates.
#[derive(Debug, Default)]
pub(crate) struct Rater {
    last: HashMap<String, (Counters, Instant)>,
}

impl Rater {
    /// The frame for `readings` taken at `now`.
    pub(crate) fn frame(
        &mut self,
        readings: Vec<Reading>,
        now: Instant,
        trouble: Option<String>,
    ) -> Frame {
        let rows: Vec<Row> = readings
            .into_iter()
            .map(|r| {
                let counters = r.stats.map(|s| counters(&s));
                let rates = counters.as_ref().ok().and_then(|c| {
                    let (before, then) = self.last.get(&r.node)?;
                    rates(before, c, now.duration_since(*then).as_secs_f64())
                });
                if let Ok(c) = &counters {
                    self.last.insert(r.node.clone(), (*c, now));
                }
                Row {
                    node: r.node,
                    counters,
                    rates,
                }
            })
            .collect();
        self.last
            .retain(|node, _| rows.iter().any(|r| &r.node == node));
        let total = total(&rows);
        Frame {
            at: SystemTime::now(),
            rows,
            total,
            trouble,
        }
    }
}

/// Counter `name` of `c` (0 for a name it does not have).
fn value(c: &Counters, name: &str) -> u64 {
    c.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v)
}

fn rates(before: &Counters, now: &Counters, secs: f64) -> Option<[f64; 3]> {
    if secs <= 0.0 {
        return None;
    }
    let mut out = [0.0; 3];
    for (slot, name) in out.iter_mut().zip(RATED) {
        let delta = value(now, name).checked_sub(value(before, name))?;
        *slot = delta as f64 / secs;
    }
    Some(out)
}

/// The sum of the rows that were read; rates only when every row has them.
fn total(rows: &[Row]) -> Row {
    let read: Vec<&Counters> = rows
        .iter()
        .filter_map(|r| r.counters.as_ref().ok())
        .collect();
    let counters = match read.split_first() {
        None => Err("no node could be read".to_string()),
        Some((first, rest)) => {
            let mut sum = **first;
            for c in rest {
                for (slot, (_, v)) in sum.iter_mut().zip(c.iter()) {
                    slot.1 += v;
                }
            }
            Ok(sum)
        }
    };
    let rates = rows.iter().try_fold([0.0; 3], |mut acc, r| {
        for (a, v) in acc.iter_mut().zip(r.rates?) {
            *a += v;
        }
        Some(acc)
    });
    Row {
        node: "total".into(),
        counters,
        rates: rates.filter(|_| !rows.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use baton_client::Stats;

    use super::*;

    fn reading(node: &str, grants: u64, held: u64) -> Reading {
        Reading {
            node: node.into(),
            stats: Ok(Stats {
                grants,
                releases: grants.saturating_sub(held),
                held,
                ..Stats::default()
            }),
        }
    }

    #[test]
    fn rates_are_per_second_since_the_last_frame() {
        let mut rater = Rater::default();
        let t0 = Instant::now();
        let first = rater.frame(vec![reading("a", 10, 1), reading("b", 0, 0)], t0, None);
        assert_eq!(first.rows[0].rates, None, "no rates on the first frame");
        assert_eq!(first.total.get("grants"), Some(10));
        let next = rater.frame(
            vec![reading("a", 30, 2), reading("b", 5, 0)],
            t0 + Duration::from_secs(2),
            None,
        );
        assert_eq!(next.rows[0].rates, Some([10.0, 9.5, 0.0]));
        assert_eq!(next.rows[1].rates, Some([2.5, 2.5, 0.0]));
        assert_eq!(next.total.rates, Some([12.5, 12.0, 0.0]));
        assert_eq!(next.total.get("held"), Some(2));
    }

    #[test]
    fn counters_that_go_back_have_no_rate_and_errors_are_rows() {
        let mut rater = Rater::default();
        let t0 = Instant::now();
        rater.frame(vec![reading("a", 10, 0)], t0, None);
        let down = Reading {
            node: "b".into(),
            stats: Err("refused".into()),
        };
        let f = rater.frame(
            vec![reading("a", 3, 0), down],
            t0 + Duration::from_secs(1),
            None,
        );
        assert_eq!(f.rows[0].rates, None, "a restart resets the counters");
        assert_eq!(f.rows[1].counters, Err("refused".to_string()));
        assert_eq!(f.total.get("grants"), Some(3));
        assert_eq!(f.total.rates, None);
    }
}
