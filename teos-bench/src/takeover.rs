//! The `takeover` scenario (issue 12, item 7): a fleet of teosd instances on one PostgreSQL database
//! and bitcoind-sim; in each trial the leader is killed with SIGKILL and a block is mined at once;
//! the figure is the time from the kill until an instance's admin API reports that block as its
//! processed tip (only a new leader can commit it: the old one is dead). The killed instance is
//! started again as a standby before the next trial.
//!
//! Everything is read through the admin API (`get_tower_info`: `role`, `leader_epoch`,
//! `best_block_height`, `best_block_hash`), polled every [`POLL`].

use std::time::{Duration, Instant};

use bitcoin::BlockHash;
use bitcoin::hashes::Hash;
use teos_testkit::Chain;

use crate::error::BenchError;
use crate::pg::{Fleet, FleetSpec, PgOptions, PgServer};
use crate::stats::{median, ms};

/// How often the survivors' admin APIs are asked.
pub const POLL: Duration = Duration::from_millis(10);
/// How long a takeover may take before the run fails (far above any takeover time).
const DEADLINE: Duration = Duration::from_secs(120);

/// The scenario's knobs.
#[derive(Clone, Debug)]
pub struct TakeoverOptions {
    /// Instances in the fleet (at least 2).
    pub instances: usize,
    /// Kills timed.
    pub trials: usize,
    /// `leader_takeover_seconds` (teosd's default, 10, when `None`).
    pub takeover_seconds: Option<u64>,
    /// The PostgreSQL server.
    pub postgres: PgOptions,
    /// The teosd binary.
    pub teosd: std::path::PathBuf,
    /// Echo teosd's logs.
    pub echo: bool,
    /// Extra `teos.toml` lines.
    pub tower_options: Vec<String>,
}

/// One kill.
#[derive(Clone, Debug)]
pub struct Trial {
    /// SIGKILL sent → an instance reports the block mined after the kill as its tip.
    pub to_block: Duration,
    /// SIGKILL sent → an instance reports itself leader with a newer epoch (as polled; at most
    /// `to_block`).
    pub to_role: Duration,
    /// The killed instance started again → ready (as a standby).
    pub restart: Duration,
}

/// What the scenario measured.
#[derive(Clone, Debug, Default)]
pub struct TakeoverReport {
    /// One entry per kill.
    pub trials: Vec<Trial>,
    /// `leader_takeover_seconds` in effect.
    pub takeover_seconds: u64,
}

impl TakeoverReport {
    /// Median and max of the kill → block processed times.
    pub fn to_block(&self) -> Option<(Duration, Duration)> {
        let all: Vec<Duration> = self.trials.iter().map(|t| t.to_block).collect();
        Some((median(&all)?, all.iter().copied().max()?))
    }

    /// Median and max of the kill → new leader times.
    pub fn to_role(&self) -> Option<(Duration, Duration)> {
        let all: Vec<Duration> = self.trials.iter().map(|t| t.to_role).collect();
        Some((median(&all)?, all.iter().copied().max()?))
    }

    /// Prints the figures.
    pub fn print(&self, options: &TakeoverOptions) {
        println!("--- takeover scenario summary ---");
        println!(
            "{} instances, leader_takeover_seconds = {}, {} SIGKILLs of the leader",
            options.instances,
            self.takeover_seconds,
            self.trials.len()
        );
        if let Some((m, max)) = self.to_block() {
            let all: Vec<String> = self.trials.iter().map(|t| ms(t.to_block)).collect();
            println!(
                "leader SIGKILL → block mined after it processed (admin tip): median {} max {} [{}]",
                ms(m),
                ms(max),
                all.join(", ")
            );
        }
        if let Some((m, max)) = self.to_role() {
            println!(
                "leader SIGKILL → a standby reports role leader (new epoch): median {} max {}",
                ms(m),
                ms(max)
            );
        }
        let restarts: Vec<Duration> = self.trials.iter().map(|t| t.restart).collect();
        if let Some(m) = median(&restarts) {
            println!(
                "killed instance restarted to ready (standby): median {}",
                ms(m)
            );
        }
    }
}

