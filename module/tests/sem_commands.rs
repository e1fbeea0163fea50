//! The `SEM.*` replies one by one (SPEC §6 table and bounds): `SEM.EXTEND`
//! renews (1) or finds no lease (0); every lease expires at its own time,
//! actively, and the last one leaves no key; a retry by the holder renews
//! its lease with the same fence and permits, also while others wait;
//! `SEM.FORCERELEASE` of a token without a lease removes nothing; `SEM.INFO`
//! is all zeros for a missing key and its `fence` is the last one issued on
//! the key, also after a reload and on a replica; the bounds of LIMIT,
//! PERMITS and WAIT are inclusive; every `SEM.*` command against a key of
//! another type (a string, a list, a lock) is WRONGTYPE, and every `LOCK.*`
//! command against a semaphore; a writable replica refuses every `SEM.*`
//! write.

use std::time::Duration;

use baton_harness::lock::{
    exists, expect_err, raw, sem_acquire, sem_info, sem_release, to_int_map,
};
use baton_harness::resp::aof_commands;
use baton_harness::{assert_eventually, wait_for_sync, RedisServer, Waiter};

const SECOND: Duration = Duration::from_secs(1);
const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

fn sem_extend(con: &mut redis::Connection, key: &[u8], token: &[u8], ttl: u64) -> i64 {
    redis::cmd("SEM.EXTEND")
        .arg(key)
        .arg(token)
        .arg(ttl)
        .query(con)
        .unwrap()
}

fn force_release(con: &mut redis::Connection, key: &[u8], token: Option<&[u8]>) -> i64 {
    let mut cmd = redis::cmd("SEM.FORCERELEASE");
    cmd.arg(key);
    if let Some(t) = token {
        cmd.arg(t);
    }
    cmd.query(con).unwrap()
}

/// `(limit, used, holders, waiters, fence)` of `SEM.INFO`.
fn info5(con: &mut redis::Connection, key: &[u8]) -> (i64, i64, i64, i64, i64) {
    let i = sem_info(con, key);
    (
        i["limit"],
        i["used"],
        i["holders"],
        i["waiters"],
        i["fence"],
    )
}

#[test]
fn extend_renews_the_holders_lease_and_answers_0_without_one() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let f = sem_acquire(&mut con, b"s", b"a", 300, 1, 2).unwrap();
    // A marker that expires after a's first ttl: once it is gone, a would
    // be gone too, had the extend not renewed it.
    sem_acquire(&mut con, b"s", b"marker", 600, 1, 2).unwrap();
    assert_eq!(sem_extend(&mut con, b"s", b"a", 30_000), 1);
    assert_eq!(sem_extend(&mut con, b"s", b"nobody", 30_000), 0);
    assert_eq!(sem_extend(&mut con, b"missing", b"a", 30_000), 0);
    assert!(!exists(&mut con, b"missing"), "an extend creates nothing");
    assert_eventually(5 * SECOND, "the marker expires", || {
        sem_info(&mut con, b"s")["holders"] == 1
    });
    let i = info5(&mut con, b"s");
    assert_eq!((i.1, i.2), (1, 1), "a still holds its permit");
    assert_eq!(
        sem_acquire(&mut con, b"s", b"a", 30_000, 1, 2),
        Some(f),
        "same lease, same fence"
    );
    assert_eq!(sem_release(&mut con, b"s", b"a"), 1);
    assert_eq!(sem_extend(&mut con, b"s", b"a", 30_000), 0, "released");
}

#[test]
fn each_lease_expires_at_its_own_time_and_the_last_leaves_no_key() {
    let server = RedisServer::start();
    let mut con = server.connection();
    sem_acquire(&mut con, b"s", b"short", 300, 1, 3).unwrap();
    let long = sem_acquire(&mut con, b"s", b"long", 900, 2, 3).unwrap();
    assert_eventually(5 * SECOND, "the short lease expires", || {
        sem_info(&mut con, b"s")["holders"] == 1
    });
    assert_eq!(
        info5(&mut con, b"s"),
        (3, 2, 1, 0, long),
        "long still holds 2"
    );
    assert_eq!(sem_release(&mut con, b"s", b"short"), 0, "short expired");
    // No command touches the key from here: EXISTS runs no module code.
    assert_eventually(
        5 * SECOND,
        "the last lease expires, and its key goes",
        || !exists(&mut con, b"s"),
    );
    assert_eq!(sem_release(&mut con, b"s", b"long"), 0);
    assert_eq!(info5(&mut con, b"s"), (0, 0, 0, 0, 0), "forgotten");
}

