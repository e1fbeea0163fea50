//! CMD as a child process in a process group of its own: spawning it with
//! the lock's environment, signalling the whole group, waiting for it, and
//! its exit status as a shell would report it.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{kill_process_group, test_kill_process_group, Pid, Signal};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::exit::{self, Failure};

/// How often a group whose leader has ended is checked for members left.
const GROUP_POLL: Duration = Duration::from_millis(20);

/// CMD, running.
#[derive(Debug)]
pub(crate) struct Cmd {
    child: Child,
    group: Pid,
}

impl Cmd {
    /// Starts `argv` in a new process group (its id is CMD's pid) with `env`
    /// added to baton's environment. If baton dies first, even by SIGKILL,
    /// the kernel sends CMD SIGTERM (Linux `PR_SET_PDEATHSIG`; the group's
    /// other processes are not told).
    ///
    /// # Errors
    ///
    /// [`exit::NOT_FOUND`] when CMD does not exist, [`exit::CANNOT_RUN`]
    /// when it cannot be run.
    pub(crate) fn spawn(argv: &[OsString], env: &[(&str, String)]) -> Result<Self, Failure> {
        let (program, args) = argv.split_first().expect("clap requires CMD");
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .process_group(0)
            .kill_on_drop(false);
        let baton = rustix::process::getpid();
        // SAFETY: the closure runs in the forked child before exec, and
        // only makes two system calls (no allocation, no locks), which is
        // what is allowed there.
        unsafe {
            cmd.pre_exec(move || {
                rustix::process::set_parent_process_death_signal(Some(Signal::TERM))?;
                // baton died before the call above: nobody would tell CMD.
                if rustix::process::getppid() != Some(baton) {
                    return Err(Errno::SRCH.into());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            let code = match e.kind() {
                io::ErrorKind::NotFound => exit::NOT_FOUND,
                _ => exit::CANNOT_RUN,
            };
            Failure::new(code, format!("cannot run {:?}: {e}", program))
        })?;
        let pid = child.id().expect("a child that was just spawned has a pid");
        let group = Pid::from_raw(pid as i32).expect("a pid is positive");
        Ok(Self { child, group })
    }

    /// Sends `sig` to CMD's process group; a group that is gone is no error.
    pub(crate) fn signal(&self, sig: Signal) {
        match kill_process_group(self.group, sig) {
            Ok(()) | Err(Errno::SRCH) => {}
            Err(e) => eprintln!(
                "baton: cannot send {} to CMD's process group {}: {e}",
                crate::signals::name(sig),
                self.group.as_raw_nonzero()
            ),
        }
    }

    /// Waits for CMD to end.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (tokio's `Child::wait`).
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// After CMD has ended: waits until the rest of its process group has
    /// ended too, and at `deadline` sends SIGKILL to what is left. Returns
    /// whether SIGKILL was sent.
    pub(crate) async fn reap_group(&self, deadline: Instant) -> bool {
        let mut tick = tokio::time::interval(GROUP_POLL);
        while Instant::now() < deadline {
            if test_kill_process_group(self.group) == Err(Errno::SRCH) {
                return false;
            }
            tick.tick().await;
        }
        if test_kill_process_group(self.group) == Err(Errno::SRCH) {
            return false;
        }
        self.signal(Signal::KILL);
        true
    }
}

/// The exit status of a process as a shell reports it: its code, or 128 + N
/// when signal N ended it.
pub(crate) fn status_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => (code & 0xff) as u8,
        (None, Some(sig)) => exit::signaled(sig),
        (None, None) => exit::FAILURE,
    }
}
