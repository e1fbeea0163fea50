//! One conformance suite for the lock sentences of SPEC §2–4 and the
//! semaphore and read-write lock sentences of §6, run against every
//! backend: the module, Lua (plain Redis) and memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_client::{Backend, Client, Error, LockGuard, SemGuard, SemInfo, Semaphore, RW_LIMIT};
use baton_harness::RedisServer;
use common::{eventually, granted, opts, setup};
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

#[macro_use]
mod common;

async fn grant_busy_and_idempotent_release(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let g = c.lock("k", &opts(10_000)).await.unwrap();
    assert!(g.fence() > 0);
    assert_eq!(c.fence("k").await.unwrap(), g.fence());
    assert!(c.try_lock("k", &opts(10_000)).await.unwrap().is_none());
    assert!(g.release().await.unwrap());
    let info = c.info("k").await.unwrap();
    assert!(!info.held && info.pttl.is_none() && info.fence == 0);
}

async fn fences_strictly_increase(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let mut last = 0;
    for _ in 0..5 {
        let g = c.lock("f", &opts(10_000)).await.unwrap();
        assert!(g.fence() > last);
        last = g.fence();
        assert!(c.force_release("f").await.unwrap() || g.release().await.unwrap());
    }
}

async fn keys_are_validated(kind: Backend) {
    let (_s, c) = setup(kind).await;
    assert!(matches!(
        c.lock("", &opts(100)).await,
        Err(Error::InvalidKey { .. })
    ));
    assert!(matches!(
        c.lock("a b", &opts(100)).await,
        Err(Error::InvalidKey { .. })
    ));
    assert!(matches!(
        c.lock("ok", &opts(100).ttl(Duration::ZERO)).await,
        Err(Error::InvalidOptions(_))
    ));
}

async fn wait_times_out_with_not_acquired(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let _g = c.lock("t", &opts(10_000)).await.unwrap();
    let started = Instant::now();
    let wait = Duration::from_millis(300);
    match c.lock("t", &opts(10_000).wait(wait)).await {
        Err(Error::NotAcquired { key, wait: w }) => assert_eq!((key.as_str(), w), ("t", wait)),
        other => panic!("expected NotAcquired, got {other:?}"),
    }
    assert!(started.elapsed() >= wait - Duration::from_millis(5));
    eventually(
        Duration::from_secs(2),
        "timed-out waiter left the queue",
        || async { c.info("t").await.unwrap().waiters == 0 },
    )
    .await;
}

async fn fifo_order_and_no_barging(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let holder = c.lock("q", &opts(10_000)).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..6u64 {
        let (c2, order) = (c.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let g = c2
                .lock("q", &opts(10_000).wait(Duration::from_secs(20)))
                .await
                .unwrap();
            order.lock().unwrap().push((i, g.fence()));
            assert!(g.release().await.unwrap());
        }));
        eventually(Duration::from_secs(5), "waiter queued", || async {
            c.info("q").await.unwrap().waiters == i + 1
        })
        .await;
    }
    // A newcomer never overtakes a waiter, even right after a release.
    assert!(c.try_lock("q", &opts(10_000)).await.unwrap().is_none());
    assert!(holder.release().await.unwrap());
    assert!(
        c.try_lock("q", &opts(10_000)).await.unwrap().is_none() || order.lock().unwrap().len() == 6
    );
    for t in tasks {
        timeout(Duration::from_secs(20), t).await.unwrap().unwrap();
    }
    let order = order.lock().unwrap().clone();
    let ids: Vec<u64> = order.iter().map(|o| o.0).collect();
    assert_eq!(ids, (0..6).collect::<Vec<_>>(), "granted in arrival order");
    assert!(
        order.windows(2).all(|w| w[0].1 < w[1].1),
        "fences increase: {order:?}"
    );
}

async fn cancelled_wait_leaves_the_queue(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let holder = c.lock("c", &opts(10_000)).await.unwrap();
    let long = opts(10_000).wait(Duration::from_secs(30));
    let waiting = c.lock("c", &long);
    assert!(timeout(Duration::from_millis(300), waiting).await.is_err());
    eventually(
        Duration::from_secs(5),
        "cancelled waiter left the queue",
        || async { c.info("c").await.unwrap().waiters == 0 },
    )
    .await;
    assert!(holder.release().await.unwrap());
    let g = c.try_lock("c", &opts(10_000)).await.unwrap();
    assert!(g.is_some(), "the lock is free after the cancelled wait");
}

async fn force_release_hands_off_and_signals_lost(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let holder = c.lock("fr", &opts(2_000)).await.unwrap();
    let c2 = c.clone();
    let waiter = tokio::spawn(async move {
        c2.lock("fr", &opts(10_000).wait(Duration::from_secs(10)))
            .await
    });
    eventually(Duration::from_secs(5), "waiter queued", || async {
        c.info("fr").await.unwrap().waiters == 1
    })
    .await;
    assert!(c.force_release("fr").await.unwrap());
    let g = timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(g.fence() > holder.fence());
    timeout(Duration::from_millis(2_000), holder.lost())
        .await
        .expect("lost within the ttl");
    assert!(!holder.release().await.unwrap());
    assert!(!c.force_release("nobody").await.unwrap());
}

async fn expiry_hands_off_to_the_waiter(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let _g = common::expiry_hands_off(&c, "e", Duration::from_millis(100)).await;
}

