//! `cargo xtask chaos --minutes N`: the chaos checker of
//! `client/tests/chaos.rs` for a long run. It builds the module (debug),
//! runs the ignored `long_run` test with the run's settings in
//! `BATON_CHAOS_*` variables (the test prints a progress line every few
//! seconds and the summary table), then writes the table with the date,
//! the machine and the command into `docs/CHAOS.md` (between the
//! `<!-- xtask chaos -->` markers) unless `--no-write`. The durable runs
//! must show no violation: the command fails when one does, after writing
//! the table. The servers run in `target/chaos-tmp` (`TMPDIR`), out of
//! reach of cleanups of `/tmp`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use baton_benches::setup::{now_utc, Machine};

use crate::cargo::{build_module, cargo, header, run, target_dir, workspace_root};
use crate::deps;

/// Where the generated section goes in `docs/CHAOS.md`.
const BEGIN: &str = "<!-- xtask chaos: begin -->";
const END: &str = "<!-- xtask chaos: end -->";

/// The settings of one `cargo xtask chaos` run.
#[derive(Debug)]
pub struct Options {
    minutes: u64,
    /// `durable`, `non-durable` or `both`.
    modes: &'static str,
    /// `module`, `lua` or `both`.
    backends: String,
    seed: u64,
    faults: Option<String>,
    /// `cluster`, or `sentinel` once the client follows Sentinel URLs.
    topology: String,
    write: bool,
}

const USAGE: &str = "usage: cargo xtask chaos --minutes N [--durable|--non-durable|--both] \
                     [--backend module|lua|both] [--seed S] [--faults kill,pause,...] \
                     [--topology cluster|sentinel] [--no-write]";

impl Options {
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut o = Options {
            minutes: 0,
            modes: "both",
            backends: "both".into(),
            seed: 1,
            faults: None,
            topology: "cluster".into(),
            write: true,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .with_context(|| format!("{name} needs a value\n{USAGE}"))
            };
            match arg.as_str() {
                "--minutes" => {
                    o.minutes = value("--minutes")?
                        .parse()
                        .ok()
                        .filter(|&m| m > 0)
                        .with_context(|| format!("--minutes needs a positive integer\n{USAGE}"))?;
                }
                "--durable" => o.modes = "durable",
                "--non-durable" => o.modes = "non-durable",
                "--both" => o.modes = "both",
                "--backend" => {
                    o.backends = value("--backend")?;
                    if !["module", "lua", "both"].contains(&o.backends.as_str()) {
                        bail!("--backend: module, lua or both\n{USAGE}");
                    }
                }
                "--seed" => {
                    o.seed = value("--seed")?
                        .parse()
                        .with_context(|| format!("--seed needs a number\n{USAGE}"))?;
                }
                "--faults" => o.faults = Some(value("--faults")?),
                "--topology" => {
                    o.topology = value("--topology")?;
                    if !["cluster", "sentinel"].contains(&o.topology.as_str()) {
                        bail!("--topology: cluster or sentinel\n{USAGE}");
                    }
                }
                "--no-write" => o.write = false,
                other => bail!("unknown option {other:?}\n{USAGE}"),
            }
        }
        if o.minutes == 0 {
            bail!("--minutes is required\n{USAGE}");
        }
        Ok(o)
    }

    /// The command line that reproduces this run.
    fn command(&self) -> String {
        let mut c = format!("cargo xtask chaos --minutes {}", self.minutes);
        match self.modes {
            "durable" => c.push_str(" --durable"),
            "non-durable" => c.push_str(" --non-durable"),
            _ => {}
        }
        if self.backends != "both" {
            c.push_str(&format!(" --backend {}", self.backends));
        }
        if self.seed != 1 {
            c.push_str(&format!(" --seed {}", self.seed));
        }
        if let Some(f) = &self.faults {
            c.push_str(&format!(" --faults {f}"));
        }
        if self.topology != "cluster" {
            c.push_str(&format!(" --topology {}", self.topology));
        }
        c
    }
}

pub fn run_chaos(o: Options) -> Result<()> {
    header("[1/3] system dependencies: redis-server 7.x, libclang");
    deps::ensure()?;
    header("[2/3] cargo build -p baton-module");
    let module = build_module(false)?;
    header(&format!(
        "[3/3] chaos: {} min per run, {} x {}, seed {} (a progress line per run every 30 s)",
        o.minutes, o.backends, o.modes, o.seed
    ));
    let report = target_dir().join("chaos-report.md");
    let _ = std::fs::remove_file(&report);
    // The servers' dirs in a temp dir of the run's own: a cluster node
    // whose dir goes (a cleanup of /tmp/baton-redis-* by anyone) cannot
    // save nodes.conf and exits, which would void the run.
    let tmp = target_dir().join("chaos-tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    let started = now_utc();
    let mut test = cargo(&[
        "test",
        "-p",
        "baton-client",
        "--test",
        "chaos",
        "--",
        "--ignored",
        "--exact",
        "long_run",
        "--nocapture",
    ]);
    test.env("BATON_MODULE", &module)
        .env("TMPDIR", &tmp)
        .env("BATON_CHAOS_SECONDS", (o.minutes * 60).to_string())
        .env("BATON_CHAOS_MODES", o.modes)
        .env("BATON_CHAOS_BACKENDS", &o.backends)
        .env("BATON_CHAOS_SEED", o.seed.to_string())
        .env("BATON_CHAOS_TOPOLOGY", &o.topology)
        .env("BATON_CHAOS_REPORT", &report);
    if let Some(f) = &o.faults {
        test.env("BATON_CHAOS_FAULTS", f);
    }
    let outcome = run("chaos", &mut test);
    if let Ok(table) = std::fs::read_to_string(&report) {
        let section = section(&o, &started, &table);
        println!("\n{section}");
        if o.write {
            let path = workspace_root().join("docs").join("CHAOS.md");
            write_section(&path, &section)?;
            println!("written to {}", path.display());
        }
    }
    outcome
}

/// The generated part of docs/CHAOS.md: what ran, where, and its table.
fn section(o: &Options, started: &str, table: &str) -> String {
    let m = Machine::detect();
    format!(
        "### Last `cargo xtask chaos` run\n\n\
         `{}` (seed {}), started {started}; {} logical CPUs ({}), {}, {}; \
         debug build of the module; every run below ran at the same time as \
         the others, on its own servers.\n\n{table}",
        o.command(),
        o.seed,
        m.nproc,
        m.cpu,
        m.kernel,
        m.redis,
    )
}

/// Replaces what lies between the markers in `path` with `section` (the
/// markers are appended when missing).
fn write_section(path: &Path, section: &str) -> Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{BEGIN}\n{}\n{END}", section.trim_end());
    let new = match (text.find(BEGIN), text.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{block}{}", &text[..b], &text[e + END.len()..]),
        _ => format!("{}\n{block}\n", text.trim_end()),
    };
    std::fs::write(path, new).with_context(|| format!("write {}", path.display()))
}
