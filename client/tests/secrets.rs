//! Secrets: no password and no lock token shows up in anything the client
//! logs (every event and span field, at TRACE), in an error's text or
//! `Debug`, or in the `Debug` of the builder, the client or a guard. Each
//! test runs a client with a password in its URL through what a user does
//! (locks, waits, a hand-off, a cancelled wait, a timed-out try, the
//! watchdog, a semaphore, force release, the bus), plus the failures a
//! managed Redis user meets (a refused command, a wrong password, a
//! refused TLS certificate), and then looks for the password and for every
//! token the server saw (read with `MONITOR`) in what was captured.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_client::{Backend, BackendKind, Client, Error};
use baton_harness::RedisServer;
use common::{capture_logs, eventually, granted, opts};
use futures_util::StreamExt;
use tokio::time::timeout;

mod common;

const PASSWORD: &str = "adm1n-s3cret-pw";
const USER_PASSWORD: &str = "l0cker-s3cret-pw";

/// Every command a server runs from now on, as `MONITOR` shows it.
struct Monitor {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Monitor {
    async fn start(s: &RedisServer) -> Self {
        let client = redis::Client::open(s.url()).unwrap();
        let monitor = client.get_async_monitor().await.unwrap();
        let lines = Arc::<Mutex<Vec<String>>>::default();
        let sink = Arc::clone(&lines);
        tokio::spawn(async move {
            let mut stream = monitor.into_on_message::<String>();
            while let Some(line) = stream.next().await {
                sink.lock().unwrap().push(line);
            }
        });
        Self { lines }
    }

    /// Every token the server was sent so far: the quoted arguments of 32
    /// hex digits (the client's tokens are 128 random bits in hex).
    async fn tokens(&self, s: &RedisServer) -> Vec<String> {
        // Everything sent before the marker is shown before it.
        let marker = "end-of-the-secrets-run";
        let echoed: String = redis::cmd("ECHO")
            .arg(marker)
            .query(&mut s.connection())
            .unwrap();
        assert_eq!(echoed, marker);
        eventually(
            Duration::from_secs(5),
            "MONITOR shows the marker",
            || async {
                self.lines
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|l| l.contains(marker))
            },
        )
        .await;
        let mut tokens: Vec<String> = self
            .lines
            .lock()
            .unwrap()
            .iter()
            .flat_map(|line| line.split('"').skip(1).step_by(2).map(str::to_owned))
            .filter(|arg| arg.len() == 32 && arg.bytes().all(|b| b.is_ascii_hexdigit()))
            .collect();
        tokens.sort();
        tokens.dedup();
        tokens
    }
}

/// What a run showed: error texts and `Debug`s.
#[derive(Default)]
struct Shown(Vec<String>);

impl Shown {
    fn error(&mut self, e: &Error) {
        self.0.push(format!("{e} / {e:?}"));
    }
    fn debug(&mut self, what: &dyn std::fmt::Debug) {
        self.0.push(format!("{what:?}"));
    }
}

/// Locks, waits, a hand-off, the watchdog, a cancelled wait, a try on a
/// held lock, a wait that times out, a dropped guard, a semaphore, a force
/// release and the bus, on `c`; the errors and `Debug`s into `shown`.
async fn exercise(c: &Client, shown: &mut Shown) {
    let holder = c.lock("s:1", &opts(300)).await.unwrap();
    shown.debug(&holder);
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move {
            c.lock("s:1", &opts(10_000).wait(Duration::from_secs(10)))
                .await
        })
    };
    eventually(Duration::from_secs(5), "the waiter queued", || async {
        c.info("s:1").await.unwrap().waiters == 1
    })
    .await;
    let extends = c.stats().await.unwrap().extends;
    eventually(Duration::from_secs(5), "the watchdog extended", || async {
        c.stats().await.unwrap().extends > extends
    })
    .await;
    assert!(holder.extend(Duration::from_secs(5)).await.unwrap());
    assert!(c.try_lock("s:1", &opts(1_000)).await.unwrap().is_none());
    match c
        .lock("s:1", &opts(1_000).wait(Duration::from_millis(50)))
        .await
    {
        Err(e @ Error::NotAcquired { .. }) => shown.error(&e),
        other => panic!("a wait on a held lock: {other:?}"),
    }
    let cut = timeout(
        Duration::from_millis(30),
        c.lock("s:1", &opts(1_000).wait(Duration::from_secs(10))),
    )
    .await;
    assert!(cut.is_err(), "the lock is held: the wait is cut short");
    c.flush().await;
    assert!(holder.release().await.unwrap());
    let handed = granted(waiter).await.expect("the waiter is granted");
    shown.debug(&handed);
    drop(handed);
    c.flush().await;
    assert!(!c.info("s:1").await.unwrap().held);

    let lease = c
        .semaphore("s:sem", 2)
        .acquire(1, &opts(1_000))
        .await
        .unwrap();
    shown.debug(&lease);
    assert!(lease.release().await.unwrap());

    let forced = c.lock("s:2", &opts(10_000)).await.unwrap();
    assert!(c.force_release("s:2").await.unwrap());
    assert!(!forced.release().await.unwrap());
    shown.debug(c);

    #[cfg(feature = "bus")]
    {
        let bus = c.bus();
        let mut sub = bus.subscribe::<u32>("s:topic").await.unwrap();
        bus.publish("s:topic", &7u32).await.unwrap();
        let seen = timeout(Duration::from_secs(5), sub.next()).await;
        assert_eq!(seen.unwrap().unwrap().unwrap().payload, 7);
        shown.debug(&bus);
    }
}

