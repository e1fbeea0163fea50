//! Replication (SPEC §2 "Replication", "Fencing"; DESIGN "Replication and
//! AOF", "Waiting"): effects reach replicas as deterministic commands, the
//! primary drives expiry, replicas refuse writes, and a promoted replica
//! never reuses a fence.

use std::time::Duration;

use baton_harness::lock::{
    acquire, err_text, exists, expect_err, extend, force_release, info, release,
};
use baton_harness::{assert_eventually, promote, wait_for_sync, RedisServer, Waiter};

fn pair() -> (RedisServer, RedisServer) {
    let primary = RedisServer::start();
    let replica = RedisServer::builder().replica_of(&primary).start();
    wait_for_sync(&primary, &replica);
    (primary, replica)
}

#[test]
fn a_grant_reaches_the_replica_with_its_fence_and_absolute_expiry() {
    let (primary, replica) = pair();
    let mut p = primary.connection();
    let f = acquire(&mut p, b"k", b"t", 60_000).unwrap();
    wait_for_sync(&primary, &replica);
    let mut r = replica.connection();
    let on_replica = info(&mut r, b"k");
    let on_primary = info(&mut p, b"k");
    assert!(on_replica.held, "{on_replica:?}");
    assert_eq!(on_replica.fence, f);
    assert_eq!(baton_harness::lock::fence(&mut r, b"k"), f);
    assert!(
        (on_replica.pttl - on_primary.pttl).abs() < 1_000,
        "replica pttl {} vs primary {}",
        on_replica.pttl,
        on_primary.pttl
    );
}

#[test]
fn extend_and_renewal_reach_the_replica() {
    let (primary, replica) = pair();
    let mut p = primary.connection();
    acquire(&mut p, b"k", b"t", 5_000).unwrap();
    extend(&mut p, b"k", b"t", 60_000);
    wait_for_sync(&primary, &replica);
    assert!(info(&mut replica.connection(), b"k").pttl > 55_000);
    acquire(&mut p, b"k", b"t", 20_000).unwrap();
    wait_for_sync(&primary, &replica);
    let pttl = info(&mut replica.connection(), b"k").pttl;
    assert!(
        pttl > 15_000 && pttl <= 20_000,
        "replica pttl {pttl} after renewal to 20000"
    );
}

#[test]
fn release_forcerelease_and_expiry_remove_the_key_on_the_replica() {
    let (primary, replica) = pair();
    let mut p = primary.connection();
    acquire(&mut p, b"a", b"t", 60_000).unwrap();
    acquire(&mut p, b"b", b"t", 60_000).unwrap();
    acquire(&mut p, b"c", b"t", 1_000).unwrap();
    let granted = std::time::Instant::now();
    wait_for_sync(&primary, &replica);
    let mut r = replica.connection();
    let present: Vec<bool> = [b"a", b"b", b"c"]
        .iter()
        .map(|k| exists(&mut r, *k))
        .collect();
    assert_eq!(
        present,
        [true; 3],
        "a, b, c on the replica {:?} after the grant of c",
        granted.elapsed()
    );
    release(&mut p, b"a", b"t");
    force_release(&mut p, b"b");
    wait_for_sync(&primary, &replica);
    assert!(!exists(&mut r, b"a"), "release did not reach the replica");
    assert!(
        !exists(&mut r, b"b"),
        "FORCERELEASE did not reach the replica"
    );
    assert_eventually(
        Duration::from_secs(3),
        "the expiry reaches the replica",
        || !exists(&mut r, b"c"),
    );
}

#[test]
fn a_hand_off_reaches_the_replica() {
    let (primary, replica) = pair();
    let mut p = primary.connection();
    acquire(&mut p, b"k", b"holder", 60_000).unwrap();
    let w = Waiter::start(&primary, b"k", b"waiter", 60_000, 10_000);
    assert_eventually(Duration::from_secs(5), "queued", || {
        info(&mut p, b"k").waiters == 1
    });
    release(&mut p, b"k", b"holder");
    let f = w.fence().unwrap();
    wait_for_sync(&primary, &replica);
    let i = info(&mut replica.connection(), b"k");
    assert!(i.held && i.fence == f, "replica after hand-off: {i:?}");
    // Waiters are not replicated.
    assert_eq!(i.waiters, 0);
}

