//! Node-wide state: the fence counter, the expiry schedule and the blocked
//! waiters. It lives on Redis' main thread, where every command, timer and
//! callback that touches it runs.
//!
//! `free` of a lock value may run on a lazy-free thread (FLUSHALL ASYNC), so it
//! never touches this state; waiters of a freed lock are answered by their own
//! timeout timers.

use baton_core::{ExpirySchedule, FenceCounter};
use std::cell::RefCell;
use std::collections::HashMap;

/// Where a lock lives: database and key name.
#[derive(Debug, Clone)]
pub struct KeyRef {
    pub db: i32,
    pub key: Box<[u8]>,
}

/// A blocked waiter, found by its blocked-client handle (disconnects and
/// timeouts only know the handle).
#[derive(Debug)]
pub struct Waiting {
    pub id: u64,
    pub lock: KeyRef,
}

/// The module's state on this node.
#[derive(Debug, Default)]
pub struct Node {
    pub fences: FenceCounter,
    pub schedule: ExpirySchedule<KeyRef>,
    /// The expiry timer in flight: (deadline it was armed for, timer id).
    pub armed: Option<(u64, u64)>,
    /// True while the expiry timer runs a batch: it re-arms itself at the end,
    /// so nothing else may arm one meanwhile.
    pub expiring: bool,
    /// Blocked waiters by blocked-client handle address.
    pub waiting: HashMap<usize, Waiting>,
    pub next_waiter_id: u64,
}

thread_local! {
    static NODE: RefCell<Node> = RefCell::new(Node::default());
}

/// Runs `f` on the node state. Callers never call back into Redis in a way
/// that re-enters the module while inside `f`.
pub fn with<R>(f: impl FnOnce(&mut Node) -> R) -> R {
    NODE.with(|node| f(&mut node.borrow_mut()))
}
