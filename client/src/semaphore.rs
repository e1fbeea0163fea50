//! [`Semaphore`] and [`RwLock`]: handles on a semaphore of `limit` permits
//! and on a read-write lock (a semaphore of [`RW_LIMIT`] permits: a reader
//! takes one, a writer all), and the read-write lock's guards.
//!
//! Every grant is a lease ([`SemGuard`]) with its own fence and expiry,
//! kept alive by the same watchdog as a lock and released the same ways.
//! Requests are served in strict FIFO order: a request never overtakes one
//! queued before it, also when it would fit, so a large request is never
//! starved by small ones, and a writer never by readers.

use std::ops::Deref;
use std::time::Duration;

use crate::backend::{Kind, SemInfo};
use crate::client::Client;
use crate::error::{validate_key, Error, Result};
use crate::guard::SemGuard;
use crate::options::LockOptions;

/// The limit of a read-write lock's semaphore, the largest a semaphore
/// can have (2^31 - 1): a reader takes one permit, a writer all of them.
pub const RW_LIMIT: u32 = baton_core::args::MAX_MS as u32;

/// A semaphore of `limit` permits; made by
/// [`Client::semaphore`](crate::Client::semaphore). Cheap to clone.
///
/// # Examples
///
/// ```no_run
/// # async fn f(client: baton_client::Client) -> baton_client::Result<()> {
/// use std::time::Duration;
/// use baton_client::LockOptions;
/// let pool = client.semaphore("db-connections", 10);
/// let opts = LockOptions::new().ttl(Duration::from_secs(30));
/// if let Some(lease) = pool.try_acquire(1, &opts).await? {
///     // one of 10; the watchdog keeps the lease while `lease` lives
///     lease.release().await?;
/// }
/// println!("{} of {} in use", pool.info().await?.used, pool.limit());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Semaphore {
    client: Client,
    key: String,
    limit: u32,
}

impl Semaphore {
    pub(crate) fn new(client: Client, key: &str, limit: u32) -> Self {
        Self {
            client,
            key: key.to_owned(),
            limit,
        }
    }

    /// The semaphore's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The number of permits this handle asks for (see
    /// [`Error::OtherLimit`]).
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Takes a lease of `permits` permits, waiting up to `opts.wait` in the
    /// semaphore's FIFO queue. `opts` as for
    /// [`Client::lock`](crate::Client::lock): ttl, wait, watchdog and
    /// durable (an EXTEND of the lease, then `WAIT` for replicas).
    ///
    /// # Errors
    ///
    /// [`Error::NotAcquired`] when the wait ran out; [`Error::OtherLimit`]
    /// when the semaphore has holders or waiters under another limit;
    /// [`Error::InvalidOptions`] for a limit that is not `1..=2^31-1` or
    /// permits that are not `1..=limit`; [`Error::InvalidKey`]; and the
    /// errors of [`Client::lock`](crate::Client::lock) (durable, lost,
    /// connection).
    ///
    /// # Cancel safety
    ///
    /// As [`Client::lock`](crate::Client::lock): cancelling the call makes
    /// you lose your place in the queue (withdrawn by a `SEM.RELEASE` of
    /// the wait's token on the module, the Lua queue entry removed, and requests behind it that now
    /// fit are granted), and a lease granted in a race with the
    /// cancellation is released in the background.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(client: baton_client::Client) -> baton_client::Result<()> {
    /// use std::time::Duration;
    /// use baton_client::LockOptions;
    /// let opts = LockOptions::new().wait(Duration::from_secs(5));
    /// let lease = client.semaphore("gpu", 8).acquire(4, &opts).await?;
    /// # drop(lease); Ok(()) }
    /// ```
    pub async fn acquire(&self, permits: u32, opts: &LockOptions) -> Result<SemGuard> {
        let kind = self.kind(permits)?;
        let hold = self.client.hold(kind, &self.key, opts, opts.wait).await?;
        Ok(SemGuard::from_hold(hold))
    }

    /// Tries once to take `permits`: `Ok(None)` when they are not free or
    /// someone is queued (even when the permits are free); `opts.wait` is
    /// not used.
    ///
    /// # Cancel safety
    ///
    /// As [`Semaphore::acquire`].
    pub async fn try_acquire(&self, permits: u32, opts: &LockOptions) -> Result<Option<SemGuard>> {
        let kind = self.kind(permits)?;
        let hold = self
            .client
            .try_hold(kind, &self.key, opts, Duration::ZERO)
            .await?;
        Ok(hold.map(SemGuard::from_hold))
    }

