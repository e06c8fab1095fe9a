//! End-to-end harness: bitcoind-sim in-process on loopback, the real `teosd` binary as a child process,
//! and a protocol client built on `teos_common::client`.
//!
//! Every wait polls a condition against a deadline; nothing sleeps to synchronize.
#![allow(dead_code)] // each test binary uses a different subset of the harness

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::{Amount, Transaction, Txid};
use bitcoind_sim::wallet::TestWallet;
use bitcoind_sim::{SimConfig, Simulator};
use secp256k1::SecretKey;
use teos_common::appointment::{Appointment, Locator, UserId};
use teos_common::client::{ClientError, TowerClient};
use teos_common::cryptography;
use teos_common::protocol::{
    AddAppointmentResponse, GetAppointmentResponse, GetSubscriptionInfoResponse, RegisterResponse,
};

/// Default deadline for anything the tower should do "at once".
pub const SOON: Duration = Duration::from_secs(30);

/// Polls `condition` every 20 ms until it holds or `timeout` passes (then panics with `what`).
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// The simulator plus a funded test wallet.
pub struct Chain {
    pub sim: Option<Simulator>,
    pub wallet: TestWallet,
    pub dir: tempfile::TempDir,
}

impl Chain {
    /// Starts bitcoind-sim with ZMQ and a wallet holding `coins` mature coins.
    pub fn start(coins: usize) -> Chain {
        let dir = tempfile::tempdir().unwrap();
        let sim = Simulator::start(SimConfig::new(dir.path().join("bitcoind"))).unwrap();
        let wallet = TestWallet::new(7);
        wallet.fund(&sim.node(), coins).unwrap();
        Chain {
            sim: Some(sim),
            wallet,
            dir,
        }
    }

    pub fn sim(&self) -> &Simulator {
        self.sim.as_ref().expect("simulator stopped")
    }

    pub fn mine(&self, n: u32) -> Vec<bitcoin::BlockHash> {
        self.sim().mine(n)
    }

    pub fn height(&self) -> u32 {
        self.sim().node().block_count()
    }

    pub fn in_mempool(&self, txid: &Txid) -> bool {
        self.sim().node().mempool_entry(txid).is_some()
    }

    /// Confirmations of `txid` on the active chain (0 if unconfirmed or unknown).
    pub fn confirmations(&self, txid: &Txid) -> i64 {
        match self.sim().node().get_transaction(txid, None) {
            Ok(found) => found.block.map_or(0, |b| {
                if b.in_active_chain || b.confirmations > 0 {
                    b.confirmations
                } else {
                    0
                }
            }),
            Err(_) => 0,
        }
    }

    /// Broadcasts a transaction to the simulator's mempool.
    pub fn broadcast(&self, tx: &Transaction) {
        self.sim()
            .node()
            .accept_transaction(tx.clone(), None, false)
            .unwrap_or_else(|e| panic!("simulator refused {}: {e:?}", tx.compute_txid()));
    }

    /// Restarts bitcoind-sim on the same ports (new cookie), keeping or emptying its mempool.
    pub fn restart(&mut self, keep_mempool: bool) {
        let sim = self.sim.take().expect("simulator stopped");
        self.sim = Some(sim.restart(keep_mempool).unwrap());
    }

    /// A commitment/penalty pair as Lightning would make it (nothing broadcast).
    pub fn breach(&self) -> (Transaction, Transaction) {
        let breach = self
            .wallet
            .build_breach(&self.sim().node(), Amount::from_sat(1_000_000), 42)
            .unwrap();
        (breach.commitment, breach.penalty)
    }
}

/// Options for the tower under test, written to `<datadir>/teos.toml`.
#[derive(Clone, Default)]
pub struct TowerOptions {
    /// Extra `key = value` lines.
    pub extra: Vec<String>,
}

/// A running `teosd` child process.
pub struct TowerProcess {
    child: Option<Child>,
    pub datadir: PathBuf,
    pub api_port: u16,
    logs: Arc<Mutex<Vec<String>>>,
}

impl TowerProcess {
    /// Writes the config for `chain` and starts teosd, waiting for "Tower ready".
    pub fn start(chain: &Chain, datadir: &Path, options: &TowerOptions) -> TowerProcess {
        let api_port = Self::configure(chain, datadir, options);
        Self::spawn(datadir, api_port, &[])
    }

    /// Starts teosd on an existing data dir (config already written).
    pub fn spawn(datadir: &Path, api_port: u16, args: &[&str]) -> TowerProcess {
        Self::spawn_with(datadir, api_port, args, &[], "Tower ready")
    }

