//! Managed Redis: `requirepass` and ACL users made with `ACL SETUSER` at
//! test time, each allowed only what the README's "Managed Redis and
//! security" section recommends (or less), against real servers. A lock
//! user locks, waits, extends, releases and cancels waits without `CLIENT`,
//! `INFO`, `COMMAND`, `CONFIG` or `MODULE`, and gets
//! [`Error::NoPermission`] for what it may not do; `Backend::Auto` picks a
//! working backend and logs which and why; an explicit module backend that
//! the user may not use fails at build, naming the command; the bus runs
//! with a user limited to `bus:*` keys; a lock admin force-releases and
//! reads `LOCK.STATS`; semaphores work for the same lock users.

use std::time::Duration;

#[cfg(feature = "bus")]
use baton_client::bus::Bus;
use baton_client::{Backend, BackendKind, Client, Error, LockOptions};
use baton_harness::lock::{acquire, info, release};
use baton_harness::RedisServer;
use common::{capture_logs, eventually, granted, opts};
#[cfg(feature = "bus")]
use futures_util::StreamExt;
use tokio::time::{timeout, Instant};

mod common;

const PASSWORD: &str = "acl-test-password";

/// A lock user of the module backend: the lock and semaphore commands a
/// holder needs, on keys `orders:*` only; no `CLIENT`, `INFO`, `COMMAND`,
/// `CONFIG`, `MODULE`, `LOCK.FORCERELEASE`, `SEM.FORCERELEASE`,
/// `LOCK.STATS` or `LOCK.APPLY`.
const MODULE_LOCK_USER: &[&str] = &[
    "+lock.acquire",
    "+lock.release",
    "+lock.extend",
    "+lock.info",
    "+lock.fence",
    "+sem.acquire",
    "+sem.release",
    "+sem.extend",
    "+sem.info",
    "~orders:*",
];

/// What a lock admin may do on top of a lock user's commands.
const MODULE_ADMIN_EXTRA: &[&str] = &["+lock.forcerelease", "+sem.forcerelease", "+lock.stats"];

/// A lock user of the Lua backend: EVALSHA/EVAL (and SCRIPT LOAD), the
/// commands the scripts run, pub/sub for the hand-off messages, and the
/// `baton:*` keys and channels only.
const LUA_LOCK_USER: &[&str] = &[
    "+evalsha",
    "+eval",
    "+script|load",
    "+subscribe",
    "+unsubscribe",
    "+time",
    "+exists",
    "+del",
    "+hget",
    "+hmget",
    "+hset",
    "+hdel",
    "+hincrby",
    "+pexpire",
    "+pexpireat",
    "+pttl",
    "+zadd",
    "+zcard",
    "+zrange",
    "+zrangebyscore",
    "+zrem",
    "+zscore",
    "+publish",
    "~baton:*",
    "&baton:*",
];

#[cfg(feature = "bus")]
/// A bus user: the stream commands and the bus's scripts, on `bus:*` keys
/// only; no `CLIENT`.
const BUS_USER: &[&str] = &[
    "+xadd",
    "+xread",
    "+xreadgroup",
    "+xgroup",
    "+xack",
    "+xautoclaim",
    "+xclaim",
    "+xpending",
    "+xrange",
    "+xrevrange",
    "+xlen",
    "+xinfo",
    "+exists",
    "+get",
    "+set",
    "+hget",
    "+hset",
    "+hdel",
    "+hincrby",
    "+evalsha",
    "+eval",
    "+script|load",
    "~bus:*",
];

/// Everything but the commands managed Redis typically denies.
const RESTRICTED: &[&str] = &[
    "+@all", "-module", "-info", "-client", "-command", "-config", "~*", "&*",
];

async fn client_as(s: &RedisServer, user: &str, backend: Backend) -> baton_client::Result<Client> {
    Client::builder(s.url_as(user, PASSWORD))
        .backend(backend)
        .build()
        .await
}

