//! DUMP / RESTORE of lock and semaphore keys (SPEC §9: "RESTORE validates its payload"):
//! a valid lock travels and raises the node's fence floor; a malformed or
//! forged payload is an error reply, never a crash and never a change; and
//! thousands of mutated payloads (checksums recomputed, so the module parses
//! them) leave the server alive with only well-formed locks in it.
//!
//! `BATON_FUZZ_RESTORE_ROUNDS` sets the fuzz rounds (`cargo xtask fuzz`
//! runs more); `BATON_FUZZ_SEED` replays a run.

use baton_harness::dump::{self, DumpFormat, OPCODE_STRING, OPCODE_UINT};
use baton_harness::lock::{acquire, exists, info, stats};
use baton_harness::{err_text, RedisServer};

const DEFAULT_ROUNDS: usize = 3_000;

fn dump_of(con: &mut redis::Connection, key: &str) -> Vec<u8> {
    redis::cmd("DUMP").arg(key).query(con).expect("DUMP")
}

fn restore(con: &mut redis::Connection, key: &str, payload: &[u8]) -> Result<(), String> {
    redis::cmd("RESTORE")
        .arg(key)
        .arg(0)
        .arg(payload)
        .query::<()>(con)
        .map_err(|e| err_text(&e))
}

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn unix_ms() -> u64 {
    unix_us() / 1000
}

/// A server with one held lock to take the payload format from.
fn server_and_format() -> (RedisServer, redis::Connection, DumpFormat) {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"model", b"t", 60_000).unwrap();
    let format = DumpFormat::of(&dump_of(&mut con, "model"));
    (server, con, format)
}

#[test]
fn a_dumped_lock_restores_elsewhere_with_its_holder() {
    let from = RedisServer::start();
    let mut con = from.connection();
    let fence = acquire(&mut con, b"k", b"holder", 60_000).unwrap();
    let payload = dump_of(&mut con, "k");
    let to = RedisServer::start();
    let mut other = to.connection();
    restore(&mut other, "k", &payload).unwrap();
    let restored = info(&mut other, b"k");
    assert!(restored.held && restored.fence == fence);
    assert!(restored.pttl > 50_000, "pttl {}", restored.pttl);
    assert_eq!(acquire(&mut other, b"k", b"holder", 1_000), Some(fence));
    assert_eq!(acquire(&mut other, b"k", b"someone", 1_000), None);
}

#[test]
fn a_restored_fence_raises_the_node_floor() {
    let (_server, mut con, format) = server_and_format();
    // Another node's fence, ahead of this node's clock by 1000 s.
    let ahead = unix_us() + 1_000_000_000;
    restore(&mut con, "k", &format.lock(ahead, unix_ms() + 60_000, b"t")).unwrap();
    assert_eq!(info(&mut con, b"k").fence, ahead as i64);
    let next = acquire(&mut con, b"other", b"t", 1_000).unwrap();
    assert!(
        next > ahead as i64,
        "fence {next} not above the restored {ahead}"
    );
}

#[test]
fn forged_fences_are_refused_and_raise_nothing() {
    let (_server, mut con, format) = server_and_format();
    let expires = unix_ms() + 60_000;
    for forged in [
        u64::MAX,
        1 << 63,
        1 << 53,
        (1 << 53) - 1,
        unix_us() + (1 << 46),
    ] {
        let reply = restore(&mut con, "k", &format.lock(forged, expires, b"t"));
        assert!(reply.is_err(), "fence {forged} was accepted");
        assert!(!exists(&mut con, b"k"));
    }
    let next = acquire(&mut con, b"other", b"t", 1_000).unwrap() as u64;
    assert!(
        next < unix_us() + 1_000_000,
        "fence {next} was pushed up by a refused payload"
    );
}

