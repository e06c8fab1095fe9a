//! The control endpoint: a small JSON-over-HTTP port (no authentication, loopback only) that
//! injects faults into a running simulator and restarts it, for scripts and for tests that run
//! the simulator as a separate process. Documented in the crate README.
//!
//! | request | body | effect |
//! |---|---|---|
//! | `GET /status` | | ports, cookie path, running flag, active faults |
//! | `POST /faults/stall` | `{"seconds": N}` | hold RPC requests for N seconds |
//! | `POST /faults/refuse` | `{"seconds": N}` | close the RPC port for N seconds |
//! | `POST /faults/warmup` | `{"seconds": N}` | answer -28 for N seconds |
//! | `POST /faults/drop_zmq` | `{"count": N}` or `{"seconds": N}`; `{"count": N, "topic": T}` | drop ZMQ messages (of topic T only: `sequence`, `hashtx`, ...) |
//! | `POST /faults/fail_method` | `{"method": M, "code": C, "message": S, "times": N}` (`times` optional) | calls of M answer error C/S |
//! | `POST /faults/stall_method` | `{"method": M, "seconds": N}` | hold calls of M for N seconds |
//! | `POST /faults/clear_method` | `{"method": M}` | lift the faults of M |
//! | `POST /faults/clear` | | lift every fault |
//! | `POST /restart` | `{"keep_mempool": bool}` (default true), `{"visible_height": H}` | restart: same ports, new cookie; with H, behind (see [`Simulator::restart_behind`]) |
//! | `POST /reconnect` | `{"blocks": N}` (default 1) | after a restart behind, connect the next N stored blocks again |
//! | `POST /mine` | `{"blocks": N}` (default 1) | mine N blocks to the simulator's address |
//!
//! Answers are JSON: the status object, or `{"error": "..."}` with HTTP 400/500.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::faults::{FaultStatus, ZmqDrop};
use crate::zmq_pub::Topic;
use crate::{Shared, SimError, Simulator};

/// The running control server; stopped by [`ControlServer::stop`].
pub(crate) struct ControlServer {
    port: u16,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Binds 127.0.0.1:`port` (0 = ephemeral) and serves on its own thread.
    pub(crate) fn start(port: u16, shared: Arc<Shared>) -> Result<ControlServer, SimError> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let bind_error = |source| SimError::Bind { address, source };
        let listener = std::net::TcpListener::bind(address).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let port = listener.local_addr().map_err(bind_error)?.port();
        let (shutdown, mut shutdown_rx) = watch::channel(false);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SimError::Thread(e.to_string()))?;
        let thread = std::thread::Builder::new()
            .name("bitcoind-sim-control".into())
            .spawn(move || {
                let served = runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    axum::serve(listener, router(shared))
                        .with_graceful_shutdown(async move {
                            let _ = shutdown_rx.wait_for(|stop| *stop).await;
                        })
                        .await
                });
                if let Err(e) = served {
                    tracing::error!(error = %e, "control endpoint failed");
                }
                runtime.shutdown_timeout(Duration::from_secs(5));
            })
            .map_err(|e| SimError::Thread(e.to_string()))?;
        tracing::info!(port, "bitcoind-sim control endpoint listening");
        Ok(ControlServer {
            port,
            shutdown,
            thread: Some(thread),
        })
    }

    /// The bound port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Stops serving and joins the thread.
    pub(crate) fn stop(mut self) {
        self.shutdown.send_replace(true);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("control endpoint thread panicked");
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/faults/{fault}", post(fault))
        .route("/restart", post(restart))
        .route("/mine", post(mine))
        .route("/reconnect", post(reconnect))
        .with_state(shared)
}

#[derive(Serialize)]
struct Status {
    running: bool,
    rpc_port: u16,
    cookie_path: String,
    zmq: Vec<Value>,
    faults: FaultStatus,
}

fn status_of(shared: &Shared) -> Status {
    Status {
        running: shared.is_running(),
        rpc_port: shared.rpc_port(),
        cookie_path: shared.cookie_path().display().to_string(),
        zmq: shared
            .zmq()
            .iter()
            .map(|e| json!({"topic": e.topic.name(), "address": e.address}))
            .collect(),
        faults: shared.faults().status(),
    }
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(status_of(&shared)).into_response()
}

/// A failed control request: HTTP status and `{"error": message}`.
struct ControlError(StatusCode, String);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"error": self.1}))).into_response()
    }
}

fn bad_request(message: impl std::fmt::Display) -> ControlError {
    ControlError(StatusCode::BAD_REQUEST, message.to_string())
}

fn internal(message: impl std::fmt::Display) -> ControlError {
    ControlError(StatusCode::INTERNAL_SERVER_ERROR, message.to_string())
}

