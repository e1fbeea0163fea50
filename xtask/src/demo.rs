//! `cargo xtask demo`: builds the module (release), starts a redis-server
//! with it and prints a short transcript: a grant with its fence, a refusal,
//! five blocked waiters served in FIFO order, and an expiry that hands the
//! lock on by itself. Each claim is also checked, so the demo fails loudly
//! if the module misbehaves.
//!
//! Blocked waiters are plain threads, each with its own connection; they
//! report to the main thread over a channel, which alone prints.

use crate::cargo::{build_module, header};
use crate::{deps, reply};
use anyhow::{bail, ensure, Context, Result};
use baton_tests::RedisServer;
use redis::{Connection, Value};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

pub fn run() -> Result<()> {
    header("system dependencies: redis-server 7.x, libclang");
    deps::ensure()?;
    header("cargo build --release -p baton-module");
    let module = build_module(true)?;
    header("redis-server with the module");
    let server = RedisServer::builder().module(&module).start();
    println!(
        "listening on port {} with {}",
        server.port(),
        module.display()
    );

    grant_and_refusal(&server)?;
    fifo_queue(&server)?;
    expiry_hand_off(&server)?;

    let mut con = server.connection();
    let stats: Vec<String> = ["grants", "releases", "expirations"]
        .iter()
        .map(|f| Ok(format!("{f} {}", reply::lock_stats(&mut con, f)?)))
        .collect::<Result<_>>()?;
    println!("\nLOCK.STATS: {}", stats.join(", "));
    drop(server);
    println!("server stopped.");
    Ok(())
}

/// A named connection that echoes what it sends, like redis-cli.
struct Cli {
    name: &'static str,
    con: Connection,
}

impl Cli {
    fn new(server: &RedisServer, name: &'static str) -> Self {
        Cli {
            name,
            con: server.connection(),
        }
    }

    /// Sends `args`, prints the command and its reply, and returns the reply.
    fn send(&mut self, args: &[&str], note: &str) -> Result<Value> {
        let reply: Value = command(args).query(&mut self.con)?;
        println!("{:>8}> {}", self.name, args.join(" "));
        reply_line(&show(&reply), note);
        Ok(reply)
    }
}

fn command(args: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd
}

/// Prints a reply (or state) line under its command, with a note.
fn reply_line(reply: &str, note: &str) {
    let line = format!("{:>10}{reply:<16} {note}", "");
    println!("{}", line.trim_end());
}

/// A reply as redis-cli would print it; maps on one line.
fn show(reply: &Value) -> String {
    match reply {
        Value::Int(n) => format!("(integer) {n}"),
        Value::Nil => "(nil)".into(),
        Value::BulkString(b) => format!("\"{}\"", String::from_utf8_lossy(b)),
        Value::SimpleString(s) => s.clone(),
        Value::Okay => "OK".into(),
        Value::Array(items) if items.len() % 2 == 0 => {
            let pairs: Vec<String> = items
                .chunks(2)
                .map(|p| format!("{} {}", show(&p[0]).trim_matches('"'), show(&p[1])))
                .collect();
            pairs.join(", ").replace("(integer) ", "")
        }
        Value::Map(pairs) => {
            let pairs: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{} {}", show(k).trim_matches('"'), show(v)))
                .collect();
            pairs.join(", ").replace("(integer) ", "")
        }
        other => format!("{other:?}"),
    }
}

fn fence(reply: &Value) -> Result<i64> {
    match reply {
        Value::Int(n) => Ok(*n),
        other => bail!("expected a fence, got {}", show(other)),
    }
}

fn section(title: &str) {
    println!("\n--- {title}");
}

fn grant_and_refusal(server: &RedisServer) -> Result<()> {
    section("1. A grant carries a fence; a second client is refused");
    let mut alice = Cli::new(server, "alice");
    let mut bob = Cli::new(server, "bob");
    let key = "demo:report";
    fence(&alice.send(
        &["LOCK.ACQUIRE", key, "alice-token", "10000"],
        "granted; the reply is the fence",
    )?)?;
    let refused = bob.send(
        &["LOCK.ACQUIRE", key, "bob-token", "10000"],
        "refused: alice holds it",
    )?;
    ensure!(refused == Value::Nil, "bob should have been refused");
    alice.send(&["LOCK.INFO", key], "")?;
    alice.send(&["LOCK.RELEASE", key, "alice-token"], "released")?;
    Ok(())
}

