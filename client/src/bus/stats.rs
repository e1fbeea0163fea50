//! Observability: [`GroupStats`] of a topic and consumer group, and the
//! [`DeadLetter`] entries of a group's dead-letter stream.

use super::codec::{Codec, CodecError};
use super::message::MessageId;

/// A topic and one consumer group, as Redis reports them (`XLEN`, `XINFO
/// GROUPS`, the group's counters and dead-letter stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupStats {
    /// Entries in the topic stream (`XLEN`).
    pub length: u64,
    /// Whether the group exists.
    pub exists: bool,
    /// Consumers the group knows (`XINFO GROUPS` `consumers`).
    pub consumers: u64,
    /// Delivered and not yet acked (`pending`).
    pub pending: u64,
    /// Entries not yet delivered to the group (`lag`); `None` when Redis
    /// cannot tell (after deletions in the middle of the stream).
    pub lag: Option<u64>,
    /// Messages claimed again after being left idle (counted by the bus).
    pub redeliveries: u64,
    /// Entries in the group's dead-letter stream (`XLEN`).
    pub dead_lettered: u64,
}

/// One message moved to a group's dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The entry's id in the dead-letter stream.
    pub dlq_id: MessageId,
    /// The message's id in the topic stream.
    pub source_id: MessageId,
    /// How many times it was delivered to handlers.
    pub deliveries: u64,
    /// The last error recorded by a `nack` (empty when none was given).
    pub error: String,
    /// The raw payload (empty when it was trimmed before dead-lettering).
    pub payload: Vec<u8>,
}

impl DeadLetter {
    /// Decodes the payload with `codec`.
    ///
    /// # Errors
    ///
    /// When the payload is not a valid `T`.
    pub fn decode<T: serde::de::DeserializeOwned, C: Codec>(
        &self,
        codec: &C,
    ) -> Result<T, CodecError> {
        codec.decode(&self.payload)
    }
}
