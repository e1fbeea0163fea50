//! The fenced register the workers write to: a plain `redis-server` of its
//! own (never faulted) and one Lua script that accepts a write of `key` only
//! with a fence at least as large as the largest it accepted for `key`.
//!
//! Keys of the register: `max:<key>` (the largest fence accepted),
//! `log:<key>` (accepted values, in order) and the hash `writes` (fields
//! `accepted`, `refused`), so the run can compare the register's own
//! counts with what the workers recorded.

use std::time::Duration;

use baton_harness::RedisServer;
use redis::aio::MultiplexedConnection;

/// The check and the write, atomically. Fences stay below 2^53 (SPEC §9),
/// so Lua's doubles compare them exactly.
const WRITE: &str = r"
local max = tonumber(redis.call('GET', KEYS[1]) or '0')
local fence = tonumber(ARGV[1])
if fence < max then
  redis.call('HINCRBY', 'writes', 'refused', 1)
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[1] .. ' ' .. ARGV[2])
redis.call('HINCRBY', 'writes', 'accepted', 1)
return 1
";

/// How long one write may take before it counts as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The register's server.
#[derive(Debug)]
pub struct Register {
    server: RedisServer,
    sha: String,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Accepted,
    /// The fence was smaller than one the register had accepted.
    Refused,
    Failed,
}

impl Register {
    /// Starts the register's server and loads the script.
    pub fn start() -> Register {
        let server = RedisServer::builder().without_module().start();
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(WRITE)
            .query(&mut server.connection())
            .expect("SCRIPT LOAD of the register");
        Register { server, sha }
    }

    /// A connection for one worker.
    pub async fn writer(&self) -> Writer {
        let cfg = redis::AsyncConnectionConfig::new()
            .set_response_timeout(None)
            .set_connection_timeout(Some(WRITE_TIMEOUT));
        let conn = self
            .server
            .client()
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .expect("connect to the register");
        Writer {
            conn,
            sha: self.sha.clone(),
        }
    }

    /// The register's own counts: (accepted, refused).
    pub fn counts(&self) -> (usize, usize) {
        let (accepted, refused): (Option<usize>, Option<usize>) = redis::cmd("HMGET")
            .arg("writes")
            .arg("accepted")
            .arg("refused")
            .query(&mut self.server.connection())
            .expect("HMGET writes");
        (accepted.unwrap_or(0), refused.unwrap_or(0))
    }
}

/// One worker's connection to the register.
#[derive(Debug, Clone)]
pub struct Writer {
    conn: MultiplexedConnection,
    sha: String,
}

impl Writer {
    /// Writes `value` to `key` under `fence`.
    pub async fn write(&mut self, key: &str, fence: u64, value: &str) -> Write {
        let cmd = redis::cmd("EVALSHA")
            .arg(&self.sha)
            .arg(2)
            .arg(format!("max:{key}"))
            .arg(format!("log:{key}"))
            .arg(fence)
            .arg(value)
            .to_owned();
        match tokio::time::timeout(WRITE_TIMEOUT, cmd.query_async::<i64>(&mut self.conn)).await {
            Ok(Ok(1)) => Write::Accepted,
            Ok(Ok(_)) => Write::Refused,
            Ok(Err(_)) | Err(_) => Write::Failed,
        }
    }
}
