//! Expiry (SPEC §2 "Expiry"; DESIGN "Expiry"): a holder loses the lock within
//! a few ms of its expiry without any command on the key, the next waiter is
//! granted, and mass expiry does not stall the server.
//!
//! Checks that must not run module code on the key use `EXISTS`, `DBSIZE` and
//! `LOCK.STATS`, so a lazy expiry on access cannot make them pass.

use std::time::{Duration, Instant};

use baton_harness::lock::{acquire, exists, extend, info, release, stats};
use baton_harness::{assert_eventually, wait_until, RedisServer, Waiter};

#[test]
fn a_lock_expires_without_any_command_on_its_key() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let before = stats(&mut con);
    let start = Instant::now();
    acquire(&mut con, b"k", b"t1", 100).unwrap();
    let gone = wait_until(Duration::from_millis(150), || !exists(&mut con, b"k"));
    let elapsed = start.elapsed();
    assert!(gone, "a 100 ms lock still exists after {elapsed:?}");
    assert!(
        elapsed >= Duration::from_millis(95),
        "expired early, after {elapsed:?}"
    );
    let after = stats(&mut con);
    assert_eq!(after["expirations"], before["expirations"] + 1);
    assert_eq!(after["held"], 0);
    assert_eq!(after["locks"], 0);
    // The expired holder can no longer release or extend.
    assert_eq!(release(&mut con, b"k", b"t1"), 0);
    assert_eq!(extend(&mut con, b"k", b"t1", 1_000), 0);
}

#[test]
fn expiry_hands_the_lock_to_the_waiter_without_any_command() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let f0 = acquire(&mut con, b"k", b"holder", 300).unwrap();
    let start = Instant::now();
    let w = Waiter::start(&server, b"k", b"waiter", 30_000, 10_000);
    let (reply, _) = w.join();
    let elapsed = start.elapsed();
    let f = reply
        .expect("no error")
        .expect("the waiter is granted on expiry");
    assert!(f > f0);
    assert!(
        elapsed >= Duration::from_millis(250),
        "granted after {elapsed:?}, before the 300 ms ttl"
    );
    assert!(
        elapsed < Duration::from_millis(400),
        "granted {elapsed:?} after a 300 ms ttl"
    );
    let i = info(&mut con, b"k");
    assert_eq!(i.fence, f);
    assert_eq!(
        release(&mut con, b"k", b"holder"),
        0,
        "the expired holder lost it"
    );
}

#[test]
fn extend_pushes_expiry_out() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let start = Instant::now();
    acquire(&mut con, b"k", b"t1", 150).unwrap();
    assert_eq!(extend(&mut con, b"k", b"t1", 400), 1);
    // Past the first ttl it is still there...
    assert!(
        !wait_until(Duration::from_millis(250), || !exists(&mut con, b"k")),
        "expired on the old ttl"
    );
    // ...and it goes on the new one.
    assert_eventually(Duration::from_millis(250), "expiry after EXTEND", || {
        !exists(&mut con, b"k")
    });
    assert!(start.elapsed() >= Duration::from_millis(395));
}

#[test]
fn reacquire_pushes_expiry_out() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"t1", 150).unwrap();
    acquire(&mut con, b"k", b"t1", 400).unwrap();
    assert!(
        !wait_until(Duration::from_millis(250), || !exists(&mut con, b"k")),
        "expired on the old ttl"
    );
}

#[test]
fn a_reply_never_shows_an_expired_holder() {
    // The grant happened on the server before its reply reached us, so once
    // our own clock is past reply + ttl the lock has expired on the server
    // too; LOCK.INFO must then say so at once (lazy check on access).
    let server = RedisServer::start();
    let mut con = server.connection();
    for round in 0..5 {
        acquire(&mut con, b"k", b"t1", 30).unwrap();
        let expired_at = Instant::now() + Duration::from_millis(31);
        while Instant::now() < expired_at {
            let i = info(&mut con, b"k");
            assert!(!i.held || i.pttl >= 0, "held with negative pttl: {i:?}");
        }
        let i = info(&mut con, b"k");
        assert!(!i.held, "round {round}: expired holder shown: {i:?}");
        assert!(
            acquire(&mut con, b"k", b"t2", 30).is_some(),
            "round {round}"
        );
        release(&mut con, b"k", b"t2");
    }
}

#[test]
fn many_locks_expire_together_without_stalling_the_server() {
    const N: usize = 50_000;
    let server = RedisServer::start();
    let mut con = server.connection();
    let mut pipe = redis::pipe();
    for i in 0..N {
        pipe.cmd("LOCK.ACQUIRE")
            .arg(format!("k{i}"))
            .arg("t")
            .arg(1_000)
            .ignore();
    }
    let _: () = pipe.query(&mut con).unwrap();
    assert_eq!(stats(&mut con)["grants"], N as i64);
    // Freeze the server past every deadline, so all N fall due at once when
    // it resumes.
    server.freeze();
    std::thread::sleep(Duration::from_millis(1_200));
    server.resume();
    // Ping through the mass expiry and keep the slowest round trip.
    let mut worst = Duration::ZERO;
    let done = wait_until(Duration::from_secs(10), || {
        let t = Instant::now();
        let _: String = redis::cmd("PING").query(&mut con).unwrap();
        worst = worst.max(t.elapsed());
        redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap() == 0
    });
    assert!(done, "{N} locks did not all expire");
    let s = stats(&mut con);
    eprintln!("mass expiry of {N}: slowest PING {worst:?}, stats {s:?}");
    assert_eq!(s["expirations"], N as i64, "every expiry is counted: {s:?}");
    assert_eq!(s["held"], 0);
    assert_eq!(s["locks"], 0);
    // Batches of ~1 ms. The same server with 50k locks and nothing to
    // expire answers every PING within a few ms after a freeze; 30 ms leaves
    // room for a loaded 2-core CI machine and still catches a pass that does
    // not yield.
    assert!(
        worst < Duration::from_millis(30),
        "a PING waited {worst:?} during mass expiry"
    );
}
