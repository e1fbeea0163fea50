//! The work queue: [`ConsumerBuilder`] and [`Consumer`], one consumer of a
//! consumer group. It `select!`s between `XREADGROUP BLOCK` and its
//! cancellation token, claims messages left idle by others (`XAUTOCLAIM`),
//! dead-letters messages delivered too often, and on shutdown hands back
//! what it read but did not yield.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::acks::AckQueue;
use super::message::GroupCtx;
use super::transport::{Entry, Reader};
use super::{validate, Bus, Codec, Json, Message, MessageId, StartAt};
use crate::error::Result;

/// Builds a [`Consumer`]; see [`Bus::consume`].
#[derive(Debug)]
#[must_use = "a consumer builder does nothing until `start`"]
pub struct ConsumerBuilder<T, C: Codec = Json> {
    bus: Bus<C>,
    topic: String,
    group: String,
    consumer: Option<String>,
    claim_idle: Duration,
    max_deliveries: u64,
    batch: usize,
    block: Duration,
    start_at: StartAt,
    cancel: Option<CancellationToken>,
    _payload: PhantomData<fn() -> T>,
}

impl<T, C: Codec> ConsumerBuilder<T, C> {
    /// This consumer's name in the group (default: process id and a random
    /// suffix). Reusing a name after a restart is fine.
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.consumer = Some(name.into());
        self
    }

    /// How long a message must sit unacked before another consumer claims
    /// it (default 30 s, at least 1 ms). Handlers that run longer call
    /// [`Message::in_progress`] more often than this.
    pub fn claim_idle(mut self, idle: Duration) -> Self {
        self.claim_idle = idle.max(Duration::from_millis(1));
        self
    }

    /// Deliveries after which a message goes to the dead-letter stream
    /// (default 10, at least 1).
    pub fn max_deliveries(mut self, n: u64) -> Self {
        self.max_deliveries = n.max(1);
        self
    }

    /// Entries read or claimed per round trip (`COUNT`, default 100).
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// Longest server-side block of one read (default 5 s); the consumer
    /// also wakes to claim idle messages.
    pub fn block(mut self, block: Duration) -> Self {
        self.block = block.max(Duration::from_millis(1));
        self
    }

    /// Where the group starts when this creates it (default
    /// [`StartAt::Beginning`]).
    pub fn start_at(mut self, at: StartAt) -> Self {
        self.start_at = at;
        self
    }

    /// Stops the consumer when `token` is cancelled (the consumer uses a
    /// child token; default: a token of its own, see
    /// [`Consumer::shutdown`]).
    pub fn cancel_token(mut self, token: &CancellationToken) -> Self {
        self.cancel = Some(token.child_token());
        self
    }

    /// Creates the group if needed (`XGROUP CREATE .. MKSTREAM`) and opens
    /// the consumer's own connection.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`](crate::Error::InvalidName) and connection
    /// errors.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: at most the group was created.
    pub async fn start(self) -> Result<Consumer<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        let consumer = self
            .consumer
            .unwrap_or_else(|| format!("{}-{:08x}", std::process::id(), rand::random::<u32>()));
        validate::name("topic", &self.topic)?;
        validate::name("group", &self.group)?;
        validate::name("consumer", &consumer)?;
        let transport = self.bus.transport().clone();
        transport
            .create_group(&self.topic, &self.group, self.start_at)
            .await?;
        transport
            .create_consumer(&self.topic, &self.group, &consumer)
            .await?;
        let reader = transport.reader(&self.topic).await?;
        let dlq_maxlen = self.bus.topic_options(&self.topic).maxlen;
        let ctx = |acks| GroupCtx {
            transport: transport.clone(),
            dlq_maxlen,
            topic: self.topic.clone(),
            group: self.group.clone(),
            consumer: consumer.clone(),
            claim_idle: self.claim_idle,
            max_deliveries: self.max_deliveries,
            acks,
        };
        let ctx = Arc::new(ctx(Some(AckQueue::start(ctx(None)))));
        let cancel = self.cancel.unwrap_or_default();
        let run = Run {
            claim_every: (self.claim_idle / 2)
                .clamp(Duration::from_millis(5), Duration::from_secs(5)),
            ctx: ctx.clone(),
            codec: self.bus.codec.clone(),
            reader: Some(reader),
            buf: VecDeque::new(),
            cursor: MessageId::ZERO,
            next_claim: Instant::now(),
            batch: self.batch,
            block: self.block,
            cancel: cancel.clone(),
            backoff: Duration::from_millis(50),
        };
        let stream = futures_util::stream::unfold(run, |mut run| async move {
            let item = run.next::<T>().await?;
            Some((item, run))
        });
        Ok(Consumer {
            // Fused: `close` polls again a stream that may have ended
            // (an `unfold` panics when polled after its end).
            inner: Box::pin(futures_util::StreamExt::fuse(stream)),
            ctx,
            cancel,
        })
    }
}

