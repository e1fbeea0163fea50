//! The message bus of SPEC §4 on Redis Streams (no module needed): publish
//! to a topic, broadcast subscribe, and work-queue consume with consumer
//! groups, explicit acks, redelivery of idle messages and a dead-letter
//! stream. [`Bus::memory`] has the same semantics in-process.
//!
//! ```no_run
//! use baton_client::Client;
//! use futures_util::StreamExt;
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Order { id: u64 }
//!
//! # async fn demo() -> baton_client::Result<()> {
//! let client = Client::builder("redis://127.0.0.1:6379").build().await?;
//! let bus = client.bus();
//! let id = bus.publish("orders", &Order { id: 7 }).await?;
//! let mut sub = bus.subscribe::<Order>("orders").await?;
//! let mut work = bus
//!     .consume::<Order>("orders", "billing")
//!     .consumer("worker-1")
//!     .start()
//!     .await?;
//! while let Some(msg) = work.next().await {
//!     let msg = msg?;
//!     println!("order {} ({})", msg.payload.id, msg.id());
//!     msg.ack().await?;
//! }
//! # let _ = (id, sub.next().await);
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! - [`codec`]: the [`Codec`] trait and the default [`Json`].
//! - `options`: [`TopicOptions`] (retention), [`PublishOptions`]
//!   (idempotency), [`StartAt`].
//! - `publish`: `publish`, `publish_with`, `publish_batch`.
//! - `subscribe`: [`Subscription`], the broadcast stream (`XREAD BLOCK`).
//! - `consume`: [`ConsumerBuilder`] and [`Consumer`], the work queue
//!   (`XREADGROUP BLOCK`, `XAUTOCLAIM`, dead-lettering, shutdown).
//! - `message`: [`Message`] (`ack`, `ack_queued`, `nack`, `in_progress`),
//!   [`MessageId`].
//! - `acks`: the task that sends a consumer's queued acks, many per
//!   `XACK`.
//! - `stats`: [`GroupStats`], [`DeadLetter`].
//! - `transport`: the Streams / memory dispatch; `streams` (Redis, with
//!   its Lua scripts) and `memory` (in-process).
//! - `validate`: name checks and the key layout.
//!
//! # Redis key layout
//!
//! For a topic `t` and a group `g`: the stream `bus:{t}` (entries have one
//! field, `p`, the encoded payload), the dead-letter stream `bus:{t}:dlq:g`
//! (fields `id`, `group`, `deliveries`, `error`, `p`), the last errors
//! `bus:{t}:err:g` (a hash, entry id to text), the counters `bus:{t}:stats:g`
//! and the idempotency markers `bus:{t}:idem:<key>`. All share the hash tag
//! `{t}`.
//!
//! # Delivery guarantees
//!
//! At least once: a message is pending for its consumer from delivery to
//! ack; a consumer that dies leaves it pending, and a live consumer claims
//! it once it has been idle for the claim time. A handler may therefore see
//! a message twice, but an acked message is never delivered again, and no
//! message is dropped unless retention trims it first (see
//! [`TopicOptions::maxlen`]). A message counts as acked once its
//! [`Message::ack`] returned, or once the ack queued by
//! [`Message::ack_queued`] was applied: [`Consumer::flush`] and
//! [`Consumer::close`] wait for that.

mod acks;
pub mod codec;
mod consume;
mod memory;
mod message;
mod options;
mod publish;
mod stats;
mod streams;
mod subscribe;
mod transport;
mod validate;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub use codec::{Codec, CodecError, Json};
pub use consume::{Consumer, ConsumerBuilder};
pub use message::{Message, MessageId, Nacked};
pub use options::{PublishOptions, StartAt, TopicOptions, DEFAULT_MAXLEN};
pub use publish::Published;
pub use stats::{DeadLetter, GroupStats};
pub use subscribe::Subscription;

use crate::backend::Conns;
use crate::error::Result;
use transport::Transport;

