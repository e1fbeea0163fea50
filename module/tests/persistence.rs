//! Persistence (SPEC §2 "Fencing", "Expiry"; DESIGN "Fences", "Replication and
//! AOF"): held locks, their absolute expiry and the fence counter survive RDB
//! reloads, clean restarts, AOF crash restarts and AOF rewrites; the AOF holds
//! effects (`LOCK.APPLY` with absolute times, `DEL`), never the commands.

use std::time::{Duration, Instant};

use baton_harness::lock::{acquire, exists, info, release};
use baton_harness::resp::aof_commands;
use baton_harness::{assert_eventually, RedisServer};

/// Grants and frees `n` locks, returning the last fence: the counter must
/// remember it even though no key does.
fn burn_fences(con: &mut redis::Connection, n: usize) -> i64 {
    let mut last = 0;
    for i in 0..n {
        let key = format!("burn{i}");
        last = acquire(con, key.as_bytes(), b"t", 10_000).unwrap();
        release(con, key.as_bytes(), b"t");
    }
    last
}

#[test]
fn debug_reload_keeps_held_locks_and_the_fence_counter() {
    let server = RedisServer::builder().rdb(true).start();
    let mut con = server.connection();
    let burned = burn_fences(&mut con, 5);
    let f = acquire(&mut con, b"k", b"t", 60_000).unwrap();
    assert!(f > burned);
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut con).unwrap();
    let i = info(&mut con, b"k");
    assert!(i.held, "the held lock was lost by DEBUG RELOAD");
    assert_eq!(i.fence, f);
    assert!(i.pttl > 50_000 && i.pttl <= 60_000, "pttl {}", i.pttl);
    assert_eq!(
        acquire(&mut con, b"k", b"t", 60_000),
        Some(f),
        "the holder is still t"
    );
    let next = acquire(&mut con, b"other", b"t", 1_000).unwrap();
    assert!(next > f, "fence {next} after reload not above {f}");
}

#[test]
fn rdb_restart_keeps_the_counter_even_with_no_lock_held() {
    let mut server = RedisServer::builder().rdb(true).start();
    let burned = burn_fences(&mut server.connection(), 5);
    let _: () = redis::cmd("SAVE").query(&mut server.connection()).unwrap();
    server.restart();
    let mut con = server.connection();
    let f = acquire(&mut con, b"k", b"t", 1_000).unwrap();
    assert!(
        f > burned,
        "fence {f} after restart reuses one up to {burned}"
    );
}

#[test]
fn rdb_restart_keeps_a_held_lock_with_its_absolute_expiry() {
    let mut server = RedisServer::builder().rdb(true).start();
    let f = acquire(&mut server.connection(), b"k", b"t", 60_000).unwrap();
    let granted = Instant::now();
    acquire(&mut server.connection(), b"short", b"t", 300).unwrap();
    // restart() shuts down with SAVE.
    server.restart();
    let mut con = server.connection();
    let i = info(&mut con, b"k");
    assert!(i.held && i.fence == f, "after restart: {i:?}");
    let left = 60_000 - granted.elapsed().as_millis() as i64;
    assert!(
        i.pttl <= left + 5 && i.pttl > left - 2_000,
        "pttl {} but ~{left} ms were left",
        i.pttl
    );
    // A lock whose time ran out while the server was down (or soon after) is
    // not kept.
    assert_eventually(Duration::from_secs(2), "the 300 ms lock expires", || {
        !exists(&mut con, b"short")
    });
    assert!(acquire(&mut con, b"other", b"t", 1_000).unwrap() > f);
}

#[test]
fn a_lock_that_expired_while_the_server_was_down_is_gone() {
    let mut server = RedisServer::builder().rdb(true).start();
    acquire(&mut server.connection(), b"k", b"t", 200).unwrap();
    let _: () = redis::cmd("SAVE").query(&mut server.connection()).unwrap();
    let deadline = Instant::now() + Duration::from_millis(250);
    server.kill();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    server.respawn();
    let mut con = server.connection();
    assert!(
        !info(&mut con, b"k").held,
        "an expired lock came back as held"
    );
    assert_eventually(Duration::from_secs(1), "the expired key is removed", || {
        !exists(&mut con, b"k")
    });
    assert!(acquire(&mut con, b"k", b"t2", 1_000).is_some());
}

#[test]
fn aof_crash_restart_keeps_locks_and_fences() {
    let mut server = RedisServer::builder().aof(true).start();
    let mut con = server.connection();
    let burned = burn_fences(&mut con, 5);
    let f = acquire(&mut con, b"k", b"t", 60_000).unwrap();
    assert!(f > burned);
    drop(con);
    server.crash_restart();
    let mut con = server.connection();
    let i = info(&mut con, b"k");
    assert!(i.held && i.fence == f, "after AOF crash restart: {i:?}");
    assert!(i.pttl > 50_000 && i.pttl <= 60_000, "pttl {}", i.pttl);
    let next = acquire(&mut con, b"other", b"t", 1_000).unwrap();
    assert!(next > f, "fence {next} after AOF replay not above {f}");
}

