//! The demo's semaphore and election sections: 4 workers on a semaphore of
//! 2 permits (never more than 2 at once, a fence per lease), and an
//! election whose leader is a separate process (this example run again as
//! `demo --leader`) that is SIGKILLed while an observer prints every change.
//! As in the rest of the demo, every claim is checked.

use crate::{call, connect, ms, reply_line, section, wait_until};
use anyhow::{ensure, Context, Result};
use baton_client::{Client, Leader, LockOptions};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub(crate) async fn semaphore(url: &str) -> Result<()> {
    section("6. A semaphore of 2 permits, 4 workers: at most 2 hold at once");
    let key = "demo:exports";
    let holding = Arc::new(AtomicU32::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let start = Instant::now();
    call(
        "w1..w4",
        &format!("semaphore({key:?}, 2).acquire(1, wait 5 s), hold 150 ms"),
    );
    for i in 1..=4 {
        let (client, holding, tx) = (connect(url).await?, holding.clone(), tx.clone());
        tokio::spawn(async move {
            let run = async {
                let sem = client.semaphore(key, 2);
                let opts = LockOptions::new()
                    .ttl(Duration::from_secs(10))
                    .wait(Duration::from_secs(5));
                let lease = sem.acquire(1, &opts).await?;
                let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                let _ = tx.send((i, "acquired", lease.fence(), now, start.elapsed()));
                tokio::time::sleep(Duration::from_millis(150)).await;
                let now = holding.fetch_sub(1, Ordering::SeqCst) - 1;
                let _ = tx.send((i, "released", lease.fence(), now, start.elapsed()));
                lease.release().await?;
                anyhow::Ok(())
            };
            if let Err(e) = run.await {
                let _ = tx.send((i, "failed", 0, u32::MAX, start.elapsed()));
                eprintln!("worker w{i}: {e:#}");
            }
        });
    }
    drop(tx);
    let (mut most, mut fences, mut done) = (0, Vec::new(), 0);
    while let Some((i, what, fence, now, at)) = rx.recv().await {
        ensure!(what != "failed", "worker w{i} failed");
        println!(
            "{:>8}  {what} at {:>3} ms, fence {fence}   holding now: {now}",
            format!("w{i}"),
            ms(at)
        );
        most = most.max(now);
        if what == "acquired" {
            fences.push(fence);
        } else {
            done += 1;
        }
    }
    ensure!(done == 4, "only {done} of 4 workers finished");
    ensure!(most == 2, "at most {most} held at once, not 2");
    ensure!(
        fences.windows(2).all(|w| w[0] < w[1]),
        "lease fences not increasing in grant order: {fences:?}"
    );
    println!(
        "{:>8}  never more than 2 at once; each lease its own, larger fence",
        "ok"
    );
    Ok(())
}

/// The leader's ttl in the election section: how long a killed leader
/// keeps the others waiting at most.
const LEADER_TTL: Duration = Duration::from_secs(1);

fn campaign_opts() -> LockOptions {
    LockOptions::new()
        .ttl(LEADER_TTL)
        .wait(Duration::from_secs(10))
}

/// `demo --leader URL NAME VALUE`: campaigns, prints `LEADER <term>`
/// and leads (watchdog on) until killed.
pub(crate) fn leader_process(args: &[String]) -> Result<()> {
    let [url, name, value] = args else {
        anyhow::bail!("usage: demo --leader URL NAME VALUE");
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = connect(url).await?;
        let leadership = client
            .campaign(name, value.as_str(), &campaign_opts())
            .await?;
        println!("LEADER {}", leadership.term());
        std::future::pending::<()>().await;
        anyhow::Ok(())
    })
}

/// Starts the leader process and waits until it leads.
fn spawn_leader(url: &str, name: &str, value: &str) -> Result<(Child, u64)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--leader", url, name, value])
        .stdout(Stdio::piped())
        .spawn()
        .context("start the leader process")?;
    let stdout = child.stdout.take().context("the leader's stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(|l| l.ok())
        {
            if let Some(term) = line.strip_prefix("LEADER ") {
                let _ = tx.send(term.trim().parse::<u64>());
            }
        }
    });
    let term = rx
        .recv_timeout(Duration::from_secs(10))
        .context("the leader process never led")??;
    Ok((child, term))
}

