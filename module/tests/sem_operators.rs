//! What an operator does to a semaphore key (SPEC §6 "same key-as-state
//! rules", §9 "RENAME / MOVE / SWAPDB / DEL / FLUSHALL / RESTORE / UNLINK"):
//! the waiters of a semaphore that is moved, swapped, flushed, unlinked,
//! overwritten, restored over, given a Redis ttl or reloaded are answered
//! at once with an `UNBLOCKED` error and hold nothing; a semaphore that
//! moves keeps its leases under its new name or database and still
//! expires; COPY is refused; a restored semaphore raises the node's fence
//! floor.

use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use baton_harness::lock::{exists, sem_acquire, sem_info, stats};
use baton_harness::{assert_eventually, RedisServer, Waiter};

const SECOND: Duration = Duration::from_secs(1);

/// Asserts that `w` was answered with the key-removed error, long before
/// its own (20 s) timeout.
#[track_caller]
fn assert_dismissed(w: Waiter) {
    let (reply, elapsed) = w.join();
    assert_unblocked(reply, elapsed);
}

#[track_caller]
fn assert_unblocked(reply: redis::RedisResult<Option<i64>>, elapsed: Duration) {
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

/// A `SEM.ACQUIRE key token 30000 LIMIT 1 WAIT 20000` in database `db`, on
/// its own thread, once the server counts one more waiter.
fn wait_in_db(
    server: &RedisServer,
    db: i64,
    key: &'static str,
    token: &'static str,
) -> JoinHandle<(redis::RedisResult<Option<i64>>, Duration)> {
    let mut con = server.connection();
    let before = stats(&mut con)["waiters"];
    let mut waiting = server.connection();
    select(&mut waiting, db);
    let handle = thread::spawn(move || {
        let start = Instant::now();
        let reply = redis::cmd("SEM.ACQUIRE")
            .arg(key)
            .arg(token)
            .arg(30_000)
            .arg("LIMIT")
            .arg(1)
            .arg("WAIT")
            .arg(20_000)
            .query(&mut waiting);
        (reply, start.elapsed())
    });
    assert_eventually(5 * SECOND, "the request is queued", || {
        stats(&mut con)["waiters"] == before + 1
    });
    handle
}

#[test]
fn move_answers_the_waiters_and_the_semaphore_expires_in_its_new_database() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let f = sem_acquire(&mut con, b"s", b"a", 500, 1, 1).unwrap();
    let w = Waiter::queued_sem(&server, b"s", b"w", 1, 1, 20_000);
    let moved: i64 = redis::cmd("MOVE").arg("s").arg(1).query(&mut con).unwrap();
    assert_eq!(moved, 1);
    assert_dismissed(w);
    assert!(!exists(&mut con, b"s"));
    select(&mut con, 1);
    let i = sem_info(&mut con, b"s");
    assert_eq!((i["holders"], i["waiters"], i["fence"]), (1, 0, f));
    assert_eventually(5 * SECOND, "the moved semaphore expires", || {
        !exists(&mut con, b"s")
    });
}

#[test]
fn a_renamed_semaphore_keeps_its_leases_and_expires_under_its_new_name() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let f = sem_acquire(&mut con, b"s", b"a", 500, 2, 3).unwrap();
    let _: () = redis::cmd("RENAME")
        .arg("s")
        .arg("t")
        .query(&mut con)
        .unwrap();
    let i = sem_info(&mut con, b"t");
    assert_eq!((i["limit"], i["used"], i["fence"]), (3, 2, f));
    assert_eq!(
        baton_harness::lock::sem_release(&mut con, b"s", b"a"),
        0,
        "the old name holds nothing"
    );
    assert_eventually(5 * SECOND, "the renamed semaphore expires", || {
        !exists(&mut con, b"t")
    });
    assert!(sem_acquire(&mut con, b"t", b"b", 1_000, 3, 3).unwrap() > f);
}

