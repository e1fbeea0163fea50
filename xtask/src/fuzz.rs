//! `cargo xtask fuzz`: the two server fuzz tests of the suite, argument
//! vectors at every LOCK command and mutated DUMP payloads at RESTORE, for
//! many more rounds than a CI run gives them (seeded: the seed is printed,
//! and `BATON_FUZZ_SEED` replays it).

use crate::cargo::{build_module, cargo, header, run};
use crate::deps;
use anyhow::{bail, Result};

/// Rounds per fuzz test when `--rounds` is not given.
const DEFAULT_ROUNDS: u64 = 200_000;

/// Parses `[--rounds N]` and runs both fuzz tests.
pub fn run_fuzz(args: &[String]) -> Result<()> {
    let rounds = match args {
        [] => DEFAULT_ROUNDS,
        [flag, n] if flag == "--rounds" => match n.parse() {
            Ok(n) if n > 0 => n,
            _ => bail!("--rounds needs a positive integer, got {n:?}"),
        },
        _ => bail!("usage: cargo xtask fuzz [--rounds N]"),
    };
    header("[1/3] system dependencies: redis-server 7.x, libclang");
    deps::ensure()?;
    header("[2/3] cargo build -p baton-module");
    let module = build_module(false)?;
    header(&format!(
        "[3/3] fuzz: {rounds} rounds each (arguments, RESTORE payloads)"
    ));
    run(
        "fuzz",
        cargo(&[
            "test",
            "-p",
            "baton-module",
            "--test",
            "fuzz",
            "--test",
            "restore",
            "--",
            "--nocapture",
            "random_arguments",
            "mutated_payloads",
        ])
        .env("BATON_MODULE", &module)
        .env("BATON_FUZZ_ROUNDS", rounds.to_string())
        .env("BATON_FUZZ_RESTORE_ROUNDS", rounds.to_string()),
    )
}
