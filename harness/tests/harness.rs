//! Tests of the harness itself, against a plain redis-server (no module), so
//! they say whether a failure elsewhere is the module's or the harness's.

use std::time::Duration;

use baton_harness::{promote, wait_for_sync, wait_until, RedisCluster, RedisServer};

fn plain() -> baton_harness::ServerBuilder {
    RedisServer::builder().without_module()
}

#[test]
fn server_answers_ping_on_its_port_and_dir() {
    let server = plain().start();
    let pong: String = redis::cmd("PING").query(&mut server.connection()).unwrap();
    assert_eq!(pong, "PONG");
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    let dir: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("dir")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(
        std::path::Path::new(&dir[1]),
        server.dir().canonicalize().unwrap()
    );
}

#[test]
fn drop_kills_the_process() {
    let server = plain().start();
    let pid = server.pid();
    drop(server);
    // A reaped child has no /proc entry.
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn restart_with_rdb_keeps_data_and_without_starts_empty() {
    let mut with = plain().rdb(true).start();
    let mut without = plain().start();
    for s in [&with, &without] {
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("v")
            .query(&mut s.connection())
            .unwrap();
    }
    let port = with.port();
    with.restart();
    without.restart();
    assert_eq!(with.port(), port);
    let got: Option<String> = redis::cmd("GET")
        .arg("k")
        .query(&mut with.connection())
        .unwrap();
    assert_eq!(got.as_deref(), Some("v"));
    let got: Option<String> = redis::cmd("GET")
        .arg("k")
        .query(&mut without.connection())
        .unwrap();
    assert_eq!(got, None);
}

#[test]
fn crash_restart_with_aof_keeps_acknowledged_writes() {
    let mut server = plain().aof(true).start();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut server.connection())
        .unwrap();
    server.crash_restart();
    let got: Option<String> = redis::cmd("GET")
        .arg("k")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(got.as_deref(), Some("v"));
}

#[test]
fn start_failure_panics_with_the_log() {
    let result = std::panic::catch_unwind(|| plain().config("no-such-directive", "1").start());
    let msg = *result
        .expect_err("bad config must not start")
        .downcast::<String>()
        .unwrap();
    assert!(
        msg.contains("no-such-directive"),
        "log tail missing from: {msg}"
    );
}

#[test]
fn replica_syncs_and_promotes() {
    let primary = plain().start();
    let replica = plain().replica_of(&primary).start();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut primary.connection())
        .unwrap();
    wait_for_sync(&primary, &replica);
    let got: Option<String> = redis::cmd("GET")
        .arg("k")
        .query(&mut replica.connection())
        .unwrap();
    assert_eq!(got.as_deref(), Some("v"));
    promote(&replica);
    let _: () = redis::cmd("SET")
        .arg("k2")
        .arg("v")
        .query(&mut replica.connection())
        .unwrap();
}

#[test]
fn wait_until_reports_both_outcomes() {
    assert!(wait_until(Duration::from_millis(50), || true));
    assert!(!wait_until(Duration::from_millis(20), || false));
}

#[test]
fn cluster_forms_and_answers_moved() {
    let cluster = RedisCluster::start_with(3, plain);
    assert_eq!(cluster.urls().len(), 3);
    let owner = cluster.node_index_for(b"some-key");
    let _: () = redis::cmd("SET")
        .arg("some-key")
        .arg("v")
        .query(&mut cluster.nodes()[owner].connection())
        .unwrap();
    let other = &cluster.nodes()[(owner + 1) % 3];
    let err = redis::cmd("SET")
        .arg("some-key")
        .arg("v")
        .query::<()>(&mut other.connection())
        .unwrap_err();
    assert_eq!(err.code(), Some("MOVED"), "{err:?}");
}

#[test]
fn a_sentinel_group_forms_and_fails_over_a_killed_primary() {
    let mut group = baton_harness::SentinelGroup::start(2);
    let old = group.primary_index();
    let old_port = group.servers()[old].port();
    assert!(group.url().starts_with("redis+sentinel://127.0.0.1:"));
    group.servers_mut()[old].kill();
    let new = group.wait_for_new_primary(old_port);
    assert_ne!(new, old);
    let role = baton_harness::replication::info_field(&group.servers()[new], "replication", "role");
    assert_eq!(role.as_deref(), Some("master"));
}