#[test]
fn swapdb_answers_the_waiters_of_both_databases() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let f = sem_acquire(&mut con, b"s", b"a", 500, 1, 1).unwrap();
    let w0 = Waiter::queued_sem(&server, b"s", b"w0", 1, 1, 20_000);
    let mut other = server.connection();
    select(&mut other, 2);
    sem_acquire(&mut other, b"j", b"a", 30_000, 1, 1).unwrap();
    let w2 = wait_in_db(&server, 2, "j", "w2");
    let _: () = redis::cmd("SWAPDB").arg(0).arg(2).query(&mut con).unwrap();
    assert_dismissed(w0);
    let (reply, elapsed) = w2.join().unwrap();
    assert_unblocked(reply, elapsed);
    assert_eq!(stats(&mut con)["waiters"], 0);
    let i = sem_info(&mut other, b"s");
    assert_eq!(
        (i["holders"], i["fence"]),
        (1, f),
        "db 0's semaphore is in db 2"
    );
    assert_eq!(sem_info(&mut con, b"j")["holders"], 1);
    assert_eventually(5 * SECOND, "the swapped semaphore expires", || {
        !exists(&mut other, b"s")
    });
}

#[test]
fn flushdb_and_flushall_answer_the_waiters() {
    let server = RedisServer::start();
    let mut con = server.connection();
    sem_acquire(&mut con, b"s", b"a", 30_000, 1, 1).unwrap();
    let w0 = Waiter::queued_sem(&server, b"s", b"w0", 1, 1, 20_000);
    let mut db1 = server.connection();
    select(&mut db1, 1);
    sem_acquire(&mut db1, b"s", b"a", 30_000, 1, 1).unwrap();
    let w1 = wait_in_db(&server, 1, "s", "w1");
    let _: () = redis::cmd("FLUSHDB").query(&mut con).unwrap();
    assert_dismissed(w0);
    assert_eq!(
        sem_info(&mut db1, b"s")["waiters"],
        1,
        "db 1 was not flushed"
    );
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    let (reply, elapsed) = w1.join().unwrap();
    assert_unblocked(reply, elapsed);
    assert_eq!(stats(&mut con)["waiters"], 0);
    assert!(!exists(&mut db1, b"s"));
}

#[test]
fn unlink_overwrite_restore_and_a_redis_ttl_answer_the_waiters() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let dump: Vec<u8> = {
        sem_acquire(&mut con, b"src", b"x", 60_000, 1, 1).unwrap();
        redis::cmd("DUMP").arg("src").query(&mut con).unwrap()
    };
    let removals: [&dyn Fn(&mut redis::Connection); 5] = [
        &|con| {
            let _: i64 = redis::cmd("UNLINK").arg("s").query(con).unwrap();
        },
        &|con| {
            let _: i64 = redis::cmd("DEL").arg("s").query(con).unwrap();
        },
        &|con| {
            let _: () = redis::cmd("SET").arg("s").arg("v").query(con).unwrap();
        },
        &|con| {
            let _: () = redis::cmd("RESTORE")
                .arg("s")
                .arg(0)
                .arg(&dump)
                .arg("REPLACE")
                .query(con)
                .unwrap();
        },
        &|con| {
            let _: i64 = redis::cmd("PEXPIRE").arg("s").arg(1).query(con).unwrap();
        },
    ];
    for remove in removals {
        let _: i64 = redis::cmd("DEL").arg("s").query(&mut con).unwrap();
        sem_acquire(&mut con, b"s", b"holder", 30_000, 1, 1).unwrap();
        let w = Waiter::queued_sem(&server, b"s", b"w", 1, 1, 20_000);
        remove(&mut con);
        let _: i64 = redis::cmd("EXISTS").arg("s").query(&mut con).unwrap();
        assert_dismissed(w);
        assert_eq!(stats(&mut con)["waiters"], 0);
    }
}

