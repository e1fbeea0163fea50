//! A semaphore's waiters (SPEC §6 "disconnect and timeout of waiters,
//! MULTI/Lua behaviour: as in section 2"): a waiter whose connection closes
//! leaves the queue and is never granted, and the request behind it that
//! now fits is granted; a waiter that times out gets null and leaves the
//! queue; inside MULTI/EXEC and Lua scripts WAIT acts as WAIT 0; the same
//! token may wait at most once per key.

use std::time::{Duration, Instant};

use baton_harness::lock::{err_text, expect_err, sem_acquire, sem_info, sem_release, stats};
use baton_harness::{assert_eventually, RedisServer, Waiter};

const SECOND: Duration = Duration::from_secs(1);

fn kill(con: &mut redis::Connection, w: &Waiter) {
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(w.client_id())
        .query(con)
        .unwrap();
    assert_eq!(killed, 1);
}

#[test]
fn a_disconnected_waiter_leaves_the_queue_and_is_never_granted() {
    let server = RedisServer::start();
    let mut con = server.connection();
    sem_acquire(&mut con, b"s", b"holder", 30_000, 1, 2).unwrap();
    let big = Waiter::queued_sem(&server, b"s", b"big", 2, 2, 20_000);
    let small = Waiter::queued_sem(&server, b"s", b"small", 1, 2, 20_000);
    kill(&mut con, &big);
    let _ = big.join();
    // Its leaving lets the small request through at once: it fits.
    let f = small.fence().expect("granted once big left");
    let i = sem_info(&mut con, b"s");
    assert_eq!((i["used"], i["holders"], i["waiters"]), (2, 2, 0));
    assert_eq!(sem_release(&mut con, b"s", b"big"), 0, "big holds nothing");
    // A disconnected waiter at the head when permits free up: skipped.
    let ghost = Waiter::queued_sem(&server, b"s", b"ghost", 1, 2, 20_000);
    let next = Waiter::queued_sem(&server, b"s", b"next", 1, 2, 20_000);
    // Kill only once the server counts it (queued_sem waited): then block
    // on the kill being seen.
    kill(&mut con, &ghost);
    let _ = ghost.join();
    assert_eventually(5 * SECOND, "the ghost left the queue", || {
        sem_info(&mut con, b"s")["waiters"] == 1
    });
    assert_eq!(sem_release(&mut con, b"s", b"small"), 1);
    let nf = next.fence().expect("next, not the ghost");
    assert!(nf > f);
    assert_eq!(
        sem_release(&mut con, b"s", b"ghost"),
        0,
        "the ghost holds nothing"
    );
    assert_eq!(stats(&mut con)["waiters"], 0);
}

#[test]
fn a_waiter_that_times_out_gets_null_and_leaves_the_queue() {
    let server = RedisServer::start();
    let mut con = server.connection();
    sem_acquire(&mut con, b"s", b"holder", 30_000, 1, 1).unwrap();
    let w = Waiter::queued_sem(&server, b"s", b"w", 1, 1, 200);
    let (reply, waited) = w.join();
    assert_eq!(reply.unwrap(), None);
    assert!(waited >= Duration::from_millis(150), "waited {waited:?}");
    assert_eq!(sem_info(&mut con, b"s")["waiters"], 0);
    assert_eq!(stats(&mut con)["waiters"], 0);
    assert_eq!(sem_release(&mut con, b"s", b"holder"), 1);
    assert!(
        !baton_harness::lock::exists(&mut con, b"s"),
        "the timed-out request was not granted"
    );
}

#[test]
fn wait_inside_multi_exec_acts_as_wait_0() {
    let server = RedisServer::start();
    let mut con = server.connection();
    sem_acquire(&mut con, b"s", b"holder", 30_000, 1, 1).unwrap();
    let start = Instant::now();
    let (busy, free): (Option<i64>, Option<i64>) = redis::pipe()
        .atomic()
        .cmd("SEM.ACQUIRE")
        .arg("s")
        .arg("t")
        .arg(30_000)
        .arg("LIMIT")
        .arg(1)
        .arg("WAIT")
        .arg(5_000)
        .cmd("SEM.ACQUIRE")
        .arg("free")
        .arg("t")
        .arg(30_000)
        .arg("LIMIT")
        .arg(1)
        .arg("WAIT")
        .arg(5_000)
        .query(&mut con)
        .unwrap();
    assert!(
        start.elapsed() < SECOND,
        "EXEC blocked for {:?}",
        start.elapsed()
    );
    assert_eq!(busy, None, "a full semaphore inside EXEC replies null");
    assert!(free.is_some(), "a free one is granted");
    assert_eq!(sem_info(&mut con, b"s")["waiters"], 0, "nothing queued");
}

#[test]
fn wait_inside_a_lua_script_acts_as_wait_0() {
    let server = RedisServer::start();
    let mut con = server.connection();
    sem_acquire(&mut con, b"s", b"holder", 30_000, 1, 1).unwrap();
    let script =
        "return redis.call('SEM.ACQUIRE', KEYS[1], 't', '30000', 'LIMIT', '1', 'WAIT', '5000')";
    let start = Instant::now();
    let busy: Option<i64> = redis::cmd("EVAL")
        .arg(script)
        .arg(1)
        .arg("s")
        .query(&mut con)
        .unwrap();
    assert_eq!(busy, None);
    assert!(
        start.elapsed() < SECOND,
        "EVAL blocked for {:?}",
        start.elapsed()
    );
    assert_eq!(sem_info(&mut con, b"s")["waiters"], 0);
    let free: Option<i64> = redis::cmd("EVAL")
        .arg(script)
        .arg(1)
        .arg("free")
        .query(&mut con)
        .unwrap();
    assert!(free.is_some());
}

#[test]
fn the_same_token_may_wait_only_once_per_key() {
    let server = RedisServer::start();
    let mut con = server.connection();
    sem_acquire(&mut con, b"s", b"holder", 30_000, 1, 1).unwrap();
    let w = Waiter::queued_sem(&server, b"s", b"dup", 1, 1, 20_000);
    let want = "ERR token is already waiting for this lock";
    for args in [
        &[
            &b"SEM.ACQUIRE"[..],
            b"s",
            b"dup",
            b"1000",
            b"LIMIT",
            b"1",
            b"WAIT",
            b"1000",
        ][..],
        &[b"SEM.ACQUIRE", b"s", b"dup", b"1000", b"LIMIT", b"1"],
    ] {
        assert_eq!(expect_err(&mut con, args), want);
    }
    assert_eq!(
        sem_info(&mut con, b"s")["waiters"],
        1,
        "the error queued nothing"
    );
    assert!(
        sem_acquire(&mut con, b"other", b"dup", 1_000, 1, 1).is_some(),
        "another key is another wait"
    );
    sem_release(&mut con, b"s", b"holder");
    assert!(w.fence().is_some(), "the first wait still stands");
    let reply = redis::cmd("SEM.ACQUIRE")
        .arg("s")
        .arg("dup")
        .arg(1_000)
        .arg("LIMIT")
        .arg(1)
        .query::<Option<i64>>(&mut con)
        .map_err(|e| err_text(&e));
    assert!(
        matches!(reply, Ok(Some(_))),
        "holding, it renews: {reply:?}"
    );
}