/// Asserts that neither password nor any of `tokens` is in `logs` or
/// `shown`, and that the capture saw the run (so its absence means
/// something).
fn assert_no_secrets(logs: &str, shown: &Shown, tokens: &[String]) {
    assert!(
        tokens.len() >= 6,
        "the server saw the run's tokens: {tokens:?}"
    );
    assert!(
        logs.contains("lock{key=\"s:1\""),
        "the capture saw the run's spans: {logs}"
    );
    let secrets = [PASSWORD, USER_PASSWORD]
        .into_iter()
        .chain(tokens.iter().map(String::as_str));
    for secret in secrets {
        assert!(!logs.contains(secret), "{secret:?} is in the log:\n{logs}");
        for text in &shown.0 {
            assert!(!text.contains(secret), "{secret:?} is shown: {text}");
        }
    }
}

/// The module backend with `requirepass`, an ACL lock user refused a force
/// release, a wrong password, and a TLS server whose certificate is not
/// trusted.
#[tokio::test]
async fn the_module_backend_logs_and_shows_no_password_or_token() {
    let s = RedisServer::builder().requirepass(PASSWORD).tls().start();
    s.acl_user(
        "locker",
        USER_PASSWORD,
        &["+lock.acquire", "+lock.release", "+lock.extend", "~*"],
    );
    let monitor = Monitor::start(&s).await;
    let (_guard, logs) = capture_logs();
    let mut shown = Shown::default();

    let builder = Client::builder(s.url());
    shown.debug(&builder);
    let c = builder.build().await.unwrap();
    assert_eq!(c.backend_kind(), BackendKind::Module);
    exercise(&c, &mut shown).await;

    let locker = Client::builder(s.url_as("locker", USER_PASSWORD))
        .backend(Backend::Module)
        .build()
        .await
        .unwrap();
    shown.debug(&locker);
    let held = locker.lock("s:3", &opts(10_000)).await.unwrap();
    match locker.force_release("s:3").await {
        Err(e @ Error::NoPermission(_)) => shown.error(&e),
        other => panic!("a force release by the lock user: {other:?}"),
    }
    assert!(held.release().await.unwrap());

    let wrong = Client::builder(s.url_as("locker", "not-the-password"))
        .build()
        .await
        .unwrap_err();
    shown.error(&wrong);
    let untrusted = Client::builder(s.tls_url()).build().await.unwrap_err();
    assert!(matches!(untrusted, Error::Tls(_)), "{untrusted:?}");
    shown.error(&untrusted);

    let tokens = monitor.tokens(&s).await;
    assert_no_secrets(&logs.text(), &shown, &tokens);
}

/// The Lua backend with `requirepass` (its waits on pub/sub) and an ACL
/// user refused the scripts.
#[tokio::test]
async fn the_lua_backend_logs_and_shows_no_password_or_token() {
    let s = RedisServer::builder()
        .without_module()
        .requirepass(PASSWORD)
        .start();
    s.acl_user(
        "noscripts",
        USER_PASSWORD,
        &["+@all", "-evalsha", "-eval", "~*", "&*"],
    );
    let monitor = Monitor::start(&s).await;
    let (_guard, logs) = capture_logs();
    let mut shown = Shown::default();

    let c = Client::builder(s.url()).build().await.unwrap();
    assert_eq!(c.backend_kind(), BackendKind::Lua);
    exercise(&c, &mut shown).await;

    match Client::builder(s.url_as("noscripts", USER_PASSWORD))
        .backend(Backend::Lua)
        .build()
        .await
    {
        Ok(refused) => match refused.lock("s:4", &opts(1_000)).await {
            Err(e @ Error::NoPermission(_)) => shown.error(&e),
            other => panic!("a lock by a user without EVALSHA: {other:?}"),
        },
        Err(e) => shown.error(&e),
    }

    let tokens = monitor.tokens(&s).await;
    assert_no_secrets(&logs.text(), &shown, &tokens);
}
