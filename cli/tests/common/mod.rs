//! Helpers for the CLI's tests: the built `baton` binary as a real process
//! against a real server, waiting on conditions with deadlines.

#![allow(dead_code)] // each test binary uses its own part of these

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use baton_harness::{lock, wait_until, LockInfo, RedisServer};
use rustix::process::{kill_process, Pid, Signal};

/// How long anything a test waits for may take on a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// `baton --url URL ARGS...`, with no `BATON_URL` from the test's own
/// environment and stdin closed.
pub fn baton(url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
    cmd.env_remove("BATON_URL")
        .arg("--url")
        .arg(url)
        .args(args)
        .stdin(Stdio::null());
    cmd
}

/// Runs `baton` to the end and returns its output.
#[track_caller]
pub fn run(url: &str, args: &[&str]) -> Output {
    baton(url, args).output().expect("run baton")
}

/// Its exit code.
#[track_caller]
pub fn code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| panic!("baton ended by a signal: {status}"))
}

/// stdout and stderr, for assertion messages.
pub fn show(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Starts `baton` in the background, stdout and stderr captured.
pub fn spawn(url: &str, args: &[&str]) -> Child {
    baton(url, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn baton")
}

/// Waits for `child` to exit within [`PATIENCE`] and returns its output;
/// a child that does not exit is killed and the test fails.
#[track_caller]
pub fn finish(mut child: Child) -> Output {
    let mut status = None;
    wait_until(PATIENCE, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let out = child.wait_with_output().expect("reap baton");
        panic!("baton did not exit within {PATIENCE:?}\n{}", show(&out));
    }
    child.wait_with_output().expect("read baton's output")
}

/// Sends `sig` to process `pid`.
pub fn signal(pid: u32, sig: Signal) {
    kill_process(Pid::from_raw(pid as i32).expect("a pid"), sig).expect("kill");
}

/// `LOCK.INFO key` on `server`.
pub fn info(server: &RedisServer, key: &str) -> LockInfo {
    lock::info(&mut server.connection(), key.as_bytes())
}

/// Waits until `cond` holds on `LOCK.INFO key`; fails the test with `what`
/// otherwise. Returns the info that satisfied it.
#[track_caller]
pub fn await_info(
    server: &RedisServer,
    key: &str,
    what: &str,
    cond: impl Fn(&LockInfo) -> bool,
) -> LockInfo {
    let mut con = server.connection();
    let mut last = None;
    let held = wait_until(PATIENCE, || {
        let i = lock::info(&mut con, key.as_bytes());
        let met = cond(&i);
        last = Some(i);
        met
    });
    assert!(
        held,
        "timed out waiting for {what}: last LOCK.INFO {last:?}"
    );
    last.expect("read at least once")
}

/// Waits until `path` exists and has a complete last line; its content.
#[track_caller]
pub fn await_file(path: &Path) -> String {
    let mut text = String::new();
    let ok = wait_until(PATIENCE, || {
        text = std::fs::read_to_string(path).unwrap_or_default();
        text.ends_with('\n')
    });
    assert!(ok, "{} did not appear within {PATIENCE:?}", path.display());
    text
}

/// A fresh temp dir and a path in it, for files CMD writes.
pub fn scratch() -> (tempfile::TempDir, impl Fn(&str) -> PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().to_path_buf();
    (dir, move |name: &str| root.join(name))
}

/// A `sh -c` script that, while holding the lock, appends `start FENCE` to
/// `log`, sleeps `secs`, and appends `end FENCE`.
pub fn logging_sleep(log: &Path, secs: f64) -> String {
    let log = log.display();
    format!(
        "echo \"start $BATON_KEY $BATON_FENCE\" >> {log}; sleep {secs}; \
         echo \"end $BATON_KEY $BATON_FENCE\" >> {log}"
    )
}

/// A shell command that waits until `go` exists: a CMD holds its grant
/// until the test creates the file.
pub fn until_exists(go: &Path) -> String {
    format!("while [ ! -e {} ]; do sleep 0.02; done", go.display())
}

/// Milliseconds since `t`.
pub fn ms_since(t: Instant) -> u128 {
    t.elapsed().as_millis()
}

pub mod terminal;
