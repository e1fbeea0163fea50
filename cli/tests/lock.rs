//! `baton lock`: queueing, fences, `--no-wait` / `--wait`, CMD's environment
//! and exit status, against a real server with the module.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use baton_cli::exit;
use baton_harness::{lock, RedisServer};
use common::*;

/// Two `baton lock K` started together: one runs, the other waits in the
/// queue, runs after the first has ended, and sees a larger `BATON_FENCE`.
#[test]
fn two_locks_started_together_run_one_after_the_other() {
    let server = RedisServer::start();
    let (_dir, path) = scratch();
    let log = path("log");
    let script = logging_sleep(&log, 1.0);
    let a = spawn(&server.url(), &["lock", "k", "--", "sh", "-c", &script]);
    let b = spawn(&server.url(), &["lock", "k", "--", "sh", "-c", &script]);
    let held = await_info(&server, "k", "one holder and one waiter", |i| {
        i.held && i.waiters == 1
    });
    let (a, b) = (finish(a), finish(b));
    assert_eq!(code(a.status), 0, "{}", show(&a));
    assert_eq!(code(b.status), 0, "{}", show(&b));

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 4, "{text}");
    let fence = |i: usize| lines[i][2].parse::<i64>().unwrap();
    for (i, what) in ["start", "end", "start", "end"].into_iter().enumerate() {
        assert_eq!(lines[i][..2], [what, "k"], "{text}");
    }
    assert_eq!(fence(0), fence(1), "one run, one fence: {text}");
    assert_eq!(fence(2), fence(3), "{text}");
    assert_eq!(fence(0), held.fence, "BATON_FENCE is the holder's fence");
    assert!(
        fence(2) > fence(0),
        "the second run's fence is larger: {text}"
    );
    assert!(!info(&server, "k").held, "released after the second run");
}

/// `--no-wait` on a held lock exits 75 at once, without running CMD.
#[test]
fn no_wait_on_a_held_lock_exits_not_acquired_at_once() {
    let server = RedisServer::start();
    let fence = lock::acquire(&mut server.connection(), b"k", b"other", 30_000).unwrap();
    let (_dir, path) = scratch();
    let ran = path("ran");
    let started = Instant::now();
    let out = run(
        &server.url(),
        &[
            "lock",
            "k",
            "--no-wait",
            "--",
            "touch",
            ran.to_str().unwrap(),
        ],
    );
    assert_eq!(
        code(out.status),
        i32::from(exit::NOT_ACQUIRED),
        "{}",
        show(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "at once, not after a wait: {:?}",
        started.elapsed()
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("lock 'k' is held by another"));
    assert!(!ran.exists(), "CMD must not run");
    assert_eq!(info(&server, "k").fence, fence, "the holder keeps the lock");
}

/// `--wait D` on a lock held throughout waits D in the queue, then exits 75
/// and leaves the queue.
#[test]
fn a_wait_that_runs_out_exits_not_acquired() {
    let server = RedisServer::start();
    lock::acquire(&mut server.connection(), b"k", b"other", 30_000).unwrap();
    let started = Instant::now();
    let out = run(
        &server.url(),
        &["lock", "k", "--wait", "400ms", "--", "true"],
    );
    assert_eq!(
        code(out.status),
        i32::from(exit::NOT_ACQUIRED),
        "{}",
        show(&out)
    );
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not acquired within 400ms (--wait)"));
    assert_eq!(info(&server, "k").waiters, 0);
}

/// CMD's exit status is baton's, also when a signal ended CMD (128 + N),
/// and the lock is released (not left to expire) either way.
#[test]
fn cmd_status_is_passed_through_and_the_lock_released() {
    let server = RedisServer::start();
    for (script, want) in [("exit 0", 0), ("exit 7", 7), ("kill -KILL $$", 128 + 9)] {
        let out = run(&server.url(), &["lock", "k", "--", "sh", "-c", script]);
        assert_eq!(code(out.status), want, "{script}: {}", show(&out));
        assert!(!info(&server, "k").held, "{script}: released at once");
    }
    let stats = lock::stats(&mut server.connection());
    assert_eq!((stats["releases"], stats["expirations"]), (3, 0));
}

/// A CMD that does not exist exits 127, one that cannot be executed 126;
/// the lock is released.
#[test]
fn a_cmd_that_cannot_run_exits_like_a_shell() {
    let server = RedisServer::start();
    let (_dir, path) = scratch();
    let not_exec = path("not-executable");
    std::fs::write(&not_exec, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&not_exec, std::fs::Permissions::from_mode(0o644)).unwrap();
    let missing = path("no-such-command");
    for (cmd, want) in [(&missing, exit::NOT_FOUND), (&not_exec, exit::CANNOT_RUN)] {
        let out = run(&server.url(), &["lock", "k", "--", cmd.to_str().unwrap()]);
        assert_eq!(code(out.status), i32::from(want), "{}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("cannot run") && err.contains(cmd.to_str().unwrap()),
            "{err}"
        );
        assert!(!info(&server, "k").held);
    }
}

/// The watchdog keeps the lock past its ttl while CMD runs.
#[test]
fn the_watchdog_keeps_the_lock_while_cmd_runs() {
    let server = RedisServer::start();
    let child = spawn(
        &server.url(),
        &["lock", "k", "--ttl", "500ms", "--", "sleep", "1.8"],
    );
    let first = await_info(&server, "k", "held", |i| i.held);
    let started = Instant::now();
    // Three ttls later it is still the same grant.
    while started.elapsed() < Duration::from_millis(1_500) {
        let now = info(&server, "k");
        assert!(
            now.held && now.fence == first.fence,
            "lost at {:?}: {now:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = finish(child);
    assert_eq!(code(out.status), 0, "{}", show(&out));
    let stats = lock::stats(&mut server.connection());
    assert!(stats["extends"] >= 3, "{stats:?}");
    assert_eq!(stats["expirations"], 0);
}
