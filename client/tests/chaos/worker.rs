//! A worker: a tokio task with a `baton_client::Client` of its own that
//! takes fenced locks on a few keys, in a loop, and writes to the fenced
//! register under each grant, recording everything in the history.
//!
//! One round: pick a key and a wait; `lock()` inside a timeout of the wait,
//! the durable timeout and a grace (past it the wait counts as hung and is
//! given up: the call is dropped, which withdraws it). On a grant: a few
//! register writes a few dozen ms apart, each only while the guard is not
//! lost and has validity left, sometimes holding for longer than the ttl
//! (the watchdog keeps it); then release. A tracker task follows the
//! guard's proven validity every few ms, so the hold's end is known even
//! when the loss is signalled late (a busy runtime): the hold ends at the
//! first of the release being sent, the validity the guard last proved,
//! and the loss.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton_client::{Client, Error, LockGuard, LockOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use super::history::{Grant, History, Wait};
use super::register::{Write, Writer};

/// How often the tracker reads a guard's validity.
const TRACK_EVERY: Duration = Duration::from_millis(5);
/// A write is sent only with at least this much validity left.
const MIN_LEFT: Duration = Duration::from_millis(50);
/// After an error, the pause before the next round (no busy loop while a
/// server is down).
const ERROR_PAUSE: Duration = Duration::from_millis(50);

/// What every worker of a run does.
#[derive(Debug, Clone)]
pub struct Work {
    pub keys: Vec<String>,
    pub ttl: Duration,
    /// The waits to pick from, one per round.
    pub waits: Vec<Duration>,
    /// `LockOptions::durable(replicas, timeout)`, if durable.
    pub durable: Option<(u64, Duration)>,
    /// Added to the wait (and the durable timeout) before a `lock()` call
    /// counts as hung.
    pub grace: Duration,
    /// Register writes per grant.
    pub writes: (u32, u32),
    /// The pause between two writes.
    pub write_gap: (Duration, Duration),
    /// The share of grants held for 1.5 ttl before the release.
    pub long_holds: f64,
}

/// Runs worker `id` until `stop` is cancelled.
pub async fn run(
    id: usize,
    client: Client,
    mut register: Writer,
    work: Arc<Work>,
    history: Arc<Mutex<History>>,
    stop: CancellationToken,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seq: u64 = 0;
    while !stop.is_cancelled() {
        let key = &work.keys[rng.random_range(0..work.keys.len())];
        let wait = work.waits[rng.random_range(0..work.waits.len())];
        let mut opts = LockOptions::new().ttl(work.ttl).wait(wait).watchdog(true);
        let mut limit = wait + work.grace;
        if let Some((replicas, timeout)) = work.durable {
            opts = opts.durable(replicas, timeout);
            limit += timeout;
        }
        let sent = Instant::now();
        let reply = tokio::time::timeout(limit, client.lock(key, &opts)).await;
        let returned = Instant::now();
        let answered = reply.is_ok();
        let record = |f: &mut dyn FnMut(&mut History)| {
            let mut h = history.lock().expect("history poisoned");
            h.counts.attempts += 1;
            if answered {
                let took = returned - sent;
                h.counts.longest_call = h.counts.longest_call.max(took);
                let overrun = took.saturating_sub(limit - work.grace);
                h.counts.longest_overrun = h.counts.longest_overrun.max(overrun);
            }
            f(&mut h);
        };
        let wait_of = || Wait {
            worker: id,
            key: key.clone(),
            wait,
            sent,
            returned,
        };
        let guard = match reply {
            Err(_) => {
                record(&mut |h| h.hung.push(wait_of()));
                continue;
            }
            Ok(Ok(guard)) => guard,
            Ok(Err(e)) => {
                record(&mut |h| match &e {
                    Error::NotAcquired { .. } => {
                        h.counts.not_acquired += 1;
                        h.timeouts.push(wait_of());
                    }
                    Error::NotReplicated { .. } => h.counts.not_replicated += 1,
                    Error::Lost { .. } => h.counts.lost_at_acquire += 1,
                    other => h.error(&other.to_string()),
                });
                if !matches!(e, Error::NotAcquired { .. }) {
                    tokio::time::sleep(ERROR_PAUSE).await;
                }
                continue;
            }
        };
        record(&mut |_| {});
        let grant = hold(
            id,
            &mut seq,
            guard,
            key,
            sent,
            &work,
            &mut register,
            &mut rng,
        )
        .await;
        let mut h = history.lock().expect("history poisoned");
        h.counts.register_accepted += grant.grant.accepted as usize;
        h.counts.register_refused += grant.grant.refused as usize;
        h.counts.register_errors += grant.errors;
        let gone = grant.grant.released == Some(false);
        h.counts.released_gone += usize::from(gone);
        h.counts.released_gone_while_valid += usize::from(grant.grant.gone_while_valid);
        h.counts.release_errors += usize::from(grant.grant.released.is_none());
        h.grants.push(grant.grant);
    }
}

