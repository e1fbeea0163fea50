//! Leader election on a lock: [`Client::campaign`], [`Client::leader`],
//! [`Client::observe`], and the [`Leadership`] guard (`resign`,
//! `proclaim`).
//!
//! An election `name` is the lock `name`: the leader is its holder, the
//! leader's value is the holder's `META`, and its **term** is the lock's
//! fence, so terms strictly increase and a leader can pass its term to
//! whatever it writes, as a fence. Campaigning is acquiring with a wait
//! (FIFO: campaigners win in the order they came), resigning is
//! releasing, and `proclaim` is `LOCK.EXTEND ... META`, which never grants,
//! so a new value never comes with a new term. Being built on the lock, it
//! works on every backend.
//!
//! An observer re-reads `LOCK.INFO` whenever it may have changed: on a
//! pub/sub message that campaign, proclaim and resign send on the channel
//! `baton:elect:<name>` (the memory backend: an in-process signal on every
//! change), on the module's keyspace events for the key (when the server's
//! `notify-keyspace-events` shows module events), at the holder's expiry,
//! and at least every re-read period. See [`Observer`] for what that
//! guarantees.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::Imp;
use crate::client::Client;
use crate::error::{validate_key, Error, Result};
use crate::guard::LockGuard;
use crate::options::LockOptions;

/// Who leads an election, as [`Client::leader`] and [`Observer`] see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// The leader's term: the lock's fence, larger than every term before.
    pub term: u64,
    /// The value the leader campaigned with or last proclaimed (empty
    /// when the lock's holder stored none: a plain lock on the name).
    pub value: Vec<u8>,
}

/// The pub/sub channel on which a campaign's win, a proclaim and a resign
/// of election `name` are announced.
fn channel(name: &str) -> String {
    format!("baton:elect:{name}")
}

/// The module's keyspace events for the key `name`, in every database
/// (glob characters escaped).
fn keyspace_pattern(name: &str) -> String {
    let mut pattern = String::from("__keyspace@*__:");
    for c in name.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern
}

impl Client {
    /// Waits (in FIFO order, up to `opts.wait`) to become leader of
    /// election `name` with `value` (0 to 1024 bytes), and returns the
    /// leadership. It is the lock `name` held with `value` as its `META`:
    /// its watchdog keeps it, its lost signal fires when leadership can no
    /// longer be proven, and its fence is the term. Observers are told
    /// before this returns (best effort: a failed announcement only delays
    /// them to their next re-read).
    ///
    /// # Errors
    ///
    /// As [`Client::lock`]: [`Error::NotAcquired`] when `opts.wait` ran
    /// out, [`Error::InvalidOptions`] for a value over 1024 bytes.
    ///
    /// # Cancel safety
    ///
    /// As [`Client::lock`]: a cancelled campaign leaves the queue, and a win
    /// that raced the cancellation is resigned in the background.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(client: baton_client::Client) -> baton_client::Result<()> {
    /// use std::time::Duration;
    /// use baton_client::LockOptions;
    /// let opts = LockOptions::new()
    ///     .ttl(Duration::from_secs(5))
    ///     .wait(Duration::from_secs(3600));
    /// let leadership = client.campaign("scheduler", "10.0.0.7:8080", &opts).await?;
    /// println!("leading in term {}", leadership.term());
    /// tokio::select! {
    ///     _ = leadership.lost() => eprintln!("no longer leader: stop"),
    ///     _ = tokio::time::sleep(Duration::from_secs(60)) => {}
    /// }
    /// leadership.resign().await?;
    /// # Ok(()) }
    /// ```
    pub async fn campaign(
        &self,
        name: &str,
        value: impl Into<Vec<u8>>,
        opts: &LockOptions,
    ) -> Result<Leadership> {
        let value = value.into();
        let guard = self.lock(name, &opts.clone().meta(value.clone())).await?;
        self.announce(name, guard.fence()).await;
        Ok(Leadership {
            guard,
            value: Mutex::new(value),
        })
    }

