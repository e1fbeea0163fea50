//! Leader election (`campaign`, `leader`, `observe`, `resign`, `proclaim`)
//! on every backend: the module, Lua (plain Redis) and memory. The kill
//! tests run the leader in a child process (this test binary run again as
//! `child_leader`) and SIGKILL it.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_client::{Backend, Client, Leader, LockOptions, Observer};
use baton_harness::RedisServer;
use common::{eventually, granted, setup};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::time::{timeout, Instant};

#[macro_use]
mod common;

const SECOND: Duration = Duration::from_secs(1);

fn campaign_opts(ttl: Duration) -> LockOptions {
    LockOptions::new().ttl(ttl).wait(20 * SECOND)
}

fn leader(term: u64, value: &str) -> Option<Leader> {
    Some(Leader {
        term,
        value: value.into(),
    })
}

/// Runs an observer of `name` (re-read period 60 s) in a task that sends
/// each item it yields. The task polls at once again after each item, so
/// it is parked on its notifications when a test makes the next change:
/// an item that comes within 2 s came from a notification or the leader's
/// expiry, not from the re-read period.
fn spawn_observer(c: &Client, name: &str) -> UnboundedReceiver<Option<Leader>> {
    spawn_observer_every(c, name, 60 * SECOND)
}

/// [`spawn_observer`] with a re-read period of `period`.
fn spawn_observer_every(
    c: &Client,
    name: &str,
    period: Duration,
) -> UnboundedReceiver<Option<Leader>> {
    let mut observer: Observer = c.observe(name).unwrap().reread_every(period);
    let (tx, rx) = unbounded_channel();
    tokio::spawn(async move {
        while let Ok(item) = observer.next().await {
            if tx.send(item).is_err() {
                break;
            }
        }
    });
    rx
}

/// The observer's next item, within 2 s.
async fn next_item(rx: &mut UnboundedReceiver<Option<Leader>>) -> Option<Leader> {
    timeout(2 * SECOND, rx.recv())
        .await
        .expect("the observer saw the change in time")
        .expect("the observer runs")
}

/// Gives the observer task time to read and park on its notifications
/// before the test's next change, so that only a notification (or the
/// leader's expiry) can bring the item within 2 s. Not a wait for an
/// outcome: were it too short, the observer's own read would find the
/// change, and the test would only prove less, never fail.
async fn let_it_park() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// No further item within `within`: nothing was yielded twice.
async fn no_item(rx: &mut UnboundedReceiver<Option<Leader>>, within: Duration) {
    if let Ok(item) = timeout(within, rx.recv()).await {
        panic!("an item with no change: {item:?}");
    }
}

/// Five campaigners, each leading for a moment: never two leaders at once,
/// `leader()` names the one in office, and terms increase in the order of
/// the wins.
async fn exactly_one_leader_at_a_time(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let in_office = Arc::new(AtomicUsize::new(0));
    let terms = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..5 {
        let (c, in_office, terms) = (c.clone(), in_office.clone(), terms.clone());
        tasks.push(tokio::spawn(async move {
            let value = format!("node-{i}");
            let l = c
                .campaign("office", value.clone(), &campaign_opts(10 * SECOND))
                .await
                .unwrap();
            assert_eq!(in_office.fetch_add(1, Ordering::SeqCst), 0, "two leaders");
            terms.lock().unwrap().push(l.term());
            assert_eq!(c.leader("office").await.unwrap(), leader(l.term(), &value));
            tokio::time::sleep(Duration::from_millis(30)).await;
            in_office.fetch_sub(1, Ordering::SeqCst);
            assert!(l.resign().await.unwrap());
        }));
    }
    for t in tasks {
        granted(t).await;
    }
    let terms = terms.lock().unwrap().clone();
    assert_eq!(terms.len(), 5);
    assert!(terms.windows(2).all(|w| w[0] < w[1]), "{terms:?}");
    assert_eq!(c.leader("office").await.unwrap(), None);
}

/// A resign hands over to the next campaigner at once, not after the ttl.
async fn resign_hands_over_at_once(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let ttl = 30 * SECOND;
    let a = c.campaign("r", "a", &campaign_opts(ttl)).await.unwrap();
    let next = {
        let c = c.clone();
        tokio::spawn(async move { c.campaign("r", "b", &campaign_opts(ttl)).await })
    };
    eventually(5 * SECOND, "b campaigns", || async {
        c.info("r").await.unwrap().waiters == 1
    })
    .await;
    let (a_term, resigned) = (a.term(), Instant::now());
    assert!(a.resign().await.unwrap());
    let b = granted(next).await.unwrap();
    assert!(
        resigned.elapsed() < SECOND,
        "handed over after {:?}",
        resigned.elapsed()
    );
    assert!(b.term() > a_term);
    assert_eq!(c.leader("r").await.unwrap(), leader(b.term(), "b"));
    assert!(b.resign().await.unwrap());
}

