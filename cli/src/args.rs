//! The command line, declared with clap's derive: every subcommand, flag and
//! help text (examples and exit statuses included). Shell completions are
//! generated from the same declaration (`baton completions SHELL`).

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::duration;

const ABOUT: &str = "Distributed locks in Redis for shells, cron and CI";

const EXAMPLES: &str = "\
Examples:
  # Run a nightly job on one machine of many; skip it if another runs it
  baton lock nightly-report --no-wait -- ./report.sh

  # Wait up to a minute for the lock, keep it alive for as long as make runs
  baton lock deploy:web --wait 1m -- make deploy

  # Look at a lock, and at the server's counters
  baton info deploy:web
  baton stats --json

  # Take a lock away from a stuck holder (its CMD gets SIGTERM)
  baton release --force deploy:web

  # A live view of grants, releases and expirations per second
  baton top --url redis://10.0.0.5:6379
";

const LOCK_HELP: &str = "\
CMD runs with the lock held. The watchdog extends the lock every ttl/3 for
as long as CMD runs, and the lock is released when CMD exits. CMD runs in
a process group of its own, with these in its environment:
  BATON_KEY    the lock's key
  BATON_FENCE  the grant's fencing token: pass it to what CMD writes to,
               and have that refuse writes with a smaller fence
  BATON_TOKEN  the token the grant is held under, for a CMD that extends
               or releases it itself (LOCK.EXTEND KEY TOKEN MS on the module)

With --limit N, KEY names a semaphore of N permits instead of a lock: up
to N permits' worth of runs go at once (--permits P takes P of them), each
with a fence of its own.

If the lock is lost (it expired while Redis was unreachable, or someone ran
`baton release --force`), CMD's process group gets SIGTERM, then SIGKILL
after --kill-after, and baton exits with 79. SIGINT, SIGTERM and SIGHUP sent
to baton are passed on to CMD's process group; baton then waits for CMD and
releases. If baton itself is killed (SIGKILL), CMD (the process baton
started) gets SIGTERM, and the lock expires after its ttl.

Without --wait or --no-wait, baton waits until the lock is free, in the
server's FIFO queue (first come, first served).

Durations: 500ms, 30s, 5m, 1h, 1m30s, 1.5s, or a bare number of seconds.

Examples:
  # In a crontab: at most one backup at a time across all hosts
  */5 * * * * baton lock backup --no-wait -- /usr/local/bin/backup.sh

  # Wait at most 10s; give CMD 30s to stop if the lock is lost
  baton lock orders:42 --wait 10s --kill-after 30s -- ./migrate.sh

  # At most 3 builds at once on the build farm
  baton lock builds --limit 3 -- make release

  # A shell snippet under the lock
  baton lock deploy -- sh -c 'echo \"deploying with fence $BATON_FENCE\"; make deploy'
";

const ELECT_HELP: &str = "\
CMD runs while this baton leads the election NAME: it campaigns (waits in
line, first come first served), and once leader runs CMD as `baton lock`
does, with the leadership kept by the watchdog. CMD sees BATON_KEY (the
name), BATON_TERM and BATON_FENCE (both the leader's term: larger than
every term before, a fence for what the leader writes). When CMD ends,
baton resigns and the next campaigner leads at once. If leadership is
lost, CMD is stopped as under `baton lock` and baton exits 79.

`baton leader NAME` shows the leader's term and --value.

Examples:
  # One scheduler at a time across all hosts; the others stand by
  baton elect scheduler --value \"$(hostname)\" --ttl 10s -- ./scheduler
";

/// The help of `--url`.
pub const URL_HELP: &str = "Redis to use: redis://[user:password@]host:port[/db], rediss://... \
                            (TLS; a private CA is trusted with SSL_CERT_FILE=ca.pem), \
                            redis+sentinel://host:port[,host:port...]/service, or any node of a \
                            Cluster (the rest is discovered)";

