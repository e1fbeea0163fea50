//! Errors a person can act on, each with its exit status: an unreachable
//! server (named, with the cause), a server without the module, bad usage.

mod common;

use baton_cli::{duration, exit};
use baton_harness::RedisServer;
use common::*;

/// A URL on which nothing listens: a server's port, once it is gone.
fn dead_url(creds: &str) -> String {
    let server = RedisServer::start();
    format!("redis://{creds}127.0.0.1:{}", server.port())
}

#[test]
fn an_unreachable_server_is_named_with_its_cause() {
    let url = dead_url("alice:s3cret@");
    let shown = url.replace("s3cret", "***");
    let (_dir, path) = scratch();
    let ran = path("ran");
    for args in [
        vec!["info", "k"],
        vec!["stats"],
        vec!["lock", "k", "--", "touch", ran.to_str().unwrap()],
    ] {
        let out = run(&url, &args);
        assert_eq!(
            code(out.status),
            i32::from(exit::UNAVAILABLE),
            "{args:?}: {}",
            show(&out)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("baton: cannot reach Redis at "),
            "{args:?}: {err}"
        );
        assert!(err.contains(&shown), "names the URL: {err}");
        assert!(!err.contains("s3cret"), "hides the password: {err}");
        assert!(
            err.to_lowercase().contains("refused"),
            "gives the cause: {err}"
        );
    }
    assert!(!ran.exists(), "CMD must not run without the lock");
}

#[test]
fn a_server_without_the_module_says_how_to_load_it() {
    let plain = RedisServer::builder().without_module().start();
    let url = plain.url();
    let out = run(&url, &["--backend", "module", "lock", "k", "--", "true"]);
    assert_eq!(
        code(out.status),
        i32::from(exit::UNAVAILABLE),
        "{}",
        show(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        url.as_str(),
        "no baton module",
        "--loadmodule",
        "MODULE LOAD",
        "--backend lua",
    ] {
        assert!(err.contains(needle), "lacks {needle:?}: {err}");
    }
    // The counters are the module's: stats and top say so under auto too.
    for args in [&["stats"][..], &["top", "--count", "1"][..]] {
        let out = run(&url, args);
        assert_eq!(
            code(out.status),
            i32::from(exit::UNAVAILABLE),
            "{}",
            show(&out)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("needs the baton module"));
    }
}

#[test]
fn bad_usage_exits_64_and_says_what_is_wrong() {
    let server = RedisServer::start();
    let url = server.url();
    for (args, needle) in [
        (
            &["lock", "k", "--ttl", "5x", "--", "true"][..],
            "'--ttl <DURATION>'",
        ),
        (&["lock", "k", "--wait=-1", "--", "true"][..], "--wait"),
        (
            &["lock", "k", "--ttl", "0", "--", "true"][..],
            "out of range",
        ),
        (
            &["lock", "k", "--kill-after", "soon", "--", "true"][..],
            "--kill-after",
        ),
        (
            &["lock", "k", "--wait", "1s", "--no-wait", "--", "true"][..],
            "cannot be used with",
        ),
        (&["lock", "k"][..], "CMD"),
        (&["lock", "k", "true"][..], "unexpected argument"),
        (
            &["lock", "a b", "--", "true"][..],
            "must not contain whitespace",
        ),
        (&["release", "k"][..], "--force"),
        (&["info"][..], "KEY"),
        (&["frobnicate"][..], "unrecognized subcommand"),
        (&["--backend", "memory", "stats"][..], "possible values"),
    ] {
        let out = run(&url, args);
        assert_eq!(
            code(out.status),
            i32::from(exit::USAGE),
            "{args:?}: {}",
            show(&out)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: lacks {needle:?}: {err}");
    }
    let out = run(&url, &["lock", "k", "--ttl", "90x", "--", "true"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains(duration::FORMS));
}

#[test]
fn a_url_that_is_not_one_is_bad_usage() {
    let out = run("http://127.0.0.1:1", &["info", "k"]);
    assert_eq!(code(out.status), i32::from(exit::USAGE), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("http://127.0.0.1:1"));
}