#[test]
fn aof_replay_does_not_revive_a_released_lock() {
    let mut server = RedisServer::builder().aof(true).start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"t", 60_000).unwrap();
    release(&mut con, b"k", b"t");
    acquire(&mut con, b"x", b"t", 100).unwrap();
    assert_eventually(Duration::from_secs(2), "x expires", || {
        !exists(&mut con, b"x")
    });
    drop(con);
    server.crash_restart();
    let mut con = server.connection();
    assert!(!exists(&mut con, b"k"), "a released lock came back");
    assert!(!exists(&mut con, b"x"), "an expired lock came back");
}

#[test]
fn aof_rewrite_keeps_the_fence_counter() {
    let mut server = RedisServer::builder().aof(true).start();
    let mut con = server.connection();
    let burned = burn_fences(&mut con, 5);
    let held = acquire(&mut con, b"k", b"t", 60_000).unwrap();
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut con).unwrap();
    assert_eventually(Duration::from_secs(10), "the AOF rewrite finishes", || {
        let text: String = redis::cmd("INFO")
            .arg("persistence")
            .query(&mut con)
            .unwrap();
        baton_harness::replication::parse_info_field(&text, "aof_rewrite_in_progress").as_deref()
            == Some("0")
            && baton_harness::replication::parse_info_field(&text, "aof_rewrite_scheduled")
                .as_deref()
                == Some("0")
            && baton_harness::replication::parse_info_field(&text, "aof_last_bgrewrite_status")
                .as_deref()
                == Some("ok")
    });
    release(&mut con, b"k", b"t");
    drop(con);
    server.crash_restart();
    let mut con = server.connection();
    let f = acquire(&mut con, b"k", b"t", 1_000).unwrap();
    assert!(
        f > held && f > burned,
        "fence {f} after rewrite + restart, {held} was issued before"
    );
}

#[test]
fn without_persistence_a_restart_still_issues_larger_fences() {
    // Nothing is saved: the clock floor alone keeps fences from going back.
    let mut server = RedisServer::start();
    let burned = burn_fences(&mut server.connection(), 3);
    server.restart();
    let f = acquire(&mut server.connection(), b"k", b"t", 1_000).unwrap();
    assert!(
        f > burned,
        "fence {f} after restart, {burned} was issued before"
    );
}

#[test]
fn a_crash_with_rdb_only_never_sends_fences_back() {
    // Issue: `--save 3600 1`, grants, SAVE, more grants, SIGKILL: the RDB
    // has an older counter than the last grants.
    let mut server = RedisServer::builder()
        .rdb(true)
        .config("save", "3600 1")
        .start();
    burn_fences(&mut server.connection(), 3);
    let _: () = redis::cmd("SAVE").query(&mut server.connection()).unwrap();
    let last = burn_fences(&mut server.connection(), 3);
    server.crash_restart();
    let f = acquire(&mut server.connection(), b"k", b"t", 1_000).unwrap();
    assert!(
        f > last,
        "fence {f} after the crash, {last} was issued before"
    );
}

#[test]
fn the_aof_holds_effects_with_absolute_times_not_commands() {
    let server = RedisServer::builder().aof(true).start();
    let mut con = server.connection();
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let before = now_ms();
    let f = acquire(&mut con, b"k", b"tok", 60_000).unwrap();
    let after = now_ms();
    baton_harness::lock::extend(&mut con, b"k", b"tok", 120_000);
    release(&mut con, b"k", b"tok");
    let cmds = aof_commands(&server);
    let names: Vec<String> = cmds
        .iter()
        .map(|c| String::from_utf8_lossy(&c[0]).to_uppercase())
        .collect();
    for verbatim in ["LOCK.ACQUIRE", "LOCK.EXTEND", "LOCK.RELEASE"] {
        assert!(
            !names.iter().any(|n| n == verbatim),
            "{verbatim} in the AOF: {names:?}"
        );
    }
    let applies: Vec<&Vec<Vec<u8>>> = cmds
        .iter()
        .filter(|c| c[0].eq_ignore_ascii_case(b"LOCK.APPLY"))
        .collect();
    assert_eq!(applies.len(), 2, "a grant and an extend: {names:?}");
    // LOCK.APPLY key token fence expire-at-ms
    let grant = applies[0];
    assert_eq!(grant.len(), 5, "{grant:?}");
    assert_eq!(
        (grant[1].as_slice(), grant[2].as_slice()),
        (&b"k"[..], &b"tok"[..])
    );
    assert_eq!(String::from_utf8_lossy(&grant[3]), f.to_string());
    let at: i64 = String::from_utf8_lossy(&grant[4])
        .parse()
        .expect("expire-at is an integer");
    assert!(
        at >= before + 60_000 - 5 && at <= after + 60_000 + 5,
        "expire-at {at} is not now + 60000 (now was {before}..{after})"
    );
    let ext: i64 = String::from_utf8_lossy(&applies[1][4]).parse().unwrap();
    assert!(ext >= before + 120_000 - 5, "extend's expire-at {ext}");
    let last = cmds.last().unwrap();
    assert!(
        last[0].eq_ignore_ascii_case(b"DEL") && last[1] == b"k",
        "the release is a DEL: {names:?}"
    );
}
