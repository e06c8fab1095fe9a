//! bitcoind-sim: a regtest Bitcoin Core stand-in that answers JSON-RPC over HTTP and publishes ZMQ.
//!
//! [`Simulator`] is the handle tests use: it runs a [`node::Node`] behind a JSON-RPC server
//! (its own tokio runtime, on background threads) and a ZMQ publisher (its own thread), so it
//! works from plain `#[test]` functions as well as from async ones. The binary (`src/main.rs`)
//! wraps the same handle. What the RPC and ZMQ surfaces answer follows the transcripts in
//! `../shared/spec/bitcoind/` (see `../shared/spec/BITCOIND.md`).
//!
//! ```no_run
//! use bitcoind_sim::{SimConfig, Simulator};
//! let dir = tempfile::tempdir().unwrap();
//! let sim = Simulator::start(SimConfig::new(dir.path())).unwrap();
//! sim.mine(101);
//! let cookie = sim.cookie_path(); // `__cookie__:<hex>`, rewritten at every (re)start
//! let sim = sim.restart(true).unwrap(); // same ports, new cookie, mempool kept
//! sim.stop().unwrap();
//! ```

pub mod faults;
pub mod fillers;
pub mod json;
pub mod node;
pub mod rpc;
pub mod wallet;
pub mod zmq_pub;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use bitcoin::{Address, BlockHash, CompressedPublicKey, Network};
use tokio::sync::watch;

use crate::faults::Faults;
use crate::node::{Node, NodeConfig, NodeError};
use crate::rpc::RpcContext;
use crate::rpc::auth::{Credentials, cookie_path, delete_cookie, write_cookie};
use crate::rpc::control::ControlServer;
use crate::zmq_pub::{Publisher, Topic, ZmqEndpoint, ZmqError};

/// The secret key of [`Simulator::mining_address`] (32 bytes of 0x01), so tests can spend the
/// coinbases [`Simulator::mine`] creates.
pub const MINING_SECRET_KEY: [u8; 32] = [1u8; 32];

/// How a [`Simulator`] is started.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Data directory; chain state and the cookie live under `<datadir>/regtest/`.
    pub datadir: PathBuf,
    /// RPC port on 127.0.0.1; 0 = ephemeral (kept across restarts once chosen).
    pub rpc_port: u16,
    /// Publish ZMQ (all five topics on one endpoint, `tcp://127.0.0.1:<zmq_port>`).
    pub zmq: bool,
    /// ZMQ port; 0 = ephemeral (kept across restarts once chosen).
    pub zmq_port: u16,
    /// `rpcuser`/`rpcpassword`, accepted besides the cookie.
    pub rpc_auth: Option<(String, String)>,
    /// Like `-txindex`.
    pub txindex: bool,
    /// Like `-persistmempool`.
    pub persist_mempool: bool,
    /// Every call answers -28 for this long after each start (Core's warm-up).
    pub warmup: Duration,
    /// Serve the control endpoint (faults, restart; see the README) on this port; 0 = ephemeral.
    pub control_port: Option<u16>,
    /// Per-topic endpoints like Core's `-zmqpub<topic>=<address>`; when non-empty they replace
    /// `zmq`/`zmq_port`.
    pub zmq_endpoints: Vec<ZmqEndpoint>,
    /// Core's `-minrelaytxfee` in satoshis per 1000 vbytes (see [`Node::set_min_relay_fee`]):
    /// 100, Core v30+'s default; 1000 answers like Core <= v29 (`mempool.json`). Applied after
    /// each start, so transactions reloaded from `mempool.dat` were checked with the default.
    pub min_relay_fee_per_kvb: u64,
}

impl SimConfig {
    /// Ephemeral ports, ZMQ on, txindex on, mempool persisted, no warm-up, no control endpoint.
    pub fn new(datadir: impl Into<PathBuf>) -> Self {
        SimConfig {
            datadir: datadir.into(),
            rpc_port: 0,
            zmq: true,
            zmq_port: 0,
            rpc_auth: None,
            txindex: true,
            persist_mempool: true,
            warmup: Duration::ZERO,
            control_port: None,
            zmq_endpoints: Vec::new(),
            min_relay_fee_per_kvb: 100,
        }
    }