/// A held lock kept past its ttl by the watchdog, an explicit extend, and
/// a waiter granted at the release: what a lock user does.
async fn hold_extend_and_hand_over(c: &Client, key: &str) {
    let holder = c.lock(key, &opts(300)).await.unwrap();
    let waiter = {
        let (c, key) = (c.clone(), key.to_owned());
        tokio::spawn(async move {
            c.lock(&key, &opts(10_000).wait(Duration::from_secs(10)))
                .await
        })
    };
    eventually(Duration::from_secs(5), "the waiter queued", || async {
        c.info(key).await.unwrap().waiters == 1
    })
    .await;
    // Three ttls: only the watchdog keeps it.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(!holder.is_lost() && c.info(key).await.unwrap().held);
    assert!(holder.extend(Duration::from_secs(5)).await.unwrap());
    let fence = holder.fence();
    assert!(holder.release().await.unwrap());
    let g = granted(waiter).await.expect("the waiter is granted");
    assert!(g.fence() > fence);
    assert!(g.release().await.unwrap());
}

/// A lease of a semaphore, its info and its release.
async fn lease_and_release(c: &Client, key: &str) {
    let sem = c.semaphore(key, 2);
    let lease = sem.acquire(1, &opts(10_000)).await.unwrap();
    assert_eq!(sem.info().await.unwrap().used, 1);
    assert!(lease.release().await.unwrap());
}

/// A module lock user (only the lock commands, only `orders:*`) builds a
/// client with `Backend::Auto`, which finds the module without `COMMAND`
/// and says so; locks, waits (no `CLIENT` for the wait connection),
/// extends and releases; and gets `NoPermission` naming the command for a
/// force release, and for a key outside its pattern.
#[tokio::test]
async fn a_module_lock_user_locks_waits_extends_and_releases() {
    let s = RedisServer::start();
    s.acl_user("locker", PASSWORD, MODULE_LOCK_USER);
    let (_guard, logs) = capture_logs();
    let c = client_as(&s, "locker", Backend::Auto).await.unwrap();
    assert_eq!(c.backend_kind(), BackendKind::Module);
    let log = logs.text();
    assert!(
        log.contains("using the module backend") && log.contains("COMMAND INFO was refused"),
        "says which backend and why: {log}"
    );
    hold_extend_and_hand_over(&c, "orders:1").await;
    lease_and_release(&c, "orders:sem").await;
    match c.force_release("orders:1").await {
        Err(Error::NoPermission(why)) => assert!(why.contains("lock.forcerelease"), "{why}"),
        other => panic!("force release by a lock user: {other:?}"),
    }
    match c.semaphore("orders:sem", 2).force_release().await {
        Err(Error::NoPermission(why)) => assert!(why.contains("sem.forcerelease"), "{why}"),
        other => panic!("a semaphore's force release by a lock user: {other:?}"),
    }
    match c.stats().await {
        Err(Error::NoPermission(why)) => assert!(why.contains("lock.stats"), "{why}"),
        other => panic!("stats by a lock user: {other:?}"),
    }
    match c.lock("invoices:1", &opts(1_000)).await {
        Err(e @ Error::NoPermission(_)) => assert!(e.to_string().contains("key"), "{e}"),
        other => panic!("a key outside orders:*: {other:?}"),
    }
}

/// A module lock admin (a lock user's commands and the force releases and
/// `LOCK.STATS`) takes a lock user's lock and lease away, and the holder
/// learns of the loss; it reads the node's counters.
#[tokio::test]
async fn a_module_lock_admin_force_releases_and_reads_stats() {
    let s = RedisServer::start();
    s.acl_user("locker", PASSWORD, MODULE_LOCK_USER);
    let admin_rules: Vec<&str> = MODULE_LOCK_USER
        .iter()
        .chain(MODULE_ADMIN_EXTRA)
        .copied()
        .collect();
    s.acl_user("lockadmin", PASSWORD, &admin_rules);
    let user = client_as(&s, "locker", Backend::Module).await.unwrap();
    let admin = client_as(&s, "lockadmin", Backend::Module).await.unwrap();
    // A ttl of 3 s: the watchdog extends every second, and finds out.
    let held = user.lock("orders:7", &opts(3_000)).await.unwrap();
    let lease = user
        .semaphore("orders:pool", 3)
        .acquire(2, &opts(3_000))
        .await
        .unwrap();
    assert!(admin.force_release("orders:7").await.unwrap());
    assert_eq!(
        admin
            .semaphore("orders:pool", 3)
            .force_release()
            .await
            .unwrap(),
        1
    );
    timeout(Duration::from_secs(5), held.lost())
        .await
        .expect("the holder learns its lock was taken");
    timeout(Duration::from_secs(5), lease.lost())
        .await
        .expect("the holder learns its lease was taken");
    let stats = admin.stats().await.unwrap();
    assert_eq!(stats.force_releases, 1, "{stats:?}");
}

