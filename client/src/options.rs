//! [`LockOptions`]: ttl, wait, watchdog and durability of one lock call.

use std::time::Duration;

use crate::error::{Error, Result};

/// The longest [`LockOptions::meta`] the server accepts, in bytes.
pub const MAX_META_LEN: usize = baton_core::args::MAX_META_LEN;

/// The largest ttl or wait the server accepts: 2^31 - 1 ms.
pub const MAX_DURATION: Duration = Duration::from_millis(baton_core::args::MAX_MS);

/// How long [`Client::lock`](crate::Client::lock) (and a semaphore's
/// `acquire`, a read-write lock's `read` and `write`) waits in the queue by
/// default: 30 s.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// How to take a lock: the fields are the settings, each with a setter of
/// the same name for chaining.
///
/// ```
/// use std::time::Duration;
/// use baton_client::LockOptions;
/// let opts = LockOptions::new()
///     .ttl(Duration::from_secs(10))
///     .wait(Duration::from_secs(5))
///     .watchdog(true);
/// assert_eq!(opts.ttl, Duration::from_secs(10));
/// let quick = LockOptions {
///     ttl: Duration::from_secs(1),
///     ..LockOptions::default()
/// };
/// assert_eq!(quick.wait, baton_client::DEFAULT_WAIT);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOptions {
    /// How long the lock lives without an extend (1 ms to
    /// [`MAX_DURATION`], whole milliseconds). The watchdog extends by this
    /// much every ttl/3. Default 30 s.
    pub ttl: Duration,
    /// How long [`Client::lock`](crate::Client::lock) waits in the queue
    /// before it fails with [`Error::NotAcquired`] (0 = try once; at most
    /// [`MAX_DURATION`]). Default [`DEFAULT_WAIT`].
    /// [`Client::try_lock`](crate::Client::try_lock) never waits.
    pub wait: Duration,
    /// Keeps the lock alive while the guard lives. Default `true`.
    pub watchdog: bool,
    /// Confirm each grant on replicas before returning it. Default `None`.
    pub durable: Option<Durable>,
    /// A value of 0 to 1024 bytes stored with the holder (`META`), shown by
    /// [`Client::info`](crate::Client::info) as
    /// [`LockInfo::meta`](crate::LockInfo::meta): a leader's address, a job
    /// id. Locks only: a semaphore's acquire refuses it. Default `None`.
    pub meta: Option<Vec<u8>>,
}

/// A durable acquire's requirement (see [`LockOptions::durable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durable {
    /// Replicas that must acknowledge the grant.
    pub replicas: u64,
    /// How long to wait for them (`WAIT`'s timeout).
    pub timeout: Duration,
}

impl Default for LockOptions {
    /// ttl 30 s, wait [`DEFAULT_WAIT`], watchdog on, not durable.
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            wait: DEFAULT_WAIT,
            watchdog: true,
            durable: None,
            meta: None,
        }
    }
}

impl LockOptions {
    /// The defaults: ttl 30 s, wait [`DEFAULT_WAIT`], watchdog on, not
    /// durable.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`LockOptions::ttl`].
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets [`LockOptions::wait`].
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Sets [`LockOptions::watchdog`].
    pub fn watchdog(mut self, on: bool) -> Self {
        self.watchdog = on;
        self
    }

    /// After the grant, sends an EXTEND and then `WAIT replicas timeout` on
    /// the same connection, and fails (releasing the lock) with
    /// [`Error::NotReplicated`] when fewer replicas acknowledged, or with
    /// [`Error::Lost`] when the EXTEND answered 0 (the lock expired or was
    /// force-released since the grant).
    pub fn durable(mut self, replicas: u64, timeout: Duration) -> Self {
        self.durable = Some(Durable { replicas, timeout });
        self
    }

    /// Sets [`LockOptions::meta`].
    ///
    /// ```
    /// let opts = baton_client::LockOptions::new().meta("10.0.0.7:8080");
    /// assert_eq!(opts.meta.as_deref(), Some(&b"10.0.0.7:8080"[..]));
    /// ```
    pub fn meta(mut self, value: impl Into<Vec<u8>>) -> Self {
        self.meta = Some(value.into());
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.meta.as_ref().is_some_and(|m| m.len() > MAX_META_LEN) {
            return Err(Error::InvalidOptions(format!(
                "meta must be at most {MAX_META_LEN} bytes"
            )));
        }
        if self.ttl < Duration::from_millis(1) || self.ttl > MAX_DURATION {
            return Err(Error::InvalidOptions(format!(
                "ttl must be between 1 ms and {MAX_DURATION:?}, got {:?}",
                self.ttl
            )));
        }
        if self.wait > MAX_DURATION {
            return Err(Error::InvalidOptions(format!(
                "wait must be at most {MAX_DURATION:?}, got {:?}",
                self.wait
            )));
        }
        if let Some(Durable { timeout, .. }) = self.durable {
            if timeout > MAX_DURATION {
                return Err(Error::InvalidOptions(
                    "durable timeout is over 2^31-1 ms".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Whole milliseconds, at least `min`.
pub(crate) fn ms(d: Duration, min: u64) -> u64 {
    (d.as_millis() as u64).clamp(min, baton_core::args::MAX_MS)
}
