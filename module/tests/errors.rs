//! Argument and state errors (SPEC §2 "Arguments", §5; DESIGN "Errors (exact
//! texts)"): each error with its exact text, and nothing changed by a command
//! that errors.

use baton_harness::lock::{acquire, exists, expect_err, info, raw, stats};
use baton_harness::RedisServer;

const TTL_ERR: &str = "ERR ttl-ms must be an integer between 1 and 2147483647";
const TIMEOUT_ERR: &str = "ERR timeout-ms must be an integer between 0 and 2147483647";
const TOKEN_ERR: &str = "ERR token must be 1 to 256 bytes";
const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// Integers that are not valid ttl-ms.
const BAD_TTLS: [&[u8]; 12] = [
    b"0",
    b"-1",
    b"2147483648",
    b"9223372036854775808",
    b"99999999999999999999999",
    b"-9223372036854775809",
    b"abc",
    b"",
    b"1.5",
    b"1e3",
    b" 1",
    b"1 ",
];

/// Values that are not valid WAIT timeout-ms.
const BAD_TIMEOUTS: [&[u8]; 8] = [
    b"-1",
    b"2147483648",
    b"99999999999999999999999",
    b"x",
    b"",
    b"0.5",
    b"1e2",
    b"-0x1",
];

fn arity(cmd: &str) -> String {
    format!(
        "ERR wrong number of arguments for '{}' command",
        cmd.to_lowercase()
    )
}

#[test]
fn wrong_argument_counts_get_redis_arity_error() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let cases: &[&[&[u8]]] = &[
        &[b"LOCK.ACQUIRE"],
        &[b"LOCK.ACQUIRE", b"k"],
        &[b"LOCK.ACQUIRE", b"k", b"t"],
        &[b"LOCK.RELEASE"],
        &[b"LOCK.RELEASE", b"k"],
        &[b"LOCK.RELEASE", b"k", b"t", b"x"],
        &[b"LOCK.EXTEND", b"k", b"t"],
        &[b"LOCK.FORCERELEASE"],
        &[b"LOCK.FORCERELEASE", b"k", b"x"],
        &[b"LOCK.FENCE"],
        &[b"LOCK.FENCE", b"k", b"x"],
        &[b"LOCK.INFO"],
        &[b"LOCK.INFO", b"k", b"x"],
        &[b"LOCK.STATS", b"x"],
    ];
    for args in cases {
        let name = std::str::from_utf8(args[0]).unwrap();
        assert_eq!(
            expect_err(&mut con, args),
            arity(name),
            "{}",
            baton_harness::lock::show(args)
        );
    }
}

#[test]
fn token_must_be_1_to_256_bytes() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let long = vec![b'x'; 257];
    for token in [&b""[..], &long[..]] {
        for args in [
            vec![&b"LOCK.ACQUIRE"[..], b"k", token, b"1000"],
            vec![b"LOCK.ACQUIRE", b"k", token, b"1000", b"WAIT", b"0"],
            vec![b"LOCK.RELEASE", b"k", token],
            vec![b"LOCK.EXTEND", b"k", token, b"1000"],
        ] {
            assert_eq!(
                expect_err(&mut con, &args),
                TOKEN_ERR,
                "{}",
                baton_harness::lock::show(&args)
            );
        }
    }
    assert!(!exists(&mut con, b"k"));
    let ok = vec![b'x'; 256];
    assert!(
        acquire(&mut con, b"k", &ok, 1_000).is_some(),
        "256 bytes is allowed"
    );
}

#[test]
fn bad_ttl_names_ttl_ms() {
    let server = RedisServer::start();
    let mut con = server.connection();
    for ttl in BAD_TTLS {
        for args in [
            vec![&b"LOCK.ACQUIRE"[..], b"k", b"t", ttl],
            vec![b"LOCK.ACQUIRE", b"k", b"t", ttl, b"WAIT", b"10"],
            vec![b"LOCK.EXTEND", b"k", b"t", ttl],
        ] {
            assert_eq!(
                expect_err(&mut con, &args),
                TTL_ERR,
                "{}",
                baton_harness::lock::show(&args)
            );
        }
    }
}

#[test]
fn bad_wait_timeout_names_timeout_ms() {
    let server = RedisServer::start();
    let mut con = server.connection();
    for t in BAD_TIMEOUTS {
        let args = [&b"LOCK.ACQUIRE"[..], b"k", b"t", b"1000", b"WAIT", t];
        assert_eq!(
            expect_err(&mut con, &args),
            TIMEOUT_ERR,
            "{}",
            baton_harness::lock::show(&args)
        );
    }
}

