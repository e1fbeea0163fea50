//! Opening the lock or semaphore stored under a key: type checks
//! (WRONGTYPE, also between a lock and a semaphore), creation and deletion,
//! so commands never touch raw key handles.

use crate::lock_type::{LockValue, LOCK_TYPE};
use crate::node::KeyRef;
use crate::sem_type::{SemValue, SEM_TYPE};
use crate::{external, ffi, node};
use redis_module::key::{RedisKey, RedisKeyWritable};
use redis_module::native_types::RedisType;
use redis_module::{Context, RedisError, RedisString};
use std::cell::Cell;

/// A value the module keeps in keys of its own type.
pub trait Stored: Sized + 'static {
    /// The module type of its keys.
    fn ty() -> &'static RedisType;
    /// Puts a new value in the counters (every value Redis holds went
    /// through here or through `rdb_load`).
    fn count_new(&self);
    /// The value that eviction took from `at`, rebuilt for a read (see
    /// `external`).
    fn evicted(at: &KeyRef) -> Option<Self>;
    /// Puts back under `key` (open, empty, at `at`) what eviction took, if
    /// it still runs at `now`; true when it did.
    fn restore(key: &Key<Self>, at: &KeyRef, now: u64) -> Result<bool, RedisError>;
}

impl Stored for LockValue {
    fn ty() -> &'static RedisType {
        &LOCK_TYPE
    }

    fn count_new(&self) {
        crate::lock_type::count_new(self);
    }

    fn evicted(at: &KeyRef) -> Option<Self> {
        let holder = external::evicted_holder(at)?;
        Some(node::with(|node| LockValue::held_by(holder, node.fences())))
    }

    fn restore(key: &Key<Self>, at: &KeyRef, now: u64) -> Result<bool, RedisError> {
        external::restore_evicted(key, at, now)
    }
}

impl Stored for SemValue {
    fn ty() -> &'static RedisType {
        &SEM_TYPE
    }

    fn count_new(&self) {
        crate::sem_type::count_new(self);
    }

    fn evicted(at: &KeyRef) -> Option<Self> {
        external::evicted_semaphore(at)
    }

    fn restore(key: &Key<Self>, at: &KeyRef, now: u64) -> Result<bool, RedisError> {
        external::restore_evicted_semaphore(key, at, now)
    }
}

/// A lock key opened for writing.
pub type LockKey = Key<LockValue>;
/// A semaphore key opened for writing.
pub type SemKey = Key<SemValue>;

/// A key of the module's type `V` opened for writing. The value's address is
/// looked up once at open and kept in step by `create` and `delete`:
/// commands ask for the value several times, and each lookup is three calls
/// into Redis.
pub struct Key<V: Stored> {
    key: RedisKeyWritable,
    value: Cell<*mut V>,
}

impl<V: Stored> Key<V> {
    /// Opens `name` for writing; WRONGTYPE when it holds another type.
    pub fn open(ctx: &Context, name: &RedisString) -> Result<Self, RedisError> {
        let key = ctx.open_key_writable(name);
        let value = key
            .get_value::<V>(V::ty())
            .map_err(|_| RedisError::WrongType)?
            .map_or(std::ptr::null_mut(), |v| v as *mut V);
        Ok(Self {
            key,
            value: Cell::new(value),
        })
    }

    /// The value, when the key exists. Like the crate's `get_value`, it
    /// hands out `&mut` from `&self`: callers use one borrow at a time.
    #[allow(clippy::mut_from_ref)]
    pub fn value(&self) -> Option<&mut V> {
        // The address came from Redis for this open key, and only `delete`
        // (which clears it) or `create` (which replaces it) change the value
        // while the key is open.
        ffi::value_mut::<V>(self.value.get().cast())
    }

    /// Stores a new value under the key (which must be empty) and returns it.
    pub fn create(&self, value: V) -> Result<&mut V, RedisError> {
        value.count_new();
        self.key.set_value(V::ty(), value)?;
        let stored = self
            .key
            .get_value::<V>(V::ty())?
            .ok_or(RedisError::Str("ERR could not store the value"))?;
        self.value.set(stored as *mut V);
        self.value()
            .ok_or(RedisError::Str("ERR could not store the value"))
    }

    /// Deletes the key (the type's free callback updates the counters).
    pub fn delete(&self) {
        self.value.set(std::ptr::null_mut());
        let _ = self.key.delete();
    }
}

impl LockKey {
    /// The lock, when the key exists (see [`Key::value`]).
    #[allow(clippy::mut_from_ref)]
    pub fn lock(&self) -> Option<&mut LockValue> {
        self.value()
    }
}

/// Reads the value of type `V` under `name` without opening it for writing;
/// WRONGTYPE when the key holds another type. A value that eviction took is
/// read as it was (see `external`).
pub fn read<V: Stored, R>(
    ctx: &Context,
    name: &RedisString,
    f: impl FnOnce(Option<&V>) -> R,
) -> Result<R, RedisError> {
    let key: RedisKey = ctx.open_key(name);
    let value = key
        .get_value::<V>(V::ty())
        .map_err(|_| RedisError::WrongType)?;
    if value.is_some() {
        return Ok(f(value));
    }
    let at = KeyRef {
        db: ffi::selected_db(ctx.get_raw()),
        key: name.as_slice().into(),
    };
    Ok(f(V::evicted(&at).as_ref()))
}
