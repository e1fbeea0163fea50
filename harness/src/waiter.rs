//! A client blocked in `LOCK.ACQUIRE ... WAIT` on its own thread and
//! connection.
//!
//! Queue tests start several, one at a time, and use [`Waiter::client_id`] to
//! kill a waiter's connection from outside (`CLIENT KILL ID`).

use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::lock::info;
use crate::poll::assert_eventually;
use crate::server::RedisServer;

/// What a waiter's ACQUIRE replied, and how long it blocked.
pub type WaitOutcome = (redis::RedisResult<Option<i64>>, Duration);

/// A `LOCK.ACQUIRE key token ttl WAIT wait` running on its own thread.
#[derive(Debug)]
pub struct Waiter {
    client_id: i64,
    handle: JoinHandle<WaitOutcome>,
}

impl Waiter {
    /// Opens a connection to `server` and sends the ACQUIRE on a new thread.
    /// Returns once the connection is open (the command may not have reached
    /// the server yet: poll `LOCK.INFO` `waiters` to know it is queued).
    pub fn start(server: &RedisServer, key: &[u8], token: &[u8], ttl: u64, wait: u64) -> Waiter {
        let mut cmd = redis::cmd("LOCK.ACQUIRE");
        cmd.arg(key).arg(token).arg(ttl).arg("WAIT").arg(wait);
        Self::start_cmd(server, cmd)
    }

    /// Opens a connection to `server` and sends `cmd` (a blocking acquire
    /// of any kind) on a new thread; its reply is read as a fence or null.
    pub fn start_cmd(server: &RedisServer, cmd: redis::Cmd) -> Waiter {
        let mut con = server.connection();
        let client_id: i64 = redis::cmd("CLIENT")
            .arg("ID")
            .query(&mut con)
            .expect("CLIENT ID");
        let (started_tx, started_rx) = mpsc::channel();
        let handle = thread::spawn(move || {
            let _ = started_tx.send(());
            let start = Instant::now();
            let reply = cmd.query(&mut con);
            (reply, start.elapsed())
        });
        started_rx.recv().expect("waiter thread started");
        Waiter { client_id, handle }
    }

    /// `SEM.ACQUIRE key token ttl LIMIT limit PERMITS permits WAIT wait` on
    /// its own thread, once the server counts it in the semaphore's queue.
    #[track_caller]
    pub fn queued_sem(
        server: &RedisServer,
        key: &[u8],
        token: &[u8],
        permits: u64,
        limit: u64,
        wait: u64,
    ) -> Waiter {
        let mut con = server.connection();
        let before = crate::lock::sem_info(&mut con, key)["waiters"];
        let mut cmd = redis::cmd("SEM.ACQUIRE");
        cmd.arg(key)
            .arg(token)
            .arg(30_000)
            .arg("LIMIT")
            .arg(limit)
            .arg("PERMITS")
            .arg(permits)
            .arg("WAIT")
            .arg(wait);
        let w = Waiter::start_cmd(server, cmd);
        assert_eventually(Duration::from_secs(5), "the request is queued", || {
            crate::lock::sem_info(&mut con, key)["waiters"] == before + 1
        });
        w
    }

    /// [`Waiter::start`], then waits until the server counts it in the
    /// queue of `key`, so waiters join in a known order.
    #[track_caller]
    pub fn queued(server: &RedisServer, key: &[u8], token: &[u8], ttl: u64, wait: u64) -> Waiter {
        let mut con = server.connection();
        let before = info(&mut con, key).waiters;
        let w = Waiter::start(server, key, token, ttl, wait);
        assert_eventually(Duration::from_secs(5), "the waiter is queued", || {
            info(&mut con, key).waiters == before + 1
        });
        w
    }

    /// The server-side id of its connection.
    pub fn client_id(&self) -> i64 {
        self.client_id
    }

    /// True once the reply has arrived.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the reply.
    pub fn join(self) -> WaitOutcome {
        self.handle.join().expect("waiter thread panicked")
    }

    /// Waits for the reply, which must be an error; returns its text.
    #[track_caller]
    pub fn error(self) -> String {
        match self.join().0 {
            Ok(reply) => panic!("waiter expected an error, got {reply:?}"),
            Err(e) => crate::lock::err_text(&e),
        }
    }

    /// Waits for the reply and returns the fence or `None`, panicking on an
    /// error reply.
    #[track_caller]
    pub fn fence(self) -> Option<i64> {
        match self.join().0 {
            Ok(f) => f,
            Err(e) => panic!("waiter got an error: {}", crate::lock::err_text(&e)),
        }
    }
}
