//! [`Client`] and its builder: backend choice, lock calls, the semaphore
//! and read-write lock handles, background tasks; the one acquire path
//! ([`Client::try_hold`]) that locks and leases share.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;

use crate::backend::module::{self, Detected, ModuleBackend};
use crate::backend::{lua::LuaBackend, memory::MemoryBackend};
use crate::backend::{Backend, BackendKind, Conns, Imp, Kind, LockInfo, Mode, Stats};
#[cfg(feature = "bus")]
use crate::bus::Bus;
use crate::error::{redact_url, validate_key, Error, Result};
use crate::guard::{Hold, LockGuard};
use crate::options::{Durable, LockOptions};
use crate::semaphore::{RwLock, Semaphore};

/// Where background work (drop releases, cancelled-wait cleanup, watchdogs)
/// runs: the runtime the client was built in (else the current one), short
/// work tracked by a `TaskTracker`. A task spawned on a runtime that has
/// shut down is dropped unpolled (tokio does not panic).
#[derive(Debug)]
pub(crate) struct Runtime {
    handle: Option<tokio::runtime::Handle>,
    pub(crate) tracker: TaskTracker,
}

impl Runtime {
    pub(crate) fn current() -> Self {
        Self {
            handle: tokio::runtime::Handle::try_current().ok(),
            tracker: TaskTracker::new(),
        }
    }

    /// Spawns short background work on the client's runtime, tracked so
    /// that [`Client::flush`] waits for it; never panics, even outside a
    /// runtime (the task is then dropped with a warning, and the ttl frees
    /// the lock).
    pub(crate) fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match self.handle() {
            Some(h) => {
                self.tracker.spawn_on(fut, &h);
            }
            None => tracing::warn!(
                "no tokio runtime: background lock work skipped; the ttl will free the lock"
            ),
        }
    }

    /// Spawns a long-lived task (the Lua pub/sub reader, watchdogs) on the
    /// client's runtime, outside the tracker: [`Client::flush`] must not
    /// wait for it. `false` without a runtime (`fut` is then dropped).
    pub(crate) fn spawn_untracked<F>(&self, fut: F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match self.handle() {
            Some(h) => {
                h.spawn(fut);
                true
            }
            None => false,
        }
    }

    fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.handle
            .clone()
            .or_else(|| tokio::runtime::Handle::try_current().ok())
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) imp: Imp,
    pub(crate) rt: Runtime,
    /// Starts the watchdogs of this client's guards.
    pub(crate) watchdogs: Arc<crate::watchdog::Starter>,
    #[cfg(feature = "bus")]
    pub(crate) bus: Bus,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // No guard is left (each holds a client): the starter task ends.
        self.watchdogs.close();
    }
}

/// A handle on a lock backend. Cheap to clone: clones share the connection, the
/// pub/sub connection and the background tasks.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

/// Builds a [`Client`]; see [`Client::builder`].
#[derive(Clone)]
pub struct ClientBuilder {
    url: String,
    backend: Backend,
    mode: Mode,
    /// CA certificates (PEM) to trust for `rediss://` instead of the
    /// system's roots.
    tls_ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password: builders end up in logs and panics.
        f.debug_struct("ClientBuilder")
            .field("url", &redact_url(&self.url))
            .field("backend", &self.backend)
            .field("mode", &self.mode)
            .field("tls_ca", &self.tls_ca.as_ref().map(|_| "<PEM>"))
            .finish()
    }
}

impl ClientBuilder {
    /// Chooses the backend (default [`Backend::Auto`]).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Whether the URL is one seed node of a Redis Cluster (`true`) or a
    /// single server (`false`). By default the seed is asked (`INFO
    /// cluster`: `cluster_enabled:1`). In cluster mode the rest of the
    /// cluster is discovered from the seed, commands go to the node that
    /// serves each lock, and server-side waits connect to that node.
    pub fn cluster(mut self, on: bool) -> Self {
        self.mode = if on { Mode::Cluster } else { Mode::Single };
        self
    }

