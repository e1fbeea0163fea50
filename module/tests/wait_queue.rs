//! The FIFO wait queue (SPEC §2 "FIFO wait queue"; DESIGN "Waiting"): order,
//! no barging, timeouts, disconnects, duplicate tokens, and WAIT where the
//! server cannot block (MULTI/EXEC, Lua).

use std::time::{Duration, Instant};

use baton_harness::lock::{
    acquire, acquire_wait, err_text, exists, force_release, info, release, stats, to_int_map,
};
use baton_harness::{assert_eventually, RedisServer, Waiter};

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn waiters_are_granted_in_fifo_order() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let mut last = acquire(&mut con, b"k", b"holder", 30_000).unwrap();
    let tokens: Vec<String> = (0..10).map(|i| format!("w{i}")).collect();
    let mut waiters: Vec<Waiter> = tokens
        .iter()
        .map(|t| Waiter::queued(&server, b"k", t.as_bytes(), 30_000, 20_000))
        .collect();
    assert_eq!(info(&mut con, b"k").waiters, 10);
    let mut holder = "holder".to_string();
    for (i, token) in tokens.iter().enumerate() {
        assert_eq!(
            release(&mut con, b"k", holder.as_bytes()),
            1,
            "{holder} releases"
        );
        let w = waiters.remove(0);
        let f = w
            .fence()
            .unwrap_or_else(|| panic!("{token} was not granted"));
        assert!(f > last, "fence {f} of {token} not above {last}");
        last = f;
        let i_now = info(&mut con, b"k");
        assert_eq!(i_now.fence, f, "{token} holds the lock");
        assert_eq!(i_now.waiters, (9 - i) as i64);
        // Nobody later in the queue got a reply yet.
        assert!(
            waiters.iter().all(|w| !w.is_finished()),
            "a waiter behind {token} was answered"
        );
        holder = token.clone();
    }
    assert_eq!(release(&mut con, b"k", holder.as_bytes()), 1);
    assert!(!exists(&mut con, b"k"));
}

/// LOCK.RELEASE by a token that waits in the queue withdraws its wait: the
/// waiter is answered null at once, leaves the queue and is never granted,
/// so a client that gives up on a wait can leave with nothing held or
/// queued in one command (no CLIENT KILL of the waiting connection).
#[test]
fn a_release_by_a_waiting_token_withdraws_its_wait() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"holder", 30_000).unwrap();
    let w = Waiter::queued(&server, b"k", b"w", 30_000, 20_000);
    let behind = Waiter::queued(&server, b"k", b"behind", 30_000, 20_000);
    assert_eq!(release(&mut con, b"k", b"w"), 0, "w holds nothing");
    let (reply, waited) = w.join();
    assert_eq!(reply.unwrap(), None, "the withdrawn wait is not granted");
    assert!(waited < 10 * SECOND, "answered at once, not at its timeout");
    assert_eq!(info(&mut con, b"k").waiters, 1);
    assert_eq!(release(&mut con, b"k", b"holder"), 1);
    let f = behind.fence().expect("the next waiter is granted");
    assert_eq!(info(&mut con, b"k").fence, f);
    assert_eq!(release(&mut con, b"k", b"w"), 0, "w was never granted");
}

#[test]
fn a_newcomer_without_wait_does_not_barge_past_waiters() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"holder", 30_000).unwrap();
    let w = Waiter::queued(&server, b"k", b"waiter", 30_000, 20_000);
    assert_eq!(acquire(&mut con, b"k", b"newcomer", 30_000), None);
    assert_eq!(acquire_wait(&mut con, b"k", b"newcomer", 30_000, 0), None);
    assert_eq!(release(&mut con, b"k", b"holder"), 1);
    // The hand-off is atomic with the release: the very next command sees the
    // waiter as holder, there is no free moment to grab.
    assert_eq!(
        acquire(&mut con, b"k", b"newcomer", 30_000),
        None,
        "the newcomer barged in"
    );
    let f = w.fence().expect("the head of the queue is granted");
    assert_eq!(info(&mut con, b"k").fence, f);
    assert_eq!(release(&mut con, b"k", b"waiter"), 1);
}

#[test]
fn a_newcomer_with_wait_queues_behind_earlier_waiters() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"holder", 30_000).unwrap();
    let first = Waiter::queued(&server, b"k", b"first", 30_000, 20_000);
    let second = Waiter::queued(&server, b"k", b"second", 30_000, 20_000);
    release(&mut con, b"k", b"holder");
    let f1 = first.fence().expect("first granted");
    assert!(!second.is_finished());
    release(&mut con, b"k", b"first");
    let f2 = second.fence().expect("second granted");
    assert!(f2 > f1);
}

