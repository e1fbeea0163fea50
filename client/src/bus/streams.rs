//! The Redis Streams transport: XADD, XREAD / XREADGROUP BLOCK on a
//! dedicated connection, XAUTOCLAIM, XACK, and the small Lua scripts of
//! `lua/bus/` that make check-then-act steps atomic (idempotent publish,
//! claim with delivery counts, hand back / keep alive only what this
//! consumer holds, dead-letter once).
//!
//! Short commands go on the client's shared connection. A blocking read runs on a
//! [`StreamsReader`]: its own connection with no response timeout, on the
//! node that serves the topic (in a Cluster: by the slot of `{topic}`; a
//! blocking read does not follow `MOVED`, a failed read reconnects), whose
//! server-side client id lets a shutdown end the block early with `CLIENT
//! UNBLOCK` instead of dropping a read that may already hold deliveries. A
//! user who may not run `CLIENT` reads all the same: its shutdown then
//! waits for the read's block to end by itself (at most the consumer's
//! block time).

use std::sync::LazyLock;
use std::time::Duration;

use redis::Value;
use tokio_util::sync::CancellationToken;

use super::message::{GroupCtx, MessageId};
use super::options::StartAt;
use super::stats::{DeadLetter, GroupStats};
use super::transport::{Claimed, Entry};
use super::validate::keys;
use crate::backend::conns::Node;
use crate::backend::Conns;
use crate::error::{Error, Result};
use crate::options::ms;
use crate::scripts::Script;

/// KEYS stream, idem; ARGV maxlen ('' = none), window ms, payload.
static PUBLISH_IDEM: LazyLock<Script> = LazyLock::new(|| {
    Script::plain(
        "bus/publish_idem",
        include_str!("../../../lua/bus/publish_idem.lua"),
    )
});

/// KEYS stream, stats; ARGV group, consumer, min idle ms, cursor, count.
/// Returns {next cursor, entries, delivery counts, deleted count}.
static AUTOCLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::plain(
        "bus/autoclaim",
        include_str!("../../../lua/bus/autoclaim.lua"),
    )
});

/// KEYS stream, errors; ARGV group, consumer, id, idle ms, error ('' = keep).
static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::plain("bus/release", include_str!("../../../lua/bus/release.lua")));

/// KEYS stream, dlq, errors; ARGV group, id, deliveries, error ('' = the
/// recorded one), dlq maxlen ('' = none).
static DEAD_LETTER: LazyLock<Script> = LazyLock::new(|| {
    Script::plain(
        "bus/dead_letter",
        include_str!("../../../lua/bus/dead_letter.lua"),
    )
});

fn maxlen_arg(maxlen: Option<u64>) -> Vec<u8> {
    maxlen
        .map(|n| n.to_string().into_bytes())
        .unwrap_or_default()
}

fn bad_reply(what: &str, v: &Value) -> Error {
    Error::UnexpectedReply(format!("to {what}: {v:?}"))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}

fn id_of(v: &Value) -> Result<MessageId> {
    text(v).ok_or_else(|| bad_reply("entry id", v))?.parse()
}

/// Name/value pairs of a RESP2 flat array or a RESP3 map.
fn pairs(v: Value) -> Vec<(Value, Value)> {
    match v {
        Value::Map(m) => m,
        Value::Array(a) => {
            let mut it = a.into_iter();
            let mut out = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((k, v));
            }
            out
        }
        _ => Vec::new(),
    }
}

/// The `p` field of an entry's field list (`None` for a deleted entry).
fn field(fields: Value, name: &str) -> Option<Vec<u8>> {
    pairs(fields)
        .into_iter()
        .find(|(k, _)| text(k).as_deref() == Some(name))
        .and_then(|(_, v)| match v {
            Value::BulkString(b) => Some(b),
            other => text(&other).map(String::into_bytes),
        })
}

/// `[[id, [f, v, ..]], ..]` into entries, each delivered `deliveries` times.
fn entries(v: Value, deliveries: u64) -> Result<Vec<Entry>> {
    let Value::Array(items) = v else {
        return Err(bad_reply("entries", &v));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        // A deleted entry is nil; an entry is [id, fields].
        let Value::Array(parts) = item else {
            continue;
        };
        let Ok([id, fields]) = <[Value; 2]>::try_from(parts) else {
            continue;
        };
        out.push(Entry {
            id: id_of(&id)?,
            payload: field(fields, "p"),
            deliveries,
        });
    }
    Ok(out)
}

/// An XREAD / XREADGROUP reply for one stream: nil, `[[key, entries]]` or a
/// RESP3 map.
fn read_reply(v: Value) -> Result<Vec<Entry>> {
    let streams: Vec<Value> = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(a) => a
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => kv.pop(),
                _ => None,
            })
            .collect(),
        Value::Map(m) => m.into_iter().map(|(_, v)| v).collect(),
        other => return Err(bad_reply("XREAD", &other)),
    };
    let mut out = Vec::new();
    for s in streams {
        out.extend(entries(s, 1)?);
    }
    Ok(out)
}