    /// Trusts the CA certificates in `pem` (one or more, PEM) for a
    /// `rediss://` URL instead of the system's roots: for managed Redis or
    /// servers with a private CA. Every connection of the client checks the
    /// server's certificate against them, and its name against the URL's
    /// host. Without it the system's roots are used (and `SSL_CERT_FILE`,
    /// when set). Needs the `tls` feature.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = baton_client::Client::builder("rediss://:password@redis.internal:6380")
    ///     .tls_ca(std::fs::read("/etc/redis/ca.pem")?)
    ///     .build()
    ///     .await?;
    /// # let _ = client; Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_ca = Some(pem.into());
        self
    }

    /// Connects and picks the backend.
    ///
    /// # Errors
    ///
    /// [`Error::BackendUnavailable`] when an explicit backend has no support
    /// on the server (no module loaded, scripting disabled),
    /// [`Error::NoPermission`] when the module is loaded but the user may
    /// not run `LOCK.ACQUIRE` (also for [`Backend::Auto`], which then does
    /// not fall back to Lua: those locks would not exclude the module's),
    /// [`Error::Tls`] for a refused certificate, and [`Error::Redis`] /
    /// [`Error::Pool`] when the server cannot be reached.
    ///
    /// Which backend [`Backend::Auto`] chose, and why, is logged (`info`,
    /// or `warn` for the Lua fallback). It works for a user who may not run
    /// `COMMAND`, `INFO`, `CLIENT`, `CONFIG` or `MODULE`: see the README's
    /// "Managed Redis and security".
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is left behind but a dropped connection.
    pub async fn build(self) -> Result<Client> {
        let wants_module = match self.backend {
            Backend::Memory => return Ok(Client::memory()),
            Backend::Lua => false,
            Backend::Module | Backend::Auto => true,
        };
        let conns = Conns::connect(&self.url, self.mode, self.tls_ca.as_deref()).await?;
        // Asked once: a second answer could differ (a failover in between).
        let detected = match wants_module {
            true => Some(module::detect(&conns).await?),
            false => None,
        };
        let imp = match detected {
            Some(Detected::Loaded(how)) => {
                tracing::info!(%how, "baton: using the module backend");
                Imp::Module(ModuleBackend::new(conns))
            }
            // Never Lua instead: its locks live in other keys, so they
            // would not exclude the module's users of the same names.
            Some(Detected::Denied(why)) => {
                return Err(Error::NoPermission(format!(
                    "the baton module is loaded, but this user may not run LOCK.ACQUIRE \
                     ({why}); allow the lock commands (+lock.acquire +lock.release \
                     +lock.extend ...). The Lua backend is not used instead: its locks \
                     would not exclude the module's"
                )))
            }
            Some(Detected::Absent(why)) if self.backend == Backend::Module => {
                return Err(Error::BackendUnavailable(format!(
                    "the server has no baton module ({why}): \
                     load libbaton.so (MODULE LOAD) or use Backend::Lua"
                )));
            }
            Some(Detected::Absent(why)) => {
                tracing::warn!(
                    %why,
                    "baton module not loaded on the server: using the Lua backend \
                     (waits are woken by pub/sub, not blocked on the server)"
                );
                Imp::Lua(LuaBackend::connect(conns).await?)
            }
            None => {
                tracing::info!("baton: using the Lua backend (chosen by the caller)");
                Imp::Lua(LuaBackend::connect(conns).await?)
            }
        };
        Ok(Client::from_imp(imp))
    }
}

