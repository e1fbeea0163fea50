//! The nemesis: a thread that faults the servers holding the locks, one
//! fault every `gap` (a random time in a range), and waits after each for
//! the topology to settle (by condition, with deadlines: see
//! [`Topology::settle`]). Faults go round in cycles, each cycle every kind
//! once in a random (seeded) order, so a short run still sees each kind.
//!
//! A primary without persistence that is restarted before its replica took
//! over comes back empty and keeps its slots: every lock on it is gone, a
//! deployment error the lock service cannot undo. The nemesis therefore
//! restarts a killed primary only once its replica has been promoted, as
//! an operator (or an orchestrator with a liveness check slower than the
//! failover) would.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::history::{Fault, History};
use super::topology::Topology;

/// How long a topology may take to settle or to promote a replica.
const SETTLE: Duration = Duration::from_secs(30);
/// How long [`FaultKind::KillStayDown`] keeps the old primary down after
/// its replica took over.
const DOWN: Duration = Duration::from_secs(5);

/// What the nemesis does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// SIGKILL the primary; once a replica took over, start it again (it
    /// comes back empty and rejoins as a replica).
    KillPrimary,
    /// Like [`FaultKind::KillPrimary`], but the killed server stays down
    /// for [`DOWN`] after the promotion, as a crashed host would: the
    /// service must go on without it. Not in the default mix (see
    /// docs/CHAOS.md: module waits cannot follow such a failover yet).
    KillStayDown,
    /// SIGSTOP the primary until a replica took over (longer than the node
    /// timeout), then SIGCONT: it finds itself demoted.
    PausePrimary,
    /// SIGSTOP the primary for a quarter to half the node timeout: its
    /// holders cannot extend, nothing fails over.
    PauseShort,
    /// `CLUSTER FAILOVER` (or `SENTINEL FAILOVER`): a handover that waits
    /// for the replica to catch up.
    Failover,
    /// `CLUSTER FAILOVER TAKEOVER`: the replica takes over at once, whatever
    /// is still on its way to it.
    Takeover,
    /// `CLIENT KILL TYPE normal` on the primary.
    ClientKill,
    /// SIGKILL a replica and start it again at once (it resyncs in full).
    RestartReplica,
    /// `FLUSHALL` on the primary: every lock vanishes under its holders, an
    /// operator error no lock service survives (its waiters are granted at
    /// once while the holders learn of the loss only at their next
    /// extend). Not in the default mix: it shows the checker sees double
    /// grants and the register refuses the stale holders' writes.
    Flush,
}

impl FaultKind {
    /// The default mix: faults a correct deployment must survive, each
    /// short (not [`FaultKind::Flush`], which none survives, nor
    /// [`FaultKind::KillStayDown`]).
    pub const ALL: [FaultKind; 7] = [
        FaultKind::KillPrimary,
        FaultKind::PausePrimary,
        FaultKind::PauseShort,
        FaultKind::Failover,
        FaultKind::Takeover,
        FaultKind::ClientKill,
        FaultKind::RestartReplica,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillPrimary => "kill",
            FaultKind::PausePrimary => "pause",
            FaultKind::PauseShort => "short-pause",
            FaultKind::Failover => "failover",
            FaultKind::Takeover => "takeover",
            FaultKind::ClientKill => "client-kill",
            FaultKind::RestartReplica => "replica-restart",
            FaultKind::Flush => "flushall",
            FaultKind::KillStayDown => "kill-stay-down",
        }
    }

    /// Parses [`FaultKind::name`].
    pub fn parse(name: &str) -> Option<FaultKind> {
        Self::ALL
            .into_iter()
            .chain([FaultKind::Flush, FaultKind::KillStayDown])
            .find(|k| k.name() == name)
    }
}

/// How the nemesis runs.
#[derive(Debug, Clone)]
pub struct Plan {
    pub kinds: Vec<FaultKind>,
    /// The pause before each fault: a random time in this range.
    pub gap: (Duration, Duration),
    /// The servers' cluster node timeout (a short pause stays well below).
    pub node_timeout: Duration,
    pub seed: u64,
}