#[test]
fn the_granted_waiter_holds_with_its_own_ttl() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"holder", 30_000).unwrap();
    let w = Waiter::queued(&server, b"k", b"waiter", 5_000, 20_000);
    release(&mut con, b"k", b"holder");
    w.fence().expect("granted");
    let pttl = info(&mut con, b"k").pttl;
    assert!(
        pttl > 4_000 && pttl <= 5_000,
        "pttl {pttl}: the waiter asked for 5000"
    );
}

#[test]
fn a_waiter_times_out_with_null_and_leaves_the_queue() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"holder", 30_000).unwrap();
    let before = stats(&mut con);
    let w = Waiter::queued(&server, b"k", b"waiter", 30_000, 200);
    let (reply, elapsed) = w.join();
    assert_eq!(reply.map_err(|e| err_text(&e)), Ok(None));
    assert!(
        elapsed >= Duration::from_millis(190),
        "timed out after {elapsed:?}, asked 200 ms"
    );
    assert!(
        elapsed < Duration::from_millis(1_000),
        "timed out after {elapsed:?}, asked 200 ms"
    );
    assert_eq!(info(&mut con, b"k").waiters, 0);
    let after = stats(&mut con);
    assert_eq!(after["wait_timeouts"], before["wait_timeouts"] + 1);
    assert_eq!(after["waiters"], 0);
    // It is gone: the release frees the lock instead of handing it on.
    assert_eq!(release(&mut con, b"k", b"holder"), 1);
    assert!(!exists(&mut con, b"k"));
    // The same token may wait again later.
    assert!(acquire(&mut con, b"k", b"waiter", 1_000).is_some());
}

#[test]
fn a_50ms_wait_times_out_on_a_module_timer_not_the_clock_tick() {
    // Timeouts run on a module timer, not on the clock tick of Redis' own
    // blocking timeouts. With `hz 1` that tick comes once a second, so a
    // timeout that waited for it would take up to 1 s; the margin to 500 ms
    // absorbs a loaded machine.
    let server = RedisServer::start();
    let mut con = server.connection();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("hz")
        .arg(1)
        .query(&mut con)
        .unwrap();
    acquire(&mut con, b"k", b"holder", 30_000).unwrap();
    let mut waiter = server.connection();
    for _ in 0..3 {
        let start = Instant::now();
        let reply = acquire_wait(&mut waiter, b"k", b"waiter", 30_000, 50);
        let elapsed = start.elapsed();
        assert_eq!(reply, None);
        assert!(
            elapsed >= Duration::from_millis(45) && elapsed < Duration::from_millis(500),
            "WAIT 50 returned after {elapsed:?}"
        );
    }
}

#[test]
fn a_disconnected_waiter_is_skipped_and_never_granted() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"holder", 30_000).unwrap();
    let dead = Waiter::queued(&server, b"k", b"dead", 30_000, 20_000);
    let live = Waiter::queued(&server, b"k", b"live", 30_000, 20_000);
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(dead.client_id())
        .query(&mut con)
        .unwrap();
    assert_eq!(killed, 1);
    assert_eventually(SECOND * 5, "the dead waiter leaves the queue", || {
        info(&mut con, b"k").waiters == 1
    });
    assert_eq!(release(&mut con, b"k", b"holder"), 1);
    let f = live.fence().expect("the live waiter is granted");
    assert_eq!(info(&mut con, b"k").fence, f);
    assert_eq!(
        release(&mut con, b"k", b"dead"),
        0,
        "the dead waiter never held it"
    );
    assert!(dead.join().0.is_err(), "the killed connection got a reply");
    assert_eq!(stats(&mut con)["waiters"], 0);
}

#[test]
fn a_lone_disconnected_waiter_leaves_the_lock_free_on_release() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"holder", 30_000).unwrap();
    let dead = Waiter::queued(&server, b"k", b"dead", 30_000, 20_000);
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(dead.client_id())
        .query(&mut con)
        .unwrap();
    assert_eventually(SECOND * 5, "the dead waiter leaves the queue", || {
        info(&mut con, b"k").waiters == 0
    });
    assert_eq!(release(&mut con, b"k", b"holder"), 1);
    assert!(!exists(&mut con, b"k"), "the lock went to a dead waiter");
    assert!(acquire(&mut con, b"k", b"next", 1_000).is_some());
    let _ = dead.join();
}

#[test]
fn forcerelease_hands_the_lock_to_the_head_of_the_queue() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let f0 = acquire(&mut con, b"k", b"holder", 30_000).unwrap();
    let w = Waiter::queued(&server, b"k", b"waiter", 30_000, 20_000);
    assert_eq!(force_release(&mut con, b"k"), 1);
    assert_eq!(
        acquire(&mut con, b"k", b"newcomer", 30_000),
        None,
        "barged in after FORCERELEASE"
    );
    let f = w.fence().expect("granted after FORCERELEASE");
    assert!(f > f0);
    assert_eq!(info(&mut con, b"k").fence, f);
}