/// A hold and how it went.
struct Held {
    grant: Grant,
    errors: usize,
}

/// Holds `guard`: a few writes, then the release.
#[allow(clippy::too_many_arguments)]
async fn hold(
    id: usize,
    seq: &mut u64,
    guard: LockGuard,
    key: &str,
    sent: Instant,
    work: &Work,
    register: &mut Writer,
    rng: &mut StdRng,
) -> Held {
    let granted = Instant::now();
    let fence = guard.fence();
    let guard = Arc::new(guard);
    let done = CancellationToken::new();
    let tracker = tokio::spawn(track(guard.clone(), done.clone()));
    let (lo, hi) = work.writes;
    let writes = rng.random_range(lo..=hi);
    let long = rng.random_bool(work.long_holds);
    let (mut accepted, mut refused, mut errors) = (0, 0, 0);
    for i in 0..writes {
        if guard.is_lost() || guard.valid_for() < MIN_LEFT {
            break;
        }
        *seq += 1;
        match register.write(key, fence, &format!("w{id}:{}", *seq)).await {
            Write::Accepted => accepted += 1,
            Write::Refused => refused += 1,
            Write::Failed => errors += 1,
        }
        let gap = if long && i == 0 {
            work.ttl * 3 / 2
        } else {
            let (lo, hi) = work.write_gap;
            rng.random_range(lo..=hi)
        };
        tokio::time::sleep(gap).await;
    }
    // The hold ends where the worker stops relying on it: at the release
    // (or at its loss, if that came first).
    done.cancel();
    let lost_end = tracker.await.expect("tracker task");
    let guard = Arc::into_inner(guard).expect("the tracker has ended");
    let release_sent = Instant::now();
    let valid_until = release_sent + guard.valid_for();
    let released = match tokio::time::timeout(work.ttl + work.grace, guard.release()).await {
        Ok(Ok(held)) => Some(held),
        _ => None,
    };
    // The server answered that the lock was not this guard's while the
    // guard still proved it held: a lost grant or extend. A release that
    // landed after that (a failover delayed it) proves nothing.
    let gone_while_valid = released == Some(false) && Instant::now() < valid_until;
    // A guard whose release failed was dropped with the call: its watchdog
    // stopped and a release went out in the background.
    let (ended, lost) = match lost_end {
        Some(lost_end) => (lost_end, true),
        None => (release_sent, false),
    };
    Held {
        grant: Grant {
            worker: id,
            key: key.to_owned(),
            fence,
            sent,
            granted,
            ended,
            lost,
            accepted,
            refused,
            released,
            gone_while_valid,
        },
        errors,
    }
}

/// Follows `guard` until its loss or `done` (the worker is about to
/// release): for a loss, the end of the hold as the guard knew it (the
/// earlier of when the loss was seen and the validity it proved last);
/// `None` when `done` came while the guard still proved the lock held.
async fn track(guard: Arc<LockGuard>, done: CancellationToken) -> Option<Instant> {
    let mut deadline = Instant::now() + guard.valid_for();
    let lost = guard.lost();
    tokio::pin!(lost);
    loop {
        tokio::select! {
            _ = &mut lost => return Some(Instant::now().min(deadline)),
            _ = done.cancelled() => {
                return (Instant::now() >= deadline).then_some(deadline);
            }
            _ = tokio::time::sleep(TRACK_EVERY) => {
                let now = Instant::now();
                let left = guard.valid_for();
                if left.is_zero() {
                    return Some(now.min(deadline));
                }
                deadline = now + left;
            }
        }
    }
}
