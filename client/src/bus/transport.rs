//! The two places a bus can live, behind one enum: Redis Streams
//! ([`streams`](super::streams)) and in-process ([`memory`](super::memory)).
//! [`Reader`] is the blocking side: its own connection on Redis.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::memory::MemoryTransport;
use super::message::{GroupCtx, MessageId};
use super::options::StartAt;
use super::stats::{DeadLetter, GroupStats};
use super::streams::{StreamsReader, StreamsTransport};
use crate::error::Result;

/// One raw entry as read or claimed.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) id: MessageId,
    /// `None` when the entry has no `p` field (added by hand).
    pub(crate) payload: Option<Vec<u8>>,
    pub(crate) deliveries: u64,
}

/// Entries claimed from idle consumers.
#[derive(Debug, Default)]
pub(crate) struct Claimed {
    /// Cursor for the next call (`0-0` once the pending list was walked).
    pub(crate) next: MessageId,
    pub(crate) entries: Vec<Entry>,
    /// Pending entries whose data was trimmed away: dropped from the PEL.
    pub(crate) deleted: u64,
}

#[derive(Debug, Clone)]
pub(crate) enum Transport {
    // Boxed: the Redis side holds connections and dwarfs the memory side.
    Streams(Box<StreamsTransport>),
    Memory(MemoryTransport),
}

macro_rules! dispatch {
    ($self:ident, $t:ident => $e:expr) => {
        match $self {
            Transport::Streams($t) => $e,
            Transport::Memory($t) => $e,
        }
    };
}

impl Transport {
    pub(crate) async fn publish(
        &self,
        topic: &str,
        maxlen: Option<u64>,
        payloads: &[Vec<u8>],
    ) -> Result<Vec<MessageId>> {
        dispatch!(self, t => t.publish(topic, maxlen, payloads).await)
    }

    pub(crate) async fn publish_idem(
        &self,
        topic: &str,
        maxlen: Option<u64>,
        payload: &[u8],
        key: &str,
        window: Duration,
    ) -> Result<(MessageId, bool)> {
        dispatch!(self, t => t.publish_idem(topic, maxlen, payload, key, window).await)
    }

    pub(crate) async fn last_id(&self, topic: &str) -> Result<MessageId> {
        dispatch!(self, t => t.last_id(topic).await)
    }

    pub(crate) async fn create_group(&self, topic: &str, group: &str, at: StartAt) -> Result<()> {
        dispatch!(self, t => t.create_group(topic, group, at).await)
    }

    /// Registers `consumer` in the group, so stats count it before its
    /// first delivery.
    pub(crate) async fn create_consumer(
        &self,
        topic: &str,
        group: &str,
        consumer: &str,
    ) -> Result<()> {
        dispatch!(self, t => t.create_consumer(topic, group, consumer).await)
    }

    pub(crate) async fn autoclaim(
        &self,
        g: &GroupCtx,
        cursor: MessageId,
        count: usize,
    ) -> Result<Claimed> {
        dispatch!(self, t => t.autoclaim(g, cursor, count).await)
    }

    pub(crate) async fn ack(&self, g: &GroupCtx, ids: &[MessageId]) -> Result<u64> {
        dispatch!(self, t => t.ack(g, ids).await)
    }

    /// If `g.consumer` holds `id`: sets its idle time to `idle` and records
    /// `error` (when non-empty). `false` when not held.
    pub(crate) async fn release(
        &self,
        g: &GroupCtx,
        id: MessageId,
        idle: Duration,
        error: &str,
    ) -> Result<bool> {
        dispatch!(self, t => t.release(g, id, idle, error).await)
    }

    /// Acks `id` and copies it to the dead-letter stream (once: `false`
    /// when it was no longer pending).
    pub(crate) async fn dead_letter(
        &self,
        g: &GroupCtx,
        id: MessageId,
        deliveries: u64,
        error: &str,
    ) -> Result<bool> {
        dispatch!(self, t => t.dead_letter(g, id, deliveries, error).await)
    }

    pub(crate) async fn topic_len(&self, topic: &str) -> Result<u64> {
        dispatch!(self, t => t.topic_len(topic).await)
    }

    pub(crate) async fn group_stats(&self, topic: &str, group: &str) -> Result<GroupStats> {
        dispatch!(self, t => t.group_stats(topic, group).await)
    }

    pub(crate) async fn dead_letters(
        &self,
        topic: &str,
        group: &str,
        count: usize,
    ) -> Result<Vec<DeadLetter>> {
        dispatch!(self, t => t.dead_letters(topic, group, count).await)
    }

    pub(crate) async fn reader(&self, topic: &str) -> Result<Reader> {
        Ok(match self {
            Transport::Streams(t) => Reader::Streams(Box::new(t.reader(topic).await?)),
            Transport::Memory(t) => Reader::Memory(t.clone()),
        })
    }
}

/// The blocking-read side of one subscriber or consumer.
#[derive(Debug)]
pub(crate) enum Reader {
    Streams(Box<StreamsReader>),
    Memory(MemoryTransport),
}

impl Reader {
    /// Entries after `after` (broadcast), waiting up to `block` for one.
    /// Returns early, with what was read, when `cancel` fires.
    pub(crate) async fn read(
        &mut self,
        topic: &str,
        after: MessageId,
        count: usize,
        block: Duration,
        cancel: &CancellationToken,
    ) -> Result<Vec<Entry>> {
        match self {
            Reader::Streams(r) => r.read(topic, after, count, block, cancel).await,
            Reader::Memory(t) => t.read(topic, after, count, block, cancel).await,
        }
    }

    /// New entries for the group (`>`), waiting up to `block`. Entries
    /// read are pending for `g.consumer`, so even when `cancel` fires the
    /// read completes and returns them, never dropping a delivery.
    pub(crate) async fn read_group(
        &mut self,
        g: &GroupCtx,
        count: usize,
        block: Duration,
        cancel: &CancellationToken,
    ) -> Result<Vec<Entry>> {
        match self {
            Reader::Streams(r) => r.read_group(g, count, block, cancel).await,
            Reader::Memory(t) => t.read_group(g, count, block, cancel).await,
        }
    }
}