#[test]
fn the_same_token_may_wait_only_once_per_key() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"holder", 30_000).unwrap();
    let w = Waiter::queued(&server, b"k", b"dup", 30_000, 20_000);
    let text = |r: redis::RedisResult<Option<i64>>| r.map_err(|e| err_text(&e));
    let want = Err("ERR token is already waiting for this lock".to_string());
    let mut other = server.connection();
    assert_eq!(
        text(baton_harness::lock::try_acquire_wait(
            &mut other, b"k", b"dup", 30_000, 1_000
        )),
        want
    );
    assert_eq!(
        text(baton_harness::lock::try_acquire_wait(
            &mut other, b"k", b"dup", 30_000, 0
        )),
        want
    );
    assert_eq!(
        text(
            redis::cmd("LOCK.ACQUIRE")
                .arg("k")
                .arg("dup")
                .arg(30_000)
                .query(&mut other)
        ),
        want
    );
    assert_eq!(info(&mut con, b"k").waiters, 1, "the error queued nothing");
    // The same token on another key is a different wait.
    assert!(acquire(&mut other, b"k2", b"dup", 1_000).is_some());
    release(&mut con, b"k", b"holder");
    assert!(w.fence().is_some());
}

#[test]
fn wait_inside_multi_exec_acts_as_wait_0() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"holder", 30_000).unwrap();
    let start = Instant::now();
    let (held, free): (Option<i64>, Option<i64>) = redis::pipe()
        .atomic()
        .cmd("LOCK.ACQUIRE")
        .arg("k")
        .arg("t2")
        .arg(30_000)
        .arg("WAIT")
        .arg(5_000)
        .cmd("LOCK.ACQUIRE")
        .arg("free")
        .arg("t2")
        .arg(30_000)
        .arg("WAIT")
        .arg(5_000)
        .query(&mut con)
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_millis(1_000),
        "EXEC blocked for {:?}",
        start.elapsed()
    );
    assert_eq!(held, None, "a held lock inside EXEC replies null");
    assert!(free.is_some(), "a free lock inside EXEC is granted");
    assert_eq!(info(&mut con, b"k").waiters, 0, "nothing queued from EXEC");
}

#[test]
fn wait_inside_a_lua_script_acts_as_wait_0() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"holder", 30_000).unwrap();
    let start = Instant::now();
    let reply: Option<i64> = redis::cmd("EVAL")
        .arg("return redis.call('LOCK.ACQUIRE', KEYS[1], 't2', '30000', 'WAIT', '1000')")
        .arg(1)
        .arg("k")
        .query(&mut con)
        .unwrap();
    assert_eq!(reply, None);
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "EVAL blocked for {:?}",
        start.elapsed()
    );
    assert_eq!(info(&mut con, b"k").waiters, 0);
    let granted: Option<i64> = redis::cmd("EVAL")
        .arg("return redis.call('LOCK.ACQUIRE', KEYS[1], 't2', '30000', 'WAIT', '1000')")
        .arg(1)
        .arg("free")
        .query(&mut con)
        .unwrap();
    assert!(granted.is_some());
}

#[test]
fn del_of_a_held_lock_frees_it_and_answers_its_waiters_at_once() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"holder", 30_000).unwrap();
    let w = Waiter::queued(&server, b"k", b"waiter", 30_000, 20_000);
    let deleted: i64 = redis::cmd("DEL").arg("k").query(&mut con).unwrap();
    assert_eq!(deleted, 1);
    assert!(!info(&mut con, b"k").held);
    let (reply, elapsed) = w.join();
    let reply = reply.map_err(|e| err_text(&e));
    assert!(
        matches!(&reply, Err(e) if e.starts_with("UNBLOCKED ")),
        "a waiter of a deleted lock is told at once: {reply:?}"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "answered after {elapsed:?}"
    );
    assert_eq!(stats(&mut con)["waiters"], 0);
    assert!(
        acquire(&mut con, b"k", b"next", 1_000).is_some(),
        "DEL freed the lock"
    );
}

#[test]
fn hand_offs_count_as_grants_and_leave_waiters_at_zero() {
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"holder", 30_000).unwrap();
    let w = Waiter::queued(&server, b"k", b"waiter", 30_000, 20_000);
    let before = stats(&mut con);
    assert_eq!(before["waiters"], 1);
    release(&mut con, b"k", b"holder");
    w.fence().unwrap();
    let after = stats(&mut con);
    assert_eq!(
        after["grants"],
        before["grants"] + 1,
        "the hand-off is a grant"
    );
    assert_eq!(after["releases"], before["releases"] + 1);
    assert_eq!(after["waiters"], 0);
    assert_eq!(after["held"], 1);
}

