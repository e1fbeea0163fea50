//! Keyspace events (SPEC §7): with `notify-keyspace-events` enabling module
//! events (`d`), every grant, release, expiry and force release of a lock or
//! a semaphore fires `lock.*` / `sem.*` on its key, in order.

use std::time::Duration;

use baton_harness::lock::{acquire, force_release, release, sem_acquire, sem_release};
use baton_harness::RedisServer;

/// The next `n` key events of db 0 as (event, key), within 5 s.
fn events(pubsub: &mut redis::PubSub<'_>, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|_| {
            let msg = pubsub.get_message().expect("a keyspace event in time");
            let channel = msg.get_channel_name().to_owned();
            let event = channel.trim_start_matches("__keyevent@0__:").to_owned();
            (event, msg.get_payload::<String>().unwrap())
        })
        .collect()
}

#[test]
fn grants_releases_expiries_and_force_releases_fire_keyspace_events() {
    let server = RedisServer::builder()
        .config("notify-keyspace-events", "Ed")
        .start();
    let mut sub = server.connection();
    let mut pubsub = sub.as_pubsub();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    pubsub.psubscribe("__keyevent@0__:*").unwrap();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"a", 10_000).unwrap();
    release(&mut con, b"k", b"a");
    acquire(&mut con, b"k", b"b", 100).unwrap();
    // The expiry comes by itself; then a force release of a new holder.
    let seen = events(&mut pubsub, 4);
    acquire(&mut con, b"k", b"c", 10_000).unwrap();
    force_release(&mut con, b"k");
    sem_acquire(&mut con, b"s", b"x", 10_000, 1, 2).unwrap();
    sem_release(&mut con, b"s", b"x");
    let more = events(&mut pubsub, 4);
    let names: Vec<&str> = seen.iter().chain(&more).map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "lock.grant",
            "lock.release",
            "lock.grant",
            "lock.expire",
            "lock.grant",
            "lock.forcerelease",
            "sem.grant",
            "sem.release"
        ]
    );
    assert!(seen.iter().all(|(_, key)| key == "k"));
    assert_eq!(more[2].1, "s");
}