#[test]
fn writes_on_a_replica_are_readonly_and_reads_work() {
    let (primary, replica) = pair();
    let mut p = primary.connection();
    let f = acquire(&mut p, b"k", b"t", 60_000).unwrap();
    wait_for_sync(&primary, &replica);
    let mut r = replica.connection();
    let readonly = "READONLY You can't write against a read only replica.";
    let writes: &[&[&[u8]]] = &[
        &[b"LOCK.ACQUIRE", b"free", b"t", b"1000"],
        &[b"LOCK.ACQUIRE", b"k", b"t", b"1000"],
        &[b"LOCK.ACQUIRE", b"free", b"t", b"1000", b"WAIT", b"100"],
        &[b"LOCK.RELEASE", b"k", b"t"],
        &[b"LOCK.EXTEND", b"k", b"t", b"1000"],
        &[b"LOCK.FORCERELEASE", b"k"],
    ];
    for args in writes {
        assert_eq!(
            expect_err(&mut r, args),
            readonly,
            "{}",
            baton_harness::lock::show(args)
        );
    }
    assert!(!exists(&mut r, b"free"));
    assert_eq!(baton_harness::lock::fence(&mut r, b"k"), f);
    assert!(info(&mut r, b"k").held);
    let _ = baton_harness::lock::stats(&mut r);
    // The primary's lock is untouched by those attempts.
    let i = info(&mut p, b"k");
    assert!(i.held && i.fence == f && i.pttl > 50_000);
}

#[test]
fn lock_apply_from_a_client_is_refused_on_primary_and_replica() {
    let (primary, replica) = pair();
    for server in [&primary, &replica] {
        let mut con = server.connection();
        let e = expect_err(
            &mut con,
            &[b"LOCK.APPLY", b"k", b"t", b"5", b"99999999999999"],
        );
        assert!(
            e == "ERR LOCK.APPLY is internal: accepted only from replication and AOF loading"
                || (server.port() == replica.port() && e.starts_with("READONLY")),
            "port {}: {e}",
            server.port()
        );
        assert!(!exists(&mut con, b"k"));
    }
}

#[test]
fn a_promoted_replica_issues_fences_above_every_fence_it_saw() {
    let (primary, replica) = pair();
    let mut p = primary.connection();
    let mut last = 0;
    for i in 0..5 {
        let key = format!("k{i}");
        last = acquire(&mut p, key.as_bytes(), b"t", 60_000).unwrap();
        // Freed keys too: the counter must not depend on keys still held.
        if i % 2 == 0 {
            release(&mut p, key.as_bytes(), b"t");
        }
    }
    wait_for_sync(&primary, &replica);
    drop(primary);
    promote(&replica);
    let mut r = replica.connection();
    let f = acquire(&mut r, b"new", b"t", 1_000).unwrap();
    assert!(
        f > last,
        "promoted replica issued {f}, primary had issued up to {last}"
    );
    // Locks held at failover stay held with their fences.
    assert!(info(&mut r, b"k1").held);
    assert_eq!(acquire(&mut r, b"k1", b"other", 1_000), None);
}

#[test]
fn a_promoted_replica_expires_the_locks_it_inherited() {
    let (primary, replica) = pair();
    let mut p = primary.connection();
    acquire(&mut p, b"k", b"t", 500).unwrap();
    wait_for_sync(&primary, &replica);
    drop(primary);
    promote(&replica);
    let mut r = replica.connection();
    // EXISTS runs no module code: only the rebuilt schedule can remove it.
    assert_eventually(
        Duration::from_secs(3),
        "the new primary expires the lock",
        || !exists(&mut r, b"k"),
    );
    assert_eq!(baton_harness::lock::stats(&mut r)["held"], 0);
}

