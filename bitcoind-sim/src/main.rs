//! `bitcoind-sim`: the simulator as a process, with flags in the spirit of bitcoind's.
//!
//! ```text
//! bitcoind-sim --datadir D --rpcport P --zmqpub tcp://127.0.0.1:Z [--rpcuser U --rpcpassword W]
//!              [--txindex] [--persistmempool=0] [--controlport C] [-zmqpubhashblock=ADDR ...]
//! ```
//!
//! Core's single-dash spelling (`-datadir=D`, `-txindex`) is accepted too. On startup one line
//! goes to stdout for scripts: `bitcoind-sim: rpc 127.0.0.1:P zmq tcp://127.0.0.1:Z control
//! 127.0.0.1:C` (`zmq none` / `control none` when off). Logs go to stderr (`RUST_LOG`, default
//! `info`). SIGINT, SIGTERM and the `stop` RPC stop it gracefully (exit code 0).

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bitcoind_sim::zmq_pub::{Topic, ZmqEndpoint};
use bitcoind_sim::{SimConfig, Simulator};
use clap::Parser;

/// Core's boolean option values: `-flag` (= 1), `-flag=1`, `-flag=0`, also true/false.
fn core_bool(value: &str) -> Result<bool, String> {
    match value {
        "" | "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        other => Err(format!("expected 0 or 1, got {other:?}")),
    }
}

/// A regtest Bitcoin Core stand-in: JSON-RPC over HTTP and ZMQ notifications.
#[derive(Parser, Debug)]
#[command(name = "bitcoind-sim", version)]
struct Args {
    /// Data directory (chain state and the cookie live in <datadir>/regtest/).
    #[arg(long)]
    datadir: PathBuf,
    /// RPC port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 18443)]
    rpcport: u16,
    /// RPC user name (accepted besides the cookie).
    #[arg(long, requires = "rpcpassword")]
    rpcuser: Option<String>,
    /// RPC password.
    #[arg(long, requires = "rpcuser")]
    rpcpassword: Option<String>,
    /// Publish all five ZMQ topics on this address (e.g. tcp://127.0.0.1:28332; port 0 = any).
    #[arg(long)]
    zmqpub: Option<String>,
    /// Publish `hashblock` on this address.
    #[arg(long)]
    zmqpubhashblock: Option<String>,
    /// Publish `hashtx` on this address.
    #[arg(long)]
    zmqpubhashtx: Option<String>,
    /// Publish `rawblock` on this address.
    #[arg(long)]
    zmqpubrawblock: Option<String>,
    /// Publish `rawtx` on this address.
    #[arg(long)]
    zmqpubrawtx: Option<String>,
    /// Publish `sequence` on this address.
    #[arg(long)]
    zmqpubsequence: Option<String>,
    /// Index every transaction (getrawtransaction without a block hash).
    #[arg(long, value_name = "0|1", num_args = 0..=1, default_value = "0", default_missing_value = "1", value_parser = core_bool)]
    txindex: bool,
    /// Save the mempool at stop and load it at start.
    #[arg(long, value_name = "0|1", num_args = 0..=1, default_value = "1", default_missing_value = "1", value_parser = core_bool)]
    persistmempool: bool,
    /// Serve the control endpoint (faults, restart, mining) on 127.0.0.1:PORT (0 = any).
    #[arg(long)]
    controlport: Option<u16>,
    /// Answer -28 (warming up) for this many seconds after start.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Core's `-minrelaytxfee` in BTC/kvB (default 0.000001 = Core v30+; Core <= v29: 0.00001).
    #[arg(long, default_value_t = 0.000_001)]
    minrelaytxfee: f64,
    /// Accepted for compatibility: the simulator is always regtest.
    #[arg(long)]
    regtest: bool,
    /// Accepted for compatibility; only `regtest` is supported.
    #[arg(long, value_parser = ["regtest"])]
    chain: Option<String>,
}

