//! The in-process transport: the same semantics as Redis Streams (entry
//! ids, consumer groups, pending lists with idle times and delivery counts,
//! approximate retention, dead-letter streams) in a mutex, for tests and
//! single-process use. Not distributed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::message::{GroupCtx, MessageId};
use super::options::StartAt;
use super::stats::{DeadLetter, GroupStats};
use super::transport::{Claimed, Entry};
use crate::error::Result;

#[derive(Debug)]
struct Pending {
    consumer: String,
    /// When it was last delivered (idle time = now - this).
    delivered: Instant,
    count: u64,
}

#[derive(Debug, Default)]
struct Group {
    last_delivered: MessageId,
    pel: BTreeMap<MessageId, Pending>,
    errors: HashMap<MessageId, String>,
    dlq: Vec<DeadLetter>,
    redeliveries: u64,
    /// Consumers blocked in a read: new entries are shared among them.
    waiting: usize,
    /// Consumers that ever read or claimed (as `XINFO GROUPS` counts them).
    consumers: std::collections::HashSet<String>,
}

#[derive(Debug, Default)]
struct Topic {
    entries: BTreeMap<MessageId, Vec<u8>>,
    last_id: MessageId,
    groups: HashMap<String, Group>,
    idem: HashMap<String, (MessageId, Instant)>,
    dlq_seq: u64,
}

impl Topic {
    fn next_id(&mut self) -> MessageId {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_id = if now > self.last_id.ms {
            MessageId::new(now, 0)
        } else {
            MessageId::new(self.last_id.ms, self.last_id.seq + 1)
        };
        self.last_id
    }

    fn add(&mut self, payload: Vec<u8>, maxlen: Option<u64>) -> MessageId {
        let id = self.next_id();
        self.entries.insert(id, payload);
        if let Some(n) = maxlen {
            while self.entries.len() as u64 > n {
                self.entries.pop_first();
            }
        }
        id
    }
}

#[derive(Debug, Default)]
struct State {
    topics: HashMap<String, Topic>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Woken on every publish (readers re-check their topic).
    published: Notify,
}

/// The in-process bus state; clones share it.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemoryTransport {
    shared: Arc<Shared>,
}

