//! What an operator does to a lock key (SPEC §9 "RENAME / MOVE / SWAPDB /
//! DEL / FLUSHALL / RESTORE / UNLINK"; DESIGN "Operators and the keyspace"):
//! waiters of a key that is renamed, moved, swapped, deleted, overwritten or
//! flushed are answered at once with an `UNBLOCKED` error and hold nothing; a
//! grant reaches only the waiter it was made for; a held lock that moves
//! keeps its holder under its new name and still expires; COPY is refused.

use std::time::Duration;

use baton_harness::lock::{acquire, exists, info, release, stats};
use baton_harness::{assert_eventually, RedisServer, Waiter};

const SECOND: Duration = Duration::from_secs(1);

/// Asserts that `w` was answered with the key-removed error, long before its
/// own (20 s) timeout.
#[track_caller]
fn assert_dismissed(w: Waiter) {
    let (reply, elapsed) = w.join();
    let text = reply.map_err(|e| baton_harness::err_text(&e));
    assert!(
        matches!(&text, Err(e) if e.starts_with("UNBLOCKED ") && e.contains("while waiting")),
        "expected the key-removed error, got {text:?}"
    );
    assert!(elapsed < 10 * SECOND, "answered only after {elapsed:?}");
}

fn select(con: &mut redis::Connection, db: i64) {
    let _: () = redis::cmd("SELECT").arg(db).query(con).unwrap();
}

#[test]
fn rename_answers_the_waiters_and_leaves_no_ghost_in_the_queue() {
    // The reproduction: the ghost of a waiter renamed away was later
    // granted the lock, and its grant reached a client waiting elsewhere.
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"a", b"t1", 30_000).unwrap();
    acquire(&mut con, b"c", b"t3", 30_000).unwrap();
    let ghost = Waiter::queued(&server, b"a", b"t2", 30_000, 20_000);
    let bystander = Waiter::queued(&server, b"c", b"t4", 30_000, 20_000);
    let _: () = redis::cmd("RENAME")
        .arg("a")
        .arg("b")
        .query(&mut con)
        .unwrap();
    assert_dismissed(ghost);

    let b = info(&mut con, b"b");
    assert!(b.held, "the holder moved with the lock");
    assert_eq!(b.waiters, 0, "no ghost waiter in the renamed lock");
    assert_eq!(stats(&mut con)["waiters"], 1, "only the bystander waits");
    assert_eq!(release(&mut con, b"b", b"t1"), 1);
    assert!(!exists(&mut con, b"b"), "the release handed b to a ghost");
    assert!(
        !bystander.is_finished(),
        "the bystander on c got a reply it was not owed"
    );
    assert_eq!(info(&mut con, b"c").waiters, 1);
    assert_eq!(release(&mut con, b"c", b"t3"), 1);
    assert!(bystander.fence().is_some(), "c passes to its own waiter");
}

#[test]
fn a_renamed_lock_keeps_its_holder_and_expires_under_its_new_name() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let fence = acquire(&mut con, b"a", b"t", 400).unwrap();
    let _: () = redis::cmd("RENAME")
        .arg("a")
        .arg("b")
        .query(&mut con)
        .unwrap();
    assert_eq!(info(&mut con, b"b").fence, fence);
    assert_eq!(
        release(&mut con, b"a", b"t"),
        0,
        "the old name holds nothing"
    );
    assert_eventually(5 * SECOND, "the renamed lock expires", || {
        !exists(&mut con, b"b")
    });
    assert!(acquire(&mut con, b"b", b"u", 1_000).unwrap() > fence);
}

#[test]
fn rename_onto_a_lock_with_waiters_answers_the_waiters_of_both() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"a", b"ta", 30_000).unwrap();
    acquire(&mut con, b"b", b"tb", 30_000).unwrap();
    let wa = Waiter::queued(&server, b"a", b"wa", 30_000, 20_000);
    let wb = Waiter::queued(&server, b"b", b"wb", 30_000, 20_000);
    let _: () = redis::cmd("RENAME")
        .arg("a")
        .arg("b")
        .query(&mut con)
        .unwrap();
    assert_dismissed(wa);
    assert_dismissed(wb);
    assert_eq!(stats(&mut con)["waiters"], 0);
}