fn show(leader: &Option<Leader>) -> String {
    match leader {
        Some(l) => format!(
            "term {} leads: {}",
            l.term,
            String::from_utf8_lossy(&l.value)
        ),
        None => "no leader".into(),
    }
}

pub(crate) async fn election(url: &str) -> Result<()> {
    section("7. An election: kill the leader's process, the next campaigner takes over");
    let name = "demo:scheduler";
    let watcher = connect(url).await?;
    let (tx, mut seen) = mpsc::unbounded_channel();
    let mut observer = watcher.observe(name)?;
    tokio::spawn(async move {
        while let Ok(item) = observer.next().await {
            if tx.send(item).is_err() {
                break;
            }
        }
    });
    let mut next_seen = async || -> Result<Option<Leader>> {
        let item = tokio::time::timeout(Duration::from_secs(3), seen.recv())
            .await
            .context("the observer saw nothing")?
            .context("the observer stopped")?;
        println!("{:>8}  {}", "observer", show(&item));
        Ok(item)
    };
    call("observer", &format!("observe({name:?})"));
    ensure!(next_seen().await?.is_none(), "a leader before anyone ran");

    call(
        "node-1",
        &format!("campaign({name:?}, \"node-1\", ttl 1 s)   [a separate process]"),
    );
    let (mut node1, term1) = spawn_leader(url, name, "node-1")?;
    reply_line(&format!("leader, term {term1}"), "");
    ensure!(
        next_seen().await?
            == Some(Leader {
                term: term1,
                value: b"node-1".to_vec()
            }),
        "the observer did not see node-1 lead"
    );

    let campaign = |value: &'static str, client: Client| {
        tokio::spawn(async move { client.campaign(name, value, &campaign_opts()).await })
    };
    call("node-2", &format!("campaign({name:?}, \"node-2\")"));
    let node2 = campaign("node-2", connect(url).await?);
    wait_until(|| async { Ok(watcher.info(name).await?.waiters == 1) }).await?;
    call("node-3", &format!("campaign({name:?}, \"node-3\")"));
    let node3 = campaign("node-3", connect(url).await?);
    wait_until(|| async { Ok(watcher.info(name).await?.waiters == 2) }).await?;
    reply_line("...", "both queued behind node-1, in that order");

    call(
        "",
        &format!("kill -9 {}   (node-1: no resign, no release)", node1.id()),
    );
    node1.kill().context("SIGKILL node-1")?;
    let killed = Instant::now();
    node1.wait()?;
    let leader2 = node2.await.context("node-2's task")??;
    let took = killed.elapsed();
    println!(
        "{:>8}  leader, term {}, {} ms after the kill (ttl {} ms)",
        "node-2",
        leader2.term(),
        ms(took),
        ms(LEADER_TTL)
    );
    ensure!(
        took <= LEADER_TTL + Duration::from_millis(300),
        "took {took:?}"
    );
    ensure!(
        leader2.term() > term1,
        "the new term is not above the old one"
    );
    ensure!(
        next_seen().await?
            == Some(Leader {
                term: leader2.term(),
                value: b"node-2".to_vec()
            }),
        "the observer did not see node-2 lead"
    );

    call("node-2", "proclaim(\"node-2 @ 10.0.0.8\")");
    ensure!(
        leader2.proclaim("node-2 @ 10.0.0.8").await?,
        "proclaim refused"
    );
    reply_line("true", "same term, new value");
    ensure!(
        next_seen().await?
            == Some(Leader {
                term: leader2.term(),
                value: b"node-2 @ 10.0.0.8".to_vec()
            }),
        "the observer did not see the new value"
    );

    call("node-2", "resign()");
    let resigned = Instant::now();
    ensure!(leader2.resign().await?, "node-2's resign was refused");
    let leader3 = node3.await.context("node-3's task")??;
    println!(
        "{:>8}  leader, term {}, {} ms after the resign: handed over at once",
        "node-3",
        leader3.term(),
        ms(resigned.elapsed())
    );
    ensure!(
        next_seen().await?
            == Some(Leader {
                term: leader3.term(),
                value: b"node-3".to_vec()
            }),
        "the observer did not see node-3 lead"
    );
    ensure!(leader3.resign().await?, "node-3's resign was refused");
    ensure!(
        next_seen().await?.is_none(),
        "the observer did not see the end"
    );
    Ok(())
}