async fn watchdog_keeps_the_lock(kind: Backend) {
    let (_s, c) = setup(kind).await;
    // A 500 ms ttl leaves the watchdog (every ~167 ms) room on a loaded
    // machine; holding for 5x the ttl is the point of the test.
    let g = c.lock("w", &opts(500)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await; // 5x the ttl
    assert!(!g.is_lost());
    assert!(c.info("w").await.unwrap().held);
    assert!(g.extend(Duration::from_millis(500)).await.unwrap());
    assert!(g.release().await.unwrap());
}

async fn drop_releases_in_the_background(kind: Backend) {
    let (_s, c) = setup(kind).await;
    {
        let _g = c.lock("d", &opts(60_000)).await.unwrap();
    }
    eventually(Duration::from_secs(2), "dropped guard released", || async {
        !c.info("d").await.unwrap().held
    })
    .await;
}

async fn with_lock_always_releases(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let fence = c
        .with_lock("s", &opts(5_000), async |g| g.fence())
        .await
        .unwrap();
    assert!(fence > 0);
    assert!(!c.info("s").await.unwrap().held);
}

/// A waiter on `key` (ttl 600 ms, `watchdog` on or off) that is granted
/// after 1.5 s of waiting, 2.5 ttls.
async fn granted_after_a_long_wait(c: &Client, key: &str, watchdog: bool) -> LockGuard {
    let holder = c.lock(key, &opts(600)).await.unwrap();
    let waiter = {
        let (c, key) = (c.clone(), key.to_owned());
        let opts = opts(600).wait(Duration::from_secs(10)).watchdog(watchdog);
        tokio::spawn(async move { c.lock(&key, &opts).await })
    };
    eventually(Duration::from_secs(5), "waiter queued", || async {
        c.info(key).await.unwrap().waiters == 1
    })
    .await;
    // The holder's watchdog keeps the lock while the waiter waits.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(holder.release().await.unwrap());
    timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

/// A grant that comes after a wait longer than the ttl is held, not lost:
/// the guard counts its validity from no earlier than the grant (or the
/// call that collected it), yet never beyond the server's expiry.
async fn a_grant_after_a_wait_longer_than_the_ttl_is_held(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let (kept, unkept) = tokio::join!(
        granted_after_a_long_wait(&c, "lw", true),
        granted_after_a_long_wait(&c, "lw-off", false),
    );
    for (g, key) in [(&unkept, "lw-off"), (&kept, "lw")] {
        // Read first: the server's time left only shrinks meanwhile.
        let valid_for = g.valid_for();
        let pttl = c.info(key).await.unwrap().pttl.expect("held");
        assert!(
            valid_for > Duration::from_millis(300),
            "{kind:?} {key}: {valid_for:?} left right after the grant"
        );
        // pttl is rounded down to whole ms.
        assert!(
            valid_for <= Duration::from_millis(pttl + 1),
            "{kind:?} {key}: the guard counts on {valid_for:?}, the server has {pttl} ms"
        );
    }
    assert!(
        timeout(Duration::from_millis(700), kept.lost())
            .await
            .is_err(),
        "{kind:?}: lost right after a grant that followed a long wait"
    );
    assert!(
        c.info("lw").await.unwrap().held,
        "{kind:?}: the watchdog keeps it"
    );
    assert!(kept.release().await.unwrap());
}

// ---- Semaphores and read-write locks (SPEC §6) ----

/// A waiter for `permits` of `sem` (ttl 10 s, wait 20 s), in a task.
fn spawn_acquire(sem: &Semaphore, permits: u32) -> JoinHandle<SemGuard> {
    let sem = sem.clone();
    tokio::spawn(async move {
        let wait = opts(10_000).wait(Duration::from_secs(20));
        sem.acquire(permits, &wait).await.expect("granted")
    })
}

/// `SEM.INFO` of `key` (the limit does not matter for it).
async fn sem_info(c: &Client, key: &str) -> SemInfo {
    c.semaphore(key, 1).info().await.unwrap()
}

/// Waits until `n` requests are queued on semaphore `key`.
async fn queued(c: &Client, key: &str, n: u64) {
    eventually(Duration::from_secs(5), "requests queued", || async {
        sem_info(c, key).await.waiters == n
    })
    .await;
}

/// Every Redis key on the server, sorted (none for memory).
fn keys_on(server: &Option<RedisServer>) -> Vec<String> {
    let Some(s) = server else { return Vec::new() };
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut s.connection())
        .unwrap();
    keys.sort();
    keys
}

async fn sem_grants_up_to_the_limit_and_refuses_beyond(kind: Backend) {
    let (s, c) = setup(kind).await;
    let sem = c.semaphore("s", 3);
    let a = sem.acquire(2, &opts(10_000)).await.unwrap();
    let b = sem.acquire(1, &opts(10_000)).await.unwrap();
    assert_eq!((a.permits(), b.permits()), (2, 1));
    assert!(0 < a.fence() && a.fence() < b.fence());
    assert!(
        sem.try_acquire(1, &opts(10_000)).await.unwrap().is_none(),
        "{kind:?}: no permit beyond the limit"
    );
    let wait = Duration::from_millis(100);
    match sem.acquire(1, &opts(10_000).wait(wait)).await {
        Err(Error::NotAcquired { key, wait: w }) => assert_eq!((key.as_str(), w), ("s", wait)),
        other => panic!("expected NotAcquired, got {other:?}"),
    }
    let full = SemInfo {
        limit: 3,
        used: 3,
        holders: 2,
        waiters: 0,
        fence: b.fence(),
    };
    eventually(
        Duration::from_secs(2),
        "the timed-out request left",
        || async { sem_info(&c, "s").await == full },
    )
    .await;
    for (limit, permits) in [(3, 0), (3, 4), (0, 1)] {
        let r = c
            .semaphore("s", limit)
            .try_acquire(permits, &opts(100))
            .await;
        assert!(
            matches!(r, Err(Error::InvalidOptions(_))),
            "{limit}/{permits}: {r:?}"
        );
    }
    let r = c.semaphore("a b", 1).try_acquire(1, &opts(100)).await;
    assert!(matches!(r, Err(Error::InvalidKey { .. })), "{r:?}");
    assert!(a.release().await.unwrap());
    let again = sem.try_acquire(2, &opts(10_000)).await.unwrap();
    let again = again.expect("the released permits are free again");
    assert!(again.release().await.unwrap() && b.release().await.unwrap());
    assert_eq!(sem_info(&c, "s").await, SemInfo::default(), "{kind:?}");
    // No key is left behind: on Lua only the fence counter (as for locks).
    let left: &[&str] = match kind {
        Backend::Lua => &["baton:sem:{s}:c"],
        _ => &[],
    };
    assert_eq!(keys_on(&s), left, "{kind:?}");
}

/// Strict FIFO: one permit is free, but a request for three is queued
/// first, so a request for one neither gets it at once nor overtakes.
async fn sem_strict_fifo_with_mixed_permits(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let sem = c.semaphore("fifo", 3);
    let first = sem.acquire(2, &opts(10_000)).await.unwrap();
    let big = spawn_acquire(&sem, 3);
    queued(&c, "fifo", 1).await;
    assert!(
        sem.try_acquire(1, &opts(10_000)).await.unwrap().is_none(),
        "{kind:?}: a newcomer overtook a queued request"
    );
    let small = spawn_acquire(&sem, 1);
    queued(&c, "fifo", 2).await;
    let first_fence = first.fence();
    assert!(first.release().await.unwrap());
    let info = sem_info(&c, "fifo").await;
    assert_eq!(
        (info.used, info.holders, info.waiters),
        (3, 1, 1),
        "{kind:?}"
    );
    let big = granted(big).await;
    assert_eq!(big.permits(), 3);
    assert!(
        !small.is_finished(),
        "{kind:?}: the small request went first"
    );
    let big_fence = big.fence();
    assert!(big.release().await.unwrap());
    let small = granted(small).await;
    assert!(first_fence < big_fence && big_fence < small.fence());
}

/// One release grants every request at the head that fits, at once and in
/// queue order, and holds back the one that does not fit yet.
async fn sem_one_release_grants_several_in_order(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let sem = c.semaphore("many", 4);
    let all = sem.acquire(4, &opts(10_000)).await.unwrap();
    let mut waiters = Vec::new();
    for (i, permits) in [1, 2, 1, 1].into_iter().enumerate() {
        waiters.push(spawn_acquire(&sem, permits));
        queued(&c, "many", i as u64 + 1).await;
    }
    let last = waiters.pop().unwrap();
    let all_fence = all.fence();
    assert!(all.release().await.unwrap());
    // In the release itself: three leases, the fourth request queued.
    let info = sem_info(&c, "many").await;
    assert_eq!(
        (info.used, info.holders, info.waiters),
        (4, 3, 1),
        "{kind:?}"
    );
    let mut guards = Vec::new();
    for w in waiters {
        guards.push(granted(w).await);
    }
    let fences: Vec<u64> = guards.iter().map(|g| g.fence()).collect();
    assert!(
        all_fence < fences[0] && fences.windows(2).all(|w| w[0] < w[1]),
        "{kind:?}: granted out of order: {fences:?}"
    );
    assert!(!last.is_finished(), "{kind:?}: the fourth does not fit yet");
    assert!(guards.remove(0).release().await.unwrap());
    assert!(granted(last).await.fence() > fences[2]);
}

/// Leases expire each at its own time and hand on: two expiring leases
/// let two waiters through.
async fn sem_expiry_hands_on_to_several(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let sem = c.semaphore("exp", 2);
    let unkept = opts(300).watchdog(false);
    let a = sem.acquire(1, &unkept).await.unwrap();
    let b = sem.acquire(1, &unkept).await.unwrap();
    let w1 = spawn_acquire(&sem, 1);
    queued(&c, "exp", 1).await;
    let w2 = spawn_acquire(&sem, 1);
    queued(&c, "exp", 2).await;
    let started = Instant::now();
    let (g1, g2) = (granted(w1).await, granted(w2).await);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{kind:?}: hand-on soon after the ttl"
    );
    assert!(b.fence() < g1.fence() && g1.fence() < g2.fence());
    for expired in [a, b] {
        timeout(Duration::from_secs(1), expired.lost())
            .await
            .expect("the expired lease is lost");
        assert!(!expired.release().await.unwrap(), "{kind:?}: it expired");
    }
}

