//! The fence counter: one per node, so every fence it issues is larger than
//! every fence it issued before, for any key.

/// Issues fences: strictly increasing, never reused.
///
/// A node keeps one counter for all its locks. Because every grant takes the
/// next number, fences of one key increase across release, expiry and deletion
/// without remembering anything per key.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FenceCounter {
    last: u64,
}

impl FenceCounter {
    /// A counter whose next fence is `last + 1`.
    pub const fn starting_after(last: u64) -> Self {
        Self { last }
    }

    /// The last fence issued (or observed); 0 when none.
    pub const fn last(&self) -> u64 {
        self.last
    }

    /// Issues the next fence.
    pub fn issue(&mut self) -> u64 {
        // Saturating: 2^64 grants are out of reach, but a forged floor (an
        // AOF edited by hand) must not wrap the counter back to small numbers.
        self.last = self.last.saturating_add(1);
        self.last
    }

    /// Raises the counter to at least `fence`, as a replica or an AOF replay
    /// does for every fence the primary issued.
    pub fn observe(&mut self, fence: u64) {
        self.last = self.last.max(fence);
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
}