    /// The request of `permits` of this semaphore, checked.
    fn kind(&self, permits: u32) -> Result<Kind> {
        if !(1..=RW_LIMIT).contains(&self.limit) {
            return Err(Error::InvalidOptions(format!(
                "a semaphore's limit must be between 1 and {RW_LIMIT}, got {}",
                self.limit
            )));
        }
        if !(1..=self.limit).contains(&permits) {
            return Err(Error::InvalidOptions(format!(
                "permits must be between 1 and the limit {}, got {permits}",
                self.limit
            )));
        }
        Ok(Kind::Sem {
            limit: self.limit,
            permits,
        })
    }

    /// The semaphore's state (`SEM.INFO`): limit, permits used, holders,
    /// waiters and the last fence; all zero when nobody holds or waits.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (read only).
    pub async fn info(&self) -> Result<SemInfo> {
        validate_key(&self.key)?;
        self.client.inner.imp.sem_info(&self.key).await
    }

    /// Removes every lease (an operator's tool: their guards learn it at
    /// their next extend, and their lost signals fire); the queue's head is
    /// granted while it fits. Returns how many leases were removed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the command is sent whole or not at all; a cancelled
    /// call may or may not have released.
    pub async fn force_release(&self) -> Result<u64> {
        validate_key(&self.key)?;
        self.client.inner.imp.sem_force_release(&self.key).await
    }
}

/// A read-write lock; made by [`Client::rwlock`](crate::Client::rwlock).
/// Cheap to clone.
///
/// It is a semaphore of [`RW_LIMIT`] permits on the wire (`SEM.*`): a
/// reader takes one permit, a writer all of them, and the semaphore's strict
/// FIFO order makes it fair. Readers that come one after another share the
/// lock; a writer waits for the readers before it; readers that come after
/// a queued writer wait behind it (no writer starvation); a writer excludes
/// everyone. Guards are leases: fence, extend, watchdog, lost signal and
/// release as for a [`SemGuard`].
///
/// # Examples
///
/// ```no_run
/// # async fn f(client: baton_client::Client) -> baton_client::Result<()> {
/// use std::time::Duration;
/// use baton_client::LockOptions;
/// let table = client.rwlock("table:users");
/// let opts = LockOptions::new().wait(Duration::from_secs(10));
/// {
///     let r1 = table.read(&opts).await?;
///     let r2 = table.read(&opts).await?; // readers share
///     # drop((r1, r2));
/// } // dropped: released in the background
/// let w = table.write(&opts).await?; // waits for the readers before it
/// w.release().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RwLock {
    sem: Semaphore,
}

impl RwLock {
    pub(crate) fn new(sem: Semaphore) -> Self {
        Self { sem }
    }

    /// The lock's key.
    pub fn key(&self) -> &str {
        self.sem.key()
    }

    /// Takes the lock for reading (one permit), waiting up to `opts.wait`
    /// behind everyone queued before (a queued writer too).
    ///
    /// # Errors
    ///
    /// As [`Semaphore::acquire`]; [`Error::OtherLimit`] when `key` is in
    /// use as a semaphore of another limit.
    ///
    /// # Cancel safety
    ///
    /// As [`Semaphore::acquire`].
    pub async fn read(&self, opts: &LockOptions) -> Result<ReadGuard> {
        self.sem.acquire(1, opts).await.map(ReadGuard)
    }

    /// Tries once to take the lock for reading: `Ok(None)` when a writer
    /// holds it or anyone is queued (`opts.wait` is not used).
    ///
    /// # Cancel safety
    ///
    /// As [`Semaphore::acquire`].
    pub async fn try_read(&self, opts: &LockOptions) -> Result<Option<ReadGuard>> {
        Ok(self.sem.try_acquire(1, opts).await?.map(ReadGuard))
    }

    /// Takes the lock for writing (every permit), waiting up to
    /// `opts.wait` for the readers and writers before it.
    ///
    /// # Errors
    ///
    /// As [`RwLock::read`].
    ///
    /// # Cancel safety
    ///
    /// As [`Semaphore::acquire`]: a cancelled wait leaves the queue, and
    /// the readers queued behind it that now fit are granted.
    pub async fn write(&self, opts: &LockOptions) -> Result<WriteGuard> {
        self.sem.acquire(RW_LIMIT, opts).await.map(WriteGuard)
    }

