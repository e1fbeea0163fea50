//! The three backends behind [`Client`](crate::Client), dispatched by an enum.
//!
//! - [`module`]: `LOCK.*` commands of the baton Redis module; waits block on
//!   the server.
//! - [`lua`]: the scripts of `lua/`, run by EVALSHA; waits are client loops
//!   woken by pub/sub.
//! - [`memory`]: in-process, on `baton-core`.
//! - [`conns`]: connections to one node or to a Redis Cluster (pool,
//!   cluster detection, dedicated connections to a key's node, redirects).
//!
//! Every backend's `acquire` is cancel safe in the same way: a wait dropped
//! midway leaves the queue, and a grant that raced with the drop is released
//! in the background.

use std::time::Duration;

use tokio::time::Instant;

use baton_core::wire::{INFO_FIELDS, STATS_FIELDS};

use crate::error::{Error, Result};

pub(crate) mod conns;
pub(crate) mod lua;
pub(crate) mod memory;
pub(crate) mod module;

pub(crate) use conns::{Conns, Mode};

/// Which backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// The module when the server has it loaded, else Lua (with a warning).
    #[default]
    Auto,
    /// The baton Redis module (`LOCK.*` commands).
    Module,
    /// The Lua scripts, for servers without the module.
    Lua,
    /// In-process only, not distributed.
    Memory,
}

/// A lock's state as `LOCK.INFO` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LockInfo {
    /// Whether someone holds the lock.
    pub held: bool,
    /// The holder's fence, 0 when free.
    pub fence: u64,
    /// Milliseconds left, `None` when free.
    pub pttl: Option<u64>,
    /// Waiters in the queue.
    pub waiters: u64,
    /// The value the holder stored with the lock (`META`), if any.
    pub meta: Option<Vec<u8>>,
}

/// Counters as `LOCK.STATS` reports them. The module reports node-wide
/// counters, and on a Redis Cluster the sum over every primary (each node
/// counts only the locks of its own slots); the memory backend its own; the
/// Lua backend has no server-side counters and reports what this client did
/// (see [`Stats::client_side`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Lock keys in memory.
    pub locks: u64,
    /// Locks with a holder.
    pub held: u64,
    /// Waiters now.
    pub waiters: u64,
    /// Grants, hand-offs included.
    pub grants: u64,
    /// Releases.
    pub releases: u64,
    /// Extends.
    pub extends: u64,
    /// Expirations.
    pub expirations: u64,
    /// Waits that timed out.
    pub wait_timeouts: u64,
    /// Force-releases that removed a holder.
    pub force_releases: u64,
    /// True when the numbers count only this client's own calls (Lua).
    pub client_side: bool,
}

impl Stats {
    pub(crate) fn from_pairs(pairs: &[(String, i64)]) -> Self {
        let mut s = Stats::default();
        // In the order of `wire::STATS_FIELDS`.
        let fields = [
            &mut s.locks,
            &mut s.held,
            &mut s.waiters,
            &mut s.grants,
            &mut s.releases,
            &mut s.extends,
            &mut s.expirations,
            &mut s.wait_timeouts,
            &mut s.force_releases,
        ];
        for (field, name) in fields.into_iter().zip(STATS_FIELDS) {
            if let Some((_, v)) = pairs.iter().find(|(n, _)| n == name) {
                *field = (*v).max(0) as u64;
            }
        }
        s
    }

    /// Adds what one change counted (the memory backend's own counters).
    pub(crate) fn count(&mut self, counts: &baton_core::Counts) {
        self.grants += counts.grants;
        self.releases += counts.releases;
        self.extends += counts.extends;
        self.expirations += counts.expirations;
        self.force_releases += counts.force_releases;
    }

    /// Adds `other` field by field (the counters of another cluster node).
    pub(crate) fn add(&mut self, other: &Stats) {
        self.locks += other.locks;
        self.held += other.held;
        self.waiters += other.waiters;
        self.grants += other.grants;
        self.releases += other.releases;
        self.extends += other.extends;
        self.expirations += other.expirations;
        self.wait_timeouts += other.wait_timeouts;
        self.force_releases += other.force_releases;
        self.client_side |= other.client_side;
    }
}

pub(crate) fn info_reply(v: redis::Value) -> Result<LockInfo> {
    let mut meta = None;
    let mut ints = Vec::new();
    for (name, value) in fields(v)? {
        if name == "meta" {
            meta = redis::from_redis_value::<Option<Vec<u8>>>(value)
                .map_err(redis::RedisError::from)?;
        } else {
            ints.push((name, int_field(value)?));
        }
    }
    let get = |name: &str| ints.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    let [held, fence, pttl, waiters, _meta] = INFO_FIELDS.map(get);
    Ok(LockInfo {
        held: held.is_some_and(|v| v != 0),
        fence: fence.map_or(0, |v| v.max(0) as u64),
        pttl: pttl.filter(|v| *v >= 0).map(|v| v as u64),
        waiters: waiters.map_or(0, |v| v.max(0) as u64),
        meta,
    })
}

