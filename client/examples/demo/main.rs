//! The demo of `cargo xtask demo`: a short transcript of `baton_client` at
//! work against a Redis server with the baton module loaded. A grant with
//! its fence, a refusal, five waiters served in FIFO order, an expiry that
//! hands the lock on by itself, the watchdog keeping a lock past its ttl,
//! the lost signal after a force release, then (`coord`) a semaphore of 2
//! permits shared by 4 workers and an election whose leader process is
//! killed. Each claim is also checked, so the demo fails loudly (exit
//! status 1) if the module or the client misbehaves.
//!
//! ```text
//! cargo run -p baton-client --example demo -- redis://127.0.0.1:6379
//! ```
//!
//! It uses keys `demo:*` on that server and leaves none held. Every
//! participant is a `Client` of its own (its own connections), as separate
//! processes would be; waiters are tokio tasks that report to the main task
//! over a channel, which alone prints. The election's first leader is a
//! real separate process: this example run again as `demo --leader URL
//! NAME VALUE`, then SIGKILLed.

mod coord;

use anyhow::{bail, ensure, Context, Result};
use baton_client::{Backend, Client, LockGuard, LockOptions};
use std::future::Future;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const USAGE: &str = "usage: demo [REDIS_URL]   (default redis://127.0.0.1:6379; \
the server needs the baton module loaded)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        // The election section's leader process (see `coord`).
        Some("--leader") => coord::leader_process(&args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        None => run("redis://127.0.0.1:6379"),
        Some(url) if args.len() == 1 && !url.starts_with('-') => run(url),
        Some(_) => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\ndemo: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(url: &str) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(transcript(url))
}

async fn transcript(url: &str) -> Result<()> {
    grant_and_refusal(url).await?;
    fifo_queue(url).await?;
    expiry_hand_off(url).await?;
    watchdog(url).await?;
    lost_signal(url).await?;
    coord::semaphore(url).await?;
    coord::election(url).await?;

    let s = connect(url).await?.stats().await?;
    println!(
        "\nLOCK.STATS: grants {}, releases {}, extends {}, expirations {}, force releases {}",
        s.grants, s.releases, s.extends, s.expirations, s.force_releases
    );
    Ok(())
}

/// A client of its own on the module backend.
pub(crate) async fn connect(url: &str) -> Result<Client> {
    Client::builder(url)
        .backend(Backend::Module)
        .build()
        .await
        .with_context(|| format!("connect baton_client to {url}"))
}

pub(crate) fn section(title: &str) {
    println!("\n--- {title}");
}

/// `who> call`, like a prompt.
pub(crate) fn call(who: &str, what: &str) {
    println!("{who:>8}> {what}");
}

/// A result (or state) line under its call, with a note.
pub(crate) fn reply_line(reply: &str, note: &str) {
    let line = format!("{:>10}{reply:<22} {note}", "");
    println!("{}", line.trim_end());
}

pub(crate) fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Polls `check` every 5 ms for up to 2 s.
pub(crate) async fn wait_until<F, Fut>(mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bail!("timed out after 2 s")
}

async fn waiters(client: &Client, key: &str) -> Result<u64> {
    Ok(client.info(key).await?.waiters)
}

async fn grant_and_refusal(url: &str) -> Result<()> {
    section("1. A grant carries a fence; a second client is refused");
    let key = "demo:report";
    let alice = connect(url).await?;
    let bob = connect(url).await?;
    let opts = LockOptions::new().ttl(Duration::from_secs(10));

    call("alice", &format!("try_lock({key:?}, ttl 10 s)"));
    let guard = alice
        .try_lock(key, &opts.clone())
        .await?
        .context("alice should have been granted a free lock")?;
    reply_line(
        &format!("granted, fence {}", guard.fence()),
        "the fence goes with every write alice makes",
    );

    call("bob", &format!("try_lock({key:?}, ttl 10 s)"));
    let refused = bob.try_lock(key, &opts).await?;
    ensure!(refused.is_none(), "bob should have been refused");
    reply_line("None", "refused: alice holds it");

    call("alice", &format!("info({key:?})"));
    let info = alice.info(key).await?;
    ensure!(
        info.held && info.fence == guard.fence() && info.waiters == 0,
        "LOCK.INFO disagrees with the grant: {info:?}"
    );
    reply_line(
        &format!(
            "held, fence {}, pttl {} ms, waiters {}",
            info.fence,
            info.pttl.unwrap_or(0),
            info.waiters
        ),
        "",
    );

    call("alice", "guard.release()");
    ensure!(guard.release().await?, "alice's release was refused");
    reply_line("true", "released");
    Ok(())
}

