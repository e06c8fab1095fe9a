//! The `mempool` scenario (issue 13, item 7): with many appointments stored, how long teosd takes from
//! a dispute accepted into bitcoind's mempool to its penalty accepted there (answered before any
//! block), and how much CPU teosd spends watching a mempool that receives unrelated transactions at a
//! steady rate.
//!
//! Both instants of a round come from the simulator's own events (`events`), taken when the node
//! accepted each transaction, so the figure is what a miner would see: the dispute alone in the
//! mempool, then with its penalty. CPU is teosd's process time (`/proc/<pid>/task/*/schedstat`) over
//! the window the unrelated transactions arrive in, and the `mempool-watch` thread's share of it.

use std::time::{Duration, Instant};

use bitcoin::{Amount, ScriptBuf};
use bitcoind_sim::Simulator;
use bitcoind_sim::fillers::Fillers;
use bitcoind_sim::wallet::Breach;
use teos_testkit::{Chain, ChainConfig, TowerProcess};

use crate::chain::{READY_TIMEOUT, send_appointments};
use crate::error::BenchError;
use crate::events::EventLog;
use crate::prefill::{PrefillSpec, prefill};
use crate::stats::{Latencies, ms};
use crate::tower::{bench_config, bench_launch, cpu_delta, thread_cpu};

/// How long anything the tower should do "at once" may take before the run fails.
const SOON: Duration = Duration::from_secs(60);
/// Value of each breached channel's `to_local` output.
const BREACH_VALUE: Amount = Amount::from_sat(1_000_000);
/// Outputs of one fan-out transaction feeding the unrelated transactions (a 50 BTC coin funds at
/// most 5,000 filler outputs).
const FAN_OUT_WIDTH: usize = 4_000;
/// Fee each unrelated transaction pays (satoshis; about 7 sat/vB on a 141-vbyte filler).
const UNRELATED_FEE: u64 = 1_000;
/// Unrelated transactions are sent in bursts this often.
const PACE: Duration = Duration::from_millis(10);

/// The scenario's knobs.
#[derive(Clone, Debug)]
pub struct MempoolOptions {
    /// Appointments stored (prefilled, plus one per round sent over HTTP).
    pub appointments: u64,
    /// Users those appointments belong to.
    pub users: u64,
    /// Disputes broadcast one at a time, each timed.
    pub rounds: usize,
    /// Unrelated transactions per second during the CPU window.
    pub rate: u32,
    /// Length of the CPU window (seconds; 0 = skip it).
    pub seconds: u32,
    /// Blob size of the prefilled appointments (bytes).
    pub blob_size: usize,
    /// The teosd binary.
    pub teosd: std::path::PathBuf,
    /// Echo teosd's log.
    pub echo: bool,
    /// Extra `teos.toml` lines.
    pub tower_options: Vec<String>,
}

/// CPU spent by teosd while the mempool received unrelated transactions.
#[derive(Clone, Debug)]
pub struct WatchCpu {
    /// The window's wall time.
    pub wall: Duration,
    /// Unrelated transactions bitcoind-sim accepted in it.
    pub txs: u64,
    /// teosd's CPU time in the window, all threads.
    pub process: Duration,
    /// The `mempool-watch` thread's CPU time in the window.
    pub watcher: Duration,
}

impl WatchCpu {
    /// `cpu` as a percentage of one core over the window.
    pub fn percent(&self, cpu: Duration) -> f64 {
        100.0 * cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }

