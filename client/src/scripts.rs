//! The Lua scripts of `lua/`, embedded, with their SHA-1 computed once, and
//! the one way they are run: `EVALSHA`, and on `NOSCRIPT` the whole script
//! by `EVAL` on the same connection (so on the same node, which caches it
//! from then on).
//!
//! A lock script is `lua/common.lua` (the shared prelude: key layout, expiry
//! check, hand-off) followed by the command's own file; a bus script
//! (`lua/bus/`) stands alone.

use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{ToRedisArgs, Value};

use crate::error::Result;

const COMMON: &str = include_str!("../../lua/common.lua");

/// One script: its body and its SHA-1 (hex), as EVALSHA wants it.
#[derive(Debug)]
pub(crate) struct Script {
    pub(crate) name: &'static str,
    pub(crate) body: String,
    pub(crate) sha: String,
}

impl Script {
    /// A lock script: the prelude, then `own`.
    fn lock(name: &'static str, own: &str) -> Self {
        Self::plain(name, &format!("{COMMON}\n-- {name}.lua\n{own}"))
    }

    /// A script that stands alone.
    pub(crate) fn plain(name: &'static str, body: &str) -> Self {
        let sha = sha1_smol::Sha1::from(body.as_bytes()).digest().to_string();
        Self {
            name,
            body: body.to_owned(),
            sha,
        }
    }

    /// `EVALSHA sha` (or `EVAL body`, `verb`) with `keys` and `args`.
    pub(crate) fn cmd<K: ToRedisArgs, A: ToRedisArgs>(
        &self,
        whole: bool,
        keys: &[K],
        args: &[A],
    ) -> redis::Cmd {
        let (verb, script) = match whole {
            true => ("EVAL", &self.body),
            false => ("EVALSHA", &self.sha),
        };
        let mut cmd = redis::cmd(verb);
        cmd.arg(script).arg(keys.len()).arg(keys).arg(args);
        cmd
    }

    /// Runs the script on `conn`: EVALSHA, and EVAL of the whole script on
    /// `NOSCRIPT` (a node that restarted or flushed its scripts).
    pub(crate) async fn eval_on<K: ToRedisArgs, A: ToRedisArgs>(
        &self,
        conn: &mut impl ConnectionLike,
        keys: &[K],
        args: &[A],
    ) -> Result<Value> {
        match self.cmd(false, keys, args).query_async(conn).await {
            Err(e) if e.code() == Some("NOSCRIPT") => {
                tracing::debug!(script = self.name, "NOSCRIPT: sending the script whole");
                Ok(self.cmd(true, keys, args).query_async(conn).await?)
            }
            other => Ok(other?),
        }
    }
}

/// Every script of the Lua backend.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) acquire: Script,
    pub(crate) release: Script,
    pub(crate) extend: Script,
    pub(crate) force_release: Script,
    pub(crate) fence: Script,
    pub(crate) info: Script,
}

impl Scripts {
    pub(crate) fn all(&self) -> [&Script; 6] {
        [
            &self.acquire,
            &self.release,
            &self.extend,
            &self.force_release,
            &self.fence,
            &self.info,
        ]
    }
}

/// Hashed once per process.
pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    acquire: Script::lock("acquire", include_str!("../../lua/acquire.lua")),
    release: Script::lock("release", include_str!("../../lua/release.lua")),
    extend: Script::lock("extend", include_str!("../../lua/extend.lua")),
    force_release: Script::lock("forcerelease", include_str!("../../lua/forcerelease.lua")),
    fence: Script::lock("fence", include_str!("../../lua/fence.lua")),
    info: Script::lock("info", include_str!("../../lua/info.lua")),
});

/// The Redis keys of one lock. The user key is escaped (`%` `{` `}` become
/// `%25` `%7B` `%7D`) and wrapped in a hash tag, so every key of the lock
/// hashes to one slot whatever braces the user key holds.
pub(crate) fn lock_keys(key: &str) -> [String; 4] {
    let mut tag = String::with_capacity(key.len());
    for c in key.chars() {
        match c {
            '%' => tag.push_str("%25"),
            '{' => tag.push_str("%7B"),
            '}' => tag.push_str("%7D"),
            c => tag.push(c),
        }
    }
    let h = format!("baton:{{{tag}}}");
    [
        h.clone(),
        format!("{h}:q"),
        format!("{h}:w"),
        format!("{h}:c"),
    ]
}

/// The pub/sub channel on which hand-offs of `key` are announced.
pub(crate) fn channel(key: &str) -> String {
    format!("{}:ch", lock_keys(key)[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_tag_whatever_the_braces() {
        assert_eq!(
            lock_keys("a"),
            ["baton:{a}", "baton:{a}:q", "baton:{a}:w", "baton:{a}:c"]
        );
        assert_eq!(lock_keys("}x{%")[0], "baton:{%7Dx%7B%25}");
        assert_eq!(channel("a"), "baton:{a}:ch");
    }

    #[test]
    fn shas_are_sha1_hex() {
        for s in SCRIPTS.all() {
            assert_eq!(s.sha.len(), 40, "{}", s.name);
        }
    }
}
