//! Replication helpers: wait for a replica to catch up, promote it.

use std::time::Duration;

use crate::poll::wait_until;
use crate::server::RedisServer;

/// How long a replica may take to sync.
const SYNC_TIMEOUT: Duration = Duration::from_secs(15);

/// One field of `INFO <section>`, e.g. `info_field(&s, "replication", "role")`.
///
/// `None` also when the connection fails: waits poll this while Sentinel
/// reconfigures a server, and Sentinel's `CLIENT KILL TYPE normal` may cut
/// the query short; the caller's assertion on the value stays the check.
pub fn info_field(server: &RedisServer, section: &str, field: &str) -> Option<String> {
    let text: String = redis::cmd("INFO")
        .arg(section)
        .query(&mut server.quick_connection(Duration::from_secs(5)).ok()?)
        .ok()?;
    parse_info_field(&text, field)
}

/// `field` out of INFO text (`name:value` lines).
pub fn parse_info_field(text: &str, field: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim_end().split_once(':'))
        .find(|(name, _)| *name == field)
        .map(|(_, value)| value.to_string())
}

/// Waits until `replica` has its link to `primary` up and has processed
/// everything the primary had written when this was called, and until the
/// primary streams new writes to it.
///
/// The offset alone is not enough right after a diskless full sync: the
/// replica has the RDB, but Redis 7.0 holds the command stream until the
/// replica's first `REPLCONF ACK`, which replicas send once a second. So the
/// primary is also asked `WAIT 1`, which returns once the replica has
/// acknowledged every write so far (the primary asks for that ACK at once).
///
/// # Panics
///
/// When that takes longer than 15 s; the message holds both logs.
pub fn wait_for_sync(primary: &RedisServer, replica: &RedisServer) {
    let target: i64 = info_field(primary, "replication", "master_repl_offset")
        .and_then(|v| v.parse().ok())
        .expect("primary reports master_repl_offset");
    let synced = wait_until(SYNC_TIMEOUT, || {
        let link_up =
            info_field(replica, "replication", "master_link_status").as_deref() == Some("up");
        let offset: i64 = info_field(replica, "replication", "slave_repl_offset")
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1);
        link_up && offset >= target
    });
    let acked: i64 = if synced {
        redis::cmd("WAIT")
            .arg(1)
            .arg(SYNC_TIMEOUT.as_millis() as u64)
            .query(&mut primary.connection())
            .expect("WAIT")
    } else {
        0
    };
    assert!(
        synced && acked >= 1,
        "replica on port {} did not reach offset {target} of primary {} (or acknowledge it) within {SYNC_TIMEOUT:?}\n\
         primary log:\n{}\nreplica log:\n{}",
        replica.port(),
        primary.port(),
        primary.log_tail(),
        replica.log_tail()
    );
}

/// Promotes a replica: `REPLICAOF NO ONE`, then waits until it reports
/// `role:master`.
pub fn promote(replica: &RedisServer) {
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut replica.connection())
        .expect("REPLICAOF NO ONE");
    let promoted = wait_until(SYNC_TIMEOUT, || {
        info_field(replica, "replication", "role").as_deref() == Some("master")
    });
    assert!(
        promoted,
        "replica on port {} did not become master",
        replica.port()
    );
}
