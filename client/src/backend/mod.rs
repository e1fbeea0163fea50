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
//! Every call names what it is about with a [`Kind`]: a lock, or a lease of
//! a semaphore (whose limit and permits the acquire sends); each backend
//! runs both through one code path.
//!
//! Every backend's `acquire` is cancel safe in the same way: a wait dropped
//! midway leaves the queue, and a grant that raced with the drop is released
//! in the background.

use std::time::Duration;

use tokio::time::Instant;

use baton_core::wire::{INFO_FIELDS, SEM_INFO_FIELDS, STATS_FIELDS};

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

/// What a call is about: a lock, or a lease of a semaphore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A lock (`LOCK.*`).
    Lock,
    /// A lease of `permits` of a semaphore of `limit` permits (`SEM.*`; a
    /// read-write lock is one too). Release and extend name only the token.
    Sem { limit: u32, permits: u32 },
}

impl Kind {
    /// What a guard of this kind holds, for messages.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Kind::Lock => "lock",
            Kind::Sem { .. } => "lease",
        }
    }

    /// Turns a refusal that the server words ([`wire::other_limit`],
    /// [`wire::other_permits`]) into its own variant; any other error
    /// passes as it is.
    ///
    /// [`wire::other_limit`]: baton_core::wire::other_limit
    /// [`wire::other_permits`]: baton_core::wire::other_permits
    fn refusal(self, key: &str, e: Error) -> Error {
        let (Kind::Sem { limit, permits }, Error::Redis(redis)) = (self, &e) else {
            return e;
        };
        let (Some("ERR"), Some(detail)) = (redis.code(), redis.detail()) else {
            return e;
        };
        let key = key.to_owned();
        if let Some(held) = two_numbers(detail, "the semaphore's limit is ", limit) {
            return Error::OtherLimit {
                key,
                limit: held,
                asked: limit,
            };
        }
        if let Some(held) = two_numbers(detail, "the token holds ", permits) {
            return Error::OtherPermits {
                key,
                held,
                asked: permits,
            };
        }
        e
    }
}

/// The number in `<prefix><n>[ permits], not <asked>` (the wording of
/// `wire::other_limit` and `wire::other_permits`), when `asked` matches.
fn two_numbers(detail: &str, prefix: &str, asked: u32) -> Option<u32> {
    let (held, rest) = detail.strip_prefix(prefix)?.split_once(", not ")?;
    let held = held.strip_suffix(" permits").unwrap_or(held);
    (rest.parse::<u32>().ok()? == asked).then_some(())?;
    held.parse().ok()
}

/// A semaphore's state as `SEM.INFO` reports it (a read-write lock's too).
/// All zero for a semaphore that nobody holds or waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SemInfo {
    /// Its number of permits, set by the acquire that created it (0 when
    /// nobody holds or waits).
    pub limit: u32,
    /// Permits held by live leases.
    pub used: u32,
    /// Live leases.
    pub holders: u64,
    /// Requests in the queue.
    pub waiters: u64,
    /// The last fence issued on the semaphore (0 once it was forgotten).
    pub fence: u64,
}

pub(crate) fn sem_info_from_pairs(pairs: &[(String, i64)]) -> SemInfo {
    let get = |name: &str| {
        let v = pairs.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v);
        v.max(0) as u64
    };
    let [limit, used, holders, waiters, fence] = SEM_INFO_FIELDS.map(get);
    SemInfo {
        limit: u32::try_from(limit).unwrap_or(u32::MAX),
        used: u32::try_from(used).unwrap_or(u32::MAX),
        holders,
        waiters,
        fence,
    }
}

/// The backend a client uses: what [`Backend::Auto`] chose, or what was
/// asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The baton Redis module.
    Module,
    /// The Lua scripts.
    Lua,
    /// In-process.
    Memory,
}