fn fifo_queue(server: &RedisServer) -> Result<()> {
    section("2. Five blocked waiters are served in the order they came");
    let key = "demo:queue";
    let mut holder = Cli::new(server, "holder");
    let mut probe = server.connection();
    let first = fence(&holder.send(&["LOCK.ACQUIRE", key, "holder-token", "30000"], "")?)?;

    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::new();
    for n in 1..=5 {
        let mut con = server.connection();
        let tx = tx.clone();
        let token = format!("waiter-{n}");
        println!(
            "{:>8}> LOCK.ACQUIRE {key} {token} 30000 WAIT 5000",
            format!("w{n}")
        );
        threads.push(thread::spawn(move || {
            let reply: redis::RedisResult<Value> = redis::cmd("LOCK.ACQUIRE")
                .arg(key)
                .arg(&token)
                .arg(30000)
                .arg("WAIT")
                .arg(5000)
                .query(&mut con);
            // Report before releasing: the next hand-off cannot happen
            // until we release, so the channel sees grants in order.
            let _ = tx.send((n, reply));
            thread::sleep(Duration::from_millis(50));
            let _: redis::RedisResult<Value> = redis::cmd("LOCK.RELEASE")
                .arg(key)
                .arg(&token)
                .query(&mut con);
        }));
        // Start the next waiter only once this one is queued.
        wait_until(|| Ok(reply::lock_info(&mut probe, key, "waiters")? == n))
            .with_context(|| format!("waiter {n} never showed up in LOCK.INFO waiters"))?;
        reply_line("...", &format!("blocked: LOCK.INFO shows waiters {n}"));
    }
    drop(tx);
    holder.send(&["LOCK.INFO", key], "")?;
    holder.send(&["LOCK.RELEASE", key, "holder-token"], "hands off to w1")?;

    let mut last = first;
    for expected in 1..=5 {
        let (n, reply) = rx
            .recv_timeout(Duration::from_secs(10))
            .context("a waiter was never served")?;
        let f = fence(&reply.with_context(|| format!("w{n} failed"))?)?;
        println!(
            "{:>8}  granted, fence {f} (holds it 50 ms, then releases)",
            format!("w{n}")
        );
        ensure!(
            n == expected,
            "w{n} was served before w{expected}: not FIFO"
        );
        ensure!(f > last, "fence {f} is not above the previous fence {last}");
        last = f;
    }
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a waiter thread panicked"))?;
    }
    println!("{:>8}  order w1..w5, fences strictly increasing", "ok");
    Ok(())
}

fn expiry_hand_off(server: &RedisServer) -> Result<()> {
    section("3. A holder that never releases: expiry hands the lock on");
    let key = "demo:expiry";
    let mut crashed = Cli::new(server, "crashed");
    let mut probe = server.connection();
    let mut waiter = server.connection();
    let start = Instant::now();
    crashed.send(
        &["LOCK.ACQUIRE", key, "crashed-token", "300"],
        "ttl 300 ms, never released",
    )?;
    println!(
        "{:>8}> LOCK.ACQUIRE {key} waiter-token 30000 WAIT 5000",
        "waiter"
    );
    let handle = thread::spawn(move || -> redis::RedisResult<Value> {
        redis::cmd("LOCK.ACQUIRE")
            .arg(key)
            .arg("waiter-token")
            .arg(30000)
            .arg("WAIT")
            .arg(5000)
            .query(&mut waiter)
    });
    wait_until(|| Ok(reply::lock_info(&mut probe, key, "waiters")? == 1))
        .context("the waiter never showed up in LOCK.INFO waiters")?;
    reply_line("...", "blocked; from here on no command is sent");
    let reply = handle
        .join()
        .map_err(|_| anyhow::anyhow!("the waiter thread panicked"))??;
    let f = fence(&reply)?;
    println!(
        "{:>8}  granted, fence {f}, {} ms after the holder's grant: the expiry handed it on",
        "waiter",
        start.elapsed().as_millis()
    );
    Ok(())
}

/// Polls `check` every 5 ms for up to 2 s.
fn wait_until(mut check: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if check()? {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(5));
    }
    bail!("timed out after 2 s")
}
