//! The Lua scripts of `lua/`, embedded, with their SHA-1 computed once, and
//! the one way they are run: `EVALSHA`, and on `NOSCRIPT` the whole script
//! by `EVAL` on the same connection (so on the same node, which caches it
//! from then on).
//!
//! A lock script is `lua/base.lua` (clock, fence counter, argument checks,
//! queue helpers), `lua/common.lua` (the lock's prelude: key layout, expiry
//! check, hand-off) and the command's own file; a semaphore script is
//! `lua/base.lua`, `lua/sem/common.lua` (the semaphore's prelude) and its
//! file under `lua/sem/`. A bus script (`lua/bus/`) stands alone.

use std::sync::LazyLock;

use redis::{ToRedisArgs, Value};

use crate::backend::conns::Conn;
use crate::backend::Kind;
use crate::error::Result;

const BASE: &str = include_str!("../../lua/base.lua");
const LOCK_PRELUDE: &str = include_str!("../../lua/common.lua");
const SEM_PRELUDE: &str = include_str!("../../lua/sem/common.lua");

/// One script: its body and its SHA-1 (hex), as EVALSHA wants it.
#[derive(Debug)]
pub(crate) struct Script {
    pub(crate) name: &'static str,
    pub(crate) body: String,
    pub(crate) sha: String,
}

impl Script {
    /// A lock or semaphore script: the base, `prelude`, then `own`.
    fn with_prelude(name: &'static str, prelude: &str, own: &str) -> Self {
        Self::plain(name, &format!("{BASE}\n{prelude}\n-- {name}.lua\n{own}"))
    }

    /// A lock script.
    fn lock(name: &'static str, own: &str) -> Self {
        Self::with_prelude(name, LOCK_PRELUDE, own)
    }

    /// A semaphore script.
    fn sem(name: &'static str, own: &str) -> Self {
        Self::with_prelude(name, SEM_PRELUDE, own)
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
        // Room for the keys and arguments of every script here, so that the
        // buffers are allocated once, not grown argument by argument.
        let mut cmd = redis::Cmd::with_capacity(16, verb.len() + script.len() + 256);
        cmd.arg(verb)
            .arg(script)
            .arg(keys.len())
            .arg(keys)
            .arg(args);
        cmd
    }

    /// Runs the script on `conn`: EVALSHA, and EVAL of the whole script on
    /// `NOSCRIPT` (a node that restarted or flushed its scripts). Through
    /// [`Conn::query`]: no boxed future per call on a single node.
    pub(crate) async fn eval_on<K: ToRedisArgs, A: ToRedisArgs>(
        &self,
        conn: &mut Conn,
        keys: &[K],
        args: &[A],
    ) -> Result<Value> {
        match conn.query(&self.cmd(false, keys, args)).await {
            Err(e) if e.code() == Some("NOSCRIPT") => {
                tracing::debug!(script = self.name, "NOSCRIPT: sending the script whole");
                Ok(conn.query(&self.cmd(true, keys, args)).await?)
            }
            other => Ok(other?),
        }
    }
}

/// The scripts of the commands that locks and semaphores both have.
#[derive(Debug)]
pub(crate) struct Commands {
    pub(crate) acquire: Script,
    pub(crate) release: Script,
    pub(crate) extend: Script,
    pub(crate) force_release: Script,
    pub(crate) info: Script,
}

/// Every script of the Lua backend.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) lock: Commands,
    pub(crate) fence: Script,
    pub(crate) sem: Commands,
}

impl Scripts {
    pub(crate) fn all(&self) -> [&Script; 11] {
        let (l, s) = (&self.lock, &self.sem);
        [
            &l.acquire,
            &l.release,
            &l.extend,
            &l.force_release,
            &self.fence,
            &l.info,
            &s.acquire,
            &s.release,
            &s.extend,
            &s.force_release,
            &s.info,
        ]
    }