/// The Streams side of a [`Bus`](super::Bus): the client's connections.
#[derive(Debug, Clone)]
pub(crate) struct StreamsTransport {
    conns: Conns,
}

impl StreamsTransport {
    pub(crate) fn new(conns: Conns) -> Self {
        Self { conns }
    }

    pub(crate) async fn publish(
        &self,
        topic: &str,
        maxlen: Option<u64>,
        payloads: &[Vec<u8>],
    ) -> Result<Vec<MessageId>> {
        let key = keys::stream(topic);
        let xadd = |cmd: &mut redis::Cmd, p: &[u8]| {
            cmd.arg(&key);
            if let Some(n) = maxlen {
                cmd.arg("MAXLEN").arg("~").arg(n);
            }
            cmd.arg("*").arg("p").arg(p);
        };
        let mut conn = self.conns.get().await?;
        if let [p] = payloads {
            // One entry (`publish`): a plain command, not a pipeline of
            // one, on `Conn::query`'s path without boxed futures.
            let mut cmd = redis::cmd("XADD");
            xadd(&mut cmd, p);
            let id: Value = conn.query(&cmd).await?;
            return Ok(vec![id_of(&id)?]);
        }
        let mut pipe = redis::pipe();
        for p in payloads {
            let mut cmd = redis::cmd("XADD");
            xadd(&mut cmd, p);
            pipe.add_command(cmd);
        }
        let ids: Vec<Value> = pipe.query_async(&mut conn).await?;
        ids.iter().map(id_of).collect()
    }

    pub(crate) async fn publish_idem(
        &self,
        topic: &str,
        maxlen: Option<u64>,
        payload: &[u8],
        key: &str,
        window: Duration,
    ) -> Result<(MessageId, bool)> {
        let (stream, idem) = (keys::stream(topic), keys::idem(topic, key));
        let window = ms(window, 1).to_string();
        let v = PUBLISH_IDEM
            .eval_on(
                &mut self.conns.get().await?,
                &[&stream, &idem],
                &[&maxlen_arg(maxlen), window.as_bytes(), payload],
            )
            .await?;
        match &v {
            Value::Array(a) if a.len() == 2 => Ok((id_of(&a[0])?, int(&a[1]) == Some(1))),
            _ => Err(bad_reply("publish", &v)),
        }
    }

    pub(crate) async fn last_id(&self, topic: &str) -> Result<MessageId> {
        let mut conn = self.conns.get().await?;
        let v: Value = redis::cmd("XREVRANGE")
            .arg(keys::stream(topic))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        Ok(entries(v, 1)?.first().map_or(MessageId::ZERO, |e| e.id))
    }

    pub(crate) async fn create_group(&self, topic: &str, group: &str, at: StartAt) -> Result<()> {
        let start = match at {
            StartAt::Beginning => "0".to_owned(),
            StartAt::New => "$".to_owned(),
            StartAt::After(id) => id.to_string(),
        };
        let mut conn = self.conns.get().await?;
        let r: redis::RedisResult<Value> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(keys::stream(topic))
            .arg(group)
            .arg(start)
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match r {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other.map(drop).map_err(Error::from),
        }
    }

