//! Publishing: `XADD` with approximate `MAXLEN` retention, batches in one
//! pipeline, and an optional idempotency key.

use super::{validate, Bus, Codec, MessageId, PublishOptions};
use crate::error::{Error, Result};

/// What [`Bus::publish_with`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The entry's id (for a duplicate, the first publish's id).
    pub id: MessageId,
    /// True when the idempotency key was seen within its window and
    /// nothing was added.
    pub duplicate: bool,
}

impl<C: Codec> Bus<C> {
    fn encode<T: serde::Serialize + ?Sized>(&self, topic: &str, payload: &T) -> Result<Vec<u8>> {
        self.codec.encode(payload).map_err(|source| Error::Codec {
            topic: topic.to_owned(),
            source,
        })
    }

    /// Publishes `payload` to `topic`; returns the entry id.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::Codec`], connection errors.
    ///
    /// # Cancel safety
    ///
    /// A cancelled publish may or may not have added the entry; use an
    /// idempotency key ([`publish_with`](Self::publish_with)) to retry
    /// safely.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(bus: baton_client::bus::Bus) -> baton_client::Result<()> {
    /// let id = bus.publish("orders", &serde_json::json!({"id": 7})).await?;
    /// println!("published {id}");
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(skip(self, payload))]
    pub async fn publish<T: serde::Serialize + ?Sized>(
        &self,
        topic: &str,
        payload: &T,
    ) -> Result<MessageId> {
        Ok(self
            .publish_with(topic, payload, PublishOptions::default())
            .await?
            .id)
    }

    /// Publishes with options: an idempotency key drops a duplicate
    /// published within the key's window.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish), and [`Error::InvalidName`] for an
    /// idempotency key with whitespace.
    ///
    /// # Cancel safety
    ///
    /// With an idempotency key, retrying a cancelled publish adds the
    /// message at most once.
    pub async fn publish_with<T: serde::Serialize + ?Sized>(
        &self,
        topic: &str,
        payload: &T,
        opts: PublishOptions,
    ) -> Result<Published> {
        validate::name("topic", topic)?;
        let bytes = self.encode(topic, payload)?;
        let maxlen = self.topic_options(topic).maxlen;
        let transport = self.transport();
        match &opts.idempotency_key {
            Some(key) => {
                validate::name("idempotency key", key)?;
                let (id, duplicate) = transport
                    .publish_idem(topic, maxlen, &bytes, key, opts.window)
                    .await?;
                Ok(Published { id, duplicate })
            }
            None => {
                let ids = transport.publish(topic, maxlen, &[bytes]).await?;
                let id = ids.into_iter().next().ok_or_else(|| {
                    Error::UnexpectedReply(format!("XADD to '{topic}' replied no id"))
                })?;
                Ok(Published {
                    id,
                    duplicate: false,
                })
            }
        }
    }

    /// Publishes many payloads in one round trip (one pipeline of XADDs,
    /// in order); returns their ids in order. The way to publish fast.
    ///
    /// # Errors
    ///
    /// As [`publish`](Self::publish); an encoding error publishes nothing.
    ///
    /// # Cancel safety
    ///
    /// A cancelled batch may have been added in full or not at all (the
    /// pipeline is sent whole), or, if the connection broke, in part.
    pub async fn publish_batch<T: serde::Serialize>(
        &self,
        topic: &str,
        payloads: &[T],
    ) -> Result<Vec<MessageId>> {
        validate::name("topic", topic)?;
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        let bytes = payloads
            .iter()
            .map(|p| self.encode(topic, p))
            .collect::<Result<Vec<_>>>()?;
        let maxlen = self.topic_options(topic).maxlen;
        self.transport().publish(topic, maxlen, &bytes).await
    }
}