impl MemoryTransport {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.shared.state.lock().expect("bus state poisoned"))
    }

    fn group<R>(&self, g: &GroupCtx, f: impl FnOnce(&mut Topic, &mut Group) -> R) -> Option<R> {
        self.with(|s| {
            let topic = s.topics.get_mut(&g.topic)?;
            let mut group = topic.groups.remove(&g.group)?;
            let r = f(topic, &mut group);
            topic.groups.insert(g.group.clone(), group);
            Some(r)
        })
    }

    pub(crate) async fn publish(
        &self,
        topic: &str,
        maxlen: Option<u64>,
        payloads: &[Vec<u8>],
    ) -> Result<Vec<MessageId>> {
        let ids = self.with(|s| {
            let t = s.topics.entry(topic.to_owned()).or_default();
            payloads.iter().map(|p| t.add(p.clone(), maxlen)).collect()
        });
        self.shared.published.notify_waiters();
        Ok(ids)
    }

    pub(crate) async fn publish_idem(
        &self,
        topic: &str,
        maxlen: Option<u64>,
        payload: &[u8],
        key: &str,
        window: Duration,
    ) -> Result<(MessageId, bool)> {
        let now = Instant::now();
        let out = self.with(|s| {
            let t = s.topics.entry(topic.to_owned()).or_default();
            t.idem.retain(|_, (_, until)| *until > now);
            if let Some((id, _)) = t.idem.get(key) {
                return (*id, true);
            }
            let id = t.add(payload.to_vec(), maxlen);
            t.idem.insert(key.to_owned(), (id, now + window));
            (id, false)
        });
        if !out.1 {
            self.shared.published.notify_waiters();
        }
        Ok(out)
    }

    pub(crate) async fn last_id(&self, topic: &str) -> Result<MessageId> {
        Ok(self.with(|s| {
            s.topics
                .get(topic)
                .and_then(|t| t.entries.keys().next_back().copied())
                .unwrap_or(MessageId::ZERO)
        }))
    }

    pub(crate) async fn create_group(&self, topic: &str, group: &str, at: StartAt) -> Result<()> {
        self.with(|s| {
            let t = s.topics.entry(topic.to_owned()).or_default();
            let start = match at {
                StartAt::Beginning => MessageId::ZERO,
                StartAt::New => t.last_id,
                StartAt::After(id) => id,
            };
            t.groups.entry(group.to_owned()).or_insert_with(|| Group {
                last_delivered: start,
                ..Group::default()
            });
        });
        Ok(())
    }

    pub(crate) async fn create_consumer(
        &self,
        topic: &str,
        group: &str,
        consumer: &str,
    ) -> Result<()> {
        self.with(|s| {
            let t = s.topics.entry(topic.to_owned()).or_default();
            let g = t.groups.entry(group.to_owned()).or_default();
            g.consumers.insert(consumer.to_owned());
        });
        Ok(())
    }

    pub(crate) async fn autoclaim(
        &self,
        g: &GroupCtx,
        cursor: MessageId,
        count: usize,
    ) -> Result<Claimed> {
        let now = Instant::now();
        Ok(self
            .group(g, |t, grp| {
                let mut out = Claimed::default();
                let mut gone = Vec::new();
                for (walked, (id, p)) in grp.pel.range_mut(cursor..).enumerate() {
                    if walked == count {
                        out.next = *id;
                        break;
                    }
                    if now.saturating_duration_since(p.delivered) < g.claim_idle {
                        continue;
                    }
                    match t.entries.get(id) {
                        None => gone.push(*id),
                        Some(payload) => {
                            p.consumer = g.consumer.clone();
                            p.delivered = now;
                            p.count += 1;
                            out.entries.push(Entry {
                                id: *id,
                                payload: Some(payload.clone()),
                                deliveries: p.count,
                            });
                        }
                    }
                }
                for id in &gone {
                    grp.pel.remove(id);
                }
                out.deleted = gone.len() as u64;
                grp.redeliveries += out.entries.len() as u64;
                out
            })
            .unwrap_or_default())
    }

    pub(crate) async fn ack(&self, g: &GroupCtx, ids: &[MessageId]) -> Result<u64> {
        Ok(self
            .group(g, |_, grp| {
                ids.iter()
                    .filter(|id| {
                        grp.errors.remove(id);
                        grp.pel.remove(id).is_some()
                    })
                    .count() as u64
            })
            .unwrap_or(0))
    }

    pub(crate) async fn release(
        &self,
        g: &GroupCtx,
        id: MessageId,
        idle: Duration,
        error: &str,
    ) -> Result<bool> {
        let now = Instant::now();
        Ok(self
            .group(g, |_, grp| {
                let Some(p) = grp.pel.get_mut(&id).filter(|p| p.consumer == g.consumer) else {
                    return false;
                };
                p.delivered = now.checked_sub(idle).unwrap_or(now);
                if !error.is_empty() {
                    grp.errors.insert(id, error.to_owned());
                }
                true
            })
            .unwrap_or(false))
    }

    pub(crate) async fn dead_letter(
        &self,
        g: &GroupCtx,
        id: MessageId,
        deliveries: u64,
        error: &str,
    ) -> Result<bool> {
        Ok(self
            .group(g, |t, grp| {
                if grp.pel.remove(&id).is_none() {
                    return false;
                }
                let recorded = grp.errors.remove(&id).unwrap_or_default();
                t.dlq_seq += 1;
                grp.dlq.push(DeadLetter {
                    dlq_id: MessageId::new(t.last_id.ms, t.dlq_seq),
                    source_id: id,
                    deliveries,
                    error: if error.is_empty() {
                        recorded
                    } else {
                        error.to_owned()
                    },
                    payload: t.entries.get(&id).cloned().unwrap_or_default(),
                });
                if let Some(n) = g.dlq_maxlen {
                    let excess = grp.dlq.len().saturating_sub(n as usize);
                    grp.dlq.drain(..excess);
                }
                true
            })
            .unwrap_or(false))
    }

    pub(crate) async fn topic_len(&self, topic: &str) -> Result<u64> {
        Ok(self.with(|s| s.topics.get(topic).map_or(0, |t| t.entries.len() as u64)))
    }

    pub(crate) async fn group_stats(&self, topic: &str, group: &str) -> Result<GroupStats> {
        Ok(self.with(|s| {
            let Some(t) = s.topics.get(topic) else {
                return GroupStats::default();
            };
            let mut stats = GroupStats {
                length: t.entries.len() as u64,
                ..GroupStats::default()
            };
            if let Some(g) = t.groups.get(group) {
                stats.exists = true;
                stats.consumers = g.consumers.len() as u64;
                stats.pending = g.pel.len() as u64;
                let after = g.last_delivered;
                stats.lag = Some(
                    t.entries
                        .range(after..)
                        .filter(|(id, _)| **id > after)
                        .count() as u64,
                );
                stats.redeliveries = g.redeliveries;
                stats.dead_lettered = g.dlq.len() as u64;
            }
            stats
        }))
    }

    pub(crate) async fn dead_letters(
        &self,
        topic: &str,
        group: &str,
        count: usize,
    ) -> Result<Vec<DeadLetter>> {
        Ok(self.with(|s| {
            s.topics
                .get(topic)
                .and_then(|t| t.groups.get(group))
                .map(|g| g.dlq.iter().take(count).cloned().collect())
                .unwrap_or_default()
        }))
    }

    /// Waits until `take` returns entries, `block` runs out or `cancel`
    /// fires. `take` runs under the lock, so a delivery is never lost.
    async fn wait_for(
        &self,
        block: Duration,
        cancel: &CancellationToken,
        mut take: impl FnMut(&mut State) -> Vec<Entry>,
    ) -> Vec<Entry> {
        let deadline = Instant::now() + block;
        loop {
            let notified = self.shared.published.notified();
            let got = self.with(&mut take);
            if !got.is_empty() || cancel.is_cancelled() || Instant::now() >= deadline {
                return got;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = cancel.cancelled() => {}
            }
        }
    }

    pub(crate) async fn read(
        &self,
        topic: &str,
        after: MessageId,
        count: usize,
        block: Duration,
        cancel: &CancellationToken,
    ) -> Result<Vec<Entry>> {
        Ok(self
            .wait_for(block, cancel, |s| {
                let Some(t) = s.topics.get(topic) else {
                    return Vec::new();
                };
                t.entries
                    .range(after..)
                    .filter(|(id, _)| **id > after)
                    .take(count)
                    .map(|(id, p)| Entry {
                        id: *id,
                        payload: Some(p.clone()),
                        deliveries: 1,
                    })
                    .collect()
            })
            .await)
    }

    pub(crate) async fn read_group(
        &self,
        g: &GroupCtx,
        count: usize,
        block: Duration,
        cancel: &CancellationToken,
    ) -> Result<Vec<Entry>> {
        let now = || Instant::now();
        let waiting = |s: &mut State, d: isize| {
            let t = s.topics.entry(g.topic.clone()).or_default();
            let grp = t.groups.entry(g.group.clone()).or_default();
            grp.waiting = grp.waiting.saturating_add_signed(d);
        };
        self.with(|s| waiting(s, 1));
        let got = self
            .wait_for(block, cancel, |s| {
                let t = s.topics.entry(g.topic.clone()).or_default();
                let grp = t.groups.entry(g.group.clone()).or_default();
                let after = grp.last_delivered;
                let available = t
                    .entries
                    .range(after..)
                    .filter(|(id, _)| **id > after)
                    .take(count * grp.waiting.max(1))
                    .count();
                // Like blocked XREADGROUP clients served in turn: a fair share.
                let share = available.div_ceil(grp.waiting.max(1)).max(1);
                let got: Vec<Entry> = t
                    .entries
                    .range(after..)
                    .filter(|(id, _)| **id > after)
                    .take(count.min(share))
                    .map(|(id, p)| Entry {
                        id: *id,
                        payload: Some(p.clone()),
                        deliveries: 1,
                    })
                    .collect();
                for e in &got {
                    grp.pel.insert(
                        e.id,
                        Pending {
                            consumer: g.consumer.clone(),
                            delivered: now(),
                            count: 1,
                        },
                    );
                    grp.last_delivered = e.id;
                }
                got
            })
            .await;
        self.with(|s| waiting(s, -1));
        Ok(got)
    }
}
