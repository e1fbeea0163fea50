//! Typed wrappers for the `LOCK.*` commands, for tests that are about the
//! lock, not about parsing replies.
//!
//! Each wrapper panics on an error reply or an unexpected reply type; tests
//! that expect an error send the command themselves and check
//! [`err_text`].

use std::collections::BTreeMap;

use redis::{Connection, RedisError, Value};

/// The fields of `LOCK.INFO key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// The lock has a holder.
    pub held: bool,
    /// The holder's fence (0 when free).
    pub fence: i64,
    /// Milliseconds left (-1 when free).
    pub pttl: i64,
    /// Blocked waiters in the queue.
    pub waiters: i64,
    /// The holder's value (`META`), `None` when free or none.
    pub meta: Option<Vec<u8>>,
}

/// `LOCK.STATS` as name → value.
pub type Stats = BTreeMap<String, i64>;

/// The fields `LOCK.INFO` replies and the counters of `LOCK.STATS`, in
/// reply order (the protocol's names, from `baton_core::wire`).
pub use baton_core::wire::{INFO_FIELDS, STATS_FIELDS};

/// The full error line as Redis sent it, e.g. `ERR token must be 1 to 256
/// bytes` or `WRONGTYPE Operation against ...`.
pub fn err_text(e: &RedisError) -> String {
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => e.to_string(),
    }
}

/// Sends a command given as raw arguments and returns the raw reply (errors
/// as `Err`).
pub fn raw(con: &mut Connection, args: &[&[u8]]) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).unwrap_or("LOCK.INVALID"));
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(con)
}

/// Sends a command that must fail and returns its error text.
#[track_caller]
pub fn expect_err(con: &mut Connection, args: &[&[u8]]) -> String {
    match raw(con, args) {
        Err(e) => err_text(&e),
        Ok(v) => panic!("expected an error from {}, got {v:?}", show(args)),
    }
}

