//! A pseudo-terminal for a child process, with a VT100 emulator reading its
//! screen: what a person on a plain terminal (or over ssh) would see.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::thread;

use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
use rustix::termios::{tcsetwinsize, Winsize};

/// A terminal of `rows` x `cols` with one child process on it.
pub struct Terminal {
    master: File,
    screen: Arc<Mutex<vt100::Parser>>,
    reader: Option<thread::JoinHandle<()>>,
}

impl Terminal {
    /// Runs `cmd` with stdin, stdout and stderr on a new terminal.
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> (Self, Child) {
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let master = File::from(openpt(flags).expect("openpt"));
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let name = ptsname(&master, Vec::new()).expect("ptsname");
        let slave = OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().expect("a pty's name is text"))
            .expect("open the pty's slave side");
        tcsetwinsize(
            &slave,
            Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .expect("set the window size");
        cmd.env("TERM", "xterm-256color")
            .stdin(slave.try_clone().expect("dup"))
            .stdout(slave.try_clone().expect("dup"))
            .stderr(slave);
        let child = cmd.spawn().expect("spawn on the terminal");
        drop(cmd); // our copies of the slave side: reads end when the child's do
        let size = |n: u16| NonZeroU16::new(n).expect("a terminal has rows and columns");
        let screen = Arc::new(Mutex::new(vt100::Parser::new(size(rows), size(cols), 0)));
        let mut input = master.try_clone().expect("dup master");
        let feed = screen.clone();
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once every slave fd is closed: the child is gone.
            while let Ok(n @ 1..) = input.read(&mut buf) {
                feed.lock().unwrap().process(&buf[..n]);
            }
        });
        (
            Self {
                master,
                screen,
                reader: Some(reader),
            },
            child,
        )
    }

    /// The screen's text now, rows joined by newlines.
    pub fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Whether the alternate screen is on.
    pub fn alternate(&self) -> bool {
        self.screen.lock().unwrap().screen().alternate_screen()
    }

    /// Types `text`.
    pub fn type_keys(&mut self, text: &str) {
        self.master.write_all(text.as_bytes()).expect("type");
    }

    /// Waits until all the child's output has been read (after it exited).
    pub fn drain(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.join().expect("reader thread");
        }
    }
}
