//! Eviction (SPEC §9 "Eviction"; DESIGN "Operators and the keyspace"): under
//! a `maxmemory` policy that evicts any key, a held lock never silently turns
//! into a double grant. Redis cannot exempt a key from eviction, so the
//! module keeps an evicted lock's holder until its expiry: reads still show
//! it held, nobody else is granted it, and the next LOCK command on the key
//! puts it back (and propagates it).
//!
//! Before, another client was granted the evicted lock at once.

use std::time::Duration;

use baton_harness::lock::{acquire, exists, extend, info};
use baton_harness::replication::info_field;
use baton_harness::{assert_eventually, wait_for_sync, RedisServer};

/// Fills the server with 1 KiB strings under `maxmemory` with
/// `allkeys-random` until `key` is evicted, then lifts the limit so nothing
/// else is evicted while the test looks.
fn evict(server: &RedisServer, key: &[u8]) {
    let mut con = server.connection();
    let used: u64 = info_field(server, "memory", "used_memory")
        .and_then(|v| v.parse().ok())
        .expect("used_memory");
    let config = |con: &mut redis::Connection, name: &str, value: &str| {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query(con)
            .unwrap();
    };
    config(&mut con, "maxmemory-policy", "allkeys-random");
    config(&mut con, "maxmemory", &(used + (2 << 20)).to_string());
    let filler = vec![b'x'; 1024];
    let mut i = 0u64;
    assert_eventually(Duration::from_secs(30), "the lock is evicted", || {
        for _ in 0..100 {
            let _: () = redis::cmd("SET")
                .arg(format!("filler:{i}"))
                .arg(&filler)
                .query(&mut con)
                .unwrap();
            i += 1;
        }
        !exists(&mut con, key)
    });
    config(&mut con, "maxmemory", "0");
    let evicted: u64 = info_field(server, "stats", "evicted_keys")
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(evicted > 0);
}

#[test]
fn an_evicted_lock_stays_held_by_its_holder() {
    let primary = RedisServer::start();
    let replica = RedisServer::builder().replica_of(&primary).start();
    wait_for_sync(&primary, &replica);
    let mut con = primary.connection();
    let fence = acquire(&mut con, b"k", b"holder", 60_000).unwrap();
    evict(&primary, b"k");

    let seen = info(&mut con, b"k");
    assert!(seen.held && seen.fence == fence, "{seen:?}");
    assert_eq!(
        acquire(&mut con, b"k", b"intruder", 10_000),
        None,
        "an evicted lock was granted to another client"
    );
    assert_eq!(extend(&mut con, b"k", b"holder", 60_000), 1);
    assert!(exists(&mut con, b"k"), "the lock is back in the keyspace");
    assert_eq!(info(&mut con, b"k").fence, fence);
    wait_for_sync(&primary, &replica);
    let on_replica = info(&mut replica.connection(), b"k");
    assert!(
        on_replica.held && on_replica.fence == fence,
        "{on_replica:?}"
    );
}

#[test]
fn an_evicted_lock_frees_at_its_holders_expiry() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let fence = acquire(&mut con, b"k", b"holder", 2_000).unwrap();
    evict(&server, b"k");
    assert_eq!(acquire(&mut con, b"k", b"next", 10_000), None);
    assert_eventually(
        Duration::from_secs(10),
        "the lock is free after its ttl",
        || !info(&mut con, b"k").held,
    );
    assert!(acquire(&mut con, b"k", b"next", 10_000).unwrap() > fence);
    assert_eq!(
        extend(&mut con, b"k", b"holder", 1_000),
        0,
        "the loss is reported"
    );
}

#[test]
fn an_evicted_semaphore_keeps_its_leases() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let lease = |con: &mut redis::Connection, token: &[u8]| {
        baton_harness::lock::sem_acquire(con, b"s", token, 60_000, 1, 2)
    };
    let fence = lease(&mut con, b"a").unwrap();
    let last = lease(&mut con, b"b").unwrap();
    evict(&server, b"s");
    let seen = baton_harness::lock::sem_info(&mut con, b"s");
    assert_eq!((seen["used"], seen["fence"]), (2, last), "read as it was");
    assert_eq!(lease(&mut con, b"intruder"), None, "no permit is free");
    assert_eq!(
        lease(&mut con, b"a"),
        Some(fence),
        "a's lease is back, renewed"
    );
    assert!(exists(&mut con, b"s"));
}
