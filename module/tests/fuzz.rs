//! Fuzz (SPEC §2 "Safety", "Arguments"): random argument vectors at every
//! LOCK.* command on a live server. After each, the server must still answer
//! PING and the reply must be an error or a well-formed value of the
//! command's reply type. Seeded, so a failure replays with the same seed
//! (`BATON_FUZZ_SEED`); `BATON_FUZZ_ROUNDS` sets the rounds (`cargo xtask fuzz`
//! runs more). Replies are read raw (RESP2, byte for byte), so an
//! error line with binary bytes is still seen as the error it is.

use std::time::Duration;

use std::collections::BTreeMap;

use baton_harness::lock::{show, INFO_FIELDS, STATS_FIELDS};
use baton_harness::resp::{RawConnection, Reply};
use baton_harness::RedisServer;

const COMMANDS: [&str; 8] = [
    "LOCK.ACQUIRE",
    "LOCK.RELEASE",
    "LOCK.EXTEND",
    "LOCK.FORCERELEASE",
    "LOCK.FENCE",
    "LOCK.INFO",
    "LOCK.STATS",
    "LOCK.APPLY",
];
const DEFAULT_ROUNDS: usize = 4_000;

/// SplitMix64: small, seedable, good enough to pick test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One random argument: small keys and tokens (so locks collide), numbers at
/// and past every limit, option words, and random bytes.
fn arg(rng: &mut Rng) -> Vec<u8> {
    const WORDS: &[&[u8]] = &[
        b"k0",
        b"k1",
        b"k2",
        b"str",
        b"t0",
        b"t1",
        b"t2",
        b"WAIT",
        b"wait",
        b"NX",
        b"PX",
        b"0",
        b"1",
        b"-1",
        b"100",
        b"2147483647",
        b"2147483648",
        b"-2147483648",
        b"9223372036854775807",
        b"9223372036854775808",
        b"-9223372036854775808",
        b"18446744073709551616",
        b"99999999999999999999999999",
        b"",
        b" ",
        b"1.5",
        b"1e9",
        b"0x10",
        b"+5",
        b"007",
        b"\0",
        b"\r\n",
        b"\xff\xfe",
        b"nan",
        b"inf",
        b"LOCK.ACQUIRE",
    ];
    match rng.below(10) {
        0..=5 => rng.pick(WORDS).to_vec(),
        6 => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
        7 => rng.next().to_string().into_bytes(),
        8 => (rng.next() as i64).to_string().into_bytes(),
        _ => (rng.below(5_000) as i64 - 100).to_string().into_bytes(),
    }
}

/// A random command line; ACQUIRE sometimes gets a well-formed prefix so
/// that option parsing is reached.
fn command(rng: &mut Rng) -> Vec<Vec<u8>> {
    let name = *rng.pick(&COMMANDS);
    let mut args = vec![name.as_bytes().to_vec()];
    if name == "LOCK.ACQUIRE" && rng.below(2) == 0 {
        args.push(format!("k{}", rng.below(3)).into_bytes());
        args.push(format!("t{}", rng.below(3)).into_bytes());
        args.push((1 + rng.below(3_000)).to_string().into_bytes());
    }
    for _ in 0..rng.below(7) {
        args.push(arg(rng));
    }
    // WAIT > 0 on a held lock would block this single connection; keep any
    // WAIT value small so a block ends at once.
    for i in 1..args.len() {
        if args[i].eq_ignore_ascii_case(b"WAIT") && i + 1 < args.len() {
            if let Some(n) = std::str::from_utf8(&args[i + 1])
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            {
                if n > 5 {
                    args[i + 1] = b"5".to_vec();
                }
            }
        }
    }
    args
}

/// A RESP2 map (flat array of name, integer) as name → value.
fn int_map(v: &Reply) -> Option<BTreeMap<Vec<u8>, i64>> {
    let Reply::Array(Some(items)) = v else {
        return None;
    };
    if items.len() % 2 != 0 {
        return None;
    }
    let mut map = BTreeMap::new();
    for pair in items.chunks(2) {
        let (Reply::Bulk(Some(name)) | Reply::Status(name), Reply::Int(n)) = (&pair[0], &pair[1])
        else {
            return None;
        };
        if map.insert(name.clone(), *n).is_some() {
            return None;
        }
    }
    Some(map)
}

