//! Helpers shared by the client's integration tests.

#![allow(dead_code)] // each test binary uses its own subset

use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_client::{Backend, Client, LockGuard, LockOptions};
use baton_harness::RedisServer;
use tokio::time::{timeout, Instant};

/// `suite!(a, b)`: one `#[tokio::test]` per backend (memory, Lua, module)
/// for each `async fn a(backend: Backend)` of the test file, in modules
/// named after the backends.
#[allow(unused_macros)] // only the files that run on every backend use it
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory { $( #[tokio::test] async fn $name() { super::$name(baton_client::Backend::Memory).await } )* }
        mod lua { $( #[tokio::test] async fn $name() { super::$name(baton_client::Backend::Lua).await } )* }
        mod module { $( #[tokio::test] async fn $name() { super::$name(baton_client::Backend::Module).await } )* }
    };
}

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

/// The outcome of a waiter task, which must end within 10 s.
pub async fn granted<T>(task: tokio::task::JoinHandle<T>) -> T {
    timeout(Duration::from_secs(10), task)
        .await
        .expect("granted in time")
        .expect("the waiter task")
}

/// Lock options with a ttl of `ttl_ms`.
/// Options with a ttl and no wait: `lock` tries once unless a test sets a
/// wait.
pub fn opts(ttl_ms: u64) -> LockOptions {
    LockOptions::new()
        .ttl(Duration::from_millis(ttl_ms))
        .wait(Duration::ZERO)
}

/// A holder without watchdog expires at its ttl of 300 ms; a waiter on `key`
/// gets the lock soon after with a larger fence, and the holder's `lost()`
/// fires within `lost_within`. Returns the waiter's guard.
pub async fn expiry_hands_off(c: &Client, key: &str, lost_within: Duration) -> LockGuard {
    let holder = c.lock(key, &opts(300).watchdog(false)).await.unwrap();
    let started = Instant::now();
    let g = c
        .lock(key, &opts(10_000).wait(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{key}: hand-off soon after the ttl"
    );
    assert!(g.fence() > holder.fence());
    timeout(lost_within, holder.lost())
        .await
        .expect("the expired lock is lost");
    g
}

/// Everything the client logs at any level while the guard of
/// [`capture_logs`] lives, as text.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// The text logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures every event and every span with its fields (TRACE and up, a
/// span when it opens and closes) on this thread: for a current-thread
/// runtime, whose tasks all run here.
pub fn capture_logs() -> (tracing::subscriber::DefaultGuard, Logs) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_span_events(
            tracing_subscriber::fmt::format::FmtSpan::NEW
                | tracing_subscriber::fmt::format::FmtSpan::CLOSE,
        )
        .with_writer(move || writer.clone())
        .finish();
    (tracing::subscriber::set_default(subscriber), logs)
}

/// A client of backend `kind` on a fresh server (kept alive by the
/// returned handle; none for the memory backend).
pub async fn setup(kind: Backend) -> (Option<RedisServer>, Client) {
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