/// `proclaim` changes the value and keeps the term; a leadership that is
/// gone gets `false` and never takes the election again (proclaim is an
/// extend, not an acquire).
async fn proclaim_changes_the_value_not_the_term(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let l = c
        .campaign("p", "v1", &campaign_opts(10 * SECOND))
        .await
        .unwrap();
    assert!(l.proclaim("v2").await.unwrap());
    assert_eq!(l.value(), b"v2");
    assert_eq!(c.leader("p").await.unwrap(), leader(l.term(), "v2"));
    assert!(c.force_release("p").await.unwrap());
    assert!(!l.proclaim("v3").await.unwrap(), "no longer leader");
    assert!(l.is_lost());
    assert_eq!(c.leader("p").await.unwrap(), None, "not taken again");
    assert_eq!(l.value(), b"v2");
}

/// The observer sees each change in order, each within 2 s while its
/// re-read period is 60 s: the current state first, a win, a proclaim, a
/// hand-over by resign, no leader after a resign, and an expiry that
/// nobody announces (the observer re-reads at the leader's expiry); and
/// nothing twice.
async fn observe_sees_every_change_in_order(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let mut observer = spawn_observer(&c, "o");
    assert_eq!(next_item(&mut observer).await, None, "nobody leads yet");
    let ttl = 30 * SECOND;
    let_it_park().await;
    let a = c.campaign("o", "a1", &campaign_opts(ttl)).await.unwrap();
    assert_eq!(next_item(&mut observer).await, leader(a.term(), "a1"));
    let_it_park().await;
    assert!(a.proclaim("a2").await.unwrap());
    assert_eq!(next_item(&mut observer).await, leader(a.term(), "a2"));
    let next = {
        let c = c.clone();
        tokio::spawn(async move { c.campaign("o", "b", &campaign_opts(ttl)).await })
    };
    eventually(5 * SECOND, "b campaigns", || async {
        c.info("o").await.unwrap().waiters == 1
    })
    .await;
    no_item(&mut observer, Duration::from_millis(100)).await;
    assert!(a.resign().await.unwrap());
    let b = granted(next).await.unwrap();
    assert_eq!(next_item(&mut observer).await, leader(b.term(), "b"));
    let_it_park().await;
    assert!(b.resign().await.unwrap());
    assert_eq!(next_item(&mut observer).await, None);
    // A leader that stops extending (a crash): nobody announces the end.
    let quiet = LockOptions::new()
        .ttl(Duration::from_millis(700))
        .watchdog(false);
    let_it_park().await;
    let q = c.campaign("o", "q", &quiet).await.unwrap();
    assert_eq!(next_item(&mut observer).await, leader(q.term(), "q"));
    assert_eq!(next_item(&mut observer).await, None, "expired");
    no_item(&mut observer, Duration::from_millis(200)).await;
    assert!(q.is_lost() || !q.resign().await.unwrap());
}

/// A leader that stops without resigning (memory backend: its guard is
/// forgotten, with no watchdog, which is what a killed process leaves) is
/// followed by the next campaigner within the leader's ttl.
async fn the_next_campaigner_wins_when_a_silent_leader_expires(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let ttl = Duration::from_millis(800);
    let dead = c
        .campaign("s", "dead", &LockOptions::new().ttl(ttl).watchdog(false))
        .await
        .unwrap();
    let (term, stopped) = (dead.term(), Instant::now());
    std::mem::forget(dead);
    let next = c.campaign("s", "next", &campaign_opts(ttl)).await.unwrap();
    assert!(
        stopped.elapsed() < ttl + Duration::from_millis(300),
        "took {:?}",
        stopped.elapsed()
    );
    assert!(next.term() > term);
    assert_eq!(c.leader("s").await.unwrap(), leader(next.term(), "next"));
}

