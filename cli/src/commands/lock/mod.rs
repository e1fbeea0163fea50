//! `baton lock KEY -- CMD` and `baton elect NAME -- CMD`: takes the lock
//! (a lease with `--limit`, leadership for `elect`), runs CMD while the
//! watchdog keeps it, stops CMD when it is lost, passes signals on, lets
//! it go when CMD ends, and exits with CMD's status or baton's own code.
//!
//! - [`child`]: CMD in a process group of its own.
//! - [`held`]: the lock, a semaphore lease, or a leadership.

mod child;
mod held;

use std::time::Duration;

use baton_client::{Client, Error, LockOptions};
use rustix::process::Signal;
use tokio::time::{sleep_until, Instant};

use crate::args::{Conn, ElectArgs, HoldArgs, LockArgs};
use crate::connect::{connect, failure};
use crate::duration::{self, show};
use crate::exit::{self, Failure};
use crate::signals::Signals;
use child::{status_code, Cmd};
use held::Held;

/// What a run takes before CMD starts.
enum Take<'a> {
    Lock,
    Lease { limit: u32, permits: u32 },
    Leadership { value: &'a str },
}

/// `baton lock`: runs CMD holding the lock, or a lease with `--limit`.
pub(crate) async fn lock(conn: &Conn, args: &LockArgs) -> Result<u8, Failure> {
    let usage = |why: String| Failure::new(exit::USAGE, why);
    let take = match (args.limit, args.permits) {
        (Some(limit), Some(permits)) if permits > limit => {
            return Err(usage(format!(
                "--permits {permits} is more than --limit {limit}"
            )))
        }
        (None, Some(_)) => return Err(usage("--permits needs --limit".into())),
        (Some(limit), permits) => Take::Lease {
            limit,
            permits: permits.unwrap_or(1),
        },
        (None, None) => Take::Lock,
    };
    run(conn, &args.key, &args.hold, take).await
}

/// `baton elect`: runs CMD while leader.
pub(crate) async fn elect(conn: &Conn, args: &ElectArgs) -> Result<u8, Failure> {
    let value = &args.value;
    run(conn, &args.name, &args.hold, Take::Leadership { value }).await
}

/// Takes what `take` says, runs CMD under it, lets it go.
async fn run(conn: &Conn, key: &str, hold: &HoldArgs, take: Take<'_>) -> Result<u8, Failure> {
    let mut signals = Signals::install()
        .map_err(|e| Failure::new(exit::FAILURE, format!("cannot catch signals: {e}")))?;
    let client = tokio::select! {
        client = connect(conn) => client?,
        sig = signals.recv() => return Ok(exit::signaled(sig.as_raw())),
    };
    let guard = tokio::select! {
        guard = acquire(&client, key, hold, &take) => guard.map_err(|e| refused(conn, key, hold, e))?,
        sig = signals.recv() => {
            // The dropped wait left the queue; a grant that raced with it
            // is being released in the background.
            client.flush().await;
            return Ok(exit::signaled(sig.as_raw()));
        }
    };
    let fence = guard.fence().to_string();
    let mut env = vec![
        ("BATON_KEY", key.to_owned()),
        ("BATON_FENCE", fence.clone()),
    ];
    match guard.token() {
        Some(token) => env.push(("BATON_TOKEN", token.to_owned())),
        None => env.push(("BATON_TERM", fence)),
    }
    let mut cmd = match Cmd::spawn(&hold.command, &env) {
        Ok(cmd) => cmd,
        Err(f) => {
            let _ = guard.release().await;
            return Err(f);
        }
    };
    let ended = supervise(&mut cmd, &guard, &mut signals, hold.kill_after).await;
    finish(conn, hold, guard, ended).await
}

