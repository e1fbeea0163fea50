//! A lock lost while CMD runs: `baton release --force` from another shell
//! makes the running CMD's group get SIGTERM, then SIGKILL after
//! `--kill-after`, and baton exits with the lost code.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use baton_cli::exit;
use baton_harness::RedisServer;
use common::*;

/// A CMD that writes its pid, then the time (ns) to `alive` every 50 ms,
/// and on SIGTERM the time to `term`; it keeps running (or exits 0 when
/// `obey`). The times are CMD's own, so the test's scheduling does not
/// blur them.
fn stubborn(dir: &Path, obey: bool) -> String {
    let then = if obey { "; exit 0" } else { "" };
    format!(
        "cd {dir}; trap 'date +%s%N >> term{then}' TERM; echo $$ > pid; \
         while :; do date +%s%N > alive.new && mv alive.new alive; sleep 0.05; done",
        dir = dir.display(),
    )
}

/// A time `stubborn` wrote, in ms.
fn stamp(text: &str) -> u128 {
    text.trim().parse::<u128>().expect("ns since the epoch") / 1_000_000
}

#[test]
fn a_force_release_stops_cmd_with_sigterm_then_sigkill() {
    let server = RedisServer::start();
    let (dir, path) = scratch();
    let script = stubborn(dir.path(), false);
    let child = spawn(
        &server.url(),
        &[
            "lock",
            "k",
            "--ttl",
            "900ms",
            "--kill-after",
            "1s",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let cmd_pid = await_file(&path("pid")).trim().to_string();
    await_info(&server, "k", "held", |i| i.held);

    let out = run(&server.url(), &["release", "--force", "k"]);
    assert_eq!(code(out.status), 0, "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "released k: its holder was removed\n"
    );

    // The watchdog's next extend (within ttl/3) finds the lock gone.
    let termed = stamp(&await_file(&path("term")));
    let out = finish(child);
    assert_eq!(code(out.status), i32::from(exit::LOST), "{}", show(&out));
    let last_alive = stamp(&std::fs::read_to_string(path("alive")).unwrap());
    let after = last_alive as i128 - termed as i128;
    assert!(
        (700..3_000).contains(&after),
        "CMD runs on through the 1 s grace after SIGTERM, then SIGKILL ends it: \
         last alive {after} ms after SIGTERM"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lock 'k' lost"), "{err}");
    assert!(err.contains("sending SIGKILL"), "{err}");
    assert!(
        !Path::new(&format!("/proc/{cmd_pid}")).exists(),
        "CMD (pid {cmd_pid}) is gone"
    );
    assert!(!info(&server, "k").held);
}

/// A CMD that exits on SIGTERM ends baton before the grace, still with the
/// lost code: its own status 0 does not hide that the lock was lost.
#[test]
fn a_lost_lock_is_reported_even_when_cmd_exits_cleanly() {
    let server = RedisServer::start();
    let (dir, path) = scratch();
    let script = stubborn(dir.path(), true);
    let child = spawn(
        &server.url(),
        &["lock", "k", "--ttl", "900ms", "--", "sh", "-c", &script],
    );
    await_file(&path("pid"));
    await_info(&server, "k", "held", |i| i.held);
    let out = run(&server.url(), &["release", "--force", "k"]);
    assert_eq!(code(out.status), 0, "{}", show(&out));
    let started = Instant::now();
    let out = finish(child);
    assert_eq!(code(out.status), i32::from(exit::LOST), "{}", show(&out));
    assert!(path("term").exists(), "CMD got SIGTERM");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no need to wait for the 10 s grace: {:?}",
        started.elapsed()
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("sent SIGKILL"));
}