#[test]
fn a_payload_without_a_holder_or_with_a_bad_token_is_refused() {
    // A free lock has no key, so a value without a holder is never valid:
    // before, such values were kept and swept one per pass.
    let (_server, mut con, format) = server_and_format();
    let expires = unix_ms() + 60_000;
    let fence = unix_us();
    for (name, payload) in [
        ("fence 0", format.lock(0, expires, b"t")),
        ("empty token", format.lock(fence, expires, b"")),
        ("long token", format.lock(fence, expires, &[b'x'; 257])),
        ("far expiry", format.lock(fence, u64::MAX, b"t")),
    ] {
        assert!(restore(&mut con, "k", &payload).is_err(), "{name} accepted");
        assert!(!exists(&mut con, b"k"), "{name} left a key");
    }
    assert_eq!(stats(&mut con)["locks"], 1, "only the model lock exists");
}

#[test]
fn metadata_restores_and_an_older_payload_without_it_still_loads() {
    let (_server, mut con, format) = server_and_format();
    let expires = unix_ms() + 60_000;
    let with_meta = format.lock_with_meta(unix_us(), expires, b"t", Some(b"host-7"));
    restore(&mut con, "m", &with_meta).unwrap();
    assert_eq!(info(&mut con, b"m").meta.as_deref(), Some(&b"host-7"[..]));
    // Encoding version 1 (modules before META) has no flag at all.
    let old = format.lock_v1(unix_us(), expires, b"t");
    restore(&mut con, "old", &old).unwrap();
    let i = info(&mut con, b"old");
    assert!(i.held && i.meta.is_none(), "{i:?}");
    assert_eq!(acquire(&mut con, b"old", b"t", 1_000), Some(i.fence));
}

#[test]
fn a_payload_with_bad_metadata_is_refused() {
    let (_server, mut con, format) = server_and_format();
    let expires = unix_ms() + 60_000;
    let fence = unix_us();
    let long = [b'm'; 1025];
    let mut bad_flag = dump::body(&format.lock(fence, expires, b"t")).to_vec();
    // The flag is the last unsigned before EOF: `UINT 0 EOF`.
    let flag_at = bad_flag.len() - 2;
    bad_flag[flag_at] = 2;
    for (name, payload) in [
        (
            "1025-byte meta",
            format.lock_with_meta(fence, expires, b"t", Some(&long)),
        ),
        ("flag 2", format.seal(&bad_flag)),
        ("flag without meta", {
            let mut body = dump::body(&format.lock(fence, expires, b"t")).to_vec();
            body[flag_at] = 1;
            format.seal(&body)
        }),
    ] {
        assert!(restore(&mut con, "k", &payload).is_err(), "{name} accepted");
        assert!(!exists(&mut con, b"k"), "{name} left a key");
    }
    let ok = format.lock_with_meta(fence, expires, b"t", Some(&long[..1024]));
    restore(&mut con, "k", &ok).unwrap();
}

#[test]
fn a_crafted_opcode_is_an_error_reply_not_a_crash() {
    // The reproduction: the token's STRING opcode turned into an
    // UINT, checksum recomputed. Redis used to end with "Error loading data".
    let (server, mut con, format) = server_and_format();
    let good = dump_of(&mut con, "model");
    let mut body = dump::body(&good).to_vec();
    let at = body
        .iter()
        .rposition(|&b| b == OPCODE_STRING)
        .expect("the token opcode");
    body[at] = OPCODE_UINT;
    let reply = restore(&mut con, "k", &format.seal(&body));
    assert!(reply.is_err(), "a crafted payload was accepted");
    let pong: String = redis::cmd("PING").query(&mut server.connection()).unwrap();
    assert_eq!(pong, "PONG");
    assert!(!exists(&mut con, b"k"));
}