/// Runs the scenario (see the module docs).
pub fn run(options: &TakeoverOptions) -> Result<TakeoverReport, BenchError> {
    let chain = Chain::start(0)?;
    let server = PgServer::start(&options.postgres)?;
    let spec = FleetSpec {
        instances: options.instances.max(2),
        teosd: options.teosd.clone(),
        echo: options.echo,
        block_logs: false,
        takeover_seconds: options.takeover_seconds,
        tower_options: options.tower_options.clone(),
    };
    let mut fleet = Fleet::configure(server, chain.sim(), chain.dir.path(), &spec)?;
    fleet.start_all()?;
    let mut report = TakeoverReport {
        trials: Vec::new(),
        takeover_seconds: options.takeover_seconds.unwrap_or(10),
    };
    for trial in 0..options.trials {
        let (leader, epoch) = wait_for_leader(&fleet)?;
        wait_all_at(&fleet, chain.tip())?;
        let killed = Instant::now();
        if let Some(tower) = fleet.towers[leader].take() {
            tower.kill();
        }
        let hash = chain
            .mine(1)
            .pop()
            .ok_or_else(|| BenchError::Sim("mined no block".into()))?;
        let height = chain.height();
        let (to_role, to_block) = wait_for_new_leader(&fleet, epoch, (height, hash), killed)?;
        let restart = fleet.start(leader)?;
        println!(
            "trial {trial}: instance {leader} (epoch {epoch}) killed; new leader after {}, block {height} processed after {}; restarted in {}",
            ms(to_role),
            ms(to_block),
            ms(restart)
        );
        report.trials.push(Trial {
            to_block,
            to_role,
            restart,
        });
    }
    fleet.kill_all();
    Ok(report)
}

/// `(role, epoch, tip)` of instance `i` as its admin API reports them; `None` if it is down or does
/// not answer.
fn info(fleet: &Fleet, i: usize) -> Option<(String, u64, (u32, Vec<u8>))> {
    let tower = fleet.towers[i].as_ref()?;
    let info = tower.admin().ok()?.tower_info().ok()?;
    Some((
        info.role,
        info.leader_epoch,
        (info.best_block_height, info.best_block_hash),
    ))
}

/// Waits until exactly one running instance reports itself leader; its index and epoch.
fn wait_for_leader(fleet: &Fleet) -> Result<(usize, u64), BenchError> {
    let started = Instant::now();
    loop {
        let leaders: Vec<(usize, u64)> = (0..fleet.towers.len())
            .filter_map(|i| {
                let (role, epoch, _) = info(fleet, i)?;
                (role == "leader").then_some((i, epoch))
            })
            .collect();
        if let [one] = leaders[..] {
            return Ok(one);
        }
        if started.elapsed() > DEADLINE {
            return Err(BenchError::Check(format!(
                "no single leader after {}: {leaders:?}",
                ms(DEADLINE)
            )));
        }
        std::thread::sleep(POLL);
    }
}

/// Waits until every running instance reports `tip` as its processed tip.
fn wait_all_at(fleet: &Fleet, tip: (u32, BlockHash)) -> Result<(), BenchError> {
    let want = (tip.0, tip.1.to_byte_array().to_vec());
    let started = Instant::now();
    loop {
        let behind = (0..fleet.towers.len())
            .filter(|&i| fleet.towers[i].is_some())
            .filter(|&i| info(fleet, i).is_none_or(|(_, _, t)| t != want))
            .count();
        if behind == 0 {
            return Ok(());
        }
        if started.elapsed() > DEADLINE {
            return Err(BenchError::Check(format!(
                "{behind} instance(s) not at block {} after {}",
                tip.0,
                ms(DEADLINE)
            )));
        }
        std::thread::sleep(POLL);
    }
}

/// Polls the running instances until one reports `tip` as its processed tip; returns the times
/// since `killed` of the first report of a leader with an epoch above `old_epoch` and of the tip.
fn wait_for_new_leader(
    fleet: &Fleet,
    old_epoch: u64,
    tip: (u32, BlockHash),
    killed: Instant,
) -> Result<(Duration, Duration), BenchError> {
    let want = (tip.0, tip.1.to_byte_array().to_vec());
    let mut to_role = None;
    loop {
        for i in 0..fleet.towers.len() {
            let Some((role, epoch, at)) = info(fleet, i) else {
                continue;
            };
            let now = killed.elapsed();
            if role == "leader" && epoch > old_epoch && to_role.is_none() {
                to_role = Some(now);
            }
            if at == want {
                return Ok((to_role.unwrap_or(now), now));
            }
        }
        if killed.elapsed() > DEADLINE {
            return Err(BenchError::Check(format!(
                "block {} not processed {} after the leader's SIGKILL",
                tip.0,
                ms(DEADLINE)
            )));
        }
        std::thread::sleep(POLL);
    }
}
