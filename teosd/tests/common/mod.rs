//! End-to-end harness of teosd's tests: a thin layer over `teos-testkit` (bitcoind-sim in-process on
//! loopback, the real `teosd` binary as a child process, a protocol client) that panics instead of
//! returning errors, as a test wants.
//!
//! Every wait polls a condition against a deadline; nothing sleeps to synchronize. The tower's
//! readiness, addresses and tower id come from its structured events, its state from its APIs
//! ([`TowerProcess::tip`], [`TowerProcess::admin`], [`User`]).
#![allow(dead_code, unused_imports)] // each test binary uses a different subset of the harness (and of its re-exports)

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use std::time::Instant;

use bitcoin::{BlockHash, Transaction, Txid};
use bitcoind_sim::wallet::TestWallet;
use teos_common::appointment::Locator;
use teos_common::client::ClientError;
use teos_common::protocol::GetAppointmentResponse;
use teos_testkit::{ConfigPorts, KitError, Launch, TowerConfig};

pub use teos_testkit::{Admin, LogLine, SOON, User, appointment_for};

/// How long teosd may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful stop may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// A failed harness step is a panic at the test's line.
trait OrFail<T> {
    fn or_fail(self) -> T;
}

impl<T> OrFail<T> for Result<T, KitError> {
    #[track_caller]
    fn or_fail(self) -> T {
        match self {
            Ok(value) => value,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes (then panics with `what`).
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, condition: impl FnMut() -> bool) {
    teos_testkit::wait_until(what, timeout, condition).or_fail()
}

/// A free TCP port on 127.0.0.1 (bound then released), for where a fixed port is unavoidable.
#[track_caller]
pub fn free_port() -> u16 {
    teos_testkit::free_port().or_fail()
}

/// The simulator plus a funded test wallet ([`teos_testkit::Chain`], whose fields and queries it
/// derefs to).
pub struct Chain(teos_testkit::Chain);

impl Deref for Chain {
    type Target = teos_testkit::Chain;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Chain {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Chain {
    /// Starts bitcoind-sim with ZMQ and a wallet holding `coins` mature coins.
    #[track_caller]
    pub fn start(coins: usize) -> Chain {
        Chain(teos_testkit::Chain::start(coins).or_fail())
    }

    /// Broadcasts a transaction to the simulator's mempool.
    #[track_caller]
    pub fn broadcast(&self, tx: &Transaction) {
        self.0.broadcast(tx).or_fail()
    }

    /// Restarts bitcoind-sim on the same ports (new cookie), keeping or emptying its mempool.
    #[track_caller]
    pub fn restart(&mut self, keep_mempool: bool) {
        self.0.restart(keep_mempool).or_fail()
    }

    /// A commitment/penalty pair as Lightning would make it (nothing broadcast).
    #[track_caller]
    pub fn breach(&self) -> (Transaction, Transaction) {
        self.0.breach().or_fail()
    }
}

/// Options for the tower under test, written to `<datadir>/teos.toml`.
///
/// The tests of the block path run with `mempool_watch = false` (written unless an extra line sets
/// `mempool_watch`): a breach answered from the mempool would race their "broadcast, then mine"
/// steps. `e2e_mempool.rs` turns it on.
#[derive(Clone, Default)]
pub struct TowerOptions {
    /// Extra `key = value` lines.
    pub extra: Vec<String>,
}

/// A running `teosd` child process ([`teos_testkit::TowerProcess`], whose methods it derefs to).
pub struct TowerProcess {
    inner: teos_testkit::TowerProcess,
    pub datadir: PathBuf,
    /// Port of the public API: the bound one once ready, else the configured one.
    pub api_port: u16,
}

impl Deref for TowerProcess {
    type Target = teos_testkit::TowerProcess;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl TowerProcess {
    /// Writes the config for `chain` and starts teosd, waiting for its ready event.
    #[track_caller]
    pub fn start(chain: &Chain, datadir: &Path, options: &TowerOptions) -> TowerProcess {
        let api_port = Self::configure(chain, datadir, options);
        Self::spawn(datadir, api_port, &[])
    }

    /// Starts teosd on an existing data dir (config already written), waiting for its ready event.
    /// `api_port` is only a fallback: the bound port is read from the event.
    #[track_caller]
    pub fn spawn(datadir: &Path, api_port: u16, args: &[&str]) -> TowerProcess {
        Self::spawn_with(datadir, api_port, args, &[], "Tower ready")
    }

    /// Like [`TowerProcess::spawn`] with extra environment variables. `ready` says what to wait for:
    /// `"Tower ready"` is the structured ready event; `""` is nothing (a start expected to fail);
    /// any other text waits for a log line containing it.
    #[track_caller]
    pub fn spawn_with(
        datadir: &Path,
        api_port: u16,
        args: &[&str],
        envs: &[(&str, &str)],
        ready: &str,
    ) -> TowerProcess {
        let mut launch = Launch::new(Path::new(env!("CARGO_BIN_EXE_teosd")), datadir);
        launch.args = args.iter().map(Into::into).collect();
        launch.env = envs.iter().map(|(k, v)| (k.into(), v.into())).collect();
        launch.rust_log = "info,teosd=debug".into();
        let inner = teos_testkit::TowerProcess::spawn(&launch).or_fail();
        let mut tower = TowerProcess {
            inner,
            datadir: datadir.to_path_buf(),
            api_port,
        };
        match ready {
            "" => {}
            "Tower ready" => tower.wait_ready(),
            text => tower.wait_for_log(text, READY_TIMEOUT),
        }
        tower
    }

    /// Waits for the ready event; the API port is then the bound one.
    #[track_caller]
    pub fn wait_ready(&mut self) {
        let ready = self.inner.wait_ready(READY_TIMEOUT).or_fail();
        self.api_port = ready.api.port();
    }

    /// Writes the config for `chain` (see [`TowerProcess::start`]) without starting teosd; returns
    /// the API port written.
    #[track_caller]
    pub fn configure(chain: &Chain, datadir: &Path, options: &TowerOptions) -> u16 {
        let mut config = TowerConfig::new(datadir);
        config.extra = options.extra.clone();
        if !options
            .extra
            .iter()
            .any(|line| line.trim_start().starts_with("mempool_watch"))
        {
            config.extra.push("mempool_watch = false".into());
        }
        let ConfigPorts { api, .. } = config.write(chain.sim()).or_fail();
        api
    }

    /// Waits (bounded) for the process to exit by itself.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.inner.wait_exit(timeout).or_fail()
    }

    /// Restarts on the same data dir (SIGTERM, which must end in success, then a new start).
    #[track_caller]
    pub fn restart(mut self) -> TowerProcess {
        let status = self.stop();
        assert!(status.success(), "teosd exited with {status}");
        Self::spawn(&self.datadir.clone(), self.api_port, &[])
    }

    /// `http://127.0.0.1:<api_port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// The tower id from the ready event.
    #[track_caller]
    pub fn tower_id(&self) -> teos_common::appointment::UserId {
        match self.inner.ready() {
            Some(ready) => ready.tower_id,
            None => panic!("teosd is not ready"),
        }
    }

    /// Every log line so far, human-readable (the level, target, message and fields of each JSON
    /// event). For checks on what is logged (secrets never are), not for waiting.
    pub fn logs(&self) -> Vec<String> {
        self.inner.lines().iter().map(LogLine::text).collect()
    }

    /// Whether a log line (in its [`TowerProcess::logs`] form) contains `needle`. Prefer state read
    /// through the APIs or events found by their fields.
    pub fn has_log(&self, needle: &str) -> bool {
        self.inner.any_line(|l| l.text().contains(needle))
    }

    /// Waits for a log line containing `needle` ([`TowerProcess::has_log`]); panics if teosd exits
    /// first. Prefer [`TowerProcess::wait_for_tip`] or an event found by its fields.
    #[track_caller]
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        self.inner
            .wait_for_line(0, &format!("teosd to log {needle:?}"), timeout, |l| {
                l.text().contains(needle)
            })
            .or_fail();
    }

    /// Waits for the first event at line index `>= from` that `matches` (by its fields); returns it.
    #[track_caller]
    pub fn wait_for_event(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&teos_testkit::LogEvent) -> bool,
    ) -> teos_testkit::LogEvent {
        self.inner
            .wait_for_line(0, what, timeout, |l| l.event.as_ref().is_some_and(&matches))
            .or_fail()
            .event
            .unwrap_or_default()
    }

    /// The admin gRPC client of this tower.
    #[track_caller]
    pub fn admin(&self) -> &Admin {
        self.inner.admin().or_fail()
    }

    /// Port of the admin gRPC API (bound, from the ready events).
    #[track_caller]
    pub fn admin_port(&self) -> u16 {
        match self.inner.ready() {
            Some(ready) => ready.admin.port(),
            None => panic!("teosd is not ready"),
        }
    }

    /// Height and hash of the last block the tower processed (admin `get_tower_info`).
    #[track_caller]
    pub fn tip(&self) -> (u32, BlockHash) {
        self.inner.tip().or_fail()
    }

    /// Waits until the tower has processed bitcoind's tip (height and hash).
    #[track_caller]
    pub fn wait_for_tip(&self, chain: &Chain) {
        self.inner.wait_for_tip(chain.tip(), SOON).or_fail()
    }

    #[track_caller]
    pub fn pid(&self) -> u32 {
        assert!(self.inner.is_running(), "teosd not running");
        self.inner.pid()
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    #[track_caller]
    pub fn stop(&mut self) -> ExitStatus {
        self.inner.stop(STOP_TIMEOUT).or_fail()
    }

    /// Waits (bounded) for the exit status after a signal was sent by the test itself.
    #[track_caller]
    pub fn stop_after_signal(&mut self, timeout: Duration) -> ExitStatus {
        self.wait_exit(timeout)
    }

    /// Waits (bounded) for teosd to exit on its own (e.g. after the admin `stop` call) and returns
    /// its exit status.
    #[track_caller]
    pub fn wait_for_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.wait_exit(timeout)
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        self.inner.kill()
    }
}

/// Sends signal `name` (`TERM`, `INT`, `HUP`, …) to `pid`.
#[track_caller]
pub fn signal(pid: u32, name: &str) {
    teos_testkit::send_signal(pid, name).or_fail()
}

/// The error code of a failed client call.
#[track_caller]
pub fn error_code(result: Result<impl std::fmt::Debug, ClientError>) -> (u16, u8) {
    match teos_testkit::api_error(&result) {
        Some(code) => code,
        None => panic!("expected an API error, got {result:?}"),
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

/// A client of the tower's admin gRPC API (the kit's [`Admin`]) giving the tower's view as
/// [`TowerInfo`], or `None` while teosd does not answer.
pub struct AdminView(Admin);

impl AdminView {
    /// Connects (lazily) to the `rpc_port` of `tower`'s `teos.toml`, with the certificates teosd
    /// wrote in its data dir.
    pub fn connect(tower: &TowerProcess) -> AdminView {
        let dir = &tower.datadir;
        let text = std::fs::read_to_string(dir.join("teos.toml")).unwrap();
        let port: u16 = text
            .lines()
            .find_map(|l| l.strip_prefix("rpc_port = "))
            .expect("no rpc_port in teos.toml")
            .trim()
            .parse()
            .unwrap();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        AdminView(Admin::new(dir, addr).or_fail())
    }

    /// `get_tower_info`, or `None` when the call fails (teosd down or not serving yet).
    pub fn info(&self) -> Option<TowerInfo> {
        use bitcoin::hashes::Hash;
        let info = self.0.tower_info().ok()?;
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
        if let Some(status) = self.inner.try_exit_status() {
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
        ping(self.api_port)
    }

    /// Waits (bounded by [`SOON`]) until the last block the tower processed is bitcoind's best
    /// block, read through the admin API; panics at once if teosd exits meanwhile.
    pub fn wait_at_tip(&mut self, admin: &AdminView, chain: &Chain) -> TowerInfo {
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
        let sim = self.0.sim.take().expect("simulator stopped");
        self.0.sim = Some(sim.restart_behind(visible_height).unwrap());
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

impl TowerProcess {
    /// The exit status if teosd has exited (by itself or after a signal), `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.inner.try_exit_status()
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

/// The `/metrics` text served on 127.0.0.1:`port`; `None` when unreachable.
pub fn scrape_metrics(port: u16) -> Option<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await?
            .text()
            .await
    })
    .ok()
}

/// Fetches `/metrics` from 127.0.0.1:`port` and returns the value of the first sample line starting
/// with `name` (e.g. `teosd_trackers{status="confirmed"}`); `None` when absent or unreachable.
pub fn metric(port: u16, name: &str) -> Option<f64> {
    scrape_metrics(port)?
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Whether `GET /ping` on the API at 127.0.0.1:`port` answers 200 now (a fresh connection).
pub fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
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
