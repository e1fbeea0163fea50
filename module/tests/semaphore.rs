//! Semaphores on the server (SPEC §6; DESIGN "Semaphores"): leases of
//! permits up to the limit, each with its own fence and expiry; strict FIFO
//! with mixed permit sizes (no overtaking); every release, expiry or force
//! release grants the queue's head while it fits; renewals keep the fence;
//! another limit or permit count is an error naming both numbers; a free
//! semaphore leaves no key; a read-write lock is a semaphore with the
//! largest limit; leases survive reloads, restarts and promotion; operators'
//! commands answer the waiters; bad input changes nothing.

use std::time::Duration;

use baton_harness::lock::{
    err_text, exists, expect_err, sem_acquire, sem_info, sem_release, stats,
};
use baton_harness::{assert_eventually, promote, wait_for_sync, RedisServer, Waiter};

const SECOND: Duration = Duration::from_secs(1);
/// The largest limit: a read-write lock's.
const RW: u64 = 2_147_483_647;

fn acquire(con: &mut redis::Connection, token: &[u8], permits: u64, limit: u64) -> Option<i64> {
    sem_acquire(con, b"s", token, 30_000, permits, limit)
}

#[test]
fn leases_are_granted_up_to_the_limit_and_refused_beyond() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let a = acquire(&mut con, b"a", 2, 3).expect("2 of 3");
    let b = acquire(&mut con, b"b", 1, 3).expect("1 more");
    assert!(b > a, "fences strictly increase");
    assert_eq!(acquire(&mut con, b"c", 1, 3), None, "all 3 permits held");
    let info = sem_info(&mut con, b"s");
    assert_eq!(
        (
            info["limit"],
            info["used"],
            info["holders"],
            info["waiters"],
            info["fence"]
        ),
        (3, 3, 2, 0, b)
    );
    assert_eq!(sem_release(&mut con, b"s", b"a"), 1);
    assert_eq!(sem_release(&mut con, b"s", b"a"), 0, "the lease is gone");
    assert!(acquire(&mut con, b"c", 2, 3).unwrap() > b);
}

#[test]
fn a_renewal_keeps_its_fence_and_a_mismatch_names_both_numbers_and_changes_nothing() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let f = acquire(&mut con, b"a", 2, 5).unwrap();
    assert_eq!(sem_acquire(&mut con, b"s", b"a", 60_000, 2, 5), Some(f));
    let before = sem_info(&mut con, b"s");
    let other_permits = expect_err(
        &mut con,
        &[
            b"SEM.ACQUIRE",
            b"s",
            b"a",
            b"1000",
            b"LIMIT",
            b"5",
            b"PERMITS",
            b"3",
        ],
    );
    assert_eq!(other_permits, "ERR the token holds 2 permits, not 3");
    let other_limit = expect_err(
        &mut con,
        &[b"SEM.ACQUIRE", b"s", b"b", b"1000", b"LIMIT", b"4"],
    );
    assert_eq!(other_limit, "ERR the semaphore's limit is 5, not 4");
    assert_eq!(sem_info(&mut con, b"s"), before);
}

#[test]
fn strict_fifo_a_small_request_never_overtakes_a_queued_large_one() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"holder", 2, 3).unwrap();
    let big = Waiter::queued_sem(&server, b"s", b"big", 3, 3, 20_000);
    // One permit is free, but the big request is queued first.
    assert_eq!(acquire(&mut con, b"newcomer", 1, 3), None);
    let small = Waiter::queued_sem(&server, b"s", b"small", 1, 3, 20_000);
    sem_release(&mut con, b"s", b"holder");
    let big_fence = big.fence().expect("the big request first");
    assert_eq!(
        sem_info(&mut con, b"s")["waiters"],
        1,
        "small waits behind it"
    );
    sem_release(&mut con, b"s", b"big");
    assert!(small.fence().expect("then the small one") > big_fence);
}