    /// The scripts for what `kind` names.
    pub(crate) fn of(&self, kind: Kind) -> &Commands {
        match kind {
            Kind::Lock => &self.lock,
            Kind::Sem { .. } => &self.sem,
        }
    }
}

/// Hashed once per process.
pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    lock: Commands {
        acquire: Script::lock("acquire", include_str!("../../lua/acquire.lua")),
        release: Script::lock("release", include_str!("../../lua/release.lua")),
        extend: Script::lock("extend", include_str!("../../lua/extend.lua")),
        force_release: Script::lock("forcerelease", include_str!("../../lua/forcerelease.lua")),
        info: Script::lock("info", include_str!("../../lua/info.lua")),
    },
    fence: Script::lock("fence", include_str!("../../lua/fence.lua")),
    sem: Commands {
        acquire: Script::sem("sem/acquire", include_str!("../../lua/sem/acquire.lua")),
        release: Script::sem("sem/release", include_str!("../../lua/sem/release.lua")),
        extend: Script::sem("sem/extend", include_str!("../../lua/sem/extend.lua")),
        force_release: Script::sem(
            "sem/forcerelease",
            include_str!("../../lua/sem/forcerelease.lua"),
        ),
        info: Script::sem("sem/info", include_str!("../../lua/sem/info.lua")),
    },
});

/// `key` as a hash tag: escaped (`%` `{` `}` become `%25` `%7B` `%7D`) and
/// wrapped in braces, so every Redis key built on it hashes to one slot
/// whatever braces the user key holds.
fn tag(key: &str) -> String {
    let mut tag = String::with_capacity(key.len() + 2);
    tag.push('{');
    for c in key.chars() {
        match c {
            '%' => tag.push_str("%25"),
            '{' => tag.push_str("%7B"),
            '}' => tag.push_str("%7D"),
            c => tag.push(c),
        }
    }
    tag.push('}');
    tag
}

/// The Redis keys of one lock, in the order its scripts take them (see
/// `lua/common.lua`).
pub(crate) fn lock_keys(key: &str) -> [String; 4] {
    let h = format!("baton:{}", tag(key));
    [
        h.clone(),
        format!("{h}:q"),
        format!("{h}:w"),
        format!("{h}:c"),
    ]
}

/// The Redis keys of one semaphore, in the order its scripts take them
/// (see `lua/sem/common.lua`). `baton:sem:` never begins a lock's key
/// (`baton:{`), so a semaphore and a lock of the same name stay apart.
pub(crate) fn sem_keys(key: &str) -> [String; 5] {
    let s = format!("baton:sem:{}", tag(key));
    [
        s.clone(),
        format!("{s}:e"),
        format!("{s}:q"),
        format!("{s}:w"),
        format!("{s}:c"),
    ]
}

/// The Redis keys of what `kind` names, for its scripts.
pub(crate) fn keys(kind: Kind, key: &str) -> Vec<String> {
    match kind {
        Kind::Lock => lock_keys(key).into(),
        Kind::Sem { .. } => sem_keys(key).into(),
    }
}

/// The pub/sub channel on which hand-offs of `key` are announced.
pub(crate) fn channel(kind: Kind, key: &str) -> String {
    format!("{}:ch", keys(kind, key)[0])
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
        assert_eq!(channel(Kind::Lock, "a"), "baton:{a}:ch");
        let sem = Kind::Sem {
            limit: 2,
            permits: 1,
        };
        assert_eq!(
            sem_keys("a"),
            [
                "baton:sem:{a}",
                "baton:sem:{a}:e",
                "baton:sem:{a}:q",
                "baton:sem:{a}:w",
                "baton:sem:{a}:c"
            ]
        );
        assert_eq!(sem_keys("}x{%")[3], "baton:sem:{%7Dx%7B%25}:w");
        assert_eq!(channel(sem, "a"), "baton:sem:{a}:ch");
    }

    #[test]
    fn shas_are_sha1_hex() {
        for s in SCRIPTS.all() {
            assert_eq!(s.sha.len(), 40, "{}", s.name);
        }
    }
}