    /// The ZMQ endpoints to bind (port 0 is libzmq's wildcard `*`).
    fn endpoints(&self) -> Vec<ZmqEndpoint> {
        if !self.zmq_endpoints.is_empty() {
            return self.zmq_endpoints.clone();
        }
        if !self.zmq {
            return Vec::new();
        }
        let port = match self.zmq_port {
            0 => "*".to_owned(),
            p => p.to_string(),
        };
        let address = format!("tcp://127.0.0.1:{port}");
        Topic::ALL
            .iter()
            .map(|&topic| ZmqEndpoint {
                topic,
                address: address.clone(),
            })
            .collect()
    }
}

/// Why the simulator could not start, stop or restart.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The chain state could not be opened, closed or changed.
    #[error("node: {0}")]
    Node(#[from] NodeError),
    /// A port is taken (RPC or control endpoint).
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A ZMQ endpoint could not be bound.
    #[error(transparent)]
    Zmq(#[from] ZmqError),
    /// The datadir or the cookie could not be written or removed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A background thread could not start or panicked.
    #[error("thread: {0}")]
    Thread(String),
    /// The simulator has no running node (a restart failed).
    #[error("the simulator is not running")]
    NotRunning,
}

/// Set by the `stop` RPC; lets the binary (or a test) wait for it.
#[derive(Default)]
struct StopRequest {
    requested: Mutex<bool>,
    changed: Condvar,
}

/// Waits for a `stop` RPC (see [`Simulator::stop_waiter`]); cheap to clone, `Send`.
#[derive(Clone)]
pub struct StopWaiter(Arc<StopRequest>);

impl StopWaiter {
    /// Blocks until a `stop` RPC arrived (already or later) or `timeout` passes; true if it did.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let request = &self.0;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut requested = lock(&request.requested);
        while !*requested {
            let left = match deadline {
                None => None,
                Some(deadline) => match deadline.saturating_duration_since(Instant::now()) {
                    left if left.is_zero() => return false,
                    left => Some(left),
                },
            };
            requested = match left {
                None => request
                    .changed
                    .wait(requested)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(left) => {
                    let waited = request.changed.wait_timeout(requested, left);
                    waited.unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
        true
    }
}

/// One run of the node, from start to stop (a restart makes a new one).
struct Instance {
    node: Arc<Node>,
    rpc_port: u16,
    zmq: Vec<ZmqEndpoint>,
    shutdown: watch::Sender<bool>,
    thread: JoinHandle<Result<(), SimError>>,
}

impl Instance {
    fn stop(self) -> Result<(), SimError> {
        self.shutdown.send_replace(true);
        self.thread
            .join()
            .map_err(|_| SimError::Thread("the RPC thread panicked".into()))?
    }
}

/// State shared by the [`Simulator`] handle and its control endpoint.
pub(crate) struct Shared {
    config: Mutex<SimConfig>,
    faults: Arc<Faults>,
    instance: Mutex<Option<Instance>>,
    stop_request: Arc<StopRequest>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves the data consistent even if it panics midway.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Stops the running instance (if any) and starts a new one on the same ports; with
    /// `behind`, the node comes back with the blocks above that height held back
    /// ([`Node::open_behind`]).
    pub(crate) fn restart(&self, keep_mempool: bool, behind: Option<u32>) -> Result<(), SimError> {
        let mut instance = lock(&self.instance);
        if let Some(old) = instance.take() {
            old.stop()?;
        }
        *lock(&self.stop_request.requested) = false;
        let config = lock(&self.config).clone();
        *instance = Some(start_instance(
            &config,
            &self.faults,
            &self.stop_request,
            keep_mempool,
            behind,
        )?);
        Ok(())
    }

    pub(crate) fn faults(&self) -> &Faults {
        &self.faults
    }

    pub(crate) fn node(&self) -> Option<Arc<Node>> {
        lock(&self.instance).as_ref().map(|i| i.node.clone())
    }

    pub(crate) fn rpc_port(&self) -> u16 {
        lock(&self.config).rpc_port
    }

    pub(crate) fn zmq(&self) -> Vec<ZmqEndpoint> {
        lock(&self.config).zmq_endpoints.clone()
    }

    pub(crate) fn cookie_path(&self) -> PathBuf {
        cookie_path(&lock(&self.config).datadir)
    }

    pub(crate) fn is_running(&self) -> bool {
        lock(&self.instance)
            .as_ref()
            .is_some_and(|i| !i.thread.is_finished())
    }
}

/// Creates `<datadir>/regtest/`; without `keep_mempool`, removes Core's `mempool.dat` there so
/// the node comes back empty (and later stops save the new mempool as usual).
fn prepare_datadir(datadir: &Path, keep_mempool: bool) -> Result<(), SimError> {
    let dir = datadir.join("regtest");
    std::fs::create_dir_all(&dir).map_err(|source| SimError::Io {
        path: dir.clone(),
        source,
    })?;
    if keep_mempool {
        return Ok(());
    }
    let dump = dir.join("mempool.dat");
    match std::fs::remove_file(&dump) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SimError::Io {
            path: dump,
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Binds the RPC listener on 127.0.0.1:`port` (0 = any); returns it and the bound port.
fn bind_rpc(port: u16) -> Result<(std::net::TcpListener, u16), SimError> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let bind_error = |source| SimError::Bind { address, source };
    let listener = std::net::TcpListener::bind(address).map_err(bind_error)?;
    let port = listener.local_addr().map_err(bind_error)?.port();
    Ok((listener, port))
}

/// Starts the ZMQ publisher (when configured) and writes a fresh cookie; returns both.
fn start_services(
    config: &SimConfig,
    node: &Arc<Node>,
    faults: &Arc<Faults>,
) -> Result<(Option<Publisher>, String), SimError> {
    let endpoints = config.endpoints();
    let publisher = if endpoints.is_empty() {
        None
    } else {
        let events = node.subscribe();
        Some(Publisher::start(
            &endpoints,
            node.clone(),
            events,
            faults.clone(),
        )?)
    };
    let cookie = write_cookie(&config.datadir).map_err(|source| SimError::Io {
        path: cookie_path(&config.datadir),
        source,
    })?;
    Ok((publisher, cookie))
}

/// What the `stop` RPC does: record the request (for [`StopWaiter`]) and shut the instance down.
fn stop_callback(
    shutdown: &watch::Sender<bool>,
    stop_request: &Arc<StopRequest>,
) -> Box<dyn Fn() + Send + Sync> {
    let shutdown = shutdown.clone();
    let stop_request = stop_request.clone();
    Box::new(move || {
        *lock(&stop_request.requested) = true;
        stop_request.changed.notify_all();
        shutdown.send_replace(true);
    })
}

/// Starts one run: datadir, RPC listener, node (behind when `behind` is set), ZMQ, cookie,
/// then the serving thread.
fn start_instance(
    config: &SimConfig,
    faults: &Arc<Faults>,
    stop_request: &Arc<StopRequest>,
    keep_mempool: bool,
    behind: Option<u32>,
) -> Result<Instance, SimError> {
    prepare_datadir(&config.datadir, keep_mempool)?;
    let (listener, rpc_port) = bind_rpc(config.rpc_port)?;
    let node_config = NodeConfig {
        datadir: config.datadir.clone(),
        txindex: config.txindex,
        persist_mempool: config.persist_mempool,
    };
    let node = Arc::new(match behind {
        None => Node::open(node_config)?,
        Some(height) => Node::open_behind(node_config, height)?,
    });
    node.set_min_relay_fee(config.min_relay_fee_per_kvb);
    let (publisher, cookie) = start_services(config, &node, faults).inspect_err(|_| {
        let _ = node.close();
    })?;
    let zmq = publisher
        .as_ref()
        .map(|p| p.endpoints().to_vec())
        .unwrap_or_default();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let ctx = Arc::new(RpcContext {
        node: node.clone(),
        faults: faults.clone(),
        credentials: Credentials::new(cookie, config.rpc_auth.clone()),
        started: Instant::now(),
        warmup: config.warmup,
        zmq: zmq.clone(),
        on_stop: stop_callback(&shutdown, stop_request),
        #[cfg(test)]
        before_method: None,
    });
    let (thread_node, datadir) = (node.clone(), config.datadir.clone());
    let thread = std::thread::Builder::new()
        .name("bitcoind-sim".into())
        .spawn(move || {
            run_instance(
                listener,
                ctx,
                shutdown_rx,
                publisher,
                &thread_node,
                &datadir,
            )
        })
        .map_err(|e| SimError::Thread(e.to_string()))?;
    tracing::info!(rpc_port, zmq = ?zmq.first().map(|e| &e.address), "bitcoind-sim started");
    Ok(Instance {
        node,
        rpc_port,
        zmq,
        shutdown,
        thread,
    })
}

/// The body of an instance's thread: serve RPC until shutdown, then stop ZMQ, close the node and
/// delete the cookie (Core's shutdown order: RPC first, then notifications, then chain state).
fn run_instance(
    listener: std::net::TcpListener,
    ctx: Arc<RpcContext>,
    shutdown: watch::Receiver<bool>,
    publisher: Option<Publisher>,
    node: &Node,
    datadir: &Path,
) -> Result<(), SimError> {
    let served = rpc::server::run(listener, ctx, shutdown).map_err(|source| SimError::Io {
        path: datadir.to_path_buf(),
        source,
    });
    if let Some(publisher) = publisher {
        publisher.stop();
    }
    let closed = node.close();
    let deleted = delete_cookie(datadir);
    tracing::info!("bitcoind-sim stopped");
    served?;
    closed?;
    deleted.map_err(|source| SimError::Io {
        path: cookie_path(datadir),
        source,
    })
}

/// A running simulator: node + JSON-RPC + ZMQ (+ control endpoint). Dropping it stops it.
pub struct Simulator {
    shared: Arc<Shared>,
    control: Option<ControlServer>,
}

impl Simulator {
    /// Opens the node in `config.datadir`, writes a fresh cookie, binds RPC and ZMQ on 127.0.0.1
    /// and starts serving. Errors: a busy port, an unreadable chain state, an unwritable datadir.
    pub fn start(config: SimConfig) -> Result<Simulator, SimError> {
        let faults = Arc::new(Faults::new());
        let stop_request = Arc::new(StopRequest::default());
        let instance = start_instance(&config, &faults, &stop_request, true, None)?;
        let mut resolved = config.clone();
        resolved.rpc_port = instance.rpc_port;
        resolved.zmq_endpoints = instance.zmq.clone();
        let shared = Arc::new(Shared {
            config: Mutex::new(resolved),
            faults,
            instance: Mutex::new(Some(instance)),
            stop_request,
        });
        let control = match config.control_port {
            None => None,
            Some(port) => match ControlServer::start(port, shared.clone()) {
                Ok(control) => Some(control),
                Err(e) => {
                    if let Some(instance) = lock(&shared.instance).take() {
                        let _ = instance.stop();
                    }
                    return Err(e);
                }
            },
        };
        Ok(Simulator { shared, control })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port())
    }

    /// The RPC port (the same across restarts).
    pub fn rpc_port(&self) -> u16 {
        self.shared.rpc_port()
    }

    /// `<datadir>/regtest/.cookie` (exists while running; its content changes at each restart).
    pub fn cookie_path(&self) -> PathBuf {
        self.shared.cookie_path()
    }

    /// `tcp://127.0.0.1:PORT` of the `hashblock` publisher (the first endpoint if there is no
    /// `hashblock`), `None` when ZMQ is off. The same across restarts.
    pub fn zmq_endpoint(&self) -> Option<String> {
        let endpoints = self.shared.zmq();
        endpoints
            .iter()
            .find(|e| e.topic == Topic::HashBlock)
            .or(endpoints.first())
            .map(|e| e.address.clone())
    }

    /// Every published topic with its bound address.
    pub fn zmq_endpoints(&self) -> Vec<ZmqEndpoint> {
        self.shared.zmq()
    }

    /// The control endpoint's port, when enabled.
    pub fn control_port(&self) -> Option<u16> {
        self.control.as_ref().map(ControlServer::port)
    }

    /// The node of the current run (a restart replaces it).
    ///
    /// # Panics
    /// If the simulator failed to restart (then it has no node).
    pub fn node(&self) -> Arc<Node> {
        match self.shared.node() {
            Some(node) => node,
            None => panic!("bitcoind-sim has no running node"),
        }
    }

    /// The fault switchboard (shared across restarts).
    pub fn faults(&self) -> &Faults {
        self.shared.faults()
    }

    /// The regtest P2WPKH address [`Simulator::mine`] pays to; its key is [`MINING_SECRET_KEY`].
    pub fn mining_address() -> Address {
        // A constant, valid (non-zero, below the curve order) secret key.
        let key = SecretKey::from_slice(&MINING_SECRET_KEY).unwrap_or_else(|_| unreachable!());
        let public = CompressedPublicKey(key.public_key(&Secp256k1::signing_only()));
        Address::p2wpkh(&public, Network::Regtest)
    }

    /// Mines `n` blocks to [`Simulator::mining_address`] and returns their hashes.
    pub fn try_mine(&self, n: u32) -> Result<Vec<BlockHash>, SimError> {
        let node = self.shared.node().ok_or(SimError::NotRunning)?;
        Ok(node.generate_to_script(n, &Self::mining_address().script_pubkey())?)
    }

    /// [`Simulator::try_mine`] for tests.
    ///
    /// # Panics
    /// If the node cannot mine (not running, storage failure).
    pub fn mine(&self, n: u32) -> Vec<BlockHash> {
        match self.try_mine(n) {
            Ok(hashes) => hashes,
            Err(e) => panic!("bitcoind-sim cannot mine: {e}"),
        }
    }

    /// Whether the node is serving (false after a `stop` RPC).
    pub fn is_running(&self) -> bool {
        self.shared.is_running()
    }

    /// Blocks until a `stop` RPC arrives or `timeout` passes; true if it arrived.
    pub fn wait_for_stop_request(&self, timeout: Option<Duration>) -> bool {
        self.stop_waiter().wait(timeout)
    }

    /// A handle that waits for the `stop` RPC from another thread (the binary's main loop).
    pub fn stop_waiter(&self) -> StopWaiter {
        StopWaiter(self.shared.stop_request.clone())
    }

    /// Stops gracefully: RPC (in-flight requests finish), ZMQ, node (mempool saved when
    /// persisted), then deletes the cookie. Also fine after a `stop` RPC.
    pub fn stop(mut self) -> Result<(), SimError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), SimError> {
        if let Some(control) = self.control.take() {
            control.stop();
        }
        match lock(&self.shared.instance).take() {
            Some(instance) => instance.stop(),
            None => Ok(()),
        }
    }

    /// Stops and starts again with the same datadir and the same RPC and ZMQ ports, and a new
    /// cookie. With `keep_mempool` false the node comes back with an empty mempool (as after a
    /// crash or with `-persistmempool=0`).
    pub fn restart(self, keep_mempool: bool) -> Result<Simulator, SimError> {
        self.shared.restart(keep_mempool, None)?;
        Ok(self)
    }

    /// Stops and starts again BEHIND, as after `bitcoind -reindex` or a restore from an older
    /// snapshot: same ports, a new cookie, an empty mempool, and an active chain ending at
    /// `visible_height` (when that many blocks are stored); the stored blocks above it are out
    /// of the block index until [`Node::reconnect_stored`] hands them in again, one call at a
    /// time, with the same hashes and the usual ZMQ notifications, so the chain later passes
    /// the old tip. `getblockheader` and `getblockchaininfo` report the lower tip's `chainwork`
    /// meanwhile. Errors: as [`Simulator::restart`].
    ///
    /// Simplifications: `headers` equals `blocks` (no peers announce the held-back headers) and
    /// `initialblockdownload` follows the tip's age as usual (Core reports true while reindexing).
    pub fn restart_behind(self, visible_height: u32) -> Result<Simulator, SimError> {
        self.shared.restart(false, Some(visible_height))?;
        Ok(self)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(error = %e, "bitcoind-sim did not stop cleanly");
        }
    }
}
