//! The `LOCK.*` commands, one file each, and the `SEM.*` ones in `sem`. A
//! handler checks its arity and parses every argument before it touches the
//! keyspace, so a command that replies with an error has changed nothing.

pub mod acquire;
pub mod apply;
pub mod extend;
pub mod fence;
pub mod force_release;
pub mod info;
pub mod release;
pub mod sem;
pub mod stats;

use baton_core::ArgError;
use redis_module::{RedisError, RedisString};

/// An argument error as a reply: `ERR <text naming the argument>`.
pub fn arg_error(error: ArgError) -> RedisError {
    RedisError::String(format!("ERR {error}"))
}

/// The argument vector as byte slices.
pub fn bytes(args: &[RedisString]) -> Vec<&[u8]> {
    args.iter().map(RedisString::as_slice).collect()
}