/// An acquire naming another limit while the semaphore is in use is
/// refused with both numbers and changes nothing; once idle, the next
/// acquire sets the limit.
async fn sem_another_limit_is_refused(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let sem = c.semaphore("lim", 3);
    let a = sem.acquire(2, &opts(10_000)).await.unwrap();
    let waiter = spawn_acquire(&sem, 2);
    queued(&c, "lim", 1).await;
    let before = sem_info(&c, "lim").await;
    let other = c.semaphore("lim", 5);
    for wait in [Duration::ZERO, Duration::from_secs(5)] {
        let started = Instant::now();
        let err = other
            .acquire(1, &opts(10_000).wait(wait))
            .await
            .unwrap_err();
        match &err {
            Error::OtherLimit {
                key,
                limit: 3,
                asked: 5,
            } => assert_eq!(key, "lim"),
            other => panic!("{kind:?}: expected OtherLimit, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains('3') && text.contains('5'), "{text}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "refused at once"
        );
    }
    assert_eq!(
        sem_info(&c, "lim").await,
        before,
        "{kind:?}: nothing changed"
    );
    assert!(a.release().await.unwrap());
    assert!(granted(waiter).await.release().await.unwrap());
    let five = other.acquire(5, &opts(10_000)).await.unwrap();
    assert_eq!(sem_info(&c, "lim").await.limit, 5, "{kind:?}");
    assert!(five.release().await.unwrap());
}

/// Every lease gets a new fence, larger than those of earlier leases and
/// of the locks granted before (one counter on the node).
async fn sem_fences_strictly_increase(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let lock = c.lock("l", &opts(10_000)).await.unwrap();
    let sem = c.semaphore("f", 2);
    let mut last = lock.fence();
    for permits in [1, 2, 1, 2] {
        let g = sem.acquire(permits, &opts(10_000)).await.unwrap();
        assert!(g.fence() > last, "{kind:?}: {} after {last}", g.fence());
        assert_eq!(sem_info(&c, "f").await.fence, g.fence());
        last = g.fence();
        assert!(g.release().await.unwrap());
    }
}

/// A cancelled waiting acquire leaves the queue, and the request behind it
/// that now fits is granted at once.
async fn sem_cancelled_wait_lets_the_next_through(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let sem = c.semaphore("cw", 2);
    let first = sem.acquire(1, &opts(10_000)).await.unwrap();
    let big = spawn_acquire(&sem, 2);
    queued(&c, "cw", 1).await;
    let small = spawn_acquire(&sem, 1);
    queued(&c, "cw", 2).await;
    big.abort();
    let aborted = Instant::now();
    let small = granted(small).await;
    // At once: not at the next extend or the Lua waiter's timer (1 s).
    assert!(
        aborted.elapsed() < Duration::from_millis(750),
        "{kind:?}: granted {:?} after the cancel",
        aborted.elapsed()
    );
    let info = sem_info(&c, "cw").await;
    assert_eq!(
        (info.used, info.holders, info.waiters),
        (2, 2, 0),
        "{kind:?}"
    );
    assert!(small.fence() > first.fence());
}

async fn sem_drop_releases_in_the_background(kind: Backend) {
    let (_s, c) = setup(kind).await;
    {
        let _g = c.semaphore("d", 3).acquire(3, &opts(60_000)).await.unwrap();
        assert_eq!(sem_info(&c, "d").await.used, 3);
    }
    eventually(Duration::from_secs(2), "dropped lease released", || async {
        sem_info(&c, "d").await.used == 0
    })
    .await;
}

async fn sem_watchdog_keeps_a_lease_past_its_ttl(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let g = c.semaphore("w", 2).acquire(1, &opts(500)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await; // 3x the ttl
    assert!(!g.is_lost(), "{kind:?}");
    assert!(g.valid_for() > Duration::ZERO);
    assert_eq!(sem_info(&c, "w").await.holders, 1, "{kind:?}");
    assert!(g.extend(Duration::from_millis(500)).await.unwrap());
    assert!(g.release().await.unwrap());
}

/// A force release removes every lease (a count), hands on, and the
/// holders' lost signals fire within their ttl.
async fn sem_force_release_hands_on_and_signals_lost(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let sem = c.semaphore("fr", 3);
    let a = sem.acquire(2, &opts(600)).await.unwrap();
    let b = sem.acquire(1, &opts(600)).await.unwrap();
    let waiter = spawn_acquire(&sem, 3);
    queued(&c, "fr", 1).await;
    assert_eq!(sem.force_release().await.unwrap(), 2);
    let g = granted(waiter).await;
    assert!(g.fence() > b.fence());
    for lost in [a, b] {
        timeout(Duration::from_millis(600), lost.lost())
            .await
            .expect("lost within the ttl");
        assert!(!lost.release().await.unwrap());
    }
    assert!(g.release().await.unwrap());
    assert_eq!(sem.force_release().await.unwrap(), 0, "nobody left");
}

/// Readers share; a writer excludes readers and writers.
async fn rw_readers_share_and_a_writer_excludes(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let rw = c.rwlock("rw");
    let o = opts(10_000);
    let mut readers = Vec::new();
    for _ in 0..3 {
        readers.push(rw.try_read(&o).await.unwrap().expect("readers share"));
    }
    let info = rw.info().await.unwrap();
    assert_eq!((info.limit, info.used, info.holders), (RW_LIMIT, 3, 3));
    assert!(rw.try_write(&o).await.unwrap().is_none(), "{kind:?}");
    for r in readers {
        assert!(r.release().await.unwrap());
    }
    let w = rw.try_write(&o).await.unwrap().expect("free again");
    assert_eq!(w.permits(), RW_LIMIT);
    assert!(
        rw.try_read(&o).await.unwrap().is_none(),
        "{kind:?}: a reader"
    );
    assert!(
        rw.try_write(&o).await.unwrap().is_none(),
        "{kind:?}: a writer"
    );
    assert_eq!(rw.info().await.unwrap().used, RW_LIMIT);
    assert!(w.release().await.unwrap());
}

/// A writer waits for the readers before it, and a reader that comes
/// after a queued writer waits behind it: no writer starvation.
async fn rw_writers_are_not_starved(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let rw = c.rwlock("fair");
    let o = opts(10_000);
    let wait = o.clone().wait(Duration::from_secs(20));
    let (r1, r2) = (rw.read(&o).await.unwrap(), rw.read(&o).await.unwrap());
    let writer = tokio::spawn({
        let (rw, wait) = (rw.clone(), wait.clone());
        async move { rw.write(&wait).await.unwrap() }
    });
    queued(&c, "fair", 1).await;
    assert!(
        rw.try_read(&o).await.unwrap().is_none(),
        "{kind:?}: a reader overtook the queued writer"
    );
    let late = tokio::spawn({
        let rw = rw.clone();
        async move { rw.read(&wait).await.unwrap() }
    });
    queued(&c, "fair", 2).await;
    assert!(r1.release().await.unwrap());
    let info = rw.info().await.unwrap();
    assert_eq!(
        (info.used, info.waiters),
        (1, 2),
        "{kind:?}: r2 still reads"
    );
    let r2_fence = r2.fence();
    assert!(r2.release().await.unwrap());
    let w = granted(writer).await;
    assert_eq!(rw.info().await.unwrap().waiters, 1, "{kind:?}");
    assert!(
        !late.is_finished(),
        "{kind:?}: the late reader waits behind the writer"
    );
    let w_fence = w.fence();
    assert!(w.release().await.unwrap());
    let late = granted(late).await;
    assert!(r2_fence < w_fence && w_fence < late.fence());
}

/// On the module a lock and a semaphore of one name are one Redis key,
/// and the second is `WRONGTYPE`; the Lua and memory backends keep them
/// apart.
async fn a_lock_and_a_semaphore_of_one_name(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let lock = c.lock("same", &opts(10_000)).await.unwrap();
    let lease = c.semaphore("same", 2).try_acquire(1, &opts(10_000)).await;
    match kind {
        Backend::Module => match &lease {
            Err(Error::Redis(e)) => assert_eq!(e.code(), Some("WRONGTYPE"), "{e}"),
            other => panic!("expected WRONGTYPE, got {other:?}"),
        },
        _ => assert!(lease.unwrap().is_some(), "{kind:?}: apart from the lock"),
    }
    assert!(lock.release().await.unwrap());
}

/// `LockOptions::meta` is stored with the holder (`LOCK.INFO` meta): an
/// empty value is a value, a lock taken without one shows none, a free lock
/// none, and a waiter's value becomes the holder's at the hand-off.
async fn meta_is_stored_with_the_holder_and_carried_by_a_waiter(kind: Backend) {
    let (_s, c) = setup(kind).await;
    assert_eq!(c.info("m").await.unwrap().meta, None, "free");
    let first = c.lock("m", &opts(10_000).meta("first's")).await.unwrap();
    assert_eq!(
        c.info("m").await.unwrap().meta.as_deref(),
        Some(&b"first's"[..])
    );
    let waiter = {
        let c = c.clone();
        let wait = opts(10_000)
            .wait(Duration::from_secs(10))
            .meta(vec![0, b'\n', 255]);
        tokio::spawn(async move { c.lock("m", &wait).await })
    };
    eventually(Duration::from_secs(5), "the waiter is queued", || async {
        c.info("m").await.unwrap().waiters == 1
    })
    .await;
    assert_eq!(
        c.info("m").await.unwrap().meta.as_deref(),
        Some(&b"first's"[..]),
        "the waiter's value waits with it"
    );
    assert!(first.release().await.unwrap());
    let second = granted(waiter).await.unwrap();
    let info = c.info("m").await.unwrap();
    assert_eq!(info.fence, second.fence());
    assert_eq!(
        info.meta.as_deref(),
        Some(&[0, b'\n', 255][..]),
        "any bytes"
    );
    assert!(second.extend(Duration::from_secs(10)).await.unwrap());
    assert_eq!(
        c.info("m").await.unwrap().meta.as_deref(),
        Some(&[0, b'\n', 255][..]),
        "a plain extend keeps it"
    );
    assert!(second.release().await.unwrap());
    assert_eq!(c.info("m").await.unwrap().meta, None, "released");
    let plain = c.lock("m", &opts(10_000)).await.unwrap();
    assert_eq!(c.info("m").await.unwrap().meta, None, "taken without one");
    assert!(plain.release().await.unwrap());
    let empty = c.lock("e", &opts(10_000).meta("")).await.unwrap();
    assert_eq!(c.info("e").await.unwrap().meta, Some(Vec::new()));
    assert!(empty.release().await.unwrap());
}

/// A value over 1024 bytes is refused before anything is sent, and a
/// semaphore's acquire refuses a value (a lease carries none).
async fn meta_limits_are_checked(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let long = opts(10_000).meta(vec![b'x'; baton_client::MAX_META_LEN + 1]);
    assert!(matches!(
        c.lock("m", &long).await,
        Err(Error::InvalidOptions(_))
    ));
    assert!(!c.info("m").await.unwrap().held);
    let max = vec![b'y'; baton_client::MAX_META_LEN];
    let g = c.lock("m", &opts(10_000).meta(max.clone())).await.unwrap();
    assert_eq!(c.info("m").await.unwrap().meta, Some(max));
    assert!(g.release().await.unwrap());
    let lease = c
        .semaphore("s", 2)
        .acquire(1, &opts(10_000).meta("v"))
        .await;
    assert!(matches!(lease, Err(Error::InvalidOptions(_))), "{lease:?}");
    assert_eq!(c.semaphore("s", 2).info().await.unwrap().used, 0);
}

/// Every lease has its own expiry: a short lease expires while a long one
/// of the same semaphore holds on; an extend renews a lease past its first
/// ttl, and a lease that is gone cannot be extended.
async fn sem_leases_expire_each_at_their_own_time(kind: Backend) {
    let (_s, c) = setup(kind).await;
    let sem = c.semaphore("own", 4);
    let unkept = opts(300).watchdog(false);
    let short = sem.acquire(1, &unkept).await.unwrap();
    let extended = sem.acquire(1, &unkept).await.unwrap();
    let long = sem.acquire(2, &opts(10_000)).await.unwrap();
    assert!(extended.extend(Duration::from_secs(10)).await.unwrap());
    timeout(Duration::from_secs(2), short.lost())
        .await
        .expect("the short lease is lost at its ttl");
    eventually(
        Duration::from_secs(2),
        "the short lease expired",
        || async { sem_info(&c, "own").await.holders == 2 },
    )
    .await;
    let info = sem_info(&c, "own").await;
    assert_eq!((info.used, info.holders), (3, 2), "{kind:?}");
    assert!(!extended.is_lost() && !long.is_lost(), "{kind:?}");
    assert!(
        !short.extend(Duration::from_secs(10)).await.unwrap(),
        "{kind:?}: an expired lease cannot be extended"
    );
    assert!(!short.release().await.unwrap(), "{kind:?}");
    // `fence` is the last issued on the key, also once its lease is gone.
    let last = long.fence();
    assert!(long.release().await.unwrap());
    let info = sem_info(&c, "own").await;
    assert_eq!((info.used, info.fence), (1, last), "{kind:?}");
    assert!(extended.release().await.unwrap());
}

/// A semaphore whose leases expired and whose waiter timed out, with no
/// call in between, leaves no key behind (on Lua only the fence counter).
async fn sem_no_key_is_left_behind_after_expiry_or_a_timed_out_wait(kind: Backend) {
    let (s, c) = setup(kind).await;
    let sem = c.semaphore("gone", 2);
    let lease = sem.acquire(2, &opts(400).watchdog(false)).await.unwrap();
    match sem
        .acquire(1, &opts(10_000).wait(Duration::from_millis(100)))
        .await
    {
        Err(Error::NotAcquired { .. }) => {}
        other => panic!("{kind:?}: expected NotAcquired, got {other:?}"),
    }
    timeout(Duration::from_secs(2), lease.lost())
        .await
        .expect("lost at its ttl");
    let left: Vec<String> = match kind {
        Backend::Lua => vec!["baton:sem:{gone}:c".into()],
        _ => Vec::new(),
    };
    // The lost signal fires at the client's (conservative) end of validity,
    // a little before the backend's expiry.
    eventually(
        Duration::from_secs(3),
        "only the counter is left",
        || async { keys_on(&s) == left && sem_info(&c, "gone").await == SemInfo::default() },
    )
    .await;
}

suite!(
    grant_busy_and_idempotent_release,
    fences_strictly_increase,
    keys_are_validated,
    wait_times_out_with_not_acquired,
    fifo_order_and_no_barging,
    cancelled_wait_leaves_the_queue,
    force_release_hands_off_and_signals_lost,
    expiry_hands_off_to_the_waiter,
    watchdog_keeps_the_lock,
    drop_releases_in_the_background,
    with_lock_always_releases,
    a_grant_after_a_wait_longer_than_the_ttl_is_held,
    sem_grants_up_to_the_limit_and_refuses_beyond,
    sem_strict_fifo_with_mixed_permits,
    sem_one_release_grants_several_in_order,
    sem_expiry_hands_on_to_several,
    sem_another_limit_is_refused,
    sem_fences_strictly_increase,
    sem_cancelled_wait_lets_the_next_through,
    sem_drop_releases_in_the_background,
    sem_watchdog_keeps_a_lease_past_its_ttl,
    sem_force_release_hands_on_and_signals_lost,
    rw_readers_share_and_a_writer_excludes,
    rw_writers_are_not_starved,
    a_lock_and_a_semaphore_of_one_name,
    meta_is_stored_with_the_holder_and_carried_by_a_waiter,
    meta_limits_are_checked,
    sem_leases_expire_each_at_their_own_time,
    sem_no_key_is_left_behind_after_expiry_or_a_timed_out_wait,
);

#[tokio::test]
async fn lua_survives_script_flush() {
    let (s, c) = setup(Backend::Lua).await;
    let mut con = s.as_ref().unwrap().connection();
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut con).unwrap();
    let g = c.lock("flush", &opts(5_000)).await.unwrap();
    assert!(g.release().await.unwrap());
}

#[tokio::test]
async fn explicit_module_fails_fast_without_module() {
    let s = RedisServer::builder().without_module().start();
    let err = Client::builder(s.url())
        .backend(Backend::Module)
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::BackendUnavailable(m) if m.contains("module")),
        "{err}"
    );
    let auto = Client::builder(s.url()).build().await.unwrap();
    assert_eq!(auto.backend_kind(), Backend::Lua);
}

