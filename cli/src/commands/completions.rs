//! `baton completions SHELL`: a completion script generated from the clap
//! declaration, so it always matches the flags.

use clap::CommandFactory;

use crate::args::{Cli, CompletionsArgs};
use crate::exit::OK;

/// Writes the script to stdout.
pub(crate) fn run(args: &CompletionsArgs) -> u8 {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "baton", &mut std::io::stdout());
    OK
}