#[test]
fn a_retry_by_the_holder_renews_its_lease_with_its_fence_and_permits() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let f = sem_acquire(&mut con, b"s", b"a", 300, 2, 3).unwrap();
    let m = sem_acquire(&mut con, b"s", b"marker", 600, 1, 3).unwrap();
    // Others wait: a renewal is not a newcomer and does not queue.
    let w = Waiter::queued_sem(&server, b"s", b"w", 1, 3, 20_000);
    let retry: Option<i64> = redis::cmd("SEM.ACQUIRE")
        .arg("s")
        .arg("a")
        .arg(30_000)
        .arg("LIMIT")
        .arg(3)
        .arg("PERMITS")
        .arg(2)
        .arg("WAIT")
        .arg(5_000)
        .query(&mut con)
        .unwrap();
    assert_eq!(retry, Some(f), "renewed at once, same fence");
    assert_eq!(
        info5(&mut con, b"s"),
        (3, 3, 2, 1, m),
        "its permits unchanged"
    );
    let wf = w.fence().expect("the marker's permit passes to w");
    assert!(wf > m);
    let i = info5(&mut con, b"s");
    assert_eq!(
        (i.1, i.2, i.3),
        (3, 2, 0),
        "a kept its 2 permits past 300 ms"
    );
    assert_eq!(sem_release(&mut con, b"s", b"a"), 1);
}

#[test]
fn force_release_of_a_token_without_a_lease_removes_nothing() {
    let server = RedisServer::start();
    let mut con = server.connection();
    assert_eq!(force_release(&mut con, b"missing", None), 0);
    assert_eq!(force_release(&mut con, b"missing", Some(&b"t"[..])), 0);
    assert!(!exists(&mut con, b"missing"));
    sem_acquire(&mut con, b"s", b"a", 30_000, 1, 2).unwrap();
    let w = Waiter::queued_sem(&server, b"s", b"w", 2, 2, 20_000);
    let before = sem_info(&mut con, b"s");
    assert_eq!(
        force_release(&mut con, b"s", Some(&b"w"[..])),
        0,
        "w only waits"
    );
    assert_eq!(force_release(&mut con, b"s", Some(&b"other"[..])), 0);
    assert_eq!(sem_info(&mut con, b"s"), before, "nothing changed");
    assert_eq!(force_release(&mut con, b"s", Some(&b"a"[..])), 1);
    assert!(w.fence().is_some(), "the force release handed on");
}

#[test]
fn info_is_zero_for_a_missing_key_and_its_fence_is_the_last_issued() {
    let server = RedisServer::builder().rdb(true).start();
    let mut con = server.connection();
    assert_eq!(info5(&mut con, b"s"), (0, 0, 0, 0, 0));
    assert!(!exists(&mut con, b"s"), "SEM.INFO creates nothing");
    let a = sem_acquire(&mut con, b"s", b"a", 60_000, 1, 3).unwrap();
    let b = sem_acquire(&mut con, b"s", b"b", 60_000, 1, 3).unwrap();
    assert_eq!(sem_release(&mut con, b"s", b"b"), 1);
    assert!(a < b);
    assert_eq!(
        info5(&mut con, b"s"),
        (3, 1, 1, 0, b),
        "b's fence was the last issued"
    );
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut con).unwrap();
    assert_eq!(
        info5(&mut con, b"s"),
        (3, 1, 1, 0, b),
        "a reload keeps the last fence issued"
    );
}