/// A cancelled module wait leaves nothing held or queued, for a user who
/// may not run `CLIENT` (no `CLIENT KILL`): cancelled while queued behind a
/// holder, and cancelled at once on a free lock (where the ACQUIRE may
/// reach the server after the cleanup started, and be granted).
#[tokio::test]
async fn a_cancelled_module_wait_leaves_nothing_held_without_client() {
    let s = RedisServer::start();
    s.acl_user("locker", PASSWORD, MODULE_LOCK_USER);
    let c = client_as(&s, "locker", Backend::Module).await.unwrap();
    let mut admin = s.connection();
    let wait = opts(60_000).wait(Duration::from_secs(30));
    for i in 0..10u64 {
        acquire(&mut admin, b"orders:q", b"admin", 60_000).unwrap();
        let cancelled = timeout(Duration::from_millis(20 + 5 * i), c.lock("orders:q", &wait)).await;
        assert!(
            cancelled.is_err(),
            "the lock is held: the wait is cut short"
        );
        c.flush().await;
        assert_eq!(
            info(&mut admin, b"orders:q").waiters,
            0,
            "round {i}: the cancelled wait left the queue"
        );
        assert_eq!(release(&mut admin, b"orders:q", b"admin"), 1);
        assert!(
            !info(&mut admin, b"orders:q").held,
            "round {i}: nothing was handed to the cancelled wait"
        );
    }
    for i in 0..30u64 {
        let at = Duration::from_micros(100 * i);
        if let Ok(granted) = timeout(at, c.lock("orders:f", &wait)).await {
            assert!(granted.unwrap().release().await.unwrap());
        }
        c.flush().await;
        let left = info(&mut admin, b"orders:f");
        assert!(
            !left.held && left.waiters == 0,
            "cancelled after {at:?}: {left:?}"
        );
    }
}

/// A user denied `MODULE`, `INFO`, `CLIENT`, `COMMAND` and `CONFIG`:
/// `Backend::Auto` picks the module where it is loaded and Lua where not,
/// and logs which and why; waits work on both; an explicit module backend
/// on a server without it says there is none.
#[tokio::test]
async fn auto_picks_a_working_backend_for_a_restricted_user() {
    let module = RedisServer::start();
    let plain = RedisServer::builder().without_module().start();
    for s in [&module, &plain] {
        s.acl_user("restricted", PASSWORD, RESTRICTED);
    }
    let (_guard, logs) = capture_logs();
    let c = client_as(&module, "restricted", Backend::Auto)
        .await
        .unwrap();
    assert_eq!(c.backend_kind(), BackendKind::Module);
    assert!(logs.text().contains("using the module backend"));
    hold_extend_and_hand_over(&c, "k").await;
    // Named explicitly, the module needs none of the denied commands either.
    let c = client_as(&module, "restricted", Backend::Module)
        .await
        .unwrap();
    hold_extend_and_hand_over(&c, "k2").await;

    let c = client_as(&plain, "restricted", Backend::Auto)
        .await
        .unwrap();
    assert_eq!(c.backend_kind(), BackendKind::Lua);
    let log = logs.text();
    assert!(
        log.contains("using the Lua backend") && log.contains("LOCK.ACQUIRE is an unknown command"),
        "says which backend and why: {log}"
    );
    hold_extend_and_hand_over(&c, "k").await;

    match client_as(&plain, "restricted", Backend::Module).await {
        Err(Error::BackendUnavailable(why)) => {
            assert!(why.contains("no baton module"), "{why}")
        }
        other => panic!("module backend on a server without it: {other:?}"),
    }
}