    pub(crate) async fn create_consumer(
        &self,
        topic: &str,
        group: &str,
        consumer: &str,
    ) -> Result<()> {
        let mut conn = self.conns.get().await?;
        let _: i64 = redis::cmd("XGROUP")
            .arg("CREATECONSUMER")
            .arg(keys::stream(topic))
            .arg(group)
            .arg(consumer)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    pub(crate) async fn autoclaim(
        &self,
        g: &GroupCtx,
        cursor: MessageId,
        count: usize,
    ) -> Result<Claimed> {
        let (stream, stats) = (keys::stream(&g.topic), keys::stats(&g.topic, &g.group));
        let (idle, cursor, count) = (
            ms(g.claim_idle, 0).to_string(),
            cursor.to_string(),
            count.to_string(),
        );
        let v = AUTOCLAIM
            .eval_on(
                &mut self.conns.get().await?,
                &[&stream, &stats],
                &[
                    g.group.as_bytes(),
                    g.consumer.as_bytes(),
                    idle.as_bytes(),
                    cursor.as_bytes(),
                    count.as_bytes(),
                ],
            )
            .await?;
        let Value::Array(mut parts) = v else {
            return Err(bad_reply("XAUTOCLAIM", &v));
        };
        if parts.len() != 4 {
            return Err(bad_reply("XAUTOCLAIM", &Value::Array(parts)));
        }
        let deleted = int(&parts[3]).unwrap_or(0).max(0) as u64;
        let counts: Vec<u64> = match &parts[2] {
            Value::Array(c) => c
                .iter()
                .map(|v| int(v).unwrap_or(1).max(1) as u64)
                .collect(),
            _ => Vec::new(),
        };
        let mut found = entries(std::mem::replace(&mut parts[1], Value::Nil), 1)?;
        for (e, n) in found.iter_mut().zip(counts) {
            e.deliveries = n;
        }
        Ok(Claimed {
            next: id_of(&parts[0])?,
            entries: found,
            deleted,
        })
    }

    pub(crate) async fn ack(&self, g: &GroupCtx, ids: &[MessageId]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let mut pipe = redis::pipe();
        pipe.cmd("XACK")
            .arg(keys::stream(&g.topic))
            .arg(&g.group)
            .arg(&ids)
            .cmd("HDEL")
            .arg(keys::errors(&g.topic, &g.group))
            .arg(&ids)
            .ignore();
        let mut conn = self.conns.get().await?;
        let (acked,): (u64,) = pipe.query_async(&mut conn).await?;
        Ok(acked)
    }

    pub(crate) async fn release(
        &self,
        g: &GroupCtx,
        id: MessageId,
        idle: Duration,
        error: &str,
    ) -> Result<bool> {
        let (stream, errors) = (keys::stream(&g.topic), keys::errors(&g.topic, &g.group));
        let (id, idle) = (id.to_string(), ms(idle, 0).to_string());
        let v = RELEASE
            .eval_on(
                &mut self.conns.get().await?,
                &[&stream, &errors],
                &[
                    g.group.as_bytes(),
                    g.consumer.as_bytes(),
                    id.as_bytes(),
                    idle.as_bytes(),
                    error.as_bytes(),
                ],
            )
            .await?;
        Ok(int(&v) == Some(1))
    }

    pub(crate) async fn dead_letter(
        &self,
        g: &GroupCtx,
        id: MessageId,
        deliveries: u64,
        error: &str,
    ) -> Result<bool> {
        let (stream, dlq, errors) = (
            keys::stream(&g.topic),
            g.dlq_key(),
            keys::errors(&g.topic, &g.group),
        );
        let (id, deliveries) = (id.to_string(), deliveries.to_string());
        let v = DEAD_LETTER
            .eval_on(
                &mut self.conns.get().await?,
                &[&stream, &dlq, &errors],
                &[
                    g.group.as_bytes(),
                    id.as_bytes(),
                    deliveries.as_bytes(),
                    error.as_bytes(),
                    &maxlen_arg(g.dlq_maxlen),
                ],
            )
            .await?;
        Ok(int(&v) == Some(1))
    }

    pub(crate) async fn topic_len(&self, topic: &str) -> Result<u64> {
        let mut conn = self.conns.get().await?;
        Ok(redis::cmd("XLEN")
            .arg(keys::stream(topic))
            .query_async(&mut conn)
            .await?)
    }

    pub(crate) async fn group_stats(&self, topic: &str, group: &str) -> Result<GroupStats> {
        let stream = keys::stream(topic);
        let mut pipe = redis::pipe();
        pipe.cmd("XLEN")
            .arg(&stream)
            .cmd("XLEN")
            .arg(keys::dlq(topic, group))
            .cmd("HGET")
            .arg(keys::stats(topic, group))
            .arg("redeliveries")
            .cmd("EXISTS")
            .arg(&stream);
        let mut conn = self.conns.get().await?;
        let (length, dead_lettered, redeliveries, exists): (u64, u64, Option<u64>, bool) =
            pipe.query_async(&mut conn).await?;
        let mut stats = GroupStats {
            length,
            dead_lettered,
            redeliveries: redeliveries.unwrap_or(0),
            ..GroupStats::default()
        };
        if !exists {
            return Ok(stats);
        }
        let groups: Vec<Value> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&stream)
            .query_async(&mut conn)
            .await?;
        for g in groups {
            let fields = pairs(g);
            let get = |name: &str| {
                fields
                    .iter()
                    .find(|(k, _)| text(k).as_deref() == Some(name))
                    .map(|(_, v)| v)
            };
            if get("name").and_then(text).as_deref() != Some(group) {
                continue;
            }
            stats.exists = true;
            stats.consumers = get("consumers").and_then(int).unwrap_or(0).max(0) as u64;
            stats.pending = get("pending").and_then(int).unwrap_or(0).max(0) as u64;
            stats.lag = get("lag").and_then(int).map(|n| n.max(0) as u64);
        }
        Ok(stats)
    }

