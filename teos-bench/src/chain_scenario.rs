//! The `chain` scenario: with a big prefilled database, time teosd's start, breach-to-broadcast
//! latency on big blocks, memory, catch-up after downtime, and restarts.

use std::time::Duration;

use teos_testkit::TowerProcess;

use crate::chain::{
    BreachRound, ChainEnv, ChainOptions, READY_TIMEOUT, Startup, connect_ms, is_block_connected,
    is_tip_loaded,
};
use crate::error::BenchError;
use crate::stats::{median, ms, percentile};
use crate::tower::rss_kib;

/// How long a graceful stop may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Catch-up after downtime.
#[derive(Clone, Debug)]
pub struct CatchUp {
    /// Blocks mined while teosd was stopped.
    pub blocks: u32,
    /// "last processed block" → the final "catching up: block N of N" line (warming the locator
    /// cache included).
    pub wall: Duration,
    /// Sum of teosd's `connect_block` times over those blocks (ms).
    pub connect_ms_sum: u64,
    /// The start as a whole.
    pub startup: Startup,
}

impl CatchUp {
    /// Blocks per second over [`wall`](Self::wall).
    pub fn rate(&self) -> f64 {
        f64::from(self.blocks) / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Everything the scenario measured.
#[derive(Clone, Debug, Default)]
pub struct ChainReport {
    /// The first start (new tower key, bootstrap at bitcoind's tip).
    pub first_start: Option<Startup>,
    /// RSS right after the first "Tower ready" (KiB).
    pub rss_ready_kib: u64,
    /// One entry per breach block.
    pub rounds: Vec<BreachRound>,
    /// RSS after the breach blocks (KiB).
    pub rss_after_breaches_kib: u64,
    /// Catch-up, if asked for.
    pub catchup: Option<CatchUp>,
    /// RSS after the catch-up (KiB).
    pub rss_after_catchup_kib: Option<u64>,
    /// Restarts with nothing to catch up.
    pub restarts: Vec<Startup>,
}

/// Runs the whole scenario (see the module docs). teosd is stopped at the end.
pub fn run(options: &ChainOptions) -> Result<ChainReport, BenchError> {
    let mut env = ChainEnv::prepare(options)?;
    let mut report = ChainReport::default();

    let (mut tower, startup) = env.start_tower()?;
    println!("first start: ready in {}", ms(startup.ready));
    report.first_start = Some(startup);
    report.rss_ready_kib = rss_kib(tower.pid())?;
    env.send_breach_appointments(&tower)?;
    for round in 0..options.rounds {
        let r = env.breach_round(&mut tower, round)?;
        println!(
            "breach block {round}: first penalty {} / last {} after the block, teosd connect_block {} ms",
            ms(r.first),
            ms(r.last),
            r.connect_ms.map_or("?".into(), |v| v.to_string())
        );
        report.rounds.push(r);
    }
    report.rss_after_breaches_kib = rss_kib(tower.pid())?;

    if options.catchup_blocks > 0 {
        stop(&mut tower)?;
        env.mine_fillers(options.catchup_blocks)?;
        let (caught_up, catchup) = catch_up(&env, options.catchup_blocks)?;
        tower = caught_up;
        println!(
            "catch-up: {} blocks in {:.2} s = {:.1} blocks/s (connect_block total {} ms)",
            catchup.blocks,
            catchup.wall.as_secs_f64(),
            catchup.rate(),
            catchup.connect_ms_sum
        );
        report.rss_after_catchup_kib = Some(rss_kib(tower.pid())?);
        report.catchup = Some(catchup);
    }
    for _ in 0..options.startup_runs {
        stop(&mut tower)?;
        let (restarted, startup) = env.start_tower()?;
        tower = restarted;
        println!(
            "restart: ready in {} (bitcoind reached after {})",
            ms(startup.ready),
            ms(startup.to_tip)
        );
        report.restarts.push(startup);
    }
    stop(&mut tower)?;
    Ok(report)
}

fn stop(tower: &mut TowerProcess) -> Result<(), BenchError> {
    let status = tower.stop(STOP_TIMEOUT)?;
    if !status.success() {
        return Err(BenchError::TowerExited(status.to_string()));
    }
    Ok(())
}

/// Starts teosd behind by `blocks` blocks and times the catch-up from its log.
fn catch_up(env: &ChainEnv, blocks: u32) -> Result<(TowerProcess, CatchUp), BenchError> {
    let best = env.height();
    let mut tower = TowerProcess::spawn(&env.launch)?;
    let tip = tower.wait_for_line(
        0,
        "teosd at its last processed block",
        READY_TIMEOUT,
        is_tip_loaded,
    )?;
    // The catch-up's progress event has no fields: the last one is known by its whole message.
    let last_step = format!("catching up: block {best} of {best}");
    let done = tower.wait_for_line(
        0,
        &format!("teosd to log {last_step:?}"),
        READY_TIMEOUT,
        |l| l.event.as_ref().is_some_and(|e| e.message() == last_step),
    )?;
    let ready = tower.wait_ready(READY_TIMEOUT)?.at;
    let connect_ms_sum = tower
        .lines()
        .iter()
        .filter(|l| is_block_connected(l, None))
        .filter_map(connect_ms)
        .sum();
    let catchup = CatchUp {
        blocks,
        wall: done.at - tip.at,
        connect_ms_sum,
        startup: Startup {
            ready: ready - tower.started,
            to_tip: tip.at - tower.started,
        },
    };
    Ok((tower, catchup))
}

impl ChainReport {
    /// Median breach-to-broadcast latency (block connected → last penalty of the block).
    pub fn breach_median(&self) -> Option<Duration> {
        median(&self.rounds.iter().map(|r| r.last).collect::<Vec<_>>())
    }

    /// 99th percentile (nearest rank) of the breach-to-broadcast latency over the breach blocks.
    pub fn breach_p99(&self) -> Option<Duration> {
        percentile(
            &self.rounds.iter().map(|r| r.last).collect::<Vec<_>>(),
            0.99,
        )
    }

    /// Median of teosd's `connect_block` time over the breach blocks.
    pub fn connect_median(&self) -> Option<Duration> {
        let values: Vec<Duration> = self
            .rounds
            .iter()
            .filter_map(|r| r.connect_ms)
            .map(Duration::from_millis)
            .collect();
        median(&values)
    }

    /// Median restart time.
    pub fn restart_median(&self) -> Option<Duration> {
        median(&self.restarts.iter().map(|s| s.ready).collect::<Vec<_>>())
    }

    /// The summary lines.
    pub fn print(&self, options: &ChainOptions) {
        let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
        println!("--- chain scenario summary ---");
        println!(
            "stored: {} appointments, {} users; blocks of {} transactions, {} breach(es) per breach block",
            options.appointments, options.users, options.block_txs, options.breaches_per_block
        );
        if let Some(s) = &self.first_start {
            println!("first start to Tower ready: {}", ms(s.ready));
        }
        if let Some(m) = self.breach_median() {
            let lasts: Vec<String> = self.rounds.iter().map(|r| ms(r.last)).collect();
            println!(
                "breach-to-broadcast median: {} over {} blocks [{}]",
                ms(m),
                self.rounds.len(),
                lasts.join(", ")
            );
            if let Some(p99) = self.breach_p99() {
                println!("breach-to-broadcast p99 (nearest rank): {}", ms(p99));
            }
        }
        if let Some(m) = self.connect_median() {
            println!("block processing (teosd connect_block) median: {}", ms(m));
        }
        println!("RSS at ready: {}", mib(self.rss_ready_kib));
        println!(
            "RSS after breach blocks: {}",
            mib(self.rss_after_breaches_kib)
        );
        if let Some(c) = &self.catchup {
            println!(
                "catch-up: {} blocks in {:.2} s = {:.1} blocks/s; start to Tower ready {}",
                c.blocks,
                c.wall.as_secs_f64(),
                c.rate(),
                ms(c.startup.ready)
            );
        }
        if let Some(kib) = self.rss_after_catchup_kib {
            println!("RSS after catch-up: {}", mib(kib));
        }
        if let Some(m) = self.restart_median() {
            let all: Vec<String> = self.restarts.iter().map(|s| ms(s.ready)).collect();
            println!(
                "restart to Tower ready median: {} [{}]",
                ms(m),
                all.join(", ")
            );
        }
    }
}
