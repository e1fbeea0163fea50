//! The `SEM.*` commands (semaphores; a read-write lock is one used with a
//! large limit), one file each, parsed before they touch the keyspace like
//! the `LOCK.*` ones.

pub mod acquire;
pub mod apply;
pub mod extend;
pub mod force_release;
pub mod info;
pub mod release;
