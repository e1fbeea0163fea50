//! Lock metadata (`LOCK.ACQUIRE ... META value`; README "Leader election"):
//! a value of 0 to 1024 bytes stored with the holder, shown by `LOCK.INFO`,
//! replaced by a renewal or an extend that gives one, carried by a waiter
//! into its grant,
//! and replicated and persisted with the holder.

use baton_harness::lock::{acquire, expect_err, extend, info, release};
use baton_harness::{assert_eventually, wait_for_sync, RedisServer, Waiter};
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

fn acquire_meta(con: &mut redis::Connection, key: &[u8], token: &[u8], meta: &[u8]) -> Option<i64> {
    redis::cmd("LOCK.ACQUIRE")
        .arg(key)
        .arg(token)
        .arg(60_000)
        .arg("META")
        .arg(meta)
        .query(con)
        .unwrap()
}

fn meta_of(con: &mut redis::Connection, key: &[u8]) -> Option<Vec<u8>> {
    info(con, key).meta
}

#[test]
fn a_grant_stores_the_value_and_a_free_lock_shows_null() {
    let server = RedisServer::start();
    let mut con = server.connection();
    assert_eq!(meta_of(&mut con, b"k"), None, "free");
    acquire_meta(&mut con, b"k", b"t", b"10.0.0.7:8080").unwrap();
    assert_eq!(
        meta_of(&mut con, b"k").as_deref(),
        Some(&b"10.0.0.7:8080"[..])
    );
    // An empty value is a value, not "none".
    acquire_meta(&mut con, b"e", b"t", b"").unwrap();
    assert_eq!(meta_of(&mut con, b"e"), Some(Vec::new()));
    acquire(&mut con, b"plain", b"t", 60_000).unwrap();
    assert_eq!(meta_of(&mut con, b"plain"), None, "acquired without META");
    release(&mut con, b"k", b"t");
    assert_eq!(meta_of(&mut con, b"k"), None, "released");
}

#[test]
fn a_renewal_with_meta_replaces_it_and_one_without_keeps_it() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let f = acquire_meta(&mut con, b"k", b"t", b"one").unwrap();
    assert_eq!(acquire_meta(&mut con, b"k", b"t", b"two"), Some(f));
    assert_eq!(meta_of(&mut con, b"k").as_deref(), Some(&b"two"[..]));
    assert_eq!(acquire(&mut con, b"k", b"t", 60_000), Some(f));
    assert_eq!(extend(&mut con, b"k", b"t", 60_000), 1);
    assert_eq!(meta_of(&mut con, b"k").as_deref(), Some(&b"two"[..]));
    // Someone else's META changes nothing.
    assert_eq!(acquire_meta(&mut con, b"k", b"intruder", b"mine"), None);
    assert_eq!(meta_of(&mut con, b"k").as_deref(), Some(&b"two"[..]));
}

fn extend_meta(con: &mut redis::Connection, key: &[u8], token: &[u8], meta: &[u8]) -> i64 {
    redis::cmd("LOCK.EXTEND")
        .arg(key)
        .arg(token)
        .arg(60_000)
        .arg("META")
        .arg(meta)
        .query(con)
        .unwrap()
}

/// `LOCK.EXTEND ... META v` replaces the holder's value under its fence
/// (what a leader's `proclaim` sends), reaches a replica, and is never a
/// grant: a token that does not hold the lock gets 0, also on a free lock.
#[test]
fn an_extend_with_meta_replaces_the_value_under_the_same_fence() {
    let primary = RedisServer::start();
    let replica = RedisServer::builder().replica_of(&primary).start();
    wait_for_sync(&primary, &replica);
    let mut con = primary.connection();
    let f = acquire_meta(&mut con, b"k", b"t", b"one").unwrap();
    assert_eq!(extend_meta(&mut con, b"k", b"t", b"two"), 1);
    let i = info(&mut con, b"k");
    assert_eq!((i.fence, i.meta.as_deref()), (f, Some(&b"two"[..])));
    assert_eq!(extend_meta(&mut con, b"k", b"intruder", b"mine"), 0);
    assert_eq!(meta_of(&mut con, b"k").as_deref(), Some(&b"two"[..]));
    assert_eq!(extend_meta(&mut con, b"free", b"t", b"v"), 0);
    assert!(!info(&mut con, b"free").held, "an extend never grants");
    wait_for_sync(&primary, &replica);
    let i = info(&mut replica.connection(), b"k");
    assert_eq!((i.fence, i.meta.as_deref()), (f, Some(&b"two"[..])));
}

