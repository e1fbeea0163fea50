//! Thin wrappers over the parts of the raw Redis module API that the safe
//! `redis-module` crate does not cover: blocking with reply, timeout and free
//! callbacks, timers, replication of effects, keyspace
//! scans, server events and the INFO section; and the typed views of the raw
//! pointers Redis hands to callbacks (module values, event data, C strings).
//!
//! This is the module's only file with `unsafe`: everything else gets typed
//! values from here. Every wrapper checks the API pointer: a missing function
//! is a no-op or a `None`, never a panic (a panic here would take Redis down).

use baton_core::{Holder, Lease};
use redis_module::raw;
use std::ffi::{c_void, CStr};
use std::os::raw::{c_char, c_int, c_longlong};

/// A raw module context.
pub type Ctx = *mut raw::RedisModuleCtx;

/// A blocked client's handle. Its address names it while it is blocked
/// (Redis reuses addresses once a handle is freed, after its unblocking).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockedClient(usize);

impl BlockedClient {
    /// The handle Redis passed to a callback.
    pub fn from_raw(bc: *mut raw::RedisModuleBlockedClient) -> Self {
        Self(bc as usize)
    }

    fn raw(self) -> *mut raw::RedisModuleBlockedClient {
        self.0 as *mut raw::RedisModuleBlockedClient
    }
}

/// Calls a raw API function if Redis exported it.
macro_rules! api {
    ($name:ident ( $($arg:expr),* $(,)? )) => {
        // SAFETY: the pointer was filled in by RedisModule_Init; arguments are
        // checked by each wrapper below.
        unsafe { raw::$name.map(|f| f($($arg),*)) }
    };
}

/// Wall-clock unix time in ms: lock expiries are absolute so that they mean
/// the same on a replica and after a restart.
pub fn now_ms() -> u64 {
    api!(RedisModule_Milliseconds()).map_or_else(
        || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        },
        |ms| u64::try_from(ms).unwrap_or(0),
    )
}

/// Wall-clock unix time in µs: the floor of every fence (see
/// `baton_core::fence`).
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A monotonic clock in µs since the module's first look at it: the
/// waiters' deadlines and the time budgets of batched work. Ours, not
/// Redis' `RM_MonotonicMicroseconds`: it cannot be missing (a deadline on
/// a clock stuck at 0 would never pass).
pub fn monotonic_us() -> u64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let elapsed = ORIGIN.get_or_init(std::time::Instant::now).elapsed();
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// What a context says about where it runs (`REDISMODULE_CTX_FLAGS_*`).
#[derive(Debug, Clone, Copy)]
pub struct Flags(u32);

impl Flags {
    /// The flags of `ctx`.
    pub fn of(ctx: Ctx) -> Self {
        Self(api!(RedisModule_GetContextFlags(ctx)).map_or(0, |flags| flags as u32))
    }

    fn has(self, flags: u32) -> bool {
        self.0 & flags != 0
    }

    /// This node is a replica.
    pub fn is_replica(self) -> bool {
        self.has(raw::REDISMODULE_CTX_FLAGS_SLAVE)
    }

    /// The command comes from the primary's stream or an AOF being loaded.
    pub fn is_applying(self) -> bool {
        self.has(raw::REDISMODULE_CTX_FLAGS_REPLICATED | raw::REDISMODULE_CTX_FLAGS_LOADING)
    }

    /// The server is loading data (RDB, AOF).
    pub fn is_loading(self) -> bool {
        self.has(raw::REDISMODULE_CTX_FLAGS_LOADING)
    }

    /// The caller cannot be blocked: MULTI, Lua, the replication stream, AOF
    /// loading, a module's RM_Call.
    pub fn cannot_block(self) -> bool {
        self.has(
            raw::REDISMODULE_CTX_FLAGS_MULTI
                | raw::REDISMODULE_CTX_FLAGS_LUA
                | raw::REDISMODULE_CTX_FLAGS_REPLICATED
                | raw::REDISMODULE_CTX_FLAGS_LOADING
                | raw::REDISMODULE_CTX_FLAGS_DENY_BLOCKING,
        )
    }
}

/// True on a primary (not a replica).
pub fn is_primary(ctx: Ctx) -> bool {
    !Flags::of(ctx).is_replica()
}

