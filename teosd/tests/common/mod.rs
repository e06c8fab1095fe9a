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

// ---- Chain-regression helpers (e2e_chain_regressions*): the admin view of the tower, its
// ---- process state, and blocks mined by "another miner".

/// What the admin API's `get_tower_info` says about the tower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TowerInfo {
    /// Height of the last block the tower processed.
    pub height: u32,
    /// Its hash.
    pub hash: bitcoin::BlockHash,
    pub users: u32,
    pub appointments: u32,
    pub trackers: u32,
    pub bitcoind_reachable: bool,
}

/// A client of the tower's admin gRPC API, with the certificates teosd wrote in its data dir.
pub struct Admin {
    rt: tokio::runtime::Runtime,
    client:
        teos_common::protos::teos::v2::private_tower_services_client::PrivateTowerServicesClient<
            tonic::transport::Channel,
        >,
}

impl Admin {
    /// Connects (lazily) to the `rpc_port` of `tower`'s `teos.toml`.
    pub fn connect(tower: &TowerProcess) -> Admin {
        use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
        let dir = &tower.datadir;
        let text = std::fs::read_to_string(dir.join("teos.toml")).unwrap();
        let port: u16 = text
            .lines()
            .find_map(|l| l.strip_prefix("rpc_port = "))
            .expect("no rpc_port in teos.toml")
            .trim()
            .parse()
            .unwrap();
        let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
        let tls = ClientTlsConfig::new()
            .domain_name("localhost")
            .ca_certificate(Certificate::from_pem(read("ca.pem")))
            .identity(Identity::from_pem(
                read("client.pem"),
                read("client-key.pem"),
            ));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let channel = {
            let _guard = rt.enter();
            Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect_lazy()
        };
        Admin {
            rt,
            client: teos_common::protos::teos::v2::private_tower_services_client::PrivateTowerServicesClient::new(channel),
        }
    }

    /// `get_tower_info`, or `None` when the call fails (teosd down or not serving yet).
    pub fn info(&self) -> Option<TowerInfo> {
        use bitcoin::hashes::Hash;
        let mut client = self.client.clone();
        let info = self
            .rt
            .block_on(client.get_tower_info(()))
            .ok()?
            .into_inner();
        let hash = <[u8; 32]>::try_from(info.best_block_hash.as_slice()).ok()?;
        Some(TowerInfo {
            height: info.best_block_height,
            hash: bitcoin::BlockHash::from_byte_array(hash),
            users: info.n_registered_users,
            appointments: info.n_watcher_appointments,
            trackers: info.n_responder_trackers,
            bitcoind_reachable: info.bitcoind_reachable,
        })
    }
}

impl TowerProcess {
    /// Panics, with the exit status and the last log lines, if teosd has exited.
    pub fn assert_running(&mut self, what: &str) {
        let Some(child) = self.child.as_mut() else {
            panic!("teosd is not running ({what})");
        };
        if let Ok(Some(status)) = child.try_wait() {
            let logs = self.logs();
            let tail = logs[logs.len().saturating_sub(8)..].join("\n");
            panic!("teosd exited with {status} while {what}; last log lines:\n{tail}");
        }
    }

