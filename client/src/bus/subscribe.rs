//! Broadcast: [`Subscription`], a stream of every message published to a
//! topic after a given id (`XREAD BLOCK` on the subscription's own
//! connection).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::transport::{Entry, Reader, Transport};
use super::{validate, Bus, Codec, Message, MessageId};
use crate::error::{Error, Result};

const BATCH: usize = 256;
const BLOCK: Duration = Duration::from_secs(5);

/// Every message of a topic after a starting id, in order, from
/// [`Bus::subscribe`] or [`Bus::subscribe_from`]. Messages need no ack.
///
/// A subscriber that falls behind the topic's retention misses the trimmed
/// entries. Connection failures are retried (with backoff) from the last
/// id seen, so nothing in the stream is skipped; a payload that does not
/// decode is yielded as [`Error::Codec`] and the stream goes on.
#[must_use = "a subscription does nothing unless polled"]
pub struct Subscription<T> {
    inner: Pin<Box<dyn Stream<Item = Result<Message<T>>> + Send>>,
    cancel: CancellationToken,
}

impl<T> std::fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("cancelled", &self.cancel.is_cancelled())
            .finish()
    }
}

impl<T> Subscription<T> {
    /// Ends the stream: the pending read is dropped and the next poll
    /// returns `None`.
    pub fn close(&self) {
        self.cancel.cancel();
    }

    /// The token that ends this subscription when cancelled.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

impl<T> Stream for Subscription<T> {
    type Item = Result<Message<T>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

struct Run<C> {
    topic: String,
    transport: Transport,
    codec: C,
    reader: Option<Reader>,
    after: MessageId,
    buf: VecDeque<Entry>,
    cancel: CancellationToken,
    backoff: Duration,
}

impl<C: Codec> Run<C> {
    async fn next<T: DeserializeOwned>(&mut self) -> Option<Result<Message<T>>> {
        loop {
            if self.cancel.is_cancelled() {
                return None;
            }
            if let Some(e) = self.buf.pop_front() {
                self.after = e.id;
                let decoded = self
                    .codec
                    .decode::<T>(e.payload.as_deref().unwrap_or_default());
                return Some(match decoded {
                    Ok(p) => Ok(Message::new(p, e.id, 1, None)),
                    Err(source) => Err(Error::Codec {
                        topic: self.topic.clone(),
                        source,
                    }),
                });
            }
            let read = match &mut self.reader {
                Some(r) => {
                    r.read(&self.topic, self.after, BATCH, BLOCK, &self.cancel)
                        .await
                }
                None => match self.transport.reader(&self.topic).await {
                    Ok(r) => {
                        self.reader = Some(r);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            match read {
                Ok(entries) => {
                    self.backoff = Duration::from_millis(50);
                    self.buf.extend(entries);
                }
                Err(e) if e.is_unreachable() => {
                    tracing::warn!(topic = %self.topic, error = %e, backoff = ?self.backoff, "subscription read failed; retrying");
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
}

impl<C: Codec> Bus<C> {
    /// Subscribes to `topic`: the stream yields every message published
    /// after this call returns.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], connection errors.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is left behind. Polling the returned stream is
    /// cancel safe too: a dropped `next()` loses no message.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(bus: baton_client::bus::Bus) -> baton_client::Result<()> {
    /// use futures_util::StreamExt;
    /// let mut sub = bus.subscribe::<String>("news").await?;
    /// while let Some(msg) = sub.next().await {
    ///     println!("{}", msg?.payload);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn subscribe<T>(&self, topic: &str) -> Result<Subscription<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        validate::name("topic", topic)?;
        let after = self.transport().last_id(topic).await?;
        self.subscribe_from(topic, after).await
    }

    /// Subscribes to `topic` from after `after`: replays the retained
    /// messages with greater ids, then goes on live.
    /// [`MessageId::ZERO`] replays everything retained.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], connection errors.
    ///
    /// # Cancel safety
    ///
    /// As [`subscribe`](Self::subscribe).
    pub async fn subscribe_from<T>(&self, topic: &str, after: MessageId) -> Result<Subscription<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        validate::name("topic", topic)?;
        let cancel = CancellationToken::new();
        let run = Run {
            topic: topic.to_owned(),
            transport: self.transport().clone(),
            codec: self.codec.clone(),
            reader: Some(self.transport().reader(topic).await?),
            after,
            buf: VecDeque::new(),
            cancel: cancel.clone(),
            backoff: Duration::from_millis(50),
        };
        let stream = futures_util::stream::unfold(run, |mut run| async move {
            let item = run.next::<T>().await?;
            Some((item, run))
        });
        Ok(Subscription {
            inner: Box::pin(stream),
            cancel,
        })
    }
}
