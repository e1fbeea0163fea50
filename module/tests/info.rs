//! Introspection (SPEC §2 table, "Cluster"; DESIGN "Counters"): LOCK.INFO and
//! LOCK.STATS fields and reply shapes (RESP2 flat arrays, RESP3 maps), the
//! `INFO baton` section, and the key positions Redis is told about.

use baton_harness::lock::{
    acquire, extend, force_release, info, release, split_meta, stats, to_int_map, INFO_FIELDS,
    STATS_FIELDS,
};
use baton_harness::replication::parse_info_field;
use baton_harness::{LockInfo, RedisServer, Waiter};
use redis::Value;

fn names_of_flat_array(v: &Value) -> Vec<String> {
    let Value::Array(items) = v else {
        panic!("not a flat array: {v:?}")
    };
    assert_eq!(items.len() % 2, 0, "odd length: {v:?}");
    items
        .chunks(2)
        .map(|c| match (&c[0], &c[1]) {
            (Value::BulkString(n), Value::Int(_)) => String::from_utf8(n.clone()).unwrap(),
            (Value::SimpleString(n), Value::Int(_)) => n.clone(),
            (Value::BulkString(n), Value::BulkString(_) | Value::Nil) if n == b"meta" => {
                "meta".to_string()
            }
            other => panic!("pair {other:?} is not name, integer (or meta, bulk)"),
        })
        .collect()
}

/// `name` in a RESP2 flat-array map.
fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    let Value::Array(items) = v else { return None };
    items
        .chunks(2)
        .find(|c| matches!(&c[0], Value::BulkString(n) if n == name.as_bytes()))
        .map(|c| &c[1])
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn lock_info_is_a_flat_array_of_five_fields_in_resp2() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"t", 10_000).unwrap();
    for key in ["k", "free"] {
        let v: Value = redis::cmd("LOCK.INFO").arg(key).query(&mut con).unwrap();
        let mut names = names_of_flat_array(&v);
        names.sort();
        assert_eq!(names, sorted(&INFO_FIELDS), "{key}: {v:?}");
    }
}

#[test]
fn lock_info_of_a_free_and_a_held_lock() {
    let server = RedisServer::start();
    let mut con = server.connection();
    assert_eq!(
        info(&mut con, b"k"),
        LockInfo {
            held: false,
            fence: 0,
            pttl: -1,
            waiters: 0,
            meta: None
        }
    );
    let f = acquire(&mut con, b"k", b"t", 10_000).unwrap();
    let i = info(&mut con, b"k");
    assert!(
        i.held && i.fence == f && i.waiters == 0 && (9_000..=10_000).contains(&i.pttl),
        "{i:?}"
    );
    let w = Waiter::start(&server, b"k", b"w", 10_000, 10_000);
    baton_harness::assert_eventually(std::time::Duration::from_secs(5), "waiters 1", || {
        info(&mut con, b"k").waiters == 1
    });
    release(&mut con, b"k", b"t");
    w.fence().unwrap();
    assert_eq!(info(&mut con, b"k").waiters, 0);
}

#[test]
fn lock_stats_is_a_flat_array_of_nine_counters_in_resp2() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let v: Value = redis::cmd("LOCK.STATS").query(&mut con).unwrap();
    let mut names = names_of_flat_array(&v);
    names.sort();
    assert_eq!(names, sorted(&STATS_FIELDS), "{v:?}");
    let s = to_int_map(&v).unwrap();
    assert!(
        s.values().all(|&n| n == 0),
        "a fresh server has all counters at 0: {s:?}"
    );
}

#[test]
fn lock_info_and_stats_are_maps_in_resp3() {
    let server = RedisServer::start();
    let client = redis::Client::open(format!("{}/?protocol=resp3", server.url())).unwrap();
    let mut con = client.get_connection().unwrap();
    let mut plain = server.connection();
    acquire(&mut plain, b"k", b"t", 10_000).unwrap();
    let v: Value = redis::cmd("LOCK.INFO").arg("k").query(&mut con).unwrap();
    let Value::Map(pairs) = &v else {
        panic!("LOCK.INFO in RESP3 is not a map: {v:?}")
    };
    assert_eq!(pairs.len(), 5);
    let (meta, ints) = split_meta(&v).unwrap();
    assert_eq!((meta, to_int_map(&ints).unwrap()["held"]), (None, 1));
    let v: Value = redis::cmd("LOCK.STATS").query(&mut con).unwrap();
    let Value::Map(pairs) = &v else {
        panic!("LOCK.STATS in RESP3 is not a map: {v:?}")
    };
    assert_eq!(pairs.len(), 9);
}

#[test]
fn stats_count_every_kind_of_event() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"a", b"t", 10_000).unwrap();
    acquire(&mut con, b"a", b"t", 10_000).unwrap(); // renewal: not a grant
    acquire(&mut con, b"b", b"t", 10_000).unwrap();
    acquire(&mut con, b"c", b"t", 100).unwrap();
    assert_eq!(acquire(&mut con, b"a", b"other", 10_000), None); // refusal: nothing
    extend(&mut con, b"a", b"t", 10_000);
    extend(&mut con, b"a", b"wrong", 10_000); // not counted
    release(&mut con, b"a", b"t");
    release(&mut con, b"a", b"t"); // 0: not counted
    force_release(&mut con, b"b");
    force_release(&mut con, b"b"); // 0: not counted
    acquire(&mut con, b"d", b"t", 10_000).unwrap();
    let _ = baton_harness::lock::acquire_wait(&mut con, b"d", b"w", 10_000, 20);
    baton_harness::assert_eventually(std::time::Duration::from_secs(2), "c expires", || {
        stats(&mut con)["expirations"] == 1
    });
    let s = stats(&mut con);
    let want: &[(&str, i64)] = &[
        ("locks", 1),
        ("held", 1),
        ("waiters", 0),
        ("grants", 4),
        ("releases", 1),
        ("extends", 1),
        ("expirations", 1),
        ("wait_timeouts", 1),
        ("force_releases", 1),
    ];
    for (name, n) in want {
        assert_eq!(s[*name], *n, "{name} in {s:?}");
    }
}