#[test]
fn move_answers_the_waiters_and_the_lock_expires_in_its_new_database() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let fence = acquire(&mut con, b"k", b"t", 500).unwrap();
    let w = Waiter::queued(&server, b"k", b"w", 30_000, 20_000);
    let moved: i64 = redis::cmd("MOVE").arg("k").arg(1).query(&mut con).unwrap();
    assert_eq!(moved, 1);
    assert_dismissed(w);
    assert!(!exists(&mut con, b"k"));
    select(&mut con, 1);
    let moved = info(&mut con, b"k");
    assert!(moved.held && moved.waiters == 0 && moved.fence == fence);
    assert_eventually(5 * SECOND, "the moved lock expires", || {
        !exists(&mut con, b"k")
    });
}

#[test]
fn swapdb_answers_the_waiters_of_both_databases() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let fence = acquire(&mut con, b"k", b"t", 500).unwrap();
    let w0 = Waiter::queued(&server, b"k", b"w0", 30_000, 20_000);
    let mut other = server.connection();
    select(&mut other, 2);
    acquire(&mut other, b"j", b"t", 30_000).unwrap();
    // A waiter in db 2: `Waiter` connections start in db 0, so block by hand.
    let mut waiting = server.connection();
    select(&mut waiting, 2);
    let w2 = std::thread::spawn(move || {
        baton_harness::lock::try_acquire_wait(&mut waiting, b"j", b"w2", 30_000, 20_000)
    });
    assert_eventually(5 * SECOND, "both waiters queued", || {
        stats(&mut con)["waiters"] == 2
    });
    let _: () = redis::cmd("SWAPDB").arg(0).arg(2).query(&mut con).unwrap();
    assert_dismissed(w0);
    let reply = w2.join().unwrap().map_err(|e| baton_harness::err_text(&e));
    assert!(
        matches!(&reply, Err(e) if e.starts_with("UNBLOCKED ")),
        "{reply:?}"
    );
    assert_eq!(stats(&mut con)["waiters"], 0);
    // The lock of db 0 now lives in db 2, with its holder, and still expires.
    assert!(info(&mut other, b"k").held && info(&mut other, b"k").fence == fence);
    assert!(info(&mut con, b"j").held);
    assert_eventually(5 * SECOND, "the swapped lock expires", || {
        !exists(&mut other, b"k")
    });
}

#[test]
fn flushdb_answers_the_waiters_of_its_database_and_flushall_the_rest() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"t", 30_000).unwrap();
    let w0 = Waiter::queued(&server, b"k", b"w0", 30_000, 20_000);
    let mut db1 = server.connection();
    select(&mut db1, 1);
    acquire(&mut db1, b"k", b"t", 30_000).unwrap();
    let mut waiting = server.connection();
    select(&mut waiting, 1);
    let w1 = std::thread::spawn(move || {
        baton_harness::lock::try_acquire_wait(&mut waiting, b"k", b"w1", 30_000, 20_000)
    });
    assert_eventually(5 * SECOND, "both waiters queued", || {
        stats(&mut con)["waiters"] == 2
    });
    let _: () = redis::cmd("FLUSHDB").query(&mut con).unwrap();
    assert_dismissed(w0);
    assert_eq!(info(&mut db1, b"k").waiters, 1, "db 1 was not flushed");
    let _: () = redis::cmd("FLUSHALL").arg("ASYNC").query(&mut con).unwrap();
    let reply = w1.join().unwrap().map_err(|e| baton_harness::err_text(&e));
    assert!(
        matches!(&reply, Err(e) if e.starts_with("UNBLOCKED ")),
        "{reply:?}"
    );
    // ASYNC frees the values on a background thread: the gauges follow.
    assert_eventually(5 * SECOND, "no lock, holder or waiter is counted", || {
        let s = stats(&mut con);
        (s["waiters"], s["held"], s["locks"]) == (0, 0, 0)
    });
}

