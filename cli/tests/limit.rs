//! `baton lock --limit N`: runs share a semaphore of N permits, each with a
//! lease and fence of its own; `BATON_TOKEN` names the grant; bad
//! `--permits` is bad usage.

mod common;

use baton_cli::exit;
use baton_harness::{lock, wait_until, RedisServer};
use common::*;

/// A CMD that logs `start FENCE`, waits until `go` exists, logs `end FENCE`.
fn held_until(log: &std::path::Path, go: &std::path::Path) -> String {
    format!(
        "echo \"start $BATON_FENCE\" >> {log}; {wait}; echo \"end $BATON_FENCE\" >> {log}",
        log = log.display(),
        wait = until_exists(go)
    )
}

/// Three runs with `--limit 2`: two hold leases at once, the third waits
/// in the queue until one ends; each run has a fence of its own.
#[test]
fn two_of_three_runs_hold_a_limit_of_two_at_once() {
    let server = RedisServer::start();
    let (_dir, path) = scratch();
    let (log, go) = (path("log"), path("go"));
    let script = held_until(&log, &go);
    let args = ["lock", "builds", "--limit", "2", "--", "sh", "-c", &script];
    let runs: Vec<_> = (0..3).map(|_| spawn(&server.url(), &args)).collect();
    let mut con = server.connection();
    let full = wait_until(PATIENCE, || {
        let info = lock::sem_info(&mut con, b"builds");
        info["used"] == 2 && info["waiters"] == 1
    });
    assert!(
        full,
        "two leases and one waiter: {:?}",
        lock::sem_info(&mut con, b"builds")
    );
    let starts = |text: &str| text.lines().filter(|l| l.starts_with("start")).count();
    assert!(
        wait_until(PATIENCE, || starts(
            &std::fs::read_to_string(&log).unwrap_or_default()
        ) == 2),
        "both holders run CMD"
    );
    std::fs::write(&go, "").unwrap();
    for run in runs {
        let out = finish(run);
        assert_eq!(code(out.status), 0, "{}", show(&out));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(
        lines[..2].iter().all(|l| l.starts_with("start")),
        "the third run starts only after one ended: {text}"
    );
    let mut fences: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("start "))
        .collect();
    fences.sort();
    fences.dedup();
    assert_eq!(fences.len(), 3, "a fence per lease: {text}");
    let info = lock::sem_info(&mut con, b"builds");
    assert_eq!((info["used"], info["waiters"]), (0, 0), "all released");
}

/// `--permits 2` of `--limit 3`: a second such run waits, since 4 > 3.
#[test]
fn permits_count_against_the_limit() {
    let server = RedisServer::start();
    let (_dir, path) = scratch();
    let (log, go) = (path("log"), path("go"));
    let script = held_until(&log, &go);
    let args = [
        "lock",
        "big",
        "--limit",
        "3",
        "--permits",
        "2",
        "--",
        "sh",
        "-c",
        &script,
    ];
    let first = spawn(&server.url(), &args);
    let mut con = server.connection();
    assert!(wait_until(PATIENCE, || lock::sem_info(&mut con, b"big")
        ["used"]
        == 2));
    let second = run(
        &server.url(),
        &[
            "lock",
            "big",
            "--limit",
            "3",
            "--permits",
            "2",
            "--no-wait",
            "--",
            "true",
        ],
    );
    assert_eq!(
        code(second.status),
        i32::from(exit::NOT_ACQUIRED),
        "{}",
        show(&second)
    );
    std::fs::write(&go, "").unwrap();
    let first = finish(first);
    assert_eq!(code(first.status), 0, "{}", show(&first));
}

/// `BATON_TOKEN` is the token the lock is held under: `LOCK.EXTEND` with
/// it succeeds while CMD runs.
#[test]
fn baton_token_names_the_grant() {
    let server = RedisServer::start();
    let (_dir, path) = scratch();
    let (token_file, go) = (path("token"), path("go"));
    let script = format!(
        "echo \"$BATON_TOKEN\" > {}; {}",
        token_file.display(),
        until_exists(&go)
    );
    let child = spawn(&server.url(), &["lock", "k", "--", "sh", "-c", &script]);
    let token = await_file(&token_file);
    let token = token.trim();
    assert!(!token.is_empty(), "BATON_TOKEN is set");
    let extended: i64 = redis::cmd("LOCK.EXTEND")
        .arg("k")
        .arg(token)
        .arg(60_000)
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(extended, 1, "the holder's token extends the lock");
    std::fs::write(&go, "").unwrap();
    let out = finish(child);
    assert_eq!(code(out.status), 0, "{}", show(&out));
    assert!(!info(&server, "k").held, "released when CMD ended");
}

/// More permits than the limit, or `--permits` alone, is bad usage (64)
/// and touches nothing.
#[test]
fn bad_permits_are_usage_errors() {
    let server = RedisServer::start();
    for (args, why) in [
        (
            vec!["lock", "s", "--limit", "2", "--permits", "3", "--", "true"],
            "--permits 3 is more than --limit 2",
        ),
        (
            vec!["lock", "s", "--permits", "1", "--", "true"],
            "--permits needs --limit",
        ),
    ] {
        let out = run(&server.url(), &args);
        assert_eq!(code(out.status), i32::from(exit::USAGE), "{}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{why}: {}",
            show(&out)
        );
    }
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut server.connection())
        .unwrap();
    assert!(keys.is_empty(), "nothing created: {keys:?}");
}