/// `build()` asks the server once whether it has the module: a second
/// answer could differ (a failover in between) and was trusted to match.
#[tokio::test]
async fn auto_asks_for_the_module_once() {
    let s = RedisServer::start();
    let calls = || {
        baton_harness::replication::info_field(&s, "commandstats", "cmdstat_command|info")
            .and_then(|v| {
                v.split(',')
                    .next()?
                    .strip_prefix("calls=")?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
    };
    let before = calls();
    let c = Client::builder(s.url()).build().await.unwrap();
    assert_eq!(c.backend_kind(), Backend::Module);
    assert_eq!(calls() - before, 1, "COMMAND INFO sent once");
}

#[tokio::test]
async fn lost_fires_within_the_ttl_when_the_server_dies() {
    for kind in [Backend::Lua, Backend::Module] {
        let (s, c) = setup(kind).await;
        let mut s = s.unwrap();
        let g = c.lock("dead", &opts(1_000)).await.unwrap();
        let killed = Instant::now();
        s.kill();
        // Within the ttl, plus a quarter of it for timers on a loaded
        // machine: a watchdog that waited for the next failed extend past
        // the ttl would still fail this.
        let limit = Duration::from_millis(1_250);
        timeout(limit, g.lost()).await.expect("lost within the ttl");
        assert!(killed.elapsed() <= limit, "{kind:?}");
    }
}

#[tokio::test]
async fn memory_durable_fails_without_replicas() {
    let c = Client::memory();
    let err = c
        .lock("dur", &opts(1_000).durable(1, Duration::from_millis(10)))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::NotReplicated {
            acked: 0,
            wanted: 1,
            ..
        }
    ));
    assert!(
        !c.info("dur").await.unwrap().held,
        "released after the failed durability check"
    );
}

