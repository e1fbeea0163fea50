//! Exit statuses: the codes `baton` itself exits with, in one place, and
//! [`Failure`], an error that knows its code.
//!
//! The codes follow `sysexits.h` where one fits. Only [`LOST`] can end a
//! run in which CMD started (64, 69 and 75 are decided before CMD runs), so
//! it lies outside the sysexits range (64–78), where a CMD that follows
//! sysexits never exits, and below 126, where shells report their own
//! failures and deaths by signal (128 + n).

use std::fmt;

/// Success (and CMD's own 0).
pub const OK: u8 = 0;
/// Any other error: the server replied with an error (`WRONGTYPE`, say).
pub const FAILURE: u8 = 1;
/// `EX_USAGE`: bad arguments (an unknown flag, a bad duration or key).
pub const USAGE: u8 = 64;
/// `EX_UNAVAILABLE`: Redis cannot be reached, or lacks what the command
/// needs (the baton module for `--backend module`, `stats` and `top`).
pub const UNAVAILABLE: u8 = 69;
/// `EX_TEMPFAIL`: the lock was not acquired (held by another, and
/// `--no-wait` or `--wait` ran out). Try again later.
pub const NOT_ACQUIRED: u8 = 75;
/// The lock was lost while CMD ran: CMD was stopped (SIGTERM, then SIGKILL),
/// or it had just ended and the lock was found gone at release.
pub const LOST: u8 = 79;
/// CMD was found but could not be run (as the shells do).
pub const CANNOT_RUN: u8 = 126;
/// CMD was not found (as the shells do).
pub const NOT_FOUND: u8 = 127;

/// Every code with one line on when it happens: the `EXIT STATUS` section of
/// `--help`, and the README's table says the same.
pub const TABLE: [(u8, &str); 8] = [
    (OK, "success (baton lock: CMD exited 0)"),
    (
        FAILURE,
        "any other error (the server replied with an error)",
    ),
    (
        USAGE,
        "bad usage: unknown flag, bad duration, bad key (EX_USAGE)",
    ),
    (
        UNAVAILABLE,
        "Redis unreachable, or the baton module missing where needed (EX_UNAVAILABLE)",
    ),
    (
        NOT_ACQUIRED,
        "the lock was not acquired: --no-wait, or --wait ran out (EX_TEMPFAIL)",
    ),
    (
        LOST,
        "the lock was lost while CMD ran; CMD got SIGTERM, then SIGKILL",
    ),
    (CANNOT_RUN, "CMD could not be run (not executable)"),
    (NOT_FOUND, "CMD was not found"),
];

/// The `EXIT STATUS` section of `--help`.
pub fn help() -> String {
    let mut out = String::from(
        "Exit status:\n  \
         baton lock exits with CMD's status (128+N when a signal N ended it), or:\n",
    );
    for (code, what) in TABLE {
        out.push_str(&format!("  {code:>3}  {what}\n"));
    }
    out
}

/// The exit status of a process that a signal ended, as shells report it.
pub fn signaled(signal: i32) -> u8 {
    (128 + signal).clamp(0, 255) as u8
}

/// A failure that ends `baton` with [`Failure::code`], after printing its
/// message on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The exit status.
    pub code: u8,
    /// What to tell the person, one or more lines, without the `baton: `
    /// prefix.
    pub message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Bad usage ([`USAGE`]).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(USAGE, message)
    }

    /// Redis unreachable or lacking the module ([`UNAVAILABLE`]).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(UNAVAILABLE, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes are a contract with scripts: changing one is a breaking
    /// change, so they are pinned here as numbers.
    #[test]
    fn the_codes_are_the_documented_numbers() {
        assert_eq!(
            [
                OK,
                FAILURE,
                USAGE,
                UNAVAILABLE,
                NOT_ACQUIRED,
                LOST,
                CANNOT_RUN,
                NOT_FOUND
            ],
            [0, 1, 64, 69, 75, 79, 126, 127]
        );
    }

    #[test]
    fn the_table_has_every_code_once() {
        let mut codes: Vec<u8> = TABLE.iter().map(|(c, _)| *c).collect();
        codes.dedup();
        assert_eq!(codes.len(), TABLE.len());
        let help = help();
        for (code, what) in TABLE {
            assert!(help.contains(&format!("{code:>3}  {what}")), "{help}");
        }
    }

    /// The README's "Command line" section lists the same codes.
    #[test]
    fn the_readme_lists_every_code() {
        let readme = include_str!("../../README.md");
        for (code, _) in TABLE {
            assert!(
                readme.contains(&format!("| {code} |")),
                "README.md has no row for exit code {code}"
            );
        }
    }

    #[test]
    fn a_signal_is_128_plus_its_number() {
        assert_eq!(signaled(15), 143);
        assert_eq!(signaled(9), 137);
    }
}