    /// Starts teosd on an existing data dir (config already written) and waits (bounded by
    /// [`SOON`]) until its public API answers `GET /ping`, panicking at once if it exits (a
    /// refused start). Unlike [`TowerProcess::spawn`] it does not read the log.
    pub fn spawn_serving(datadir: &Path, api_port: u16) -> TowerProcess {
        let mut tower = Self::spawn_with(datadir, api_port, &[], &[], "");
        let deadline = Instant::now() + SOON;
        loop {
            tower.assert_running("starting");
            if tower.answers_ping() {
                return tower;
            }
            assert!(Instant::now() < deadline, "teosd never started serving");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether `GET /ping` on the public API answers 200 now.
    pub fn answers_ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.api_port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let request = "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.starts_with("HTTP/1.1 200")
    }

    /// Waits (bounded by [`SOON`]) until the last block the tower processed is bitcoind's best
    /// block, read through the admin API; panics at once if teosd exits meanwhile.
    pub fn wait_at_tip(&mut self, admin: &Admin, chain: &Chain) -> TowerInfo {
        let deadline = Instant::now() + SOON;
        loop {
            self.assert_running("waiting for it to reach bitcoind's tip");
            let best = chain.sim().node().best_block_hash();
            let info = admin.info();
            if let Some(info) = info.filter(|i| i.hash == best) {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {SOON:?} waiting for the tower at bitcoind's tip {} (height {}); \
                 the tower says {:?}",
                best,
                chain.height(),
                admin.info()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Chain {
    /// Mines `n` blocks paying another miner (`seed` picks it), so they differ from any block
    /// [`Chain::mine`] built on the same parent (a rebuilt invalidated block would be refused).
    pub fn mine_elsewhere(&self, n: u32, seed: u64) -> Vec<bitcoin::BlockHash> {
        let miner = TestWallet::new(seed);
        self.sim()
            .node()
            .generate_to_script(n, &miner.script_pubkey())
            .unwrap()
    }

    /// Mines one block holding exactly `txs` (they need not be in the mempool), paying the
    /// miner of `seed`.
    pub fn mine_with(&self, txs: &[Transaction], seed: u64) -> bitcoin::BlockHash {
        let miner = TestWallet::new(seed);
        let txs = txs
            .iter()
            .cloned()
            .map(bitcoind_sim::node::TxOrTxid::Tx)
            .collect();
        self.sim()
            .node()
            .generate_block(&miner.script_pubkey(), txs)
            .unwrap()
    }

    /// Restarts bitcoind-sim behind, at `visible_height` (see `Simulator::restart_behind`).
    pub fn restart_behind(&mut self, visible_height: u32) {
        let sim = self.sim.take().expect("simulator stopped");
        self.sim = Some(sim.restart_behind(visible_height).unwrap());
    }
}

/// What `get_appointment` says about `locator`: "being_watched", "dispute_responded",
/// "not_found" (404, code 36), or the error.
pub fn appointment_state(user: &User, locator: &Locator) -> String {
    // A pooled keep-alive connection the tower closed after its idle timeout fails once at
    // the transport level: ask again on a new one.
    let mut answer = user.get(locator);
    for _ in 0..2 {
        if !matches!(answer, Err(ClientError::Transport(_))) {
            break;
        }
        answer = user.get(locator);
    }
    match answer {
        Ok(GetAppointmentResponse::BeingWatched(_)) => "being_watched".into(),
        Ok(GetAppointmentResponse::DisputeResponded(_)) => "dispute_responded".into(),
        Err(ClientError::Api { status: 404, error }) if error.code.as_u8() == 36 => {
            "not_found".into()
        }
        Err(e) => format!("error: {e:?}"),
    }
}

/// Waits (bounded by [`SOON`]) until [`appointment_state`] of `locator` is `expected`; the panic
/// message says what it was instead.
pub fn wait_for_state(user: &User, locator: &Locator, expected: &str) {
    let deadline = Instant::now() + SOON;
    loop {
        let state = appointment_state(user, locator);
        if state == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {SOON:?} waiting for the appointment to be {expected}; it is {state}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded by [`SOON`]) until `penalty` is in bitcoind's mempool or mined; the panic
/// message says what the tower says about `locator` meanwhile.
pub fn wait_for_penalty(chain: &Chain, penalty: &Txid, user: &User, locator: &Locator) {
    let deadline = Instant::now() + SOON;
    while !(chain.in_mempool(penalty) || chain.confirmations(penalty) > 0) {
        assert!(
            Instant::now() < deadline,
            "timed out after {SOON:?} waiting for the penalty {penalty}; the appointment is {}",
            appointment_state(user, locator)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