impl Client {
    /// Starts building a client for `url` (`redis://`, `rediss://` with the
    /// `tls` feature, `redis://user:pass@host:port/db`).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            backend: Backend::Auto,
            mode: Mode::Detect,
            tls_ca: None,
        }
    }

    /// An in-process client with the same lock semantics, not distributed:
    /// locks are shared only by clones of this client.
    pub fn memory() -> Self {
        tracing::warn!("baton Memory backend: locks are in-process only, not distributed");
        Self::from_imp(Imp::Memory(MemoryBackend::default()))
    }

    fn from_imp(imp: Imp) -> Self {
        #[cfg(feature = "bus")]
        let bus = match &imp {
            Imp::Module(b) => Bus::streams(b.conns().clone()),
            Imp::Lua(b) => Bus::streams(b.conns().clone()),
            Imp::Memory(_) => Bus::memory_quiet(),
        };
        Self {
            inner: Arc::new(Inner {
                imp,
                rt: Runtime::current(),
                watchdogs: Arc::default(),
                #[cfg(feature = "bus")]
                bus,
            }),
        }
    }

    /// The message bus on this client's Redis (Redis Streams, no module
    /// needed), sharing its connection pool; for a [`Client::memory`], an
    /// in-process bus shared by the client's clones.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(client: baton_client::Client) -> baton_client::Result<()> {
    /// let bus = client.bus();
    /// bus.publish("orders", &42).await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "bus")]
    pub fn bus(&self) -> Bus {
        self.inner.bus.clone()
    }

    /// The backend in use (what [`Backend::Auto`] chose).
    pub fn backend_kind(&self) -> BackendKind {
        self.inner.imp.kind()
    }

    /// True when the client talks to a Redis Cluster (see
    /// [`ClientBuilder::cluster`]).
    pub fn is_cluster(&self) -> bool {
        self.inner.imp.is_cluster()
    }

    /// Takes the lock `key`, waiting up to `opts.wait` in the FIFO queue
    /// ([`DEFAULT_WAIT`](crate::DEFAULT_WAIT) unless set; 0 = try once).
    ///
    /// # Errors
    ///
    /// [`Error::NotAcquired`] when the wait ran out, [`Error::NotReplicated`]
    /// for a durable lock whose replicas did not confirm (the lock is
    /// released), [`Error::Lost`] for a durable lock that was gone again
    /// before its replicas were asked (the EXTEND sent ahead of `WAIT`
    /// answered 0: it expired or was force-released since the grant),
    /// [`Error::InvalidKey`], [`Error::InvalidOptions`], and connection
    /// errors.
    ///
    /// # Cancel safety
    ///
    /// Cancelling the call makes you lose your place in the queue: the wait
    /// is withdrawn (on the module by a `LOCK.RELEASE` of the wait's token,
    /// which takes a queued token out of the queue, and the wait's
    /// connection is never reused; on Lua the queue entry is removed), and a grant
    /// that raced with the cancellation is released in the background. A
    /// call without a wait that is cancelled after its command went out
    /// (by a timeout, say) is released in the background too, on the same
    /// connection, so the release runs after the acquire. No lock is left
    /// behind beyond, at worst, a failed background release, which the ttl
    /// ends.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(client: baton_client::Client) -> baton_client::Result<()> {
    /// use std::time::Duration;
    /// use baton_client::LockOptions;
    /// let guard = client
    ///     .lock("orders:42", &LockOptions::new().wait(Duration::from_secs(5)))
    ///     .await?;
    /// println!("fence {}", guard.fence());
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(skip(self, opts), fields(backend = ?self.backend_kind()))]
    pub async fn lock(&self, key: &str, opts: &LockOptions) -> Result<LockGuard> {
        let hold = self.hold(Kind::Lock, key, opts, opts.wait).await?;
        Ok(LockGuard::from_hold(hold))
    }

    /// Tries once to take the lock `key`: `Ok(None)` when it is held or
    /// someone waits for it (`opts.wait` is not used).
    ///
    /// # Cancel safety
    ///
    /// As [`Client::lock`].
    pub async fn try_lock(&self, key: &str, opts: &LockOptions) -> Result<Option<LockGuard>> {
        let hold = self.try_hold(Kind::Lock, key, opts, Duration::ZERO).await?;
        Ok(hold.map(LockGuard::from_hold))
    }

    /// [`Client::try_hold`] that fails with [`Error::NotAcquired`] when not
    /// granted within `wait`.
    pub(crate) async fn hold(
        &self,
        kind: Kind,
        key: &str,
        opts: &LockOptions,
        wait: Duration,
    ) -> Result<Hold> {
        self.try_hold(kind, key, opts, wait)
            .await?
            .ok_or_else(|| Error::NotAcquired {
                key: key.to_owned(),
                wait,
            })
    }

    /// The acquire of a lock or a lease (`kind`): validates, tries or waits
    /// up to `wait`, and for a grant makes the guard, confirms a late
    /// module hand-off, starts the watchdog and runs the durable check.
    /// Cancel safe as [`Client::lock`].
    pub(crate) async fn try_hold(
        &self,
        kind: Kind,
        key: &str,
        opts: &LockOptions,
        wait: Duration,
    ) -> Result<Option<Hold>> {
        validate_key(key)?;
        opts.validate()?;
        if kind != Kind::Lock && opts.meta.is_some() {
            return Err(Error::InvalidOptions(
                "meta is for locks only: a semaphore's lease carries none".into(),
            ));
        }
        let token = new_token();
        let ttl = opts.ttl;
        let meta = opts.meta.as_deref();
        let Some(grant) = self
            .inner
            .imp
            .acquire(&self.inner.rt, kind, key, &token, ttl, wait, meta)
            .await?
        else {
            return Ok(None);
        };
        // From here on, dropping the guard releases the lock.
        let guard = Hold::new(
            self.clone(),
            kind,
            key.to_owned(),
            token,
            grant.fence,
            grant.since,
            opts,
        );
        if grant.blind && grant.since.elapsed() > ttl / 3 {
            // A module hand-off came at an unknown time during the wait, and
            // counting from the wait's start leaves less than 2/3 of the
            // ttl (perhaps nothing): count from an EXTEND sent now instead,
            // as the watchdog would at once.
            if !guard.extend(ttl).await? {
                return Err(Error::Lost {
                    key: key.to_owned(),
                });
            }
        }
        guard.start_watchdog();
        if let Some(Durable { replicas, timeout }) = opts.durable {
            // Its EXTEND and the watchdog's may overlap: both are by the
            // ttl, so whichever lands last leaves no less than the guard
            // counts on.
            let acked = self
                .inner
                .imp
                .wait_replicas(kind, key, guard.token(), ttl, replicas, timeout)
                .await;
            match acked {
                Ok(acked) if acked >= replicas => {}
                Ok(acked) => {
                    guard.release().await?;
                    return Err(Error::NotReplicated {
                        key: key.to_owned(),
                        acked,
                        wanted: replicas,
                    });
                }
                Err(e) => {
                    let _ = guard.release().await;
                    return Err(e);
                }
            }
        }
        Ok(Some(guard))
    }

    /// Runs `f` while holding `key`, and releases afterwards whatever `f`
    /// returns (a panic or cancellation releases in the background).
    ///
    /// # Errors
    ///
    /// The errors of [`Client::lock`], and [`Error::Lost`] when the lock was
    /// no longer held when `f` finished (it expired or was force-released
    /// meanwhile, so `f` may not have run alone).
    ///
    /// # Cancel safety
    ///
    /// Cancelling drops the guard, which releases the lock in the background.
    pub async fn with_lock<F, T>(&self, key: &str, opts: &LockOptions, f: F) -> Result<T>
    where
        F: AsyncFnOnce(&LockGuard) -> T,
    {
        let guard = self.lock(key, opts).await?;
        let out = f(&guard).await;
        if guard.release().await? {
            Ok(out)
        } else {
            Err(Error::Lost {
                key: key.to_owned(),
            })
        }
    }

    /// Removes whoever holds `key`; the next waiter takes over. `true` when a
    /// holder was removed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the command is sent whole or not at all; a cancelled
    /// call may or may not have released.
    pub async fn force_release(&self, key: &str) -> Result<bool> {
        validate_key(key)?;
        self.inner.imp.force_release(key).await
    }

    /// The holder's fence, 0 when `key` is free.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (read only).
    pub async fn fence(&self, key: &str) -> Result<u64> {
        validate_key(key)?;
        self.inner.imp.fence(key).await
    }

    /// The state of `key` (`LOCK.INFO`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (read only).
    pub async fn info(&self, key: &str) -> Result<LockInfo> {
        validate_key(key)?;
        self.inner.imp.info(key).await
    }

    /// A handle on the semaphore `key` of `limit` permits (cheap: nothing
    /// is sent until it is used). Each acquire takes a lease of some
    /// permits with its own fence and expiry; requests are served in strict
    /// FIFO order. The limit is the semaphore's while anyone holds or
    /// waits: an acquire that names another one then fails with
    /// [`Error::OtherLimit`].
    ///
    /// On the module a semaphore lives in the Redis key `key` itself, so a
    /// lock and a semaphore cannot share a name there (the second gets
    /// `WRONGTYPE`); the Lua and memory backends keep them apart.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(client: baton_client::Client) -> baton_client::Result<()> {
    /// use std::time::Duration;
    /// use baton_client::LockOptions;
    /// // At most 4 exports at once; a large one takes 2 slots.
    /// let exports = client.semaphore("exports", 4);
    /// let opts = LockOptions::new().wait(Duration::from_secs(30));
    /// let lease = exports.acquire(2, &opts).await?;
    /// println!("{} permits, fence {}", lease.permits(), lease.fence());
    /// lease.release().await?;
    /// # Ok(()) }
    /// ```
    pub fn semaphore(&self, key: &str, limit: u32) -> Semaphore {
        Semaphore::new(self.clone(), key, limit)
    }

    /// A handle on the read-write lock `key`: many readers at once, or one
    /// writer, served fairly (see [`RwLock`]). On the wire it is a
    /// semaphore of [`RW_LIMIT`](crate::RW_LIMIT) permits.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(client: baton_client::Client) -> baton_client::Result<()> {
    /// let config = client.rwlock("config");
    /// let read = config.read(&Default::default()).await?;
    /// // ... read, with `read.fence()` ...
    /// read.release().await?;
    /// # Ok(()) }
    /// ```
    pub fn rwlock(&self, key: &str) -> RwLock {
        RwLock::new(self.semaphore(key, crate::semaphore::RW_LIMIT))
    }

    /// Counters (`LOCK.STATS`; see [`Stats`] for what each backend reports).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (read only).
    pub async fn stats(&self) -> Result<Stats> {
        self.inner.imp.stats().await
    }

    /// Waits for the background work (drop releases, cleanups) that is
    /// under way; watchdogs of live guards and the Lua backend's pub/sub
    /// reader are not waited for.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the work goes on.
    pub async fn flush(&self) {
        // Watchdogs and the pub/sub reader run outside the tracker, so
        // this ends.
        self.inner.rt.tracker.close();
        self.inner.rt.tracker.wait().await;
        self.inner.rt.tracker.reopen();
    }
}