/// True while `CLIENT PAUSE`, `FAILOVER` or a Cluster manual failover holds
/// writes back: the module must then change nothing and propagate nothing,
/// as Redis suspends its own expiry (`RM_AvoidReplicaTraffic`).
pub fn writes_paused() -> bool {
    api!(RedisModule_AvoidReplicaTraffic()).is_some_and(|paused| paused != 0)
}

/// Sets module options (`REDISMODULE_OPTIONS_*`).
pub fn set_module_options(ctx: Ctx, options: u32) {
    api!(RedisModule_SetModuleOptions(ctx, options as c_int));
}

/// A context of the module that outlives any callback, for the API calls
/// that need one where Redis hands us none (a type's unlink callback).
/// Made once at load; null before.
pub fn module_ctx() -> Ctx {
    MODULE_CTX.load(std::sync::atomic::Ordering::Acquire)
}

static MODULE_CTX: std::sync::atomic::AtomicPtr<raw::RedisModuleCtx> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// Makes [`module_ctx`] (at module load).
pub fn init_module_ctx(ctx: Ctx) -> bool {
    let detached =
        api!(RedisModule_GetDetachedThreadSafeContext(ctx)).unwrap_or(std::ptr::null_mut());
    MODULE_CTX.store(detached, std::sync::atomic::Ordering::Release);
    !detached.is_null()
}

/// Blocks the calling client with no server-side timeout (ours are module
/// timers, precise to the ms rather than to `hz`). What [`unblock_with`]
/// hands over reaches `reply` (read it with [`blocked_data`]) and then
/// `free` (free it with [`free_blocked_data`]).
pub fn block_client(
    ctx: Ctx,
    reply: raw::RedisModuleCmdFunc,
    timeout: raw::RedisModuleCmdFunc,
    free: Option<unsafe extern "C" fn(Ctx, *mut c_void)>,
) -> Option<BlockedClient> {
    api!(RedisModule_BlockClient(ctx, reply, timeout, free, 0))
        .filter(|bc| !bc.is_null())
        .map(BlockedClient::from_raw)
}

/// Registers the callback Redis calls when a blocked client disconnects.
pub fn set_disconnect_callback(bc: BlockedClient, callback: raw::RedisModuleDisconnectFunc) {
    api!(RedisModule_SetDisconnectCallback(bc.raw(), callback));
}

/// Unblocks a client; `data` (boxed) reaches the reply callback and then the
/// free callback. Must be called exactly once per blocked client.
pub fn unblock_with<T>(bc: BlockedClient, data: Option<T>) {
    let privdata = data.map_or(std::ptr::null_mut(), |d| Box::into_raw(Box::new(d)).cast());
    api!(RedisModule_UnblockClient(bc.raw(), privdata));
}

/// The data given to [`unblock_with`], inside a reply callback. `T` must
/// be the type the client was unblocked with.
pub fn blocked_data<'a, T>(ctx: Ctx) -> Option<&'a T> {
    let data = api!(RedisModule_GetBlockedClientPrivateData(ctx))?;
    // SAFETY: the private data is null or the Box<T> made by
    // `unblock_with`, freed only by the free callback after this one.
    unsafe { data.cast::<T>().as_ref() }
}

/// Frees the data given to [`unblock_with`], in a free callback. `T` must be
/// the type the client was unblocked with.
pub fn free_blocked_data<T>(privdata: *mut c_void) {
    if !privdata.is_null() {
        // SAFETY: made by Box::into_raw in `unblock_with`; Redis calls the
        // free callback once.
        drop(unsafe { Box::from_raw(privdata.cast::<T>()) });
    }
}

/// The blocked-client handle, inside a timeout callback.
pub fn blocked_client_handle(ctx: Ctx) -> Option<BlockedClient> {
    api!(RedisModule_GetBlockedClientHandle(ctx))
        .filter(|bc| !bc.is_null())
        .map(BlockedClient::from_raw)
}

/// Starts a one-shot timer that carries no data.
pub fn create_timer(ctx: Ctx, ms: u64, callback: raw::RedisModuleTimerProc) -> u64 {
    raw_timer(ctx, ms, callback, std::ptr::null_mut())
}

fn raw_timer(ctx: Ctx, ms: u64, callback: raw::RedisModuleTimerProc, data: *mut c_void) -> u64 {
    let period = c_longlong::try_from(ms).unwrap_or(c_longlong::MAX);
    api!(RedisModule_CreateTimer(ctx, period, callback, data)).unwrap_or(0)
}

/// Stops a timer that carries no data; false when it had fired or was
/// stopped already.
pub fn stop_timer(ctx: Ctx, id: u64) -> bool {
    raw_stop_timer(ctx, id).is_some()
}

