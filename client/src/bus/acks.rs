//! Queued acks ([`Message::ack_queued`](super::Message::ack_queued)): each
//! consumer has one background task that sends the acks queued to it. An
//! ack queued while the task's previous `XACK` is in flight goes out with
//! the others queued meanwhile, in the next one: a handler that queues the
//! ack of every message pays one round trip per batch of acks, not per
//! message, and never waits for it.
//!
//! The task retries a batch that failed for want of a connection (with
//! backoff, for as long as the consumer or one of its messages lives),
//! answers flushes ([`Consumer::flush`](super::Consumer::flush) and
//! [`Consumer::close`](super::Consumer::close)) once every ack queued before
//! them is confirmed, and keeps a failure nobody was told about for the
//! consumer's stream to yield. It ends once the consumer and all its
//! messages are dropped and the queue is empty.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::message::{GroupCtx, MessageId};
use crate::error::{Error, Result};

/// Most requests taken off the queue for one round trip.
const MOST_PER_ROUND: usize = 10_000;

/// Attempts of a batch that keeps failing once nobody can queue more (the
/// consumer and its messages are gone): then it is left to redelivery.
const ATTEMPTS_WHEN_ORPHANED: u32 = 5;

enum Req {
    Ack(MessageId),
    Flush(oneshot::Sender<Result<()>>),
}

/// The queue side, held by the consumer's [`GroupCtx`]: cheap to use from
/// every message.
#[derive(Debug)]
pub(crate) struct AckQueue {
    tx: mpsc::UnboundedSender<Req>,
    /// A failure that no flush reported: for the stream, or the next flush.
    failed: Arc<Mutex<Option<Error>>>,
}

impl AckQueue {
    /// Starts the task of `ctx` (a context without a queue of its own: the
    /// task must not keep its own queue open).
    pub(crate) fn start(ctx: GroupCtx) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let failed = Arc::new(Mutex::new(None));
        tokio::spawn(run(ctx, rx, failed.clone()));
        Self { tx, failed }
    }

    /// Queues the ack of `id`.
    pub(crate) fn push(&self, id: MessageId) -> Result<()> {
        self.tx.send(Req::Ack(id)).map_err(|_| stopped())
    }

    /// Waits until every ack queued before this call is confirmed by the
    /// server; else the first error since the last report.
    pub(crate) async fn flush(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Req::Flush(tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// A failure of queued acks that nobody has been told about yet.
    pub(crate) fn take_failure(&self) -> Option<Error> {
        lock(&self.failed).take()
    }
}

fn lock(m: &Mutex<Option<Error>>) -> std::sync::MutexGuard<'_, Option<Error>> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The task is gone: only when the runtime it ran on shut down.
fn stopped() -> Error {
    Error::Redis(
        std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            "the consumer's ack task has stopped (its runtime shut down)",
        )
        .into(),
    )
}

/// The same error again, for a second caller (errors are not `Clone`).
fn again(e: &Error) -> Error {
    match e {
        Error::Redis(r) => Error::Redis(r.clone()),
        Error::NoPermission(s) => Error::NoPermission(s.clone()),
        Error::Tls(s) => Error::Tls(s.clone()),
        other => Error::UnexpectedReply(other.to_string()),
    }
}

async fn run(
    ctx: GroupCtx,
    mut rx: mpsc::UnboundedReceiver<Req>,
    failed: Arc<Mutex<Option<Error>>>,
) {
    // Queued, not yet confirmed (a failed batch stays here to be retried).
    let mut ids: Vec<MessageId> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<Result<()>>> = Vec::new();
    let mut reqs = Vec::new();
    let mut open = true;
    let mut backoff = Duration::from_millis(50);
    let mut orphaned_attempts = 0;
    loop {
        if open {
            if ids.is_empty() && flushes.is_empty() {
                // Idle: wait for the next request.
                if rx.recv_many(&mut reqs, MOST_PER_ROUND).await == 0 {
                    open = false;
                }
            } else {
                // Retrying: take what came meanwhile, without waiting.
                loop {
                    match rx.try_recv() {
                        Ok(r) => reqs.push(r),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                }
            }
        }
        for r in reqs.drain(..) {
            match r {
                Req::Ack(id) => ids.push(id),
                Req::Flush(tx) => flushes.push(tx),
            }
        }
        if ids.is_empty() {
            for tx in flushes.drain(..) {
                let _ = tx.send(lock(&failed).take().map_or(Ok(()), Err));
            }
            if !open {
                return;
            }
            continue;
        }
        match ctx.transport.ack(&ctx, &ids).await {
            Ok(_) => {
                ids.clear();
                backoff = Duration::from_millis(50);
                for tx in flushes.drain(..) {
                    let _ = tx.send(lock(&failed).take().map_or(Ok(()), Err));
                }
            }
            Err(e) if e.is_unreachable() => {
                // Still pending on the server: sent again after a pause.
                tracing::warn!(topic = %ctx.topic, group = %ctx.group, n = ids.len(), error = %e, ?backoff, "queued acks failed; retrying");
                for tx in flushes.drain(..) {
                    let _ = tx.send(Err(again(&e)));
                }
                if !open {
                    orphaned_attempts += 1;
                    if orphaned_attempts >= ATTEMPTS_WHEN_ORPHANED {
                        tracing::warn!(topic = %ctx.topic, group = %ctx.group, n = ids.len(), "giving up on queued acks: those messages are redelivered after the claim idle time");
                        return;
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                // A refusal: sending it again would not help. The messages
                // stay pending and are redelivered after the claim idle time.
                tracing::warn!(topic = %ctx.topic, group = %ctx.group, n = ids.len(), error = %e, "queued acks refused; those messages will be redelivered");
                ids.clear();
                if flushes.is_empty() {
                    let mut slot = lock(&failed);
                    if slot.is_none() {
                        *slot = Some(e);
                    }
                } else {
                    for tx in flushes.drain(..) {
                        let _ = tx.send(Err(again(&e)));
                    }
                }
            }
        }
    }
}
