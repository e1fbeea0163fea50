//! Grant, refusal, release, extend, force-release and idempotent re-acquire
//! on one key (SPEC §2 "Grant", "Idempotent retry", command table; DESIGN
//! "State and memory").

use baton_harness::lock::{
    acquire, acquire_wait, exists, extend, fence, force_release, info, release,
};
use baton_harness::{LockInfo, RedisServer};

#[test]
fn grant_on_a_free_lock_returns_a_positive_fence() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let f = acquire(&mut con, b"k", b"t1", 10_000).expect("a free lock is granted");
    assert!(f > 0, "fence {f} must be positive");
    let i = info(&mut con, b"k");
    assert!(i.held);
    assert_eq!(i.fence, f);
    assert!(
        i.pttl > 9_000 && i.pttl <= 10_000,
        "pttl {} for ttl 10000",
        i.pttl
    );
    assert_eq!(i.waiters, 0);
}

#[test]
fn second_client_is_refused_with_null() {
    let server = RedisServer::start();
    let (mut a, mut b) = (server.connection(), server.connection());
    let f = acquire(&mut a, b"k", b"t1", 10_000).unwrap();
    assert_eq!(acquire(&mut b, b"k", b"t2", 10_000), None);
    // The refusal changed nothing.
    assert_eq!(info(&mut a, b"k").fence, f);
    assert_eq!(release(&mut b, b"k", b"t2"), 0);
    assert_eq!(release(&mut a, b"k", b"t1"), 1);
}

#[test]
fn wait_zero_on_a_held_lock_is_refused_at_once() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"t1", 10_000).unwrap();
    let start = std::time::Instant::now();
    assert_eq!(acquire_wait(&mut con, b"k", b"t2", 10_000, 0), None);
    assert!(
        start.elapsed().as_millis() < 50,
        "WAIT 0 blocked for {:?}",
        start.elapsed()
    );
    assert_eq!(info(&mut con, b"k").waiters, 0, "WAIT 0 must not queue");
}

#[test]
fn wait_on_a_free_lock_grants_at_once() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let start = std::time::Instant::now();
    let f = acquire_wait(&mut con, b"k", b"t1", 10_000, 5_000).expect("granted");
    assert!(start.elapsed().as_millis() < 50);
    assert_eq!(info(&mut con, b"k").fence, f);
}

#[test]
fn release_by_the_holder_frees_the_lock_and_deletes_the_key() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"t1", 10_000).unwrap();
    assert!(exists(&mut con, b"k"), "a held lock is a key");
    assert_eq!(release(&mut con, b"k", b"t1"), 1);
    assert!(
        !exists(&mut con, b"k"),
        "a free lock without waiters has no key"
    );
    assert_eq!(
        info(&mut con, b"k"),
        LockInfo {
            held: false,
            fence: 0,
            pttl: -1,
            waiters: 0,
            meta: None
        }
    );
    // A second release finds no holder.
    assert_eq!(release(&mut con, b"k", b"t1"), 0);
    // And anyone can take it now.
    assert!(acquire(&mut con, b"k", b"t2", 10_000).is_some());
}

#[test]
fn release_by_a_wrong_token_returns_0_and_keeps_the_holder() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let f = acquire(&mut con, b"k", b"t1", 10_000).unwrap();
    assert_eq!(release(&mut con, b"k", b"t2"), 0);
    assert_eq!(
        release(&mut con, b"k", b"t"),
        0,
        "a prefix of the token is not the token"
    );
    assert_eq!(release(&mut con, b"k", b"t1x"), 0);
    let i = info(&mut con, b"k");
    assert!(i.held);
    assert_eq!(i.fence, f);
}

#[test]
fn release_and_extend_of_a_never_held_lock_return_0_and_create_nothing() {
    let server = RedisServer::start();
    let mut con = server.connection();
    assert_eq!(release(&mut con, b"k", b"t1"), 0);
    assert_eq!(extend(&mut con, b"k", b"t1", 10_000), 0);
    assert_eq!(force_release(&mut con, b"k"), 0);
    assert!(!exists(&mut con, b"k"));
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, 0);
}

#[test]
fn extend_by_the_holder_resets_expiry_to_now_plus_ttl() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let f = acquire(&mut con, b"k", b"t1", 1_000).unwrap();
    assert_eq!(extend(&mut con, b"k", b"t1", 60_000), 1);
    let i = info(&mut con, b"k");
    assert!(
        i.pttl > 59_000 && i.pttl <= 60_000,
        "pttl {} after EXTEND 60000",
        i.pttl
    );
    assert_eq!(i.fence, f, "EXTEND keeps the fence");
    // Extend can also shorten: it sets now + ttl, it does not add.
    assert_eq!(extend(&mut con, b"k", b"t1", 5_000), 1);
    let pttl = info(&mut con, b"k").pttl;
    assert!(
        pttl > 4_000 && pttl <= 5_000,
        "pttl {pttl} after EXTEND 5000"
    );
}

#[test]
fn extend_by_a_wrong_token_returns_0_and_keeps_the_expiry() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"t1", 5_000).unwrap();
    assert_eq!(extend(&mut con, b"k", b"t2", 60_000), 0);
    let pttl = info(&mut con, b"k").pttl;
    assert!(
        pttl <= 5_000,
        "a wrong token extended the lock to pttl {pttl}"
    );
}

