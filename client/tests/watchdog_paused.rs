//! Watchdog timing on the memory backend under paused tokio time.

use std::time::Duration;

use baton_client::{Client, LockOptions};
use tokio::time::{timeout, Instant};

#[tokio::test(start_paused = true)]
async fn held_for_five_ttls_with_the_watchdog() {
    let c = Client::memory();
    let g = c
        .lock("p", LockOptions::new().ttl(Duration::from_millis(300)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!g.is_lost());
    assert!(c.info("p").await.unwrap().held);
    assert!(g.release().await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn without_watchdog_lost_fires_at_the_ttl() {
    let c = Client::memory();
    let started = Instant::now();
    let g = c
        .lock(
            "p",
            LockOptions::new()
                .ttl(Duration::from_millis(300))
                .watchdog(false),
        )
        .await
        .unwrap();
    timeout(Duration::from_millis(301), g.lost())
        .await
        .expect("lost by the ttl");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(!c.info("p").await.unwrap().held);
}
