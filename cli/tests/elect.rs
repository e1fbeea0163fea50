//! `baton elect NAME --value V -- CMD` and `baton leader NAME`: one leader
//! at a time, in campaign order, with growing terms; a killed leader is
//! replaced once its ttl ran out.

mod common;

use std::path::Path;

use baton_harness::{wait_until, RedisServer};
use common::*;
use rustix::process::Signal;

/// `baton leader NAME --json`, parsed.
fn leader(server: &RedisServer, name: &str) -> serde_json::Value {
    let out = run(&server.url(), &["leader", name, "--json"]);
    assert_eq!(code(out.status), 0, "{}", show(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)))
}

/// Waits until `name`'s leader has `value`; the leader's JSON.
#[track_caller]
fn await_leader(server: &RedisServer, name: &str, value: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let led = wait_until(PATIENCE, || {
        last = leader(server, name);
        last["leader"]["value"] == value
    });
    assert!(led, "{value} did not lead: last {last}");
    last["leader"].clone()
}

/// A CMD that writes `BATON_TERM` and `BATON_FENCE` to `log`, then waits
/// until `go` exists.
fn lead_until(log: &Path, go: &Path) -> String {
    format!(
        "echo \"$BATON_TERM $BATON_FENCE\" > {}; {}",
        log.display(),
        until_exists(go)
    )
}

/// Two campaigns: the first leads (its term in CMD's environment and in
/// `baton leader`), the second waits, and leads with a larger term once
/// the first CMD ended and resigned.
#[test]
fn two_campaigns_lead_one_after_the_other() {
    let server = RedisServer::start();
    let (_dir, path) = scratch();
    let (log_a, go_a, log_b, go_b) = (path("a"), path("go-a"), path("b"), path("go-b"));
    let script_a = lead_until(&log_a, &go_a);
    let a = spawn(
        &server.url(),
        &[
            "elect", "sched", "--value", "host-a", "--", "sh", "-c", &script_a,
        ],
    );
    let first = await_leader(&server, "sched", "host-a");
    let script_b = lead_until(&log_b, &go_b);
    let b = spawn(
        &server.url(),
        &[
            "elect", "sched", "--value", "host-b", "--", "sh", "-c", &script_b,
        ],
    );
    await_info(&server, "sched", "the second campaign waits", |i| {
        i.waiters == 1
    });
    let term_a = await_file(&log_a);
    assert_eq!(
        term_a.trim(),
        format!("{t} {t}", t = first["term"]),
        "BATON_TERM and BATON_FENCE are the leader's term"
    );
    assert!(
        !log_b.exists(),
        "the second CMD does not run while the first leads"
    );

    std::fs::write(&go_a, "").unwrap();
    let a = finish(a);
    assert_eq!(code(a.status), 0, "{}", show(&a));
    let second = await_leader(&server, "sched", "host-b");
    assert!(
        second["term"].as_u64() > first["term"].as_u64(),
        "a new term: {first} then {second}"
    );
    std::fs::write(&go_b, "").unwrap();
    let b = finish(b);
    assert_eq!(code(b.status), 0, "{}", show(&b));
    assert_eq!(
        leader(&server, "sched")["leader"],
        serde_json::Value::Null,
        "resigned"
    );
}

/// A leader baton killed by SIGKILL resigns nothing: the waiting campaign
/// leads once the killed one's ttl ran out, in a larger term.
#[test]
fn a_killed_leader_is_replaced_after_its_ttl() {
    let server = RedisServer::start();
    let (_dir, path) = scratch();
    let (log_a, go, log_b) = (path("a"), path("go"), path("b"));
    let script_a = lead_until(&log_a, &go);
    let a = spawn(
        &server.url(),
        &[
            "elect", "sched", "--value", "host-a", "--ttl", "1s", "--", "sh", "-c", &script_a,
        ],
    );
    let first = await_leader(&server, "sched", "host-a");
    let script_b = lead_until(&log_b, &go);
    let b = spawn(
        &server.url(),
        &[
            "elect", "sched", "--value", "host-b", "--ttl", "1s", "--", "sh", "-c", &script_b,
        ],
    );
    await_info(&server, "sched", "the second campaign waits", |i| {
        i.waiters == 1
    });
    signal(a.id(), Signal::KILL);
    let second = await_leader(&server, "sched", "host-b");
    assert!(
        second["term"].as_u64() > first["term"].as_u64(),
        "{first} then {second}"
    );
    let term_b = await_file(&log_b);
    assert_eq!(term_b.trim(), format!("{t} {t}", t = second["term"]));
    std::fs::write(&go, "").unwrap();
    let b = finish(b);
    assert_eq!(code(b.status), 0, "{}", show(&b));
    drop(a);
}

/// Nobody leads an election nobody campaigned in: `led no` in text, a null
/// `leader` in JSON, exit 0.
#[test]
fn an_election_without_a_leader_says_so() {
    let server = RedisServer::start();
    assert_eq!(
        leader(&server, "nobody"),
        serde_json::json!({ "name": "nobody", "leader": null })
    );
    let out = run(&server.url(), &["leader", "nobody"]);
    assert_eq!(code(out.status), 0, "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("led    no"), "{text}");
}
