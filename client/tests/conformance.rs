//! One conformance suite for the lock sentences of SPEC §2–4, run against
//! every backend: the module, Lua (plain Redis) and memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_client::{Backend, Client, Error};
use baton_tests::RedisServer;
use common::{eventually, opts};
use tokio::time::{timeout, Instant};

mod common;

/// A client on a fresh server (kept alive by the returned handle).
async fn setup(kind: Backend) -> (Option<RedisServer>, Client) {
    let server = match kind {
        Backend::Memory => return (None, Client::memory()),
        Backend::Module => RedisServer::start(),
        _ => RedisServer::builder().without_module().start(),
    };
    let client = Client::builder(server.url())
        .backend(kind)
        .build()
        .await
        .expect("client");
    assert_eq!(client.backend_kind(), kind);
    (Some(server), client)
}

async fn grant_busy_and_idempotent_release(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let g = c.lock("k", opts(10_000)).await.unwrap();
    assert!(g.fence() > 0);
    assert_eq!(c.fence("k").await.unwrap(), g.fence());
    assert!(c.try_lock("k", opts(10_000)).await.unwrap().is_none());
    assert!(g.release().await.unwrap());
    assert!(
        g.release().await.unwrap(),
        "second release repeats the first answer"
    );
    let info = c.info("k").await.unwrap();
    assert!(!info.held && info.pttl.is_none() && info.fence == 0);
}

async fn fences_strictly_increase(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let mut last = 0;
    for _ in 0..5 {
        let g = c.lock("f", opts(10_000)).await.unwrap();
        assert!(g.fence() > last);
        last = g.fence();
        assert!(c.force_release("f").await.unwrap() || g.release().await.unwrap());
    }
}

async fn keys_are_validated(kind: Backend) {
    let (_s, c) = setup(kind).await;
    assert!(matches!(
        c.lock("", opts(100)).await,
        Err(Error::InvalidKey { .. })
    ));
    assert!(matches!(
        c.lock("a b", opts(100)).await,
        Err(Error::InvalidKey { .. })
    ));
    assert!(matches!(
        c.lock("ok", opts(100).ttl(Duration::ZERO)).await,
        Err(Error::InvalidOptions(_))
    ));
}

async fn wait_times_out_with_not_acquired(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let _g = c.lock("t", opts(10_000)).await.unwrap();
    let started = Instant::now();
    let wait = Duration::from_millis(300);
    match c.lock("t", opts(10_000).wait(wait)).await {
        Err(Error::NotAcquired { key, wait: w }) => assert_eq!((key.as_str(), w), ("t", wait)),
        other => panic!("expected NotAcquired, got {other:?}"),
    }
    assert!(started.elapsed() >= wait - Duration::from_millis(5));
    eventually(
        Duration::from_secs(2),
        "timed-out waiter left the queue",
        || async { c.info("t").await.unwrap().waiters == 0 },
    )
    .await;
}

async fn fifo_order_and_no_barging(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let holder = c.lock("q", opts(10_000)).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..6u64 {
        let (c2, order) = (c.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let g = c2
                .lock("q", opts(10_000).wait(Duration::from_secs(20)))
                .await
                .unwrap();
            order.lock().unwrap().push((i, g.fence()));
            assert!(g.release().await.unwrap());
        }));
        eventually(Duration::from_secs(5), "waiter queued", || async {
            c.info("q").await.unwrap().waiters == i + 1
        })
        .await;
    }
    // A newcomer never overtakes a waiter, even right after a release.
    assert!(c.try_lock("q", opts(10_000)).await.unwrap().is_none());
    assert!(holder.release().await.unwrap());
    assert!(
        c.try_lock("q", opts(10_000)).await.unwrap().is_none() || order.lock().unwrap().len() == 6
    );
    for t in tasks {
        timeout(Duration::from_secs(20), t).await.unwrap().unwrap();
    }
    let order = order.lock().unwrap().clone();
    let ids: Vec<u64> = order.iter().map(|o| o.0).collect();
    assert_eq!(ids, (0..6).collect::<Vec<_>>(), "granted in arrival order");
    assert!(
        order.windows(2).all(|w| w[0].1 < w[1].1),
        "fences increase: {order:?}"
    );
}

async fn cancelled_wait_leaves_the_queue(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let holder = c.lock("c", opts(10_000)).await.unwrap();
    let waiting = c.lock("c", opts(10_000).wait(Duration::from_secs(30)));
    assert!(timeout(Duration::from_millis(300), waiting).await.is_err());
    eventually(
        Duration::from_secs(5),
        "cancelled waiter left the queue",
        || async { c.info("c").await.unwrap().waiters == 0 },
    )
    .await;
    assert!(holder.release().await.unwrap());
    let g = c.try_lock("c", opts(10_000)).await.unwrap();
    assert!(g.is_some(), "the lock is free after the cancelled wait");
}

