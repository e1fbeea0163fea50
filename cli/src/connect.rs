//! Connecting to Redis from `--url` / `--backend`, and turning the client's
//! errors into [`Failure`]s a person can act on: each names the URL (its
//! password hidden) and the cause, and has its exit status.

use baton_client::{Backend, Client, Error};
use redis::ErrorKind;

use crate::args::{BackendArg, Conn};
use crate::exit::{Failure, FAILURE, LOST, NOT_ACQUIRED};
use crate::url::redact;

/// How to load the module into a server.
const LOAD_MODULE: &str = "load the baton module into it (redis-server --loadmodule \
                           /path/to/libbaton.so, or `loadmodule /path/to/libbaton.so` in \
                           redis.conf, or MODULE LOAD on a running server)";

/// A client for `conn`.
///
/// # Errors
///
/// [`crate::exit::UNAVAILABLE`] when the server cannot be reached or has
/// no module under `--backend module`, [`crate::exit::USAGE`] for a URL
/// that is not one.
pub async fn connect(conn: &Conn) -> Result<Client, Failure> {
    build(conn, conn.backend.into(), || {
        format!(
            "Redis at {} has no baton module (--backend module): {LOAD_MODULE}, or use \
             --backend lua (or auto) to work with the Lua scripts instead",
            redact(&conn.url)
        )
    })
    .await
}

/// A client for `conn` on the module, for the server-wide counters that
/// `baton stats` and `baton top` (`what`) show.
///
/// # Errors
///
/// As [`connect`], and [`crate::exit::UNAVAILABLE`] when the server has no
/// module or `--backend lua` was asked for (the Lua backend counts only its
/// own process's calls).
pub async fn connect_with_counters(conn: &Conn, what: &str) -> Result<Client, Failure> {
    if conn.backend == BackendArg::Lua {
        return Err(Failure::unavailable(format!(
            "{what} needs the baton module's LOCK.STATS counters, and the Lua backend \
             (--backend lua) keeps no server-wide counters: use --backend module or auto"
        )));
    }
    let no_counters = || {
        format!(
            "{what} needs the baton module's LOCK.STATS counters, which Redis at {} does \
             not have: {LOAD_MODULE}",
            redact(&conn.url)
        )
    };
    build(conn, Backend::Module, no_counters).await
}

/// Builds the client; `no_module` is the message for a server without it.
async fn build(
    conn: &Conn,
    backend: Backend,
    no_module: impl FnOnce() -> String,
) -> Result<Client, Failure> {
    Client::builder(&conn.url)
        .backend(backend)
        .build()
        .await
        .map_err(|e| match e {
            Error::BackendUnavailable(_) if backend == Backend::Module => {
                Failure::unavailable(no_module())
            }
            e => failure(conn, e),
        })
}

/// The failure for a client error met while working with `conn`.
pub fn failure(conn: &Conn, e: Error) -> Failure {
    let at = redact(&conn.url);
    match &e {
        Error::NotAcquired { .. } => Failure::new(NOT_ACQUIRED, e.to_string()),
        Error::Lost { .. } => Failure::new(LOST, e.to_string()),
        Error::InvalidKey { .. } | Error::InvalidOptions(_) => Failure::usage(e.to_string()),
        Error::BackendUnavailable(why) => Failure::unavailable(format!("Redis at {at}: {why}")),
        _ if e.is_unreachable() => {
            let hint = if e.to_string().contains("certificate") {
                " (to trust a private CA: SSL_CERT_FILE=/path/to/ca.pem)"
            } else {
                ""
            };
            Failure::unavailable(format!("cannot reach Redis at {at}: {e}{hint}"))
        }
        Error::Redis(r) if matches!(r.kind(), ErrorKind::InvalidClientConfig) => {
            Failure::usage(format!("--url {at} is not a usable Redis URL: {r}"))
        }
        Error::Redis(r)
            if matches!(r.kind(), ErrorKind::AuthenticationFailed)
                || matches!(r.code(), Some("NOAUTH" | "WRONGPASS")) =>
        {
            Failure::unavailable(format!(
                "Redis at {at} refused the login (put user and password in the URL: \
                 redis://user:password@host:port): {r}"
            ))
        }
        Error::Redis(r) if is_sentinel_error(r.kind()) => {
            Failure::unavailable(format!("the Sentinels at {at} name no usable primary: {r}"))
        }
        _ => Failure::new(FAILURE, format!("Redis at {at}: {e}")),
    }
}

fn is_sentinel_error(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::MasterNameNotFoundBySentinel
            | ErrorKind::NoValidReplicasFoundBySentinel
            | ErrorKind::EmptySentinelList
    )
}
