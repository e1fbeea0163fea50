//! The one error type of the crate, and its [`Result`] alias.

use std::time::Duration;

/// Everything that can go wrong when taking, keeping or releasing a lock.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The lock was not granted within the wait.
    #[error("lock '{key}' was not acquired within {wait:?}")]
    NotAcquired {
        /// The lock's key.
        key: String,
        /// How long the call waited.
        wait: Duration,
    },
    /// The lock was lost (expired, force-released or unreachable) while the
    /// caller relied on it.
    #[error("lock '{key}' was lost before it was released")]
    Lost {
        /// The lock's key.
        key: String,
    },
    /// A durable acquire was acknowledged by fewer replicas than asked; the
    /// lock was released again.
    #[error("lock '{key}' reached {acked} of {wanted} replicas in time")]
    NotReplicated {
        /// The lock's key.
        key: String,
        /// Replicas that acknowledged the grant.
        acked: u64,
        /// Replicas asked for.
        wanted: u64,
    },
    /// A semaphore acquire named another limit than the semaphore has: its
    /// limit is set by the acquire that creates it and stays while anyone
    /// holds or waits. Nothing was changed.
    #[error("semaphore '{key}' has a limit of {limit}, not {asked}")]
    OtherLimit {
        /// The semaphore's key.
        key: String,
        /// The semaphore's limit.
        limit: u32,
        /// The limit the call named.
        asked: u32,
    },
    /// A renewal (an acquire by the token that holds a lease) asked for
    /// another number of permits than the lease holds. Nothing was changed.
    /// The client's own calls never renew (each acquire has a token of its
    /// own): this comes from a token shared with other tools.
    #[error("the lease on semaphore '{key}' holds {held} permits, not {asked}")]
    OtherPermits {
        /// The semaphore's key.
        key: String,
        /// The permits the lease holds.
        held: u32,
        /// The permits the call asked for.
        asked: u32,
    },
    /// The chosen backend cannot run against this server; the text says what
    /// is missing.
    #[error("backend unavailable: {0}")]
    BackendUnavailable(String),
    /// The key is empty or contains whitespace.
    #[error("invalid lock key {key:?}: {reason}")]
    InvalidKey {
        /// The rejected key.
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An option is out of range (ttl, wait, durable, URL, a semaphore's
    /// limit or permits).
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// No pooled connection could be had (the pool's own error: a timeout,
    /// a closed pool); connection failures are [`Error::Redis`].
    #[error("connection pool: {0}")]
    Pool(#[source] deadpool_redis::PoolError),
    /// The server answered with a reply of a shape this client does not
    /// expect (a server or module of another version?); the text shows it.
    #[error("unexpected reply: {0}")]
    UnexpectedReply(String),
    /// A Redis Cluster redirected one command too many times (slots
    /// migrating back and forth?).
    #[error("the cluster redirected the command of '{key}' more than {redirects} times (slots migrating?)")]
    TooManyRedirects {
        /// The command's key.
        key: String,
        /// Redirects followed before giving up.
        redirects: usize,
    },
    /// A bus topic, group, consumer or idempotency key is empty or contains
    /// whitespace or braces.
    #[error("invalid {kind} {name:?}: {reason}")]
    InvalidName {
        /// What the name is for (`topic`, `group`, ...).
        kind: &'static str,
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A bus payload could not be encoded or decoded.
    #[cfg(feature = "bus")]
    #[error("payload codec on topic '{topic}': {source}")]
    Codec {
        /// The topic.
        topic: String,
        /// The codec's error.
        source: crate::bus::CodecError,
    },
    /// Redis replied with an error or the connection failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

impl Error {
    /// True for errors that say the server could not be reached (pool,
    /// connection, timeout), as opposed to a reply.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Pool(_) => true,
            Self::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
            }
            _ => false,
        }
    }
}

impl From<deadpool_redis::PoolError> for Error {
    fn from(e: deadpool_redis::PoolError) -> Self {
        match e {
            deadpool_redis::PoolError::Backend(e) => Self::Redis(e),
            other => Self::Pool(other),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks a lock key: non-empty, no whitespace.
pub(crate) fn validate_key(key: &str) -> Result<()> {
    let reason = if key.is_empty() {
        "must not be empty"
    } else if key.chars().any(char::is_whitespace) {
        "must not contain whitespace"
    } else {
        return Ok(());
    };
    Err(Error::InvalidKey {
        key: key.to_owned(),
        reason,
    })
}