fn raw_stop_timer(ctx: Ctx, id: u64) -> Option<*mut c_void> {
    let mut data: *mut c_void = std::ptr::null_mut();
    let status = api!(RedisModule_StopTimer(ctx, id, &mut data))?;
    (status == raw::REDISMODULE_OK as c_int).then_some(data)
}

/// A module value that Redis hands to a callback of the type whose values
/// are `T` (or that an open key of that type holds), as a reference.
pub fn value_ref<'a, T>(value: *const c_void) -> Option<&'a T> {
    // SAFETY: every value of the type was made by `value_into_raw::<T>` and
    // stays alive while Redis hands it to us.
    unsafe { value.cast::<T>().as_ref() }
}

/// As [`value_ref`], mutable: for callbacks and open keys that change the
/// value (Redis passes a const pointer to some callbacks, but the value is
/// ours and not shared).
pub fn value_mut<'a, T>(value: *const c_void) -> Option<&'a mut T> {
    // SAFETY: as `value_ref`; Redis runs one callback or command at a time on
    // the main thread, and callers hold one such reference at a time.
    unsafe { value.cast::<T>().cast_mut().as_mut() }
}

/// A new module value for Redis to keep (`rdb_load`).
pub fn value_into_raw<T>(value: T) -> *mut c_void {
    Box::into_raw(Box::new(value)).cast()
}

/// Takes back a module value that Redis frees (the type's `free`).
pub fn value_from_raw<T>(value: *mut c_void) -> Option<T> {
    if value.is_null() {
        return None;
    }
    // SAFETY: made by `value_into_raw::<T>`; Redis frees each value once.
    Some(*unsafe { Box::from_raw(value.cast::<T>()) })
}

/// The data Redis passes to a server event callback, as the struct of that
/// event.
pub fn event_data<'a, T>(data: *mut c_void) -> Option<&'a T> {
    // SAFETY: Redis passes a pointer to the event's own struct (`T`), alive
    // for the callback.
    unsafe { data.cast::<T>().as_ref() }
}

/// A NUL-terminated string Redis passes to a callback.
pub fn c_str<'a>(ptr: *const c_char) -> Option<&'a [u8]> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated string, alive for the callback.
    Some(unsafe { CStr::from_ptr(ptr) }.to_bytes())
}

/// Reports a duration to Redis' latency monitor (shown by `LATENCY LATEST`
/// when it reaches `latency-monitor-threshold`).
pub fn latency_sample(event: &CStr, ms: u64) {
    let ms = std::os::raw::c_longlong::try_from(ms).unwrap_or(c_longlong::MAX);
    api!(RedisModule_LatencyAddSample(event.as_ptr(), ms));
}

/// The selected database of the context.
pub fn selected_db(ctx: Ctx) -> i32 {
    api!(RedisModule_GetSelectedDb(ctx)).unwrap_or(0)
}

/// Selects a database; false when it does not exist.
pub fn select_db(ctx: Ctx, db: i32) -> bool {
    api!(RedisModule_SelectDb(ctx, db)) == Some(raw::REDISMODULE_OK as c_int)
}

fn ll(value: u64) -> c_longlong {
    c_longlong::try_from(value).unwrap_or(c_longlong::MAX)
}

/// Propagates `LOCK.APPLY key token fence expire-at-ms [META value]` to
/// replicas and AOF: the holder as the primary set it.
pub fn replicate_apply(ctx: Ctx, key: &[u8], holder: &Holder) {
    // SAFETY: filled in once by RedisModule_Init, read-only afterwards.
    let Some(replicate) = (unsafe { raw::RedisModule_Replicate }) else {
        return;
    };
    let (token, fence, expires) = (&holder.token, ll(holder.fence), ll(holder.expires_at));
    match holder.meta.as_deref() {
        // SAFETY: the format "bbll" is matched by (ptr, len), (ptr, len), ll,
        // ll.
        None => unsafe {
            replicate(
                ctx,
                c"LOCK.APPLY".as_ptr(),
                c"bbll".as_ptr(),
                key.as_ptr().cast::<c_char>(),
                key.len(),
                token.as_ptr().cast::<c_char>(),
                token.len(),
                fence,
                expires,
            );
        },
        // SAFETY: the format "bbllcb" is matched by (ptr, len), (ptr, len),
        // ll, ll, a C string, (ptr, len).
        Some(meta) => unsafe {
            replicate(
                ctx,
                c"LOCK.APPLY".as_ptr(),
                c"bbllcb".as_ptr(),
                key.as_ptr().cast::<c_char>(),
                key.len(),
                token.as_ptr().cast::<c_char>(),
                token.len(),
                fence,
                expires,
                c"META".as_ptr(),
                meta.as_ptr().cast::<c_char>(),
                meta.len(),
            );
        },
    }
}

