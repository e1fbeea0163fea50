//! The baton lock state machine: pure Rust, no I/O, no Redis types.
//!
//! The Redis module and the client's in-memory backend both drive these types,
//! so the two behave the same. Callers pass the current time in (unix
//! milliseconds) and act on what the calls return: a grant to deliver, a key to
//! delete, an expiry to schedule.
//!
//! # Layout
//!
//! - [`lock`]: one lock: its holder, its wait queue, and every transition
//!   (acquire, release, extend, force-release, expiry, hand-off).
//! - [`change`]: one change to one lock, from the lazy expiry to the
//!   [`Transition`] the module and the memory backend execute (what to
//!   schedule, replicate, forget, count and wake).
//! - [`semaphore`]: one semaphore: leases of permits with their own expiry
//!   and fence, the strict FIFO queue of requests, its changes (its
//!   leases sit in `leases`: a small vector, indexed once there are many).
//! - [`queue`]: the FIFO wait queue, with O(1) removal of a waiter from anywhere.
//! - [`fence`]: the fence counter that numbers every grant.
//! - [`schedule`]: the expiry schedule, ordered by deadline.
//! - [`args`]: the argument limits shared by the module and the client.
//! - [`wire`]: the reply field names and error texts of the protocol.

#![forbid(unsafe_code)]

pub mod args;
pub mod change;
pub mod fence;
mod leases;
pub mod lock;
pub mod queue;
pub mod schedule;
pub mod semaphore;
pub mod wire;

pub use args::ArgError;
pub use change::{Change, Counts, Mark, Transition};
pub use fence::{FenceCounter, MAX_FENCE};
pub use lock::{Acquire, Enqueue, Expired, Grant, Holder, Lock, Release};
pub use queue::{AlreadyWaiting, WaitQueue, Waiter};
pub use schedule::ExpirySchedule;
pub use semaphore::{Lease, LeaseChange, Request, SemAcquire, SemChange, SemTransition, Semaphore};