fn int_field(v: redis::Value) -> Result<i64> {
    Ok(redis::from_redis_value(v).map_err(redis::RedisError::from)?)
}

/// Parses a RESP2 flat map or a RESP3 map into name/integer pairs.
pub(crate) fn pairs(v: redis::Value) -> Result<Vec<(String, i64)>> {
    fields(v)?
        .into_iter()
        .map(|(name, value)| Ok((name, int_field(value)?)))
        .collect()
}

/// Parses a RESP2 flat map or a RESP3 map into name/value pairs.
fn fields(v: redis::Value) -> Result<Vec<(String, redis::Value)>> {
    use redis::Value;
    let items: Vec<(Value, Value)> = match v {
        Value::Map(m) => m,
        Value::Array(a) => {
            let mut it = a.into_iter();
            let mut out = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((k, v));
            }
            out
        }
        other => {
            return Err(Error::BackendUnavailable(format!(
                "unexpected reply {other:?}"
            )))
        }
    };
    items
        .into_iter()
        .map(|(k, v)| {
            let k: String = redis::from_redis_value(k).map_err(redis::RedisError::from)?;
            Ok((k, v))
        })
        .collect()
}

/// A grant as a backend saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Granted {
    pub(crate) fence: u64,
    /// No later than the instant from which the server counts the grant's
    /// ttl (the send time of the call that granted or renewed it, or the
    /// memory backend's hand-off): the server's expiry is no earlier than
    /// `since + ttl`.
    pub(crate) since: Instant,
    /// `since` is when a server-side wait was sent, and the server may have
    /// granted it at any time after (a module hand-off): `since + ttl`
    /// can then be far short of the real expiry, even past already.
    pub(crate) blind: bool,
}

/// The backend a client runs on.
#[derive(Debug)]
pub(crate) enum Imp {
    Module(module::ModuleBackend),
    Lua(lua::LuaBackend),
    Memory(memory::MemoryBackend),
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            Imp::Module($b) => $e,
            Imp::Lua($b) => $e,
            Imp::Memory($b) => $e,
        }
    };
}

impl Imp {
    /// True when the backend talks to a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        match self {
            Imp::Module(b) => b.conns().is_cluster(),
            Imp::Lua(b) => b.conns().is_cluster(),
            Imp::Memory(_) => false,
        }
    }

    pub(crate) fn kind(&self) -> Backend {
        match self {
            Imp::Module(_) => Backend::Module,
            Imp::Lua(_) => Backend::Lua,
            Imp::Memory(_) => Backend::Memory,
        }
    }

    /// Acquire, waiting up to `wait`. `Ok(None)`: not granted in time.
    pub(crate) async fn acquire(
        &self,
        rt: &crate::client::Runtime,
        key: &str,
        token: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Option<Granted>> {
        dispatch!(self, b => b.acquire(rt, key, token, ttl, wait).await)
    }

    pub(crate) async fn release(&self, key: &str, token: &str) -> Result<bool> {
        dispatch!(self, b => b.release(key, token).await)
    }

    pub(crate) async fn extend(&self, key: &str, token: &str, ttl: Duration) -> Result<bool> {
        dispatch!(self, b => b.extend(key, token, ttl).await)
    }

    pub(crate) async fn force_release(&self, key: &str) -> Result<bool> {
        dispatch!(self, b => b.force_release(key).await)
    }

    pub(crate) async fn fence(&self, key: &str) -> Result<u64> {
        dispatch!(self, b => b.fence(key).await)
    }

    pub(crate) async fn info(&self, key: &str) -> Result<LockInfo> {
        dispatch!(self, b => b.info(key).await)
    }

    pub(crate) async fn stats(&self) -> Result<Stats> {
        dispatch!(self, b => b.stats().await)
    }

    /// After a grant: an EXTEND by `token` (which proves the lock still
    /// held), then `WAIT replicas timeout`. The replicas that acknowledged;
    /// [`Error::Lost`] when the EXTEND answered 0.
    pub(crate) async fn wait_replicas(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
        replicas: u64,
        timeout: Duration,
    ) -> Result<u64> {
        let acked =
            dispatch!(self, b => b.wait_replicas(key, token, ttl, replicas, timeout).await)?;
        acked.ok_or_else(|| Error::Lost {
            key: key.to_owned(),
        })
    }
}
