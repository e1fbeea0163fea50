//! Bus throughput against raw Redis Streams, on the same server in one run.
//! Issue 4's goals: publish ≥ 0.9× raw `XADD`, consume+ack ≥ 0.8× raw
//! `XREADGROUP` + `XACK`.
//!
//! ```sh
//! cargo bench -p baton-benches --bench bus_throughput
//! ```
//!
//! Both sides move the same bytes: the bus's JSON payload in field `p`, with
//! `MAXLEN ~` retention. Raw commands go over one multiplexed connection; the
//! bus goes through `baton_client`. Each round runs raw and bus back to back,
//! alternating which goes first, and the ratio is the median of the
//! per-round ratios, so the machine's load of the moment hits both alike.

use anyhow::{ensure, Context, Result};
use baton_benches::stats::median;
use baton_client::bus::{Bus, StartAt, TopicOptions};
use baton_client::{Backend, Client};
use baton_harness::RedisServer;
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::{Duration, Instant};

const MESSAGES: usize = 40_000;
const ROUNDS: usize = 3;
const TASKS: usize = 16;
const BATCH: usize = 100;
const MAXLEN: u64 = 1_000_000;
const LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: u64,
    customer: String,
    items: Vec<u32>,
}

fn order(id: u64) -> Order {
    Order {
        id,
        customer: format!("customer-{:08}", id % 10_000),
        items: vec![1, 2, 3, 5, 8, 13, 21, 34],
    }
}

/// One measured comparison.
struct Row {
    name: &'static str,
    goal: Option<f64>,
    raw: Vec<f64>,
    bus: Vec<f64>,
}

impl Row {
    fn new(name: &'static str, goal: Option<f64>) -> Self {
        Self {
            name,
            goal,
            raw: Vec::new(),
            bus: Vec::new(),
        }
    }

    fn ratio(&self) -> f64 {
        let ratios: Vec<f64> = self.raw.iter().zip(&self.bus).map(|(r, b)| b / r).collect();
        median(&ratios)
    }
}

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> Result<()> {
    let server = RedisServer::builder().without_module().start();
    let client = Client::builder(server.url())
        .backend(Backend::Lua)
        .build()
        .await?;
    let bus = client.bus();
    let raw = redis::Client::open(server.url())?
        .get_multiplexed_async_connection()
        .await?;
    let payload = serde_json::to_vec(&order(1))?;
    println!(
        "bus vs raw Streams: {MESSAGES} messages of {} bytes per run, {TASKS} publishing tasks, \
         batches of {BATCH}, median of {ROUNDS} rounds",
        payload.len()
    );

    let mut rows = [
        Row::new("publish, one message per call", Some(0.9)),
        Row::new("publish, batches of 100", Some(0.9)),
        Row::new("consume + ack, a batch at a time", Some(0.8)),
        Row::new("consume + ack, one message at a time", None),
    ];
    for round in 0..ROUNDS {
        let raw_first = round % 2 == 0;
        for (i, row) in rows.iter_mut().enumerate() {
            let topic = format!("r{round}w{i}");
            let raw_rate = || measure_raw(i, &raw, &topic, &payload);
            let bus_rate = || measure_bus(i, &bus, &topic);
            let (r, b) = if raw_first {
                let r = raw_rate().await?;
                (r, bus_rate().await?)
            } else {
                let b = bus_rate().await?;
                (raw_rate().await?, b)
            };
            row.raw.push(r);
            row.bus.push(b);
            println!(
                "  round {}: {:<38} raw {r:>9.0} msg/s, bus {b:>9.0} msg/s",
                round + 1,
                row.name
            );
        }
    }

    println!();
    println!(
        "{:<40} {:>8} {:>8}  {:<4} {:>12} {:>12}",
        "measure", "ratio", "goal", "met", "raw msg/s", "bus msg/s"
    );
    for row in &rows {
        let ratio = row.ratio();
        let (goal, met) = match row.goal {
            Some(goal) => (
                format!(">= {goal:.2}"),
                if ratio >= goal { "yes" } else { "NO" },
            ),
            None => ("-".to_owned(), "-"),
        };
        println!(
            "{:<40} {ratio:>8.3} {goal:>8}  {met:<4} {:>12.0} {:>12.0}",
            row.name,
            median(&row.raw),
            median(&row.bus)
        );
    }
    Ok(())
}

/// Messages per second of `f`, which handles `MESSAGES` messages.
async fn rate<F: Future<Output = Result<()>>>(f: F) -> Result<f64> {
    let started = Instant::now();
    tokio::time::timeout(LIMIT, f)
        .await
        .context("a run took longer than its limit")??;
    Ok(MESSAGES as f64 / started.elapsed().as_secs_f64())
}

