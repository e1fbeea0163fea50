//! Argument limits shared by the module and the client, with the exact error
//! texts of the wire protocol.

use std::fmt;

/// The longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 256;
/// The longest `META` value accepted, in bytes.
pub const MAX_META_LEN: usize = 1024;
/// The largest ttl-ms and timeout-ms accepted: 2^31 - 1.
pub const MAX_MS: u64 = i32::MAX as u64;

/// A rejected argument. `Display` gives the module's error reply text, without
/// the `ERR ` prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    /// The token is empty or longer than [`MAX_TOKEN_LEN`].
    Token,
    /// ttl-ms is not an integer in `1..=MAX_MS`.
    Ttl,
    /// timeout-ms is not an integer in `0..=MAX_MS`.
    Timeout,
    /// `WAIT` was the last argument.
    WaitWithoutTimeout,
    /// An argument that is not a known option.
    UnknownOption(String),
    /// `LIMIT n` is missing or not an integer in `1..=MAX_MS`.
    Limit,
    /// `PERMITS p` is not an integer in `1..=limit`.
    Permits,
    /// An option that takes a value came last.
    MissingValue(&'static str),
    /// The `META` value is over [`MAX_META_LEN`] bytes.
    Meta,
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token => write!(f, "token must be 1 to {MAX_TOKEN_LEN} bytes"),
            Self::Ttl => write!(f, "ttl-ms must be an integer between 1 and {MAX_MS}"),
            Self::Timeout => write!(f, "timeout-ms must be an integer between 0 and {MAX_MS}"),
            Self::WaitWithoutTimeout => write!(f, "WAIT needs a timeout-ms"),
            Self::UnknownOption(arg) => write!(f, "unknown option '{arg}'"),
            Self::Limit => write!(f, "LIMIT must be an integer between 1 and {MAX_MS}"),
            Self::Permits => write!(f, "PERMITS must be an integer between 1 and LIMIT"),
            Self::MissingValue(option) => write!(f, "{option} needs a value"),
            Self::Meta => write!(f, "META must be 0 to {MAX_META_LEN} bytes"),
        }
    }
}

impl std::error::Error for ArgError {}

/// Checks a token's length.
pub fn token(bytes: &[u8]) -> Result<&[u8], ArgError> {
    if (1..=MAX_TOKEN_LEN).contains(&bytes.len()) {
        Ok(bytes)
    } else {
        Err(ArgError::Token)
    }
}

/// Parses ttl-ms: a decimal integer in `1..=MAX_MS`.
pub fn ttl_ms(bytes: &[u8]) -> Result<u64, ArgError> {
    parse_ms(bytes, 1).ok_or(ArgError::Ttl)
}

/// Parses timeout-ms: a decimal integer in `0..=MAX_MS`.
pub fn timeout_ms(bytes: &[u8]) -> Result<u64, ArgError> {
    parse_ms(bytes, 0).ok_or(ArgError::Timeout)
}

/// The options of `LOCK.ACQUIRE` after ttl-ms: `WAIT timeout-ms` and
/// `META value`, in any order, each at most once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockArgs<'a> {
    /// How long to wait in ms, 0 when absent.
    pub wait: u64,
    /// The value to store with the holder.
    pub meta: Option<&'a [u8]>,
}

/// Parses the options of `LOCK.ACQUIRE` (see [`LockArgs`]).
pub fn lock_options<'a>(rest: &[&'a [u8]]) -> Result<LockArgs<'a>, ArgError> {
    let (mut wait, mut meta) = (None, None);
    let mut args = rest.iter();
    while let Some(word) = args.next() {
        let is_wait = word.eq_ignore_ascii_case(b"WAIT");
        let slot = match () {
            _ if is_wait => &mut wait,
            _ if word.eq_ignore_ascii_case(b"META") => &mut meta,
            _ => return Err(unknown(word)),
        };
        if slot.is_some() {
            return Err(unknown(word));
        }
        *slot = Some(*args.next().ok_or(match is_wait {
            true => ArgError::WaitWithoutTimeout,
            false => ArgError::MissingValue("META"),
        })?);
    }
    if meta.is_some_and(|m| m.len() > MAX_META_LEN) {
        return Err(ArgError::Meta);
    }
    Ok(LockArgs {
        wait: wait.map_or(Ok(0), timeout_ms)?,
        meta,
    })
}