#[tokio::test]
async fn flush_returns_after_a_lua_wait() {
    // The pub/sub reader a Lua wait starts lives as long as its connection:
    // `flush` must not wait for it.
    let (_s, c) = setup(Backend::Lua).await;
    let holder = c.lock("fl", &opts(10_000)).await.unwrap();
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move {
            c.lock("fl", &opts(10_000).wait(Duration::from_secs(5)))
                .await
                .map(|g| g.fence())
        })
    };
    eventually(Duration::from_secs(5), "the waiter queued", || async {
        c.info("fl").await.unwrap().waiters == 1
    })
    .await;
    assert!(holder.release().await.unwrap());
    assert!(waiter.await.unwrap().is_ok(), "the waiter got the lock");
    timeout(Duration::from_secs(5), c.flush())
        .await
        .expect("flush returns after a Lua wait");
    // A timed-out wait too, and flush still returns.
    let _g = c.lock("fl2", &opts(10_000)).await.unwrap();
    let err = c
        .lock("fl2", &opts(10_000).wait(Duration::from_millis(50)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotAcquired { .. }), "{err}");
    timeout(Duration::from_secs(5), c.flush())
        .await
        .expect("flush returns after a timed-out Lua wait");
}

#[tokio::test]
async fn module_waits_reuse_their_connections() {
    let (s, c) = setup(Backend::Module).await;
    let mut con = s.as_ref().unwrap().connection();
    let clients = |con: &mut redis::Connection| -> usize {
        let list: String = redis::cmd("CLIENT").arg("LIST").query(con).unwrap();
        list.lines().count()
    };
    // Warm up: the pool, and one wait connection (a wait that times out).
    let _g = c.lock("w", &opts(10_000)).await.unwrap();
    for _ in 0..2 {
        let err = c
            .lock("w", &opts(10_000).wait(Duration::from_millis(20)))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotAcquired { .. }), "{err}");
    }
    let before = clients(&mut con);
    for _ in 0..10 {
        let err = c
            .lock("w", &opts(10_000).wait(Duration::from_millis(20)))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotAcquired { .. }), "{err}");
    }
    assert_eq!(
        clients(&mut con),
        before,
        "timed-out waits reuse one connection"
    );
    // A cancelled wait still leaves the queue, and its connection is killed.
    let long = opts(10_000).wait(Duration::from_secs(30));
    let waiting = c.lock("w", &long);
    assert!(timeout(Duration::from_millis(300), waiting).await.is_err());
    eventually(Duration::from_secs(5), "cancelled waiter left", || async {
        c.info("w").await.unwrap().waiters == 0
    })
    .await;
    eventually(Duration::from_secs(5), "its connection closed", || {
        let n = clients(&mut con);
        async move { n < before }
    })
    .await;
    // The next wait opens a new connection and works.
    let err = c
        .lock("w", &opts(10_000).wait(Duration::from_millis(20)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotAcquired { .. }), "{err}");
}

#[tokio::test]
async fn module_wait_survives_a_dead_cached_connection() {
    let (s, c) = setup(Backend::Module).await;
    let mut con = s.as_ref().unwrap().connection();
    let g = c.lock("d", &opts(10_000)).await.unwrap();
    let err = c
        .lock("d", &opts(10_000).wait(Duration::from_millis(20)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotAcquired { .. }), "{err}");
    // Kill every other connection: the cached wait connection dies idle.
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("SKIPME")
        .arg("yes")
        .query(&mut con)
        .unwrap();
    // The pooled connections died too: a release that fails on one leaves
    // it to the guard's drop, which tries again in the background.
    let _ = g.release().await;
    eventually(Duration::from_secs(5), "released", || async {
        c.info("d").await.is_ok_and(|i| !i.held)
    })
    .await;
    let g = c
        .lock("d", &opts(10_000).wait(Duration::from_secs(2)))
        .await
        .expect("a wait on a dead cached connection retries on a new one");
    assert!(g.release().await.unwrap());
}

