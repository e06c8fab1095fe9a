//! The `chain` scenario's environment: bitcoind-sim in this process with a funded test wallet,
//! breach pairs, a filler set for big blocks, a prefilled tower database, and teosd started and
//! stopped around it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bitcoin::{Amount, ScriptBuf};
use bitcoind_sim::Simulator;
use bitcoind_sim::wallet::Breach;
use teos_common::appointment::{Appointment, Locator};
use teos_common::cryptography;
use teos_testkit::{Chain, ChainConfig, Launch, LogLine, TowerConfig, TowerProcess};

use crate::clients::{BenchUser, TO_SELF_DELAY};
use crate::error::BenchError;
use crate::events::EventLog;
use crate::http::HttpConn;
use crate::pg::{PgOptions, PgServer, fleet_config, init_and_prefill, wait_for_pipeline};
use crate::prefill::{PrefillSpec, prefill};
use crate::tower::{bench_config, bench_launch};
use bitcoind_sim::fillers::{Fillers, mine};

/// How long teosd may take to get ready (a cold start on a big database included).
pub const READY_TIMEOUT: Duration = Duration::from_secs(300);
/// How long anything the tower should do "at once" may take before the run fails.
const SOON: Duration = Duration::from_secs(60);
/// Value of each breached channel's `to_local` output.
const BREACH_VALUE: Amount = Amount::from_sat(1_000_000);

/// The scenario's knobs.
#[derive(Clone, Debug)]
pub struct ChainOptions {
    /// Appointments stored: prefilled before teosd starts, except the breach appointments, which
    /// are sent over HTTP once it runs.
    pub appointments: u64,
    /// Users those appointments belong to.
    pub users: u64,
    /// Transactions per big block, coinbase included.
    pub block_txs: usize,
    /// Breach blocks mined (one measurement each).
    pub rounds: usize,
    /// Breached channels per breach block (each with a watched appointment).
    pub breaches_per_block: usize,
    /// Big blocks mined while teosd is stopped, then caught up.
    pub catchup_blocks: u32,
    /// Restarts timed at the end.
    pub startup_runs: usize,
    /// Blob size of the prefilled appointments (bytes).
    pub blob_size: usize,
    /// The teosd binary.
    pub teosd: PathBuf,
    /// Echo teosd's log.
    pub echo: bool,
    /// Extra `teos.toml` lines.
    pub tower_options: Vec<String>,
    /// Run the tower on PostgreSQL (one instance on a fresh database) instead of SQLite.
    pub postgres: Option<PgOptions>,
}

/// bitcoind-sim, its wallet and fillers, and teosd's data dir.
pub struct ChainEnv {
    pub options: ChainOptions,
    /// bitcoind-sim in this process and the wallet the breaches spend from.
    pub chain: Chain,
    pub events: EventLog,
    breaches: Vec<Breach>,
    fillers: Fillers,
    miner: ScriptBuf,
    pub config: TowerConfig,
    /// How teosd is run (at debug for `teosd`, so block events carry their timings).
    pub launch: Launch,
    /// The PostgreSQL server and the URL of the tower's database, on PostgreSQL (last field: the
    /// server outlives the rest).
    pub pg: Option<(PgServer, String)>,
}

/// One breach block's measurements.
#[derive(Clone, Debug)]
pub struct BreachRound {
    /// Block connected in bitcoind-sim → first penalty of the block in its mempool.
    pub first: Duration,
    /// Block connected → last penalty of the block in its mempool.
    pub last: Duration,
    /// teosd's own time for the block (`connect_block`: scan, decrypt, respond, commit), ms.
    pub connect_ms: Option<u64>,
}

/// How a start of teosd went, from the timestamps of its log lines.
#[derive(Clone, Debug)]
pub struct Startup {
    /// Spawn → "Tower ready".
    pub ready: Duration,
    /// Spawn → "last processed block" (database opened, key loaded, bitcoind reached).
    pub to_tip: Duration,
}