#[test]
fn one_release_grants_every_head_that_fits_in_order() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"holder", 4, 4).unwrap();
    let waiters: Vec<Waiter> = [(b"w1", 1), (b"w2", 2), (b"w3", 1), (b"w4", 1)]
        .into_iter()
        .map(|(t, p)| Waiter::queued_sem(&server, b"s", t, p, 4, 20_000))
        .collect();
    sem_release(&mut con, b"s", b"holder");
    let mut waiters = waiters.into_iter();
    let fences: Vec<i64> = waiters
        .by_ref()
        .take(3)
        .map(|w| w.fence().unwrap())
        .collect();
    assert!(
        fences.windows(2).all(|w| w[1] > w[0]),
        "in order: {fences:?}"
    );
    let info = sem_info(&mut con, b"s");
    assert_eq!(
        (info["used"], info["waiters"]),
        (4, 1),
        "w4 does not fit yet"
    );
    sem_release(&mut con, b"s", b"w1");
    assert!(waiters.next().unwrap().fence().is_some());
}

#[test]
fn expiring_leases_hand_on_to_several_waiters_without_any_command() {
    let server = RedisServer::start();
    let mut con = server.connection();
    sem_acquire(&mut con, b"s", b"a", 300, 1, 2).unwrap();
    sem_acquire(&mut con, b"s", b"b", 300, 1, 2).unwrap();
    let w1 = Waiter::queued_sem(&server, b"s", b"w1", 1, 2, 20_000);
    let w2 = Waiter::queued_sem(&server, b"s", b"w2", 1, 2, 20_000);
    let (f1, f2) = (w1.fence().unwrap(), w2.fence().unwrap());
    assert_ne!(f1, f2);
    let s = stats(&mut con);
    assert_eq!(s["waiters"], 0);
    assert_eventually(5 * SECOND, "both waiters hold a lease", || {
        sem_info(&mut con, b"s")["holders"] == 2
    });
}

#[test]
fn a_request_that_times_out_lets_the_smaller_ones_behind_it_through() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"holder", 2, 3).unwrap();
    let big = Waiter::queued_sem(&server, b"s", b"big", 3, 3, 300);
    let small = Waiter::queued_sem(&server, b"s", b"small", 1, 3, 20_000);
    assert_eq!(big.fence(), None, "the big request times out");
    assert!(
        small.fence().is_some(),
        "then the small one fits and is granted"
    );
}

/// SEM.RELEASE by a token that waits withdraws its request: it is
/// answered null at once and never granted, and the request behind it
/// that now fits is granted.
#[test]
fn a_release_by_a_waiting_token_withdraws_its_request() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"holder", 2, 3).unwrap();
    let big = Waiter::queued_sem(&server, b"s", b"big", 3, 3, 20_000);
    let small = Waiter::queued_sem(&server, b"s", b"small", 1, 3, 20_000);
    assert_eq!(sem_release(&mut con, b"s", b"big"), 0, "big holds no lease");
    let (reply, waited) = big.join();
    assert_eq!(reply.unwrap(), None, "the withdrawn request is not granted");
    assert!(waited < 10 * SECOND, "answered at once, not at its timeout");
    assert!(small.fence().is_some(), "the small one fits now");
    let info = sem_info(&mut con, b"s");
    assert_eq!((info["used"], info["waiters"]), (3, 0), "{info:?}");
}

#[test]
fn force_release_removes_all_leases_or_one() {
    let server = RedisServer::start();
    let mut con = server.connection();
    for t in [&b"a"[..], b"b", b"c"] {
        acquire(&mut con, t, 1, 3).unwrap();
    }
    let one: i64 = redis::cmd("SEM.FORCERELEASE")
        .arg("s")
        .arg("b")
        .query(&mut con)
        .unwrap();
    assert_eq!(one, 1);
    let rest: i64 = redis::cmd("SEM.FORCERELEASE")
        .arg("s")
        .query(&mut con)
        .unwrap();
    assert_eq!(rest, 2);
    assert!(
        !exists(&mut con, b"s"),
        "a semaphore with no lease leaves no key"
    );
    let info = sem_info(&mut con, b"s");
    assert_eq!((info["limit"], info["used"], info["fence"]), (0, 0, 0));
}