/// A user who may not run `LOCK.ACQUIRE` on a server with the module: the
/// module backend fails at build with an error naming the command, and
/// `Backend::Auto` fails the same way instead of taking Lua (whose locks
/// would not exclude the module's).
#[tokio::test]
async fn the_module_backend_fails_fast_for_a_user_denied_lock_acquire() {
    let s = RedisServer::start();
    s.acl_user("nolock", PASSWORD, &["+@all", "-lock.acquire", "~*", "&*"]);
    for backend in [Backend::Module, Backend::Auto] {
        let started = Instant::now();
        match client_as(&s, "nolock", backend).await {
            Err(Error::NoPermission(why)) => assert!(
                why.contains("LOCK.ACQUIRE") && why.contains("'lock.acquire'"),
                "{backend:?}: {why}"
            ),
            other => panic!("{backend:?}: {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(2), "fails fast");
    }
}

/// A Lua lock user limited to the `baton:*` keys and channels and the
/// commands the scripts run: `Backend::Auto` takes Lua, and locks, waits
/// (woken by pub/sub), extends and releases work. Also without `SCRIPT`
/// (the scripts are then sent whole on first use). On Lua a force release
/// is a script like the rest: the ACL cannot keep a lock user from it.
#[tokio::test]
async fn a_lua_lock_user_limited_to_baton_keys_locks_and_waits() {
    let s = RedisServer::builder().without_module().start();
    s.acl_user("lualocker", PASSWORD, LUA_LOCK_USER);
    let no_script: Vec<&str> = LUA_LOCK_USER
        .iter()
        .copied()
        .filter(|r| *r != "+script|load")
        .collect();
    s.acl_user("noscript", PASSWORD, &no_script);
    for user in ["lualocker", "noscript"] {
        let c = client_as(&s, user, Backend::Auto).await.unwrap();
        assert_eq!(c.backend_kind(), BackendKind::Lua, "{user}");
        hold_extend_and_hand_over(&c, &format!("{user}:k")).await;
        lease_and_release(&c, &format!("{user}:sem")).await;
        let g = c.lock("f", &opts(10_000)).await.unwrap();
        assert!(c.force_release("f").await.unwrap(), "{user}");
        assert!(!g.release().await.unwrap());
    }
}

/// The bus with a user limited to `bus:*` keys and no `CLIENT`: publish
/// (also idempotent), a broadcast subscriber and a consumer group get the
/// messages, and the consumer's shutdown, which cannot end its blocking
/// read with `CLIENT UNBLOCK`, ends with the read's block.
#[cfg(feature = "bus")]
#[tokio::test]
async fn the_bus_works_for_a_user_limited_to_bus_keys() {
    let s = RedisServer::builder().without_module().start();
    s.acl_user("buser", PASSWORD, BUS_USER);
    let bus = Bus::connect(&s.url_as("buser", PASSWORD)).unwrap();
    let mut sub = bus.subscribe::<u32>("orders").await.unwrap();
    let mut work = bus
        .consume::<u32>("orders", "billing")
        .block(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    bus.publish("orders", &1u32).await.unwrap();
    let opts = baton_client::bus::PublishOptions::new().idempotency_key("once");
    for _ in 0..2 {
        bus.publish_with("orders", &2u32, opts.clone())
            .await
            .unwrap();
    }
    for want in [1, 2] {
        let m = timeout(Duration::from_secs(5), sub.next()).await;
        assert_eq!(m.unwrap().unwrap().unwrap().payload, want);
        let m = timeout(Duration::from_secs(5), work.next()).await;
        let m = m.unwrap().unwrap().unwrap();
        assert_eq!(m.payload, want);
        m.ack().await.unwrap();
    }
    let closing = Instant::now();
    timeout(Duration::from_secs(5), work.close())
        .await
        .expect("the consumer closes within its block time")
        .expect("nothing queued fails");
    assert!(closing.elapsed() < Duration::from_secs(2));
}

/// `requirepass`: the password in the URL logs in; a wrong one fails at
/// once with an error that shows neither password.
#[tokio::test]
async fn a_password_logs_in_and_a_wrong_one_fails_fast_without_showing_it() {
    let s = RedisServer::builder().requirepass(PASSWORD).start();
    let c = Client::builder(s.url()).build().await.unwrap();
    let g = c.lock("k", &LockOptions::new()).await.unwrap();
    assert!(g.release().await.unwrap());
    let wrong = "not-the-password-42";
    let started = Instant::now();
    let err = Client::builder(format!("redis://:{wrong}@127.0.0.1:{}", s.port()))
        .build()
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "fails fast");
    let shown = format!("{err} {err:?}");
    assert!(
        shown.to_lowercase().contains("authentication failed"),
        "{shown}"
    );
    assert!(
        !shown.contains(wrong) && !shown.contains(PASSWORD),
        "{shown}"
    );
}