#[test]
fn unlink_overwrite_restore_and_a_redis_ttl_answer_the_waiters() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let dump: Vec<u8> = {
        acquire(&mut con, b"src", b"t", 60_000).unwrap();
        redis::cmd("DUMP").arg("src").query(&mut con).unwrap()
    };
    let removals: [&dyn Fn(&mut redis::Connection); 4] = [
        &|con| {
            let _: i64 = redis::cmd("UNLINK").arg("k").query(con).unwrap();
        },
        &|con| {
            let _: () = redis::cmd("SET").arg("k").arg("v").query(con).unwrap();
        },
        &|con| {
            let _: () = redis::cmd("RESTORE")
                .arg("k")
                .arg(0)
                .arg(&dump)
                .arg("REPLACE")
                .query(con)
                .unwrap();
        },
        &|con| {
            let _: i64 = redis::cmd("PEXPIRE").arg("k").arg(1).query(con).unwrap();
        },
    ];
    for remove in removals {
        let _: i64 = redis::cmd("DEL").arg("k").query(&mut con).unwrap();
        acquire(&mut con, b"k", b"holder", 30_000).unwrap();
        let w = Waiter::queued(&server, b"k", b"w", 30_000, 20_000);
        remove(&mut con);
        // A Redis TTL removes the key when it is next looked at, or by
        // Redis' own active expiry.
        let _: i64 = redis::cmd("EXISTS").arg("k").query(&mut con).unwrap();
        assert_dismissed(w);
        assert_eq!(stats(&mut con)["waiters"], 0);
    }
}

#[test]
fn copy_of_a_lock_is_refused() {
    // Two keys held by one token would be two locks granted once.
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"a", b"t", 30_000).unwrap();
    let copied: redis::RedisResult<i64> = redis::cmd("COPY").arg("a").arg("b").query(&mut con);
    assert!(copied.is_err(), "COPY of a lock: {copied:?}");
    assert!(!exists(&mut con, b"b"));
    assert!(info(&mut con, b"a").held);
}

#[test]
fn debug_reload_answers_the_waiters_and_keeps_the_holder() {
    // DEBUG RELOAD empties the keyspace (a flush) and loads it back.
    let server = RedisServer::builder().rdb(true).start();
    let mut con = server.connection();
    let fence = acquire(&mut con, b"k", b"holder", 60_000).unwrap();
    let w = Waiter::queued(&server, b"k", b"w", 30_000, 20_000);
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut con).unwrap();
    assert_dismissed(w);
    let reloaded = info(&mut con, b"k");
    assert!(reloaded.held && reloaded.fence == fence && reloaded.waiters == 0);
    assert_eq!(stats(&mut con)["waiters"], 0);
}

#[test]
fn move_and_copy_to_another_database_leave_the_client_on_its_own() {
    // Valkey 8.1 switches the client to the destination database when a
    // module subscribes to generic keyspace events (valkey-io/valkey#4024):
    // the module must not make that happen.
    let server = RedisServer::start();
    let mut con = server.connection();
    let _: () = redis::cmd("SET")
        .arg("marker")
        .arg("db0")
        .query(&mut con)
        .unwrap();
    acquire(&mut con, b"lock", b"t", 30_000).unwrap();
    let _: () = redis::cmd("SET")
        .arg("plain")
        .arg("v")
        .query(&mut con)
        .unwrap();
    let _: i64 = redis::cmd("MOVE")
        .arg("lock")
        .arg(1)
        .query(&mut con)
        .unwrap();
    let _: i64 = redis::cmd("COPY")
        .arg("plain")
        .arg("plain")
        .arg("DB")
        .arg(2)
        .query(&mut con)
        .unwrap();
    let _: i64 = redis::cmd("MOVE")
        .arg("plain")
        .arg(3)
        .query(&mut con)
        .unwrap();
    let marker: Option<String> = redis::cmd("GET").arg("marker").query(&mut con).unwrap();
    assert_eq!(marker.as_deref(), Some("db0"), "the client left database 0");
}
