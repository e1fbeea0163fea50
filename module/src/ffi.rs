//! Thin wrappers over the parts of the raw Redis module API that the safe
//! `redis-module` crate does not cover: blocking with reply, timeout and free
//! callbacks, timers that carry our own data, replication of effects, keyspace
//! scans, server events and the INFO section.
//!
//! Every wrapper checks the API pointer: a missing function is a no-op or a
//! `None`, never a panic (a panic here would take Redis down).

use redis_module::raw;
use std::ffi::{c_void, CStr};
use std::os::raw::{c_char, c_int, c_longlong};

/// A raw module context.
pub type Ctx = *mut raw::RedisModuleCtx;
/// A raw blocked-client handle.
pub type BlockedClient = *mut raw::RedisModuleBlockedClient;

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

/// A monotonic clock in µs, for bounding the work of one batch.
pub fn monotonic_us() -> u64 {
    api!(RedisModule_MonotonicMicroseconds()).unwrap_or(0)
}

/// The context flags (`REDISMODULE_CTX_FLAGS_*`).
pub fn context_flags(ctx: Ctx) -> u32 {
    api!(RedisModule_GetContextFlags(ctx)).map_or(0, |flags| flags as u32)
}

/// True on a primary (not a replica).
pub fn is_primary(ctx: Ctx) -> bool {
    context_flags(ctx) & raw::REDISMODULE_CTX_FLAGS_SLAVE == 0
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
/// timers, precise to the ms rather than to `hz`).
pub fn block_client(
    ctx: Ctx,
    reply: raw::RedisModuleCmdFunc,
    timeout: raw::RedisModuleCmdFunc,
    free_privdata: Option<unsafe extern "C" fn(Ctx, *mut c_void)>,
) -> Option<BlockedClient> {
    api!(RedisModule_BlockClient(
        ctx,
        reply,
        timeout,
        free_privdata,
        0
    ))
    .filter(|bc| !bc.is_null())
}

/// Registers the callback Redis calls when a blocked client disconnects.
pub fn set_disconnect_callback(bc: BlockedClient, callback: raw::RedisModuleDisconnectFunc) {
    api!(RedisModule_SetDisconnectCallback(bc, callback));
}

/// Unblocks a client; `privdata` reaches the reply callback and then the free
/// callback. Must be called exactly once per blocked client.
pub fn unblock_client(bc: BlockedClient, privdata: *mut c_void) {
    api!(RedisModule_UnblockClient(bc, privdata));
}

/// The private data passed to `unblock_client`, inside a reply callback.
pub fn blocked_private_data(ctx: Ctx) -> *mut c_void {
    api!(RedisModule_GetBlockedClientPrivateData(ctx)).unwrap_or(std::ptr::null_mut())
}

/// The blocked-client handle, inside a timeout callback.
pub fn blocked_client_handle(ctx: Ctx) -> BlockedClient {
    api!(RedisModule_GetBlockedClientHandle(ctx)).unwrap_or(std::ptr::null_mut())
}

/// Starts a one-shot timer. `data` is handed back to `callback`.
pub fn create_timer(
    ctx: Ctx,
    ms: u64,
    callback: raw::RedisModuleTimerProc,
    data: *mut c_void,
) -> u64 {
    let period = c_longlong::try_from(ms).unwrap_or(c_longlong::MAX);
    api!(RedisModule_CreateTimer(ctx, period, callback, data)).unwrap_or(0)
}

/// Stops a timer that has not fired; returns its data pointer so the caller
/// can free it with the right type.
pub fn stop_timer(ctx: Ctx, id: u64) -> Option<*mut c_void> {
    let mut data: *mut c_void = std::ptr::null_mut();
    let status = api!(RedisModule_StopTimer(ctx, id, &mut data))?;
    (status == raw::REDISMODULE_OK as c_int).then_some(data)
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

/// Propagates `LOCK.APPLY key token fence expire-at-ms` to replicas and AOF.
pub fn replicate_apply(ctx: Ctx, key: &[u8], token: &[u8], fence: u64, expires_at: u64) {
    // SAFETY: the format "bbll" is matched by (ptr, len), (ptr, len), ll, ll.
    unsafe {
        if let Some(replicate) = raw::RedisModule_Replicate {
            replicate(
                ctx,
                c"LOCK.APPLY".as_ptr(),
                c"bbll".as_ptr(),
                key.as_ptr().cast::<c_char>(),
                key.len(),
                token.as_ptr().cast::<c_char>(),
                token.len(),
                ll(fence),
                ll(expires_at),
            );
        }
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

/// Writes `LOCK.APPLY key token fence expire-at-ms` into an AOF rewrite.
pub fn emit_aof_apply(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    token: &[u8],
    fence: u64,
    expires_at: u64,
) {
    // SAFETY: the format "sbll" is matched by a module string, (ptr, len), ll, ll.
    unsafe {
        if let Some(emit) = raw::RedisModule_EmitAOF {
            emit(
                aof,
                c"LOCK.APPLY".as_ptr(),
                c"sbll".as_ptr(),
                key,
                token.as_ptr().cast::<c_char>(),
                token.len(),
                ll(fence),
                ll(expires_at),
            );
        }
    }
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
    .filter(|name| !name.is_null())
    // SAFETY: a NUL-terminated string owned by `info`, read before it is freed.
    .is_some_and(|name| unsafe { CStr::from_ptr(name) }.to_bytes() == b"valkey");
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
