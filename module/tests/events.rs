//! Keyspace events (SPEC §7): with `notify-keyspace-events` enabling module
//! events (`d`), every grant, release, expiry and force release of a lock or
//! a semaphore fires `lock.*` / `sem.*` on its key, in order (a hand-off
//! is a grant); without it, none is shown.

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

#[test]
fn semaphore_expiries_force_releases_and_hand_offs_fire_sem_events() {
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
    sem_acquire(&mut con, b"s", b"a", 200, 1, 1).unwrap();
    // The expiry comes by itself.
    let first = events(&mut pubsub, 2);
    sem_acquire(&mut con, b"s", b"b", 30_000, 1, 1).unwrap();
    let w = baton_harness::Waiter::queued_sem(&server, b"s", b"w", 1, 1, 20_000);
    let one: i64 = redis::cmd("SEM.FORCERELEASE")
        .arg("s")
        .arg("b")
        .query(&mut con)
        .unwrap();
    assert_eq!(one, 1);
    w.fence().expect("the force release hands on to w");
    let all: i64 = redis::cmd("SEM.FORCERELEASE")
        .arg("s")
        .query(&mut con)
        .unwrap();
    assert_eq!(all, 1);
    let more = events(&mut pubsub, 4);
    let names: Vec<&str> = first.iter().chain(&more).map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "sem.grant",
            "sem.expire",
            "sem.grant",
            "sem.forcerelease",
            "sem.grant",
            "sem.forcerelease"
        ]
    );
    assert!(first.iter().chain(&more).all(|(_, key)| key == "s"));
}

/// Without `d` (module events) in `notify-keyspace-events`, none of the
/// lock or semaphore events is published, while the classes that are
/// enabled still are.
#[test]
fn no_event_is_shown_unless_notify_keyspace_events_enables_module_events() {
    let server = RedisServer::builder()
        .config("notify-keyspace-events", "E$")
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
    acquire(&mut con, b"k", b"b", 10_000).unwrap();
    force_release(&mut con, b"k");
    sem_acquire(&mut con, b"s", b"x", 10_000, 1, 2).unwrap();
    sem_release(&mut con, b"s", b"x");
    sem_acquire(&mut con, b"s", b"y", 100, 1, 2).unwrap();
    baton_harness::assert_eventually(Duration::from_secs(5), "the lease expires", || {
        !baton_harness::lock::exists(&mut con, b"s")
    });
    // A string event is the marker: everything before it was published
    // first, and there must be nothing of ours before it.
    let _: () = redis::cmd("SET")
        .arg("marker")
        .arg("v")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        events(&mut pubsub, 1),
        [("set".to_owned(), "marker".to_owned())]
    );
    // With the module class enabled at run time, they are shown.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("Ed$")
        .query(&mut con)
        .unwrap();
    sem_acquire(&mut con, b"s", b"z", 10_000, 1, 2).unwrap();
    assert_eq!(
        events(&mut pubsub, 1),
        [("sem.grant".to_owned(), "s".to_owned())]
    );
}

/// A hand-off fires the end of the old holder before the grant to the new
/// one, so that a watcher that keeps the last event per key knows the key
/// is held: release, expiry and force release of a lock with a waiter.
#[test]
fn a_hand_off_fires_the_end_before_the_grant() {
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
    let w = baton_harness::Waiter::queued(&server, b"k", b"b", 1_000, 20_000);
    release(&mut con, b"k", b"a");
    w.fence().expect("the release hands on");
    // b's ttl is 1 s: it expires and hands on to c.
    let c = baton_harness::Waiter::queued(&server, b"k", b"c", 10_000, 20_000);
    c.fence().expect("the expiry hands on");
    let d = baton_harness::Waiter::queued(&server, b"k", b"d", 10_000, 20_000);
    force_release(&mut con, b"k");
    d.fence().expect("the force release hands on");
    let names: Vec<String> = events(&mut pubsub, 7).into_iter().map(|(e, _)| e).collect();
    assert_eq!(
        names,
        [
            "lock.grant",
            "lock.release",
            "lock.grant",
            "lock.expire",
            "lock.grant",
            "lock.forcerelease",
            "lock.grant"
        ]
    );
}