#[test]
fn info_is_a_map_in_resp2_and_resp3() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let f = sem_acquire(&mut con, b"s", b"a", 60_000, 2, 5).unwrap();
    let v = raw(&mut con, &[b"SEM.INFO", b"s"]).unwrap();
    let redis::Value::Array(items) = &v else {
        panic!("RESP2: a flat array, got {v:?}")
    };
    let names: Vec<_> = items
        .iter()
        .step_by(2)
        .map(|n| match n {
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(names, ["limit", "used", "holders", "waiters", "fence"]);
    let mut resp3 = redis::Client::open(format!("{}/?protocol=resp3", server.url()))
        .unwrap()
        .get_connection()
        .unwrap();
    let v = raw(&mut resp3, &[b"SEM.INFO", b"s"]).unwrap();
    assert!(matches!(v, redis::Value::Map(_)), "RESP3: a map, got {v:?}");
    let m = to_int_map(&v).unwrap();
    assert_eq!(
        (m["limit"], m["used"], m["holders"], m["fence"]),
        (5, 2, 1, f)
    );
}

#[test]
fn limit_permits_and_wait_bounds_are_inclusive() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let max = 2_147_483_647u64;
    let f = sem_acquire(&mut con, b"big", b"w", 60_000, max, max).expect("p = n = 2^31-1");
    assert_eq!(info5(&mut con, b"big"), (max as i64, max as i64, 1, 0, f));
    assert!(
        sem_acquire(&mut con, b"one", b"t", 60_000, 1, 1).is_some(),
        "n = p = 1"
    );
    let default: Option<i64> = redis::cmd("SEM.ACQUIRE")
        .arg("dflt")
        .arg("t")
        .arg(60_000)
        .arg("LIMIT")
        .arg(3)
        .query(&mut con)
        .unwrap();
    assert!(default.is_some());
    assert_eq!(
        sem_info(&mut con, b"dflt")["used"],
        1,
        "PERMITS defaults to 1"
    );
    let limit_err = "ERR LIMIT must be an integer between 1 and 2147483647";
    let permits_err = "ERR PERMITS must be an integer between 1 and LIMIT";
    let timeout_err = "ERR timeout-ms must be an integer between 0 and 2147483647";
    let base: [&[u8]; 4] = [b"SEM.ACQUIRE", b"new", b"t", b"1000"];
    let cases: [(&[&[u8]], &str); 12] = [
        (&[b"LIMIT", b"2147483648"], limit_err),
        (&[b"LIMIT", b"-1"], limit_err),
        (&[b"LIMIT", b"x"], limit_err),
        (&[b"LIMIT", b"1.5"], limit_err),
        (&[b"LIMIT", b""], limit_err),
        (&[b"LIMIT", b"3", b"PERMITS", b"0"], permits_err),
        (&[b"LIMIT", b"3", b"PERMITS", b"-1"], permits_err),
        (&[b"LIMIT", b"3", b"PERMITS", b"2147483648"], permits_err),
        (&[b"LIMIT", b"3", b"PERMITS"], "ERR PERMITS needs a value"),
        (&[b"LIMIT", b"3", b"WAIT", b"-1"], timeout_err),
        (&[b"LIMIT", b"3", b"WAIT", b"2147483648"], timeout_err),
        (
            &[b"LIMIT", b"3", b"LIMIT", b"3"],
            "ERR unknown option 'LIMIT'",
        ),
    ];
    for (rest, want) in cases {
        let args: Vec<&[u8]> = base.iter().copied().chain(rest.iter().copied()).collect();
        assert_eq!(expect_err(&mut con, &args), want, "{rest:?}");
    }
    let ttl_err = "ERR ttl-ms must be an integer between 1 and 2147483647";
    assert_eq!(
        expect_err(
            &mut con,
            &[b"SEM.ACQUIRE", b"new", b"t", b"2147483648", b"LIMIT", b"1"]
        ),
        ttl_err
    );
    assert!(
        !exists(&mut con, b"new"),
        "no refused acquire created the key"
    );
    // WAIT 0 and WAIT 2^31-1 on a free semaphore are granted at once; the
    // largest ttl too.
    let wait_max: Option<i64> = redis::cmd("SEM.ACQUIRE")
        .arg("w")
        .arg("t")
        .arg(max)
        .arg("LIMIT")
        .arg(1)
        .arg("WAIT")
        .arg(max)
        .query(&mut con)
        .unwrap();
    assert!(wait_max.is_some());
    let wait_0: Option<i64> = redis::cmd("SEM.ACQUIRE")
        .arg("w0")
        .arg("t")
        .arg(1000)
        .arg("LIMIT")
        .arg(1)
        .arg("WAIT")
        .arg(0)
        .query(&mut con)
        .unwrap();
    assert!(wait_0.is_some());
}

