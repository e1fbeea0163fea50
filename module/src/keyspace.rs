//! Opening the lock stored under a key: type checks (WRONGTYPE), creation and
//! deletion, so commands never touch raw key handles.

use crate::lock_type::{count_new, LockValue, LOCK_TYPE};
use redis_module::key::{RedisKey, RedisKeyWritable};
use redis_module::{Context, RedisError, RedisString};

/// A lock key opened for writing.
pub struct LockKey {
    key: RedisKeyWritable,
}

impl LockKey {
    /// Opens `name` for writing; WRONGTYPE when it holds another type.
    pub fn open(ctx: &Context, name: &RedisString) -> Result<Self, RedisError> {
        let key = ctx.open_key_writable(name);
        key.get_value::<LockValue>(&LOCK_TYPE)
            .map_err(|_| RedisError::WrongType)?;
        Ok(Self { key })
    }

    /// The lock, when the key exists.
    pub fn lock(&self) -> Option<&mut LockValue> {
        self.key.get_value::<LockValue>(&LOCK_TYPE).ok().flatten()
    }

    /// Stores a new lock under the key (which must be empty) and returns it.
    pub fn create(&self, lock: LockValue) -> Result<&mut LockValue, RedisError> {
        count_new(&lock);
        self.key.set_value(&LOCK_TYPE, lock)?;
        self.lock()
            .ok_or(RedisError::Str("ERR could not store the lock"))
    }

    /// Deletes the key (the type's free callback updates the counters).
    pub fn delete(&self) {
        let _ = self.key.delete();
    }
}

/// Reads the lock under `name` without opening it for writing; WRONGTYPE when
/// the key holds another type.
pub fn read<R>(
    ctx: &Context,
    name: &RedisString,
    f: impl FnOnce(Option<&LockValue>) -> R,
) -> Result<R, RedisError> {
    let key: RedisKey = ctx.open_key(name);
    let lock = key
        .get_value::<LockValue>(&LOCK_TYPE)
        .map_err(|_| RedisError::WrongType)?;
    Ok(f(lock))
}