/// A cached wait connection that died in a server restart is withdrawn with
/// a `CLIENT KILL` of the id it had before; ids restart from 1, so that id
/// may now be an unrelated client's. The kill must miss it.
#[tokio::test]
async fn module_withdraw_never_kills_a_client_that_reused_the_id() {
    let (s, c) = setup(Backend::Module).await;
    let mut s = s.unwrap();
    // Push ids up, so that the restarted server reaches the wait
    // connection's id only through the connections opened below.
    for _ in 0..30 {
        drop(s.connection());
    }
    let _g = c.lock("k", &opts(60_000)).await.unwrap();
    let err = c
        .lock("k", &opts(10_000).wait(Duration::from_millis(20)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotAcquired { .. }), "{err}");
    c.info("k").await.unwrap(); // the pool's last command is LOCK.INFO now
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut s.connection())
        .unwrap();
    let wait_id: i64 = list
        .lines()
        .find(|l| l.contains(" cmd=lock.acquire "))
        .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .expect("the cached wait connection in CLIENT LIST")
        .parse()
        .unwrap();
    s.restart();
    let mut victim = loop {
        let mut con = s.connection();
        let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut con).unwrap();
        assert!(id <= wait_id, "id {wait_id} skipped (now {id})");
        if id == wait_id {
            break con;
        }
    };
    // Reuses the dead cached connection, finds it dead and withdraws it.
    let _ = c
        .lock("k", &opts(10_000).wait(Duration::from_millis(200)))
        .await;
    let pong: redis::RedisResult<String> = redis::cmd("PING").query(&mut victim);
    assert_eq!(
        pong.ok().as_deref(),
        Some("PONG"),
        "the unrelated client with id {wait_id} survived"
    );
}

/// Two extends of one guard in flight at once: the server applies the one
/// that arrives last, so the guard must never count on more than that one
/// gave. Here a long extend is in flight on a frozen server when a short
/// one is started (and cancelled) behind it.
#[tokio::test]
async fn overlapping_extends_never_overstate_validity() {
    for kind in [Backend::Lua, Backend::Module] {
        let (s, c) = setup(kind).await;
        let s = s.unwrap();
        let g = Arc::new(c.lock("x", &opts(5_000).watchdog(false)).await.unwrap());
        s.freeze();
        let long = {
            let g = g.clone();
            tokio::spawn(async move { g.extend(Duration::from_secs(10)).await })
        };
        // Let the long extend go out first (ordering only: the assertion
        // below holds whichever goes first).
        tokio::time::sleep(Duration::from_millis(50)).await;
        let short = timeout(
            Duration::from_millis(150),
            g.extend(Duration::from_millis(300)),
        )
        .await;
        assert!(short.is_err(), "{kind:?}: the server is frozen");
        s.resume();
        let long = long.await.unwrap();
        let until = Instant::now() + Duration::from_millis(1_000);
        while Instant::now() < until {
            let held = c.info("x").await.unwrap().held;
            assert!(
                held || g.is_lost(),
                "{kind:?}: the server freed the lock while the guard counts it held (long extend: {long:?})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(g);
    }
}

/// A try without a wait that is cancelled after its command went out (the
/// server is frozen meanwhile) leaves no lock or lease behind: the grant
/// that the server makes once it runs again is released in the background,
/// long before its ttl.
#[tokio::test]
async fn a_cancelled_try_leaves_no_lock_behind() {
    for kind in [Backend::Module, Backend::Lua] {
        let (s, c) = setup(kind).await;
        let s = s.unwrap();
        let sem = c.semaphore("cs", 2);
        s.freeze();
        let long = opts(60_000);
        let lock = timeout(Duration::from_millis(200), c.try_lock("ct", &long)).await;
        let lease = timeout(Duration::from_millis(200), sem.try_acquire(2, &long)).await;
        assert!(
            lock.is_err() && lease.is_err(),
            "{kind:?}: the server is frozen"
        );
        s.resume();
        let mut con = s.connection();
        // Evidence that both ACQUIREs ran: the module counted the grants,
        // the Lua scripts wrote the counter keys.
        let ran = |con: &mut redis::Connection| match kind {
            Backend::Module => {
                let sem_grants =
                    baton_harness::replication::info_field(&s, "baton", "baton_sem_grants");
                baton_harness::lock::stats(con)["grants"] >= 1 && sem_grants.as_deref() == Some("1")
            }
            _ => {
                baton_harness::lock::exists(con, b"baton:{ct}:c")
                    && baton_harness::lock::exists(con, b"baton:sem:{cs}:c")
            }
        };
        baton_harness::assert_eventually(Duration::from_secs(5), "the ACQUIREs ran", || {
            ran(&mut con)
        });
        timeout(Duration::from_secs(5), c.flush()).await.unwrap();
        assert!(
            !c.info("ct").await.unwrap().held,
            "{kind:?}: the cancelled try's grant is released"
        );
        assert_eq!(
            sem.info().await.unwrap().used,
            0,
            "{kind:?}: the cancelled try's lease is released"
        );
    }
}

/// A semaphore waiter whose key is deleted under it is answered
/// `UNBLOCKED` by the module and holds nothing; the client waits again
/// with the time left and, the key being free now, is granted.
#[tokio::test]
async fn module_sem_wait_retries_after_its_key_is_deleted() {
    let (s, c) = setup(Backend::Module).await;
    let s = s.unwrap();
    let sem = c.semaphore("del", 1);
    let holder = sem.acquire(1, &opts(60_000)).await.unwrap();
    let waiter = spawn_acquire(&sem, 1);
    queued(&c, "del", 1).await;
    let _: i64 = redis::cmd("DEL")
        .arg("del")
        .query(&mut s.connection())
        .unwrap();
    let g = granted(waiter).await;
    assert!(g.fence() > holder.fence());
    assert_eq!(sem.info().await.unwrap().holders, 1);
    assert!(
        !holder.extend(Duration::from_secs(1)).await.unwrap(),
        "its lease went with the key"
    );
    assert!(holder.is_lost());
}

/// A primary that becomes a replica answers its blocked waiters
/// `UNBLOCKED` (Redis' own reply on a role change; the module gives the
/// same code when a lock's key goes away under its waiters). The client
/// retries the wait with the time left: on what is now a replica that is
/// refused, so the call ends at once with that error (`READONLY`, or
/// `LOADING` if the retry meets the replica's first sync), not after the
/// wait and without looping.
#[tokio::test]
async fn module_wait_unblocked_by_a_role_change_ends_at_once() {
    let (s, c) = setup(Backend::Module).await;
    let s = s.unwrap();
    let other = RedisServer::start();
    let _g = c.lock("rc", &opts(60_000)).await.unwrap();
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move {
            c.lock("rc", &opts(10_000).wait(Duration::from_secs(10)))
                .await
        })
    };
    eventually(Duration::from_secs(5), "waiter queued", || async {
        c.info("rc").await.unwrap().waiters == 1
    })
    .await;
    let started = Instant::now();
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(other.port())
        .query(&mut s.connection())
        .unwrap();
    let err = timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the wait ends at once")
        .unwrap()
        .unwrap_err();
    let code = match &err {
        Error::Redis(e) => e.code(),
        _ => None,
    };
    assert!(
        matches!(code, Some("READONLY" | "LOADING")),
        "the retry's refusal, not UNBLOCKED: {err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// The Lua backend's counter key `baton:{k}:c` is an ordinary key: DEL,
/// FLUSHALL or eviction can take it. Fences are floored by the server's
/// clock in microseconds, so the next fence still exceeds every earlier one.
#[tokio::test]
async fn lua_fences_survive_a_lost_counter_key() {
    let (s, c) = setup(Backend::Lua).await;
    let mut con = s.as_ref().unwrap().connection();
    let first = c.lock("lc", &opts(10_000)).await.unwrap();
    let first_fence = first.fence();
    assert!(first.release().await.unwrap());
    let _: i64 = redis::cmd("DEL")
        .arg("baton:{lc}:c")
        .query(&mut con)
        .unwrap();
    let second = c.lock("lc", &opts(10_000)).await.unwrap();
    assert!(second.fence() > first_fence, "after DEL of the counter");
    let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    let third = c.lock("lc", &opts(10_000)).await.unwrap();
    assert!(third.fence() > second.fence(), "after FLUSHALL");
}

/// Arrival numbers live in the same counter key: a waiter that queues after
/// it was lost still queues behind those already waiting.
#[tokio::test]
async fn lua_fifo_survives_a_lost_counter_key() {
    let (s, c) = setup(Backend::Lua).await;
    let mut con = s.as_ref().unwrap().connection();
    let holder = c.lock("lq", &opts(10_000)).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..4u64 {
        if i == 3 {
            let _: i64 = redis::cmd("DEL")
                .arg("baton:{lq}:c")
                .query(&mut con)
                .unwrap();
        }
        let (c2, order) = (c.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let g = c2
                .lock("lq", &opts(10_000).wait(Duration::from_secs(20)))
                .await
                .unwrap();
            order.lock().unwrap().push(i);
            assert!(g.release().await.unwrap());
        }));
        eventually(Duration::from_secs(5), "waiter queued", || async {
            c.info("lq").await.unwrap().waiters == i + 1
        })
        .await;
    }
    assert!(holder.release().await.unwrap());
    for t in tasks {
        timeout(Duration::from_secs(20), t).await.unwrap().unwrap();
    }
    assert_eq!(
        *order.lock().unwrap(),
        [0, 1, 2, 3],
        "granted in arrival order"
    );
}