#[test]
fn a_read_write_lock_lets_readers_share_and_does_not_starve_a_writer() {
    let server = RedisServer::start();
    let mut con = server.connection();
    // Readers take one permit of the largest limit, a writer all of them.
    let r1 = acquire(&mut con, b"r1", 1, RW).unwrap();
    acquire(&mut con, b"r2", 1, RW).unwrap();
    let writer = Waiter::queued_sem(&server, b"s", b"writer", RW, RW, 20_000);
    // A reader after a queued writer waits behind it.
    assert_eq!(acquire(&mut con, b"late", 1, RW), None);
    let late = Waiter::queued_sem(&server, b"s", b"late", 1, RW, 20_000);
    sem_release(&mut con, b"s", b"r1");
    assert!(!writer.is_finished(), "the writer waits for every reader");
    sem_release(&mut con, b"s", b"r2");
    let w = writer.fence().expect("the writer after the readers");
    assert!(w > r1);
    assert_eq!(
        sem_info(&mut con, b"s")["waiters"],
        1,
        "the late reader waits"
    );
    sem_release(&mut con, b"s", b"writer");
    assert!(late.fence().unwrap() > w);
}

#[test]
fn a_lock_key_and_a_semaphore_key_are_wrongtype_to_each_other() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"a", 1, 2).unwrap();
    baton_harness::lock::acquire(&mut con, b"l", b"t", 10_000).unwrap();
    for args in [
        &[&b"LOCK.ACQUIRE"[..], b"s", b"t", b"1000"][..],
        &[b"LOCK.INFO", b"s"],
        &[b"SEM.ACQUIRE", b"l", b"t", b"1000", b"LIMIT", b"2"],
        &[b"SEM.INFO", b"l"],
    ] {
        assert!(
            expect_err(&mut con, args).starts_with("WRONGTYPE"),
            "{args:?}"
        );
    }
}

#[test]
fn every_bad_argument_is_named_and_changes_nothing() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"a", 1, 3).unwrap();
    let before = sem_info(&mut con, b"s");
    let cases: [(&[&[u8]], &str); 10] = [
        (&[b"SEM.ACQUIRE", b"s", b"t", b"1000"], "ERR LIMIT must be an integer between 1 and 2147483647"),
        (&[b"SEM.ACQUIRE", b"s", b"t", b"1000", b"LIMIT", b"0"], "ERR LIMIT must be an integer between 1 and 2147483647"),
        (&[b"SEM.ACQUIRE", b"s", b"t", b"1000", b"LIMIT"], "ERR LIMIT needs a value"),
        (&[b"SEM.ACQUIRE", b"s", b"t", b"1000", b"LIMIT", b"3", b"PERMITS", b"4"], "ERR PERMITS must be an integer between 1 and LIMIT"),
        (&[b"SEM.ACQUIRE", b"s", b"t", b"0", b"LIMIT", b"3"], "ERR ttl-ms must be an integer between 1 and 2147483647"),
        (&[b"SEM.ACQUIRE", b"s", b"", b"1000", b"LIMIT", b"3"], "ERR token must be 1 to 256 bytes"),
        (&[b"SEM.ACQUIRE", b"s", b"t", b"1000", b"LIMIT", b"3", b"WAIT"], "ERR WAIT needs a timeout-ms"),
        (&[b"SEM.ACQUIRE", b"s", b"t", b"1000", b"LIMIT", b"3", b"NX"], "ERR unknown option 'NX'"),
        (&[b"SEM.EXTEND", b"s", b"a", b"x"], "ERR ttl-ms must be an integer between 1 and 2147483647"),
        (&[b"SEM.APPLY", b"s", b"3", b"x", b"1", b"5", b"9"], "ERR SEM.APPLY and SEM.DROP are internal: accepted only from replication and AOF loading"),
    ];
    for (args, want) in cases {
        assert_eq!(expect_err(&mut con, args), want, "{args:?}");
        assert_eq!(
            sem_info(&mut con, b"s"),
            before,
            "{args:?} changed the semaphore"
        );
    }
    assert!(!exists(&mut con, b"t"));
}