/// Runs faults on `topology` until `stop` says so (a message or a dropped
/// sender), each recorded in `history` once settled; returns the topology
/// settled, or what went wrong with the servers (the run cannot go on).
/// Kinds the topology cannot do (a takeover under Sentinels) are dropped
/// from the plan.
pub fn spawn(
    topology: Topology,
    plan: Plan,
    history: Arc<Mutex<History>>,
    stop: Receiver<()>,
) -> thread::JoinHandle<Result<Topology, String>> {
    thread::Builder::new()
        .name("nemesis".into())
        .spawn(move || {
            let mut plan = plan;
            if !topology.can_take_over() {
                plan.kinds.retain(|k| *k != FaultKind::Takeover);
            }
            let mut n = Nemesis {
                topology,
                rng: StdRng::seed_from_u64(plan.seed),
                plan,
                primary: 0,
            };
            n.primary = n.topology.settle(SETTLE)?;
            n.run(&history, &stop)?;
            Ok(n.topology)
        })
        .expect("spawn the nemesis thread")
}

/// Whether a fault's command went through. One that failed (refused, or
/// timed out on a busy machine: it may still have been applied) does not
/// void the run: it is reported, and the settle that follows finds out
/// what the servers did (a promotion is told by the primary it finds).
fn done(kind: FaultKind, reply: Result<(), String>) -> bool {
    match reply {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "nemesis: {} command failed, settling anyway: {e}",
                kind.name()
            );
            false
        }
    }
}

struct Nemesis {
    topology: Topology,
    plan: Plan,
    rng: StdRng,
    /// The primary as of the last settle.
    primary: usize,
}

impl Nemesis {
    fn run(&mut self, history: &Mutex<History>, stop: &Receiver<()>) -> Result<(), String> {
        let mut cycle: Vec<FaultKind> = Vec::new();
        loop {
            let (lo, hi) = self.plan.gap;
            let gap = self.rng.random_range(lo..=hi);
            match stop.recv_timeout(gap) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return Ok(()),
            }
            if cycle.is_empty() {
                cycle = self.plan.kinds.clone();
                cycle.shuffle(&mut self.rng);
            }
            let kind = cycle.pop().expect("a non-empty cycle");
            let started = Instant::now();
            let old = self.primary;
            self.apply(kind)
                .map_err(|e| format!("fault {}: {e}", kind.name()))?;
            let fault = Fault {
                kind: kind.name(),
                started,
                settled: Instant::now(),
                promoted: self.primary != old,
            };
            history.lock().expect("history poisoned").faults.push(fault);
        }
    }

    /// Does one fault and waits for the topology to settle again.
    fn apply(&mut self, kind: FaultKind) -> Result<(), String> {
        let p = self.primary;
        match kind {
            FaultKind::KillPrimary => {
                self.topology.server_mut(p).kill();
                let promoted = self.topology.wait_promoted(p, SETTLE);
                self.topology.server_mut(p).respawn();
                promoted?;
            }
            FaultKind::KillStayDown => {
                self.topology.server_mut(p).kill();
                let promoted = self.topology.wait_promoted(p, SETTLE);
                if promoted.is_ok() {
                    thread::sleep(DOWN);
                }
                self.topology.server_mut(p).respawn();
                promoted?;
            }
            FaultKind::PausePrimary => {
                self.topology.server(p).freeze();
                let promoted = self.topology.wait_promoted(p, SETTLE);
                self.topology.server(p).resume();
                promoted?;
            }
            FaultKind::PauseShort => {
                let t = self.plan.node_timeout;
                let pause = self.rng.random_range(t / 4..=t / 2);
                self.topology.server(p).freeze();
                thread::sleep(pause);
                self.topology.server(p).resume();
            }
            FaultKind::Failover => {
                if done(kind, self.topology.failover(p)) {
                    self.topology.wait_promoted(p, SETTLE)?;
                }
            }
            FaultKind::Takeover => {
                if done(kind, self.topology.takeover(p)) {
                    self.topology.wait_promoted(p, SETTLE)?;
                }
            }
            FaultKind::ClientKill => {
                done(kind, self.topology.kill_clients(p).map(drop));
            }
            FaultKind::RestartReplica => {
                let replicas: Vec<usize> = (0..self.topology.len()).filter(|&i| i != p).collect();
                let r = replicas[self.rng.random_range(0..replicas.len())];
                self.topology.server_mut(r).crash_restart();
            }
            FaultKind::Flush => {
                done(kind, self.topology.flush(p));
            }
        }
        self.primary = self.topology.settle(SETTLE)?;
        Ok(())
    }
}
