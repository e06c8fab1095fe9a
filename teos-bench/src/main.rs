//! `teos-bench`: see the library docs and `BENCHMARKS.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use teos_bench::chain::ChainOptions;
use teos_bench::error::BenchError;
use teos_bench::load::LoadOptions;
use teos_bench::mempool_scenario::{self, MempoolOptions};
use teos_bench::pg::PgOptions;
use teos_bench::takeover::{self, TakeoverOptions};
use teos_bench::targets::{
    Row, chain_rows, fsync_rows, load_rows, mempool_rows, rpc_rows, takeover_rows,
};
use teos_bench::tower::default_teosd_path;
use teos_bench::{chain_scenario, clients, fsync_probe, load, rpc_probe};

#[derive(Parser)]
#[command(
    name = "teos-bench",
    about = "Load generator and end-to-end benchmarks of teosd"
)]
struct Cli {
    /// The teosd binary (default: `teosd` next to this executable).
    #[arg(long, global = true)]
    teosd: Option<PathBuf>,
    /// Echo teosd's log lines to stderr.
    #[arg(long, global = true)]
    echo: bool,
    /// Also print the figures as markdown table rows (for BENCHMARKS.md).
    #[arg(long, global = true)]
    markdown: bool,
    /// An extra `teos.toml` line for the towers started here, e.g. `--tower-option
    /// 'locator_cache_size = 1'` (repeatable).
    #[arg(long = "tower-option", global = true)]
    tower_options: Vec<String>,
    /// Run the tower(s) on PostgreSQL instead of SQLite (`load`, `chain`; `takeover` always does):
    /// a throwaway cluster started here (PostgreSQL's `initdb` must be installed; it runs with
    /// fsync off), or the server of `--database-url`. Each run creates a fresh database.
    #[arg(long, global = true)]
    postgres: bool,
    /// The PostgreSQL server to use (implies `--postgres`): `postgresql://user:password@host:port/db`;
    /// the role must be allowed to `CREATE DATABASE` (a fresh database per run, dropped at the end).
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// add_appointment throughput and latency over HTTP.
    Load {
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Appointments timed.
        #[arg(long, default_value_t = 200_000)]
        appointments: usize,
        /// Appointments sent first, not timed.
        #[arg(long, default_value_t = 10_000)]
        warmup: usize,
        /// Users the appointments are spread over (at least one per 10,000 appointments).
        #[arg(long, default_value_t = 1_000)]
        users: usize,
        /// Encrypted blob size in bytes.
        #[arg(long, default_value_t = 250)]
        blob_size: usize,
        /// Appointments stored in the database before teosd starts.
        #[arg(long, default_value_t = 0)]
        prefill: u64,
        /// Tokio worker threads of the load generator.
        #[arg(long, default_value_t = 2)]
        client_threads: usize,
        /// Load an already running tower at this address instead of starting one.
        #[arg(long)]
        url: Option<SocketAddr>,
        /// Seed of the random appointments (random if not given).
        #[arg(long)]
        seed: Option<u64>,
        /// Count teosd's group commits during the timed phase (from its debug log).
        #[arg(long)]
        commit_stats: bool,
        /// With `--postgres`: teosd instances on the one database; the connections are spread over
        /// their APIs round-robin.
        #[arg(long, default_value_t = 1)]
        instances: usize,
    },
    /// getblock of a big block: teosd's bitcoind client against a whole-body HTTP read.
    Rpc {
        /// Transactions in the block, coinbase included.
        #[arg(long, default_value_t = 4_000)]
        block_txs: usize,
        /// Fetches per client.
        #[arg(long, default_value_t = 30)]
        count: usize,
    },
    /// fsync latency of the disk holding `dir`: the floor of every durable commit.
    Fsync {
        /// Directory to probe (a temp file is written there and removed).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Syncs to time.
        #[arg(long, default_value_t = 200)]
        count: usize,
    },
    /// Breach-to-broadcast latency, block processing, memory, catch-up and restarts.
    Chain {
        /// Appointments stored before teosd starts.
        #[arg(long, default_value_t = 1_000_000)]
        appointments: u64,
        /// Users those appointments belong to.
        #[arg(long, default_value_t = 10_000)]
        users: u64,
        /// Transactions per block, coinbase included.
        #[arg(long, default_value_t = 4_000)]
        block_txs: usize,
        /// Breach blocks to time.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// Breached channels per breach block.
        #[arg(long, default_value_t = 1)]
        breaches_per_block: usize,
        /// Blocks mined while teosd is down, then caught up (0 = skip).
        #[arg(long, default_value_t = 100)]
        catchup_blocks: u32,
        /// Restarts to time at the end.
        #[arg(long, default_value_t = 3)]
        startup_runs: usize,
        /// Blob size of the prefilled appointments (bytes).
        #[arg(long, default_value_t = 250)]
        blob_size: usize,
    },
    /// Breaches answered from the mempool: dispute accepted → penalty accepted, and teosd's CPU
    /// while the mempool receives unrelated transactions.
    Mempool {
        /// Appointments stored before teosd starts.
        #[arg(long, default_value_t = 1_000_000)]
        appointments: u64,
        /// Users those appointments belong to.
        #[arg(long, default_value_t = 10_000)]
        users: u64,
        /// Disputes broadcast and timed, one at a time.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Unrelated transactions per second during the CPU window.
        #[arg(long, default_value_t = 1_000)]
        rate: u32,
        /// Length of the CPU window in seconds (0 = skip).
        #[arg(long, default_value_t = 30)]
        seconds: u32,
        /// Blob size of the prefilled appointments (bytes).
        #[arg(long, default_value_t = 250)]
        blob_size: usize,
    },
    /// Fleet takeover on PostgreSQL: SIGKILL the leader, mine a block, time until an instance
    /// reports that block processed (admin API), repeated.
    Takeover {
        /// teosd instances on the one database (at least 2).
        #[arg(long, default_value_t = 2)]
        instances: usize,
        /// Leader kills timed.
        #[arg(long, default_value_t = 20)]
        trials: usize,
        /// `leader_takeover_seconds` of the instances (teosd's default, 10, if not given).
        #[arg(long)]
        takeover_seconds: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(rows) => {
            for row in rows {
                println!("{}", row.markdown());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("teos-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; returns the markdown rows to print (none without `--markdown`).
fn run(cli: Cli) -> Result<Vec<Row>, BenchError> {
    let teosd = match cli.teosd {
        Some(path) => path,
        None => default_teosd_path()?,
    };
    let postgres = (cli.postgres || cli.database_url.is_some()).then(|| PgOptions {
        database_url: cli.database_url.clone(),
    });
    let rows = match cli.command {
        Command::Load {
            connections,
            appointments,
            warmup,
            users,
            blob_size,
            prefill,
            client_threads,
            url,
            seed,
            commit_stats,
            instances,
        } => {
            let options = LoadOptions {
                connections,
                appointments,
                warmup,
                users,
                blob_size,
                prefill,
                client_threads,
                url,
                teosd,
                echo: cli.echo,
                seed: seed.unwrap_or_else(clients::random_seed),
                commit_stats,
                tower_options: cli.tower_options.clone(),
                postgres,
                instances,
            };
            let report = load::run(&options)?;
            report.print(&options);
            load_rows(&report, &options)
        }
        Command::Rpc { block_txs, count } => {
            let report = rpc_probe::run(block_txs, count)?;
            report.print();
            rpc_rows(&report)
        }
        Command::Fsync { dir, count } => {
            let report = fsync_probe::run(&dir, count)?;
            report.print();
            fsync_rows(&report)
        }
        Command::Chain {
            appointments,
            users,
            block_txs,
            rounds,
            breaches_per_block,
            catchup_blocks,
            startup_runs,
            blob_size,
        } => {
            let options = ChainOptions {
                appointments,
                users: users.max(1),
                block_txs: block_txs.max(2 + breaches_per_block),
                rounds,
                breaches_per_block,
                catchup_blocks,
                startup_runs,
                blob_size,
                teosd,
                echo: cli.echo,
                tower_options: cli.tower_options.clone(),
                postgres,
            };
            let report = chain_scenario::run(&options)?;
            report.print(&options);
            chain_rows(&report, &options)
        }
        Command::Mempool {
            appointments,
            users,
            rounds,
            rate,
            seconds,
            blob_size,
        } => {
            if postgres.is_some() {
                return Err(BenchError::Check(
                    "the mempool scenario runs on SQLite only".into(),
                ));
            }
            let options = MempoolOptions {
                appointments,
                users: users.max(1),
                rounds,
                rate,
                seconds,
                blob_size,
                teosd,
                echo: cli.echo,
                tower_options: cli.tower_options.clone(),
            };
            let report = mempool_scenario::run(&options)?;
            report.print(&options);
            mempool_rows(&report, &options)
        }
        Command::Takeover {
            instances,
            trials,
            takeover_seconds,
        } => {
            let options = TakeoverOptions {
                instances: instances.max(2),
                trials,
                takeover_seconds,
                postgres: postgres.unwrap_or_default(),
                teosd,
                echo: cli.echo,
                tower_options: cli.tower_options.clone(),
            };
            let report = takeover::run(&options)?;
            report.print(&options);
            takeover_rows(&report, &options)
        }
    };
    Ok(if cli.markdown { rows } else { Vec::new() })
}