/// A durable acquire's EXTEND + WAIT on a primary with one replica, for a
/// lock and for a lease: one replica acknowledges, two cannot (the lock or
/// lease is released again).
#[tokio::test]
async fn durable_acquire_waits_for_the_replica() {
    for kind in [Backend::Module, Backend::Lua] {
        let primary = match kind {
            Backend::Module => RedisServer::start(),
            _ => RedisServer::builder().without_module().start(),
        };
        let replica = match kind {
            Backend::Module => RedisServer::builder(),
            _ => RedisServer::builder().without_module(),
        }
        .replica_of(&primary)
        .start();
        baton_harness::wait_for_sync(&primary, &replica);
        let c = Client::builder(primary.url())
            .backend(kind)
            .build()
            .await
            .unwrap();
        let one = opts(10_000).durable(1, Duration::from_secs(5));
        let two = opts(10_000).durable(2, Duration::from_millis(100));
        let g = c.lock("dr", &one.clone()).await.unwrap();
        assert!(!g.is_lost(), "{kind:?}");
        assert!(g.release().await.unwrap());
        let sem = c.semaphore("ds", 2);
        let lease = sem.acquire(2, &one).await.unwrap();
        assert!(!lease.is_lost(), "{kind:?}");
        assert!(lease.release().await.unwrap());
        let lock_err = c.lock("dr", &two.clone()).await.unwrap_err();
        let lease_err = sem.acquire(1, &two).await.unwrap_err();
        for err in [lock_err, lease_err] {
            assert!(
                matches!(
                    err,
                    Error::NotReplicated {
                        acked: 1,
                        wanted: 2,
                        ..
                    }
                ),
                "{kind:?}: {err}"
            );
        }
        assert!(!c.info("dr").await.unwrap().held, "{kind:?}: released");
        assert_eq!(sem.info().await.unwrap().used, 0, "{kind:?}: released");
    }
}

// ---- The Lua semaphore scripts on the wire (SPEC §6 "Lua backend: the
// same commands as scripts"): what the client never sends, it checks
// itself first (bounds) or never asks (a retry by one token), so these
// call the scripts directly. ----

/// `lua/sem/<name>.lua` as the client sends it: base, prelude, own file.
fn sem_script(name: &str, own: &str) -> String {
    format!(
        "{}\n{}\n-- sem/{name}.lua\n{own}",
        include_str!("../../lua/base.lua"),
        include_str!("../../lua/sem/common.lua")
    )
}

/// `EVAL` of the semaphore acquire script on `key` with `args`.
fn lua_sem_acquire(
    con: &mut redis::Connection,
    key: &str,
    args: &[&str],
) -> redis::RedisResult<Option<i64>> {
    let script = sem_script("acquire", include_str!("../../lua/sem/acquire.lua"));
    let s = format!("baton:sem:{{{key}}}");
    let keys = [
        s.clone(),
        format!("{s}:e"),
        format!("{s}:q"),
        format!("{s}:w"),
        format!("{s}:c"),
    ];
    redis::cmd("EVAL")
        .arg(script)
        .arg(5)
        .arg(&keys[..])
        .arg(args)
        .query(con)
}