/// A kind equals the [`Backend`] that asks for it: `BackendKind::Lua ==
/// Backend::Lua` (never `Backend::Auto`).
impl PartialEq<Backend> for BackendKind {
    fn eq(&self, other: &Backend) -> bool {
        matches!(
            (self, other),
            (Self::Module, Backend::Module)
                | (Self::Lua, Backend::Lua)
                | (Self::Memory, Backend::Memory)
        )
    }
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
/// (see [`Stats::client_side`]). Locks only: semaphores and read-write locks
/// are not counted here (the module shows their counters in `INFO baton`).
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
            return Err(Error::UnexpectedReply(format!(
                "{other:?} where a map was expected"
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

    pub(crate) fn kind(&self) -> BackendKind {
        match self {
            Imp::Module(_) => BackendKind::Module,
            Imp::Lua(_) => BackendKind::Lua,
            Imp::Memory(_) => BackendKind::Memory,
        }
    }

    /// Acquire, waiting up to `wait`, storing `meta` with the holder (a
    /// lock's only). `Ok(None)`: not granted in time.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn acquire(
        &self,
        rt: &crate::client::Runtime,
        kind: Kind,
        key: &str,
        token: &str,
        ttl: Duration,
        wait: Duration,
        meta: Option<&[u8]>,
    ) -> Result<Option<Granted>> {
        dispatch!(self, b => b.acquire(rt, kind, key, token, ttl, wait, meta).await)
            .map_err(|e| kind.refusal(key, e))
    }

    pub(crate) async fn release(&self, kind: Kind, key: &str, token: &str) -> Result<bool> {
        dispatch!(self, b => b.release(kind, key, token).await)
    }

    pub(crate) async fn extend(
        &self,
        kind: Kind,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool> {
        dispatch!(self, b => b.extend(kind, key, token, ttl, None).await)
    }

    /// A lock's extend that also replaces the holder's value
    /// (`LOCK.EXTEND ... META`); never a grant.
    pub(crate) async fn extend_meta(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
        meta: &[u8],
    ) -> Result<bool> {
        dispatch!(self, b => b.extend(Kind::Lock, key, token, ttl, Some(meta)).await)
    }

    /// Removes every lease of semaphore `key`; how many there were.
    pub(crate) async fn sem_force_release(&self, key: &str) -> Result<u64> {
        dispatch!(self, b => b.sem_force_release(key).await)
    }

    pub(crate) async fn sem_info(&self, key: &str) -> Result<SemInfo> {
        dispatch!(self, b => b.sem_info(key).await)
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

    /// After a grant: an EXTEND by `token` (which proves the lock or lease
    /// still held), then `WAIT replicas timeout`. The replicas that
    /// acknowledged; [`Error::Lost`] when the EXTEND answered 0.
    pub(crate) async fn wait_replicas(
        &self,
        kind: Kind,
        key: &str,
        token: &str,
        ttl: Duration,
        replicas: u64,
        timeout: Duration,
    ) -> Result<u64> {
        let acked =
            dispatch!(self, b => b.wait_replicas(kind, key, token, ttl, replicas, timeout).await)?;
        acked.ok_or_else(|| Error::Lost {
            key: key.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::wire;

    fn server_error(text: &str) -> Error {
        let (code, detail) = text.split_once(' ').unwrap();
        Error::Redis(redis::make_extension_error(
            code.into(),
            Some(detail.into()),
        ))
    }

    #[test]
    fn the_servers_refusals_become_their_variants() {
        let sem = Kind::Sem {
            limit: 3,
            permits: 1,
        };
        let e = sem.refusal("k", server_error(&wire::other_limit(5, 3)));
        assert!(
            matches!(&e, Error::OtherLimit { key, limit: 5, asked: 3 } if key == "k"),
            "{e:?}"
        );
        let e = sem.refusal("k", server_error(&wire::other_permits(2, 1)));
        assert!(
            matches!(
                e,
                Error::OtherPermits {
                    held: 2,
                    asked: 1,
                    ..
                }
            ),
            "{e:?}"
        );
        // Another text, or a lock, stays a Redis error.
        let e = sem.refusal("k", server_error(wire::ALREADY_WAITING));
        assert!(matches!(e, Error::Redis(_)), "{e:?}");
        let e = Kind::Lock.refusal("k", server_error(&wire::other_limit(5, 3)));
        assert!(matches!(e, Error::Redis(_)), "{e:?}");
    }
}
