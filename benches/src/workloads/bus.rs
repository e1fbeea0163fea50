//! Workload 5, the bus: `publishers` tasks publish to one topic (Redis
//! Streams through `baton_client::bus`) for a fixed time, flat out or at a
//! paced rate, while one work-queue consumer (a consumer group) receives and
//! acks every message, awaiting each ack or queueing it ([`AckMode`]).
//! Publish rate, publish-call latency and end-to-end latency (publish call
//! to delivery): flat out, end-to-end mostly shows the consumer's backlog;
//! paced, it shows the bus's own latency. [`publish_vs_raw`] sets one
//! `publish` call against the raw `XADD` it wraps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use baton_client::bus::TopicOptions;
use baton_client::Client;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::time::Instant;

use crate::contenders::GRACE;
use crate::stats::{Latencies, Summary};

/// How the consumer acks each message it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AckMode {
    /// `msg.ack().await` per message: one round trip each, applied when it
    /// returns.
    Await,
    /// `msg.ack_queued()` per message (sent many per `XACK` in the
    /// background), then `close()`, which waits until all are applied.
    Queued,
}

impl AckMode {
    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            AckMode::Await => "ack().await each",
            AckMode::Queued => "ack_queued() each",
        }
    }
}

/// The figures of one bus run.
#[derive(Debug, Clone, Serialize)]
pub struct BusRun {
    /// Publishing tasks.
    pub publishers: usize,
    /// Paced rate per publisher, msgs/s (`None`: flat out).
    pub rate: Option<u64>,
    /// How the consumer acked.
    pub ack: AckMode,
    /// Measured seconds of publishing.
    pub secs: f64,
    /// Messages published (and acknowledged by the server).
    pub published: u64,
    /// `published / secs`.
    pub published_per_sec: f64,
    /// Messages the consumer received and acked (or queued the ack of) by
    /// 2 s after the end (one consumer; the rest is lag).
    pub delivered: u64,
    /// The group's pending entries once the consumer was closed: 0 when
    /// every delivered message's ack was applied (what the consumer had
    /// read but not handed out is handed back and stays pending).
    pub pending_after: u64,
    /// One `publish` call.
    pub publish: Summary,
    /// From the start of the `publish` call to the consumer's receipt.
    pub end_to_end: Summary,
    /// Where the consumer's time goes: one `next()` (a buffered message,
    /// or a read)...
    pub consumer_next: Summary,
    /// ... and one ack call (`ack().await` or `ack_queued()`).
    pub consumer_ack: Summary,
}

