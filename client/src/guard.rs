//! [`LockGuard`]: a held lock, its lost-lock signal, and its drop release.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::Imp;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::options::LockOptions;

/// What the guard and its watchdog share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) key: String,
    pub(crate) token: String,
    pub(crate) fence: u64,
    pub(crate) state: Mutex<Validity>,
    /// Fired when the lock can no longer be proven held.
    pub(crate) lost: CancellationToken,
    /// Stops the watchdog (release, drop).
    pub(crate) stop: CancellationToken,
    /// Wakes the watchdog after a manual extend.
    pub(crate) changed: Notify,
    /// Set once released (by `release` or drop).
    pub(crate) done: AtomicBool,
}

/// How long the lock is proven held.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Validity {
    /// Send time of the last confirmed grant or extend, plus its ttl: the
    /// server's expiry is no earlier than this.
    pub(crate) valid_until: Instant,
    /// Send time of the last confirmed grant or extend.
    pub(crate) confirmed_at: Instant,
    /// The ttl the watchdog extends by.
    pub(crate) ttl: Duration,
    /// Whether the watchdog extends.
    pub(crate) watchdog: bool,
}

impl Shared {
    /// Records a confirmed extend sent at `sent` for `ttl` (latest send wins).
    pub(crate) fn confirm(&self, sent: Instant, ttl: Duration) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if sent >= st.confirmed_at {
            st.confirmed_at = sent;
            st.valid_until = sent + ttl;
            st.ttl = ttl;
        }
        drop(st);
        self.changed.notify_one();
    }

    pub(crate) fn validity(&self) -> Validity {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn mark_lost(&self) {
        self.stop.cancel();
        self.lost.cancel();
    }
}

/// A held lock. Release it with [`LockGuard::release`]; dropping it releases
/// in the background.
///
/// While the guard lives, its watchdog (unless turned off with
/// [`LockOptions::watchdog`]) extends the lock every ttl/3, and
/// [`LockGuard::lost`] resolves once the lock can no longer be proven held.
#[must_use = "if unused the lock is released at once (in the background)"]
#[derive(Debug)]
pub struct LockGuard {
    client: Client,
    shared: Arc<Shared>,
    release: tokio::sync::Mutex<Option<bool>>,
}

impl LockGuard {
    pub(crate) fn new(
        client: Client,
        key: String,
        token: String,
        fence: u64,
        sent: Instant,
        opts: &LockOptions,
    ) -> Self {
        let ttl = opts.ttl_value();
        let shared = Arc::new(Shared {
            key,
            token,
            fence,
            state: Mutex::new(Validity {
                valid_until: sent + ttl,
                confirmed_at: sent,
                ttl,
                watchdog: opts.watchdog_value(),
            }),
            lost: CancellationToken::new(),
            stop: CancellationToken::new(),
            changed: Notify::new(),
            done: AtomicBool::new(false),
        });
        Self {
            client,
            shared,
            release: tokio::sync::Mutex::new(None),
        }
    }

    /// Starts the watchdog, once the grant is confirmed (see
    /// [`Client::try_lock`](crate::Client::try_lock)).
    pub(crate) fn start_watchdog(&self) {
        crate::watchdog::spawn(&self.client, &self.shared);
    }

    /// The lock's key.
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// The fence of this grant: larger than every fence issued for the key
    /// before. Pass it to the resource you protect.
    pub fn fence(&self) -> u64 {
        self.shared.fence
    }

    pub(crate) fn token(&self) -> &str {
        &self.shared.token
    }

    /// Resolves when the lock can no longer be proven held: an extend was
    /// refused (expired, force-released), the server could not be reached
    /// before the ttl ran out, the guard was released, or its watchdog
    /// stopped (the client's tokio runtime shut down, or there was no
    /// runtime to run it). Never later than the ttl after the last
    /// confirmed extend.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only observes.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        self.shared.lost.clone().cancelled_owned()
    }

    /// The lost signal as a token, e.g. to hand to other tasks.
    pub fn lost_token(&self) -> CancellationToken {
        self.shared.lost.clone()
    }

    /// True once [`LockGuard::lost`] has fired.
    pub fn is_lost(&self) -> bool {
        self.shared.lost.is_cancelled()
    }

    /// Resets the lock's expiry to now + `ttl`; the watchdog extends by
    /// `ttl` from then on. `false` when the lock is no longer held (the lost
    /// signal then fires).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled extend may or may not have reached the
    /// server; the guard only counts confirmed extends.
    pub async fn extend(&self, ttl: Duration) -> Result<bool> {
        if ttl.is_zero() || ttl > crate::options::MAX_DURATION {
            return Err(Error::InvalidOptions(format!("bad extend ttl {ttl:?}")));
        }
        if self.shared.done.load(Ordering::Acquire) || self.is_lost() {
            return Ok(false);
        }
        let sent = Instant::now();
        let ok = self
            .client
            .inner
            .imp
            .extend(&self.shared.key, &self.shared.token, ttl)
            .await?;
        if ok {
            self.shared.confirm(sent, ttl);
        } else {
            self.shared.mark_lost();
        }
        Ok(ok)
    }

    /// Releases the lock; the next waiter takes over. `true` when the lock
    /// was still held by this guard. Idempotent: later calls return the
    /// first call's answer.
    ///
    /// # Cancel safety
    ///
    /// If cancelled, the release may or may not have happened; a later call
    /// or the guard's drop releases again (harmless when already released).
    pub async fn release(&self) -> Result<bool> {
        let mut done = self.release.lock().await;
        if let Some(released) = *done {
            return Ok(released);
        }
        let released = self
            .client
            .inner
            .imp
            .release(&self.shared.key, &self.shared.token)
            .await?;
        *done = Some(released);
        self.shared.done.store(true, Ordering::Release);
        self.shared.mark_lost();
        Ok(released)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.shared.done.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.mark_lost();
        let inner = &self.client.inner;
        if let Imp::Memory(mem) = &inner.imp {
            mem.release_now(&self.shared.key, &self.shared.token);
            return;
        }
        let (client, key, token) = (
            self.client.clone(),
            self.shared.key.clone(),
            self.shared.token.clone(),
        );
        inner.rt.spawn(async move {
            if let Err(e) = client.inner.imp.release(&key, &token).await {
                tracing::warn!(%key, error = %e, "background release of a dropped guard failed; the ttl will free the lock");
            }
        });
    }
}