/// SplitMix64, seeded.
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
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of a payload body: flips, random bytes, truncation, growth,
/// a byte set to an opcode or length marker, or a spliced length.
fn mutate(rng: &mut Rng, body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    // Keep the 10-byte header intact most of the time, so the module parses.
    let start = if rng.below(8) == 0 {
        0
    } else {
        10.min(out.len())
    };
    for _ in 0..1 + rng.below(3) {
        let len = out.len();
        let at = start + rng.below(len.saturating_sub(start).max(1));
        match rng.below(7) {
            0 if at < len => out[at] ^= 1 << rng.below(8),
            1 if at < len => out[at] = rng.next() as u8,
            2 => out.truncate(at),
            3 => out
                .splice(at..at, (0..rng.below(12)).map(|_| rng.next() as u8))
                .for_each(drop),
            4 if at < len => out[at] = [0, 2, 5, 0x40, 0x80, 0x81, 0xc0, 0xc3][rng.below(8)],
            5 => {
                let mut big = Vec::new();
                dump::push_len(&mut big, [1 << 20, 1 << 31, u64::MAX][rng.below(3)]);
                out.splice(at..at, big).for_each(drop);
            }
            _ => {
                let mut n = Vec::new();
                dump::push_len(&mut n, rng.next() >> rng.below(64));
                out.splice(at..at, n).for_each(drop);
            }
        }
    }
    out
}

#[test]
fn mutated_payloads_never_crash_the_server_and_leave_only_valid_locks() {
    let rounds = std::env::var("BATON_FUZZ_RESTORE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    let seed = std::env::var("BATON_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(unix_us);
    eprintln!("restore fuzz: {rounds} rounds, BATON_FUZZ_SEED={seed}");
    let (server, mut con, format) = server_and_format();
    let _: Option<i64> = redis::cmd("SEM.ACQUIRE")
        .arg("sem-model")
        .arg("t")
        .arg(60_000)
        .arg("LIMIT")
        .arg(3)
        .arg("PERMITS")
        .arg(2)
        .query(&mut con)
        .unwrap();
    let seeds: Vec<Vec<u8>> = vec![
        dump_of(&mut con, "model"),
        dump_of(&mut con, "sem-model"),
        format.lock(unix_us(), unix_ms() + 60_000, &[0xab; 40]),
        format.lock(unix_us(), unix_ms() + 60_000, b"12345"),
    ];
    let mut rng = Rng(seed);
    let mut accepted = 0;
    for round in 0..rounds {
        let base = &seeds[rng.below(seeds.len())];
        let body = mutate(&mut rng, dump::body(base));
        // Mostly a correct checksum, so the module sees the bytes.
        let payload = if rng.below(10) == 0 {
            body.clone()
        } else {
            format.seal(&body)
        };
        let key = format!("f{round}");
        match restore(&mut con, &key, &payload) {
            Ok(()) => accepted += 1,
            Err(e) => assert!(!e.is_empty()),
        }
        if round % 100 == 0 {
            let pong: redis::RedisResult<String> = redis::cmd("PING").query(&mut con);
            assert!(
                pong.is_ok(),
                "server died at round {round} (BATON_FUZZ_SEED={seed}):\n{}",
                server.log_tail()
            );
        }
    }
    // Whatever was accepted as a lock is a well-formed one with a fence in
    // range (a mutated type byte may make a payload another Redis type).
    let keys: Vec<String> = redis::cmd("KEYS").arg("f*").query(&mut con).unwrap();
    assert!(
        keys.len() <= accepted,
        "{} keys from {accepted} accepted payloads",
        keys.len()
    );
    let mut highest = 0;
    for key in &keys {
        let kind: String = redis::cmd("TYPE").arg(key).query(&mut con).unwrap();
        if kind == "baton-sem" {
            let info = baton_harness::lock::sem_info(&mut con, key.as_bytes());
            assert!(info["used"] <= info["limit"], "{key}: {info:?}");
            highest = highest.max(info["fence"]);
            continue;
        }
        if kind != "baton-lck" {
            continue;
        }
        let i = info(&mut con, key.as_bytes());
        assert!(i.fence >= 0 && i.fence < 1 << 53, "{key}: {i:?}");
        highest = highest.max(i.fence);
    }
    let next = acquire(&mut con, b"after", b"t", 1_000).unwrap();
    assert!(next > highest && next < 1 << 53);
    eprintln!("restore fuzz: {accepted} of {rounds} payloads accepted");
}