/// Runs the workload on topic `bench-bus-{run}` of the server at `url`.
/// `rate`: messages per second per publisher (paced), or flat out (`None`).
pub async fn run(
    url: &str,
    run: &str,
    publishers: usize,
    rate: Option<u64>,
    ack: AckMode,
    measure: Duration,
) -> Result<BusRun> {
    let client = Client::builder(url).build().await.context("connect")?;
    let bus = client.bus();
    let topic = format!("bench-bus-{run}");
    // No trimming: every message must stay until consumed.
    bus.set_topic(&topic, TopicOptions::new().unbounded())?;
    let mut consumer = bus
        .consume::<u64>(&topic, "bench")
        .consumer("bench-1")
        .block(Duration::from_millis(50))
        .start()
        .await
        .context("start the consumer")?;
    let origin = Instant::now();
    let end = origin + measure;
    let mut handles = Vec::new();
    for _ in 0..publishers {
        let (bus, topic) = (bus.clone(), topic.clone());
        handles.push(tokio::spawn(async move {
            let mut lat = Latencies::default();
            let mut pace = rate.map(|r| tokio::time::interval(Duration::from_secs(1) / r as u32));
            while Instant::now() < end {
                if let Some(pace) = pace.as_mut() {
                    pace.tick().await;
                }
                let t0 = Instant::now();
                let sent = (t0 - origin).as_nanos() as u64;
                bus.publish(&topic, &sent).await?;
                lat.record(t0.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    // Receives until every published message is in, or GRACE after the end.
    let total = AtomicU64::new(u64::MAX);
    let mut delivered = Latencies::default();
    let (mut next_call, mut ack_call) = (Latencies::default(), Latencies::default());
    let consumed = async {
        let cutoff = end + GRACE;
        while delivered.count() < total.load(Ordering::Acquire) && Instant::now() < cutoff {
            let t0 = Instant::now();
            let Ok(next) = tokio::time::timeout_at(cutoff, consumer.next()).await else {
                break;
            };
            let Some(msg) = next else { break };
            let msg = msg?;
            let t1 = Instant::now();
            next_call.record(t1 - t0);
            let now = (t1 - origin).as_nanos() as u64;
            delivered.record_ns(now.saturating_sub(msg.payload));
            match ack {
                AckMode::Await => {
                    msg.ack().await?;
                }
                AckMode::Queued => msg.ack_queued()?,
            }
            ack_call.record(t1.elapsed());
        }
        anyhow::Ok(())
    };
    let mut publish = Latencies::default();
    let published = async {
        for h in handles {
            publish.merge(&h.await??);
        }
        total.store(publish.count(), Ordering::Release);
        anyhow::Ok(())
    };
    let (consumed, published) = tokio::join!(consumed, published);
    published?;
    consumed?;
    consumer
        .close()
        .await
        .context("close the consumer (apply the queued acks)")?;
    let pending_after = bus.stats(&topic, "bench").await?.pending;
    let secs = measure.as_secs_f64();
    Ok(BusRun {
        publishers,
        rate,
        ack,
        secs,
        published: publish.count(),
        published_per_sec: publish.count() as f64 / secs,
        delivered: delivered.count(),
        pending_after,
        publish: publish.summary(),
        end_to_end: delivered.summary(),
        consumer_next: next_call.summary(),
        consumer_ack: ack_call.summary(),
    })
}

/// One task calling `bus.publish` in a loop against one task calling raw
/// `XADD` in a loop (the same entry: field `p`, the JSON payload) on one
/// multiplexed redis-rs connection; no consumer.
#[derive(Debug, Clone, Serialize)]
pub struct PublishVsRaw {
    /// Rounds of each, alternating (the order flips every round).
    pub rounds: usize,
    /// Seconds of one round.
    pub round_secs: f64,
    /// `bus.publish` calls per second, over all its rounds.
    pub publish_per_sec: f64,
    /// Raw `XADD`s per second, over all its rounds.
    pub raw_per_sec: f64,
    /// `publish_per_sec / raw_per_sec`.
    pub ratio: f64,
    /// One `publish` call.
    pub publish: Summary,
    /// One raw `XADD`.
    pub raw: Summary,
}

/// Measures [`PublishVsRaw`] on the server at `url`, `measure` for each
/// side, in rounds of about a second.
pub async fn publish_vs_raw(url: &str, run: &str, measure: Duration) -> Result<PublishVsRaw> {
    let client = Client::builder(url).build().await.context("connect")?;
    let bus = client.bus();
    let topic = format!("bench-pub-{run}");
    // Unbounded like the raw stream: both sides add the same entries.
    bus.set_topic(&topic, TopicOptions::new().unbounded())?;
    let raw_key = format!("bench-raw-{run}");
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await
        .context("raw connection")?;
    let rounds = (measure.as_secs() as usize).max(2);
    let round = measure / rounds as u32;
    let origin = Instant::now();
    let (mut publish, mut raw) = (Latencies::default(), Latencies::default());
    for i in 0..rounds {
        for side in [i % 2, 1 - i % 2] {
            let end = Instant::now() + round;
            while Instant::now() < end {
                let t0 = Instant::now();
                let sent = (t0 - origin).as_nanos() as u64;
                if side == 0 {
                    let _: String = redis::cmd("XADD")
                        .arg(&raw_key)
                        .arg("*")
                        .arg("p")
                        .arg(sent.to_string())
                        .query_async(&mut conn)
                        .await?;
                    raw.record(t0.elapsed());
                } else {
                    bus.publish(&topic, &sent).await?;
                    publish.record(t0.elapsed());
                }
            }
        }
    }
    let len = bus.len(&topic).await?;
    ensure!(
        len == publish.count(),
        "{len} entries for {} publishes",
        publish.count()
    );
    let _: i64 = redis::cmd("DEL")
        .arg(&raw_key)
        .arg(format!("bus:{{{topic}}}"))
        .query_async(&mut conn)
        .await?;
    let secs = (round * rounds as u32).as_secs_f64();
    let (publish_per_sec, raw_per_sec) = (publish.count() as f64 / secs, raw.count() as f64 / secs);
    Ok(PublishVsRaw {
        rounds,
        round_secs: round.as_secs_f64(),
        publish_per_sec,
        raw_per_sec,
        ratio: publish_per_sec / raw_per_sec,
        publish: publish.summary(),
        raw: raw.summary(),
    })
}
