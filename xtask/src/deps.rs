//! Makes sure the system tools the workspace needs are installed:
//! `redis-server` 7.x (with `redis-cli` and `redis-benchmark`, all from
//! Debian's `redis-server` package) and libclang (for the module's bindgen).
//!
//! When something is missing and we run as root, it is installed with
//! apt-get; otherwise we stop and say what to install.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Command, Stdio};

/// Minimum Redis major version: module APIs baton relies on arrived in 7.0.
const REDIS_MAJOR: u32 = 7;

/// Installs what is missing (as root) or explains what to install.
pub fn ensure() -> Result<()> {
    let mut missing = Vec::new();
    if redis_version().is_none() || !on_path("redis-cli") || !on_path("redis-benchmark") {
        missing.push("redis-server");
    }
    if !has_libclang() {
        missing.push("libclang-dev");
    }
    if !missing.is_empty() {
        install(&missing)?;
    }
    let version = redis_version().context("redis-server is still not on PATH")?;
    let major = version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .unwrap_or(0);
    if major < REDIS_MAJOR {
        bail!("redis-server {version} is too old: baton needs Redis {REDIS_MAJOR}.0 or newer");
    }
    if !has_libclang() {
        bail!("libclang is still not found; set LIBCLANG_PATH to the directory of libclang.so");
    }
    println!("redis-server {version} and libclang found");
    Ok(())
}

fn install(packages: &[&str]) -> Result<()> {
    let list = packages.join(" ");
    if !is_root() || !on_path("apt-get") {
        bail!(
            "missing: {list}. Install them first, e.g. on Debian/Ubuntu:\n    \
             sudo apt-get update && sudo apt-get install -y {list}\n\
             (baton needs redis-server {REDIS_MAJOR}.x or newer and libclang)"
        );
    }
    println!("installing {list} with apt-get");
    let apt = |args: &[&str]| -> Result<()> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .context("could not run apt-get")?;
        if !status.success() {
            bail!("apt-get {} failed ({status})", args.join(" "));
        }
        Ok(())
    };
    apt(&["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend_from_slice(packages);
    apt(&args)
}

/// `7.0.15` from `Redis server v=7.0.15 sha=...`, or None when not installed.
fn redis_version() -> Option<String> {
    let out = Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().find_map(|w| w.strip_prefix("v="))?;
    Some(version.to_string())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Looks where bindgen's clang-sys looks: `LIBCLANG_PATH`, then the usual
/// library directories, including Debian's `/usr/lib/llvm-*/lib`.
fn has_libclang() -> bool {
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("LIBCLANG_PATH") {
        dirs.push(dir.into());
    }
    for dir in [
        "/usr/lib",
        "/usr/lib64",
        "/usr/local/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
    ] {
        dirs.push(dir.into());
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with("llvm") {
                dirs.push(entry.path().join("lib"));
            }
        }
    }
    dirs.iter().any(|dir| dir_has_libclang(dir))
}

/// The development link (`libclang.so` or `libclang-14.so`) that
/// libclang-dev installs; a bare runtime `libclang-14.so.1` is not enough
/// to be sure the headers bindgen needs are there.
fn dir_has_libclang(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        name == "libclang.so"
            || name
                .strip_prefix("libclang-")
                .and_then(|rest| rest.strip_suffix(".so"))
                .is_some_and(|version| version.chars().all(|c| c.is_ascii_digit() || c == '.'))
    })
}