    pub(crate) async fn dead_letters(
        &self,
        topic: &str,
        group: &str,
        count: usize,
    ) -> Result<Vec<DeadLetter>> {
        let mut conn = self.conns.get().await?;
        let v: Value = redis::cmd("XRANGE")
            .arg(keys::dlq(topic, group))
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        let Value::Array(items) = v else {
            return Err(bad_reply("XRANGE", &v));
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Value::Array(parts) = item else {
                continue;
            };
            let Ok([id, fields]) = <[Value; 2]>::try_from(parts) else {
                continue;
            };
            let get = |name: &str| field(fields.clone(), name).unwrap_or_default();
            out.push(DeadLetter {
                dlq_id: id_of(&id)?,
                source_id: String::from_utf8_lossy(&get("id")).parse()?,
                deliveries: String::from_utf8_lossy(&get("deliveries"))
                    .parse()
                    .unwrap_or(0),
                error: String::from_utf8_lossy(&get("error")).into_owned(),
                payload: get("p"),
            });
        }
        Ok(out)
    }

    /// A reader for `topic` on the node that serves its stream (the seed
    /// node outside a Cluster).
    pub(crate) async fn reader(&self, topic: &str) -> Result<StreamsReader> {
        let node = self.conns.owner(keys::stream(topic).as_bytes()).await?;
        let mut conn = node.dedicated().await?;
        let id: redis::RedisResult<i64> =
            redis::cmd("CLIENT").arg("ID").query_async(&mut conn).await;
        let client_id = match id.map_err(Error::from) {
            Ok(id) => Some(id),
            Err(Error::NoPermission(why)) => {
                tracing::debug!(%why, "CLIENT ID refused: a shutdown waits for the read's block to end");
                None
            }
            Err(e) => return Err(e),
        };
        Ok(StreamsReader {
            conn,
            client_id,
            node,
            conns: self.conns.clone(),
        })
    }
}

/// A dedicated connection for blocking reads.
pub(crate) struct StreamsReader {
    conn: redis::aio::MultiplexedConnection,
    /// `None` when the user may not run `CLIENT`.
    client_id: Option<i64>,
    /// The node the connection is on: `CLIENT UNBLOCK` must go there.
    node: Node,
    conns: Conns,
}

impl std::fmt::Debug for StreamsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsReader")
            .field("client_id", &self.client_id)
            .finish()
    }
}

impl StreamsReader {
    /// Runs a blocking read. On `cancel`, a read that must not be dropped
    /// (`keep`) is ended with `CLIENT UNBLOCK` (repeated until it returns:
    /// the command may not have reached the server yet), or without a
    /// client id awaited to the end of its block, and its reply returned;
    /// otherwise the read is dropped and nil returned.
    async fn blocking(
        &mut self,
        cmd: redis::Cmd,
        keep: bool,
        cancel: &CancellationToken,
    ) -> Result<Value> {
        let mut conn = self.conn.clone();
        let read = cmd.query_async::<Value>(&mut conn);
        tokio::pin!(read);
        tokio::select! {
            r = &mut read => return Ok(r?),
            _ = cancel.cancelled() => {}
        }
        if !keep {
            return Ok(Value::Nil);
        }
        let Some(client_id) = self.client_id else {
            return Ok(read.await?);
        };
        loop {
            if let Ok(mut c) = self.node.short().await {
                let _: redis::RedisResult<Value> = redis::cmd("CLIENT")
                    .arg("UNBLOCK")
                    .arg(client_id)
                    .query_async(&mut c)
                    .await;
            }
            tokio::select! {
                r = &mut read => return Ok(r?),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }

    pub(crate) async fn read(
        &mut self,
        topic: &str,
        after: MessageId,
        count: usize,
        block: Duration,
        cancel: &CancellationToken,
    ) -> Result<Vec<Entry>> {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(ms(block, 1))
            .arg("STREAMS")
            .arg(keys::stream(topic))
            .arg(after.to_string());
        read_reply(self.blocking(cmd, false, cancel).await?)
    }

    pub(crate) async fn read_group(
        &mut self,
        g: &GroupCtx,
        count: usize,
        block: Duration,
        cancel: &CancellationToken,
    ) -> Result<Vec<Entry>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&g.group)
            .arg(&g.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(ms(block, 1))
            .arg("STREAMS")
            .arg(keys::stream(&g.topic))
            .arg(">");
        match self.blocking(cmd, true, cancel).await {
            Err(Error::Redis(e)) if e.code() == Some("NOGROUP") => {
                // The stream was deleted under us: recreate it and the group.
                tracing::warn!(topic = %g.topic, group = %g.group, "group vanished; recreating it");
                StreamsTransport::new(self.conns.clone())
                    .create_group(&g.topic, &g.group, StartAt::Beginning)
                    .await?;
                Ok(Vec::new())
            }
            other => read_reply(other?),
        }
    }
}
