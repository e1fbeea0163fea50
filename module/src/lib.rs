//! baton's Redis module (`libbaton.so`): distributed locks with fencing tokens
//! and a server-side FIFO wait queue. Load it with `MODULE LOAD libbaton.so`
//! or `loadmodule` in redis.conf; Redis 7.0 or later.
//!
//! The lock rules live in `baton-core`; this crate keeps locks in Redis keys
//! and connects the rules to Redis: blocking, timers, replication, persistence.
//!
//! # Layout
//!
//! - `commands`: one file per `LOCK.*` command; parsing and replies.
//! - `lock_type`: the `baton-lck` data type: RDB, AOF rewrite, memory, free.
//! - `keyspace`: opening the lock under a key (WRONGTYPE, create, delete).
//! - `effects`: runs core's driver on a lock key and executes the transition
//!   it returns: schedule, replication, key deletion, counters, waking
//!   granted waiters.
//! - `waiting`: blocked waiters: block, wake, timeout, disconnect.
//! - `expiry`: the expiry timer, in batches; idle while writes are paused.
//! - `external`: what DEL, RENAME, MOVE, SWAPDB, FLUSH*, RESTORE and
//!   eviction do to locks and their waiters.
//! - `sweep`: schedule rebuild after load and promotion; backstop sweep.
//! - `node`: node-wide state (fence counter, schedule, waiters, evicted
//!   holders).
//! - `stats`: counters for `LOCK.STATS` and `INFO baton`.
//! - `ffi`: wrappers over the raw module API and typed views of the raw
//!   pointers Redis hands to callbacks; the only file with `unsafe`; none
//!   can panic.

mod commands;
mod effects;
mod expiry;
mod external;
mod ffi;
mod keyspace;
mod lock_type;
mod node;
mod sem_type;
mod stats;
mod sweep;
mod waiting;

use lock_type::LOCK_TYPE;
use redis_module::{raw, redis_module, Context, RedisString, Status};
use sem_type::SEM_TYPE;

fn init(ctx: &Context, _args: &[RedisString]) -> Status {
    let raw_ctx = ctx.get_raw();
    // A malformed RDB value (RESTORE) is then an error for rdb_load to see,
    // not a panic of Redis.
    ffi::set_module_options(raw_ctx, raw::REDISMODULE_OPTIONS_HANDLE_IO_ERRORS);
    ffi::register_info_function(raw_ctx, Some(on_info));
    let subscribed = ffi::init_module_ctx(raw_ctx)
        && ffi::subscribe_server_event(
            raw_ctx,
            raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED,
            Some(on_role_changed),
        )
        && ffi::subscribe_server_event(raw_ctx, raw::REDISMODULE_EVENT_LOADING, Some(on_loading))
        && external::subscribe(raw_ctx);
    if !subscribed {
        return Status::Err;
    }
    sweep::start(raw_ctx);
    Status::Ok
}

extern "C" fn on_role_changed(
    ctx: ffi::Ctx,
    _event: raw::RedisModuleEvent,
    _subevent: u64,
    _data: *mut std::ffi::c_void,
) {
    // A new primary takes over expiry; a new replica drops its schedule and
    // what eviction took (its primary decides now).
    external::forget_all_evicted();
    sweep::rebuild(ctx);
}

extern "C" fn on_loading(
    ctx: ffi::Ctx,
    _event: raw::RedisModuleEvent,
    subevent: u64,
    _data: *mut std::ffi::c_void,
) {
    if subevent == raw::REDISMODULE_SUBEVENT_LOADING_ENDED {
        sweep::rebuild(ctx);
    }
}

extern "C" fn on_info(ictx: *mut raw::RedisModuleInfoCtx, _for_crash_report: i32) {
    ffi::info_section(ictx);
    for (name, value) in stats::all().into_iter().chain(stats::sem_all()) {
        ffi::info_field(ictx, name, value);
    }
}

redis_module! {
    name: "baton",
    version: 1,
    allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
    data_types: [LOCK_TYPE, SEM_TYPE],
    init: init,
    commands: [
        ["lock.acquire", commands::acquire::run, "write deny-oom", 1, 1, 1, ""],
        ["lock.release", commands::release::run, "write fast", 1, 1, 1, ""],
        ["lock.extend", commands::extend::run, "write fast", 1, 1, 1, ""],
        ["lock.forcerelease", commands::force_release::run, "write fast", 1, 1, 1, ""],
        ["lock.fence", commands::fence::run, "readonly fast", 1, 1, 1, ""],
        ["lock.info", commands::info::run, "readonly fast", 1, 1, 1, ""],
        ["lock.stats", commands::stats::run, "readonly fast", 0, 0, 0, ""],
        ["lock.apply", commands::apply::run, "write", 1, 1, 1, ""],
        ["sem.acquire", commands::sem::acquire::run, "write deny-oom", 1, 1, 1, ""],
        ["sem.release", commands::sem::release::run, "write fast", 1, 1, 1, ""],
        ["sem.extend", commands::sem::extend::run, "write fast", 1, 1, 1, ""],
        ["sem.forcerelease", commands::sem::force_release::run, "write fast", 1, 1, 1, ""],
        ["sem.info", commands::sem::info::run, "readonly fast", 1, 1, 1, ""],
        ["sem.apply", commands::sem::apply::apply, "write", 1, 1, 1, ""],
        ["sem.drop", commands::sem::apply::drop_lease, "write", 1, 1, 1, ""],
    ],
}
