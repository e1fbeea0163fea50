//! Where `baton top` draws: a terminal (the alternate screen, redrawn in
//! place with plain ANSI sequences, keys read one at a time so `q` quits)
//! or anything else (frames printed one after another, no escapes).
//!
//! Only the VT100 sequences every terminal emulator and ssh client knows
//! are used: alternate screen, cursor home, erase line and erase below,
//! hide/show cursor. `TERM=dumb` gets the plain form.

use std::io::{self, IsTerminal, Read, Write};
use std::thread;

use rustix::termios::{self, LocalModes, OptionalActions, SpecialCodeIndex, Termios};
use tokio::sync::mpsc;

const ENTER: &str = "\x1b[?1049h\x1b[?25l\x1b[2J";
const LEAVE: &str = "\x1b[?25h\x1b[?1049l";
const HOME: &str = "\x1b[H";
const ERASE_LINE: &str = "\x1b[K";
const ERASE_BELOW: &str = "\x1b[J";

/// The output of `baton top`.
#[derive(Debug)]
pub(crate) enum Screen {
    /// A terminal: redrawn in place; `q` quits.
    Terminal {
        /// stdin's terminal settings before cbreak mode, restored on drop.
        saved: Option<Termios>,
        /// Bytes typed.
        keys: mpsc::UnboundedReceiver<u8>,
    },
    /// A pipe or file, or JSON: frames one after another, text frames
    /// separated by an empty line.
    Plain {
        /// Put an empty line after each frame.
        separate: bool,
    },
}

impl Screen {
    /// A terminal screen when stdout is a terminal (and not `TERM=dumb`) and
    /// the frames are not `json`, else the plain form.
    pub(crate) fn open(json: bool) -> Self {
        let dumb = std::env::var("TERM").map_or(true, |t| t.is_empty() || t == "dumb");
        if json || dumb || !io::stdout().is_terminal() {
            return Self::Plain { separate: !json };
        }
        let saved = cbreak();
        let (tx, keys) = mpsc::unbounded_channel();
        // Blocked on stdin until a key or the end of the process: a thread
        // of its own, so the runtime never waits for it.
        thread::spawn(move || {
            let mut byte = [0u8];
            while let Ok(1) = io::stdin().lock().read(&mut byte) {
                if tx.send(byte[0]).is_err() {
                    break;
                }
            }
        });
        let mut out = io::stdout().lock();
        let _ = out.write_all(ENTER.as_bytes());
        let _ = out.flush();
        Self::Terminal { saved, keys }
    }

    /// Whether it is a terminal that `q` quits.
    pub(crate) fn interactive(&self) -> bool {
        matches!(self, Self::Terminal { .. })
    }

    /// Shows `lines` (a new frame).
    pub(crate) fn draw(&mut self, lines: &[String]) {
        let mut out = io::stdout().lock();
        let text = match self {
            Self::Plain { separate } => {
                let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
                if *separate {
                    text + "\n"
                } else {
                    text
                }
            }
            Self::Terminal { .. } => {
                let width = termios::tcgetwinsize(io::stdout())
                    .map_or(usize::MAX, |w| usize::from(w.ws_col).max(1));
                let mut text = HOME.to_string();
                for line in lines {
                    let cut: String = line.chars().take(width).collect();
                    text += &format!("{cut}{ERASE_LINE}\r\n");
                }
                text + ERASE_BELOW
            }
        };
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// Resolves when `q` is typed (never for a plain screen, or once stdin
    /// has ended).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: keys typed meanwhile are kept.
    pub(crate) async fn quit_key(&mut self) {
        match self {
            Self::Plain { .. } => std::future::pending().await,
            Self::Terminal { keys, .. } => loop {
                match keys.recv().await {
                    Some(b'q' | b'Q') => return,
                    Some(_) => {}
                    None => std::future::pending().await,
                }
            },
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        if let Self::Terminal { saved, .. } = self {
            if let Some(saved) = saved {
                let _ = termios::tcsetattr(io::stdin(), OptionalActions::Now, saved);
            }
            let mut out = io::stdout().lock();
            let _ = out.write_all(LEAVE.as_bytes());
            let _ = out.flush();
        }
    }
}

/// Puts stdin's terminal (if it is one) in cbreak mode: keys arrive one at
/// a time, unechoed; Ctrl-C still sends SIGINT. Returns the settings to
/// restore.
fn cbreak() -> Option<Termios> {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        return None;
    }
    let saved = termios::tcgetattr(&stdin).ok()?;
    let mut raw = saved.clone();
    raw.local_modes
        .remove(LocalModes::ICANON | LocalModes::ECHO);
    raw.special_codes[SpecialCodeIndex::VMIN] = 1;
    raw.special_codes[SpecialCodeIndex::VTIME] = 0;
    termios::tcsetattr(&stdin, OptionalActions::Now, &raw).ok()?;
    Some(saved)
}