#[test]
fn wrong_argument_counts_get_the_arity_error() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let cases: &[(&[&[u8]], &str)] = &[
        (&[b"SEM.ACQUIRE", b"s", b"t"], "sem.acquire"),
        (&[b"SEM.RELEASE", b"s"], "sem.release"),
        (&[b"SEM.RELEASE", b"s", b"t", b"x"], "sem.release"),
        (&[b"SEM.EXTEND", b"s", b"t"], "sem.extend"),
        (&[b"SEM.EXTEND", b"s", b"t", b"1000", b"x"], "sem.extend"),
        (&[b"SEM.FORCERELEASE"], "sem.forcerelease"),
        (&[b"SEM.FORCERELEASE", b"s", b"t", b"x"], "sem.forcerelease"),
        (&[b"SEM.INFO"], "sem.info"),
        (&[b"SEM.INFO", b"s", b"x"], "sem.info"),
    ];
    for (args, name) in cases {
        assert_eq!(
            expect_err(&mut con, args),
            format!("ERR wrong number of arguments for '{name}' command"),
            "{args:?}"
        );
    }
    assert!(!exists(&mut con, b"s"));
}

#[test]
fn every_command_against_another_type_is_wrongtype_and_changes_nothing() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let _: () = redis::cmd("SET")
        .arg("str")
        .arg("v")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg("list")
        .arg("v")
        .query(&mut con)
        .unwrap();
    let lock_fence = baton_harness::lock::acquire(&mut con, b"lock", b"t", 60_000).unwrap();
    for key in [&b"str"[..], b"list", b"lock"] {
        for args in [
            vec![&b"SEM.ACQUIRE"[..], key, b"t", b"1000", b"LIMIT", b"2"],
            vec![
                b"SEM.ACQUIRE",
                key,
                b"u",
                b"1000",
                b"LIMIT",
                b"2",
                b"WAIT",
                b"1000",
            ],
            vec![b"SEM.RELEASE", key, b"t"],
            vec![b"SEM.EXTEND", key, b"t", b"1000"],
            vec![b"SEM.FORCERELEASE", key],
            vec![b"SEM.FORCERELEASE", key, b"t"],
            vec![b"SEM.INFO", key],
        ] {
            assert_eq!(
                expect_err(&mut con, &args),
                WRONGTYPE,
                "{}",
                baton_harness::lock::show(&args)
            );
        }
    }
    let v: String = redis::cmd("GET").arg("str").query(&mut con).unwrap();
    assert_eq!(v, "v");
    let l = baton_harness::lock::info(&mut con, b"lock");
    assert!(l.held && l.fence == lock_fence, "the lock was left alone");

    let f = sem_acquire(&mut con, b"sem", b"t", 60_000, 1, 2).unwrap();
    for args in [
        &[&b"LOCK.ACQUIRE"[..], b"sem", b"t", b"1000"][..],
        &[b"LOCK.ACQUIRE", b"sem", b"u", b"1000", b"WAIT", b"1000"],
        &[b"LOCK.RELEASE", b"sem", b"t"],
        &[b"LOCK.EXTEND", b"sem", b"t", b"1000"],
        &[b"LOCK.FORCERELEASE", b"sem"],
        &[b"LOCK.FENCE", b"sem"],
        &[b"LOCK.INFO", b"sem"],
    ] {
        assert_eq!(
            expect_err(&mut con, args),
            WRONGTYPE,
            "{}",
            baton_harness::lock::show(args)
        );
    }
    assert_eq!(info5(&mut con, b"sem"), (2, 1, 1, 0, f));
    let kind: String = redis::cmd("TYPE").arg("sem").query(&mut con).unwrap();
    assert_eq!(kind, "baton-sem");
}