    /// Tries once to take the lock for writing: `Ok(None)` when anyone
    /// holds it or is queued (`opts.wait` is not used).
    ///
    /// # Cancel safety
    ///
    /// As [`Semaphore::acquire`].
    pub async fn try_write(&self, opts: &LockOptions) -> Result<Option<WriteGuard>> {
        Ok(self.sem.try_acquire(RW_LIMIT, opts).await?.map(WriteGuard))
    }

    /// The lock's state: `used` is the number of readers, or [`RW_LIMIT`]
    /// while a writer holds it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (read only).
    pub async fn info(&self) -> Result<SemInfo> {
        self.sem.info().await
    }

    /// Removes every reader and writer (see [`Semaphore::force_release`]);
    /// returns how many leases were removed.
    ///
    /// # Cancel safety
    ///
    /// As [`Semaphore::force_release`].
    pub async fn force_release(&self) -> Result<u64> {
        self.sem.force_release().await
    }
}

/// A read lease of an [`RwLock`]: a [`SemGuard`] of one permit (it derefs
/// to one: fence, extend, lost, release). Dropping it releases in the
/// background.
#[must_use = "if unused the read lock is released at once (in the background)"]
#[derive(Debug)]
pub struct ReadGuard(SemGuard);

/// The write lease of an [`RwLock`]: a [`SemGuard`] of every permit (it
/// derefs to one: fence, extend, lost, release). Dropping it releases in
/// the background.
#[must_use = "if unused the write lock is released at once (in the background)"]
#[derive(Debug)]
pub struct WriteGuard(SemGuard);

impl ReadGuard {
    /// Releases the read lease (see [`SemGuard::release`]).
    ///
    /// # Cancel safety
    ///
    /// As [`SemGuard::release`].
    pub async fn release(self) -> Result<bool> {
        self.0.release().await
    }
}

impl WriteGuard {
    /// Releases the write lease (see [`SemGuard::release`]).
    ///
    /// # Cancel safety
    ///
    /// As [`SemGuard::release`].
    pub async fn release(self) -> Result<bool> {
        self.0.release().await
    }
}

impl Deref for ReadGuard {
    type Target = SemGuard;
    fn deref(&self) -> &SemGuard {
        &self.0
    }
}

impl Deref for WriteGuard {
    type Target = SemGuard;
    fn deref(&self) -> &SemGuard {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use baton_harness::RedisServer;

    use super::*;
    use crate::Backend;

    /// A client of each backend, with the servers it needs.
    async fn clients() -> (Vec<RedisServer>, Vec<Client>) {
        let module = RedisServer::start();
        let plain = RedisServer::builder().without_module().start();
        let mut clients = vec![Client::memory()];
        for (s, kind) in [(&module, Backend::Module), (&plain, Backend::Lua)] {
            let c = Client::builder(s.url()).backend(kind).build().await;
            clients.push(c.unwrap());
        }
        (vec![module, plain], clients)
    }

    /// The client's own calls never reuse a token, so these run below the
    /// public API: an acquire by the token that holds a lease renews it
    /// with the same fence, and one with other permits is refused with
    /// both numbers, changing nothing.
    #[tokio::test]
    async fn a_renewal_keeps_the_fence_and_other_permits_are_refused() {
        let (_servers, clients) = clients().await;
        let ttl = Duration::from_secs(10);
        let sem = |permits| Kind::Sem { limit: 3, permits };
        for c in clients {
            let (imp, rt, kind) = (&c.inner.imp, &c.inner.rt, c.backend_kind());
            let acquire =
                |permits| imp.acquire(rt, sem(permits), "k", "tok", ttl, Duration::ZERO, None);
            let first = acquire(2).await.unwrap().expect("granted").fence;
            let again = acquire(2).await.unwrap().expect("renewed").fence;
            assert_eq!(again, first, "{kind:?}: a renewal keeps the fence");
            let before = imp.sem_info("k").await.unwrap();
            assert_eq!((before.used, before.holders), (2, 1), "{kind:?}");
            match acquire(1).await {
                Err(Error::OtherPermits {
                    key,
                    held: 2,
                    asked: 1,
                }) => assert_eq!(key, "k"),
                other => panic!("{kind:?}: expected OtherPermits, got {other:?}"),
            }
            assert_eq!(imp.sem_info("k").await.unwrap(), before, "{kind:?}");
            assert!(imp.extend(sem(2), "k", "tok", ttl).await.unwrap());
            assert!(imp.release(sem(2), "k", "tok").await.unwrap());
            assert!(!imp.release(sem(2), "k", "tok").await.unwrap(), "{kind:?}");
        }
    }
}
