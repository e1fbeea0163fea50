//! One module per subcommand, and [`run`], which dispatches to them.
//!
//! - [`lock`]: `baton lock KEY -- CMD` and `baton elect NAME -- CMD` (its
//!   own layout).
//! - [`leader`]: who leads an election.
//! - [`info`], [`stats`], [`release`]: one call each.
//! - [`top`]: the live view (its own layout).
//! - [`completions`]: shell completion scripts.

mod completions;
mod info;
mod leader;
mod lock;
mod release;
mod stats;
mod top;

use crate::args::{Cli, Command};
use crate::exit::Failure;

/// Runs the parsed command line; the exit status on success.
pub(crate) async fn run(cli: &Cli) -> Result<u8, Failure> {
    let conn = &cli.conn;
    match &cli.command {
        Command::Lock(args) => lock::lock(conn, args).await,
        Command::Elect(args) => lock::elect(conn, args).await,
        Command::Leader(args) => leader::run(conn, args).await,
        Command::Info(args) => info::run(conn, args).await,
        Command::Stats(args) => stats::run(conn, args).await,
        Command::Release(args) => release::run(conn, args).await,
        Command::Top(args) => top::run(conn, args).await,
        Command::Completions(args) => Ok(completions::run(args)),
    }
}