    /// The current leader of election `name`, or `None` when nobody leads.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (read only).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(client: baton_client::Client) -> baton_client::Result<()> {
    /// if let Some(leader) = client.leader("scheduler").await? {
    ///     println!("term {}: {}", leader.term, String::from_utf8_lossy(&leader.value));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn leader(&self, name: &str) -> Result<Option<Leader>> {
        Ok(self.leader_and_pttl(name).await?.0)
    }

    /// The leader and, while there is one, how long until its lock expires
    /// unless extended.
    async fn leader_and_pttl(&self, name: &str) -> Result<(Option<Leader>, Option<Duration>)> {
        let info = self.info(name).await?;
        if !info.held {
            return Ok((None, None));
        }
        let leader = Leader {
            term: info.fence,
            value: info.meta.unwrap_or_default(),
        };
        Ok((Some(leader), info.pttl.map(Duration::from_millis)))
    }

    /// Watches election `name`: the [`Observer`] yields the current leader
    /// first, then every change it sees, in order. Nothing is sent to the
    /// server until it is first polled.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(client: baton_client::Client) -> baton_client::Result<()> {
    /// let mut observer = client.observe("scheduler")?;
    /// loop {
    ///     match observer.next().await? {
    ///         Some(leader) => println!("term {} leads", leader.term),
    ///         None => println!("no leader"),
    ///     }
    /// }
    /// # }
    /// ```
    pub fn observe(&self, name: &str) -> Result<Observer> {
        validate_key(name)?;
        Ok(Observer {
            client: self.clone(),
            name: name.to_owned(),
            last: None,
            period: Observer::DEFAULT_PERIOD,
            wake: None,
            retry_at: None,
        })
    }

    /// Tells observers that election `name` changed (best effort).
    async fn announce(&self, name: &str, term: u64) {
        let conns = match &self.inner.imp {
            Imp::Module(b) => b.conns(),
            Imp::Lua(b) => b.conns(),
            // Every change is signalled in-process already.
            Imp::Memory(_) => return,
        };
        let sent = async {
            let mut conn = conns.get().await?;
            let mut cmd = redis::cmd("PUBLISH");
            cmd.arg(channel(name)).arg(term);
            let _: i64 = cmd.query_async(&mut conn).await?;
            Ok::<_, Error>(())
        };
        if let Err(e) = sent.await {
            tracing::debug!(%name, error = %e, "election announcement failed; observers re-read later");
        }
    }
}

/// Leadership of an election, from [`Client::campaign`]: the lock guard of
/// the election's name. Resign with [`Leadership::resign`]; dropping it
/// resigns in the background (observers then learn it at their next
/// re-read, not at once).
#[must_use = "if unused the leadership is resigned at once (in the background)"]
#[derive(Debug)]
pub struct Leadership {
    guard: LockGuard,
    value: Mutex<Vec<u8>>,
}

impl Leadership {
    /// The election's name.
    pub fn name(&self) -> &str {
        self.guard.key()
    }

    /// This leadership's term (the lock's fence): larger than every term
    /// before it. Pass it to what you write as leader, as a fence.
    pub fn term(&self) -> u64 {
        self.guard.fence()
    }