async fn measure_raw(
    workload: usize,
    con: &MultiplexedConnection,
    topic: &str,
    payload: &[u8],
) -> Result<f64> {
    let key = format!("raw:{{{topic}}}");
    match workload {
        0 => {
            rate(spread(|n| {
                raw_publish(con.clone(), key.clone(), payload.to_vec(), n, 1)
            }))
            .await
        }
        1 => {
            rate(spread(|n| {
                raw_publish(con.clone(), key.clone(), payload.to_vec(), n, BATCH)
            }))
            .await
        }
        _ => {
            raw_publish(con.clone(), key.clone(), payload.to_vec(), MESSAGES, BATCH).await?;
            let per_batch = workload == 2;
            rate(raw_consume(con.clone(), &key, per_batch)).await
        }
    }
}

async fn measure_bus(workload: usize, bus: &Bus, topic: &str) -> Result<f64> {
    bus.set_topic(topic, TopicOptions::new().maxlen(MAXLEN))?;
    match workload {
        0 => rate(spread(|n| bus_publish(bus.clone(), topic.to_owned(), n, 1))).await,
        1 => {
            rate(spread(|n| {
                bus_publish(bus.clone(), topic.to_owned(), n, BATCH)
            }))
            .await
        }
        _ => {
            bus_publish(bus.clone(), topic.to_owned(), MESSAGES, BATCH).await?;
            rate(bus_consume(bus, topic, workload == 2)).await
        }
    }
}

/// Runs `TASKS` copies of `task`, each with its share of `MESSAGES`.
async fn spread<F, Fut>(task: F) -> Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let handles: Vec<_> = (0..TASKS)
        .map(|_| tokio::spawn(task(MESSAGES / TASKS)))
        .collect();
    for handle in handles {
        handle.await??;
    }
    Ok(())
}

async fn raw_publish(
    mut con: MultiplexedConnection,
    key: String,
    payload: Vec<u8>,
    count: usize,
    batch: usize,
) -> Result<()> {
    let mut left = count;
    while left > 0 {
        let n = batch.min(left);
        let mut pipe = redis::pipe();
        for _ in 0..n {
            pipe.cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(MAXLEN)
                .arg("*")
                .arg("p")
                .arg(&payload)
                .ignore();
        }
        let () = pipe.query_async(&mut con).await?;
        left -= n;
    }
    Ok(())
}

async fn bus_publish(bus: Bus, topic: String, count: usize, batch: usize) -> Result<()> {
    let mut next = 0;
    while next < count {
        let n = batch.min(count - next);
        if n == 1 {
            bus.publish(&topic, &order(next as u64)).await?;
        } else {
            let orders: Vec<Order> = (next..next + n).map(|i| order(i as u64)).collect();
            bus.publish_batch(&topic, &orders).await?;
        }
        next += n;
    }
    Ok(())
}

/// XREADGROUP a batch at a time and XACK it, as one batch or id by id.
async fn raw_consume(mut con: MultiplexedConnection, key: &str, per_batch: bool) -> Result<()> {
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg("g")
        .arg("0")
        .query_async(&mut con)
        .await?;
    let mut acked = 0;
    while acked < MESSAGES {
        let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("c1")
            .arg("COUNT")
            .arg(BATCH)
            .arg("STREAMS")
            .arg(key)
            .arg(">")
            .query_async(&mut con)
            .await?;
        let ids: Vec<String> = reply
            .keys
            .into_iter()
            .flat_map(|k| k.ids.into_iter().map(|e| e.id))
            .collect();
        ensure!(!ids.is_empty(), "raw stream ran dry after {acked}");
        if per_batch {
            let _: i64 = redis::cmd("XACK")
                .arg(key)
                .arg("g")
                .arg(&ids)
                .query_async(&mut con)
                .await?;
        } else {
            for id in &ids {
                let _: i64 = redis::cmd("XACK")
                    .arg(key)
                    .arg("g")
                    .arg(id)
                    .query_async(&mut con)
                    .await?;
            }
        }
        acked += ids.len();
    }
    Ok(())
}

/// A consumer group reading the whole topic, acking a batch at a time
/// (`ack_all`) or message by message (`ack`).
async fn bus_consume(bus: &Bus, topic: &str, per_batch: bool) -> Result<()> {
    let mut consumer = bus
        .consume::<Order>(topic, "g")
        .consumer("c1")
        .batch(BATCH)
        .start_at(StartAt::Beginning)
        .start()
        .await?;
    let mut acked = 0;
    let mut pending = Vec::with_capacity(BATCH);
    while acked < MESSAGES {
        let msg = consumer
            .next()
            .await
            .context("the consumer ended early")??;
        if per_batch {
            pending.push(msg);
            if pending.len() == BATCH || acked + pending.len() == MESSAGES {
                consumer.ack_all(&pending).await?;
                acked += pending.len();
                pending.clear();
            }
        } else {
            msg.ack().await?;
            acked += 1;
        }
    }
    consumer.close().await?;
    Ok(())
}