/// Arguments as a readable line, for messages.
pub fn show(args: &[&[u8]]) -> String {
    args.iter()
        .map(|a| format!("{:?}", String::from_utf8_lossy(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `LOCK.ACQUIRE key token ttl`: the fence, or `None` when not granted.
#[track_caller]
pub fn acquire(con: &mut Connection, key: &[u8], token: &[u8], ttl: u64) -> Option<i64> {
    redis::cmd("LOCK.ACQUIRE")
        .arg(key)
        .arg(token)
        .arg(ttl)
        .query(con)
        .unwrap_or_else(|e| panic!("LOCK.ACQUIRE failed: {}", err_text(&e)))
}

/// `LOCK.ACQUIRE key token ttl WAIT wait`.
#[track_caller]
pub fn acquire_wait(
    con: &mut Connection,
    key: &[u8],
    token: &[u8],
    ttl: u64,
    wait: u64,
) -> Option<i64> {
    try_acquire_wait(con, key, token, ttl, wait)
        .unwrap_or_else(|e| panic!("LOCK.ACQUIRE WAIT failed: {}", err_text(&e)))
}

/// `LOCK.ACQUIRE key token ttl WAIT wait`, errors returned.
pub fn try_acquire_wait(
    con: &mut Connection,
    key: &[u8],
    token: &[u8],
    ttl: u64,
    wait: u64,
) -> redis::RedisResult<Option<i64>> {
    redis::cmd("LOCK.ACQUIRE")
        .arg(key)
        .arg(token)
        .arg(ttl)
        .arg("WAIT")
        .arg(wait)
        .query(con)
}

/// `LOCK.RELEASE key token`: 1 released, 0 not the holder.
#[track_caller]
pub fn release(con: &mut Connection, key: &[u8], token: &[u8]) -> i64 {
    redis::cmd("LOCK.RELEASE")
        .arg(key)
        .arg(token)
        .query(con)
        .unwrap_or_else(|e| panic!("LOCK.RELEASE failed: {}", err_text(&e)))
}

/// `LOCK.EXTEND key token ttl`: 1 extended, 0 not the holder.
#[track_caller]
pub fn extend(con: &mut Connection, key: &[u8], token: &[u8], ttl: u64) -> i64 {
    redis::cmd("LOCK.EXTEND")
        .arg(key)
        .arg(token)
        .arg(ttl)
        .query(con)
        .unwrap_or_else(|e| panic!("LOCK.EXTEND failed: {}", err_text(&e)))
}

/// `LOCK.FORCERELEASE key`: 1 a holder was removed, 0 none.
#[track_caller]
pub fn force_release(con: &mut Connection, key: &[u8]) -> i64 {
    redis::cmd("LOCK.FORCERELEASE")
        .arg(key)
        .query(con)
        .unwrap_or_else(|e| panic!("LOCK.FORCERELEASE failed: {}", err_text(&e)))
}

/// `LOCK.FENCE key`.
#[track_caller]
pub fn fence(con: &mut Connection, key: &[u8]) -> i64 {
    redis::cmd("LOCK.FENCE")
        .arg(key)
        .query(con)
        .unwrap_or_else(|e| panic!("LOCK.FENCE failed: {}", err_text(&e)))
}

/// `LOCK.INFO key`, parsed.
#[track_caller]
pub fn info(con: &mut Connection, key: &[u8]) -> LockInfo {
    let v: Value = redis::cmd("LOCK.INFO")
        .arg(key)
        .query(con)
        .unwrap_or_else(|e| panic!("LOCK.INFO failed: {}", err_text(&e)));
    let (meta, ints) = split_meta(&v).unwrap_or_else(|| panic!("LOCK.INFO is not a map: {v:?}"));
    let map =
        to_int_map(&ints).unwrap_or_else(|| panic!("LOCK.INFO is not a map of integers: {v:?}"));
    let get = |name: &str| {
        *map.get(name)
            .unwrap_or_else(|| panic!("LOCK.INFO has no {name:?}: {v:?}"))
    };
    LockInfo {
        held: get("held") == 1,
        fence: get("fence"),
        pttl: get("pttl"),
        waiters: get("waiters"),
        meta,
    }
}

/// `LOCK.INFO`'s `meta` (a bulk string or null), and the rest of the map.
/// `None` when there is no `meta` field or the reply is not a map.
pub fn split_meta(v: &Value) -> Option<(Option<Vec<u8>>, Value)> {
    let pairs: Vec<(Value, Value)> = match v {
        Value::Array(items) if items.len() % 2 == 0 => items
            .chunks(2)
            .map(|c| (c[0].clone(), c[1].clone()))
            .collect(),
        Value::Map(items) => items.clone(),
        _ => return None,
    };
    let is_meta = |k: &Value| matches!(k, Value::BulkString(b) if b.as_slice() == b"meta");
    let meta = pairs
        .iter()
        .find(|(k, _)| is_meta(k))
        .map(|(_, v)| v.clone())?;
    let meta = match meta {
        Value::BulkString(b) => Some(b),
        Value::Nil => None,
        _ => return None,
    };
    let rest = pairs.into_iter().filter(|(k, _)| !is_meta(k));
    Some((meta, Value::Map(rest.collect())))
}

/// `LOCK.STATS`, parsed.
#[track_caller]
pub fn stats(con: &mut Connection) -> Stats {
    let v: Value = redis::cmd("LOCK.STATS")
        .query(con)
        .unwrap_or_else(|e| panic!("LOCK.STATS failed: {}", err_text(&e)));
    to_int_map(&v).unwrap_or_else(|| panic!("LOCK.STATS is not a map of integers: {v:?}"))
}

/// A map reply of integers (RESP2 flat array `[name, value, ...]` or RESP3
/// map) as name → value; `None` when it is anything else.
pub fn to_int_map(v: &Value) -> Option<BTreeMap<String, i64>> {
    let pairs: Vec<(&Value, &Value)> = match v {
        Value::Array(items) if items.len() % 2 == 0 => {
            items.chunks(2).map(|c| (&c[0], &c[1])).collect()
        }
        Value::Map(items) => items.iter().map(|(k, v)| (k, v)).collect(),
        _ => return None,
    };
    let mut map = BTreeMap::new();
    for (k, v) in pairs {
        let name = match k {
            Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
            Value::SimpleString(s) => s.clone(),
            _ => return None,
        };
        let Value::Int(n) = v else { return None };
        if map.insert(name, *n).is_some() {
            return None;
        }
    }
    Some(map)
}

/// `SEM.ACQUIRE key token ttl LIMIT limit PERMITS permits`: the fence, or
/// `None` when not granted.
#[track_caller]
pub fn sem_acquire(
    con: &mut Connection,
    key: &[u8],
    token: &[u8],
    ttl: u64,
    permits: u64,
    limit: u64,
) -> Option<i64> {
    redis::cmd("SEM.ACQUIRE")
        .arg(key)
        .arg(token)
        .arg(ttl)
        .arg("LIMIT")
        .arg(limit)
        .arg("PERMITS")
        .arg(permits)
        .query(con)
        .unwrap_or_else(|e| panic!("SEM.ACQUIRE failed: {}", err_text(&e)))
}

/// `SEM.RELEASE key token`: 1 released, 0 no lease.
#[track_caller]
pub fn sem_release(con: &mut Connection, key: &[u8], token: &[u8]) -> i64 {
    redis::cmd("SEM.RELEASE")
        .arg(key)
        .arg(token)
        .query(con)
        .unwrap_or_else(|e| panic!("SEM.RELEASE failed: {}", err_text(&e)))
}

/// `SEM.INFO key` as field -> value (`limit`, `used`, `holders`,
/// `waiters`, `fence`).
#[track_caller]
pub fn sem_info(con: &mut Connection, key: &[u8]) -> BTreeMap<String, i64> {
    let v: Value = redis::cmd("SEM.INFO")
        .arg(key)
        .query(con)
        .unwrap_or_else(|e| panic!("SEM.INFO failed: {}", err_text(&e)));
    to_int_map(&v).unwrap_or_else(|| panic!("SEM.INFO is not a map of integers: {v:?}"))
}

/// `EXISTS key` (does not run module code, so it cannot expire the lock
/// lazily).
pub fn exists(con: &mut Connection, key: &[u8]) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query::<i64>(con)
        .expect("EXISTS")
        == 1
}