    /// The value last campaigned with or proclaimed.
    pub fn value(&self) -> Vec<u8> {
        self.value.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Resolves when leadership can no longer be proven (see
    /// [`LockGuard::lost`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only observes.
    pub fn lost(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.guard.lost()
    }

    /// The lost signal as a token.
    pub fn lost_token(&self) -> CancellationToken {
        self.guard.lost_token()
    }

    /// True once [`Leadership::lost`] has fired.
    pub fn is_lost(&self) -> bool {
        self.guard.is_lost()
    }

    /// How much longer leadership is proven (see [`LockGuard::valid_for`]).
    pub fn valid_for(&self) -> Duration {
        self.guard.valid_for()
    }

    /// Replaces the leader's value, in the same term (`LOCK.EXTEND ...
    /// META`, which also renews the lock by its ttl, and never grants).
    /// `false` when this is no longer the leader (the lost signal then
    /// fires). Observers are told before it returns (best effort).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOptions`] for a value over 1024 bytes; connection
    /// errors.
    ///
    /// # Cancel safety
    ///
    /// As [`LockGuard::extend`]: cancelled before it was sent, nothing
    /// happens; after, the new value may or may not be stored, and
    /// [`Leadership::value`] keeps the old one.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(leadership: baton_client::Leadership) -> baton_client::Result<()> {
    /// if !leadership.proclaim("10.0.0.8:8080").await? {
    ///     eprintln!("no longer leader");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn proclaim(&self, value: impl Into<Vec<u8>>) -> Result<bool> {
        let value = value.into();
        if value.len() > crate::options::MAX_META_LEN {
            return Err(Error::InvalidOptions(format!(
                "a leader's value must be at most {} bytes",
                crate::options::MAX_META_LEN
            )));
        }
        let hold = self.guard.hold();
        if !hold.extend_meta(&value).await? {
            return Ok(false);
        }
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = value;
        hold.client().announce(self.name(), self.term()).await;
        Ok(true)
    }

    /// Gives up leadership: the next campaigner in line takes over at once.
    /// `true` when this was still the leader. Observers are told before it
    /// returns (best effort).
    ///
    /// # Cancel safety
    ///
    /// As [`LockGuard::release`]: a cancelled resign finishes in the
    /// background.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(leadership: baton_client::Leadership) -> baton_client::Result<()> {
    /// let term = leadership.term();
    /// if !leadership.resign().await? {
    ///     eprintln!("term {term} had already ended");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn resign(self) -> Result<bool> {
        let client = self.guard.hold().client().clone();
        let (name, term) = (self.name().to_owned(), self.term());
        let resigned = self.guard.release().await?;
        client.announce(&name, term).await;
        Ok(resigned)
    }
}

/// What wakes an observer for a re-read.
enum Wake {
    /// Pub/sub messages: the election's channel, the module's keyspace
    /// events, the Lua hand-offs of the lock.
    Redis(std::pin::Pin<Box<dyn Stream<Item = redis::Msg> + Send>>),
    /// The memory backend's change signal.
    Memory(tokio::sync::watch::Receiver<u64>),
}

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Wake::Redis(_) => "Wake::Redis",
            Wake::Memory(_) => "Wake::Memory",
        })
    }
}

/// Watches an election (from [`Client::observe`]).
///
/// # What it guarantees
///
/// - The first call of [`Observer::next`] gives the current leader (or
///   `None`); each later call gives the next change it sees: a new term, a
///   new value in the same term ([`Leadership::proclaim`]), or no leader.
/// - In order, never twice: each item comes from a read that the server
///   answered after the one before, so terms never go back and an item
///   never repeats the one before it.
/// - Nothing is missed for long: it re-reads on every notification (a
///   campaign's win, a proclaim, a resign; the module's keyspace events
///   when enabled; every change on the memory backend), at the leader's
///   expiry, and at least every [`Observer::reread_every`] period, so a
///   lost notification (a pub/sub reconnect, a leader killed before it
///   announced) delays an item by at most that period.
/// - A state that lasts less than one re-read round trip (a leader that
///   wins and is gone again before the observer's read arrives) may be
///   skipped: the next item is then the state that followed it. Every
///   state that lasts until the observer's read after its notification is
///   seen.
///
/// On a Redis Cluster the notifications come over one connection to the
/// seed node: announcements reach it (classic `PUBLISH` goes to every
/// node), the module's keyspace events only when the seed serves the
/// name's slot; the re-reads go wherever the key is.
///
/// # Cancel safety
///
/// [`Observer::next`] is cancel safe: a cancelled call loses nothing (the
/// next call reads the state then).
#[derive(Debug)]
pub struct Observer {
    client: Client,
    name: String,
    /// What the last item said; `None` before the first.
    last: Option<Option<Leader>>,
    period: Duration,
    wake: Option<Wake>,
    /// When to try subscribing again after a failure.
    retry_at: Option<Instant>,
}

impl Observer {
    /// The default re-read period: 1 s.
    pub const DEFAULT_PERIOD: Duration = Duration::from_secs(1);

    /// Sets how often the observer re-reads without a notification (default
    /// [`Observer::DEFAULT_PERIOD`]; at least 10 ms).
    pub fn reread_every(mut self, period: Duration) -> Self {
        self.period = period.max(Duration::from_millis(10));
        self
    }

