//! The signals `baton` catches: SIGINT, SIGTERM and SIGHUP. Once
//! [`Signals::install`] has run they no longer end the process; `baton
//! lock` passes them on to CMD, and `baton top` quits cleanly on them.

use std::io;

use rustix::process::Signal;
use tokio::signal::unix::{signal, SignalKind};

/// The caught signals, as a stream.
#[derive(Debug)]
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Catches SIGINT, SIGTERM and SIGHUP from now on.
    ///
    /// # Errors
    ///
    /// When a handler cannot be installed.
    pub fn install() -> io::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal that arrives.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a signal that arrives meanwhile is kept for the next
    /// call.
    pub async fn recv(&mut self) -> Signal {
        tokio::select! {
            Some(()) = self.int.recv() => Signal::INT,
            Some(()) = self.term.recv() => Signal::TERM,
            Some(()) = self.hup.recv() => Signal::HUP,
        }
    }
}

/// A signal's usual name, `SIGTERM`.
pub fn name(sig: Signal) -> &'static str {
    [
        (Signal::INT, "SIGINT"),
        (Signal::TERM, "SIGTERM"),
        (Signal::HUP, "SIGHUP"),
        (Signal::KILL, "SIGKILL"),
    ]
    .into_iter()
    .find_map(|(s, n)| (s == sig).then_some(n))
    .unwrap_or("a signal")
}
