//! Helpers shared by the client's integration tests.

#![allow(dead_code)] // each test binary uses its own subset

use std::time::Duration;

use baton_client::LockOptions;
use tokio::time::Instant;

/// Polls an async condition until a deadline.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !cond().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Lock options with a ttl of `ttl_ms`.
pub fn opts(ttl_ms: u64) -> LockOptions {
    LockOptions::new().ttl(Duration::from_millis(ttl_ms))
}