    /// Transactions per second accepted.
    pub fn rate(&self) -> f64 {
        self.txs as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Everything the scenario measured.
#[derive(Clone, Debug, Default)]
pub struct MempoolReport {
    /// Dispute accepted into the mempool → penalty accepted, per round.
    pub latencies: Latencies,
    /// The CPU window, if run.
    pub cpu: Option<WatchCpu>,
}

impl MempoolReport {
    /// Prints the figures.
    pub fn print(&self, options: &MempoolOptions) {
        println!(
            "dispute broadcast → penalty in the mempool ({} appointments, {} rounds): {}",
            options.appointments,
            self.latencies.count(),
            self.latencies.summary()
        );
        if let Some(cpu) = &self.cpu {
            println!(
                "watching a mempool receiving {:.0} unrelated tx/s for {}: teosd {:.2} % of one core \
                 ({} CPU), mempool-watch thread {:.2} %",
                cpu.rate(),
                ms(cpu.wall),
                cpu.percent(cpu.process),
                ms(cpu.process),
                cpu.percent(cpu.watcher)
            );
        }
    }
}

/// Runs the scenario (see the module docs). teosd is stopped at the end.
pub fn run(options: &MempoolOptions) -> Result<MempoolReport, BenchError> {
    let unrelated = options.rate as usize * options.seconds as usize;
    let fan_outs = unrelated.div_ceil(FAN_OUT_WIDTH);
    let chain = Chain::start_with(&ChainConfig {
        wallet_seed: 13,
        coins: options.rounds + fan_outs,
        zmq: true,
    })?;
    let node = chain.sim().node();
    let breaches = chain
        .wallet
        .build_breaches(
            &node,
            options.rounds,
            BREACH_VALUE,
            crate::clients::TO_SELF_DELAY as u16,
        )
        .map_err(BenchError::sim)?;
    let feed = unrelated_transactions(&chain, fan_outs, unrelated)?;
    let events = EventLog::subscribe(&node)?;

    let datadir = chain.dir.path().join("teosd");
    let mut lines = vec!["mempool_watch = true".to_owned()];
    lines.extend_from_slice(&options.tower_options);
    let config = bench_config(&datadir, &lines);
    config.write(chain.sim())?;
    let spec = PrefillSpec {
        users: options.users,
        appointments: options.appointments.saturating_sub(options.rounds as u64),
        blob_size: options.blob_size,
        start: node.block_count(),
    };
    let took = prefill(&config.db_path(), &spec)?;
    println!(
        "prefill: {} appointments of {} users written in {:.1} s",
        spec.appointments,
        options.users,
        took.as_secs_f64()
    );
    let launch = bench_launch(&options.teosd, &datadir, false, options.echo);
    let tower = TowerProcess::start(&launch, READY_TIMEOUT)?;
    send_appointments(&tower, &breaches, options.users)?;

    let mut report = MempoolReport::default();
    for (round, breach) in breaches.iter().enumerate() {
        let latency = answer_round(&chain, &events, breach)?;
        println!(
            "round {round}: penalty accepted {} after the dispute",
            ms(latency)
        );
        report.latencies.record(latency);
        // Both confirm; the next round starts from an empty mempool and a tower at the tip.
        chain.mine(1);
        tower.wait_for_tip(chain.tip(), SOON)?;
    }
    if !feed.is_empty() {
        report.cpu = Some(watch_cpu(&chain, &tower, feed, options.rate)?);
    }
    tower.stop(SOON)?;
    Ok(report)
}

/// Broadcasts `breach`'s dispute and returns the time from the broadcast call to its penalty's
/// acceptance. The start is taken before the call, not from the dispute's `TxAdded` event: events
/// are stamped when the bench's event thread reads them, so a descheduled event thread would read
/// both events back to back and report ~0. The figure therefore includes the dispute's own
/// acceptance (an upper bound of the tower's part).
fn answer_round(chain: &Chain, events: &EventLog, breach: &Breach) -> Result<Duration, BenchError> {
    let sent = Instant::now();
    chain.broadcast(&breach.commitment)?;
    events.tx_added(&breach.commitment.compute_txid(), SOON)?;
    let penalty = events.tx_added(&breach.penalty.compute_txid(), SOON)?;
    Ok(penalty.saturating_duration_since(sent))
}

/// `count` fee-paying transactions unrelated to any appointment, each spending its own confirmed
/// output of one of `fan_outs` fan-out transactions (mined here, one block each).
fn unrelated_transactions(
    chain: &Chain,
    fan_outs: usize,
    count: usize,
) -> Result<Vec<bitcoin::Transaction>, BenchError> {
    let node = chain.sim().node();
    let miner: ScriptBuf = Simulator::mining_address().script_pubkey();
    let coins = chain.wallet.spendable(&node);
    if coins.len() < fan_outs {
        return Err(BenchError::Sim(format!(
            "{} coins for {fan_outs} fan-outs",
            coins.len()
        )));
    }
    let mut txs = Vec::with_capacity(count);
    for coin in coins.iter().take(fan_outs) {
        let (mut fillers, _) = Fillers::fan_out(&node, coin, FAN_OUT_WIDTH, &miner)?;
        let n = FAN_OUT_WIDTH.min(count - txs.len());
        for mut tx in fillers.take(n)? {
            // Fillers pay no fee (they are made for blocks); these go through the mempool.
            tx.output[0].value = tx.output[0]
                .value
                .checked_sub(Amount::from_sat(UNRELATED_FEE))
                .ok_or_else(|| BenchError::Sim("filler output too small".into()))?;
            txs.push(tx);
        }
    }
    Ok(txs)
}

/// Sends `feed` at `rate` transactions per second and measures teosd's CPU meanwhile.
fn watch_cpu(
    chain: &Chain,
    tower: &TowerProcess,
    feed: Vec<bitcoin::Transaction>,
    rate: u32,
) -> Result<WatchCpu, BenchError> {
    let node = chain.sim().node();
    let per_burst = (rate as usize * PACE.as_millis() as usize / 1000).max(1);
    let before = thread_cpu(tower.pid());
    let started = Instant::now();
    let mut txs = 0u64;
    for (i, burst) in feed.chunks(per_burst).enumerate() {
        for tx in burst {
            if node.accept_transaction(tx.clone(), None, false).is_ok() {
                txs += 1;
            }
        }
        let next = started + PACE * (i as u32 + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let wall = started.elapsed();
    let spent = cpu_delta(&before, &thread_cpu(tower.pid()));
    Ok(WatchCpu {
        wall,
        txs,
        process: spent.values().sum(),
        watcher: spent.get("mempool-watch").copied().unwrap_or_default(),
    })
}
