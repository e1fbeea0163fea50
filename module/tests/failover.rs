//! Failover, at the protocol level (SPEC §9 "Failover"): a grant that the
//! replicas acknowledged (`WAIT`, which the client's durable acquire runs)
//! survives every way a replica is promoted (Sentinel after SIGKILL or
//! SIGSTOP of the primary, `FAILOVER`, `CLUSTER FAILOVER [FORCE|TAKEOVER]`,
//! a Cluster primary killed): the new primary has the holder with its fence
//! and expiry, grants it to nobody else until it expires, and issues only
//! larger fences. The client's side (following the promotion) is tested in
//! the client's own suite.

use std::time::Duration;

use baton_harness::lock::{acquire, err_text, exists, expect_err, info};
use baton_harness::replication::info_field;
use baton_harness::{assert_eventually, RedisCluster, RedisServer, SentinelGroup, Waiter};

const SECOND: Duration = Duration::from_secs(1);

/// `LOCK.ACQUIRE` then `WAIT replicas 5000` on the same connection: the
/// grant's fence once `replicas` replicas have it.
fn durable_acquire(server: &RedisServer, key: &[u8], token: &[u8], ttl: u64, replicas: i64) -> i64 {
    let mut con = server.connection();
    let fence = acquire(&mut con, key, token, ttl).expect("free lock granted");
    let acked: i64 = redis::cmd("WAIT")
        .arg(replicas)
        .arg(5_000)
        .query(&mut con)
        .unwrap();
    assert!(
        acked >= replicas,
        "{acked} of {replicas} replicas acknowledged"
    );
    fence
}

/// The new primary has the acknowledged holder and refuses everyone else.
#[track_caller]
fn assert_kept(new_primary: &RedisServer, key: &[u8], fence: i64) {
    let mut con = new_primary.connection();
    let kept = info(&mut con, key);
    assert!(kept.held && kept.fence == fence, "after failover: {kept:?}");
    assert_eq!(acquire(&mut con, key, b"intruder", 1_000), None);
    assert_eq!(
        acquire(&mut con, key, b"holder", 60_000),
        Some(fence),
        "the holder's retry renews on the new primary"
    );
    let next = acquire(&mut con, b"fresh", b"t", 1_000).unwrap();
    assert!(
        next > fence,
        "fence {next} after failover, {fence} was issued before"
    );
}

#[test]
fn sentinel_failover_after_sigkill_keeps_acknowledged_grants() {
    let mut group = SentinelGroup::start(2);
    let old = group.primary_index();
    let fence = durable_acquire(&group.servers()[old], b"k", b"holder", 60_000, 2);
    let old_port = group.servers()[old].port();
    group.servers_mut()[old].kill();
    let new = group.wait_for_new_primary(old_port);
    assert_kept(&group.servers()[new], b"k", fence);
}

#[test]
fn sentinel_failover_of_a_frozen_primary_demotes_it_and_unblocks_its_waiters() {
    let group = SentinelGroup::start(1);
    let old = group.primary_index();
    let fence = durable_acquire(&group.servers()[old], b"k", b"holder", 60_000, 1);
    let waiter = Waiter::queued(&group.servers()[old], b"k", b"waiter", 60_000, 30_000);
    let old_port = group.servers()[old].port();
    group.servers()[old].freeze();
    let new = group.wait_for_new_primary(old_port);
    assert_kept(&group.servers()[new], b"k", fence);
    group.servers()[old].resume();
    // The Sentinels turn the old primary into a replica of the new one and
    // kill its clients: the waiter is unblocked (or its connection closed),
    // never granted, never left hanging.
    let (reply, _) = waiter.join();
    match reply {
        Err(e) if err_text(&e).starts_with("UNBLOCKED") || e.is_io_error() => {}
        other => panic!("the old primary's waiter got {other:?}"),
    }
    let demoted = &group.servers()[old];
    assert_eventually(30 * SECOND, "the old primary becomes a replica", || {
        info_field(demoted, "replication", "role").as_deref() == Some("slave")
    });
    let refused = expect_err(
        &mut demoted.connection(),
        &[b"LOCK.ACQUIRE", b"k2", b"t", b"1000"],
    );
    assert!(refused.starts_with("READONLY"), "{refused}");
}

#[test]
fn failover_command_hands_over_held_locks_that_expire_on_the_new_primary() {
    let primary = RedisServer::start();
    let replica = RedisServer::builder().replica_of(&primary).start();
    baton_harness::wait_for_sync(&primary, &replica);
    let long = durable_acquire(&primary, b"long", b"holder", 60_000, 1);
    durable_acquire(&primary, b"short", b"holder", 1_500, 1);
    let _: () = redis::cmd("FAILOVER")
        .query(&mut primary.connection())
        .unwrap();
    assert_eventually(15 * SECOND, "the replica is promoted", || {
        info_field(&replica, "replication", "role").as_deref() == Some("master")
    });
    assert_kept(&replica, b"long", long);
    let mut con = replica.connection();
    assert_eventually(
        10 * SECOND,
        "the new primary expires the short lock",
        || !exists(&mut con, b"short"),
    );
}

/// A cluster of one primary with one replica, a durable lock on it, and the
/// replica promoted by `CLUSTER FAILOVER <how>` sent to it.
fn cluster_failover(how: Option<&str>) {
    let mut cluster = RedisCluster::start(1);
    cluster.add_replica(0);
    let (primary, replica) = (&cluster.nodes()[0], &cluster.replicas()[0]);
    let fence = durable_acquire(primary, b"k", b"holder", 60_000, 1);
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("FAILOVER");
    if let Some(how) = how {
        cmd.arg(how);
    }
    let _: () = cmd.query(&mut replica.connection()).unwrap();
    assert_eventually(20 * SECOND, "the replica takes over", || {
        info_field(replica, "replication", "role").as_deref() == Some("master")
    });
    assert_kept(replica, b"k", fence);
    // The old primary follows the new one and refuses writes with MOVED.
    let mut old = primary.connection();
    assert_eventually(20 * SECOND, "the old primary redirects", || {
        let reply: redis::RedisResult<Option<i64>> = redis::cmd("LOCK.ACQUIRE")
            .arg("k")
            .arg("t")
            .arg(1000)
            .query(&mut old);
        matches!(reply, Err(e) if err_text(&e).starts_with("MOVED"))
    });
}

#[test]
fn cluster_failover_keeps_acknowledged_grants() {
    cluster_failover(None);
}

#[test]
fn cluster_failover_force_keeps_acknowledged_grants() {
    cluster_failover(Some("FORCE"));
}

#[test]
fn cluster_failover_takeover_keeps_acknowledged_grants() {
    cluster_failover(Some("TAKEOVER"));
}
