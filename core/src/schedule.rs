//! The expiry schedule: held locks ordered by deadline.
//!
//! An entry is keyed by `(deadline, fence)`. Fences are unique per node, so
//! the pair names one grant; a caller that renews or releases removes the old
//! pair, and a caller that finds a stale pair (its lock gone or re-granted)
//! checks the fence and drops it.

use std::collections::BTreeMap;

/// Deadlines (unix ms) of held locks, earliest first. `K` names the lock.
#[derive(Debug)]
pub struct ExpirySchedule<K> {
    entries: BTreeMap<(u64, u64), K>,
}

impl<K> Default for ExpirySchedule<K> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }
}

impl<K> ExpirySchedule<K> {
    /// Number of scheduled expiries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Schedules the grant `fence` of lock `key` to expire at `deadline`.
    pub fn insert(&mut self, deadline: u64, fence: u64, key: K) {
        self.entries.insert((deadline, fence), key);
    }

    /// Unschedules one grant.
    pub fn remove(&mut self, deadline: u64, fence: u64) -> Option<K> {
        self.entries.remove(&(deadline, fence))
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.entries.keys().next().map(|&(deadline, _)| deadline)
    }

    /// Removes and returns the earliest entry if its deadline is at or before
    /// `now`, as `(deadline, fence, key)`.
    pub fn pop_due(&mut self, now: u64) -> Option<(u64, u64, K)> {
        let entry = self.entries.first_entry()?;
        let (deadline, fence) = *entry.key();
        (deadline <= now).then(|| (deadline, fence, entry.remove()))
    }

    /// Lets `f` rewrite every entry's key in place (a database swap moves
    /// locks without touching their deadlines).
    pub fn for_each_key_mut(&mut self, f: impl FnMut(&mut K)) {
        self.entries.values_mut().for_each(f);
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_due_entries_earliest_first() {
        let mut schedule = ExpirySchedule::default();
        schedule.insert(30, 3, "c");
        schedule.insert(10, 1, "a");
        schedule.insert(20, 2, "b");
        assert_eq!(schedule.next_deadline(), Some(10));
        assert_eq!(schedule.pop_due(20), Some((10, 1, "a")));
        assert_eq!(schedule.pop_due(20), Some((20, 2, "b")));
        assert_eq!(schedule.pop_due(20), None);
        assert_eq!(schedule.len(), 1);
    }

    #[test]
    fn removed_entries_never_pop() {
        let mut schedule = ExpirySchedule::default();
        schedule.insert(10, 1, "a");
        assert_eq!(schedule.remove(10, 1), Some("a"));
        assert_eq!(schedule.pop_due(u64::MAX), None);
    }

    #[test]
    fn keys_can_be_rewritten_in_place() {
        let mut schedule = ExpirySchedule::default();
        schedule.insert(10, 1, 0);
        schedule.insert(20, 2, 1);
        schedule.for_each_key_mut(|db| *db = 1 - *db);
        assert_eq!(schedule.pop_due(20), Some((10, 1, 1)));
        assert_eq!(schedule.pop_due(20), Some((20, 2, 0)));
    }
}
