//! The guards: [`LockGuard`] (a held lock) and [`SemGuard`] (a lease of a
//! semaphore's permits, which a read-write lock's guards wrap). Both are one
//! [`Hold`]: the validity bookkeeping, extends one at a time, the watchdog,
//! the lost signal, the idempotent release and the release in the
//! background on drop, written once; extend and release name what is held
//! by its [`Kind`].

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::{Imp, Kind};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::options::LockOptions;

/// What the guard and its watchdog share.
pub(crate) struct Shared {
    pub(crate) key: String,
    /// A lock, or a lease of a semaphore: what extend and release name.
    pub(crate) kind: Kind,
    pub(crate) token: String,
    pub(crate) fence: u64,
    pub(crate) state: Mutex<Validity>,
    /// Fired when the lock or lease can no longer be proven held.
    pub(crate) lost: CancellationToken,
    /// Stops the watchdog (release, drop).
    pub(crate) stop: CancellationToken,
    /// Wakes the watchdog after a manual extend.
    pub(crate) changed: Notify,
    /// Set once released (by `release` or drop).
    pub(crate) done: AtomicBool,
    /// Held across each EXTEND round trip (see [`Shared::extend`]).
    extending: tokio::sync::Mutex<()>,
}

/// Shows all but the token: whoever has it can release the lock, so a
/// guard printed into a log must not show it.
impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("key", &self.key)
            .field("kind", &self.kind)
            .field("token", &"***")
            .field("fence", &self.fence)
            .field("state", &self.state)
            .field("lost", &self.lost.is_cancelled())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// The part of a ttl the guard does not count on: 2 ms and 1% of the
/// ttl, for the server's rounding of expiry times to whole milliseconds and
/// for a client clock that runs slower than the server's (Redlock's clock
/// drift factor is the same). A ttl of 2 ms or less proves nothing.
pub(crate) fn margin(ttl: Duration) -> Duration {
    Duration::from_millis(2) + ttl / 100
}

/// How long the lock is proven held.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Validity {
    /// Send time of the last confirmed grant or extend, plus what it
    /// proves ([`Validity::proven`]) less the [`margin`]: the server's
    /// expiry is no earlier.
    pub(crate) valid_until: Instant,
    /// Send time of the last confirmed grant or extend.
    pub(crate) confirmed_at: Instant,
    /// The ttl the watchdog extends by.
    pub(crate) ttl: Duration,
    /// The shortest ttl of the extends whose outcome is unknown (cancelled,
    /// timed out or failed after they may have been sent): such an extend
    /// may still reach the server after any later one and cut the expiry to
    /// its own ttl, so no later extend proves more than that.
    unsettled: Option<Duration>,
    /// Whether the watchdog extends.
    pub(crate) watchdog: bool,
}

impl Validity {
    fn new(sent: Instant, ttl: Duration, watchdog: bool) -> Self {
        Self {
            valid_until: sent + ttl.saturating_sub(margin(ttl)),
            confirmed_at: sent,
            ttl,
            unsettled: None,
            watchdog,
        }
    }

    /// What a confirmed extend by `ttl` proves: `ttl`, or less when an
    /// unsettled extend was shorter.
    fn proven(&self, ttl: Duration) -> Duration {
        self.unsettled.map_or(ttl, |u| u.min(ttl))
    }

    /// How often the watchdog extends: a third of what an extend proves,
    /// never more often than [`MIN_PERIOD`](crate::MIN_PERIOD).
    pub(crate) fn period(&self) -> Duration {
        (self.proven(self.ttl) / 3).max(crate::watchdog::MIN_PERIOD)
    }

    /// An extend sent at `sent` for `ttl` was confirmed. Extends never
    /// overlap, so it is the last one the server applied.
    fn confirm(&mut self, sent: Instant, ttl: Duration) {
        let proven = self.proven(ttl);
        self.confirmed_at = sent;
        self.valid_until = sent + proven.saturating_sub(margin(proven));
        self.ttl = ttl;
    }

    /// An extend for `ttl` may or may not have reached the server, and may
    /// still do so.
    fn unsettle(&mut self, ttl: Duration) {
        self.unsettled = Some(self.proven(ttl));
    }
}

/// Marks an extend unsettled unless disarmed: dropped with its extend
/// (cancelled, timed out) or left armed on an error.
struct InFlight<'a> {
    shared: &'a Shared,
    ttl: Duration,
    armed: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.with_state(|v| v.unsettle(self.ttl));
        }
    }
}