/// Propagates `DEL key` to replicas and AOF.
pub fn replicate_del(ctx: Ctx, key: &[u8]) {
    // SAFETY: the format "b" is matched by (ptr, len).
    unsafe {
        if let Some(replicate) = raw::RedisModule_Replicate {
            replicate(
                ctx,
                c"DEL".as_ptr(),
                c"b".as_ptr(),
                key.as_ptr().cast::<c_char>(),
                key.len(),
            );
        }
    }
}

/// Writes `LOCK.APPLY key token fence expire-at-ms [META value]` into an
/// AOF rewrite.
pub fn emit_aof_apply(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    holder: &Holder,
) {
    // SAFETY: filled in once by RedisModule_Init, read-only afterwards.
    let Some(emit) = (unsafe { raw::RedisModule_EmitAOF }) else {
        return;
    };
    let (token, fence, expires) = (&holder.token, ll(holder.fence), ll(holder.expires_at));
    match holder.meta.as_deref() {
        // SAFETY: the format "sbll" is matched by a module string,
        // (ptr, len), ll, ll.
        None => unsafe {
            emit(
                aof,
                c"LOCK.APPLY".as_ptr(),
                c"sbll".as_ptr(),
                key,
                token.as_ptr().cast::<c_char>(),
                token.len(),
                fence,
                expires,
            );
        },
        // SAFETY: the format "sbllcb" is matched by a module string,
        // (ptr, len), ll, ll, a C string, (ptr, len).
        Some(meta) => unsafe {
            emit(
                aof,
                c"LOCK.APPLY".as_ptr(),
                c"sbllcb".as_ptr(),
                key,
                token.as_ptr().cast::<c_char>(),
                token.len(),
                fence,
                expires,
                c"META".as_ptr(),
                meta.as_ptr().cast::<c_char>(),
                meta.len(),
            );
        },
    }
}

/// Propagates `SEM.APPLY key limit token permits fence expire-at-ms`: one
/// lease as the primary granted, renewed or extended it.
pub fn replicate_sem_apply(ctx: Ctx, key: &[u8], limit: u32, token: &[u8], lease: &Lease) {
    // SAFETY: the format "blblll" is matched by (ptr, len), ll, (ptr, len),
    // ll, ll, ll.
    unsafe {
        if let Some(replicate) = raw::RedisModule_Replicate {
            replicate(
                ctx,
                c"SEM.APPLY".as_ptr(),
                c"blblll".as_ptr(),
                key.as_ptr().cast::<c_char>(),
                key.len(),
                c_longlong::from(limit),
                token.as_ptr().cast::<c_char>(),
                token.len(),
                c_longlong::from(lease.permits),
                ll(lease.fence),
                ll(lease.expires_at),
            );
        }
    }
}

/// Propagates `SEM.DROP key token`: the lease of `token` ended.
pub fn replicate_sem_drop(ctx: Ctx, key: &[u8], token: &[u8]) {
    // SAFETY: the format "bb" is matched by (ptr, len), (ptr, len).
    unsafe {
        if let Some(replicate) = raw::RedisModule_Replicate {
            replicate(
                ctx,
                c"SEM.DROP".as_ptr(),
                c"bb".as_ptr(),
                key.as_ptr().cast::<c_char>(),
                key.len(),
                token.as_ptr().cast::<c_char>(),
                token.len(),
            );
        }
    }
}

/// Writes `SEM.APPLY key limit token permits fence expire-at-ms` into an
/// AOF rewrite.
pub fn emit_aof_sem_apply(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    limit: u32,
    token: &[u8],
    lease: &Lease,
) {
    // SAFETY: the format "slblll" is matched by a module string, ll,
    // (ptr, len), ll, ll, ll.
    unsafe {
        if let Some(emit) = raw::RedisModule_EmitAOF {
            emit(
                aof,
                c"SEM.APPLY".as_ptr(),
                c"slblll".as_ptr(),
                key,
                c_longlong::from(limit),
                token.as_ptr().cast::<c_char>(),
                token.len(),
                c_longlong::from(lease.permits),
                ll(lease.fence),
                ll(lease.expires_at),
            );
        }
    }
}

