//! TLS (`rediss://`, the `tls` feature) against real servers whose CA and
//! certificate the harness makes at test time: locks on the module and on
//! Lua, waits, the watchdog and the bus all run over TLS (every connection
//! of the client is on the server's TLS port); a wrong CA or a certificate
//! for another host is refused with an error that says so.
//!
//! The `tls` feature alone must be enough: nothing in this test binary
//! installs a rustls crypto provider (the client does).

use std::time::Duration;

use baton_client::{Backend, BackendKind, Client, Error};
use baton_harness::RedisServer;
use common::{eventually, granted, opts};

mod common;

/// The `CLIENT LIST` lines of every connection but the one asking.
fn other_clients(s: &RedisServer) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut s.connection())
        .unwrap();
    list.lines()
        .filter(|l| !l.contains(" cmd=client|list "))
        .map(str::to_owned)
        .collect()
}

/// Every connection to `s` but the harness's own is on its TLS port, and
/// there are at least `n` of them.
fn assert_all_tls(s: &RedisServer, n: usize) -> Vec<String> {
    let clients = other_clients(s);
    let on_tls = format!(" laddr=127.0.0.1:{} ", s.tls_port());
    for line in &clients {
        assert!(line.contains(&on_tls), "not on the TLS port: {line}");
    }
    assert!(
        clients.len() >= n,
        "{} connections, expected {n} or more: {clients:#?}",
        clients.len()
    );
    clients
}

async fn tls_client(s: &RedisServer, backend: Backend) -> Client {
    Client::builder(s.tls_url())
        .tls_ca(s.certificates().ca_pem())
        .backend(backend)
        .build()
        .await
        .expect("a client over TLS")
}

/// A held lock, kept past its ttl by the watchdog, and a waiter that gets
/// it at the release, on `c`'s backend; every connection to `s` (at least
/// `n` of them while the waiter waits) is on its TLS port. Returns their
/// `CLIENT LIST` lines as seen during the wait.
async fn lock_wait_and_watchdog(s: &RedisServer, c: &Client, n: usize) -> Vec<String> {
    let holder = c.lock("k", &opts(300)).await.unwrap();
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move {
            c.lock("k", &opts(10_000).wait(Duration::from_secs(10)))
                .await
        })
    };
    eventually(Duration::from_secs(5), "the waiter queued", || async {
        c.info("k").await.unwrap().waiters == 1
    })
    .await;
    let clients = assert_all_tls(s, n);
    // Three ttls: only the watchdog's extends keep it.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let info = c.info("k").await.unwrap();
    assert!(info.held && info.fence == holder.fence(), "{info:?}");
    assert!(!holder.is_lost());
    let fence = holder.fence();
    assert!(holder.release().await.unwrap());
    let g = granted(waiter).await.expect("the waiter is granted");
    assert!(g.fence() > fence);
    assert!(g.release().await.unwrap());
    assert_all_tls(s, 1);
    clients
}

/// The module backend over TLS, with `requirepass` too: lock, wait (on a
/// wait connection of its own), watchdog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_locks_waits_and_watchdog_run_over_tls() {
    let s = RedisServer::builder()
        .tls()
        .requirepass("tls-and-a-password")
        .start();
    let c = tls_client(&s, Backend::Auto).await;
    assert_eq!(c.backend_kind(), BackendKind::Module);
    // The pool and the wait connection.
    let clients = lock_wait_and_watchdog(&s, &c, 2).await;
    assert!(
        clients.iter().any(|l| l.contains(" cmd=lock.acquire ")),
        "the wait's connection: {clients:#?}"
    );
}

/// The Lua backend over TLS: its waiter is woken on a pub/sub connection,
/// which is on the TLS port too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lua_locks_and_waits_run_over_tls() {
    let s = RedisServer::builder().without_module().tls().start();
    let c = tls_client(&s, Backend::Auto).await;
    assert_eq!(c.backend_kind(), BackendKind::Lua);
    let clients = lock_wait_and_watchdog(&s, &c, 2).await;
    assert!(
        clients.iter().any(|l| l.contains(" sub=1 ")),
        "the waiter's pub/sub connection: {clients:#?}"
    );
}

/// The bus over TLS: a broadcast subscriber and a consumer group (each on a
/// blocking reader of its own) see what is published.
#[cfg(feature = "bus")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_runs_over_tls() {
    use futures_util::StreamExt;
    let s = RedisServer::builder().without_module().tls().start();
    let bus = tls_client(&s, Backend::Lua).await.bus();
    let mut sub = bus.subscribe::<u32>("t").await.unwrap();
    let mut work = bus.consume::<u32>("t", "g").start().await.unwrap();
    bus.publish("t", &7u32).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), sub.next()).await;
    assert_eq!(seen.unwrap().unwrap().unwrap().payload, 7);
    let msg = tokio::time::timeout(Duration::from_secs(5), work.next()).await;
    let msg = msg.unwrap().unwrap().unwrap();
    assert_eq!(msg.payload, 7);
    msg.ack().await.unwrap();
    assert_all_tls(&s, 3);
    work.close().await.unwrap();
}

/// The error of a client build for `url` with `ca`, as text.
async fn refused(url: String, ca: Option<Vec<u8>>) -> String {
    let mut b = Client::builder(url).backend(Backend::Module);
    if let Some(ca) = ca {
        b = b.tls_ca(ca);
    }
    match b.build().await {
        Ok(_) => panic!("the server's certificate was accepted"),
        Err(e) => {
            assert!(
                matches!(e, Error::Tls(_)) && e.is_unreachable(),
                "a TLS error: {e:?}"
            );
            e.to_string()
        }
    }
}

/// A certificate from another CA than the one given, or with none given (the
/// system's roots), is refused, and the error says it is not signed by a
/// trusted CA and how to give one.
#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let s = RedisServer::builder().tls().start();
    let other = RedisServer::builder().without_module().tls().start();
    for ca in [Some(other.certificates().ca_pem()), None] {
        let err = refused(s.tls_url(), ca.clone()).await;
        assert!(
            err.contains("UnknownIssuer")
                && err.contains("not signed by a CA this client trusts")
                && err.contains("tls_ca"),
            "says the certificate's issuer is not trusted (CA given: {}): {err}",
            ca.is_some()
        );
    }
}

/// A certificate signed by the trusted CA but for another host name is
/// refused, and the error names the host.
#[tokio::test]
async fn a_certificate_for_another_host_is_refused() {
    let s = RedisServer::builder()
        .tls_for(&["DNS:elsewhere.test"])
        .start();
    let err = refused(s.tls_url(), Some(s.certificates().ca_pem())).await;
    assert!(
        err.contains("not valid for name \"127.0.0.1\"")
            && err.contains("does not name the host in the URL"),
        "says the certificate is not for the host connected to: {err}"
    );
}

/// A CA with a URL that has no TLS is a mistake, not a silent plaintext
/// connection.
#[tokio::test]
async fn a_ca_for_a_plain_url_is_refused() {
    let s = RedisServer::builder().tls().start();
    let err = Client::builder(s.url())
        .tls_ca(s.certificates().ca_pem())
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidOptions(m) if m.contains("rediss://")),
        "{err:?}"
    );
}