#[test]
fn a_replica_sees_the_same_leases_fences_expiries_and_hand_offs() {
    let primary = RedisServer::start();
    let mut p = primary.connection();
    let a = sem_acquire(&mut p, b"s", b"a", 60_000, 1, 3).unwrap();
    let b = sem_acquire(&mut p, b"s", b"b", 60_000, 1, 3).unwrap();
    assert_eq!(sem_release(&mut p, b"s", b"b"), 1);
    // A replica that syncs now gets the semaphore from the RDB.
    let replica = RedisServer::builder().replica_of(&primary).start();
    wait_for_sync(&primary, &replica);
    let mut r = replica.connection();
    assert_eq!(info5(&mut r, b"s"), info5(&mut p, b"s"), "full sync");
    assert_eq!(info5(&mut r, b"s"), (3, 1, 1, 0, b));
    // Then the stream: a short lease that expires on the primary, a
    // waiter that the expiry hands on to, a renewal.
    sem_acquire(&mut p, b"s", b"short", 300, 2, 3).unwrap();
    let w = Waiter::queued_sem(&primary, b"s", b"w", 2, 3, 20_000);
    let wf = w.fence().expect("the expiry hands on");
    assert_eq!(sem_acquire(&mut p, b"s", b"a", 60_000, 1, 3), Some(a));
    wait_for_sync(&primary, &replica);
    assert_eq!(info5(&mut r, b"s"), info5(&mut p, b"s"));
    assert_eq!(info5(&mut r, b"s"), (3, 3, 2, 0, wf));
    force_release(&mut p, b"s", None);
    wait_for_sync(&primary, &replica);
    assert!(
        !exists(&mut r, b"s"),
        "the replica drops the key with the primary"
    );
}