#[test]
fn wait_without_a_value() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let args = [&b"LOCK.ACQUIRE"[..], b"k", b"t", b"1000", b"WAIT"];
    assert_eq!(expect_err(&mut con, &args), "ERR WAIT needs a timeout-ms");
}

#[test]
fn unknown_options_are_named() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let cases: &[(&[&[u8]], &str)] = &[
        (
            &[b"LOCK.ACQUIRE", b"k", b"t", b"1000", b"FOO"],
            "ERR unknown option 'FOO'",
        ),
        (
            &[b"LOCK.ACQUIRE", b"k", b"t", b"1000", b"NX"],
            "ERR unknown option 'NX'",
        ),
        (
            &[
                b"LOCK.ACQUIRE",
                b"k",
                b"t",
                b"1000",
                b"WAIT",
                b"10",
                b"extra",
            ],
            "ERR unknown option 'extra'",
        ),
        (
            &[b"LOCK.ACQUIRE", b"k", b"t", b"1000", b"10"],
            "ERR unknown option '10'",
        ),
        (
            &[b"LOCK.ACQUIRE", b"k", b"t", b"1000", b""],
            "ERR unknown option ''",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(
            &expect_err(&mut con, args),
            want,
            "{}",
            baton_harness::lock::show(args)
        );
    }
    assert!(!exists(&mut con, b"k"));
}

#[test]
fn the_wait_keyword_is_case_insensitive() {
    // Redis options are case-insensitive (SET k v ex 10); so is WAIT.
    let server = RedisServer::start();
    let mut con = server.connection();
    for (i, word) in ["wait", "Wait", "WAIT"].iter().enumerate() {
        let key = format!("k{i}");
        let reply = raw(
            &mut con,
            &[
                b"LOCK.ACQUIRE",
                key.as_bytes(),
                b"t",
                b"1000",
                word.as_bytes(),
                b"0",
            ],
        );
        assert!(
            matches!(reply, Ok(redis::Value::Int(_))),
            "{word}: {reply:?}"
        );
    }
}

#[test]
fn every_command_on_a_key_of_another_type_is_wrongtype() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let _: () = redis::cmd("SET").arg("s").arg("v").query(&mut con).unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg("l")
        .arg("v")
        .query(&mut con)
        .unwrap();
    for key in [&b"s"[..], b"l"] {
        for args in [
            vec![&b"LOCK.ACQUIRE"[..], key, b"t", b"1000"],
            vec![b"LOCK.ACQUIRE", key, b"t", b"1000", b"WAIT", b"1000"],
            vec![b"LOCK.RELEASE", key, b"t"],
            vec![b"LOCK.EXTEND", key, b"t", b"1000"],
            vec![b"LOCK.FORCERELEASE", key],
            vec![b"LOCK.FENCE", key],
            vec![b"LOCK.INFO", key],
        ] {
            assert_eq!(
                expect_err(&mut con, &args),
                WRONGTYPE,
                "{}",
                baton_harness::lock::show(&args)
            );
        }
    }
    let v: String = redis::cmd("GET").arg("s").query(&mut con).unwrap();
    assert_eq!(v, "v", "the string key was left alone");
}

#[test]
fn lock_apply_from_a_client_is_refused() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let want = "ERR LOCK.APPLY is internal: accepted only from replication and AOF loading";
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let args = [&b"LOCK.APPLY"[..], b"k", b"t", b"7", now_ms.as_bytes()];
    assert_eq!(expect_err(&mut con, &args), want);
    // With too few arguments Redis' arity error may come first; either way
    // it is refused.
    let short = expect_err(&mut con, &[b"LOCK.APPLY", b"k"]);
    assert!(
        short == want || short == "ERR wrong number of arguments for 'lock.apply' command",
        "{short}"
    );
    assert!(!exists(&mut con, b"k"), "LOCK.APPLY created the key");
    assert_eq!(stats(&mut con)["grants"], 0);
    // Not through a script either.
    let err = redis::cmd("EVAL")
        .arg("return redis.call('LOCK.APPLY', KEYS[1], 't', '7', ARGV[1])")
        .arg(1)
        .arg("k")
        .arg(&now_ms)
        .query::<redis::Value>(&mut con)
        .unwrap_err();
    assert!(
        baton_harness::err_text(&err).contains("LOCK.APPLY is internal"),
        "{err:?}"
    );
    assert!(!exists(&mut con, b"k"));
}

