//! `baton lock KEY -- CMD`: takes the lock, runs CMD while the watchdog
//! keeps it, stops CMD when the lock is lost, passes signals on, releases
//! when CMD ends, and exits with CMD's status or baton's own code.
//!
//! - [`child`]: CMD in a process group of its own.
//! - [`held`]: the lock, or with `--limit` a semaphore lease.

mod child;
mod held;

use std::time::Duration;

use baton_client::{Client, Error, LockOptions};
use rustix::process::Signal;
use tokio::time::{sleep_until, Instant};

use crate::args::{Conn, LockArgs};
use crate::connect::{connect, failure};
use crate::duration::{self, show};
use crate::exit::{self, Failure};
use crate::signals::Signals;
use child::{status_code, Cmd};
use held::Held;

/// Runs the command.
pub(crate) async fn run(conn: &Conn, args: &LockArgs) -> Result<u8, Failure> {
    let mut signals = Signals::install()
        .map_err(|e| Failure::new(exit::FAILURE, format!("cannot catch signals: {e}")))?;
    let client = tokio::select! {
        client = connect(conn) => client?,
        sig = signals.recv() => return Ok(exit::signaled(sig.as_raw())),
    };
    let usage = |why: String| Failure::new(exit::USAGE, why);
    let permits = match (args.limit, args.permits) {
        (Some(limit), Some(permits)) if permits > limit => {
            return Err(usage(format!(
                "--permits {permits} is more than --limit {limit}"
            )))
        }
        (None, Some(_)) => return Err(usage("--permits needs --limit".into())),
        (_, permits) => permits.unwrap_or(1),
    };
    let guard = tokio::select! {
        guard = acquire(&client, args, permits) => guard.map_err(|e| refused(conn, args, e))?,
        sig = signals.recv() => {
            // The dropped wait left the queue; a grant that raced with it
            // is being released in the background.
            client.flush().await;
            return Ok(exit::signaled(sig.as_raw()));
        }
    };
    let env = [
        ("BATON_KEY", args.key.clone()),
        ("BATON_FENCE", guard.fence().to_string()),
        ("BATON_TOKEN", guard.token().to_string()),
    ];
    let mut cmd = match Cmd::spawn(&args.command, &env) {
        Ok(cmd) => cmd,
        Err(f) => {
            let _ = guard.release().await;
            return Err(f);
        }
    };
    let ended = supervise(&mut cmd, &guard, &mut signals, args.kill_after).await;
    finish(conn, args, guard, ended).await
}

/// Takes the lock (or `permits` of the `--limit` semaphore): once
/// (`--no-wait`), waiting up to `--wait`, or waiting until it is free.
async fn acquire(client: &Client, args: &LockArgs, permits: u32) -> baton_client::Result<Held> {
    let once = |wait: Duration| {
        let opts = LockOptions::new().ttl(args.ttl).wait(wait);
        async move {
            match args.limit {
                Some(limit) => {
                    let sem = client.semaphore(&args.key, limit);
                    sem.acquire(permits, &opts).await.map(Held::Lease)
                }
                None => client.lock(&args.key, &opts).await.map(Held::Lock),
            }
        }
    };
    match (args.no_wait, args.wait) {
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

/// The failure for a lock that was not granted, in the terms of the flags.
fn refused(conn: &Conn, args: &LockArgs, e: Error) -> Failure {
    match (&e, args.wait) {
        (Error::NotAcquired { .. }, None) => Failure::new(
            exit::NOT_ACQUIRED,
            format!("lock '{}' is held by another (--no-wait)", args.key),
        ),
        (Error::NotAcquired { .. }, Some(wait)) => Failure::new(
            exit::NOT_ACQUIRED,
            format!(
                "lock '{}' was not acquired within {} (--wait)",
                args.key,
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
async fn finish(conn: &Conn, args: &LockArgs, guard: Held, ended: Ended) -> Result<u8, Failure> {
    let lost = ended.lost || guard.is_lost();
    let released = guard.release().await;
    let status = ended
        .status
        .map_err(|e| Failure::new(exit::FAILURE, format!("lost track of CMD: {e}")))?;
    if lost {
        return Err(Failure::new(
            exit::LOST,
            format!("lock '{}' was lost while CMD ran", args.key),
        ));
    }
    match released {
        Ok(true) => Ok(status_code(status)),
        Ok(false) => Err(Failure::new(
            exit::LOST,
            format!(
                "lock '{}' was gone when CMD ended (expired or force-released): CMD may not \
                 have run alone",
                args.key
            ),
        )),
        Err(e) => {
            eprintln!(
                "baton: could not release lock '{}' ({}); it expires within {}",
                args.key,
                failure(conn, e),
                show(args.ttl)
            );
            Ok(status_code(status))
        }
    }
}
