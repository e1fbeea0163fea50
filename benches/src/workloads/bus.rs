//! Workload 5, the bus: `publishers` tasks publish to one topic (Redis
//! Streams through `baton_client::bus`) for a fixed time, flat out or at a
//! paced rate, while one work-queue consumer (a consumer group) receives and
//! acks every message. Publish rate, publish-call latency and end-to-end
//! latency (publish call to delivery): flat out, end-to-end mostly shows the
//! consumer's backlog; paced, it shows the bus's own latency.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use baton_client::bus::TopicOptions;
use baton_client::Client;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::time::Instant;

use crate::contenders::GRACE;
use crate::stats::{Latencies, Summary};

/// The figures of one bus run.
#[derive(Debug, Clone, Serialize)]
pub struct BusRun {
    /// Publishing tasks.
    pub publishers: usize,
    /// Paced rate per publisher, msgs/s (`None`: flat out).
    pub rate: Option<u64>,
    /// Measured seconds of publishing.
    pub secs: f64,
    /// Messages published (and acknowledged by the server).
    pub published: u64,
    /// `published / secs`.
    pub published_per_sec: f64,
    /// Messages the consumer received and acked by 2 s after the end (one
    /// consumer; the rest is lag).
    pub delivered: u64,
    /// One `publish` call.
    pub publish: Summary,
    /// From the start of the `publish` call to the consumer's receipt.
    pub end_to_end: Summary,
}

/// Runs the workload on topic `bench-bus-{run}` of the server at `url`.
/// `rate`: messages per second per publisher (paced), or flat out (`None`).
pub async fn run(
    url: &str,
    run: &str,
    publishers: usize,
    rate: Option<u64>,
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
    let consumed = async {
        let cutoff = end + GRACE;
        while delivered.count() < total.load(Ordering::Acquire) && Instant::now() < cutoff {
            let Ok(next) = tokio::time::timeout_at(cutoff, consumer.next()).await else {
                break;
            };
            let Some(msg) = next else { break };
            let msg = msg?;
            let now = origin.elapsed().as_nanos() as u64;
            delivered.record_ns(now.saturating_sub(msg.payload));
            msg.ack().await?;
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
    consumer.close().await;
    let secs = measure.as_secs_f64();
    Ok(BusRun {
        publishers,
        rate,
        secs,
        published: publish.count(),
        published_per_sec: publish.count() as f64 / secs,
        delivered: delivered.count(),
        publish: publish.summary(),
        end_to_end: delivered.summary(),
    })
}