#[test]
fn module_errors_start_with_err() {
    let server = RedisServer::start();
    let mut con = server.connection();
    for args in [
        vec![&b"LOCK.ACQUIRE"[..], b"k", b"", b"1"],
        vec![b"LOCK.ACQUIRE", b"k", b"t", b"0"],
        vec![b"LOCK.ACQUIRE", b"k", b"t", b"1", b"WAIT"],
        vec![b"LOCK.ACQUIRE", b"k", b"t", b"1", b"WAIT", b"-5"],
        vec![b"LOCK.ACQUIRE", b"k", b"t", b"1", b"X"],
    ] {
        assert!(expect_err(&mut con, &args).starts_with("ERR "));
    }
}

#[test]
fn a_command_that_errors_changes_nothing() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let fence = acquire(&mut con, b"held", b"holder", 60_000).unwrap();
    let _: () = redis::cmd("SET").arg("s").arg("v").query(&mut con).unwrap();
    let stats_before = stats(&mut con);
    let info_before = info(&mut con, b"held");
    let long = vec![b'x'; 257];
    let long_meta = vec![b'x'; 1025];
    let failing: Vec<Vec<&[u8]>> = vec![
        // The holder renewing with a bad option must not renew.
        vec![b"LOCK.ACQUIRE", b"held", b"holder", b"1000", b"WAIT", b"-1"],
        vec![b"LOCK.ACQUIRE", b"held", b"holder", b"1000", b"BOGUS"],
        vec![b"LOCK.ACQUIRE", b"held", b"holder", b"0"],
        vec![b"LOCK.ACQUIRE", b"held", b"holder", b"1000", b"WAIT"],
        vec![
            b"LOCK.ACQUIRE",
            b"held",
            b"other",
            b"1000",
            b"WAIT",
            b"1000",
            b"x",
        ],
        vec![b"LOCK.EXTEND", b"held", b"holder", b"0"],
        vec![b"LOCK.EXTEND", b"held", b"holder", b"2147483648"],
        vec![b"LOCK.EXTEND", b"held", b"holder", b"1000", b"x"],
        vec![b"LOCK.EXTEND", b"held", b"holder", b"1000", b"META"],
        vec![
            b"LOCK.EXTEND",
            b"held",
            b"holder",
            b"1000",
            b"META",
            &long_meta,
        ],
        vec![
            b"LOCK.EXTEND",
            b"held",
            b"holder",
            b"1000",
            b"META",
            b"a",
            b"META",
            b"b",
        ],
        vec![b"LOCK.RELEASE", b"held", b""],
        vec![b"LOCK.RELEASE", b"held", &long],
        vec![b"LOCK.RELEASE", b"held", b"holder", b"extra"],
        vec![b"LOCK.FORCERELEASE", b"held", b"extra"],
        // A free key must not be granted by a command that then errors on a
        // later argument.
        vec![b"LOCK.ACQUIRE", b"free", b"t", b"1000", b"WAIT", b"x"],
        vec![
            b"LOCK.ACQUIRE",
            b"free",
            b"t",
            b"1000",
            b"WAIT",
            b"10",
            b"WAIT",
        ],
        vec![b"LOCK.ACQUIRE", b"free", b"t", b"1000", b"NOPE"],
        vec![b"LOCK.ACQUIRE", b"free", b"t", b"-1"],
        vec![b"LOCK.ACQUIRE", b"free", &long, b"1000"],
        vec![b"LOCK.ACQUIRE", b"s", b"t", b"1000"],
        vec![
            b"LOCK.APPLY",
            b"held",
            b"intruder",
            b"999",
            b"99999999999999",
        ],
        vec![
            b"LOCK.APPLY",
            b"free",
            b"intruder",
            b"999",
            b"99999999999999",
        ],
    ];
    for args in &failing {
        let reply = raw(&mut con, args);
        assert!(
            reply.is_err(),
            "{} did not error: {reply:?}",
            baton_harness::lock::show(args)
        );
        let info_now = info(&mut con, b"held");
        assert!(
            info_now.held,
            "{} freed the lock",
            baton_harness::lock::show(args)
        );
        assert_eq!(info_now.fence, fence, "{}", baton_harness::lock::show(args));
        assert!(
            info_now.pttl <= info_before.pttl,
            "{} changed pttl {} -> {}",
            baton_harness::lock::show(args),
            info_before.pttl,
            info_now.pttl
        );
        assert!(
            !exists(&mut con, b"free"),
            "{} created the free key",
            baton_harness::lock::show(args)
        );
    }
    assert_eq!(stats(&mut con), stats_before, "counters moved on errors");
    assert_eq!(info(&mut con, b"held").waiters, 0);
    let next = acquire(&mut con, b"free", b"t", 1_000).expect("free lock granted");
    assert!(next > fence, "fence {next} not above {fence}");
}
