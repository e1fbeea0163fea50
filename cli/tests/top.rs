//! `baton top`: on a real (pseudo-)terminal it redraws changing counters in
//! place and quits on `q`; without one it prints plain or JSON frames.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use baton_harness::{lock, wait_until, RedisServer};
use common::terminal::Terminal;
use common::*;
use serde_json::Value;

/// Takes and releases `key` over and over on its own connection until
/// dropped (at most `PATIENCE`), so the counters move.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<u64>>,
}

impl Traffic {
    fn start(server: &RedisServer, key: &'static str) -> Self {
        let mut con = server.connection();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let until = Instant::now() + PATIENCE;
            let mut cycles = 0;
            while !flag.load(Ordering::Relaxed) && Instant::now() < until {
                lock::acquire(&mut con, key.as_bytes(), b"traffic", 10_000).expect("granted");
                lock::release(&mut con, key.as_bytes(), b"traffic");
                cycles += 1;
                thread::sleep(Duration::from_millis(5));
            }
            cycles
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The total row's cells: `total`, the three rates, held, waiters, grants,
/// releases, expirations.
fn total_row(screen: &str) -> Option<Vec<String>> {
    let line = screen.lines().find(|l| l.starts_with("total "))?;
    let cells: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    (cells.len() == 9).then_some(cells)
}

#[test]
fn top_on_a_terminal_shows_changing_counters_and_quits_on_q() {
    let server = RedisServer::start();
    let (mut term, child) = Terminal::spawn(baton(&server.url(), &["top"]), 30, 120);
    let _traffic = Traffic::start(&server, "busy");

    // Two frames with different grant totals and a rate above zero.
    let mut seen: Vec<Vec<String>> = Vec::new();
    let moving = wait_until(PATIENCE, || {
        let Some(cells) = total_row(&term.contents()) else {
            return false;
        };
        if seen.last() != Some(&cells) {
            seen.push(cells);
        }
        let grants: Vec<u64> = seen.iter().filter_map(|c| c[6].parse().ok()).collect();
        let rated = seen
            .iter()
            .any(|c| c[1].parse::<f64>().is_ok_and(|r| r > 0.0));
        grants.windows(2).any(|w| w[1] > w[0]) && rated
    });
    let screen = term.contents();
    assert!(
        moving,
        "the counters did not change on screen: {seen:?}\n{screen}"
    );
    assert!(
        screen.starts_with("baton top  redis://127.0.0.1:"),
        "{screen}"
    );
    assert!(
        screen.contains("NODE") && screen.contains("GRANTS/S"),
        "{screen}"
    );
    assert!(
        screen.contains(&format!("127.0.0.1:{}", server.port())),
        "a row for the node: {screen}"
    );
    assert!(term.alternate(), "drawn on the alternate screen");

    term.type_keys("q");
    let out = finish(child);
    assert_eq!(code(out.status), 0, "q quits with 0");
    term.drain();
    assert!(!term.alternate(), "the terminal is given back");
}

#[test]
fn top_json_frames_parse_and_carry_rates() {
    let server = RedisServer::start();
    let _traffic = Traffic::start(&server, "busy");
    let out = run(
        &server.url(),
        &["top", "--json", "--count", "3", "--interval", "300ms"],
    );
    assert_eq!(code(out.status), 0, "{}", show(&out));
    let frames: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(frames.len(), 3, "{}", show(&out));
    for f in &frames {
        assert_eq!(f["nodes"].as_array().map(Vec::len), Some(1), "{f}");
        assert_eq!(
            f["nodes"][0]["node"],
            format!("127.0.0.1:{}", server.port())
        );
        assert_eq!(f["nodes"][0]["error"], Value::Null);
    }
    assert_eq!(frames[0]["total"]["per_second"], Value::Null, "no rate yet");
    let grants: Vec<u64> = frames
        .iter()
        .map(|f| f["total"]["grants"].as_u64().unwrap())
        .collect();
    assert!(grants[2] > grants[0], "{grants:?}");
    let rate = frames[2]["total"]["per_second"]["grants"].as_f64().unwrap();
    assert!(rate > 0.0, "{}", frames[2]);
}

#[test]
fn top_without_a_terminal_prints_plain_frames() {
    let server = RedisServer::start();
    let out = run(
        &server.url(),
        &["top", "--count", "2", "--interval", "200ms"],
    );
    assert_eq!(code(out.status), 0, "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains('\x1b'),
        "no escape sequences in a pipe: {text:?}"
    );
    assert_eq!(text.matches("\nNODE ").count(), 2, "{text}");
    assert_eq!(text.matches("\ntotal ").count(), 2, "{text}");
}