impl Shared {
    fn with_state<T>(&self, f: impl FnOnce(&mut Validity) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Records a confirmed grant or extend sent at `sent` for `ttl`.
    pub(crate) fn confirm(&self, sent: Instant, ttl: Duration) {
        self.with_state(|v| v.confirm(sent, ttl));
        self.changed.notify_one();
    }

    pub(crate) fn validity(&self) -> Validity {
        self.with_state(|v| *v)
    }

    pub(crate) fn mark_lost(&self) {
        self.stop.cancel();
        self.lost.cancel();
    }

    /// Sends one EXTEND for `ttl` and records what it proves: confirmed,
    /// refused (the lost signal fires) or unknown (see
    /// [`Validity::unsettle`]). The manual extends and the watchdog's of
    /// one guard go out one at a time, each after the last one's reply:
    /// the server applies the extend that arrives last, and so that is
    /// the one sent last.
    pub(crate) async fn extend(&self, imp: &Imp, ttl: Duration) -> Result<bool> {
        self.extend_with(imp, ttl, None).await
    }

    /// [`Shared::extend`] that, for a lock, also replaces the holder's
    /// value (`LOCK.EXTEND ... META`): a leader's proclaim. It counts as
    /// an extend, in the same line as the others.
    pub(crate) async fn extend_with(
        &self,
        imp: &Imp,
        ttl: Duration,
        meta: Option<&[u8]>,
    ) -> Result<bool> {
        let _one_at_a_time = self.extending.lock().await;
        if self.lost.is_cancelled() {
            return Ok(false);
        }
        let mut in_flight = InFlight {
            shared: self,
            ttl,
            armed: true,
        };
        let sent = Instant::now();
        let reply = match meta {
            Some(meta) => imp.extend_meta(&self.key, &self.token, ttl, meta).await,
            None => imp.extend(self.kind, &self.key, &self.token, ttl).await,
        };
        match reply {
            Ok(true) => {
                in_flight.armed = false;
                self.confirm(sent, ttl);
            }
            Ok(false) => {
                in_flight.armed = false;
                tracing::warn!(key = %self.key, "{} lost: extend refused (expired or force-released)", self.kind.noun());
                self.mark_lost();
            }
            Err(_) => {} // unknown: it may have been applied
        }
        reply
    }
}

/// What a guard holds, and everything it does: one type under
/// [`LockGuard`] and [`SemGuard`].
#[derive(Debug)]
pub(crate) struct Hold {
    client: Client,
    shared: Arc<Shared>,
    release: tokio::sync::Mutex<Option<bool>>,
}

impl Hold {
    pub(crate) fn new(
        client: Client,
        kind: Kind,
        key: String,
        token: String,
        fence: u64,
        sent: Instant,
        opts: &LockOptions,
    ) -> Self {
        let ttl = opts.ttl;
        let shared = Arc::new(Shared {
            key,
            kind,
            token,
            fence,
            state: Mutex::new(Validity::new(sent, ttl, opts.watchdog)),
            lost: CancellationToken::new(),
            stop: CancellationToken::new(),
            changed: Notify::new(),
            done: AtomicBool::new(false),
            extending: tokio::sync::Mutex::new(()),
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

    pub(crate) fn key(&self) -> &str {
        &self.shared.key
    }

    pub(crate) fn kind(&self) -> Kind {
        self.shared.kind
    }

    pub(crate) fn fence(&self) -> u64 {
        self.shared.fence
    }

    pub(crate) fn token(&self) -> &str {
        &self.shared.token
    }

    pub(crate) fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        self.shared.lost.clone().cancelled_owned()
    }

    pub(crate) fn lost_token(&self) -> CancellationToken {
        self.shared.lost.clone()
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.shared.lost.is_cancelled()
    }

    pub(crate) fn valid_for(&self) -> Duration {
        if self.is_lost() {
            return Duration::ZERO;
        }
        self.shared
            .validity()
            .valid_until
            .saturating_duration_since(Instant::now())
    }

    pub(crate) async fn extend(&self, ttl: Duration) -> Result<bool> {
        if ttl.is_zero() || ttl > crate::options::MAX_DURATION {
            return Err(Error::InvalidOptions(format!("bad extend ttl {ttl:?}")));
        }
        if self.shared.done.load(Ordering::Acquire) || self.is_lost() {
            return Ok(false);
        }
        self.shared.extend(&self.client.inner.imp, ttl).await
    }

    /// Replaces a held lock's value (`META`) with an extend by the ttl the
    /// watchdog uses; `false` when it is no longer held.
    pub(crate) async fn extend_meta(&self, meta: &[u8]) -> Result<bool> {
        if self.shared.done.load(Ordering::Acquire) || self.is_lost() {
            return Ok(false);
        }
        let ttl = self.shared.validity().ttl;
        let imp = &self.client.inner.imp;
        self.shared.extend_with(imp, ttl, Some(meta)).await
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) async fn release(&self) -> Result<bool> {
        let mut done = self.release.lock().await;
        if let Some(released) = *done {
            return Ok(released);
        }
        let s = &self.shared;
        let released = self
            .client
            .inner
            .imp
            .release(s.kind, &s.key, &s.token)
            .await?;
        *done = Some(released);
        self.shared.done.store(true, Ordering::Release);
        self.shared.mark_lost();
        Ok(released)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.shared.done.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.mark_lost();
        let inner = &self.client.inner;
        let kind = self.shared.kind;
        if let Imp::Memory(mem) = &inner.imp {
            mem.release_now(kind, &self.shared.key, &self.shared.token);
            return;
        }
        let (client, key, token) = (
            self.client.clone(),
            self.shared.key.clone(),
            self.shared.token.clone(),
        );
        inner.rt.spawn(async move {
            if let Err(e) = client.inner.imp.release(kind, &key, &token).await {
                tracing::warn!(%key, error = %e, "background release of a dropped guard failed; the ttl will free the {}", kind.noun());
            }
        });
    }
}

/// The public calls of a guard over a [`Hold`], with their docs: `$what`
/// is what it holds ("lock", "lease"), `$get` an expression that takes one
/// from `client` (for the examples).
macro_rules! guard_api {
    ($guard:ident, $what:literal, $get:literal) => {
        impl $guard {
            pub(crate) fn from_hold(hold: Hold) -> Self {
                Self { hold }
            }

            #[doc = concat!("The ", $what, "'s key.")]
            pub fn key(&self) -> &str {
                self.hold.key()
            }

            /// The fence of this grant: larger than every fence issued for
            /// the key before. Pass it to the resource you protect.
            pub fn fence(&self) -> u64 {
                self.hold.fence()
            }

            #[doc = concat!("The token this ", $what, " is held under: what `LOCK.EXTEND` and")]
            /// `LOCK.RELEASE` (`SEM.*` for a lease) name it by, for a
            /// process of yours that extends or releases it itself. Keep it
            /// as secret as the grant: whoever has it can release it.
            pub fn token(&self) -> &str {
                self.hold.token()
            }

            #[doc = concat!("Resolves when the ", $what, " can no longer be proven held: an")]
            /// extend was refused (expired, force-released), the server
            /// could not be reached before the ttl ran out, the guard was
            /// released, or its watchdog stopped (the client's tokio runtime
            /// shut down, or there was no runtime to run it). Never later
            /// than the end of the proven validity (see "Validity" on
            /// [`LockGuard`]).
            ///
            /// # Cancel safety
            ///
            /// Cancel safe: it only observes.
            pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
                self.hold.lost()
            }

            /// The lost signal as a token, e.g. to hand to other tasks.
            pub fn lost_token(&self) -> CancellationToken {
                self.hold.lost_token()
            }

            #[doc = concat!("True once [`", stringify!($guard), "::lost`] has fired.")]
            pub fn is_lost(&self) -> bool {
                self.hold.is_lost()
            }

            #[doc = concat!("How much longer the ", $what, " is proven held if no further extend")]
            /// is confirmed (see "Validity" on [`LockGuard`]); zero once
            /// lost.
            ///
            /// ```no_run
            /// # async fn f(client: baton_client::Client) -> baton_client::Result<()> {
            /// # use std::time::Duration;
            #[doc = concat!("let guard = ", $get, ";")]
            /// if guard.valid_for() > Duration::from_secs(1) {
            ///     // time enough for one more write under this fence
            /// }
            /// # Ok(()) }
            /// ```
            pub fn valid_for(&self) -> Duration {
                self.hold.valid_for()
            }

            #[doc = concat!("Resets the ", $what, "'s expiry to now + `ttl`; the watchdog extends")]
            #[doc = concat!("by `ttl` from then on. `false` when the ", $what, " is no longer held")]
            /// (the lost signal then fires).
            ///
            /// Extends of one guard, these and the watchdog's, go out one
            /// at a time: a call waits for the one in flight, so the server
            /// applies them in the order the guard counts them.
            ///
            /// # Cancel safety
            ///
            /// Cancel safe: cancelled before it was sent (while it waited
            /// for the extend in flight), nothing happens. Cancelled after,
            /// it may or may not reach the server, and may do so late, after
            /// later extends: from then on the guard counts every extend as
            /// proving at most the shortest ttl of such extends.
            pub async fn extend(&self, ttl: Duration) -> Result<bool> {
                self.hold.extend(ttl).await
            }

            #[doc = concat!("Releases the ", $what, "; the queue's head takes over (as far as it")]
            #[doc = concat!("fits). `true` when the ", $what, " was still held by this guard.")]
            ///
            /// # Cancel safety
            ///
            /// If cancelled, the release may or may not have reached the
            /// server; the guard, dropped with the call, then releases in
            /// the background (harmless when already released). The same
            /// when it fails: the drop tries once more in the background.
            pub async fn release(self) -> Result<bool> {
                self.hold.release().await
            }
        }
    };
}

/// A held lock. Release it with [`LockGuard::release`]; dropping it releases
/// in the background.
///
/// While the guard lives, its watchdog (unless turned off with
/// [`LockOptions::watchdog`]) extends the lock every ttl/3, and
/// [`LockGuard::lost`] resolves once the lock can no longer be proven held.
///
/// # Validity
///
/// The guard counts the lock as held until `since + ttl - margin`, never
/// beyond what the server applied. `since` is a time provably not after the
/// server started counting the ttl:
///
/// - a grant that did not wait, and every grant of the Lua backend (the
///   call that collects a hand-off renews the lock to now + ttl): the send
///   time of the call that returned the fence;
/// - the memory backend: the instant of the grant or hand-off;
/// - a module wait: the server hands the lock over at a moment the client
///   does not learn, so its send time counts when the grant arrives within
///   a third of the ttl; when later, an EXTEND is sent and awaited before
///   the guard is returned, and its send time counts;
/// - after that, each confirmed extend: its send time, with its ttl.
///
/// The margin is 2 ms and 1% of the ttl, for the server's rounding of
/// expiry times to whole milliseconds and for a client clock that runs
/// slower than the server's. [`LockGuard::valid_for`] tells what is left.
///
/// A [`SemGuard`] (a semaphore's lease) counts, extends and signals the
/// same way.
#[must_use = "if unused the lock is released at once (in the background)"]
#[derive(Debug)]
pub struct LockGuard {
    hold: Hold,
}

impl LockGuard {
    /// What is under the guard, for the leadership guard built on it.
    pub(crate) fn hold(&self) -> &Hold {
        &self.hold
    }
}

guard_api!(
    LockGuard,
    "lock",
    r#"client.lock("orders:42", &Default::default()).await?"#
);

/// A lease of some of a semaphore's permits (see
/// [`Client::semaphore`](crate::Client::semaphore)); a read-write lock's
/// [`ReadGuard`](crate::ReadGuard) and [`WriteGuard`](crate::WriteGuard)
/// are one too. Release it with [`SemGuard::release`]; dropping it releases
/// in the background.
///
/// The lease has its own fence and its own expiry, and the guard treats
/// them as a [`LockGuard`] treats a lock's: the watchdog (unless turned off
/// with [`LockOptions::watchdog`]) extends the lease every ttl/3,
/// [`SemGuard::lost`] resolves once it can no longer be proven held, and
/// [`SemGuard::valid_for`] counts as described under "Validity" on
/// [`LockGuard`].
#[must_use = "if unused the lease is released at once (in the background)"]
#[derive(Debug)]
pub struct SemGuard {
    hold: Hold,
}

guard_api!(
    SemGuard,
    "lease",
    r#"client.semaphore("pool", 4).acquire(1, &Default::default()).await?"#
);

impl SemGuard {
    /// The permits this lease holds.
    pub fn permits(&self) -> u32 {
        match self.hold.kind() {
            Kind::Sem { permits, .. } => permits,
            Kind::Lock => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_confirmed_extend_counts_from_its_send_time_less_the_margin() {
        let t0 = Instant::now();
        let mut v = Validity::new(t0, 10 * S, true);
        assert_eq!(v.valid_until, t0 + 10 * S - 102 * MS);
        v.confirm(t0 + S, 10 * S);
        assert_eq!(v.confirmed_at, t0 + S);
        assert_eq!(v.valid_until, t0 + 11 * S - 102 * MS);
        // A shorter extend cuts the expiry on the server: so here too.
        v.confirm(t0 + 2 * S, 500 * MS);
        assert_eq!(v.valid_until, t0 + 2 * S + 493 * MS);
        v.confirm(t0 + 3 * S, 2 * MS);
        assert_eq!(v.valid_until, t0 + 3 * S, "2 ms prove nothing");
    }

    #[test]
    fn an_unsettled_extend_caps_what_later_extends_prove() {
        let t0 = Instant::now();
        let mut v = Validity::new(t0, 10 * S, true);
        // A 300 ms extend was cancelled in flight: it may land after any
        // later extend and leave 300 ms.
        v.unsettle(300 * MS);
        v.confirm(t0 + S, 10 * S);
        assert_eq!(v.valid_until, t0 + S + 295 * MS);
        assert_eq!(v.period(), 100 * MS, "the watchdog keeps up with it");
        // A longer unknown extend changes nothing: it can only lengthen.
        v.unsettle(20 * S);
        v.confirm(t0 + 2 * S, 10 * S);
        assert_eq!(v.valid_until, t0 + 2 * S + 295 * MS);
        assert_eq!(v.ttl, 10 * S, "the watchdog still asks for the ttl");
    }
}
