//! A lock lost while CMD runs: `baton release --force` from another shell
//! makes the running CMD's group get SIGTERM, then SIGKILL after
//! `--kill-after`, and baton exits with the lost code.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use baton_cli::exit;
use baton_tests::RedisServer;
use common::*;

/// A CMD that writes its pid, then on SIGTERM writes `term` to `term` and
/// keeps running (or exits 0 when `obey`).
fn stubborn(pid: &Path, term: &Path, obey: bool) -> String {
    let then = if obey { "; exit 0" } else { "" };
    format!(
        "trap 'echo term >> {term}{then}' TERM; echo $$ > {pid}; \
         while :; do sleep 0.05; done",
        pid = pid.display(),
        term = term.display(),
    )
}

#[test]
fn a_force_release_stops_cmd_with_sigterm_then_sigkill() {
    let server = RedisServer::start();
    let (_dir, path) = scratch();
    let (pid_file, term) = (path("pid"), path("term"));
    let script = stubborn(&pid_file, &term, false);
    let child = spawn(
        &server.url(),
        &[
            "lock",
            "k",
            "--ttl",
            "900ms",
            "--kill-after",
            "800ms",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let cmd_pid = await_file(&pid_file).trim().to_string();
    await_info(&server, "k", "held", |i| i.held);

    let out = run(&server.url(), &["release", "--force", "k"]);
    assert_eq!(code(out.status), 0, "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "released k: its holder was removed\n"
    );

    // The watchdog's next extend (within ttl/3) finds the lock gone.
    assert_eq!(await_file(&term), "term\n", "CMD got SIGTERM");
    let termed = Instant::now();
    let out = finish(child);
    assert_eq!(code(out.status), i32::from(exit::LOST), "{}", show(&out));
    assert!(
        termed.elapsed() >= Duration::from_millis(500),
        "SIGKILL only after the grace: exited {:?} after SIGTERM was seen",
        termed.elapsed()
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
    let (_dir, path) = scratch();
    let (pid_file, term) = (path("pid"), path("term"));
    let script = stubborn(&pid_file, &term, true);
    let child = spawn(
        &server.url(),
        &["lock", "k", "--ttl", "900ms", "--", "sh", "-c", &script],
    );
    await_file(&pid_file);
    await_info(&server, "k", "held", |i| i.held);
    let out = run(&server.url(), &["release", "--force", "k"]);
    assert_eq!(code(out.status), 0, "{}", show(&out));
    let started = Instant::now();
    let out = finish(child);
    assert_eq!(code(out.status), i32::from(exit::LOST), "{}", show(&out));
    assert_eq!(std::fs::read_to_string(&term).unwrap(), "term\n");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no need to wait for the 10 s grace: {:?}",
        started.elapsed()
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("sent SIGKILL"));
}