#[test]
fn copy_of_a_semaphore_is_refused() {
    // Two keys with one lease would be permits granted twice.
    let server = RedisServer::start();
    let mut con = server.connection();
    sem_acquire(&mut con, b"s", b"a", 30_000, 1, 1).unwrap();
    for db in [None, Some(1)] {
        let mut cmd = redis::cmd("COPY");
        cmd.arg("s").arg("c");
        if let Some(db) = db {
            cmd.arg("DB").arg(db);
        }
        let copied: redis::RedisResult<i64> = cmd.query(&mut con);
        assert!(copied.is_err(), "COPY of a semaphore: {copied:?}");
    }
    assert!(!exists(&mut con, b"c"));
    assert_eq!(sem_info(&mut con, b"s")["holders"], 1);
}

#[test]
fn debug_reload_answers_the_waiters_and_keeps_the_leases() {
    let server = RedisServer::builder().rdb(true).start();
    let mut con = server.connection();
    let f = sem_acquire(&mut con, b"s", b"a", 60_000, 2, 2).unwrap();
    let w = Waiter::queued_sem(&server, b"s", b"w", 1, 2, 20_000);
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut con).unwrap();
    assert_dismissed(w);
    let i = sem_info(&mut con, b"s");
    assert_eq!(
        (i["used"], i["holders"], i["waiters"], i["fence"]),
        (2, 1, 0, f)
    );
    assert_eq!(stats(&mut con)["waiters"], 0);
}

/// A semaphore payload of encoding version 1 (the first, which later
/// modules still load) in the format of `dump` (a DUMP of a semaphore):
/// limit, one lease (token, permits, fence, expiry).
fn sem_payload(
    dump: &[u8],
    limit: u64,
    token: &[u8],
    permits: u64,
    fence: u64,
    expires_at: u64,
) -> Vec<u8> {
    use baton_harness::dump::{push_len, DumpFormat, OPCODE_EOF, OPCODE_STRING, OPCODE_UINT};
    let format = DumpFormat::of(dump);
    let mut body = dump[..10].to_vec();
    // The module id's low 10 bits are the encoding version: 1.
    body[8] &= !0x03;
    body[9] = 1;
    for n in [limit, 1] {
        body.push(OPCODE_UINT);
        push_len(&mut body, n);
    }
    body.push(OPCODE_STRING);
    push_len(&mut body, token.len() as u64);
    body.extend_from_slice(token);
    for n in [permits, fence, expires_at] {
        body.push(OPCODE_UINT);
        push_len(&mut body, n);
    }
    body.push(OPCODE_EOF);
    format.seal(&body)
}

fn unix(unit_per_s: u128) -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (d.as_nanos() * unit_per_s / 1_000_000_000) as u64
}

#[test]
fn a_restored_semaphore_raises_the_fence_floor_of_its_node() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let f = sem_acquire(&mut con, b"model", b"a", 60_000, 1, 2).unwrap();
    let dump: Vec<u8> = redis::cmd("DUMP").arg("model").query(&mut con).unwrap();
    // Another node's fence, ahead of this node's clock by 1000 s.
    let ahead = unix(1_000_000) + 1_000_000_000;
    let payload = sem_payload(&dump, 3, b"t", 2, ahead, unix(1_000) + 60_000);
    let _: () = redis::cmd("RESTORE")
        .arg("s")
        .arg(0)
        .arg(&payload)
        .query(&mut con)
        .unwrap();
    let i = sem_info(&mut con, b"s");
    assert_eq!((i["limit"], i["used"], i["fence"]), (3, 2, ahead as i64));
    let next = sem_acquire(&mut con, b"other", b"t", 60_000, 1, 1).unwrap();
    assert!(
        next > ahead as i64,
        "fence {next} not above the restored {ahead}"
    );
    assert!(next > f);
    assert!(sem_acquire(&mut con, b"s", b"b", 60_000, 1, 3).unwrap() > next);
    assert_eq!(
        sem_acquire(&mut con, b"s", b"t", 60_000, 2, 3),
        Some(ahead as i64),
        "the restored lease renews under its fence"
    );
}
