//! Wait on a condition with a deadline, never sleep and hope.

use std::thread;
use std::time::{Duration, Instant};

/// Polls `cond` every millisecond until it holds or `timeout` has passed.
/// Returns whether it held. The last check is made after the deadline, so a
/// condition that became true just in time still counts.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return cond();
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// [`wait_until`] that panics with `what` when the condition never held.
#[track_caller]
pub fn assert_eventually(timeout: Duration, what: &str, cond: impl FnMut() -> bool) {
    assert!(
        wait_until(timeout, cond),
        "timed out after {timeout:?} waiting for: {what}"
    );
}