impl Args {
    fn config(&self) -> anyhow::Result<SimConfig> {
        let mut config = SimConfig::new(&self.datadir);
        config.rpc_port = self.rpcport;
        config.rpc_auth = self.rpcuser.clone().zip(self.rpcpassword.clone());
        config.txindex = self.txindex;
        config.persist_mempool = self.persistmempool;
        config.control_port = self.controlport;
        config.warmup =
            Duration::try_from_secs_f64(self.warmup).context("--warmup must be >= 0")?;
        let sat_per_kvb = (self.minrelaytxfee * 1e8).round();
        anyhow::ensure!(
            sat_per_kvb.is_finite() && sat_per_kvb >= 0.0,
            "--minrelaytxfee must be >= 0"
        );
        config.min_relay_fee_per_kvb = sat_per_kvb as u64;
        let per_topic = [
            (Topic::HashBlock, &self.zmqpubhashblock),
            (Topic::HashTx, &self.zmqpubhashtx),
            (Topic::RawBlock, &self.zmqpubrawblock),
            (Topic::RawTx, &self.zmqpubrawtx),
            (Topic::Sequence, &self.zmqpubsequence),
        ];
        for (topic, address) in per_topic {
            let address = address.clone().or_else(|| self.zmqpub.clone());
            if let Some(address) = address {
                config.zmq_endpoints.push(ZmqEndpoint { topic, address });
            }
        }
        config.zmq = !config.zmq_endpoints.is_empty();
        Ok(config)
    }
}

/// Turns Core's `-name[=value]` into `--name[=value]` (single-letter flags like `-h` stay).
fn normalize(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .enumerate()
        .map(|(i, arg)| match arg.to_str() {
            Some(s) if i > 0 && s.starts_with('-') && !s.starts_with("--") && s.len() > 2 => {
                OsString::from(format!("-{s}"))
            }
            _ => arg,
        })
        .collect()
}

/// Waits for SIGINT, SIGTERM or the `stop` RPC.
fn wait_for_shutdown(sim: &Simulator) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let waiter = sim.stop_waiter();
    // A detached thread: it ends with the process if no stop RPC ever comes.
    std::thread::Builder::new()
        .name("stop-rpc-waiter".into())
        .spawn(move || {
            waiter.wait(None);
            let _ = stop_tx.send(());
        })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        #[cfg(unix)]
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        #[cfg(unix)]
        let sigterm = terminate.recv();
        #[cfg(not(unix))]
        let sigterm = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, stopping"),
            _ = sigterm => tracing::info!("SIGTERM received, stopping"),
            _ = stop_rx => tracing::info!("stop RPC received, stopping"),
        }
        anyhow::Ok(())
    })
}

fn run(args: &Args) -> anyhow::Result<()> {
    let sim = Simulator::start(args.config()?).context("cannot start")?;
    let zmq = sim.zmq_endpoint().unwrap_or_else(|| "none".into());
    let control = sim
        .control_port()
        .map_or_else(|| "none".into(), |p| format!("127.0.0.1:{p}"));
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "bitcoind-sim: rpc 127.0.0.1:{} zmq {zmq} control {control}",
        sim.rpc_port()
    )?;
    stdout.flush()?;
    drop(stdout);
    wait_for_shutdown(&sim)?;
    sim.stop().context("unclean stop")?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse_from(normalize(std::env::args_os()));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bitcoind-sim: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Args {
        Args::try_parse_from(normalize(line.split(' ').map(OsString::from))).unwrap()
    }

    #[test]
    fn core_style_single_dash_flags_are_accepted() {
        let args =
            parse("bitcoind-sim -datadir=/tmp/x -regtest -txindex -persistmempool=0 -rpcport=0");
        assert_eq!(args.datadir, PathBuf::from("/tmp/x"));
        assert!(args.txindex);
        assert!(!args.persistmempool);
        assert_eq!(args.rpcport, 0);
    }

    #[test]
    fn zmqpub_applies_to_every_topic_and_per_topic_flags_override() {
        let args = parse(
            "bitcoind-sim --datadir d --zmqpub tcp://127.0.0.1:1 --zmqpubrawtx=tcp://127.0.0.1:2",
        );
        let config = args.config().unwrap();
        assert!(config.zmq);
        assert_eq!(config.zmq_endpoints.len(), 5);
        let rawtx = config
            .zmq_endpoints
            .iter()
            .find(|e| e.topic == Topic::RawTx)
            .unwrap();
        assert_eq!(rawtx.address, "tcp://127.0.0.1:2");
        assert!(
            config
                .zmq_endpoints
                .iter()
                .filter(|e| e.address.ends_with(":1"))
                .count()
                == 4
        );
    }

    #[test]
    fn defaults_follow_bitcoind() {
        let config = parse("bitcoind-sim --datadir d").config().unwrap();
        assert_eq!(config.rpc_port, 18443);
        assert!(!config.txindex);
        assert!(config.persist_mempool);
        assert!(!config.zmq);
        assert_eq!(config.rpc_auth, None);
    }

    #[test]
    fn rpcuser_needs_rpcpassword() {
        let line = "bitcoind-sim --datadir d --rpcuser u";
        assert!(Args::try_parse_from(line.split(' ')).is_err());
    }
}