fn lua_err(r: redis::RedisResult<Option<i64>>) -> String {
    match r {
        Err(e) => baton_harness::err_text(&e),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// A retry by the token that holds a lease renews it (a later expiry) and
/// replies its fence, permits unchanged; another permit count and another
/// limit are errors that say both numbers; the bounds of LIMIT and PERMITS
/// are those of the module; nothing is changed by an error.
#[tokio::test]
async fn lua_sem_retry_renews_and_errors_name_both_numbers() {
    let s = RedisServer::builder().without_module().start();
    let mut con = s.connection();
    let expiry = |con: &mut redis::Connection| -> f64 {
        redis::cmd("ZSCORE")
            .arg("baton:sem:{k}:e")
            .arg("a")
            .query(con)
            .unwrap()
    };
    let f = lua_sem_acquire(&mut con, "k", &["a", "1000", "LIMIT", "3", "PERMITS", "2"])
        .unwrap()
        .expect("granted");
    let first = expiry(&mut con);
    let retry = lua_sem_acquire(&mut con, "k", &["a", "60000", "LIMIT", "3", "PERMITS", "2"]);
    assert_eq!(retry.unwrap(), Some(f), "same fence");
    assert!(
        expiry(&mut con) >= first + 50_000.0,
        "renewed to now + 60 s"
    );
    let used: i64 = redis::cmd("HGET")
        .arg("baton:sem:{k}")
        .arg("used")
        .query(&mut con)
        .unwrap();
    assert_eq!(used, 2, "permits unchanged");
    let before: std::collections::BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg("baton:sem:{k}")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        lua_err(lua_sem_acquire(
            &mut con,
            "k",
            &["a", "1000", "LIMIT", "3", "PERMITS", "1"]
        )),
        "ERR the token holds 2 permits, not 1"
    );
    assert_eq!(
        lua_err(lua_sem_acquire(&mut con, "k", &["b", "1000", "LIMIT", "4"])),
        "ERR the semaphore's limit is 3, not 4"
    );
    let limit_err = "ERR LIMIT must be an integer between 1 and 2147483647";
    let permits_err = "ERR PERMITS must be an integer between 1 and LIMIT";
    for (args, want) in [
        (&["b", "1000", "LIMIT", "0"][..], limit_err),
        (&["b", "1000", "LIMIT", "2147483648"], limit_err),
        (&["b", "1000"], limit_err),
        (&["b", "1000", "LIMIT", "3", "PERMITS", "0"], permits_err),
        (&["b", "1000", "LIMIT", "3", "PERMITS", "4"], permits_err),
        (
            &["b", "0", "LIMIT", "3"],
            "ERR ttl-ms must be an integer between 1 and 2147483647",
        ),
        (
            &["b", "1000", "LIMIT", "3", "NX", "1"],
            "ERR unknown option 'NX'",
        ),
    ] {
        assert_eq!(
            lua_err(lua_sem_acquire(&mut con, "k", args)),
            want,
            "{args:?}"
        );
    }
    let after: std::collections::BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg("baton:sem:{k}")
        .query(&mut con)
        .unwrap();
    assert_eq!(before, after, "nothing changed");
    let max = lua_sem_acquire(
        &mut con,
        "big",
        &["w", "1000", "LIMIT", "2147483647", "PERMITS", "2147483647"],
    );
    assert!(max.unwrap().is_some(), "p = n = 2^31-1");
    // PERMITS defaults to 1; SEM.FORCERELEASE with a token removes that
    // token's lease only, and one without a lease removes nothing.
    let g = lua_sem_acquire(&mut con, "k", &["b", "60000", "LIMIT", "3"]).unwrap();
    assert!(g.is_some_and(|g| g > f));
    let used: i64 = redis::cmd("HGET")
        .arg("baton:sem:{k}")
        .arg("used")
        .query(&mut con)
        .unwrap();
    assert_eq!(used, 3, "a's 2 and b's 1");
    let force = sem_script(
        "forcerelease",
        include_str!("../../lua/sem/forcerelease.lua"),
    );
    let keys = [
        "baton:sem:{k}",
        "baton:sem:{k}:e",
        "baton:sem:{k}:q",
        "baton:sem:{k}:w",
        "baton:sem:{k}:c",
    ];
    let force_release = |con: &mut redis::Connection, token: Option<&str>| -> i64 {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(&force).arg(5).arg(&keys[..]);
        if let Some(t) = token {
            cmd.arg(t);
        }
        cmd.query(con).unwrap()
    };
    assert_eq!(force_release(&mut con, Some("nobody")), 0);
    assert_eq!(force_release(&mut con, Some("b")), 1);
    let left: Vec<String> = redis::cmd("ZRANGE")
        .arg("baton:sem:{k}:e")
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_eq!(left, ["a"], "only b's lease went");
    lua_sem_acquire(&mut con, "k", &["c", "60000", "LIMIT", "3"])
        .unwrap()
        .unwrap();
    assert_eq!(force_release(&mut con, None), 2, "every lease");
}

/// The Lua counterpart of a waiter whose connection closes: a queued
/// request whose client never comes back leaves the queue when its queue
/// lease runs out and is never granted; the request behind it that fits
/// is granted then, by whatever script runs next.
#[tokio::test]
async fn lua_sem_an_abandoned_request_leaves_the_queue_at_its_lease() {
    let s = RedisServer::builder().without_module().start();
    let mut con = s.connection();
    lua_sem_acquire(&mut con, "k", &["holder", "30000", "LIMIT", "2"])
        .unwrap()
        .unwrap();
    let queued = |r: redis::RedisResult<Option<i64>>| matches!(r, Ok(Some(n)) if n < 0);
    let ghost = lua_sem_acquire(
        &mut con,
        "k",
        &[
            "ghost", "30000", "LIMIT", "2", "PERMITS", "2", "WAIT", "20000", "LEASE", "300",
        ],
    );
    assert!(queued(ghost), "the ghost queues");
    let next = [
        "next", "30000", "LIMIT", "2", "WAIT", "20000", "LEASE", "20000",
    ];
    assert!(
        queued(lua_sem_acquire(&mut con, "k", &next)),
        "FIFO: next waits behind it"
    );
    assert_eq!(
        lua_err(lua_sem_acquire(
            &mut con,
            "k",
            &["next", "30000", "LIMIT", "2", "WAIT", "1000"]
        )),
        "ERR token is already waiting for this lock",
        "a token waits at most once"
    );
    let started = Instant::now();
    let granted = loop {
        match lua_sem_acquire(&mut con, "k", &next).unwrap() {
            Some(f) if f > 0 => break f,
            _ => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "next was never granted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "not before the ghost's lease ran out"
    );
    assert!(granted > 0);
    let ghost_lease: Option<String> = redis::cmd("HGET")
        .arg("baton:sem:{k}")
        .arg("l:ghost")
        .query(&mut con)
        .unwrap();
    assert_eq!(ghost_lease, None, "the ghost holds nothing");
    let in_queue: Option<f64> = redis::cmd("ZSCORE")
        .arg("baton:sem:{k}:q")
        .arg("ghost")
        .query(&mut con)
        .unwrap();
    assert_eq!(in_queue, None, "and is no longer queued");
}

/// The Lua lock script's `META` (SPEC §7): 0 to 1024 bytes (1025 refused,
/// nothing changed), a renewal with `META` replaces the value and one
/// without keeps it; the client checks the length before sending, so
/// this calls the script directly.
#[tokio::test]
async fn lua_meta_bounds_and_renewal_on_the_wire() {
    let s = RedisServer::builder().without_module().start();
    let mut con = s.connection();
    let script = format!(
        "{}\n{}\n-- acquire.lua\n{}",
        include_str!("../../lua/base.lua"),
        include_str!("../../lua/common.lua"),
        include_str!("../../lua/acquire.lua")
    );
    let keys = ["baton:{m}", "baton:{m}:q", "baton:{m}:w", "baton:{m}:c"];
    let acquire =
        |con: &mut redis::Connection, args: &[&[u8]]| -> redis::RedisResult<Option<i64>> {
            redis::cmd("EVAL")
                .arg(&script)
                .arg(4)
                .arg(&keys[..])
                .arg(args)
                .query(con)
        };
    let meta = |con: &mut redis::Connection| -> Option<Vec<u8>> {
        redis::cmd("HGET")
            .arg("baton:{m}")
            .arg("meta")
            .query(con)
            .unwrap()
    };
    let long = vec![b'x'; 1025];
    let e = acquire(&mut con, &[b"t", b"10000", b"META", &long]).unwrap_err();
    assert_eq!(
        baton_harness::err_text(&e),
        "ERR META must be 0 to 1024 bytes"
    );
    let exists: i64 = redis::cmd("EXISTS")
        .arg("baton:{m}")
        .query(&mut con)
        .unwrap();
    assert_eq!(exists, 0, "nothing was granted");
    let max = vec![b'y'; 1024];
    let f = acquire(&mut con, &[b"t", b"10000", b"META", &max])
        .unwrap()
        .unwrap();
    assert_eq!(meta(&mut con), Some(max));
    assert_eq!(
        acquire(&mut con, &[b"t", b"10000", b"META", b"two"]).unwrap(),
        Some(f)
    );
    assert_eq!(meta(&mut con).as_deref(), Some(&b"two"[..]), "replaced");
    assert_eq!(acquire(&mut con, &[b"t", b"10000"]).unwrap(), Some(f));
    assert_eq!(meta(&mut con).as_deref(), Some(&b"two"[..]), "kept");
    let e = acquire(&mut con, &[b"t", b"10000", b"META", &long]).unwrap_err();
    assert_eq!(
        baton_harness::err_text(&e),
        "ERR META must be 0 to 1024 bytes"
    );
    assert_eq!(
        meta(&mut con).as_deref(),
        Some(&b"two"[..]),
        "a refused renewal changes nothing"
    );
}