#[test]
fn a_replica_that_syncs_late_gets_the_counter_from_the_rdb() {
    let primary = RedisServer::start();
    let mut p = primary.connection();
    let mut last = 0;
    for i in 0..5 {
        let key = format!("k{i}");
        last = acquire(&mut p, key.as_bytes(), b"t", 60_000).unwrap();
        release(&mut p, key.as_bytes(), b"t");
    }
    // Full sync: the replica learns the counter from the RDB's aux data only.
    let replica = RedisServer::builder().replica_of(&primary).start();
    wait_for_sync(&primary, &replica);
    promote(&replica);
    let f = acquire(&mut replica.connection(), b"new", b"t", 1_000).unwrap();
    assert!(
        f > last,
        "promoted replica issued {f}, primary had issued up to {last}"
    );
}

#[test]
fn a_replica_shows_an_overdue_holder_as_not_held_but_keeps_it() {
    let (primary, replica) = pair();
    let mut p = primary.connection();
    // Long enough that a loaded machine still sees it held after the sync.
    acquire(&mut p, b"k", b"t", 3_000).unwrap();
    wait_for_sync(&primary, &replica);
    // Freeze the primary so it cannot send the DEL.
    primary.freeze();
    let mut r = replica.connection();
    let before = info(&mut r, b"k");
    if !before.held {
        primary.resume();
        panic!("the replica did not show the lock held before its expiry: {before:?}");
    }
    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_eventually(
            Duration::from_secs(6),
            "the replica reports the overdue lock free",
            || {
                let i = info(&mut r, b"k");
                !i.held && i.pttl == -1
            },
        );
        assert!(exists(&mut r, b"k"), "the replica deleted the key itself");
    }));
    primary.resume();
    checked.unwrap();
    assert_eventually(Duration::from_secs(3), "the primary's DEL arrives", || {
        !exists(&mut r, b"k")
    });
}

#[test]
fn a_primary_turned_replica_unblocks_its_waiters() {
    let primary = RedisServer::start();
    let other = RedisServer::start();
    let mut p = primary.connection();
    acquire(&mut p, b"k", b"holder", 60_000).unwrap();
    let w = Waiter::start(&primary, b"k", b"waiter", 60_000, 20_000);
    assert_eventually(Duration::from_secs(5), "queued", || {
        info(&mut p, b"k").waiters == 1
    });
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(other.port())
        .query(&mut p)
        .unwrap();
    let (reply, elapsed) = w.join();
    let err = reply.expect_err("a waiter on a demoted primary must not be granted or left hanging");
    assert!(
        err_text(&err).starts_with("UNBLOCKED"),
        "got {}",
        err_text(&err)
    );
    assert!(elapsed < Duration::from_secs(10));
}

#[test]
fn a_writable_replica_refuses_every_lock_write() {
    // `replica-read-only no` lets plain writes through; lock writes must not:
    // a replica would grant from its own counter and never expire.
    let primary = RedisServer::start();
    let replica = RedisServer::builder()
        .replica_of(&primary)
        .config("replica-read-only", "no")
        .start();
    wait_for_sync(&primary, &replica);
    let mut p = primary.connection();
    acquire(&mut p, b"held", b"t", 60_000).unwrap();
    wait_for_sync(&primary, &replica);
    let mut r = replica.connection();
    let _: () = redis::cmd("SET")
        .arg("plain")
        .arg("v")
        .query(&mut r)
        .unwrap();
    for args in [
        &[&b"LOCK.ACQUIRE"[..], b"free", b"t", b"1000"][..],
        &[b"LOCK.ACQUIRE", b"held", b"t", b"1000"],
        &[b"LOCK.ACQUIRE", b"held", b"u", b"1000", b"WAIT", b"100"],
        &[b"LOCK.EXTEND", b"held", b"t", b"1000"],
        &[b"LOCK.RELEASE", b"held", b"t"],
        &[b"LOCK.FORCERELEASE", b"held"],
    ] {
        let e = expect_err(&mut r, args);
        assert!(e.starts_with("READONLY"), "{e}");
    }
    assert!(!exists(&mut r, b"free"));
    assert!(info(&mut r, b"held").held);
    assert_eq!(baton_harness::lock::stats(&mut r)["waiters"], 0);
}