async fn fifo_queue(url: &str) -> Result<()> {
    section("2. Five waiters are served in the order they came");
    let key = "demo:queue";
    let holder = connect(url).await?;
    call("holder", &format!("try_lock({key:?}, ttl 30 s)"));
    let held = holder
        .try_lock(key, &LockOptions::new().ttl(Duration::from_secs(30)))
        .await?
        .context("the holder should have been granted a free lock")?;
    let first = held.fence();
    reply_line(&format!("granted, fence {first}"), "");

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for n in 1..=5u64 {
        let client = connect(url).await?;
        let tx = tx.clone();
        call(&format!("w{n}"), &format!("lock({key:?}, wait 5 s)"));
        tasks.push(tokio::spawn(async move {
            let opts = LockOptions::new()
                .ttl(Duration::from_secs(30))
                .wait(Duration::from_secs(5));
            let guard = client.lock(key, &opts).await;
            let guard = match guard {
                Ok(guard) => guard,
                Err(e) => {
                    let _ = tx.send((n, Err(e)));
                    return Ok(());
                }
            };
            // Report before releasing: the next hand-off cannot happen
            // until we release, so the channel sees grants in order.
            let _ = tx.send((n, Ok(guard.fence())));
            tokio::time::sleep(Duration::from_millis(50)).await;
            guard.release().await.map(|_| ())
        }));
        // Start the next waiter only once this one is queued.
        wait_until(|| async { Ok(waiters(&holder, key).await? == n) })
            .await
            .with_context(|| format!("w{n} never showed up in info().waiters"))?;
        reply_line("...", &format!("queued: info().waiters = {n}"));
    }
    drop(tx);

    call("holder", "guard.release()");
    ensure!(held.release().await?, "the holder's release was refused");
    reply_line("true", "hands the lock to w1 at once");

    let mut last = first;
    for expected in 1..=5 {
        let (n, fence) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .ok()
            .flatten()
            .context("a waiter was never served")?;
        let fence = fence.with_context(|| format!("w{n} failed"))?;
        println!(
            "{:>8}  granted, fence {fence} (holds it 50 ms, then releases)",
            format!("w{n}")
        );
        ensure!(
            n == expected,
            "w{n} was served before w{expected}: not FIFO"
        );
        ensure!(
            fence > last,
            "fence {fence} is not above the previous fence {last}"
        );
        last = fence;
    }
    for t in tasks {
        t.await.context("a waiter task panicked")??;
    }
    println!("{:>8}  order w1..w5, fences strictly increasing", "ok");
    Ok(())
}

async fn expiry_hand_off(url: &str) -> Result<()> {
    section("3. A holder that never releases: expiry hands the lock on");
    let key = "demo:expiry";
    let crashed = connect(url).await?;
    let waiter = connect(url).await?;
    let ttl = Duration::from_millis(300);

    call(
        "crashed",
        &format!("try_lock({key:?}, ttl 300 ms, watchdog off)"),
    );
    let start = Instant::now();
    let stale = crashed
        .try_lock(key, &LockOptions::new().ttl(ttl).watchdog(false))
        .await?
        .context("the lock should have been free")?;
    reply_line(
        &format!("granted, fence {}", stale.fence()),
        "and then it hangs: no extend, no release",
    );

    call("waiter", &format!("lock({key:?}, wait 5 s)"));
    let task = tokio::spawn(async move {
        let opts = LockOptions::new()
            .ttl(Duration::from_secs(30))
            .wait(Duration::from_secs(5));
        waiter.lock(key, &opts).await
    });
    wait_until(|| async { Ok(waiters(&crashed, key).await? == 1) })
        .await
        .context("the waiter never showed up in info().waiters")?;
    reply_line("...", "queued; from here on no command is sent");

    let guard = task.await.context("the waiter task panicked")??;
    let after = start.elapsed();
    println!(
        "{:>8}  granted, fence {}, {} ms after the crashed holder's grant: the expiry handed it on",
        "waiter",
        guard.fence(),
        ms(after)
    );
    ensure!(
        after >= ttl - Duration::from_millis(10),
        "granted after {after:?}, before the ttl of {ttl:?} ran out"
    );
    ensure!(
        guard.fence() > stale.fence(),
        "the new fence is not above the old one"
    );

    // The stale guard knows: its lost signal fired at the ttl.
    tokio::time::timeout(Duration::from_secs(1), stale.lost())
        .await
        .context("the crashed holder's lost signal never fired")?;
    call("crashed", "guard.release()   (wakes up, too late)");
    ensure!(
        !stale.release().await?,
        "the crashed holder's late release was accepted"
    );
    reply_line(
        "false",
        "refused: its token no longer holds the lock (lost() had fired at the ttl)",
    );
    ensure!(guard.release().await?, "the waiter's release was refused");
    Ok(())
}

