//! Small readers for the replies `cargo xtask bench` inspects: the
//! `LOCK.STATS` map (a RESP3 map or a flat RESP2 array) and `INFO` text.

use anyhow::{bail, Context, Result};
use redis::{Connection, Value};

/// Reads integer `field` from a map reply, in either RESP2 or RESP3 shape.
pub fn map_int(reply: &Value, field: &str) -> Result<i64> {
    let pairs: Vec<(&Value, &Value)> = match reply {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|c| Some((c.first()?, c.get(1)?)))
            .collect(),
        other => bail!("expected a map reply, got {other:?}"),
    };
    for (key, value) in pairs {
        if text(key).as_deref() == Some(field) {
            return match value {
                Value::Int(n) => Ok(*n),
                other => text(other)
                    .and_then(|s| s.parse().ok())
                    .with_context(|| format!("field '{field}' is not an integer: {other:?}")),
            };
        }
    }
    bail!("field '{field}' missing from {reply:?}")
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// `LOCK.STATS` counter, e.g. `held`.
pub fn lock_stats(con: &mut Connection, field: &str) -> Result<i64> {
    let reply: Value = redis::cmd("LOCK.STATS").query(con)?;
    map_int(&reply, field)
}

/// A `name:value` line of `INFO section`.
pub fn info_field(con: &mut Connection, section: &str, field: &str) -> Result<String> {
    let info: String = redis::cmd("INFO").arg(section).query(con)?;
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("INFO {section} has no '{field}'"))
}
