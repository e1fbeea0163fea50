//! The watchdog: a task per guard that keeps the lock (or the lease)
//! alive and fires the lost signal, started by one [`Starter`] per client
//! when the guard first has something to do.
//!
//! Every `max(ttl/3, 50 ms)` it sends EXTEND. A reply of 0 (expired, force
//! released) fires the lost signal at once. A failed or unanswered EXTEND is
//! retried until the lock's proven validity (send time of the last confirmed
//! extend + ttl) runs out, and then the signal fires: never later than the
//! ttl. With the watchdog off the task only fires the signal at that time.
//!
//! Most guards are released long before their first extend: spawning a
//! task for each of them cost a tenth of an acquire+release cycle. So a
//! guard is only queued at first (a heap entry of a [`Weak`] reference, by
//! the time of its first extend, or of the end of its validity with the
//! watchdog off), and the client's one starter task spawns its watchdog
//! task when that time comes and the guard is still held.
//!
//! The tasks run on the client's runtime (see [`spawn`]), outside what
//! [`Client::flush`](crate::Client::flush) waits for, and fire the lost
//! signal however they end: also when that runtime shuts down and drops
//! them (the starter fires it for every guard still queued), or when there
//! is no runtime to run them at all.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{sleep_until, timeout_at, Instant};

use crate::client::{Client, Inner};
use crate::guard::Shared;

/// The shortest period between two extends.
pub const MIN_PERIOD: Duration = Duration::from_millis(50);

/// Fires the lost signal when dropped. Moved into the watchdog's task, so
/// a task that its runtime drops (shutdown, or never started) cannot leave
/// a guard that looks held with nothing extending or watching it.
struct Fuse(Arc<Shared>);

impl Drop for Fuse {
    fn drop(&mut self) {
        self.0.mark_lost();
    }
}

/// Starts the watchdog of `shared`: queued on the client's [`Starter`]
/// until it has something to do. Without a runtime the lock cannot be
/// watched, and the lost signal fires at once.
pub(crate) fn spawn(client: &Client, shared: &Arc<Shared>) {
    let starter = &client.inner.watchdogs;
    let v = shared.validity();
    let first = match v.watchdog {
        true => (v.confirmed_at + v.period()).min(v.valid_until),
        false => v.valid_until,
    };
    let mut s = starter.lock();
    if s.closed {
        drop(s);
        no_runtime(shared);
        return;
    }
    let earliest = s.queue.peek().is_none_or(|Reverse(e)| first < e.at);
    s.seq += 1;
    let seq = s.seq;
    s.queue.push(Reverse(Queued {
        at: first,
        seq,
        shared: Arc::downgrade(shared),
    }));
    // Released guards stay queued until their time: drop them once the
    // queue has doubled since the last sweep (amortised O(1) per guard).
    if s.queue.len() > 2 * s.swept + 1024 {
        s.queue.retain(|Reverse(e)| e.pending());
        s.swept = s.queue.len();
    }
    let start = !s.running;
    s.running = true;
    drop(s);
    if start {
        // Outside the lock: a runtime that shut down drops the task at
        // once, and with it `Stopped`, which takes the lock.
        let task = run_starter(Arc::downgrade(&client.inner), Stopped(starter.clone()));
        if !client.inner.rt.spawn_untracked(task) {
            // Dropped unspawned: `Stopped` fired the lost signal.
            tracing::warn!(key = %shared.key, "no tokio runtime for the {}'s watchdog: its lost signal fires at once", shared.kind.noun());
        }
    } else if earliest {
        starter.wake.notify_one();
    }
}

/// No runtime to watch `shared` on: its lost signal fires at once.
fn no_runtime(shared: &Shared) {
    tracing::warn!(key = %shared.key, "no tokio runtime for the {}'s watchdog: its lost signal fires at once", shared.kind.noun());
    shared.mark_lost();
}

/// Spawns the watchdog task of `shared`, which owns a [`Fuse`].
fn spawn_task(client: &Client, shared: Arc<Shared>) {
    let fuse = Fuse(shared);
    let task_client = client.clone();
    let key = fuse.0.key.clone();
    let noun = fuse.0.kind.noun();
    let started = client.inner.rt.spawn_untracked(async move {
        let fuse = fuse;
        run(task_client, fuse.0.clone()).await;
    });
    if !started {
        tracing::warn!(%key, "no tokio runtime for the {noun}'s watchdog: its lost signal fired");
    }
}