/// A random token: 128 bits as 32 lowercase hex digits (what
/// `format!("{:032x}")` writes, without the formatting machinery on every
/// acquire).
fn new_token() -> String {
    hex_token(rand::random::<u128>())
}

/// `n` as 32 lowercase hex digits: written into a byte buffer, then one
/// allocation (collecting 32 `char`s into a `String` cost 2% of a cycle).
fn hex_token(n: u128) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 32];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = HEX[((n >> (4 * (31 - i))) & 0xf) as usize];
    }
    // ASCII, so valid UTF-8: the lossy conversion never replaces anything.
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use baton_harness::RedisServer;

    use super::*;

    #[test]
    fn tokens_are_what_032x_formats() {
        for n in [0, 1, 0xabc, u128::MAX, u128::MAX / 3, rand::random()] {
            assert_eq!(hex_token(n), format!("{n:032x}"));
        }
        assert_ne!(new_token(), new_token());
    }

    /// A durable acquire sends an EXTEND before `WAIT`, so that the WAIT
    /// covers the grant; an EXTEND that answers 0 means the lock is gone
    /// (expired, force-released since the grant), whatever replicas say.
    #[tokio::test]
    async fn a_durable_check_of_a_lock_not_held_is_lost() {
        let module = RedisServer::start();
        let plain = RedisServer::builder().without_module().start();
        let mut clients = vec![Client::memory()];
        for (s, kind) in [(&module, Backend::Module), (&plain, Backend::Lua)] {
            clients.push(
                Client::builder(s.url())
                    .backend(kind)
                    .build()
                    .await
                    .unwrap(),
            );
        }
        for c in clients {
            let r = c
                .inner
                .imp
                .wait_replicas(
                    Kind::Lock,
                    "gone",
                    "not-the-holder",
                    Duration::from_secs(1),
                    1,
                    Duration::from_millis(10),
                )
                .await;
            assert!(
                matches!(r, Err(Error::Lost { .. })),
                "{:?}: {r:?}",
                c.backend_kind()
            );
        }
    }
}
