//! The fence counter: one per node, so every fence it issues is larger than
//! every fence it issued before, for any key.
//!
//! A fence is `max(last + 1, clock)`, where `clock` is a wall-clock reading in
//! microseconds that the caller hands in before it acts ([`FenceCounter::tick`]).
//! The saved counter alone would go back after a crash that lost the last
//! save (RDB only, or no persistence at all); the clock does not, unless the
//! wall clock itself goes back. Microseconds since 1970 stay below 2^53
//! ([`MAX_FENCE`]) until the year 2255, so JSON and JavaScript readers see
//! every fence exactly.

/// The largest fence a node accepts from outside (RDB, RESTORE, replication):
/// 2^53 - 1, the largest integer a double holds exactly.
pub const MAX_FENCE: u64 = (1 << 53) - 1;

/// How far ahead of this node's clock an outside fence may be: about 1.1
/// years of microseconds. Counters run ahead of their clock only by bursts of
/// more than one grant per microsecond, and clocks of healthy nodes agree to
/// within seconds, so a fence further ahead is forged, and accepting it would
/// use up the space below [`MAX_FENCE`].
pub const MAX_FENCE_LEAD: u64 = 1 << 45;

/// Issues fences: strictly increasing, never reused.
///
/// A node keeps one counter for all its locks. Because every grant takes the
/// next number, fences of one key increase across release, expiry and deletion
/// without remembering anything per key.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FenceCounter {
    last: u64,
    /// The latest clock reading handed in (µs); the floor of the next fence.
    clock: u64,
}

impl FenceCounter {
    /// A counter whose next fence is `last + 1` (with no clock reading yet).
    pub const fn starting_after(last: u64) -> Self {
        Self { last, clock: 0 }
    }

    /// The last fence issued (or observed); 0 when none.
    pub const fn last(&self) -> u64 {
        self.last
    }

    /// Hands in a wall-clock reading in microseconds: the next fence is at
    /// least this. A reading older than an earlier one is ignored, so a stale
    /// or missing reading only weakens the floor, never the order.
    pub fn tick(&mut self, clock_us: u64) {
        self.clock = self.clock.max(clock_us);
    }

    /// Issues the next fence.
    pub fn issue(&mut self) -> u64 {
        // Saturating: 2^64 grants are out of reach, and outside fences are
        // bounded by `accepts`.
        self.last = self.last.saturating_add(1).max(self.clock);
        self.last
    }

    /// Raises the counter to at least `fence`, as a replica or an AOF replay
    /// does for every fence the primary issued.
    pub fn observe(&mut self, fence: u64) {
        self.last = self.last.max(fence);
    }

    /// True when `fence` may come from outside (a loaded, restored or
    /// replicated holder): `1..=MAX_FENCE`, and not more than
    /// [`MAX_FENCE_LEAD`] ahead of both this counter and its clock.
    pub fn accepts(&self, fence: u64) -> bool {
        let horizon = self.last.max(self.clock).saturating_add(MAX_FENCE_LEAD);
        (1..=MAX_FENCE.min(horizon)).contains(&fence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_strictly_increasing_fences() {
        let mut counter = FenceCounter::default();
        assert_eq!(counter.issue(), 1);
        assert_eq!(counter.issue(), 2);
        assert_eq!(counter.last(), 2);
    }

    #[test]
    fn observe_only_raises() {
        let mut counter = FenceCounter::starting_after(10);
        counter.observe(5);
        assert_eq!(counter.issue(), 11);
        counter.observe(40);
        assert_eq!(counter.issue(), 41);
    }

    #[test]
    fn the_clock_is_a_floor_that_never_lowers_a_fence() {
        let mut counter = FenceCounter::starting_after(3);
        counter.tick(1_000);
        assert_eq!(counter.issue(), 1_000);
        // Two grants in one microsecond: the counter moves past the clock.
        assert_eq!(counter.issue(), 1_001);
        // A clock that went back is ignored.
        counter.tick(500);
        assert_eq!(counter.issue(), 1_002);
        counter.tick(2_000);
        assert_eq!(counter.issue(), 2_000);
    }

    #[test]
    fn a_restart_that_lost_the_counter_still_issues_larger_fences() {
        let mut before = FenceCounter::default();
        before.tick(5_000);
        let issued = [before.issue(), before.issue(), before.issue()];
        // The saved counter was older than the last grants; the clock moved on.
        let mut after = FenceCounter::starting_after(1);
        after.tick(5_010);
        assert!(issued.iter().all(|&f| after.issue() > f));
    }

    #[test]
    fn outside_fences_are_bounded() {
        let mut counter = FenceCounter::default();
        counter.tick(1_000_000);
        assert!(!counter.accepts(0));
        assert!(counter.accepts(1));
        assert!(counter.accepts(1_000_000 + MAX_FENCE_LEAD));
        assert!(!counter.accepts(1_000_000 + MAX_FENCE_LEAD + 1));
        assert!(!counter.accepts(u64::MAX));
        counter.tick(MAX_FENCE);
        assert!(counter.accepts(MAX_FENCE));
        assert!(!counter.accepts(MAX_FENCE + 1));
    }
}
