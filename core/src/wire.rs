//! The names and texts of the wire protocol, in one place for the module
//! that sends them and the client and tests that read them: the fields of
//! `LOCK.INFO` and `LOCK.STATS` (in reply order), and the error replies
//! that are not about one argument (those are [`crate::ArgError`]).

/// The fields of `LOCK.INFO`, in reply order; all integers but `meta`, a
/// bulk string or null.
pub const INFO_FIELDS: [&str; 5] = ["held", "fence", "pttl", "waiters", "meta"];

/// The counters of `LOCK.STATS` (and `INFO baton`), in reply order.
pub const STATS_FIELDS: [&str; 9] = [
    "locks",
    "held",
    "waiters",
    "grants",
    "releases",
    "extends",
    "expirations",
    "wait_timeouts",
    "force_releases",
];

/// The token asked to wait again on a lock it already waits for.
pub const ALREADY_WAITING: &str = "ERR token is already waiting for this lock";

/// A lock write on a replica (also one with `replica-read-only no`).
pub const READONLY: &str = "READONLY You can't write against a read only replica.";

/// `LOCK.APPLY` sent by a client.
pub const APPLY_INTERNAL: &str =
    "ERR LOCK.APPLY is internal: accepted only from replication and AOF loading";

/// A `LOCK.APPLY` fence out of range (see [`crate::FenceCounter::accepts`]).
pub const APPLY_FENCE: &str =
    "ERR fence must be a positive integer, below 2^53 and not far ahead of this node's clock";

/// A `LOCK.APPLY` expiry that is not an integer.
pub const APPLY_EXPIRY: &str = "ERR expire-at-ms must be a non-negative integer";

/// The error code of a wait the server ended without a grant: the lock's key
/// went away under its queue (or, from Redis itself, the node became a
/// replica).
pub const UNBLOCKED: &str = "UNBLOCKED";

/// The whole reply to a waiter whose lock's key went away while it waited.
pub const KEY_REMOVED: &str =
    "UNBLOCKED the lock's key was deleted, renamed, moved or flushed while waiting";

/// The fields of `SEM.INFO`, in reply order.
pub const SEM_INFO_FIELDS: [&str; 5] = ["limit", "used", "holders", "waiters", "fence"];

/// An acquire naming another limit than the semaphore's, which has holders
/// or waiters.
pub fn other_limit(limit: u32, asked: u32) -> String {
    format!("ERR the semaphore's limit is {limit}, not {asked}")
}

/// A renewal asking another number of permits than the token's lease holds.
pub fn other_permits(held: u32, asked: u32) -> String {
    format!("ERR the token holds {held} permits, not {asked}")
}

/// `SEM.APPLY` or `SEM.DROP` sent by a client.
pub const SEM_APPLY_INTERNAL: &str =
    "ERR SEM.APPLY and SEM.DROP are internal: accepted only from replication and AOF loading";
