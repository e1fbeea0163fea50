//! `cargo xtask demo`: builds the module and `baton-bench` (release) and the
//! client's `demo` example (`client/examples/demo/`), starts a redis-server
//! with the module and runs the example against it: a short transcript of
//! `baton_client` at work (grants, refusals, FIFO hand-offs, expiry,
//! watchdog, lost signal, a semaphore, an election with a killed leader),
//! each claim checked, so the demo fails loudly if the module or the client
//! misbehaves. It ends with workload 2 in short (8 tasks on one key, hold
//! 1 ms) against Redlock on 3 instances, run by the release
//! `baton-bench --demo` so that its figures mean something.

use crate::cargo::{build_release, cargo, header, run as run_step, target_dir, workspace_root};
use crate::deps;
use anyhow::{bail, Result};
use baton_harness::RedisServer;
use std::process::Command;
use std::time::Instant;

/// Seconds of the contended run, per contender (module, then Redlock).
const CONTENDED_SECS: u64 = 10;

pub fn run() -> Result<()> {
    header("system dependencies: redis-server 7.x, libclang");
    deps::ensure()?;
    header("cargo build --release -p baton-module -p baton-benches");
    let built = build_release(&[])?;
    // A debug build, like this xtask: its figures are the server's, and the
    // debug dependencies are those `cargo xtask test` already built.
    header("cargo build -p baton-client --example demo");
    run_step(
        "build demo",
        &mut cargo(&["build", "-p", "baton-client", "--example", "demo"]),
    )?;
    let example = target_dir().join("debug").join("examples").join("demo");
    if !example.is_file() {
        bail!("step 'build demo': {} was not produced", example.display());
    }

    header("redis-server with the module");
    let started = Instant::now();
    let server = RedisServer::builder().module(&built.module).start();
    println!(
        "listening on port {} with {}",
        server.port(),
        built.module.display()
    );
    run_step(
        "demo example",
        Command::new(&example)
            .arg(server.url())
            .current_dir(workspace_root()),
    )?;
    drop(server);
    println!("server stopped.");

    println!(
        "\n--- 8. Workload 2 in short: 8 tasks on ONE key, hold 1 ms, {CONTENDED_SECS} s each, \
         baton module vs Redlock on 3 instances"
    );
    println!("(release baton-bench --demo {CONTENDED_SECS}: its own redis-server with the module, two plain ones for Redlock)");
    run_step(
        "contended demo",
        Command::new(&built.bench)
            .args(["--demo", &CONTENDED_SECS.to_string()])
            .current_dir(workspace_root()),
    )?;
    println!("servers stopped.");
    println!(
        "\ndemo done in {:.1} s (after the build)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