/// LOCK.INFO without its `meta` pair, which must be a bulk string or null.
fn lock_info_ints(v: &Reply) -> Option<Reply> {
    let Reply::Array(Some(items)) = v else {
        return None;
    };
    let mut rest = Vec::new();
    let mut metas = 0;
    for pair in items.chunks(2) {
        match pair {
            [Reply::Bulk(Some(name)), Reply::Bulk(_)] if name == b"meta" => metas += 1,
            _ => rest.extend_from_slice(pair),
        }
    }
    (metas == 1).then_some(Reply::Array(Some(rest)))
}

/// Whether `v` is a well-formed success reply for `name`.
fn well_formed(name: &str, v: &Reply) -> bool {
    match name {
        "LOCK.ACQUIRE" => v.is_null() || matches!(v, Reply::Int(n) if *n > 0),
        "LOCK.RELEASE" | "LOCK.EXTEND" | "LOCK.FORCERELEASE" => matches!(v, Reply::Int(0 | 1)),
        "LOCK.FENCE" => matches!(v, Reply::Int(n) if *n >= 0),
        "LOCK.INFO" => lock_info_ints(v)
            .and_then(|v| int_map(&v))
            .is_some_and(|m| {
                let get = |f: &str| m.get(f.as_bytes()).copied();
                m.len() == INFO_FIELDS.len() - 1
                    && INFO_FIELDS
                        .iter()
                        .filter(|f| **f != "meta")
                        .all(|f| get(f).is_some())
                    && matches!(get("held"), Some(0 | 1))
                    && get("fence") >= Some(0)
                    && get("pttl") >= Some(-1)
                    && get("waiters") >= Some(0)
            }),
        "LOCK.STATS" => int_map(v).is_some_and(|m| {
            m.len() == 9
                && STATS_FIELDS
                    .iter()
                    .all(|f| m.get(f.as_bytes()).is_some_and(|n| *n >= 0))
        }),
        // Internal: never accepted from a client.
        "LOCK.APPLY" => false,
        _ => unreachable!(),
    }
}

#[test]
fn random_arguments_never_crash_the_server_or_garble_a_reply() {
    let seed = std::env::var("BATON_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xBA70_u64);
    let mut rng = Rng(seed);
    let server = RedisServer::start();
    let mut con = RawConnection::connect(server.port(), Duration::from_secs(5)).unwrap();
    con.call(&[b"SET", b"str", b"v"]).unwrap();
    let (mut ok, mut errors) = (0, 0);
    let rounds = std::env::var("BATON_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    for round in 0..rounds {
        let args = command(&mut rng);
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let name = std::str::from_utf8(&args[0]).unwrap();
        let context = || format!("seed {seed} round {round}: {}", show(&refs));
        let reply = con.call(&refs).unwrap_or_else(|e| {
            panic!(
                "{}: no well-framed reply: {e}\n{}",
                context(),
                server.log_tail()
            )
        });
        match &reply {
            Reply::Error(line) => {
                assert!(
                    line.starts_with(b"ERR ") || line.starts_with(b"WRONGTYPE "),
                    "{}: error {:?}",
                    context(),
                    String::from_utf8_lossy(line)
                );
                errors += 1;
            }
            v => {
                assert!(well_formed(name, v), "{} -> {v:?}", context());
                ok += 1;
            }
        }
        let pong = con.call(&[b"PING"]);
        assert!(
            matches!(&pong, Ok(Reply::Status(s)) if s == b"PONG"),
            "{}: server gone or out of step: {pong:?}\n{}",
            context(),
            server.log_tail()
        );
    }
    // Both paths were exercised, and the node's counters are consistent.
    assert!(
        ok > rounds / 20 && errors > rounds / 20,
        "ok {ok}, errors {errors}"
    );
    let mut check = server.connection();
    let stats = baton_harness::lock::stats(&mut check);
    assert_eq!(stats["waiters"], 0, "{stats:?}");
    assert!(stats["held"] <= stats["locks"], "{stats:?}");
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut check).unwrap();
    assert!(stats["locks"] <= dbsize, "{stats:?} with dbsize {dbsize}");
}