/// The JSON body, `{}` when empty.
fn body_json<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> Result<T, ControlError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(bad_request)
}

#[derive(Deserialize, Default)]
struct FaultBody {
    seconds: Option<f64>,
    count: Option<u64>,
    method: Option<String>,
    code: Option<i32>,
    message: Option<String>,
    times: Option<u32>,
    /// A ZMQ topic name for `drop_zmq` (`hashblock`, `hashtx`, `rawblock`, `rawtx`, `sequence`).
    topic: Option<String>,
}

fn topic_named(name: &str) -> Result<Topic, ControlError> {
    Topic::ALL
        .into_iter()
        .find(|t| t.name() == name)
        .ok_or_else(|| {
            bad_request("unknown ZMQ topic (hashblock, hashtx, rawblock, rawtx, sequence)")
        })
}

fn method_name(body: &FaultBody) -> Result<&str, ControlError> {
    body.method
        .as_deref()
        .ok_or_else(|| bad_request("expected {\"method\": \"<JSON-RPC method>\"}"))
}

fn fail_method(faults: &crate::faults::Faults, body: &FaultBody) -> Result<(), ControlError> {
    let method = method_name(body)?;
    let (Some(code), Some(message)) = (body.code, body.message.as_deref()) else {
        return Err(bad_request(
            "expected {\"method\": M, \"code\": C, \"message\": S} (\"times\": N optional)",
        ));
    };
    faults.fail_method(method, code, message, body.times);
    Ok(())
}

fn seconds(body: &FaultBody) -> Result<Duration, ControlError> {
    body.seconds
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| bad_request("expected {\"seconds\": N} with N >= 0"))
}

async fn fault(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(name): axum::extract::Path<String>,
    body: Bytes,
) -> Result<Response, ControlError> {
    let body: FaultBody = body_json(&body)?;
    let faults = shared.faults();
    match name.as_str() {
        "stall" => faults.stall_rpc(seconds(&body)?),
        "refuse" => faults.refuse_rpc(seconds(&body)?),
        "warmup" => faults.warmup(seconds(&body)?),
        "drop_zmq" => match (body.count, body.topic.as_deref()) {
            (Some(n), Some(name)) => faults.drop_zmq_topic(topic_named(name)?, n),
            (Some(n), None) => faults.drop_zmq(ZmqDrop::Next(n)),
            (None, _) => faults.drop_zmq(ZmqDrop::For(seconds(&body)?)),
        },
        "fail_method" => fail_method(faults, &body)?,
        "stall_method" => faults.stall_method(method_name(&body)?, seconds(&body)?),
        "clear_method" => faults.clear_method(method_name(&body)?),
        "clear" => faults.clear(),
        other => {
            return Err(ControlError(
                StatusCode::NOT_FOUND,
                format!("unknown fault {other}"),
            ));
        }
    }
    Ok(axum::Json(status_of(&shared)).into_response())
}

#[derive(Deserialize, Default)]
struct RestartBody {
    keep_mempool: Option<bool>,
    visible_height: Option<u32>,
}

async fn restart(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Response, ControlError> {
    let body: RestartBody = body_json(&body)?;
    // A restart behind always comes back with an empty mempool (see `Simulator::restart_behind`).
    let keep = body.keep_mempool.unwrap_or(true) && body.visible_height.is_none();
    let behind = body.visible_height;
    let worker = shared.clone();
    tokio::task::spawn_blocking(move || worker.restart(keep, behind))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    Ok(axum::Json(status_of(&shared)).into_response())
}

#[derive(Deserialize, Default)]
struct MineBody {
    blocks: Option<u32>,
}

async fn mine(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Response, ControlError> {
    let body: MineBody = body_json(&body)?;
    let node = shared
        .node()
        .ok_or_else(|| internal(SimError::NotRunning))?;
    let script = Simulator::mining_address().script_pubkey();
    let blocks = body.blocks.unwrap_or(1);
    let hashes = tokio::task::spawn_blocking(move || node.generate_to_script(blocks, &script))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    let hashes: Vec<String> = hashes.iter().map(ToString::to_string).collect();
    Ok(axum::Json(json!({"blocks": hashes})).into_response())
}

/// `POST /reconnect {"blocks": N}`: [`crate::node::Node::reconnect_stored`]; answers
/// `{"blocks": [hashes handed back in]}`.
async fn reconnect(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, ControlError> {
    let body: MineBody = body_json(&body)?;
    let node = shared
        .node()
        .ok_or_else(|| internal(SimError::NotRunning))?;
    let blocks = body.blocks.unwrap_or(1);
    let hashes = tokio::task::spawn_blocking(move || node.reconnect_stored(blocks))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    let hashes: Vec<String> = hashes.iter().map(ToString::to_string).collect();
    Ok(axum::Json(json!({"blocks": hashes})).into_response())
}
