//! The JSON-RPC server: transport ([`server`], [`http`]), authentication ([`auth`]), envelopes
//! ([`envelope`]), parameters ([`params`]) and the methods, grouped as in Bitcoin Core's
//! `src/rpc/` (blockchain, rawtransaction, mempool, mining, node/net).

pub mod auth;
pub mod envelope;
pub mod error;
pub mod params;

mod blockchain;
pub(crate) mod control;
mod http;
mod mempool;
mod mining;
mod network;
mod package;
mod rawtransaction;
pub(crate) mod server;
mod table;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::faults::{Faults, WARMUP_MESSAGE};
use crate::node::{Node, NodeError};
use crate::zmq_pub::ZmqEndpoint;
use auth::Credentials;
use envelope::{Json, Request};
use error::{RPC_IN_WARMUP, RPC_MISC_ERROR, RpcError};

/// A test's callback on each request (see [`RpcContext::before_method`]).
#[cfg(test)]
pub(crate) type RequestHook = Box<dyn Fn(&Request) + Send + Sync>;

/// Everything a method needs, for one simulator instance (rebuilt at each restart).
pub(crate) struct RpcContext {
    pub node: Arc<Node>,
    pub faults: Arc<Faults>,
    pub credentials: Credentials,
    /// Instance start, for `uptime` and the startup warm-up.
    pub started: Instant,
    /// Startup warm-up: every call answers -28 until `started + warmup`.
    pub warmup: Duration,
    /// What `getzmqnotifications` lists (resolved addresses).
    pub zmq: Vec<ZmqEndpoint>,
    /// Called by the `stop` method after it is answered: shuts this instance down.
    pub on_stop: Box<dyn Fn() + Send + Sync>,
    /// Test seam: called with each request right before its method runs, on the thread running it.
    #[cfg(test)]
    pub before_method: Option<RequestHook>,
}

impl RpcContext {
    /// Runs one request: warm-up check, the method's injected faults (a stall holds this
    /// blocking thread; a failure answers its error), method lookup, parameter checks, then the
    /// method.
    pub fn execute(&self, request: &Request) -> Result<Json, RpcError> {
        if let Some(message) = self.warmup_status() {
            return Err(RpcError::new(RPC_IN_WARMUP, message));
        }
        tracing::debug!(method = %request.method, "rpc call");
        if let Err(failure) = self.faults.before_method(&request.method) {
            tracing::debug!(method = %request.method, code = failure.code, "rpc call failed (fault)");
            return Err(RpcError::new(failure.code, failure.message));
        }
        #[cfg(test)]
        if let Some(hook) = &self.before_method {
            hook(request);
        }
        table::execute(self, request)
    }

    /// The -28 message while warming up (startup phase or fault), `None` otherwise.
    fn warmup_status(&self) -> Option<&'static str> {
        let elapsed = self.started.elapsed();
        if elapsed < self.warmup {
            // Core reports its startup phases in turn; the first half loads, the second verifies.
            return Some(if elapsed < self.warmup / 2 {
                WARMUP_MESSAGE
            } else {
                "Verifying blocks…"
            });
        }
        self.faults.in_warmup().then_some(WARMUP_MESSAGE)
    }
}

/// Maps a node error to Core's RPC error.
fn node_error(error: NodeError) -> RpcError {
    match error {
        NodeError::BlockNotFound => RpcError::block_not_found(),
        NodeError::Rpc { code, message } => RpcError::new(code, message),
        NodeError::Storage(message) => RpcError::new(RPC_MISC_ERROR, message),
    }
}