/// One consumer of a group: a stream of messages, each to be
/// [`ack`](Message::ack)ed. From [`Bus::consume`].
///
/// Each message goes to one consumer of the group. A message left unacked
/// (a crashed handler, a dropped message) stays pending and is claimed by a
/// live consumer once idle for the claim time; after `max_deliveries`
/// deliveries it moves to the dead-letter stream. Connection failures are
/// retried with backoff.
///
/// Shutdown ([`shutdown`](Self::shutdown), the builder's cancel token, or
/// [`close`](Self::close)): the consumer stops reading, a read under way
/// is ended early with `CLIENT UNBLOCK` and its deliveries kept, what was
/// read but not yet yielded is handed back (claimable at once), and the
/// stream ends. Messages already yielded are the handler's to ack or nack;
/// if it does neither they stay pending and are claimed later. Acks queued
/// with [`Message::ack_queued`] are still sent after the stream ends, even
/// if the consumer is dropped; `close` waits for them. Nothing is lost,
/// and nothing acked comes back.
///
/// The stream yields an `Err` item (and goes on) when a read fails other
/// than for want of a connection, or when the server refused acks queued
/// with [`Message::ack_queued`] that no [`flush`](Self::flush) reported.
#[must_use = "a consumer does nothing unless polled"]
pub struct Consumer<T> {
    inner: Pin<Box<dyn Stream<Item = Result<Message<T>>> + Send>>,
    ctx: Arc<GroupCtx>,
    cancel: CancellationToken,
}

impl<T> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("topic", &self.ctx.topic)
            .field("group", &self.ctx.group)
            .field("consumer", &self.ctx.consumer)
            .field("cancelled", &self.cancel.is_cancelled())
            .finish()
    }
}

impl<T> Consumer<T> {
    /// This consumer's name in the group.
    pub fn name(&self) -> &str {
        &self.ctx.consumer
    }

    /// Starts the shutdown: the stream hands back what it buffered and
    /// ends at its next poll.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    /// The token whose cancellation shuts this consumer down.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Shuts down and drives the stream to its end, so the buffered
    /// messages are handed back before this returns, then waits until
    /// every ack queued with [`Message::ack_queued`] is applied
    /// ([`flush`](Self::flush)).
    ///
    /// # Errors
    ///
    /// As [`flush`](Self::flush): some queued acks were not applied.
    ///
    /// # Cancel safety
    ///
    /// If cancelled, buffered messages that were not handed back stay
    /// pending and are claimed after the claim idle time; queued acks are
    /// still sent by the consumer's ack task.
    pub async fn close(mut self) -> Result<()> {
        use futures_util::StreamExt;
        self.cancel.cancel();
        // A cancelled consumer yields no message, but a refusal of queued
        // acks that nobody was told about yet comes first, as an item.
        let mut refused = None;
        while let Some(item) = self.inner.next().await {
            if let Err(e) = item {
                refused.get_or_insert(e);
            }
        }
        self.flush().await?;
        refused.map_or(Ok(()), Err)
    }

    /// Waits until every ack queued with [`Message::ack_queued`] before
    /// this call is applied on the server.
    ///
    /// # Errors
    ///
    /// The error of a round trip that carried some of them (those that
    /// failed for want of a connection stay queued and are sent again while
    /// the consumer or one of its messages lives), or of queued acks the
    /// server refused since the last report (those messages stay pending
    /// and are redelivered after the claim idle time).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the acks stay queued.
    pub async fn flush(&self) -> Result<()> {
        match &self.ctx.acks {
            Some(q) => q.flush().await,
            None => Ok(()),
        }
    }

    /// Acks many messages in one round trip; returns how many were still
    /// pending. The fast path for batch handlers.
    ///
    /// # Cancel safety
    ///
    /// As [`Message::ack`].
    pub async fn ack_all(&self, msgs: &[Message<T>]) -> Result<u64> {
        let ids: Vec<MessageId> = msgs.iter().map(Message::id).collect();
        self.ctx.transport.ack(&self.ctx, &ids).await
    }
}

