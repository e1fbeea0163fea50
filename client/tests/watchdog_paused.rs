//! The watchdog on the memory backend: its timing under paused tokio time,
//! and the runtime it runs on.

use std::time::Duration;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use baton_client::{Client, LockOptions};
use tokio::time::{timeout, Instant};

#[tokio::test(start_paused = true)]
async fn held_for_five_ttls_with_the_watchdog() {
    let c = Client::memory();
    let g = c
        .lock("p", &LockOptions::new().ttl(Duration::from_millis(300)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!g.is_lost());
    assert!(c.info("p").await.unwrap().held);
    assert!(g.release().await.unwrap());
}

/// Without the watchdog the lost signal fires at the ttl less the margin
/// (2 ms + 1%: 5 ms of 300), while the lock is still held; it is free at
/// the ttl.
#[tokio::test(start_paused = true)]
async fn without_watchdog_lost_fires_before_the_ttl_runs_out() {
    let c = Client::memory();
    let started = Instant::now();
    let g = c
        .lock(
            "p",
            &LockOptions::new()
                .ttl(Duration::from_millis(300))
                .watchdog(false),
        )
        .await
        .unwrap();
    timeout(Duration::from_millis(296), g.lost())
        .await
        .expect("lost by the ttl less the margin");
    assert!(started.elapsed() >= Duration::from_millis(295));
    assert!(
        c.info("p").await.unwrap().held,
        "the server side still holds"
    );
    tokio::time::sleep_until(started + Duration::from_millis(300)).await;
    assert!(!c.info("p").await.unwrap().held);
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Polls `fut` once, outside any runtime: the memory backend's calls
/// without a wait never need to wait.
fn poll_once<F: Future>(fut: F) -> F::Output {
    match pin!(fut).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("not ready on the first poll"),
    }
}

/// The watchdog runs on the client's runtime; when that runtime shuts down
/// the watchdog goes with it, and nothing keeps the lock alive any more.
#[test]
fn a_guard_reports_lost_when_its_runtime_shuts_down() {
    let rt = current_thread();
    let (c, g) = rt.block_on(async {
        let c = Client::memory();
        let g = c.lock("rt", &LockOptions::new()).await.unwrap();
        (c, g)
    });
    assert!(!g.is_lost());
    drop(rt);
    assert!(g.is_lost(), "no watchdog any more: lost");
    drop(g);
    assert!(!poll_once(c.info("rt")).unwrap().held, "drop released");
}

/// A guard made where no runtime runs (the client's is gone, none is
/// current) does not panic; with no watchdog it cannot be proven held.
#[test]
fn a_guard_made_outside_a_runtime_does_not_panic() {
    let rt = current_thread();
    let c = rt.block_on(async { Client::memory() });
    drop(rt);
    let g = poll_once(c.try_lock("out", &LockOptions::new()))
        .unwrap()
        .expect("granted");
    assert!(g.is_lost(), "no runtime, no watchdog: lost at once");
    assert!(poll_once(c.info("out")).unwrap().held);
    drop(g);
    assert!(!poll_once(c.info("out")).unwrap().held, "drop released");
}
