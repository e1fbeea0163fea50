//! The connection forms `--url` takes, each against real servers: a
//! Cluster seed (and `top`'s row per primary), a `redis+sentinel://` URL,
//! `rediss://` (TLS, with a certificate the test makes), and the Lua
//! backend on a server without the module.

mod common;

use baton_cli::exit;
use baton_harness::{RedisCluster, RedisServer, SentinelGroup};
use common::*;
use serde_json::Value;

fn ok_json(out: &std::process::Output) -> Value {
    assert_eq!(code(out.status), 0, "{}", show(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(out)))
}

/// One seed reaches the whole Cluster: locks route to their nodes, `stats`
/// sums the primaries, and `top` has a row for each.
#[test]
fn a_cluster_seed_reaches_every_primary() {
    let cluster = RedisCluster::start(3);
    let seed = cluster.urls()[0].clone();
    // Keys on at least two nodes.
    let keys = ["a", "b", "c", "d", "e", "f"];
    for key in keys {
        let out = run(&seed, &["lock", key, "--no-wait", "--", "true"]);
        assert_eq!(code(out.status), 0, "{key}: {}", show(&out));
    }
    let nodes: std::collections::BTreeSet<usize> = keys
        .iter()
        .map(|k| cluster.node_index_for(k.as_bytes()))
        .collect();
    assert!(nodes.len() >= 2, "the keys should spread: {nodes:?}");

    let stats = ok_json(&run(&seed, &["stats", "--json"]));
    assert_eq!(stats["grants"], keys.len(), "{stats}");

    let out = run(&seed, &["top", "--json", "--count", "1"]);
    let frame: Value = ok_json(&out);
    let rows = frame["nodes"].as_array().expect("nodes");
    let mut labels: Vec<String> = rows
        .iter()
        .map(|r| r["node"].as_str().unwrap().to_string())
        .collect();
    labels.sort();
    let mut want: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    want.sort();
    assert_eq!(labels, want, "{frame}");
    for row in rows {
        let node = cluster
            .nodes()
            .iter()
            .position(|n| row["node"] == format!("127.0.0.1:{}", n.port()))
            .unwrap();
        let here = keys
            .iter()
            .filter(|k| cluster.node_index_for(k.as_bytes()) == node)
            .count();
        assert_eq!(row["grants"], here, "per node: {row}");
    }
    assert_eq!(frame["total"]["grants"], keys.len());
}

/// A `redis+sentinel://` URL: baton asks the Sentinels for the primary.
#[test]
fn a_sentinel_url_finds_the_primary() {
    let group = SentinelGroup::start(0);
    let url = group.url();
    let (_dir, path) = scratch();
    let fence = path("fence");
    let script = format!("echo $BATON_FENCE > {}", fence.display());
    let out = run(&url, &["lock", "k", "--no-wait", "--", "sh", "-c", &script]);
    assert_eq!(code(out.status), 0, "{}", show(&out));
    assert!(await_file(&fence).trim().parse::<u64>().unwrap() > 0);
    let stats = ok_json(&run(&url, &["stats", "--json"]));
    assert_eq!(stats["grants"], 1, "counted on the primary: {stats}");
    let v = ok_json(&run(&url, &["info", "k", "--json"]));
    assert_eq!(v["held"], false);
}

/// The Lua backend on a server without the module: the same lock
/// semantics from the command line.
#[test]
fn the_lua_backend_runs_locks_too() {
    let plain = RedisServer::builder().without_module().start();
    let url = plain.url();
    let (_dir, path) = scratch();
    let ready = path("ready");
    let script = format!("echo > {}; sleep 30", ready.display());
    let holder = spawn(
        &url,
        &["--backend", "lua", "lock", "k", "--", "sh", "-c", &script],
    );
    await_file(&ready);
    let v = ok_json(&run(&url, &["--backend", "lua", "info", "k", "--json"]));
    assert_eq!(v["held"], true, "{v}");
    let out = run(
        &url,
        &["--backend", "lua", "lock", "k", "--no-wait", "--", "true"],
    );
    assert_eq!(
        code(out.status),
        i32::from(exit::NOT_ACQUIRED),
        "{}",
        show(&out)
    );
    signal(holder.id(), rustix::process::Signal::TERM);
    let out = finish(holder);
    assert_eq!(
        code(out.status),
        128 + 15,
        "sleep died of the SIGTERM: {}",
        show(&out)
    );
    let v = ok_json(&run(&url, &["--backend", "lua", "info", "k", "--json"]));
    assert_eq!(v["held"], false, "released: {v}");
}

/// `rediss://`: a server with TLS on its TLS port, a certificate for
/// 127.0.0.1 from a test CA (the harness makes both), and baton trusting
/// that CA.
#[test]
fn rediss_urls_speak_tls() {
    let server = RedisServer::builder().tls().start();
    let url = server.tls_url();
    let mut cmd = baton(&url, &["lock", "k", "--no-wait", "--", "true"]);
    let out = cmd
        .env("SSL_CERT_FILE", &server.certificates().ca)
        .output()
        .unwrap();
    assert_eq!(code(out.status), 0, "{}", show(&out));
    assert_eq!(
        baton_harness::lock::stats(&mut server.connection())["grants"],
        1
    );

    // Without the CA the server's certificate is refused.
    let out = run(&url, &["info", "k"]);
    assert_eq!(
        code(out.status),
        i32::from(exit::UNAVAILABLE),
        "{}",
        show(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&url) && err.contains("certificate") && err.contains("SSL_CERT_FILE"),
        "names the URL, the cause and the remedy: {err}"
    );
}