impl<T> Stream for Consumer<T> {
    type Item = Result<Message<T>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

struct Run<C> {
    ctx: Arc<GroupCtx>,
    codec: C,
    reader: Option<Reader>,
    buf: VecDeque<Entry>,
    cursor: MessageId,
    next_claim: Instant,
    claim_every: Duration,
    batch: usize,
    block: Duration,
    cancel: CancellationToken,
    backoff: Duration,
}

impl<C: Codec> Run<C> {
    async fn next<T: DeserializeOwned>(&mut self) -> Option<Result<Message<T>>> {
        loop {
            if let Some(e) = self.ctx.acks.as_ref().and_then(AckQueue::take_failure) {
                return Some(Err(e));
            }
            if self.cancel.is_cancelled() {
                self.hand_back_all().await;
                return None;
            }
            if let Some(e) = self.buf.pop_front() {
                if let Some(msg) = self.deliver(e).await {
                    return Some(Ok(msg));
                }
                continue;
            }
            let step = if Instant::now() >= self.next_claim {
                self.claim().await
            } else {
                self.read().await
            };
            match step {
                Ok(()) => self.backoff = Duration::from_millis(50),
                Err(e) if e.is_unreachable() => {
                    tracing::warn!(topic = %self.ctx.topic, group = %self.ctx.group, error = %e, backoff = ?self.backoff, "consumer round trip failed; retrying");
                    self.reader = None;
                    tokio::select! {
                        _ = tokio::time::sleep(self.backoff) => {}
                        _ = self.cancel.cancelled() => {}
                    }
                    self.backoff = (self.backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Decodes an entry into a message, or dead-letters it (too many
    /// deliveries, no payload, a payload that does not decode).
    async fn deliver<T: DeserializeOwned>(&mut self, e: Entry) -> Option<Message<T>> {
        let g = &self.ctx;
        let verdict = if e.deliveries > g.max_deliveries {
            Err((e.deliveries - 1, String::new()))
        } else {
            match &e.payload {
                None => Err((e.deliveries, "entry has no payload field `p`".to_owned())),
                Some(bytes) => self
                    .codec
                    .decode::<T>(bytes)
                    .map_err(|err| (e.deliveries, format!("payload does not decode: {err}"))),
            }
        };
        match verdict {
            Ok(payload) => Some(Message::new(payload, e.id, e.deliveries, Some(g.clone()))),
            Err((deliveries, error)) => {
                if let Err(err) = g.dead_letter(e.id, deliveries, &error).await {
                    // Still pending: it will be claimed and tried again.
                    tracing::warn!(id = %e.id, error = %err, "dead-lettering failed");
                }
                None
            }
        }
    }

    async fn claim(&mut self) -> Result<()> {
        let claimed = self
            .ctx
            .transport
            .autoclaim(&self.ctx, self.cursor, self.batch)
            .await?;
        if claimed.deleted > 0 {
            tracing::warn!(topic = %self.ctx.topic, group = %self.ctx.group, n = claimed.deleted, "pending messages were trimmed before being acked");
        }
        self.cursor = claimed.next;
        if self.cursor == MessageId::ZERO {
            self.next_claim = Instant::now() + self.claim_every;
        }
        if !claimed.entries.is_empty() {
            tracing::debug!(n = claimed.entries.len(), "claimed idle messages");
        }
        self.buf.extend(claimed.entries);
        Ok(())
    }

    async fn read(&mut self) -> Result<()> {
        let reader = match &mut self.reader {
            Some(r) => r,
            None => self
                .reader
                .insert(self.ctx.transport.reader(&self.ctx.topic).await?),
        };
        let until_claim = self.next_claim.saturating_duration_since(Instant::now());
        let block = self.block.min(until_claim).max(Duration::from_millis(1));
        let got = reader
            .read_group(&self.ctx, self.batch, block, &self.cancel)
            .await?;
        self.buf.extend(got);
        Ok(())
    }

    /// Makes every buffered message claimable at once.
    async fn hand_back_all(&mut self) {
        for e in std::mem::take(&mut self.buf) {
            if let Err(err) = self.ctx.hand_back(e.id, Duration::ZERO, None).await {
                tracing::warn!(id = %e.id, error = %err, "hand back failed; the message is claimed after the idle time");
            }
        }
    }
}

impl<C: Codec> Bus<C> {
    /// A consumer of `topic` in the consumer group `group`: each message
    /// goes to one consumer of the group and must be acked. Configure it
    /// on the returned builder, then [`start`](ConsumerBuilder::start) it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(bus: baton_client::bus::Bus) -> baton_client::Result<()> {
    /// use std::time::Duration;
    /// use futures_util::StreamExt;
    /// let mut work = bus
    ///     .consume::<String>("orders", "billing")
    ///     .consumer("worker-1")
    ///     .claim_idle(Duration::from_secs(60))
    ///     .start()
    ///     .await?;
    /// while let Some(msg) = work.next().await {
    ///     let msg = msg?;
    ///     match msg.payload.parse::<u64>() {
    ///         Ok(_) => { msg.ack().await?; }
    ///         Err(e) => { msg.nack(&e.to_string()).await?; }
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn consume<T>(&self, topic: &str, group: &str) -> ConsumerBuilder<T, C> {
        ConsumerBuilder {
            bus: self.clone(),
            topic: topic.to_owned(),
            group: group.to_owned(),
            consumer: None,
            claim_idle: Duration::from_secs(30),
            max_deliveries: 10,
            batch: 100,
            block: Duration::from_secs(5),
            start_at: StartAt::Beginning,
            cancel: None,
            _payload: PhantomData,
        }
    }
}
