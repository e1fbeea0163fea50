//! The watchdog: one task per guard that keeps the lock (or the lease)
//! alive and fires the lost signal.
//!
//! Every `max(ttl/3, 50 ms)` it sends EXTEND. A reply of 0 (expired, force
//! released) fires the lost signal at once. A failed or unanswered EXTEND is
//! retried until the lock's proven validity (send time of the last confirmed
//! extend + ttl) runs out, and then the signal fires: never later than the
//! ttl. With the watchdog off the task only fires the signal at that time.
//!
//! The task runs on the client's runtime (see [`spawn`]), outside what
//! [`Client::flush`](crate::Client::flush) waits for, and fires the lost
//! signal however it ends: also when that runtime shuts down and drops it,
//! or when there is no runtime to run it at all.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep_until, timeout_at, Instant};

use crate::client::Client;
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

/// Starts the watchdog of `shared` on the client's runtime. Without one
/// the lock cannot be watched, and the lost signal fires at once.
pub(crate) fn spawn(client: &Client, shared: &Arc<Shared>) {
    let fuse = Fuse(shared.clone());
    let task_client = client.clone();
    let started = client.inner.rt.spawn_untracked(async move {
        let fuse = fuse;
        run(task_client, fuse.0.clone()).await;
    });
    if !started {
        tracing::warn!(key = %shared.key, "no tokio runtime for the {}'s watchdog: its lost signal fires at once", shared.kind.noun());
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