#[test]
fn info_baton_section_shows_the_stats_counters() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"a", b"t", 10_000).unwrap();
    acquire(&mut con, b"b", b"t", 10_000).unwrap();
    release(&mut con, b"b", b"t");
    let s = stats(&mut con);
    let text: String = redis::cmd("INFO").arg("baton").query(&mut con).unwrap();
    assert!(
        text.contains("# baton") || text.contains("# Baton"),
        "no baton section header in:\n{text}"
    );
    for name in STATS_FIELDS {
        // Redis prefixes a module's info fields with the module name.
        let value = parse_info_field(&text, &format!("baton_{name}"))
            .or_else(|| parse_info_field(&text, name))
            .unwrap_or_else(|| panic!("INFO baton has no {name}:\n{text}"));
        assert_eq!(
            value.parse::<i64>().ok(),
            Some(s[name]),
            "{name} in:\n{text}"
        );
    }
    // It is also part of INFO everything / INFO modules.
    let all: String = redis::cmd("INFO")
        .arg("everything")
        .query(&mut con)
        .unwrap();
    assert!(
        all.contains("grants:"),
        "INFO everything lacks the baton counters"
    );
}

#[test]
fn command_info_declares_the_key_at_position_1() {
    let server = RedisServer::start();
    let mut con = server.connection();
    for name in [
        "lock.acquire",
        "lock.release",
        "lock.extend",
        "lock.forcerelease",
        "lock.fence",
        "lock.info",
    ] {
        let v: Value = redis::cmd("COMMAND")
            .arg("INFO")
            .arg(name)
            .query(&mut con)
            .unwrap();
        let Value::Array(outer) = &v else {
            panic!("{v:?}")
        };
        let Value::Array(doc) = &outer[0] else {
            panic!("{name} unknown to COMMAND INFO: {v:?}")
        };
        assert_eq!(doc[3], Value::Int(1), "{name}: first key");
        assert_eq!(doc[4], Value::Int(1), "{name}: last key");
        assert_eq!(doc[5], Value::Int(1), "{name}: step");
        // Redis 7 key specs: one spec, found by index at position 1.
        let Some(Value::Array(specs)) = doc.get(8) else {
            panic!("{name}: no key specs: {doc:?}")
        };
        assert_eq!(specs.len(), 1, "{name}: key specs {specs:?}");
        let begin = field(&specs[0], "begin_search").unwrap_or_else(|| panic!("{name}: {specs:?}"));
        assert_eq!(
            field(begin, "type"),
            Some(&Value::BulkString(b"index".to_vec())),
            "{name}: {begin:?}"
        );
        let spec = field(begin, "spec").unwrap_or_else(|| panic!("{name}: {begin:?}"));
        assert_eq!(
            field(spec, "index"),
            Some(&Value::Int(1)),
            "{name}: {spec:?}"
        );
    }
    let v: Value = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("lock.stats")
        .query(&mut con)
        .unwrap();
    let Value::Array(outer) = &v else {
        panic!("{v:?}")
    };
    let Value::Array(doc) = &outer[0] else {
        panic!("lock.stats unknown: {v:?}")
    };
    assert_eq!(doc[3], Value::Int(0), "LOCK.STATS takes no key");
}

#[test]
fn command_getkeys_finds_the_key() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let cases: &[&[&str]] = &[
        &["LOCK.ACQUIRE", "k", "t", "100"],
        &["LOCK.ACQUIRE", "k", "t", "100", "WAIT", "10"],
        &["LOCK.RELEASE", "k", "t"],
        &["LOCK.EXTEND", "k", "t", "100"],
        &["LOCK.FORCERELEASE", "k"],
        &["LOCK.FENCE", "k"],
        &["LOCK.INFO", "k"],
    ];
    for args in cases {
        let keys: Vec<String> = redis::cmd("COMMAND")
            .arg("GETKEYS")
            .arg(*args)
            .query(&mut con)
            .unwrap();
        assert_eq!(keys, vec!["k".to_string()], "{args:?}");
    }
}

#[test]
fn read_commands_are_flagged_readonly_and_writes_write() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let flags = |con: &mut redis::Connection, name: &str| -> String {
        let v: Value = redis::cmd("COMMAND")
            .arg("INFO")
            .arg(name)
            .query(con)
            .unwrap();
        format!("{v:?}")
    };
    for name in [
        "lock.acquire",
        "lock.release",
        "lock.extend",
        "lock.forcerelease",
    ] {
        assert!(
            flags(&mut con, name).contains("\"write\""),
            "{name} is not flagged write"
        );
    }
    for name in ["lock.fence", "lock.info", "lock.stats"] {
        let f = flags(&mut con, name);
        assert!(
            f.contains("\"readonly\""),
            "{name} is not flagged readonly: {f}"
        );
    }
}