/// Campaigners win in the order they came (FIFO): three queue behind a
/// leader, and each resign hands over to the next in line.
async fn campaigners_win_in_the_order_they_came(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let ttl = 30 * SECOND;
    let first = c
        .campaign("fifo", "first", &campaign_opts(ttl))
        .await
        .unwrap();
    let mut queued = Vec::new();
    for (i, value) in ["b", "c", "d"].into_iter().enumerate() {
        let c2 = c.clone();
        queued.push(tokio::spawn(async move {
            c2.campaign("fifo", value, &campaign_opts(ttl))
                .await
                .unwrap()
        }));
        eventually(5 * SECOND, "the campaigner queues", || async {
            c.info("fifo").await.unwrap().waiters == i as u64 + 1
        })
        .await;
    }
    let mut term = first.term();
    assert!(first.resign().await.unwrap());
    for (task, value) in queued.into_iter().zip(["b", "c", "d"]) {
        let l = granted(task).await;
        assert_eq!(l.value(), value.as_bytes(), "{kind:?}: out of order");
        assert!(l.term() > term);
        assert_eq!(c.leader("fifo").await.unwrap(), leader(l.term(), value));
        term = l.term();
        assert!(l.resign().await.unwrap());
    }
    assert_eq!(c.leader("fifo").await.unwrap(), None);
}

/// A leader removed by an operator (a force release) learns it from its
/// lost signal, within its ttl, without calling anything.
async fn a_leader_that_is_removed_sees_its_lost_signal(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let ttl = Duration::from_millis(900);
    let l = c.campaign("gone", "v", &campaign_opts(ttl)).await.unwrap();
    assert!(!l.is_lost());
    assert!(c.force_release("gone").await.unwrap());
    timeout(ttl, l.lost()).await.expect("lost within the ttl");
    assert!(l.is_lost() && l.valid_for() == Duration::ZERO, "{kind:?}");
    assert!(!l.resign().await.unwrap(), "{kind:?}: nothing to resign");
}

suite!(
    exactly_one_leader_at_a_time,
    resign_hands_over_at_once,
    proclaim_changes_the_value_not_the_term,
    observe_sees_every_change_in_order,
    the_next_campaigner_wins_when_a_silent_leader_expires,
    campaigners_win_in_the_order_they_came,
    a_leader_that_is_removed_sees_its_lost_signal,
);

/// The leader's ttl in the kill tests.
const CHILD_TTL: Duration = Duration::from_secs(1);

/// The child of the kill tests: campaigns on `$BATON_CHILD_URL` with
/// `$BATON_CHILD_BACKEND`, prints `LEADER <term>` once it leads, and keeps
/// leading (watchdog on) until it is killed.
#[test]
#[ignore = "the leader process of the kill tests, which run it themselves"]
fn child_leader() {
    let url = std::env::var("BATON_CHILD_URL").expect("run by a kill test");
    let backend = match std::env::var("BATON_CHILD_BACKEND").as_deref() {
        Ok("lua") => Backend::Lua,
        _ => Backend::Module,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = Client::builder(url).backend(backend).build().await.unwrap();
        let l = c
            .campaign("killed", "child", &campaign_opts(CHILD_TTL))
            .await
            .unwrap();
        println!("LEADER {}", l.term());
        std::future::pending::<()>().await;
    });
}

/// Starts [`child_leader`] and returns it with its term once it leads.
fn start_child(server: &RedisServer, backend: &str) -> (Child, u64) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_leader", "--exact", "--ignored", "--nocapture"])
        .env("BATON_CHILD_URL", server.url())
        .env("BATON_CHILD_BACKEND", backend)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(term) = line.strip_prefix("LEADER ") {
                let _ = tx.send(term.trim().parse::<u64>().unwrap());
            }
        }
    });
    let term = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the child became leader");
    (child, term)
}