/// Busy-waits on the server until `ARGV[1]` ms have passed (`TIME`), holding
/// the event loop, then runs `LOCK.RELEASE KEYS[1] ARGV[2]` when given one.
const HOLD_THEN_RELEASE: &str = "\
local function ms() local t = redis.call('TIME') return t[1] * 1000 + math.floor(t[2] / 1000) end
local until_ms = ms() + tonumber(ARGV[1])
repeat until ms() >= until_ms
if ARGV[2] then return redis.call('LOCK.RELEASE', KEYS[1], ARGV[2]) end
return 0";

#[test]
fn a_waiter_past_its_deadline_is_not_granted_before_its_timeout_is_answered() {
    // The script holds the event loop past the waiter's deadline, so its
    // timeout has not been answered when the release inside it hands the
    // lock on: the waiter must be passed over, and get its null.
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"holder", 30_000).unwrap();
    let before = stats(&mut con);
    let late = Waiter::queued(&server, b"k", b"late", 30_000, 400);
    let released: i64 = redis::cmd("EVAL")
        .arg(HOLD_THEN_RELEASE)
        .arg(1)
        .arg("k")
        .arg(1_000)
        .arg("holder")
        .query(&mut con)
        .unwrap();
    assert_eq!(released, 1);
    let (reply, _) = late.join();
    assert_eq!(reply.map_err(|e| err_text(&e)), Ok(None), "timed out: null");
    assert!(!exists(&mut con, b"k"), "the release left the lock free");
    assert_eq!(release(&mut con, b"k", b"late"), 0, "it never held it");
    let after = stats(&mut con);
    assert_eq!(after["wait_timeouts"], before["wait_timeouts"] + 1);
    assert_eq!(after["waiters"], 0);
}

#[test]
fn many_timeouts_due_at_once_are_answered_in_slices_with_commands_between() {
    // 640 waits of 2 s become due together (a script holds the event loop
    // past every deadline). Answered in one go, a client polling LOCK.STATS sees
    // none or all of them timed out; in slices it sees some in between.
    use std::io::{BufRead, BufReader, Write};
    const N: usize = 640;
    let server = RedisServer::start();
    let mut con = server.connection();
    acquire(&mut con, b"k", b"holder", 60_000).unwrap();
    let base = stats(&mut con)["wait_timeouts"];
    let mut socks = Vec::with_capacity(N);
    for i in 0..N {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        let token = format!("w{i}");
        let cmd = format!(
            "*6\r\n$12\r\nLOCK.ACQUIRE\r\n$1\r\nk\r\n${}\r\n{token}\r\n$5\r\n60000\r\n$4\r\nWAIT\r\n$4\r\n2000\r\n",
            token.len()
        );
        s.write_all(cmd.as_bytes()).unwrap();
        socks.push(s);
    }
    assert_eventually(SECOND * 20, "every wait is queued", || {
        info(&mut con, b"k").waiters == N as i64
    });
    let poller = {
        let mut poll = server.connection();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let deadline = Instant::now() + SECOND * 30;
            loop {
                // A server may answer BUSY while the script runs.
                let reply: redis::RedisResult<redis::Value> =
                    redis::cmd("LOCK.STATS").query(&mut poll);
                let Some(map) = reply.ok().as_ref().and_then(to_int_map) else {
                    assert!(Instant::now() < deadline, "LOCK.STATS kept failing");
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                };
                let done = map["wait_timeouts"] - base;
                seen.push(done);
                if done >= N as i64 || Instant::now() > deadline {
                    return seen;
                }
            }
        })
    };
    let _: i64 = redis::cmd("EVAL")
        .arg(HOLD_THEN_RELEASE)
        .arg(1)
        .arg("k")
        .arg(2_500)
        .query(&mut con)
        .unwrap();
    let seen = poller.join().unwrap();
    assert_eq!(
        seen.last().copied(),
        Some(N as i64),
        "all time out: {seen:?}"
    );
    let between = seen.iter().filter(|&&n| n > 0 && n < N as i64).count();
    assert!(between > 0, "no command ran between two slices: {seen:?}");
    for s in socks {
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        assert_eq!(line, "$-1\r\n", "a timed-out wait replies null");
    }
    assert_eq!(info(&mut con, b"k").waiters, 0);
    assert_eq!(release(&mut con, b"k", b"holder"), 1);
    assert!(!exists(&mut con, b"k"), "none of them was granted");
}