/// Fires a module keyspace event (`notify-keyspace-events` with `d` shows
/// it), e.g. `lock.grant` on `key`.
pub fn notify(ctx: Ctx, event: &CStr, key: &[u8]) {
    let Some(name) = api!(RedisModule_CreateString(
        ctx,
        key.as_ptr().cast(),
        key.len()
    )) else {
        return;
    };
    if name.is_null() {
        return;
    }
    api!(RedisModule_NotifyKeyspaceEvent(
        ctx,
        raw::REDISMODULE_NOTIFY_MODULE as c_int,
        event.as_ptr(),
        name
    ));
    api!(RedisModule_FreeString(ctx, name));
}

/// A keyspace scan cursor (`RM_Scan`), destroyed on drop.
pub struct ScanCursor(*mut raw::RedisModuleScanCursor);

impl ScanCursor {
    /// A cursor at the start of the keyspace.
    pub fn new() -> Option<Self> {
        api!(RedisModule_ScanCursorCreate())
            .filter(|cursor| !cursor.is_null())
            .map(Self)
    }

    /// Scans one step of the selected database, calling `visit` with each key
    /// name and its (read-only) handle. Returns false once the scan is done.
    pub fn step(
        &mut self,
        ctx: Ctx,
        visit: &mut dyn FnMut(&[u8], *mut raw::RedisModuleKey),
    ) -> bool {
        let mut visit = visit;
        let privdata = (&mut visit as *mut &mut dyn FnMut(&[u8], *mut raw::RedisModuleKey)).cast();
        api!(RedisModule_Scan(
            ctx,
            self.0,
            Some(scan_trampoline),
            privdata
        )) == Some(1)
    }
}

impl Drop for ScanCursor {
    fn drop(&mut self) {
        api!(RedisModule_ScanCursorDestroy(self.0));
    }
}

unsafe extern "C" fn scan_trampoline(
    _ctx: Ctx,
    name: *mut raw::RedisModuleString,
    key: *mut raw::RedisModuleKey,
    privdata: *mut c_void,
) {
    if name.is_null() || privdata.is_null() {
        return;
    }
    // SAFETY: privdata is the `&mut &mut dyn FnMut` made by `ScanCursor::step`,
    // alive for the duration of the RM_Scan call that calls us.
    let visit = unsafe { &mut *privdata.cast::<&mut dyn FnMut(&[u8], *mut raw::RedisModuleKey)>() };
    visit(redis_module::RedisString::string_as_slice(name), key);
}

/// The module type of an open key, or null.
pub fn key_module_type(key: *mut raw::RedisModuleKey) -> *mut raw::RedisModuleType {
    if key.is_null() {
        return std::ptr::null_mut();
    }
    api!(RedisModule_ModuleTypeGetType(key)).unwrap_or(std::ptr::null_mut())
}

/// The module value of an open key, or null.
pub fn key_module_value(key: *mut raw::RedisModuleKey) -> *mut c_void {
    if key.is_null() {
        return std::ptr::null_mut();
    }
    api!(RedisModule_ModuleTypeGetValue(key)).unwrap_or(std::ptr::null_mut())
}

/// Subscribes to keyspace events of the given classes
/// (`REDISMODULE_NOTIFY_*`), whatever `notify-keyspace-events` says.
pub fn subscribe_keyspace_events(
    ctx: Ctx,
    classes: c_int,
    callback: raw::RedisModuleNotificationFunc,
) -> bool {
    api!(RedisModule_SubscribeToKeyspaceEvents(
        ctx, classes, callback
    )) == Some(raw::REDISMODULE_OK as c_int)
}

/// The database and key name of a type callback's key context.
pub fn opt_ctx_key<'a>(ctx: *mut raw::RedisModuleKeyOptCtx) -> Option<(i32, &'a [u8])> {
    if ctx.is_null() {
        return None;
    }
    let db = api!(RedisModule_GetDbIdFromOptCtx(ctx))?;
    let name = api!(RedisModule_GetKeyNameFromOptCtx(ctx)).filter(|name| !name.is_null())?;
    Some((db, redis_module::RedisString::string_as_slice(name)))
}