/// Exactly one leader across the death of the leader's process: while the
/// child leads, the parent's campaign waits (and `leader()` names the
/// child); SIGKILL the child, and the parent wins within the child's ttl,
/// in a later term, seen by an observer in that order.
async fn the_next_campaigner_wins_within_the_ttl_after_the_leader_is_killed(kind: Backend) {
    let server = match kind {
        Backend::Module => RedisServer::start(),
        _ => RedisServer::builder().without_module().start(),
    };
    let c = Client::builder(server.url())
        .backend(kind)
        .build()
        .await
        .unwrap();
    let (mut child, term) = start_child(
        &server,
        if kind == Backend::Lua {
            "lua"
        } else {
            "module"
        },
    );
    let mut observer = spawn_observer(&c, "killed");
    assert_eq!(next_item(&mut observer).await, leader(term, "child"));
    let next = {
        let c = c.clone();
        tokio::spawn(async move {
            c.campaign("killed", "parent", &campaign_opts(CHILD_TTL))
                .await
        })
    };
    eventually(5 * SECOND, "the parent campaigns", || async {
        c.info("killed").await.unwrap().waiters == 1
    })
    .await;
    // Longer than the ttl: the child's watchdog keeps it leader.
    tokio::time::sleep(CHILD_TTL + CHILD_TTL / 2).await;
    assert!(!next.is_finished(), "a second leader while the child leads");
    assert_eq!(c.leader("killed").await.unwrap(), leader(term, "child"));
    child.kill().unwrap(); // SIGKILL
    let killed = Instant::now();
    child.wait().unwrap();
    let won = granted(next).await.unwrap();
    let took = killed.elapsed();
    assert!(
        took <= CHILD_TTL + Duration::from_millis(300),
        "won {took:?} after the kill"
    );
    assert!(won.term() > term);
    assert_eq!(next_item(&mut observer).await, leader(won.term(), "parent"));
    println!("{kind:?}: the next campaigner won {took:?} after SIGKILL (ttl {CHILD_TTL:?})");
}

#[tokio::test]
async fn module_the_next_campaigner_wins_within_the_ttl_after_the_leader_is_killed() {
    the_next_campaigner_wins_within_the_ttl_after_the_leader_is_killed(Backend::Module).await
}

#[tokio::test]
async fn lua_the_next_campaigner_wins_within_the_ttl_after_the_leader_is_killed() {
    the_next_campaigner_wins_within_the_ttl_after_the_leader_is_killed(Backend::Lua).await
}

/// On the module, an operator's `LOCK.FORCERELEASE` (which no client
/// announces) reaches an observer through the keyspace events when
/// `notify-keyspace-events` shows module events, long before its re-read.
#[tokio::test]
async fn module_observer_wakes_on_keyspace_events() {
    let server = RedisServer::builder()
        .config("notify-keyspace-events", "Kd")
        .start();
    let c = Client::builder(server.url())
        .backend(Backend::Module)
        .build()
        .await
        .unwrap();
    let l = c
        .campaign("ks", "v", &campaign_opts(30 * SECOND))
        .await
        .unwrap();
    let mut observer = spawn_observer(&c, "ks");
    assert_eq!(next_item(&mut observer).await, leader(l.term(), "v"));
    let _: i64 = redis::cmd("LOCK.FORCERELEASE")
        .arg("ks")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(next_item(&mut observer).await, None);
}

/// A change that nobody announces (a plain lock taken on the name and
/// released: no campaign, so no announcement; the module without keyspace
/// events) is seen at the observer's next periodic re-read: a missed event
/// only delays. An observer with a 60 s period, parked alongside, sees
/// neither change in that time: nothing else woke them. Not on the memory
/// backend, which signals every change in-process, so no event can be
/// missed there.
async fn a_missed_announcement_only_delays_the_observer(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let period = Duration::from_millis(400);
    let mut fast = spawn_observer_every(&c, "quiet", period);
    let mut slow = spawn_observer(&c, "quiet");
    assert_eq!(next_item(&mut fast).await, None);
    assert_eq!(next_item(&mut slow).await, None);
    let_it_park().await;
    let g = c
        .lock(
            "quiet",
            &LockOptions::new().ttl(30 * SECOND).meta("unannounced"),
        )
        .await
        .unwrap();
    assert_eq!(
        next_item(&mut fast).await,
        leader(g.fence(), "unannounced"),
        "{kind:?}: seen at a re-read"
    );
    assert!(
        timeout(period * 2, slow.recv()).await.is_err(),
        "{kind:?}: the lock was announced after all; this test proves nothing"
    );
    let_it_park().await;
    assert!(g.release().await.unwrap());
    assert_eq!(next_item(&mut fast).await, None, "{kind:?}");
    let late = timeout(period * 2, slow.recv()).await;
    assert!(
        late.is_err(),
        "{kind:?}: the release was announced: {late:?}"
    );
}

#[tokio::test]
async fn module_a_missed_announcement_only_delays_the_observer() {
    a_missed_announcement_only_delays_the_observer(Backend::Module).await
}

#[tokio::test]
async fn lua_a_missed_announcement_only_delays_the_observer() {
    a_missed_announcement_only_delays_the_observer(Backend::Lua).await
}