    /// Like [`TowerProcess::spawn`] with extra environment variables, waiting for `ready` in the log.
    pub fn spawn_with(
        datadir: &Path,
        api_port: u16,
        args: &[&str],
        envs: &[(&str, &str)],
        ready: &str,
    ) -> TowerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_teosd"))
            .arg("--datadir")
            .arg(datadir)
            .args(args)
            .envs(envs.iter().copied())
            .env("RUST_LOG", "info,teosd=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start teosd");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("[teosd] {line}");
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let tower = TowerProcess {
            child: Some(child),
            datadir: datadir.to_path_buf(),
            api_port,
            logs,
        };
        if !ready.is_empty() {
            tower.wait_for_log(ready, Duration::from_secs(60));
        }
        tower
    }

    /// Writes the config for `chain` (see [`TowerProcess::start`]) without starting teosd; returns the API port.
    pub fn configure(chain: &Chain, datadir: &Path, options: &TowerOptions) -> u16 {
        std::fs::create_dir_all(datadir).unwrap();
        let api_port = free_port();
        let sim = chain.sim();
        let mut config = format!(
            "btc_network = \"regtest\"\nbtc_rpc_connect = \"127.0.0.1\"\nbtc_rpc_port = {}\n\
             btc_rpc_cookie = \"{}\"\napi_bind = \"127.0.0.1\"\napi_port = {}\nrpc_port = {}\npolling_delta = 1\n",
            sim.rpc_port(),
            sim.cookie_path().display(),
            api_port,
            free_port(),
        );
        if let Some(zmq) = sim.zmq_endpoint() {
            config.push_str(&format!("btc_zmq_hashblock = \"{zmq}\"\n"));
        }
        for line in &options.extra {
            config.push_str(line);
            config.push('\n');
        }
        std::fs::write(datadir.join("teos.toml"), config).unwrap();
        api_port
    }

    /// Waits (bounded) for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("teosd not running");
        wait_exit(&mut child, timeout)
    }

    /// Restarts on the same data dir and port.
    pub fn restart(mut self) -> TowerProcess {
        let status = self.stop();
        assert!(status.success(), "teosd exited with {status}");
        Self::spawn(&self.datadir.clone(), self.api_port, &[])
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    pub fn has_log(&self, needle: &str) -> bool {
        self.logs.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.has_log(needle) {
                return;
            }
            if let Some(child) = &self.child {
                let pid = child.id();
                assert!(
                    std::path::Path::new(&format!("/proc/{pid}")).exists(),
                    "teosd exited while waiting for {needle:?}"
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for teosd to log {needle:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("teosd not running");
        signal(child.id(), "TERM");
        wait_exit(&mut child, Duration::from_secs(60))
    }

    /// Waits (bounded) for the exit status after a signal was sent by the test itself.
    pub fn stop_after_signal(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("teosd not running");
        wait_exit(&mut child, timeout)
    }

    /// Waits (bounded) for teosd to exit on its own (e.g. after the admin `stop` call) and returns
    /// its exit status.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("teosd not running");
        wait_exit(&mut child, timeout)
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("teosd not running");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for TowerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "teosd did not exit within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A Lightning client of the tower (synchronous wrapper over `TowerClient`).
pub struct User {
    rt: tokio::runtime::Runtime,
    pub client: TowerClient,
    pub sk: SecretKey,
    pub id: UserId,
}

impl User {
    pub fn new(url: &str, seed: u8) -> User {
        let sk = SecretKey::from_slice(&[seed.max(1); 32]).unwrap();
        let id = UserId(sk.public_key(secp256k1::SECP256K1));
        User {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: TowerClient::new(url),
            sk,
            id,
        }
    }

    pub fn register(&self) -> Result<RegisterResponse, ClientError> {
        self.rt.block_on(self.client.register(&self.id))
    }

    pub fn add(&self, appointment: &Appointment) -> Result<AddAppointmentResponse, ClientError> {
        self.rt
            .block_on(self.client.add_appointment(appointment, &self.sk))
    }

    pub fn get(&self, locator: &Locator) -> Result<GetAppointmentResponse, ClientError> {
        self.rt
            .block_on(self.client.get_appointment(locator, &self.sk))
    }

    pub fn info(&self) -> Result<GetSubscriptionInfoResponse, ClientError> {
        self.rt
            .block_on(self.client.get_subscription_info(&self.sk))
    }
}

/// The appointment a client sends for a commitment/penalty pair (PROTOCOL.md, "Appointments").
pub fn appointment_for(commitment: &Transaction, penalty: &Transaction) -> Appointment {
    let txid = commitment.compute_txid();
    Appointment {
        locator: Locator::new(&txid),
        encrypted_blob: cryptography::encrypt(penalty, &txid),
        to_self_delay: 42,
    }
}

/// The error code of a failed client call.
pub fn error_code(result: Result<impl std::fmt::Debug, ClientError>) -> (u16, u8) {
    match result {
        Err(ClientError::Api { status, error }) => (status, error.code.as_u8()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

impl TowerProcess {
    /// The exit status if teosd has exited (by itself or after a signal), `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        child.try_wait().ok().flatten()
    }
}

/// The admin gRPC port (`rpc_port`) of the `teos.toml` that [`TowerProcess::configure`] wrote.
pub fn rpc_port_of(datadir: &Path) -> u16 {
    let text = std::fs::read_to_string(datadir.join("teos.toml")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("rpc_port = "))
        .expect("no rpc_port in teos.toml")
        .trim()
        .parse()
        .unwrap()
}