#[test]
fn a_waiter_carries_its_value_into_the_grant() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire_meta(&mut con, b"k", b"first", b"first's").unwrap();
    let mut cmd = redis::cmd("LOCK.ACQUIRE");
    cmd.arg("k")
        .arg("second")
        .arg(60_000)
        .arg("META")
        .arg("second's")
        .arg("WAIT")
        .arg(10_000);
    let waiter = Waiter::start_cmd(&server, cmd);
    assert_eventually(5 * SECOND, "the waiter is queued", || {
        info(&mut con, b"k").waiters == 1
    });
    assert_eq!(meta_of(&mut con, b"k").as_deref(), Some(&b"first's"[..]));
    release(&mut con, b"k", b"first");
    let fence = waiter.fence().expect("granted");
    let i = info(&mut con, b"k");
    assert_eq!(
        (i.fence, i.meta.as_deref()),
        (fence, Some(&b"second's"[..]))
    );
}

#[test]
fn a_bad_value_is_refused_and_changes_nothing() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire_meta(&mut con, b"k", b"t", b"kept").unwrap();
    let long = vec![b'x'; 1025];
    for args in [
        &[&b"LOCK.ACQUIRE"[..], b"k", b"t", b"1000", b"META", &long][..],
        &[b"LOCK.ACQUIRE", b"new", b"t", b"1000", b"META", &long],
        &[b"LOCK.ACQUIRE", b"new", b"t", b"1000", b"META"],
        &[
            b"LOCK.ACQUIRE",
            b"new",
            b"t",
            b"1000",
            b"META",
            b"a",
            b"META",
            b"b",
        ],
        &[b"LOCK.EXTEND", b"k", b"t", b"1000", b"META", &long],
        &[b"LOCK.EXTEND", b"k", b"t", b"1000", b"META"],
    ] {
        let e = expect_err(&mut con, args);
        assert!(e.contains("META"), "the error names META: {e}");
    }
    assert_eq!(meta_of(&mut con, b"k").as_deref(), Some(&b"kept"[..]));
    assert!(!info(&mut con, b"new").held);
    let max = vec![b'y'; 1024];
    acquire_meta(&mut con, b"new", b"t", &max).unwrap();
    assert_eq!(meta_of(&mut con, b"new"), Some(max));
}

#[test]
fn the_value_reaches_a_replica_and_survives_reloads_and_aof_restarts() {
    let mut primary = RedisServer::builder().aof(true).start();
    let replica = RedisServer::builder().replica_of(&primary).start();
    wait_for_sync(&primary, &replica);
    let mut p = primary.connection();
    acquire_meta(&mut p, b"k", b"t", b"v1").unwrap();
    acquire_meta(&mut p, b"k", b"t", b"v2").unwrap();
    let mut waiter_cmd = redis::cmd("LOCK.ACQUIRE");
    waiter_cmd
        .arg("k")
        .arg("w")
        .arg(60_000)
        .arg("META")
        .arg("w's")
        .arg("WAIT")
        .arg(10_000);
    let waiter = Waiter::start_cmd(&primary, waiter_cmd);
    assert_eventually(5 * SECOND, "the waiter is queued", || {
        info(&mut p, b"k").waiters == 1
    });
    wait_for_sync(&primary, &replica);
    let mut r = replica.connection();
    assert_eq!(meta_of(&mut r, b"k").as_deref(), Some(&b"v2"[..]));
    release(&mut p, b"k", b"t");
    waiter.fence().expect("granted");
    wait_for_sync(&primary, &replica);
    assert_eq!(
        meta_of(&mut r, b"k").as_deref(),
        Some(&b"w's"[..]),
        "hand-off"
    );

    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut p).unwrap();
    assert_eq!(meta_of(&mut p, b"k").as_deref(), Some(&b"w's"[..]), "RDB");
    drop((p, r));
    primary.crash_restart();
    let mut p = primary.connection();
    assert_eq!(meta_of(&mut p, b"k").as_deref(), Some(&b"w's"[..]), "AOF");
    // Without the RDB preamble the rewrite is the module's own commands.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("aof-use-rdb-preamble")
        .arg("no")
        .query(&mut p)
        .unwrap();
    let _: () = redis::cmd("BGREWRITEAOF").query(&mut p).unwrap();
    assert_eventually(10 * SECOND, "the AOF rewrite ends", || {
        let info: String = redis::cmd("INFO").arg("persistence").query(&mut p).unwrap();
        info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0")
    });
    drop(p);
    primary.crash_restart();
    let mut p = primary.connection();
    assert_eq!(
        meta_of(&mut p, b"k").as_deref(),
        Some(&b"w's"[..]),
        "rewritten AOF"
    );
}
