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
    /// The server refused the command because the Redis (ACL) user may not
    /// run it, or may not touch its key or channel (`NOPERM`, also from a
    /// command inside a Lua script). The text is the server's (it names the
    /// command where the server does). Nothing was changed. The README's
    /// "Managed Redis and security" section lists what each kind of user
    /// needs.
    #[error("the Redis user is not permitted to do this: {0}")]
    NoPermission(String),
    /// A TLS connection could not be set up because the server's
    /// certificate was refused: not signed by a CA this client trusts (see
    /// [`ClientBuilder::tls_ca`](crate::ClientBuilder::tls_ca)), not for
    /// the host in the URL, or expired. The text says which.
    /// [`Error::is_unreachable`] is true for it.
    #[error("TLS: {0}")]
    Tls(String),
    /// Redis replied with an error or the connection failed.
    #[error(transparent)]
    Redis(redis::RedisError),
}

impl From<redis::RedisError> for Error {
    /// A refusal for the user's permissions becomes
    /// [`Error::NoPermission`], a refused certificate [`Error::Tls`]; any
    /// other error stays [`Error::Redis`].
    fn from(e: redis::RedisError) -> Self {
        if let Some(text) = no_permission(&e) {
            return Self::NoPermission(text);
        }
        if let Some(text) = tls_refusal(&e) {
            return Self::Tls(text);
        }
        if let Some(scrubbed) = without_echoed_args(&e) {
            return Self::Redis(scrubbed);
        }
        Self::Redis(e)
    }
}

/// Redis echoes the first arguments of a command it does not know (`ERR
/// unknown command 'LOCK.ACQUIRE', with args beginning with: 'k' '<token>'
/// ...`, say on a node without the module): a token must never reach an
/// error text, so the arguments are cut off.
fn without_echoed_args(e: &redis::RedisError) -> Option<redis::RedisError> {
    let (head, _) = e.detail()?.split_once(", with args beginning with:")?;
    Some(redis::make_extension_error(
        e.code()?.to_owned(),
        Some(format!("{head} (its arguments are not shown)")),
    ))
}

/// The server's text of an ACL refusal: `NOPERM ...` (Redis 7, Valkey),
/// or a refusal of a command inside a script, which Redis 7.0 words as
/// `ERR The user executing the script can't ...` and Valkey as `ERR ACL
/// failure in script: ...`.
fn no_permission(e: &redis::RedisError) -> Option<String> {
    let detail = e.detail().unwrap_or_default();
    match e.code()? {
        "NOPERM" => Some(detail.to_owned()),
        "ERR"
            if detail.starts_with("The user executing the script can't")
                || detail.starts_with("ACL failure in script") =>
        {
            Some(detail.to_owned())
        }
        _ => None,
    }
}

/// rustls's refusal of the server's certificate (`invalid peer
/// certificate: ...`), with what it means for the caller.
fn tls_refusal(e: &redis::RedisError) -> Option<String> {
    if !e.is_io_error() {
        return None;
    }
    let text = e.to_string();
    if !text.contains("invalid peer certificate") {
        return None;
    }
    let meaning = if text.contains("UnknownIssuer") {
        "it is not signed by a CA this client trusts: give the server's CA with \
         ClientBuilder::tls_ca (or SSL_CERT_FILE)"
    } else if text.contains("not valid for name") || text.contains("NotValidForName") {
        "it does not name the host in the URL: connect by a name it has"
    } else if text.contains("Expired") || text.contains("expired") {
        "it has expired"
    } else {
        "see the cause"
    };
    Some(format!(
        "the server's certificate was refused ({text}): {meaning}"
    ))
}

impl Error {
    /// True for errors that say the server could not be reached (pool,
    /// connection, timeout, a refused TLS certificate, Sentinels that name
    /// no reachable primary: in a failover, until the promotion), as
    /// opposed to a reply.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Pool(_) | Self::Tls(_) => true,
            Self::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.kind() == redis::ErrorKind::MasterNameNotFoundBySentinel
            }
            _ => false,
        }
    }
}

impl From<deadpool_redis::PoolError> for Error {
    fn from(e: deadpool_redis::PoolError) -> Self {
        match e {
            deadpool_redis::PoolError::Backend(e) => Self::from(e),
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

/// `url` with its password, if any, shown as `***`: for messages and
/// `Debug`, which must never show a secret. Works on
/// `scheme://[user[:password]@]hosts[/rest]` (also `redis+sentinel://`,
/// whose hosts are a list); anything else is shown as `***` whole, since
/// where a password would be cannot be told.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, after)) = url.split_once("://") else {
        return "***".into();
    };
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    match authority.rsplit_once('@') {
        Some((creds, hosts)) => {
            let user = creds.split_once(':').map_or("", |(user, _)| user);
            format!("{scheme}://{user}:***@{hosts}{rest}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str, detail: &str) -> redis::RedisError {
        redis::make_extension_error(code.into(), Some(detail.into()))
    }

    /// The servers' words for an ACL refusal, of a command and of a command
    /// inside a script (Redis 7.0 and Valkey 8 word those differently).
    #[test]
    fn acl_refusals_become_no_permission() {
        for (code, detail) in [
            (
                "NOPERM",
                "this user has no permissions to run the 'lock.forcerelease' command",
            ),
            ("NOPERM", "No permissions to access a key"),
            (
                "ERR",
                "The user executing the script can't run this command or subcommand script: f00, on @user_script:1.",
            ),
            (
                "ERR",
                "ACL failure in script: User u has no permissions to run the 'set' command script: f00",
            ),
        ] {
            match Error::from(server(code, detail)) {
                Error::NoPermission(text) => assert_eq!(text, detail),
                other => panic!("{code} {detail}: {other:?}"),
            }
        }
        let e = Error::from(server("ERR", "wrong number of arguments"));
        assert!(matches!(e, Error::Redis(_)), "{e:?}");
    }

    /// An unknown command's echoed arguments (a token among them) are cut.
    #[test]
    fn echoed_arguments_are_cut_from_error_texts() {
        let e = Error::from(server(
            "ERR",
            "unknown command 'LOCK.ACQUIRE', with args beginning with: 'k' '0123456789abcdef0123456789abcdef' ",
        ));
        let text = format!("{e} {e:?}");
        assert!(text.contains("unknown command 'LOCK.ACQUIRE'"), "{text}");
        assert!(!text.contains("0123456789abcdef"), "{text}");
        assert!(
            matches!(&e, Error::Redis(r) if r.code() == Some("ERR")),
            "{e:?}"
        );
    }

    /// A URL's password is hidden, and nothing else is changed.
    #[test]
    fn urls_are_shown_without_their_password() {
        let cases = [
            (
                "redis://alice:s3cret@db:6379/2",
                "redis://alice:***@db:6379/2",
            ),
            ("rediss://:pw@db:6380", "rediss://:***@db:6380"),
            ("redis://pw@db:6380", "redis://:***@db:6380"),
            (
                "redis+sentinel://u:p@h1:26379,h2:26379/baton",
                "redis+sentinel://u:***@h1:26379,h2:26379/baton",
            ),
            ("redis://db:6379", "redis://db:6379"),
            ("not a url with a secret", "***"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