impl ChainEnv {
    /// Starts bitcoind-sim, funds the wallet, builds every breach pair, mines the fan-out block and
    /// prefills teosd's database (users `0..users` with `appointments` appointments).
    pub fn prepare(options: &ChainOptions) -> Result<ChainEnv, BenchError> {
        let breach_count = options.rounds * options.breaches_per_block;
        let chain = Chain::start_with(&ChainConfig {
            wallet_seed: 11,
            coins: breach_count + 1,
            zmq: true,
        })?;
        let node = chain.sim().node();
        let wallet = &chain.wallet;
        let breaches = wallet
            .build_breaches(&node, breach_count, BREACH_VALUE, TO_SELF_DELAY as u16)
            .map_err(BenchError::sim)?;
        let coin = wallet
            .spendable(&node)
            .into_iter()
            .next()
            .ok_or_else(|| BenchError::Sim("no coin left for the fillers".into()))?;
        let miner = Simulator::mining_address().script_pubkey();
        let width = options.block_txs.saturating_sub(1).max(1);
        let (fillers, _) = Fillers::fan_out(&node, &coin, width, &miner)?;
        let events = EventLog::subscribe(&node)?;

        let datadir = chain.dir.path().join("teosd");
        let pg = match &options.postgres {
            Some(pg) => {
                let mut server = PgServer::start(pg)?;
                let url = server.fresh_database()?;
                Some((server, url))
            }
            None => None,
        };
        let config = match &pg {
            Some((_, url)) => fleet_config(&datadir, url, None, &options.tower_options),
            None => bench_config(&datadir, &options.tower_options),
        };
        config.write(chain.sim())?;
        let launch = bench_launch(&options.teosd, &datadir, true, options.echo);
        // The breach appointments arrive over HTTP later; together they make `appointments`.
        let spec = PrefillSpec {
            users: options.users,
            appointments: options.appointments.saturating_sub(breach_count as u64),
            blob_size: options.blob_size,
            start: node.block_count(),
        };
        if let Some((_, url)) = &pg {
            let took = init_and_prefill(&launch, url, &spec)?;
            println!(
                "prefill: {} appointments of {} users written in {:.1} s (binary COPY into PostgreSQL after teosd's first start on the empty database)",
                spec.appointments,
                options.users,
                took.as_secs_f64()
            );
        } else {
            let took = prefill(&config.db_path(), &spec)?;
            println!(
                "prefill: {} appointments of {} users written in {:.1} s (direct SQLite inserts through teosd::storage)",
                spec.appointments,
                options.users,
                took.as_secs_f64()
            );
        }
        Ok(ChainEnv {
            options: options.clone(),
            chain,
            events,
            breaches,
            fillers,
            miner,
            config,
            launch,
            pg,
        })
    }

    /// Spawns teosd and waits for its ready event; times the start from its log lines' arrival.
    pub fn start_tower(&self) -> Result<(TowerProcess, Startup), BenchError> {
        let mut tower = TowerProcess::spawn(&self.launch)?;
        let tip = tower.wait_for_line(
            0,
            "teosd at its last processed block",
            READY_TIMEOUT,
            is_tip_loaded,
        )?;
        let ready = tower.wait_ready(READY_TIMEOUT)?.at;
        if self.pg.is_some() {
            // On PostgreSQL an instance is ready as a standby and takes the leadership (the chain
            // pipeline) at its next poll; the scenario measures the leader's pipeline.
            wait_for_pipeline(&tower, READY_TIMEOUT)?;
        }
        let startup = Startup {
            ready: ready - tower.started,
            to_tip: tip.at - tower.started,
        };
        Ok((tower, startup))
    }

    /// Sends the appointment of every breach pair over HTTP (see [`send_appointments`]).
    pub fn send_breach_appointments(&self, tower: &TowerProcess) -> Result<(), BenchError> {
        send_appointments(tower, &self.breaches, self.options.users)
    }

