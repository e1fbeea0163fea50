//! What the read commands print: a lock's state, an election's leader and
//! the counters, as aligned text or as JSON (one object, fields named as
//! the server names them).

use baton_client::{Leader, LockInfo, Stats};
use serde_json::{json, Map, Value};

/// The counters of [`Stats`] by their `LOCK.STATS` names, in its order.
pub fn counters(s: &Stats) -> [(&'static str, u64); 9] {
    [
        ("locks", s.locks),
        ("held", s.held),
        ("waiters", s.waiters),
        ("grants", s.grants),
        ("releases", s.releases),
        ("extends", s.extends),
        ("expirations", s.expirations),
        ("wait_timeouts", s.wait_timeouts),
        ("force_releases", s.force_releases),
    ]
}

/// The counters as a JSON object.
pub fn stats_json(s: &Stats) -> Value {
    Value::Object(
        counters(s)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect::<Map<_, _>>(),
    )
}

/// The counters as `name  value` lines.
pub fn stats_text(s: &Stats) -> String {
    table(counters(s).map(|(k, v)| (k, v.to_string())))
}

/// A lock as JSON: `pttl` in milliseconds, `null` when free; `meta` as
/// text (bytes that are not UTF-8 replaced), `null` when none.
pub fn info_json(key: &str, i: &LockInfo) -> Value {
    json!({
        "key": key,
        "held": i.held,
        "fence": i.fence,
        "pttl": i.pttl,
        "waiters": i.waiters,
        "meta": meta_text(i),
    })
}

fn meta_text(i: &LockInfo) -> Option<String> {
    i.meta
        .as_deref()
        .map(|m| String::from_utf8_lossy(m).into_owned())
}

/// A lock as `name  value` lines.
pub fn info_text(key: &str, i: &LockInfo) -> String {
    let left = i
        .pttl
        .map_or_else(|| "-".to_string(), |ms| format!("{ms}ms"));
    table([
        ("key", key.to_string()),
        ("held", if i.held { "yes" } else { "no" }.to_string()),
        ("fence", i.fence.to_string()),
        ("pttl", left),
        ("waiters", i.waiters.to_string()),
        ("meta", meta_text(i).unwrap_or_else(|| "-".to_string())),
    ])
}

/// An election as JSON: `leader` is `null` while nobody leads, else its
/// `term` and `value` (as text, bytes that are not UTF-8 replaced).
pub fn leader_json(name: &str, leader: Option<&Leader>) -> Value {
    json!({
        "name": name,
        "leader": leader.map(|l| json!({
            "term": l.term,
            "value": String::from_utf8_lossy(&l.value),
        })),
    })
}

/// An election as `name  value` lines.
pub fn leader_text(name: &str, leader: Option<&Leader>) -> String {
    let (term, value) = match leader {
        Some(l) => (
            l.term.to_string(),
            String::from_utf8_lossy(&l.value).into_owned(),
        ),
        None => ("-".to_string(), "-".to_string()),
    };
    let led = if leader.is_some() { "yes" } else { "no" };
    table([
        ("name", name.to_string()),
        ("led", led.to_string()),
        ("term", term),
        ("value", value),
    ])
}

fn table<const N: usize>(rows: [(&str, String); N]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_lock_has_no_pttl() {
        let free = LockInfo::default();
        assert_eq!(
            info_json("k", &free),
            json!({"key": "k", "held": false, "fence": 0, "pttl": null, "waiters": 0, "meta": null})
        );
        assert_eq!(
            info_text("k", &free),
            "key      k\nheld     no\nfence    0\npttl     -\nwaiters  0\nmeta     -\n"
        );
    }

    #[test]
    fn meta_is_shown_as_text() {
        let held = LockInfo {
            held: true,
            meta: Some(b"10.0.0.7".to_vec()),
            ..LockInfo::default()
        };
        assert_eq!(info_json("k", &held)["meta"], "10.0.0.7");
        assert!(info_text("k", &held).contains("meta     10.0.0.7\n"));
    }

    #[test]
    fn every_counter_is_shown_once() {
        let s = Stats {
            grants: 3,
            force_releases: 1,
            ..Stats::default()
        };
        let v = stats_json(&s);
        assert_eq!(v.as_object().map(Map::len), Some(9));
        assert_eq!(v["grants"], 3);
        assert!(stats_text(&s).contains("force_releases  1\n"));
    }
}
