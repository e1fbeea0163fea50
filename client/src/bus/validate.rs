//! Topic, group and consumer name checks, and the Redis key layout of a
//! topic.

use crate::error::{Error, Result};

/// Checks a topic, group or consumer name: non-empty, no whitespace, no
/// braces (the topic is the key's hash tag).
pub(crate) fn name(kind: &'static str, value: &str) -> Result<()> {
    let reason = if value.is_empty() {
        "must not be empty"
    } else if value.chars().any(char::is_whitespace) {
        "must not contain whitespace"
    } else if value.contains(['{', '}']) {
        "must not contain braces"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        kind,
        name: value.to_owned(),
        reason,
    })
}

/// Keys of a topic `t`; all share the hash tag `{t}`, so one topic lives in
/// one Cluster slot.
pub(crate) mod keys {
    /// The stream: `bus:{t}`.
    pub(crate) fn stream(topic: &str) -> String {
        format!("bus:{{{topic}}}")
    }

    /// A group's dead-letter stream: `bus:{t}:dlq:<group>`.
    pub(crate) fn dlq(topic: &str, group: &str) -> String {
        format!("bus:{{{topic}}}:dlq:{group}")
    }

    /// A group's last errors, entry id to text: `bus:{t}:err:<group>`.
    pub(crate) fn errors(topic: &str, group: &str) -> String {
        format!("bus:{{{topic}}}:err:{group}")
    }

    /// A group's counters (`redeliveries`): `bus:{t}:stats:<group>`.
    pub(crate) fn stats(topic: &str, group: &str) -> String {
        format!("bus:{{{topic}}}:stats:{group}")
    }

    /// An idempotency key's marker: `bus:{t}:idem:<key>`.
    pub(crate) fn idem(topic: &str, key: &str) -> String {
        format!("bus:{{{topic}}}:idem:{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(name("topic", "orders.eu-1").is_ok());
        for bad in ["", "a b", "a{b", "}"] {
            assert!(name("topic", bad).is_err(), "{bad:?}");
        }
        assert_eq!(keys::dlq("o", "g"), "bus:{o}:dlq:g");
    }
}
