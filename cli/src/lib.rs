//! baton-cli: the `baton` command. It runs a command while holding a baton
//! lock or semaphore lease (in the spirit of `flock(1)`, `etcdctl lock` and
//! `consul lock`) or while leading an election, shows locks, leaders and
//! counters, force-releases, and draws a live view of a node's (or a
//! Cluster's) lock traffic.
//!
//! # Layout
//!
//! - [`args`]: the clap declaration of every subcommand and flag, with the
//!   help texts; completions are generated from it.
//! - [`duration`]: the duration syntax (`500ms`, `30s`, `1m30s`) and each
//!   flag's range.
//! - [`exit`]: every exit status baton itself uses, and [`exit::Failure`].
//! - [`connect`]: building the client from `--url` / `--backend`, and the
//!   client's errors as failures a person can act on.
//! - [`url`]: URLs with the password hidden, or pointed at another node.
//! - [`signals`]: SIGINT, SIGTERM and SIGHUP, caught.
//! - `logging`: the client's warnings on stderr, as `baton: warning:` lines.
//! - [`view`]: a lock's state, an election's leader and the counters as
//!   text or JSON.
//! - `commands`: one module per subcommand (`lock` and `top` have their
//!   own layouts).
//!
//! [`main`] is the whole program; `src/main.rs` only calls it.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod args;
mod commands;
pub mod connect;
pub mod duration;
pub mod exit;
mod logging;
pub mod signals;
pub mod url;
pub mod view;

use std::process::ExitCode;

use clap::Parser;

/// Parses the command line, runs it, and returns the exit status; messages
/// go to stderr with a `baton: ` prefix.
pub fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; everything else is usage.
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    logging::init();
    // One thread: CMD's parent-death signal is tied to the thread that
    // spawned it, which must live as long as baton.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("baton: cannot start: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    let code = match runtime.block_on(commands::run(&cli)) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("baton: {failure}");
            failure.code
        }
    };
    ExitCode::from(code)
}