#[derive(Debug)]
struct Shared {
    transport: Transport,
    topics: RwLock<HashMap<String, TopicOptions>>,
}

/// A handle on the bus: from [`Client::bus`](crate::Client::bus) (Redis
/// Streams) or [`Bus::memory`]. Cheap to clone: clones share connections,
/// topic settings and, for memory, the messages.
#[derive(Debug, Clone)]
pub struct Bus<C: Codec = Json> {
    shared: Arc<Shared>,
    codec: C,
}

impl Bus<Json> {
    /// An in-process bus with the same semantics, for tests and
    /// single-process use. Not distributed: only clones of this bus see its
    /// messages.
    pub fn memory() -> Self {
        tracing::warn!("baton Memory bus: messages are in-process only, not distributed");
        Self::memory_quiet()
    }

    pub(crate) fn memory_quiet() -> Self {
        Self::from_transport(Transport::Memory(memory::MemoryTransport::default()))
    }

    /// A bus on the Redis at `url`, without a lock [`Client`](crate::Client)
    /// (its shared connection is opened on first use).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`](crate::Error::Redis) or
    /// [`Error::InvalidOptions`](crate::Error::InvalidOptions) for a bad URL.
    pub fn connect(url: &str) -> Result<Self> {
        Ok(Self::streams(Conns::new(url)?))
    }

    pub(crate) fn streams(conns: Conns) -> Self {
        Self::from_transport(Transport::Streams(Box::new(
            streams::StreamsTransport::new(conns),
        )))
    }

    fn from_transport(transport: Transport) -> Self {
        Self {
            shared: Arc::new(Shared {
                transport,
                topics: RwLock::default(),
            }),
            codec: Json,
        }
    }
}

impl<C: Codec> Bus<C> {
    /// The same bus with another payload codec.
    pub fn with_codec<D: Codec>(&self, codec: D) -> Bus<D> {
        Bus {
            shared: self.shared.clone(),
            codec,
        }
    }

    /// The payload codec.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// True for Redis Streams, false for [`Bus::memory`].
    pub fn is_distributed(&self) -> bool {
        matches!(self.shared.transport, Transport::Streams(_))
    }

    /// Sets `topic`'s options (retention) for later publishes through this
    /// bus and its clones.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`](crate::Error::InvalidName) for a bad topic.
    pub fn set_topic(&self, topic: &str, opts: TopicOptions) -> Result<()> {
        validate::name("topic", topic)?;
        self.shared
            .topics
            .write()
            .expect("topic options poisoned")
            .insert(topic.to_owned(), opts);
        Ok(())
    }

    /// `topic`'s options: those set by [`set_topic`](Self::set_topic), else
    /// the defaults.
    pub fn topic_options(&self, topic: &str) -> TopicOptions {
        self.shared
            .topics
            .read()
            .expect("topic options poisoned")
            .get(topic)
            .copied()
            .unwrap_or_default()
    }

    /// Entries in `topic` (`XLEN`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (read only).
    pub async fn len(&self, topic: &str) -> Result<u64> {
        validate::name("topic", topic)?;
        self.shared.transport.topic_len(topic).await
    }

    /// Length, pending count, lag, redeliveries and dead-lettered count of
    /// `topic` and `group`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (read only).
    pub async fn stats(&self, topic: &str, group: &str) -> Result<GroupStats> {
        validate::name("topic", topic)?;
        validate::name("group", group)?;
        self.shared.transport.group_stats(topic, group).await
    }

    /// The first `count` entries of `group`'s dead-letter stream.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (read only).
    pub async fn dead_letters(
        &self,
        topic: &str,
        group: &str,
        count: usize,
    ) -> Result<Vec<DeadLetter>> {
        validate::name("topic", topic)?;
        validate::name("group", group)?;
        self.shared
            .transport
            .dead_letters(topic, group, count)
            .await
    }

    pub(crate) fn transport(&self) -> &Transport {
        &self.shared.transport
    }
}