    /// Mines breach block `round` (its breached commitments plus fillers, `block_txs` in all) and
    /// measures how long the penalties take to reach the mempool.
    pub fn breach_round(
        &mut self,
        tower: &mut TowerProcess,
        round: usize,
    ) -> Result<BreachRound, BenchError> {
        let k = self.options.breaches_per_block;
        let pairs = &self.breaches[round * k..(round + 1) * k];
        let fillers = self.options.block_txs.saturating_sub(1 + k);
        let mut txs = self.fillers.take(fillers)?;
        txs.extend(pairs.iter().map(|b| b.commitment.clone()));
        let node = self.chain.sim().node();
        let height = node.block_count() + 1;
        let cursor = tower.log_len();
        let hash = mine(&node, txs, &self.miner)?;
        let connected = self.events.block_connected(&hash, SOON)?;
        let mut added = Vec::with_capacity(k);
        for pair in pairs {
            added.push(self.events.tx_added(&pair.penalty.compute_txid(), SOON)?);
        }
        let line = tower.wait_for_line(
            cursor,
            &format!("teosd to connect block {height}"),
            SOON,
            |l| is_block_connected(l, Some(height)),
        )?;
        let since = |at: Option<&Instant>| at.map_or(Duration::ZERO, |at| *at - connected);
        Ok(BreachRound {
            first: since(added.iter().min()),
            last: since(added.iter().max()),
            connect_ms: connect_ms(&line),
        })
    }

    /// Mines `n` blocks of fillers only (`block_txs` transactions each).
    pub fn mine_fillers(&mut self, n: u32) -> Result<(), BenchError> {
        let node = self.chain.sim().node();
        for _ in 0..n {
            let txs = self
                .fillers
                .take(self.options.block_txs.saturating_sub(1))?;
            mine(&node, txs, &self.miner)?;
        }
        Ok(())
    }

    /// The active chain's height in bitcoind-sim.
    pub fn height(&self) -> u32 {
        self.chain.height()
    }
}

/// Sends the appointment of every breach pair over HTTP, breach `i` by prefilled user `i % users`.
pub fn send_appointments(
    tower: &TowerProcess,
    breaches: &[Breach],
    users: u64,
) -> Result<(), BenchError> {
    let api = tower
        .ready()
        .map(|ready| ready.api)
        .ok_or(teos_testkit::KitError::NotRunning)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("starting a client runtime", e))?;
    let users = users.max(1);
    runtime.block_on(async {
        let mut conn = HttpConn::connect(api).await?;
        for (i, breach) in breaches.iter().enumerate() {
            let txid = breach.commitment.compute_txid();
            let appointment = Appointment {
                locator: Locator::new(&txid),
                encrypted_blob: cryptography::encrypt(&breach.penalty, &txid),
                to_self_delay: TO_SELF_DELAY,
            };
            let body = BenchUser::new(i as u64 % users).add_appointment_body(&appointment)?;
            conn.post_ok("/add_appointment", body).await?;
        }
        Ok(())
    })
}

/// Whether `line` is teosd's "block connected" debug event (of `height`, if given). teosd gives the
/// event no `event` name, so it is known by its target and constant message; its numbers are read
/// from its fields.
pub fn is_block_connected(line: &LogLine, height: Option<u32>) -> bool {
    line.event.as_ref().is_some_and(|e| {
        e.target == "teosd::block_processor"
            && e.message() == "block connected"
            && height.is_none_or(|h| e.u64("height") == Some(u64::from(h)))
    })
}

/// Whether `line` is teosd's startup event giving the last processed block (database opened, key
/// loaded, bitcoind reached), known by its target and the start of its message (it has no fields).
pub fn is_tip_loaded(line: &LogLine) -> bool {
    line.event.as_ref().is_some_and(|e| {
        e.target == "teosd::daemon" && e.message().starts_with("last processed block")
    })
}

/// The `elapsed_ms` field of a "block connected" event ([`is_block_connected`]).
pub fn connect_ms(line: &LogLine) -> Option<u64> {
    line.event.as_ref().and_then(|e| e.u64("elapsed_ms"))
}
