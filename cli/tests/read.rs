//! The read commands (`info`, `stats`) as text and JSON, `release --force`,
//! `completions` and `--help`.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use baton_harness::{lock, RedisServer};
use common::*;
use serde_json::Value;

fn json(out: &std::process::Output) -> Value {
    assert_eq!(code(out.status), 0, "{}", show(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(out)))
}

#[test]
fn info_shows_the_holder_as_text_and_json() {
    let server = RedisServer::start();
    let url = server.url();
    let fence = lock::acquire(&mut server.connection(), b"k", b"other", 30_000).unwrap();

    let v = json(&run(&url, &["info", "k", "--json"]));
    assert_eq!(v["key"], "k");
    assert_eq!(v["held"], true);
    assert_eq!(v["fence"], fence);
    assert_eq!(v["waiters"], 0);
    let pttl = v["pttl"].as_u64().expect("pttl is a number while held");
    assert!(pttl > 0 && pttl <= 30_000, "{v}");

    let out = run(&url, &["info", "k"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("held     yes\n"), "{text}");
    assert!(text.contains(&format!("fence    {fence}\n")), "{text}");

    let free = json(&run(&url, &["info", "free", "--json"]));
    assert_eq!(free["held"], false);
    assert_eq!(free["pttl"], Value::Null);
}

#[test]
fn stats_json_parses_and_counts_what_happened() {
    let server = RedisServer::start();
    let url = server.url();
    for _ in 0..2 {
        let out = run(&url, &["lock", "k", "--no-wait", "--", "true"]);
        assert_eq!(code(out.status), 0, "{}", show(&out));
    }
    let v = json(&run(&url, &["stats", "--json"]));
    let server_side = lock::stats(&mut server.connection());
    let names: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        server_side.keys().collect::<Vec<_>>(),
        "the same counters"
    );
    for (name, value) in &server_side {
        assert_eq!(v[name], *value, "{name}");
    }
    assert_eq!(
        (v["grants"].as_u64(), v["releases"].as_u64()),
        (Some(2), Some(2))
    );

    let out = run(&url, &["stats"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("grants          2\n"));
}

#[test]
fn release_force_removes_the_holder_and_says_so() {
    let server = RedisServer::start();
    let url = server.url();
    lock::acquire(&mut server.connection(), b"k", b"other", 30_000).unwrap();
    let out = run(&url, &["release", "--force", "k"]);
    assert_eq!(code(out.status), 0, "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "released k: its holder was removed\n"
    );
    assert!(!info(&server, "k").held);
    let out = run(&url, &["release", "--force", "k"]);
    assert_eq!(code(out.status), 0, "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "k was not held\n");
    assert_eq!(lock::stats(&mut server.connection())["force_releases"], 1);
}

/// Completion scripts come from the clap declaration; bash's is valid bash
/// and completes the subcommands.
#[test]
fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run("redis://unused", &["completions", shell]);
        assert_eq!(code(out.status), 0, "{shell}: {}", show(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("baton") && script.contains("release"),
            "{shell}"
        );
    }
    let out = run("redis://unused", &["completions", "bash"]);
    let mut bash = Command::new("bash")
        .args(["-n"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("bash");
    bash.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    assert!(bash.wait().unwrap().success(), "bash -n accepts the script");
}

#[test]
fn help_has_examples_and_exit_statuses() {
    let out = run("redis://unused", &["--help"]);
    assert_eq!(code(out.status), 0);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Examples:") && help.contains("baton lock nightly-report"));
    for (code, what) in baton_cli::exit::TABLE {
        assert!(help.contains(&format!("{code:>3}  {what}")), "{help}");
    }
    let out = run("redis://unused", &["lock", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "BATON_FENCE",
        "BATON_KEY",
        "SIGKILL",
        "--kill-after",
        "crontab",
        "Exit status",
    ] {
        assert!(help.contains(needle), "lock --help lacks {needle}:\n{help}");
    }
}
