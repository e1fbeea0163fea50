//! `cargo xtask test`: everything CI checks, in order, stopping at the
//! first failure. The last step is `cargo test`, so its closing lines are
//! the last thing printed on success (CI reads them). `--no-fail-fast`
//! so one failing test binary does not hide the results of the others.

use crate::cargo::{build_module, cargo, header, run};
use crate::deps;
use anyhow::Result;

pub fn run_all() -> Result<()> {
    header("[1/5] system dependencies: redis-server 7.x, libclang");
    deps::ensure()?;

    header("[2/5] cargo fmt --all --check");
    run("fmt", &mut cargo(&["fmt", "--all", "--check"]))?;

    header("[3/5] cargo clippy --workspace --all-targets -- -D warnings");
    run(
        "clippy",
        &mut cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;

    header("[4/5] cargo build -p baton-module");
    let module = build_module(false)?;

    header(&format!(
        "[5/5] cargo test --workspace --no-fail-fast (BATON_MODULE={})",
        module.display()
    ));
    run(
        "test",
        cargo(&["test", "--workspace", "--no-fail-fast"]).env("BATON_MODULE", &module),
    )
}