#[test]
fn leases_survive_a_reload_and_an_aof_crash_with_their_fences() {
    let mut server = RedisServer::builder().aof(true).rdb(true).start();
    let mut con = server.connection();
    let f = acquire(&mut con, b"a", 2, 3).unwrap();
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut con).unwrap();
    let info = sem_info(&mut con, b"s");
    assert_eq!((info["limit"], info["used"], info["fence"]), (3, 2, f));
    server.crash_restart();
    let mut con = server.connection();
    assert_eq!(
        sem_info(&mut con, b"s")["used"],
        2,
        "the AOF kept the lease"
    );
    assert_eq!(
        acquire(&mut con, b"a", 2, 3),
        Some(f),
        "renewed, same fence"
    );
    assert!(acquire(&mut con, b"b", 1, 3).unwrap() > f);
}

#[test]
fn leases_reach_the_replica_and_a_promoted_replica_keeps_them() {
    let primary = RedisServer::start();
    let replica = RedisServer::builder().replica_of(&primary).start();
    wait_for_sync(&primary, &replica);
    let mut p = primary.connection();
    let f = acquire(&mut p, b"a", 1, 2).unwrap();
    acquire(&mut p, b"b", 1, 2).unwrap();
    sem_release(&mut p, b"s", b"b");
    wait_for_sync(&primary, &replica);
    let mut r = replica.connection();
    let info = sem_info(&mut r, b"s");
    assert_eq!(
        (info["used"], info["holders"]),
        (1, 1),
        "SEM.APPLY and SEM.DROP arrived"
    );
    let refused = expect_err(
        &mut r,
        &[b"SEM.ACQUIRE", b"s", b"c", b"1000", b"LIMIT", b"2"],
    );
    assert!(refused.starts_with("READONLY"), "{refused}");
    promote(&replica);
    let mut r = replica.connection();
    assert_eq!(acquire(&mut r, b"a", 1, 2), Some(f), "the lease came along");
    assert!(acquire(&mut r, b"c", 1, 2).unwrap() > f);
    assert_eq!(acquire(&mut r, b"d", 1, 2), None, "still 2 permits");
}

#[test]
fn del_and_rename_answer_the_waiters_and_a_renamed_semaphore_keeps_its_leases() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let f = acquire(&mut con, b"a", 1, 1).unwrap();
    let w = Waiter::queued_sem(&server, b"s", b"w", 1, 1, 20_000);
    let _: () = redis::cmd("RENAME")
        .arg("s")
        .arg("t")
        .query(&mut con)
        .unwrap();
    let reply = w.join().0.map_err(|e| err_text(&e));
    assert!(
        matches!(&reply, Err(e) if e.starts_with("UNBLOCKED ")),
        "{reply:?}"
    );
    let info = sem_info(&mut con, b"t");
    assert_eq!((info["holders"], info["waiters"], info["fence"]), (1, 0, f));
    let w = Waiter::queued_sem(&server, b"t", b"w", 1, 1, 20_000);
    let _: i64 = redis::cmd("DEL").arg("t").query(&mut con).unwrap();
    let reply = w.join().0.map_err(|e| err_text(&e));
    assert!(
        matches!(&reply, Err(e) if e.starts_with("UNBLOCKED ")),
        "{reply:?}"
    );
    assert_eq!(stats(&mut con)["waiters"], 0);
}

#[test]
fn a_dumped_semaphore_restores_with_its_leases() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let f = acquire(&mut con, b"a", 2, 4).unwrap();
    let dump: Vec<u8> = redis::cmd("DUMP").arg("s").query(&mut con).unwrap();
    let other = RedisServer::start();
    let mut o = other.connection();
    let _: () = redis::cmd("RESTORE")
        .arg("s")
        .arg(0)
        .arg(&dump)
        .query(&mut o)
        .unwrap();
    let info = sem_info(&mut o, b"s");
    assert_eq!((info["limit"], info["used"], info["fence"]), (4, 2, f));
    // A payload cut short is refused, and the server lives.
    let cut = &dump[..dump.len() - 14];
    let format = baton_harness::dump::DumpFormat::of(&dump);
    let reply: redis::RedisResult<()> = redis::cmd("RESTORE")
        .arg("x")
        .arg(0)
        .arg(format.seal(cut))
        .query(&mut o);
    assert!(reply.is_err());
    assert!(!exists(&mut o, b"x"));
}