#[test]
fn reacquire_by_the_holder_returns_the_same_fence_and_resets_pttl() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let f = acquire(&mut con, b"k", b"t1", 1_000).unwrap();
    assert_eq!(acquire(&mut con, b"k", b"t1", 60_000), Some(f));
    let pttl = info(&mut con, b"k").pttl;
    assert!(
        pttl > 59_000,
        "pttl {pttl}: re-acquire must reset expiry to now + ttl"
    );
    // With WAIT too: the holder is granted at once, not queued behind itself.
    assert_eq!(acquire_wait(&mut con, b"k", b"t1", 30_000, 1_000), Some(f));
    let i = info(&mut con, b"k");
    assert!(i.pttl > 29_000 && i.pttl <= 30_000, "pttl {}", i.pttl);
    assert_eq!(i.waiters, 0);
}

#[test]
fn reacquire_is_not_a_reentrancy_counter() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"t1", 10_000).unwrap();
    acquire(&mut con, b"k", b"t1", 10_000).unwrap();
    acquire(&mut con, b"k", b"t1", 10_000).unwrap();
    assert_eq!(release(&mut con, b"k", b"t1"), 1);
    assert!(!info(&mut con, b"k").held, "one release frees the lock");
}

#[test]
fn forcerelease_removes_any_holder_then_finds_none() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"t1", 10_000).unwrap();
    assert_eq!(force_release(&mut con, b"k"), 1);
    assert!(!exists(&mut con, b"k"));
    assert!(!info(&mut con, b"k").held);
    assert_eq!(force_release(&mut con, b"k"), 0);
    // The old holder lost it.
    assert_eq!(release(&mut con, b"k", b"t1"), 0);
    assert_eq!(extend(&mut con, b"k", b"t1", 1_000), 0);
}

#[test]
fn fence_answers_the_holders_fence_while_held_and_0_when_free() {
    let server = RedisServer::start();
    let mut con = server.connection();
    assert_eq!(fence(&mut con, b"k"), 0, "never held");
    let f = acquire(&mut con, b"k", b"t1", 10_000).unwrap();
    assert_eq!(fence(&mut con, b"k"), f);
    release(&mut con, b"k", b"t1");
    assert_eq!(fence(&mut con, b"k"), 0, "forgotten once free (DESIGN)");
}

#[test]
fn locks_on_different_keys_are_independent() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let a = acquire(&mut con, b"a", b"t1", 10_000).unwrap();
    let b = acquire(&mut con, b"b", b"t2", 10_000).expect("another key is free");
    assert_ne!(a, b);
    assert_eq!(release(&mut con, b"a", b"t2"), 0, "t2 holds b, not a");
    assert_eq!(release(&mut con, b"a", b"t1"), 1);
    assert!(info(&mut con, b"b").held);
}

#[test]
fn a_held_lock_is_a_key_of_a_module_type() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"t1", 10_000).unwrap();
    let ty: String = redis::cmd("TYPE").arg("k").query(&mut con).unwrap();
    assert!(
        ty != "none" && ty != "string",
        "TYPE of a lock key is {ty:?}"
    );
    let (_, keys): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(0)
        .arg("COUNT")
        .arg(100)
        .query(&mut con)
        .unwrap();
    assert_eq!(keys, vec!["k".to_string()]);
    let mem: Option<i64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("k")
        .query(&mut con)
        .unwrap();
    assert!(mem.is_some_and(|m| m > 0), "MEMORY USAGE {mem:?}");
}

#[test]
fn keys_and_tokens_are_binary_safe() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let key: &[u8] = b"k\0\r\n\xff x";
    let other_key: &[u8] = b"k\0\r\n\xfe x";
    let token: &[u8] = b"\0\r\n\xff\xfe tok";
    let similar: &[u8] = b"\0\r\n\xff\xfd tok";
    let f = acquire(&mut con, key, token, 10_000).expect("granted");
    assert_eq!(acquire(&mut con, key, similar, 10_000), None);
    assert!(
        acquire(&mut con, other_key, similar, 10_000).is_some(),
        "keys differ in one byte"
    );
    assert_eq!(
        acquire(&mut con, key, token, 10_000),
        Some(f),
        "same bytes = same holder"
    );
    assert_eq!(release(&mut con, key, similar), 0);
    assert_eq!(extend(&mut con, key, token, 20_000), 1);
    assert_eq!(fence(&mut con, key), f);
    assert_eq!(release(&mut con, key, token), 1);
    assert!(!exists(&mut con, key));
    // A token of exactly 256 arbitrary bytes is valid.
    let long: Vec<u8> = (0..=255u8).collect();
    assert!(acquire(&mut con, key, &long, 10_000).is_some());
    assert_eq!(release(&mut con, key, &long), 1);
}

#[test]
fn ttl_bounds_are_inclusive() {
    let server = RedisServer::start();
    let mut con = server.connection();
    assert!(acquire(&mut con, b"max", b"t", 2_147_483_647).is_some());
    let pttl = info(&mut con, b"max").pttl;
    assert!(pttl > 2_147_000_000, "pttl {pttl} for ttl 2^31-1");
    assert_eq!(extend(&mut con, b"max", b"t", 2_147_483_647), 1);
    assert!(acquire_wait(&mut con, b"free", b"t", 1_000, 2_147_483_647).is_some());
    // ttl 1 is valid: granted, and gone almost at once.
    assert!(acquire(&mut con, b"one", b"t", 1).is_some());
}
