//! Signals and `baton lock`: SIGINT, SIGTERM and SIGHUP sent to baton reach
//! CMD and the lock is released; a killed baton leaves the lock to expire by
//! its ttl; a signal while waiting leaves the queue.

mod common;

use rustix::process::Signal;

use baton_harness::{lock, wait_until, RedisServer};
use common::*;

/// Each forwarded signal reaches CMD's trap, CMD's exit status comes back,
/// and the lock is released at once (the ttl is 30 s).
#[test]
fn signals_to_baton_reach_cmd_and_the_lock_is_released() {
    let server = RedisServer::start();
    let (_dir, path) = scratch();
    for (i, (sig, name)) in [
        (Signal::TERM, "TERM"),
        (Signal::INT, "INT"),
        (Signal::HUP, "HUP"),
    ]
    .into_iter()
    .enumerate()
    {
        let (ready, got) = (path(&format!("ready{i}")), path(&format!("got{i}")));
        let status = 10 + i as i32;
        let script = format!(
            "trap 'echo {name} >> {got}; exit {status}' {name}; echo > {ready}; \
             while :; do sleep 0.05; done",
            got = got.display(),
            ready = ready.display(),
        );
        let child = spawn(&server.url(), &["lock", "k", "--", "sh", "-c", &script]);
        await_file(&ready);
        signal(child.id(), sig);
        let out = finish(child);
        assert_eq!(code(out.status), status, "SIG{name}: {}", show(&out));
        assert_eq!(std::fs::read_to_string(&got).unwrap(), format!("{name}\n"));
        let now = info(&server, "k");
        assert!(
            !now.held,
            "SIG{name}: released, not left to expire: {now:?}"
        );
    }
    let stats = lock::stats(&mut server.connection());
    assert_eq!(
        (stats["releases"], stats["expirations"]),
        (3, 0),
        "{stats:?}"
    );
}

/// SIGKILL to baton: nobody releases, so the lock stays held until its ttl
/// runs out (an expiration, not a release); CMD is told with SIGTERM.
#[test]
fn a_killed_baton_leaves_the_lock_to_expire_by_its_ttl() {
    let server = RedisServer::start();
    let (_dir, path) = scratch();
    let (ready, term) = (path("ready"), path("term"));
    let script = format!(
        "trap 'echo term >> {term}; exit 0' TERM; echo > {ready}; while :; do sleep 0.05; done",
        term = term.display(),
        ready = ready.display(),
    );
    let child = spawn(
        &server.url(),
        &["lock", "k", "--ttl", "1s", "--", "sh", "-c", &script],
    );
    await_file(&ready);
    let held = await_info(&server, "k", "held", |i| i.held);
    signal(child.id(), Signal::KILL);
    let out = finish(child);
    assert_eq!(out.status.code(), None, "killed: {}", show(&out));
    assert_eq!(
        await_file(&term),
        "term\n",
        "CMD got SIGTERM when baton died"
    );
    let now = info(&server, "k");
    assert!(
        now.held && now.fence == held.fence,
        "still held right after: {now:?}"
    );
    await_info(&server, "k", "the lock to expire", |i| !i.held);
    // The module's expiry timer counts it within a few ms of the deadline.
    let mut con = server.connection();
    let mut stats = lock::stats(&mut con);
    wait_until(PATIENCE, || {
        stats = lock::stats(&mut con);
        stats["expirations"] == 1
    });
    assert_eq!(
        (stats["expirations"], stats["releases"]),
        (1, 0),
        "{stats:?}"
    );
}

/// SIGINT while waiting in the queue: baton leaves the queue and exits
/// 130 without running CMD.
#[test]
fn a_signal_while_waiting_leaves_the_queue() {
    let server = RedisServer::start();
    lock::acquire(&mut server.connection(), b"k", b"other", 30_000).unwrap();
    let (_dir, path) = scratch();
    let ran = path("ran");
    let child = spawn(
        &server.url(),
        &["lock", "k", "--", "touch", ran.to_str().unwrap()],
    );
    await_info(&server, "k", "a waiter", |i| i.waiters == 1);
    signal(child.id(), Signal::INT);
    let out = finish(child);
    assert_eq!(code(out.status), 128 + 2, "{}", show(&out));
    await_info(&server, "k", "the queue to empty", |i| i.waiters == 0);
    assert!(!ran.exists(), "CMD must not run");
    lock::release(&mut server.connection(), b"k", b"other");
    assert!(
        !info(&server, "k").held,
        "nobody got the lock after the holder"
    );
}
