//! [`MessageId`] (a stream entry id) and [`Message`], one delivered entry
//! with its decoded payload and, for a work queue, `ack` / `nack` /
//! `in_progress`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::acks::AckQueue;
use super::transport::Transport;
use super::validate::keys;
use crate::error::{Error, Result};

/// A stream entry id, `<ms>-<seq>`: ordered by time, then sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MessageId {
    /// Milliseconds since the Unix epoch when the entry was added.
    pub ms: u64,
    /// Sequence number within that millisecond.
    pub seq: u64,
}

impl MessageId {
    /// The smallest id, `0-0`: replaying from it replays the whole stream.
    pub const ZERO: MessageId = MessageId { ms: 0, seq: 0 };

    /// Creates an id from its two parts.
    pub const fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for MessageId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidOptions(format!("{s:?} is not a stream entry id (<ms>-<seq>)"));
        let (ms, seq) = match s.split_once('-') {
            Some((ms, seq)) => (ms, seq),
            None => (s, "0"),
        };
        Ok(Self {
            ms: ms.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// What a [`Message::nack`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Nacked {
    /// Handed back: another delivery follows after the delay.
    Retry,
    /// It had been delivered `max_deliveries` times: moved to the dead-letter
    /// stream and acked in the source.
    DeadLettered,
    /// This consumer no longer held it (it was claimed by another consumer
    /// or acked meanwhile): nothing changed.
    NotHeld,
}

/// What a work-queue message needs to ack itself: shared by the consumer.
#[derive(Debug)]
pub(crate) struct GroupCtx {
    pub(crate) transport: Transport,
    pub(crate) topic: String,
    pub(crate) group: String,
    pub(crate) consumer: String,
    pub(crate) claim_idle: Duration,
    pub(crate) max_deliveries: u64,
    pub(crate) dlq_maxlen: Option<u64>,
    /// The queue of [`Message::ack_queued`] (`None` in the context of the
    /// queue's own task).
    pub(crate) acks: Option<AckQueue>,
}

impl GroupCtx {
    /// Hands `id` back: claimable again after `delay` (at most the claim idle
    /// time), recording `error` when given.
    pub(crate) async fn hand_back(
        &self,
        id: MessageId,
        delay: Duration,
        error: Option<&str>,
    ) -> Result<bool> {
        let idle = self.claim_idle.saturating_sub(delay);
        self.transport
            .release(self, id, idle, error.unwrap_or(""))
            .await
    }

    pub(crate) async fn dead_letter(
        &self,
        id: MessageId,
        deliveries: u64,
        error: &str,
    ) -> Result<bool> {
        tracing::warn!(topic = %self.topic, group = %self.group, %id, deliveries, error, "dead-lettering a message");
        self.transport
            .dead_letter(self, id, deliveries, error)
            .await
    }

    pub(crate) fn dlq_key(&self) -> String {
        keys::dlq(&self.topic, &self.group)
    }
}

/// One delivered message: its id, decoded payload and delivery count.
///
/// From [`Bus::subscribe`](super::Bus::subscribe) a message needs no ack
/// (`ack` is a no-op). From a [`Consumer`](super::Consumer) it stays pending
/// in the group until [`ack`](Self::ack)ed: a message dropped without ack is
/// redelivered once it has been idle for the claim time.
#[derive(Debug)]
#[must_use = "a work-queue message that is not acked is redelivered after the claim idle time"]
pub struct Message<T> {
    /// The decoded payload.
    pub payload: T,
    id: MessageId,
    deliveries: u64,
    group: Option<Arc<GroupCtx>>,
}

impl<T> Message<T> {
    pub(crate) fn new(
        payload: T,
        id: MessageId,
        deliveries: u64,
        group: Option<Arc<GroupCtx>>,
    ) -> Self {
        Self {
            payload,
            id,
            deliveries,
            group,
        }
    }

    /// The stream entry id.
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// How many times the group delivered it, this delivery included (1 on
    /// the first delivery; always 1 for a broadcast message).
    pub fn deliveries(&self) -> u64 {
        self.deliveries
    }

    /// Acknowledges the message: the group will not deliver it again.
    /// `true` when this call removed it from the pending list, `false` when
    /// it was already acked (by this or, after a redelivery, by another
    /// consumer) or is a broadcast message. Applied when it returns, at the
    /// cost of a round trip per call: [`ack_queued`](Self::ack_queued)
    /// does not wait.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a cancelled ack may or may not have been applied; ack
    /// again to be sure (it is idempotent).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(mut work: baton_client::bus::Consumer<String>) -> baton_client::Result<()> {
    /// use futures_util::StreamExt;
    /// while let Some(msg) = work.next().await {
    ///     let msg = msg?;
    ///     println!("{}", msg.payload);
    ///     msg.ack().await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn ack(&self) -> Result<bool> {
        match &self.group {
            None => Ok(false),
            Some(g) => Ok(g.transport.ack(g, &[self.id]).await? == 1),
        }
    }

    /// Queues the ack of the message and returns at once, without a round
    /// trip: the consumer's ack task sends it at once, or, if its previous
    /// `XACK` is still in flight, with every other ack queued meanwhile in
    /// the next one. The fast way to ack message by message.
    ///
    /// `Ok` means queued, not yet applied: the ack reaches the server
    /// within about one round trip, and [`Consumer::flush`] or
    /// [`Consumer::close`](super::Consumer::close) wait until it has (and
    /// report a failure). A batch that fails for want of a connection is
    /// sent again (with backoff) while the consumer or one of its messages
    /// lives; a batch the server refuses is reported by the consumer's
    /// stream (an `Err` item) or by the next flush. Until it is applied the
    /// message stays pending: if the process exits first, the message is
    /// redelivered after the claim idle time (at least once, as for a
    /// handler that died before its ack). For a broadcast message it does
    /// nothing.
    ///
    /// # Errors
    ///
    /// Only when the consumer's ack task has stopped (the runtime it was
    /// started on shut down): nothing was queued.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(mut work: baton_client::bus::Consumer<String>) -> baton_client::Result<()> {
    /// use futures_util::StreamExt;
    /// while let Some(msg) = work.next().await {
    ///     let msg = msg?; // also an ack the server refused
    ///     println!("{}", msg.payload);
    ///     msg.ack_queued()?;
    /// }
    /// work.close().await?; // every queued ack is applied
    /// # Ok(()) }
    /// ```
    ///
    /// [`Consumer::flush`]: super::Consumer::flush
    pub fn ack_queued(&self) -> Result<()> {
        match self.group.as_ref().and_then(|g| g.acks.as_ref()) {
            None => Ok(()),
            Some(q) => q.push(self.id),
        }
    }

    /// Says the handler is still working: resets the message's idle time so
    /// no other consumer claims it for another claim idle time (`XCLAIM ..
    /// JUSTID`, the delivery count is unchanged). Call it more often than
    /// the claim idle time for long handlers. `false` when this consumer no
    /// longer holds the message (another one claimed it, or it was acked).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: at worst the idle time was not reset.
    pub async fn in_progress(&self) -> Result<bool> {
        match &self.group {
            None => Ok(false),
            Some(g) => g.transport.release(g, self.id, Duration::ZERO, "").await,
        }
    }

    /// Gives the message back after a failure: it is redelivered (to any
    /// consumer of the group) as soon as it is claimable, and `error` is
    /// kept as its last error. When it has already been delivered
    /// `max_deliveries` times it goes to the dead-letter stream instead.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if cancelled, the message stays pending and is
    /// redelivered after the claim idle time anyway.
    pub async fn nack(&self, error: &str) -> Result<Nacked> {
        self.nack_after(error, Duration::ZERO).await
    }

    /// Like [`nack`](Self::nack), but the message becomes claimable only
    /// after `delay`. Streams have no per-entry timer: the delay is made by
    /// setting the entry's idle time, so it is capped at the consumer's
    /// claim idle time (pick a larger claim idle time for longer delays).
    ///
    /// # Cancel safety
    ///
    /// As [`nack`](Self::nack).
    pub async fn nack_after(&self, error: &str, delay: Duration) -> Result<Nacked> {
        let Some(g) = &self.group else {
            return Ok(Nacked::NotHeld);
        };
        if self.deliveries >= g.max_deliveries {
            return Ok(if g.dead_letter(self.id, self.deliveries, error).await? {
                Nacked::DeadLettered
            } else {
                Nacked::NotHeld
            });
        }
        Ok(if g.hand_back(self.id, delay, Some(error)).await? {
            Nacked::Retry
        } else {
            Nacked::NotHeld
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_print_and_order() {
        let a: MessageId = "1700000000000-3".parse().unwrap();
        assert_eq!(a, MessageId::new(1_700_000_000_000, 3));
        assert_eq!(a.to_string(), "1700000000000-3");
        assert_eq!("5".parse::<MessageId>().unwrap(), MessageId::new(5, 0));
        assert!("x-1".parse::<MessageId>().is_err());
        assert!(MessageId::new(1, 9) < MessageId::new(2, 0));
    }
}