/// Parses the options of `LOCK.EXTEND` after ttl-ms: nothing, or `META
/// value` (the holder's new value).
pub fn extend_options<'a>(rest: &[&'a [u8]]) -> Result<Option<&'a [u8]>, ArgError> {
    match rest {
        [] => Ok(None),
        [word, rest @ ..] if word.eq_ignore_ascii_case(b"META") => match rest {
            [] => Err(ArgError::MissingValue("META")),
            [meta] if meta.len() > MAX_META_LEN => Err(ArgError::Meta),
            [meta] => Ok(Some(meta)),
            [_, extra, ..] => Err(unknown(extra)),
        },
        [word, ..] => Err(unknown(word)),
    }
}

/// The options of `SEM.ACQUIRE` after ttl-ms: `LIMIT n` (required),
/// `PERMITS p` (default 1, at most `n`), `WAIT timeout-ms`, in any order,
/// each at most once, option words in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemOptions {
    /// The semaphore's number of permits.
    pub limit: u32,
    /// The permits asked for.
    pub permits: u32,
    /// How long to wait in ms, 0 when absent.
    pub wait: u64,
}

/// Parses the options of `SEM.ACQUIRE` (see [`SemOptions`]).
pub fn sem_options(rest: &[&[u8]]) -> Result<SemOptions, ArgError> {
    let (mut limit, mut permits, mut wait) = (None, None, None);
    let mut args = rest.iter();
    while let Some(word) = args.next() {
        let (slot, name): (&mut Option<&[u8]>, &'static str) =
            if word.eq_ignore_ascii_case(b"LIMIT") {
                (&mut limit, "LIMIT")
            } else if word.eq_ignore_ascii_case(b"PERMITS") {
                (&mut permits, "PERMITS")
            } else if word.eq_ignore_ascii_case(b"WAIT") {
                (&mut wait, "WAIT")
            } else {
                return Err(unknown(word));
            };
        if slot.is_some() {
            return Err(unknown(word));
        }
        *slot = Some(args.next().ok_or(match name {
            "WAIT" => ArgError::WaitWithoutTimeout,
            other => ArgError::MissingValue(other),
        })?);
    }
    let limit = limit.and_then(|l| parse_ms(l, 1)).ok_or(ArgError::Limit)?;
    let permits = match permits {
        None => 1,
        Some(p) => parse_ms(p, 1)
            .filter(|&p| p <= limit)
            .ok_or(ArgError::Permits)?,
    };
    let wait = wait.map_or(Ok(0), timeout_ms)?;
    // Both fit: parse_ms bounds them by MAX_MS = i32::MAX.
    Ok(SemOptions {
        limit: u32::try_from(limit).unwrap_or(u32::MAX),
        permits: u32::try_from(permits).unwrap_or(u32::MAX),
        wait,
    })
}

/// Echoes an argument as Redis' `sdscatrepr` would: printable ASCII as is,
/// other bytes as `\xNN`, at most 64 bytes. Error replies are one ASCII line,
/// and clients reject invalid UTF-8 in them.
fn unknown(arg: &[u8]) -> ArgError {
    let mut shown = String::new();
    for &byte in arg.iter().take(64) {
        match byte {
            b'\\' | b'\'' => shown.extend(['\\', char::from(byte)]),
            0x20..=0x7e => shown.push(char::from(byte)),
            _ => shown.push_str(&format!("\\x{byte:02x}")),
        }
    }
    ArgError::UnknownOption(shown)
}

/// A strict decimal parse: digits only (no sign, no spaces), within
/// `min..=MAX_MS`.
fn parse_ms(bytes: &[u8], min: u64) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = bytes
        .iter()
        .fold(0u64, |acc, digit| acc * 10 + u64::from(digit - b'0'));
    (min..=MAX_MS).contains(&value).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_bounds() {
        assert_eq!(ttl_ms(b"1"), Ok(1));
        assert_eq!(ttl_ms(b"2147483647"), Ok(MAX_MS));
        for bad in [
            &b"0"[..],
            b"2147483648",
            b"-1",
            b"+5",
            b" 5",
            b"",
            b"1e3",
            b"99999999999",
        ] {
            assert_eq!(ttl_ms(bad), Err(ArgError::Ttl), "{bad:?}");
        }
    }

    #[test]
    fn timeout_accepts_zero() {
        assert_eq!(timeout_ms(b"0"), Ok(0));
        assert_eq!(timeout_ms(b"x"), Err(ArgError::Timeout));
    }

    #[test]
    fn token_length() {
        assert!(token(b"").is_err());
        assert!(token(&[0u8; 256]).is_ok());
        assert!(token(&[0u8; 257]).is_err());
    }

    #[test]
    fn wait_option_shapes() {
        assert_eq!(lock_options(&[]).map(|o| o.wait), Ok(0));
        assert_eq!(lock_options(&[b"wait", b"50"]).map(|o| o.wait), Ok(50));
        assert_eq!(lock_options(&[b"WAIT"]), Err(ArgError::WaitWithoutTimeout));
        assert_eq!(lock_options(&[b"WAIT", b"-1"]), Err(ArgError::Timeout));
        assert_eq!(
            lock_options(&[b"NX"]),
            Err(ArgError::UnknownOption("NX".into()))
        );
        assert_eq!(
            lock_options(&[b"WAIT", b"5", b"WAIT"]),
            Err(ArgError::UnknownOption("WAIT".into()))
        );
    }

    #[test]
    fn unknown_options_are_echoed_as_printable_ascii() {
        assert_eq!(
            lock_options(&[b"\xff\r\n'a"]),
            Err(ArgError::UnknownOption("\\xff\\x0d\\x0a\\'a".into()))
        );
    }

    #[test]
    fn lock_options_shapes() {
        let ok = |wait, meta| Ok(LockArgs { wait, meta });
        assert_eq!(lock_options(&[]), ok(0, None));
        assert_eq!(
            lock_options(&[b"meta", b"", b"WAIT", b"5"]),
            ok(5, Some(&b""[..]))
        );
        assert_eq!(
            lock_options(&[b"META"]),
            Err(ArgError::MissingValue("META"))
        );
        assert_eq!(lock_options(&[b"WAIT"]), Err(ArgError::WaitWithoutTimeout));
        let long = vec![b'x'; MAX_META_LEN + 1];
        assert_eq!(lock_options(&[b"META", &long]), Err(ArgError::Meta));
        assert_eq!(
            lock_options(&[b"WAIT", b"1", b"WAIT", b"2"]),
            Err(ArgError::UnknownOption("WAIT".into()))
        );
    }

    #[test]
    fn extend_options_shapes() {
        assert_eq!(extend_options(&[]), Ok(None));
        assert_eq!(extend_options(&[b"meta", b"v"]), Ok(Some(&b"v"[..])));
        assert_eq!(extend_options(&[b"META", b""]), Ok(Some(&b""[..])));
        assert_eq!(
            extend_options(&[b"META"]),
            Err(ArgError::MissingValue("META"))
        );
        let long = vec![b'x'; MAX_META_LEN + 1];
        assert_eq!(extend_options(&[b"META", &long]), Err(ArgError::Meta));
        assert_eq!(
            extend_options(&[b"META", b"v", b"META", b"w"]),
            Err(ArgError::UnknownOption("META".into()))
        );
        assert_eq!(
            extend_options(&[b"WAIT", b"5"]),
            Err(ArgError::UnknownOption("WAIT".into()))
        );
    }

    #[test]
    fn sem_options_shapes() {
        let ok = |limit, permits, wait| {
            Ok(SemOptions {
                limit,
                permits,
                wait,
            })
        };
        assert_eq!(sem_options(&[b"LIMIT", b"5"]), ok(5, 1, 0));
        assert_eq!(
            sem_options(&[b"wait", b"10", b"permits", b"2", b"limit", b"3"]),
            ok(3, 2, 10)
        );
        assert_eq!(sem_options(&[]), Err(ArgError::Limit));
        assert_eq!(sem_options(&[b"LIMIT", b"0"]), Err(ArgError::Limit));
        assert_eq!(
            sem_options(&[b"LIMIT"]),
            Err(ArgError::MissingValue("LIMIT"))
        );
        assert_eq!(
            sem_options(&[b"LIMIT", b"2", b"PERMITS", b"3"]),
            Err(ArgError::Permits)
        );
        assert_eq!(
            sem_options(&[b"LIMIT", b"2", b"WAIT"]),
            Err(ArgError::WaitWithoutTimeout)
        );
        assert_eq!(
            sem_options(&[b"LIMIT", b"2", b"LIMIT", b"2"]),
            Err(ArgError::UnknownOption("LIMIT".into()))
        );
        assert_eq!(
            sem_options(&[b"LIMIT", b"2", b"NX"]),
            Err(ArgError::UnknownOption("NX".into()))
        );
    }

    #[test]
    fn error_texts_match_the_protocol() {
        assert_eq!(
            ArgError::Ttl.to_string(),
            "ttl-ms must be an integer between 1 and 2147483647"
        );
        assert_eq!(
            ArgError::Timeout.to_string(),
            "timeout-ms must be an integer between 0 and 2147483647"
        );
        assert_eq!(ArgError::Token.to_string(), "token must be 1 to 256 bytes");
    }
}
