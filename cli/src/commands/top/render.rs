//! A [`Frame`] as text (the table on the screen, or a plain frame in a
//! pipe) and as one line of JSON.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};

use super::frame::{Frame, Row, RATED};

/// Column headers after NODE: the rates, then the gauges and totals.
const COLUMNS: [(&str, Cell); 8] = [
    ("GRANTS/S", Cell::Rate(0)),
    ("RELEASES/S", Cell::Rate(1)),
    ("EXPIRED/S", Cell::Rate(2)),
    ("HELD", Cell::Counter("held")),
    ("WAITERS", Cell::Counter("waiters")),
    ("GRANTS", Cell::Counter("grants")),
    ("RELEASES", Cell::Counter("releases")),
    ("EXPIRED", Cell::Counter("expirations")),
];

/// What a column shows.
#[derive(Debug, Clone, Copy)]
enum Cell {
    /// The rate of [`RATED`]`[i]`.
    Rate(usize),
    /// A counter by name.
    Counter(&'static str),
}

const NODE_WIDTH: usize = 21;
const CELL_WIDTH: usize = 11;

/// The frame as lines of text: a title, the header, a row per node and the
/// total.
pub(crate) fn text(frame: &Frame, title: &str) -> Vec<String> {
    let mut lines = vec![format!("{title}  {}", clock(frame))];
    if let Some(trouble) = &frame.trouble {
        lines.push(format!("! {trouble}"));
    }
    let mut header = format!("{:<NODE_WIDTH$}", "NODE");
    for (name, _) in COLUMNS {
        header += &format!("{name:>CELL_WIDTH$}");
    }
    lines.push(header);
    for row in frame.rows.iter().chain([&frame.total]) {
        lines.push(row_text(row));
    }
    lines
}

fn row_text(row: &Row) -> String {
    let mut line = format!("{:<NODE_WIDTH$}", row.node);
    if let Err(why) = &row.counters {
        return line + &format!(" error: {why}");
    }
    for (_, cell) in COLUMNS {
        let value = match cell {
            Cell::Rate(i) => row.rates.map_or("-".into(), |r| format!("{:.1}", r[i])),
            Cell::Counter(name) => row.get(name).map_or("-".into(), |v| v.to_string()),
        };
        line += &format!("{value:>CELL_WIDTH$}");
    }
    line
}

/// `HH:MM:SS UTC` of the frame.
fn clock(frame: &Frame) -> String {
    let secs = frame
        .at
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    format!(
        "{:02}:{:02}:{:02} UTC",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

/// The frame as one JSON object: `time_ms`, `nodes` (each with its
/// counters, `per_second` rates or null, and `error` or null), `total`,
/// `trouble`.
pub(crate) fn json(frame: &Frame) -> Value {
    let time_ms = frame
        .at
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64;
    json!({
        "time_ms": time_ms,
        "nodes": frame.rows.iter().map(row_json).collect::<Vec<_>>(),
        "total": row_json(&frame.total),
        "trouble": frame.trouble,
    })
}

fn row_json(row: &Row) -> Value {
    let mut obj = serde_json::Map::new();
    obj.insert("node".into(), row.node.clone().into());
    let (counters, error) = match &row.counters {
        Ok(c) => (Some(c), Value::Null),
        Err(why) => (None, why.clone().into()),
    };
    for (name, value) in counters.into_iter().flatten() {
        obj.insert((*name).into(), (*value).into());
    }
    let per_second = row.rates.map(|r| {
        RATED
            .iter()
            .zip(r)
            .map(|(name, v)| ((*name).to_string(), json!(v)))
            .collect::<serde_json::Map<_, _>>()
    });
    obj.insert("per_second".into(), json!(per_second));
    obj.insert("error".into(), error);
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use baton_client::Stats;

    use super::*;
    use crate::view::counters;

    fn frame() -> Frame {
        let stats = Stats {
            held: 2,
            waiters: 1,
            grants: 40,
            releases: 38,
            ..Stats::default()
        };
        let row = Row {
            node: "127.0.0.1:7001".into(),
            counters: Ok(counters(&stats)),
            rates: Some([4.0, 3.5, 0.0]),
        };
        let down = Row {
            node: "127.0.0.1:7002".into(),
            counters: Err("connection refused".into()),
            rates: None,
        };
        Frame {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(3_600 + 61),
            total: Row {
                node: "total".into(),
                ..row.clone()
            },
            rows: vec![row, down],
            trouble: None,
        }
    }

    #[test]
    fn the_table_has_a_row_per_node_and_the_total() {
        let lines = text(&frame(), "baton top");
        assert_eq!(lines[0], "baton top  01:01:01 UTC");
        assert!(lines[1].starts_with("NODE") && lines[1].ends_with("EXPIRED"));
        let cells: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "127.0.0.1:7001",
                "4.0",
                "3.5",
                "0.0",
                "2",
                "1",
                "40",
                "38",
                "0"
            ]
        );
        assert_eq!(
            lines[3],
            format!("{:<21} error: connection refused", "127.0.0.1:7002")
        );
        assert!(lines[4].starts_with("total "));
    }

    #[test]
    fn the_json_names_counters_as_the_server_does() {
        let v = json(&frame());
        assert_eq!(v["time_ms"], 3_661_000);
        assert_eq!(v["nodes"][0]["grants"], 40);
        assert_eq!(v["nodes"][0]["per_second"]["releases"], 3.5);
        assert_eq!(v["nodes"][0]["error"], Value::Null);
        assert_eq!(v["nodes"][1]["error"], "connection refused");
        assert_eq!(v["nodes"][1]["per_second"], Value::Null);
        assert_eq!(v["total"]["node"], "total");
    }
}