#[test]
fn a_writable_replica_refuses_every_sem_write() {
    let primary = RedisServer::start();
    let replica = RedisServer::builder()
        .replica_of(&primary)
        .config("replica-read-only", "no")
        .start();
    wait_for_sync(&primary, &replica);
    let mut p = primary.connection();
    let f = sem_acquire(&mut p, b"held", b"t", 60_000, 1, 1).unwrap();
    wait_for_sync(&primary, &replica);
    let mut r = replica.connection();
    for args in [
        &[&b"SEM.ACQUIRE"[..], b"free", b"t", b"1000", b"LIMIT", b"1"][..],
        &[b"SEM.ACQUIRE", b"held", b"t", b"1000", b"LIMIT", b"1"],
        &[
            b"SEM.ACQUIRE",
            b"held",
            b"u",
            b"1000",
            b"LIMIT",
            b"1",
            b"WAIT",
            b"100",
        ],
        &[b"SEM.EXTEND", b"held", b"t", b"1000"],
        &[b"SEM.RELEASE", b"held", b"t"],
        &[b"SEM.FORCERELEASE", b"held"],
        &[b"SEM.FORCERELEASE", b"held", b"t"],
    ] {
        let e = expect_err(&mut r, args);
        assert!(
            e.starts_with("READONLY"),
            "{}: {e}",
            baton_harness::lock::show(args)
        );
    }
    assert!(!exists(&mut r, b"free"));
    assert_eq!(info5(&mut r, b"held"), (1, 1, 1, 0, f));
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Effects, not commands: the AOF holds `SEM.APPLY key limit token permits
/// fence expire-at-ms` with an absolute expiry, `SEM.DROP` and `DEL`, never
/// a `SEM.*` command as sent; a rewrite without the RDB preamble (the
/// module's own commands) keeps the leases and their fences.
#[test]
fn the_aof_holds_effects_with_absolute_times_and_a_rewrite_keeps_the_leases() {
    let mut server = RedisServer::builder().aof(true).start();
    let mut con = server.connection();
    let before = now_ms();
    let a = sem_acquire(&mut con, b"s", b"a", 60_000, 2, 3).unwrap();
    let after = now_ms();
    let b = sem_acquire(&mut con, b"s", b"b", 60_000, 1, 3).unwrap();
    assert_eq!(sem_extend(&mut con, b"s", b"a", 120_000), 1);
    assert_eq!(sem_release(&mut con, b"s", b"b"), 1);
    let cmds = aof_commands(&server);
    let names: Vec<String> = cmds
        .iter()
        .map(|c| String::from_utf8_lossy(&c[0]).to_uppercase())
        .collect();
    for verbatim in ["SEM.ACQUIRE", "SEM.EXTEND", "SEM.RELEASE"] {
        assert!(
            !names.iter().any(|n| n == verbatim),
            "{verbatim}: {names:?}"
        );
    }
    let applies: Vec<&Vec<Vec<u8>>> = cmds
        .iter()
        .filter(|c| c[0].eq_ignore_ascii_case(b"SEM.APPLY"))
        .collect();
    assert_eq!(applies.len(), 3, "two grants and an extend: {names:?}");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let grant: Vec<String> = applies[0].iter().map(|x| text(x)).collect();
    assert_eq!(
        &grant[1..6],
        ["s", "3", "a", "2", a.to_string().as_str()],
        "{grant:?}"
    );
    let at: i64 = grant[6].parse().unwrap();
    assert!(
        at >= before + 60_000 - 5 && at <= after + 60_000 + 5,
        "expire-at {at} is not now + 60000 ({before}..{after})"
    );
    let ext: i64 = text(&applies[2][6]).parse().unwrap();
    assert!(ext >= before + 120_000 - 5, "the extend's expire-at {ext}");
    assert!(
        cmds.iter()
            .any(|c| c[0].eq_ignore_ascii_case(b"SEM.DROP") && c[2] == b"b"),
        "the release is a SEM.DROP: {names:?}"
    );

    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("aof-use-rdb-preamble")
        .arg("no")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("BGREWRITEAOF").query(&mut con).unwrap();
    assert_eventually(10 * SECOND, "the AOF rewrite ends", || {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query(&mut con)
            .unwrap();
        info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0")
    });
    drop(con);
    server.crash_restart();
    let mut con = server.connection();
    let i = info5(&mut con, b"s");
    assert_eq!(
        (i.0, i.1, i.2),
        (3, 2, 1),
        "the rewritten AOF kept a's lease"
    );
    assert_eq!(sem_acquire(&mut con, b"s", b"a", 60_000, 2, 3), Some(a));
    assert!(sem_acquire(&mut con, b"s", b"c", 60_000, 1, 3).unwrap() > b);
}

/// Key specs: Redis (and Cluster) finds the key of every `SEM.*` command
/// at position 1; `SEM.INFO` is a read, the others writes.
#[test]
fn every_sem_command_declares_its_key_and_its_kind() {
    let server = RedisServer::start();
    let mut con = server.connection();
    for args in [
        &["SEM.ACQUIRE", "s", "t", "1000", "LIMIT", "2"][..],
        &["SEM.RELEASE", "s", "t"],
        &["SEM.EXTEND", "s", "t", "1000"],
        &["SEM.FORCERELEASE", "s"],
        &["SEM.FORCERELEASE", "s", "t"],
        &["SEM.INFO", "s"],
    ] {
        let keys: Vec<String> = redis::cmd("COMMAND")
            .arg("GETKEYS")
            .arg(args)
            .query(&mut con)
            .unwrap();
        assert_eq!(keys, ["s"], "{args:?}");
    }
    for (name, flag) in [
        ("sem.acquire", "write"),
        ("sem.release", "write"),
        ("sem.extend", "write"),
        ("sem.forcerelease", "write"),
        ("sem.info", "readonly"),
    ] {
        let v = raw(&mut con, &[b"COMMAND", b"INFO", name.as_bytes()]).unwrap();
        let shown = format!("{v:?}");
        assert!(shown.contains(&format!("\"{flag}\"")), "{name}: {shown}");
    }
    sem_acquire(&mut con, b"s", b"t", 60_000, 1, 2).unwrap();
    let one: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("s")
        .query(&mut con)
        .unwrap();
    sem_acquire(&mut con, b"s", b"u", 60_000, 1, 2).unwrap();
    let two: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("s")
        .query(&mut con)
        .unwrap();
    assert!(
        one > 0 && two > one,
        "MEMORY USAGE counts the leases: {one}, {two}"
    );
}