    /// The election's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current leader on the first call, then the next change (see
    /// [`Observer`] for the guarantees).
    ///
    /// # Errors
    ///
    /// Connection errors of the re-read; the observer stays usable.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled call loses nothing (the next call reads
    /// the state then).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(client: baton_client::Client) -> baton_client::Result<()> {
    /// use std::time::Duration;
    /// let mut observer = client
    ///     .observe("scheduler")?
    ///     .reread_every(Duration::from_secs(5));
    /// let first = observer.next().await?; // the current leader, or None
    /// let change = tokio::time::timeout(Duration::from_secs(60), observer.next()).await;
    /// # let _ = (first, change);
    /// # Ok(()) }
    /// ```
    pub async fn next(&mut self) -> Result<Option<Leader>> {
        loop {
            self.subscribe().await;
            // Marked seen before the read: a change after it wakes us.
            if let Some(Wake::Memory(rx)) = &mut self.wake {
                rx.borrow_and_update();
            }
            let (now, pttl) = self.client.leader_and_pttl(&self.name).await?;
            if self.last.as_ref() != Some(&now) {
                self.last = Some(now.clone());
                return Ok(now);
            }
            // A leader's expiry is a change nobody announces: re-read then.
            let mut until = Instant::now() + self.period;
            if let Some(pttl) = pttl {
                until = until.min(Instant::now() + pttl + Duration::from_millis(1));
            }
            self.wait(until).await;
        }
    }

    /// The observer as a [`Stream`] of [`Observer::next`]'s items (it never
    /// ends; an error item is followed by further reads).
    ///
    /// ```no_run
    /// # async fn f(client: baton_client::Client) -> baton_client::Result<()> {
    /// use futures_util::StreamExt;
    /// let mut changes = std::pin::pin!(client.observe("scheduler")?.into_stream());
    /// while let Some(item) = changes.next().await {
    ///     println!("{:?}", item?);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn into_stream(self) -> impl Stream<Item = Result<Option<Leader>>> + Send {
        futures_util::stream::unfold(self, |mut observer| async move {
            let item = observer.next().await;
            Some((item, observer))
        })
    }

    /// Opens the notifications if they are not open (again after a
    /// failure, at most once a period).
    async fn subscribe(&mut self) {
        if self.wake.is_some() || self.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let opened = match &self.client.inner.imp {
            Imp::Memory(m) => Ok(Wake::Memory(m.changes())),
            Imp::Module(b) => redis_wake(b.conns(), &self.name, false).await,
            Imp::Lua(b) => redis_wake(b.conns(), &self.name, true).await,
        };
        match opened {
            Ok(wake) => {
                self.wake = Some(wake);
                self.retry_at = None;
            }
            Err(e) => {
                tracing::warn!(name = %self.name, error = %e, "election observer cannot subscribe; re-reading every period");
                self.retry_at = Some(Instant::now() + self.period);
            }
        }
    }

    /// Waits for a notification or `until`.
    async fn wait(&mut self, until: Instant) {
        let sleep = tokio::time::sleep_until(until);
        match &mut self.wake {
            None => sleep.await,
            Some(Wake::Memory(rx)) => {
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() { self.wake = None },
                    _ = sleep => {}
                }
            }
            Some(Wake::Redis(stream)) => {
                tokio::select! {
                    msg = stream.next() => if msg.is_none() {
                        // The connection broke: subscribe again.
                        self.wake = None;
                    },
                    _ = sleep => {}
                }
            }
        }
    }
}

/// A pub/sub connection subscribed to what announces a change of election
/// `name`: its channel, the module's keyspace events of the key, and with
/// `lua` the Lua backend's hand-off channel of the lock.
async fn redis_wake(conns: &crate::backend::Conns, name: &str, lua: bool) -> Result<Wake> {
    let client = conns.pubsub_client().await?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel(name)).await?;
    if lua {
        let lock = crate::backend::Kind::Lock;
        pubsub
            .subscribe(crate::scripts::channel(lock, name))
            .await?;
    } else {
        pubsub.psubscribe(keyspace_pattern(name)).await?;
    }
    Ok(Wake::Redis(Box::pin(pubsub.into_on_message())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_patterns_escape_glob_characters() {
        assert_eq!(keyspace_pattern("a"), "__keyspace@*__:a");
        assert_eq!(
            keyspace_pattern("a*b?[c]\\"),
            "__keyspace@*__:a\\*b\\?\\[c\\]\\\\"
        );
    }
}