/// `baton`: the top-level command.
#[derive(Debug, Parser)]
#[command(
    name = "baton",
    version,
    about = ABOUT,
    after_help = format!("{EXAMPLES}\n{}", crate::exit::help()),
    propagate_version = true
)]
pub struct Cli {
    /// Where Redis is.
    #[command(flatten)]
    pub conn: Conn,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How to reach Redis; these flags go before or after the subcommand.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// The Redis URL (`--url`, `BATON_URL`); see [`URL_HELP`].
    #[arg(
        long,
        help = URL_HELP,
        env = "BATON_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379",
        global = true,
        value_name = "URL"
    )]
    pub url: String,

    /// The lock implementation: the baton module's LOCK.* commands, the Lua
    /// scripts (for servers without the module), or auto (the module when
    /// the server has it).
    #[arg(long, value_enum, default_value_t = BackendArg::Auto, global = true)]
    pub backend: BackendArg,
}

/// `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// The module if every primary has it loaded, else Lua (with a warning).
    Auto,
    /// The baton module; an error when the server lacks it.
    Module,
    /// The Lua scripts.
    Lua,
}

impl From<BackendArg> for baton_client::Backend {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Auto => Self::Auto,
            BackendArg::Module => Self::Module,
            BackendArg::Lua => Self::Lua,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run CMD while holding the lock KEY.
    #[command(after_help = format!("{LOCK_HELP}\n{}", crate::exit::help()))]
    Lock(LockArgs),
    /// Run CMD while leader of the election NAME (waiting in line to
    /// become leader first).
    #[command(after_help = format!("{ELECT_HELP}\n{}", crate::exit::help()))]
    Elect(ElectArgs),
    /// Show who leads the election NAME: its term and value.
    #[command(
        after_help = "Examples:\n  baton leader scheduler\n  baton leader scheduler --json | jq -r .value"
    )]
    Leader(LeaderArgs),
    /// Show a lock: held, fence, time left, waiters, the holder's META.
    #[command(after_help = "Example:\n  baton info deploy:web --json")]
    Info(InfoArgs),
    /// Show the server's lock counters (LOCK.STATS; a Cluster's summed).
    #[command(after_help = "Example:\n  baton stats --json | jq .grants")]
    Stats(JsonArgs),
    /// Remove a lock's holder; the next waiter gets it.
    #[command(
        after_help = "The holder's CMD (if it runs under `baton lock`) sees the lock lost \
                      and is stopped.\n\nExample:\n  baton release --force deploy:web"
    )]
    Release(ReleaseArgs),
    /// A live view of grants, releases and expirations per second, held
    /// locks and waiters, per node of a Cluster. Press q to quit.
    #[command(after_help = "\
Without a terminal on stdout (a pipe, a file), baton top prints one frame
per interval as plain text, or as one JSON object per line with --json.

Examples:
  baton top
  baton top --json --count 5 > counters.jsonl")]
    Top(TopArgs),
    /// Print a completion script for SHELL to stdout.
    #[command(after_help = "\
Examples:
  baton completions bash > /etc/bash_completion.d/baton
  baton completions zsh > \"${fpath[1]}/_baton\"
  baton completions fish > ~/.config/fish/completions/baton.fish")]
    Completions(CompletionsArgs),
}

/// `baton lock`.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// The lock's name (no whitespace).
    pub key: String,

    /// Take permits of a semaphore of N permits named KEY instead of the
    /// lock: runs holding up to N permits in all go at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,

    /// With --limit: the permits this run takes (default 1).
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(u32).range(1..))]
    pub permits: Option<u32>,

    /// How long, how to wait, and what to run.
    #[command(flatten)]
    pub hold: HoldArgs,
}

/// `baton elect`.
#[derive(Debug, Args)]
pub struct ElectArgs {
    /// The election's name (no whitespace): the lock its leader holds.
    pub name: String,

    /// What `baton leader NAME` shows while this run leads (at most 1024
    /// bytes), e.g. this host's address.
    #[arg(long, value_name = "VALUE")]
    pub value: String,

