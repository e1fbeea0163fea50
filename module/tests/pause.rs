//! CLIENT PAUSE and failover (SPEC §9 "CLIENT PAUSE and FAILOVER"; DESIGN
//! "Operators and the keyspace"): while writes are paused the module expires
//! nothing, hands nothing off and propagates nothing, and catches up when the
//! pause ends; `FAILOVER` and `CLUSTER FAILOVER` with expiring locks leave
//! both servers alive.
//!
//! Before, the expiry timer propagated during the pause and Redis ended on
//! `ASSERTION FAILED ... areClientsPaused()`.

use std::time::{Duration, Instant};

use baton_harness::lock::{acquire, exists, stats};
use baton_harness::replication::info_field;
use baton_harness::{assert_eventually, wait_for_sync, RedisCluster, RedisServer, Waiter};

const SECOND: Duration = Duration::from_secs(1);

/// Lets time pass until `deadline`. What these tests need is a lock's
/// expiry falling due during a pause: time itself is the condition.
fn let_time_pass_until(deadline: Instant) {
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
}

#[track_caller]
fn assert_alive(server: &RedisServer) {
    let pong: redis::RedisResult<String> = redis::cmd("PING").query(&mut server.connection());
    assert_eq!(
        pong.as_deref().ok(),
        Some("PONG"),
        "server {} died:\n{}",
        server.port(),
        server.log_tail()
    );
}

#[test]
fn a_write_pause_holds_back_expiry_and_hand_off_until_it_ends() {
    let primary = RedisServer::builder().aof(true).start();
    let replica = RedisServer::builder().replica_of(&primary).start();
    wait_for_sync(&primary, &replica);
    let mut con = primary.connection();
    acquire(&mut con, b"k", b"holder", 1_000).unwrap();
    let due = Instant::now() + SECOND;
    let w = Waiter::queued(&primary, b"k", b"waiter", 30_000, 20_000);
    wait_for_sync(&primary, &replica);
    assert!(exists(&mut replica.connection(), b"k"));
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(20_000)
        .arg("WRITE")
        .query(&mut con)
        .unwrap();
    let_time_pass_until(due + Duration::from_millis(500));

    assert_alive(&primary);
    assert!(exists(&mut con, b"k"), "the lock expired during the pause");
    assert_eq!(stats(&mut con)["expirations"], 0);
    assert!(
        !w.is_finished(),
        "the waiter was handed the lock during the pause"
    );
    assert!(
        exists(&mut replica.connection(), b"k"),
        "a DEL reached the replica during the pause"
    );

    let _: () = redis::cmd("CLIENT").arg("UNPAUSE").query(&mut con).unwrap();
    assert!(
        w.fence().is_some(),
        "the waiter is granted once writes resume"
    );
    assert_eq!(stats(&mut con)["expirations"], 1);
    assert_alive(&primary);
}

#[test]
fn a_full_pause_with_expiring_locks_leaves_the_server_alive_and_catches_up() {
    let server = RedisServer::builder().aof(true).start();
    let mut con = server.connection();
    for i in 0..50 {
        acquire(&mut con, format!("k{i}").as_bytes(), b"t", 100 + i * 5).unwrap();
    }
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(800)
        .arg("ALL")
        .query(&mut con)
        .unwrap();
    // Every command waits for the pause to end; this one then finds the
    // server alive and the locks expiring again.
    assert_alive(&server);
    assert_eventually(5 * SECOND, "every lock expired after the pause", || {
        stats(&mut con)["locks"] == 0
    });
}

/// 300 locks with ttls spread over the next second.
fn expiring_locks(server: &RedisServer) {
    let mut con = server.connection();
    for i in 0..300u64 {
        let ttl = 20 + (i * 37) % 1_000;
        acquire(&mut con, format!("lock:{i}").as_bytes(), b"t", ttl).unwrap();
    }
}

fn role(server: &RedisServer) -> Option<String> {
    info_field(server, "replication", "role")
}

#[test]
fn failover_with_expiring_locks_leaves_both_servers_alive() {
    let primary = RedisServer::builder().aof(true).start();
    let replica = RedisServer::builder().replica_of(&primary).start();
    wait_for_sync(&primary, &replica);
    expiring_locks(&primary);
    let _: () = redis::cmd("FAILOVER")
        .arg("TIMEOUT")
        .arg(5_000)
        .query(&mut primary.connection())
        .unwrap();
    assert_eventually(15 * SECOND, "the replica is promoted", || {
        role(&replica).as_deref() == Some("master")
    });
    assert_alive(&primary);
    assert_alive(&replica);
    assert_eq!(role(&primary).as_deref(), Some("slave"));
    assert_eventually(5 * SECOND, "the new primary expires every lock", || {
        stats(&mut replica.connection())["locks"] == 0
    });
    assert_alive(&primary);
}

#[test]
fn cluster_failover_with_expiring_locks_leaves_both_nodes_alive() {
    let mut cluster = RedisCluster::start(1);
    cluster.add_replica(0);
    let (primary, replica) = (&cluster.nodes()[0], &cluster.replicas()[0]);
    expiring_locks(primary);
    let _: () = redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .query(&mut replica.connection())
        .unwrap();
    assert_eventually(15 * SECOND, "the replica takes over", || {
        role(replica).as_deref() == Some("master")
    });
    assert_alive(primary);
    assert_alive(replica);
    assert_eventually(5 * SECOND, "the new primary expires every lock", || {
        stats(&mut replica.connection())["locks"] == 0
    });
    assert_alive(primary);
}

#[test]
fn a_write_pause_holds_back_lease_expiry_and_hand_off_until_it_ends() {
    let primary = RedisServer::builder().aof(true).start();
    let mut con = primary.connection();
    baton_harness::lock::sem_acquire(&mut con, b"s", b"a", 1_000, 1, 1).unwrap();
    let due = Instant::now() + SECOND;
    let w = Waiter::queued_sem(&primary, b"s", b"w", 1, 1, 20_000);
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(20_000)
        .arg("WRITE")
        .query(&mut con)
        .unwrap();
    let_time_pass_until(due + Duration::from_millis(500));
    assert_alive(&primary);
    assert!(
        !w.is_finished(),
        "the waiter got the lease during the pause"
    );
    assert!(exists(&mut con, b"s"));
    let _: () = redis::cmd("CLIENT").arg("UNPAUSE").query(&mut con).unwrap();
    assert!(
        w.fence().is_some(),
        "the waiter gets the lease once writes resume"
    );
    assert_alive(&primary);
}
