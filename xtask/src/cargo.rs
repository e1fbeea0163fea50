//! Workspace paths, and running child processes as named steps.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// The workspace root: xtask lives one level below it.
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Cargo's target directory, honouring `CARGO_TARGET_DIR` like cargo does.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// Where `cargo build [--release] -p baton-module` puts the module.
pub fn module_artifact(release: bool) -> PathBuf {
    let profile = if release { "release" } else { "debug" };
    target_dir().join(profile).join("libbaton.so")
}

/// A `cargo` command run from the workspace root, with the same cargo
/// binary that runs this xtask.
pub fn cargo(args: &[&str]) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(args).current_dir(workspace_root());
    cmd
}

/// Prints a step header.
pub fn header(text: &str) {
    println!("\n==> {text}");
}

/// Runs `cmd` with inherited stdio; an error names `step` and the exit status.
pub fn run(step: &str, cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("step '{step}': could not start {cmd:?}"))?;
    if !status.success() {
        bail!("step '{step}' failed ({status})");
    }
    Ok(())
}

/// Builds the module and returns the path of `libbaton.so`.
pub fn build_module(release: bool) -> Result<PathBuf> {
    let mut args = vec!["build", "-p", "baton-module"];
    if release {
        args.insert(1, "--release");
    }
    run("build module", &mut cargo(&args))?;
    let path = module_artifact(release);
    if !path.is_file() {
        bail!("step 'build module': {} was not produced", path.display());
    }
    Ok(path)
}

/// What one `cargo build --release -p baton-module -p baton-benches` gives.
pub struct ReleaseBuild {
    /// `libbaton.so`.
    pub module: PathBuf,
    /// The `baton-bench` load generator.
    pub bench: PathBuf,
}

/// Builds the module and `baton-bench` in release, in one cargo run, with
/// these `--features` (e.g. `baton-benches/etcd`).
pub fn build_release(features: &[&str]) -> Result<ReleaseBuild> {
    let mut args = vec![
        "build",
        "--release",
        "-p",
        "baton-module",
        "-p",
        "baton-benches",
    ];
    let features = features.join(",");
    if !features.is_empty() {
        args.extend(["--features", &features]);
    }
    run("build release", &mut cargo(&args))?;
    let built = ReleaseBuild {
        module: module_artifact(true),
        bench: target_dir().join("release").join("baton-bench"),
    };
    for path in [&built.module, &built.bench] {
        if !path.is_file() {
            bail!("step 'build release': {} was not produced", path.display());
        }
    }
    Ok(built)
}