async fn watchdog(url: &str) -> Result<()> {
    section("4. The watchdog keeps a lock past its ttl");
    let key = "demo:watchdog";
    let owner = connect(url).await?;
    let other = connect(url).await?;
    let ttl = Duration::from_millis(300);
    let extends_before = owner.stats().await?.extends;

    call(
        "owner",
        &format!("lock({key:?}, ttl 300 ms)   (watchdog on)"),
    );
    let guard = owner.lock(key, &LockOptions::new().ttl(ttl)).await?;
    reply_line(&format!("granted, fence {}", guard.fence()), "");
    let hold = Duration::from_millis(1500);
    println!(
        "{:>8}  ... works for {} ms (5 ttls) without a single call",
        "owner",
        ms(hold)
    );
    tokio::time::sleep(hold).await;

    call("other", &format!("info({key:?})"));
    let info = other.info(key).await?;
    ensure!(
        info.held && info.fence == guard.fence(),
        "the lock was not kept: {info:?}"
    );
    ensure!(!guard.is_lost(), "the lost signal fired");
    let extends = owner.stats().await?.extends - extends_before;
    ensure!(
        extends >= 3,
        "only {extends} extends in {hold:?} with a ttl of {ttl:?}"
    );
    reply_line(
        &format!(
            "held, fence {}, pttl {} ms",
            info.fence,
            info.pttl.unwrap_or(0)
        ),
        &format!("same fence; the watchdog sent {extends} extends (every ttl/3)"),
    );
    call("other", &format!("try_lock({key:?}, ttl 300 ms)"));
    ensure!(
        other
            .try_lock(key, &LockOptions::new().ttl(ttl))
            .await?
            .is_none(),
        "another client took a lock the watchdog keeps"
    );
    reply_line("None", "still the owner's");
    ensure!(guard.release().await?, "the owner's release was refused");
    Ok(())
}

async fn lost_signal(url: &str) -> Result<()> {
    section("5. A force release: the holder's lost() signal fires");
    let key = "demo:lost";
    let owner = connect(url).await?;
    let admin = connect(url).await?;
    let ttl = Duration::from_millis(300);

    call(
        "owner",
        &format!("lock({key:?}, ttl 300 ms)   (watchdog on)"),
    );
    let guard: LockGuard = owner.lock(key, &LockOptions::new().ttl(ttl)).await?;
    reply_line(
        &format!("granted, fence {}", guard.fence()),
        "then waits on guard.lost()",
    );
    let lost = guard.lost();
    tokio::time::sleep(Duration::from_millis(50)).await;

    call("admin", &format!("force_release({key:?})"));
    let forced = Instant::now();
    ensure!(
        admin.force_release(key).await?,
        "force_release found no holder"
    );
    reply_line("true", "the holder was removed");
    tokio::time::timeout(Duration::from_secs(2), lost)
        .await
        .context("lost() did not resolve within 2 s of the force release")?;
    let took = forced.elapsed();
    println!(
        "{:>8}  lost() resolved {} ms after the force release (its watchdog's next extend, \
         every ttl/3 = 100 ms, was refused)",
        "owner",
        ms(took)
    );
    ensure!(
        took <= ttl,
        "lost() took {took:?}, longer than the ttl of {ttl:?}"
    );
    call("owner", "guard.release()");
    ensure!(
        !guard.release().await?,
        "a force-released guard's release was accepted"
    );
    reply_line("false", "it no longer held the lock");
    Ok(())
}
