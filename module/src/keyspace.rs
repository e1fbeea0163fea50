//! Opening the lock stored under a key: type checks (WRONGTYPE), creation and
//! deletion, so commands never touch raw key handles.

use crate::lock_type::{count_new, LockValue, LOCK_TYPE};
use crate::node::KeyRef;
use crate::{external, ffi, node};
use redis_module::key::{RedisKey, RedisKeyWritable};
use redis_module::{Context, RedisError, RedisString};
use std::cell::Cell;

/// A lock key opened for writing. The value's address is looked up once at
/// open and kept in step by `create` and `delete`: commands ask for the lock
/// several times, and each lookup is three calls into Redis.
pub struct LockKey {
    key: RedisKeyWritable,
    value: Cell<*mut LockValue>,
}

impl LockKey {
    /// Opens `name` for writing; WRONGTYPE when it holds another type.
    pub fn open(ctx: &Context, name: &RedisString) -> Result<Self, RedisError> {
        let key = ctx.open_key_writable(name);
        let value = key
            .get_value::<LockValue>(&LOCK_TYPE)
            .map_err(|_| RedisError::WrongType)?
            .map_or(std::ptr::null_mut(), |lock| lock as *mut LockValue);
        Ok(Self {
            key,
            value: Cell::new(value),
        })
    }

    /// The lock, when the key exists. Like the crate's `get_value`, it hands
    /// out `&mut` from `&self`: callers use one borrow at a time.
    #[allow(clippy::mut_from_ref)]
    pub fn lock(&self) -> Option<&mut LockValue> {
        // The address came from Redis for this open key, and only `delete`
        // (which clears it) or `create` (which replaces it) change the value
        // while the key is open.
        ffi::value_mut::<LockValue>(self.value.get().cast())
    }

    /// Stores a new lock under the key (which must be empty) and returns it.
    pub fn create(&self, lock: LockValue) -> Result<&mut LockValue, RedisError> {
        count_new(&lock);
        self.key.set_value(&LOCK_TYPE, lock)?;
        let value = self
            .key
            .get_value::<LockValue>(&LOCK_TYPE)?
            .ok_or(RedisError::Str("ERR could not store the lock"))?;
        self.value.set(value as *mut LockValue);
        self.lock()
            .ok_or(RedisError::Str("ERR could not store the lock"))
    }

    /// Deletes the key (the type's free callback updates the counters).
    pub fn delete(&self) {
        self.value.set(std::ptr::null_mut());
        let _ = self.key.delete();
    }
}

/// Reads the lock under `name` without opening it for writing; WRONGTYPE when
/// the key holds another type. A held lock that eviction took is read as the
/// lock it was (see `external`).
pub fn read<R>(
    ctx: &Context,
    name: &RedisString,
    f: impl FnOnce(Option<&LockValue>) -> R,
) -> Result<R, RedisError> {
    let key: RedisKey = ctx.open_key(name);
    let lock = key
        .get_value::<LockValue>(&LOCK_TYPE)
        .map_err(|_| RedisError::WrongType)?;
    if lock.is_some() {
        return Ok(f(lock));
    }
    let at = KeyRef {
        db: ffi::selected_db(ctx.get_raw()),
        key: name.as_slice().into(),
    };
    let evicted = external::evicted_holder(&at)
        .map(|holder| node::with(|node| LockValue::held_by(holder, node.fences())));
    Ok(f(evicted.as_ref()))
}