/// Takes the grant: once (`--no-wait`), waiting up to `--wait`, or
/// waiting until it is free.
async fn acquire(
    client: &Client,
    key: &str,
    hold: &HoldArgs,
    take: &Take<'_>,
) -> baton_client::Result<Held> {
    let once = |wait: Duration| {
        let opts = LockOptions::new().ttl(hold.ttl).wait(wait);
        async move {
            match *take {
                Take::Lock => client.lock(key, &opts).await.map(Held::Lock),
                Take::Lease { limit, permits } => {
                    let sem = client.semaphore(key, limit);
                    sem.acquire(permits, &opts).await.map(Held::Lease)
                }
                Take::Leadership { value } => client
                    .campaign(key, value, &opts)
                    .await
                    .map(Held::Leadership),
            }
        }
    };
    match (hold.no_wait, hold.wait) {
        (true, _) => once(Duration::ZERO).await,
        (false, Some(wait)) => once(wait).await,
        (false, None) => loop {
            match once(duration::MAX).await {
                Err(Error::NotAcquired { .. }) => continue,
                other => break other,
            }
        },
    }
}

/// The failure for a grant that was not made, in the terms of the flags.
fn refused(conn: &Conn, key: &str, hold: &HoldArgs, e: Error) -> Failure {
    match (&e, hold.wait) {
        (Error::NotAcquired { .. }, None) => Failure::new(
            exit::NOT_ACQUIRED,
            format!("lock '{key}' is held by another (--no-wait)"),
        ),
        (Error::NotAcquired { .. }, Some(wait)) => Failure::new(
            exit::NOT_ACQUIRED,
            format!(
                "lock '{key}' was not acquired within {} (--wait)",
                show(wait)
            ),
        ),
        _ => failure(conn, e),
    }
}

/// How CMD ended.
struct Ended {
    status: std::io::Result<std::process::ExitStatus>,
    /// The lock was lost while CMD ran, and CMD was told to stop.
    lost: bool,
}

/// Waits for CMD, passing baton's signals on to its group; when the lock
/// is lost, sends the group SIGTERM and, `grace` later, SIGKILL.
async fn supervise(cmd: &mut Cmd, guard: &Held, signals: &mut Signals, grace: Duration) -> Ended {
    let mut stopping: Option<Instant> = None;
    let mut killed = false;
    let status = loop {
        let kill_at = stopping.filter(|_| !killed).map(|t| t + grace);
        tokio::select! {
            status = cmd.wait() => break status,
            sig = signals.recv() => cmd.signal(sig),
            () = guard.lost(), if stopping.is_none() => {
                eprintln!(
                    "baton: lock '{}' lost (expired, force-released, or Redis unreachable \
                     for a ttl): sending SIGTERM to CMD's process group, SIGKILL in {}",
                    guard.key(),
                    show(grace)
                );
                cmd.signal(Signal::TERM);
                stopping = Some(Instant::now());
            }
            () = sleep_until(kill_at.unwrap_or_else(Instant::now)), if kill_at.is_some() => {
                eprintln!("baton: CMD still running {} after SIGTERM: sending SIGKILL", show(grace));
                cmd.signal(Signal::KILL);
                killed = true;
            }
        }
    };
    if let Some(since) = stopping {
        if !killed && cmd.reap_group(since + grace).await {
            eprintln!(
                "baton: CMD's process group still running {} after SIGTERM: sent SIGKILL",
                show(grace)
            );
        }
    }
    Ended {
        status,
        lost: stopping.is_some(),
    }
}

/// Releases the lock and picks the exit status.
async fn finish(conn: &Conn, hold: &HoldArgs, guard: Held, ended: Ended) -> Result<u8, Failure> {
    let key = guard.key().to_owned();
    let lost = ended.lost || guard.is_lost();
    let released = guard.release().await;
    let status = ended
        .status
        .map_err(|e| Failure::new(exit::FAILURE, format!("lost track of CMD: {e}")))?;
    if lost {
        return Err(Failure::new(
            exit::LOST,
            format!("lock '{key}' was lost while CMD ran"),
        ));
    }
    match released {
        Ok(true) => Ok(status_code(status)),
        Ok(false) => Err(Failure::new(
            exit::LOST,
            format!(
                "lock '{key}' was gone when CMD ended (expired or force-released): CMD may not \
                 have run alone"
            ),
        )),
        Err(e) => {
            eprintln!(
                "baton: could not release lock '{key}' ({}); it expires within {}",
                failure(conn, e),
                show(hold.ttl)
            );
            Ok(status_code(status))
        }
    }
}