/// True when the server calls itself Valkey (`INFO server`: `server_name`).
pub fn server_is_valkey(ctx: Ctx) -> bool {
    let Some(info) = api!(RedisModule_GetServerInfo(ctx, c"server".as_ptr())) else {
        return false;
    };
    if info.is_null() {
        return false;
    }
    let name = api!(RedisModule_ServerInfoGetFieldC(
        info,
        c"server_name".as_ptr()
    ))
    .is_some_and(|name| c_str(name) == Some(b"valkey"));
    api!(RedisModule_FreeServerInfo(ctx, info));
    name
}

/// The database and name of an open key.
pub fn module_key_name<'a>(key: *mut raw::RedisModuleKey) -> Option<(i32, &'a [u8])> {
    if key.is_null() {
        return None;
    }
    let db = api!(RedisModule_GetDbIdFromModuleKey(key))?;
    let name = api!(RedisModule_GetKeyNameFromModuleKey(key)).filter(|name| !name.is_null())?;
    Some((db, redis_module::RedisString::string_as_slice(name)))
}

/// Subscribes to a server event (`REDISMODULE_EVENT_*`).
pub fn subscribe_server_event(ctx: Ctx, id: u64, callback: raw::RedisModuleEventCallback) -> bool {
    let event = raw::RedisModuleEvent { id, dataver: 1 };
    api!(RedisModule_SubscribeToServerEvent(ctx, event, callback))
        == Some(raw::REDISMODULE_OK as c_int)
}

/// Replaces the module's INFO callback.
pub fn register_info_function(ctx: Ctx, callback: raw::RedisModuleInfoFunc) {
    api!(RedisModule_RegisterInfoFunc(ctx, callback));
}

/// Opens the module's INFO section (named after the module).
pub fn info_section(ictx: *mut raw::RedisModuleInfoCtx) {
    api!(RedisModule_InfoAddSection(ictx, std::ptr::null()));
}

/// Adds one `name:value` line to the INFO section.
pub fn info_field(ictx: *mut raw::RedisModuleInfoCtx, name: &str, value: u64) {
    let Ok(name) = std::ffi::CString::new(name) else {
        return;
    };
    api!(RedisModule_InfoAddFieldULongLong(
        ictx,
        name.as_ptr(),
        value
    ));
}

/// Replies with an integer.
pub fn reply_integer(ctx: Ctx, value: u64) {
    api!(RedisModule_ReplyWithLongLong(ctx, ll(value)));
}

/// Replies with an error line (`CODE message`; no NUL bytes).
pub fn reply_error(ctx: Ctx, line: &str) {
    match std::ffi::CString::new(line) {
        Ok(line) => {
            api!(RedisModule_ReplyWithError(ctx, line.as_ptr()));
        }
        // Every reply must be sent; our texts hold no NUL, so never here.
        Err(_) => reply_null(ctx),
    }
}

/// Replies with null.
pub fn reply_null(ctx: Ctx) {
    api!(RedisModule_ReplyWithNull(ctx));
}

/// One value of a map reply.
#[derive(Debug, Clone, Copy)]
pub enum Field<'a> {
    Int(i64),
    /// A bulk string, or null.
    Bulk(Option<&'a [u8]>),
}

/// Replies with a map of mixed values, in the given order (a flat array in
/// RESP2).
pub fn reply_fields(ctx: Ctx, fields: &[(&str, Field<'_>)]) {
    let len = std::os::raw::c_long::try_from(fields.len()).unwrap_or(0);
    raw::reply_with_map(ctx, len);
    for (name, value) in fields {
        api!(RedisModule_ReplyWithStringBuffer(
            ctx,
            name.as_ptr().cast(),
            name.len()
        ));
        match value {
            Field::Int(n) => {
                api!(RedisModule_ReplyWithLongLong(ctx, *n));
            }
            Field::Bulk(Some(bytes)) => {
                api!(RedisModule_ReplyWithStringBuffer(
                    ctx,
                    bytes.as_ptr().cast(),
                    bytes.len()
                ));
            }
            Field::Bulk(None) => reply_null(ctx),
        }
    }
}

/// Replies with a map of integers, in the given order (a flat array in RESP2).
pub fn reply_map(ctx: Ctx, fields: &[(&str, i64)]) {
    let len = std::os::raw::c_long::try_from(fields.len()).unwrap_or(0);
    raw::reply_with_map(ctx, len);
    for (name, value) in fields {
        api!(RedisModule_ReplyWithStringBuffer(
            ctx,
            name.as_ptr().cast(),
            name.len()
        ));
        api!(RedisModule_ReplyWithLongLong(ctx, *value));
    }
}
