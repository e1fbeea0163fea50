//! Fencing (SPEC §2 "Fencing"; DESIGN "Fences"): fences only ever grow, across
//! release, expiry, FORCERELEASE, `DEL`, and across keys (one node-wide
//! counter). Restarts and failover are in `persistence.rs` and
//! `replication.rs`.

use std::time::Duration;

use baton_harness::lock::{acquire, exists, force_release, info, release};
use baton_harness::{assert_eventually, RedisServer};

#[test]
fn fences_strictly_increase_across_every_way_a_lock_ends() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let mut last = 0;
    let mut next = |con: &mut redis::Connection, token: &[u8], ttl: u64| {
        let f = acquire(con, b"k", token, ttl).expect("free lock granted");
        assert!(f > last, "fence {f} not above {last}");
        last = f;
    };
    next(&mut con, b"a", 10_000);
    release(&mut con, b"k", b"a");
    next(&mut con, b"b", 100);
    assert_eventually(Duration::from_secs(2), "expiry", || !exists(&mut con, b"k"));
    next(&mut con, b"c", 10_000);
    force_release(&mut con, b"k");
    next(&mut con, b"d", 10_000);
    let _: i64 = redis::cmd("DEL").arg("k").query(&mut con).unwrap();
    next(&mut con, b"e", 10_000);
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    next(&mut con, b"f", 10_000);
    // The same token again after a release is a new grant, with a new fence.
    release(&mut con, b"k", b"f");
    next(&mut con, b"f", 10_000);
}

#[test]
fn one_counter_numbers_grants_on_every_key() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let mut fences = Vec::new();
    for i in 0..20 {
        let key = format!("k{}", i % 3);
        let f = acquire(&mut con, key.as_bytes(), b"t", 10_000).unwrap();
        fences.push(f);
        release(&mut con, key.as_bytes(), b"t");
    }
    assert!(
        fences.windows(2).all(|w| w[1] > w[0]),
        "not increasing: {fences:?}"
    );
}

#[test]
fn renewals_and_extends_do_not_issue_fences() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let f1 = acquire(&mut con, b"k", b"t", 10_000).unwrap();
    acquire(&mut con, b"k", b"t", 10_000).unwrap();
    baton_harness::lock::extend(&mut con, b"k", b"t", 10_000);
    assert_eq!(info(&mut con, b"k").fence, f1);
    let f2 = acquire(&mut con, b"other", b"t", 10_000).unwrap();
    assert!(f2 > f1, "fence {f2} not above {f1}");
}

#[test]
fn fences_follow_the_clock_in_microseconds_and_stay_below_2_pow_53() {
    // SPEC §9 "Crash without AOF": fence = max(last + 1, unix µs), so a
    // restart that lost the counter still issues larger fences.
    let server = RedisServer::start();
    let mut con = server.connection();
    let unix_us = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64
    };
    let before = unix_us();
    let f = acquire(&mut con, b"k", b"t", 10_000).unwrap();
    let after = unix_us();
    assert!(
        (before..=after + 1).contains(&f),
        "fence {f} is not the clock reading between {before} and {after}"
    );
    assert!(f < 1 << 53);
}
