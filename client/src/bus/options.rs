//! Option builders of the bus: [`TopicOptions`] (retention) and
//! [`PublishOptions`] (idempotency).

use std::time::Duration;

/// The default retention: about this many entries per topic stream.
pub const DEFAULT_MAXLEN: u64 = 100_000;

/// Per-topic settings; see [`Bus::set_topic`](super::Bus::set_topic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicOptions {
    /// The retention in entries, `None` when unbounded. Default
    /// [`DEFAULT_MAXLEN`].
    pub maxlen: Option<u64>,
}

impl Default for TopicOptions {
    fn default() -> Self {
        Self {
            maxlen: Some(DEFAULT_MAXLEN),
        }
    }
}

impl TopicOptions {
    /// Defaults: retention of about [`DEFAULT_MAXLEN`] entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps about `n` entries (`XADD MAXLEN ~ n`): Redis trims whole
    /// nodes, so a stream may hold somewhat more. Trimming does not wait
    /// for consumers: a group lagging by more than `n` loses the oldest
    /// entries (they are logged and dropped from its pending list), so
    /// size `n` above the worst lag you expect.
    pub fn maxlen(mut self, n: u64) -> Self {
        self.maxlen = Some(n);
        self
    }

    /// No trimming: the stream grows until trimmed by hand.
    pub fn unbounded(mut self) -> Self {
        self.maxlen = None;
        self
    }
}

/// Options of one publish; see [`Bus::publish_with`](super::Bus::publish_with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOptions {
    pub(crate) idempotency_key: Option<String>,
    pub(crate) window: Duration,
}

impl Default for PublishOptions {
    fn default() -> Self {
        Self {
            idempotency_key: None,
            window: Duration::from_secs(300),
        }
    }
}

impl PublishOptions {
    /// Defaults: no idempotency key, a 5-minute window.
    pub fn new() -> Self {
        Self::default()
    }

    /// A producer-side idempotency key: a second publish with the same key
    /// on the same topic within the window adds nothing and returns the
    /// first entry's id.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// How long an idempotency key is remembered (default 5 minutes, at
    /// least 1 ms).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window.max(Duration::from_millis(1));
        self
    }
}

/// Where a new consumer group starts reading; see
/// [`ConsumerBuilder::start_at`](super::ConsumerBuilder::start_at). Only used
/// when the group does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// Every entry still in the stream (`0`): nothing published before the
    /// first consumer started is missed.
    #[default]
    Beginning,
    /// Only entries published after the group is created (`$`).
    New,
    /// Entries after this id.
    After(super::MessageId),
}