/// A guard waiting for its watchdog task.
struct Queued {
    /// When its watchdog first has something to do.
    at: Instant,
    /// Order of queueing, to break ties.
    seq: u64,
    shared: Weak<Shared>,
}

impl Queued {
    /// Still held and watched (not released, dropped or lost).
    fn pending(&self) -> bool {
        self.shared
            .upgrade()
            .is_some_and(|s| !s.stop.is_cancelled())
    }
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// What the [`Starter`] keeps under its lock.
#[derive(Default)]
struct Queue {
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    /// The queue's length after the last sweep of released guards.
    swept: usize,
    /// A starter task was spawned and has not ended (a runtime that shut
    /// down ends it; the next guard spawns another).
    running: bool,
    /// The client was dropped: the starter task ends.
    closed: bool,
}

/// One per client: the guards whose watchdog task is not spawned yet, and
/// the task that spawns them when their time comes.
#[derive(Default)]
pub(crate) struct Starter {
    state: Mutex<Queue>,
    /// Wakes the starter task: an earlier guard was queued, or the client
    /// was dropped.
    wake: Notify,
}

impl std::fmt::Debug for Starter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("Starter")
            .field("queued", &s.queue.len())
            .field("running", &s.running)
            .finish()
    }
}

impl Starter {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The client is gone (no guard is left, each holds a client): the
    /// starter task ends.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }
}

/// Fires the lost signal of every guard still queued when the starter task
/// ends, however it ends (its runtime shutting down drops it, perhaps
/// before its first poll: so it is made before the task is spawned).
struct Stopped(Arc<Starter>);

impl Drop for Stopped {
    fn drop(&mut self) {
        let queued = {
            let mut s = self.0.lock();
            s.running = false;
            std::mem::take(&mut s.queue)
        };
        for Reverse(e) in queued {
            if let Some(shared) = e.shared.upgrade() {
                shared.mark_lost();
            }
        }
    }
}

/// The starter task: spawns each queued guard's watchdog task at its time,
/// unless the guard is gone by then.
async fn run_starter(client: Weak<Inner>, stopped: Stopped) {
    let starter = &stopped.0;
    loop {
        let (due, next) = {
            let mut s = starter.lock();
            if s.closed {
                return;
            }
            let now = Instant::now();
            let mut due = Vec::new();
            while s.queue.peek().is_some_and(|Reverse(e)| e.at <= now) {
                if let Some(Reverse(e)) = s.queue.pop() {
                    due.push(e);
                }
            }
            (due, s.queue.peek().map(|Reverse(e)| e.at))
        };
        for e in due {
            let Some(shared) = e.shared.upgrade() else {
                continue;
            };
            if shared.stop.is_cancelled() {
                continue;
            }
            // A held guard holds a client, so this upgrade succeeds.
            let Some(inner) = client.upgrade() else {
                shared.mark_lost();
                continue;
            };
            spawn_task(&Client { inner }, shared);
        }
        match next {
            Some(at) => {
                tokio::select! {
                    _ = sleep_until(at) => {}
                    _ = starter.wake.notified() => {}
                }
            }
            None => starter.wake.notified().await,
        }
    }
}

/// Runs until the guard is released, dropped, or the lock is lost.
async fn run(client: Client, shared: Arc<Shared>) {
    let mut retry_at: Option<Instant> = None;
    loop {
        let v = shared.validity();
        let period = v.period();
        let next = if v.watchdog {
            retry_at
                .unwrap_or(v.confirmed_at + period)
                .min(v.valid_until)
        } else {
            v.valid_until
        };
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = shared.changed.notified() => { retry_at = None; continue; }
            _ = sleep_until(next) => {}
        }
        let v = shared.validity();
        if Instant::now() >= v.valid_until {
            tracing::warn!(key = %shared.key, "{} lost: could not be extended within its ttl", shared.kind.noun());
            shared.mark_lost();
            return;
        }
        if !v.watchdog {
            continue;
        }
        // Waits for a manual extend in flight, then extends (one at a time).
        let extend = shared.extend(&client.inner.imp, v.ttl);
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            reply = timeout_at(v.valid_until, extend) => match reply {
                Ok(Ok(true)) => retry_at = None,
                Ok(Ok(false)) => return, // lost: Shared::extend said so
                Ok(Err(e)) => {
                    tracing::debug!(key = %shared.key, error = %e, "extend failed; retrying");
                    retry_at = Some(Instant::now() + (period / 4).max(MIN_PERIOD / 2));
                }
                Err(_) => {} // valid_until passed: the top of the loop fires.
            }
        }
    }
}
