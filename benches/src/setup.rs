//! What a run stands on: the Redis servers it starts (through `baton_harness`),
//! which module build they load, and a description of the machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use baton_harness::RedisServer;
use serde::Serialize;

/// The servers of one run, all on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct Servers {
    /// Redis with the baton module: baton (module and Lua), the raw
    /// baseline and Redlock on one instance all use it.
    pub main: RedisServer,
    /// Two plain Redis servers: with `main`, the 3 instances of Redlock.
    pub plain: Vec<RedisServer>,
}

impl Servers {
    /// Starts `main` with `module` loaded, and two plain servers.
    pub fn start(module: &Path) -> Self {
        Self {
            main: RedisServer::builder().module(module).start(),
            plain: (0..2)
                .map(|_| RedisServer::builder().without_module().start())
                .collect(),
        }
    }

    /// The 3 Redlock instances' URLs.
    pub fn redlock_urls(&self) -> Vec<String> {
        std::iter::once(&self.main)
            .chain(&self.plain)
            .map(RedisServer::url)
            .collect()
    }
}

/// The module to benchmark: `$BATON_MODULE`, else the release build
/// (`target/release/libbaton.so`), else the debug build. The second value
/// says which, for the report.
pub fn bench_module() -> (PathBuf, String) {
    if std::env::var_os("BATON_MODULE").is_some() {
        return (baton_harness::module_path(), "$BATON_MODULE".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let release = target.join("release").join("libbaton.so");
    if release.is_file() {
        return (release, "release build".into());
    }
    eprintln!(
        "warning: no release build of the module ({}); benchmarking the DEBUG build. \
         Run cargo build --release -p baton-module first.",
        release.display()
    );
    (
        baton_harness::module_path(),
        "DEBUG build (numbers not representative)".into(),
    )
}

/// The machine a run was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs (`nproc`).
    pub nproc: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// `redis-server --version`.
    pub redis: String,
    /// `uname -sr`.
    pub kernel: String,
}

impl Machine {
    /// Looks at this machine.
    pub fn detect() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let redis = output(Command::new(baton_harness::redis_server_bin()).arg("--version"));
        Self {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            redis,
            kernel: output(Command::new("uname").arg("-sr")),
        }
    }
}

fn output(cmd: &mut Command) -> String {
    cmd.output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// Now, UTC, as `YYYY-MM-DD HH:MM UTC`.
pub fn now_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) date (H. Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
