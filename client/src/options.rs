//! [`LockOptions`]: ttl, wait, watchdog and durability of one lock call.

use std::time::Duration;

use crate::error::{Error, Result};

/// The largest ttl or wait the server accepts: 2^31 - 1 ms.
pub const MAX_DURATION: Duration = Duration::from_millis(baton_core::args::MAX_MS);

/// How to take a lock. Built with setters:
///
/// ```
/// use std::time::Duration;
/// use baton_client::LockOptions;
/// let opts = LockOptions::new()
///     .ttl(Duration::from_secs(10))
///     .wait(Duration::from_secs(5))
///     .watchdog(true);
/// assert_eq!(opts.ttl_value(), Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOptions {
    ttl: Duration,
    wait: Duration,
    watchdog: bool,
    durable: Option<(u64, Duration)>,
}

impl Default for LockOptions {
    /// ttl 30 s, no wait, watchdog on, not durable.
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            wait: Duration::ZERO,
            watchdog: true,
            durable: None,
        }
    }
}

impl LockOptions {
    /// The defaults: ttl 30 s, no wait, watchdog on, not durable.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long the lock lives without an extend (1 ms to [`MAX_DURATION`],
    /// whole milliseconds). The watchdog extends by this much every ttl/3.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long [`Client::lock`](crate::Client::lock) waits in the queue
    /// (0 = try once). [`Client::try_lock`](crate::Client::try_lock) uses it
    /// too.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Keeps the lock alive while the guard lives (default `true`).
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
        self.durable = Some((replicas, timeout));
        self
    }

    /// The ttl.
    pub fn ttl_value(&self) -> Duration {
        self.ttl
    }

    /// The wait.
    pub fn wait_value(&self) -> Duration {
        self.wait
    }

    /// Whether the watchdog is on.
    pub fn watchdog_value(&self) -> bool {
        self.watchdog
    }

    /// The durability requirement, if any.
    pub fn durable_value(&self) -> Option<(u64, Duration)> {
        self.durable
    }

    pub(crate) fn validate(&self) -> Result<()> {
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
        if let Some((_, timeout)) = self.durable {
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