async fn force_release_hands_off_and_signals_lost(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let holder = c.lock("fr", opts(2_000)).await.unwrap();
    let c2 = c.clone();
    let waiter = tokio::spawn(async move {
        c2.lock("fr", opts(10_000).wait(Duration::from_secs(10)))
            .await
    });
    eventually(Duration::from_secs(5), "waiter queued", || async {
        c.info("fr").await.unwrap().waiters == 1
    })
    .await;
    assert!(c.force_release("fr").await.unwrap());
    let g = timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(g.fence() > holder.fence());
    timeout(Duration::from_millis(2_000), holder.lost())
        .await
        .expect("lost within the ttl");
    assert!(!holder.release().await.unwrap());
    assert!(!c.force_release("nobody").await.unwrap());
}

async fn expiry_hands_off_to_the_waiter(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let holder = c.lock("e", opts(300).watchdog(false)).await.unwrap();
    let started = Instant::now();
    let g = c
        .lock("e", opts(10_000).wait(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "hand-off soon after the ttl"
    );
    assert!(g.fence() > holder.fence());
    timeout(Duration::from_millis(100), holder.lost())
        .await
        .expect("expired lock is lost");
}

async fn watchdog_keeps_the_lock(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let g = c.lock("w", opts(200)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_000)).await; // 5x the ttl
    assert!(!g.is_lost());
    assert!(c.info("w").await.unwrap().held);
    assert!(g.extend(Duration::from_millis(500)).await.unwrap());
    assert!(g.release().await.unwrap());
}

async fn drop_releases_in_the_background(kind: Backend) {
    let (_s, c) = setup(kind).await;
    {
        let _g = c.lock("d", opts(60_000)).await.unwrap();
    }
    eventually(Duration::from_secs(2), "dropped guard released", || async {
        !c.info("d").await.unwrap().held
    })
    .await;
}

async fn with_lock_always_releases(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let fence = c
        .with_lock("s", opts(5_000), async |g| g.fence())
        .await
        .unwrap();
    assert!(fence > 0);
    assert!(!c.info("s").await.unwrap().held);
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory { $( #[tokio::test] async fn $name() { super::$name(baton_client::Backend::Memory).await } )* }
        mod lua { $( #[tokio::test] async fn $name() { super::$name(baton_client::Backend::Lua).await } )* }
        mod module { $( #[tokio::test] async fn $name() { super::$name(baton_client::Backend::Module).await } )* }
    };
}

suite!(
    grant_busy_and_idempotent_release,
    fences_strictly_increase,
    keys_are_validated,
    wait_times_out_with_not_acquired,
    fifo_order_and_no_barging,
    cancelled_wait_leaves_the_queue,
    force_release_hands_off_and_signals_lost,
    expiry_hands_off_to_the_waiter,
    watchdog_keeps_the_lock,
    drop_releases_in_the_background,
    with_lock_always_releases,
);

#[tokio::test]
async fn lua_survives_script_flush() {
    let (s, c) = setup(Backend::Lua).await;
    let mut con = s.as_ref().unwrap().connection();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut con).unwrap();
    let g = c.lock("flush", opts(5_000)).await.unwrap();
    assert!(g.release().await.unwrap());
}

#[tokio::test]
async fn explicit_module_fails_fast_without_module() {
    let s = RedisServer::builder().without_module().start();
    let err = Client::builder(s.url())
        .backend(Backend::Module)
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::BackendUnavailable(m) if m.contains("module")),
        "{err}"
    );
    let auto = Client::builder(s.url()).build().await.unwrap();
    assert_eq!(auto.backend_kind(), Backend::Lua);
}

#[tokio::test]
async fn lost_fires_within_the_ttl_when_the_server_dies() {
    for kind in [Backend::Lua, Backend::Module] {
        let (s, c) = setup(kind).await;
        let mut s = s.unwrap();
        let g = c.lock("dead", opts(600)).await.unwrap();
        let killed = Instant::now();
        s.kill();
        timeout(Duration::from_millis(700), g.lost())
            .await
            .expect("lost within the ttl");
        assert!(killed.elapsed() <= Duration::from_millis(700), "{kind:?}");
    }
}

#[tokio::test]
async fn memory_durable_fails_without_replicas() {
    let c = Client::memory();
    let err = c
        .lock("dur", opts(1_000).durable(1, Duration::from_millis(10)))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::NotReplicated {
            acked: 0,
            wanted: 1,
            ..
        }
    ));
    assert!(
        !c.info("dur").await.unwrap().held,
        "released after the failed durability check"
    );
}