    /// How long, how to wait, and what to run.
    #[command(flatten)]
    pub hold: HoldArgs,
}

/// What `baton lock` and `baton elect` share: CMD runs while the grant is
/// held.
#[derive(Debug, Args)]
pub struct HoldArgs {
    /// How long the grant lives if baton stops extending it (the watchdog
    /// extends it every ttl/3 while CMD runs).
    #[arg(long, default_value = "30s", value_parser = duration::ttl, value_name = "DURATION")]
    pub ttl: Duration,

    /// Wait at most this long (default: until it is free).
    #[arg(long, value_parser = duration::wait, value_name = "DURATION", conflicts_with = "no_wait")]
    pub wait: Option<Duration>,

    /// Do not wait: exit 75 at once if it is held.
    #[arg(long)]
    pub no_wait: bool,

    /// After the grant is lost, how long CMD has between SIGTERM and SIGKILL.
    #[arg(long, default_value = "10s", value_parser = duration::grace, value_name = "DURATION")]
    pub kill_after: Duration,

    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `baton leader`.
#[derive(Debug, Args)]
pub struct LeaderArgs {
    /// The election's name.
    pub name: String,
    /// Output format.
    #[command(flatten)]
    pub json: JsonArgs,
}

/// `baton info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The lock's name.
    pub key: String,
    /// Output format.
    #[command(flatten)]
    pub json: JsonArgs,
}

/// `--json` of the read commands.
#[derive(Debug, Clone, Copy, Args)]
pub struct JsonArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `baton release`.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The lock's name.
    pub key: String,
    /// Required: the release is forced (whoever holds the lock loses it),
    /// since baton does not know the holder's token.
    #[arg(long, required = true)]
    pub force: bool,
}

/// `baton top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Time between refreshes.
    #[arg(long, default_value = "1s", value_parser = duration::interval, value_name = "DURATION")]
    pub interval: Duration,
    /// Stop after this many frames (default: until q, Ctrl-C or a signal).
    #[arg(long, short = 'n', value_name = "N")]
    pub count: Option<u64>,
    /// One JSON object per frame and line, instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `baton completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate for.
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_declaration_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn lock_takes_cmd_after_the_double_dash() {
        let cli = Cli::try_parse_from([
            "baton",
            "lock",
            "k",
            "--ttl",
            "2s",
            "--no-wait",
            "--",
            "sh",
            "-c",
            "exit 3",
        ])
        .unwrap();
        let Command::Lock(lock) = cli.command else {
            panic!("not lock: {:?}", cli.command)
        };
        assert_eq!(lock.key, "k");
        assert_eq!(lock.hold.ttl, Duration::from_secs(2));
        assert!(lock.hold.no_wait && lock.hold.wait.is_none());
        assert_eq!(lock.hold.kill_after, Duration::from_secs(10));
        assert_eq!(lock.hold.command, ["sh", "-c", "exit 3"]);
        assert_eq!(cli.conn.backend, BackendArg::Auto);
    }

    #[test]
    fn wait_and_no_wait_exclude_each_other() {
        let err = Cli::try_parse_from([
            "baton",
            "lock",
            "k",
            "--wait",
            "1s",
            "--no-wait",
            "--",
            "true",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn a_bad_duration_names_its_flag_and_the_forms() {
        let err = Cli::try_parse_from(["baton", "lock", "k", "--ttl", "5x", "--", "true"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("'--ttl <DURATION>'"), "{err}");
        assert!(err.contains(duration::FORMS), "{err}");
    }

    #[test]
    fn release_needs_force() {
        let err = Cli::try_parse_from(["baton", "release", "k"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn connection_flags_go_anywhere() {
        let cli = Cli::try_parse_from([
            "baton",
            "info",
            "k",
            "--url",
            "redis://h:1",
            "--backend",
            "lua",
            "--json",
        ])
        .unwrap();
        assert_eq!(cli.conn.url, "redis://h:1");
        assert_eq!(cli.conn.backend, BackendArg::Lua);
    }
}
