//! The chain monitor: tells the block processor "look at bitcoind now".
//!
//! Two independent sources, each on its own thread, both only wake the block processor (which then
//! walks the chain itself — BITCOIND.md "ZMQ": notifications are lossy, never the source of truth):
//! - a ZMQ SUB socket on bitcoind's `hashblock` topic, for sub-second reaction to new blocks;
//! - a poller calling `getbestblockhash` every `polling_delta` seconds, which also catches anything ZMQ
//!   missed and keeps the "bitcoind reachable" flag current.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bitcoin::BlockHash;

use crate::bitcoind::{BitcoindRpc, RpcError};
use crate::shutdown::{Shutdown, Wakeup};

/// Why the chain monitor could not start.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("zmq: {0}")]
    Zmq(#[from] zmq::Error),
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Running monitor threads; [`ChainMonitor::join`] waits for them after shutdown is triggered.
pub struct ChainMonitor {
    threads: Vec<JoinHandle<()>>,
}

impl ChainMonitor {
    /// Starts the poller (thread `bitcoind-poller`) and, when `zmq_endpoint` is given (e.g.
    /// `tcp://127.0.0.1:28332`), the ZMQ subscriber (thread `zmq-hashblock`), both with
    /// [`crate::thread::spawn`] (a panic stops the tower). Both wake `wakeup`; both stop when
    /// `shutdown` is triggered (within about 250 ms for ZMQ, at once for the poller).
    pub fn start<B: BitcoindRpc>(
        rpc: Arc<B>,
        zmq_endpoint: Option<String>,
        polling_delta: Duration,
        wakeup: Arc<Wakeup>,
        reachable: Arc<AtomicBool>,
        shutdown: Arc<Shutdown>,
    ) -> Result<ChainMonitor, MonitorError> {
        let mut threads = Vec::new();
        if let Some(endpoint) = zmq_endpoint {
            let socket = subscribe(&endpoint)?;
            let (wakeup, shutdown) = (wakeup.clone(), shutdown.clone());
            threads.push(crate::thread::spawn("zmq-hashblock", move || {
                listen(socket, &wakeup, &shutdown);
                Ok(())
            })?);
            tracing::info!("listening to bitcoind's hashblock notifications on {endpoint}");
        }
        threads.push(crate::thread::spawn("bitcoind-poller", move || {
            poll(&*rpc, polling_delta, &wakeup, &reachable, &shutdown);
            Ok(())
        })?);
        Ok(ChainMonitor { threads })
    }

    /// Waits for the monitor threads to end (trigger shutdown first).
    pub fn join(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn subscribe(endpoint: &str) -> Result<zmq::Socket, zmq::Error> {
    let context = zmq::Context::new();
    let socket = context.socket(zmq::SUB)?;
    socket.set_rcvtimeo(250)?;
    socket.set_linger(0)?;
    socket.set_rcvhwm(0)?;
    socket.connect(endpoint)?;
    socket.set_subscribe(b"hashblock")?;
    Ok(socket)
}

fn listen(socket: zmq::Socket, wakeup: &Wakeup, shutdown: &Shutdown) {
    while !shutdown.is_triggered() {
        match socket.recv_multipart(0) {
            Ok(frames) => {
                if let Some(hash) = frames.get(1).and_then(|body| hash_from_display_bytes(body)) {
                    tracing::debug!(%hash, "zmq hashblock");
                }
                metrics::counter!(crate::metrics::CHAIN_NOTIFICATIONS, "source" => "zmq")
                    .increment(1);
                wakeup.wake();
            }
            Err(zmq::Error::EAGAIN) => {}
            Err(e) => {
                tracing::warn!("zmq receive failed: {e}");
                shutdown.wait_timeout(Duration::from_millis(250));
            }
        }
    }
}

/// A `hashblock` body is the block hash in display (RPC) order.
fn hash_from_display_bytes(body: &[u8]) -> Option<BlockHash> {
    let mut bytes: [u8; 32] = body.try_into().ok()?;
    bytes.reverse();
    Some(bitcoin::hashes::Hash::from_byte_array(bytes))
}

fn poll<B: BitcoindRpc>(
    rpc: &B,
    polling_delta: Duration,
    wakeup: &Wakeup,
    reachable: &AtomicBool,
    shutdown: &Shutdown,
) {
    let mut last: Option<BlockHash> = None;
    loop {
        match rpc.best_block_hash() {
            Ok(best) => {
                if !reachable.swap(true, Ordering::SeqCst) {
                    tracing::info!("bitcoind reachable again");
                    wakeup.wake();
                }
                if last != Some(best) {
                    last = Some(best);
                    metrics::counter!(crate::metrics::CHAIN_NOTIFICATIONS, "source" => "poll")
                        .increment(1);
                    wakeup.wake();
                }
            }
            Err(e @ RpcError::Transport(_)) => {
                if reachable.swap(false, Ordering::SeqCst) {
                    tracing::warn!("bitcoind unreachable: {e}");
                }
            }
            Err(e) => tracing::warn!("polling bitcoind failed: {e}"),
        }
        if shutdown.wait_timeout(polling_delta) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashblock_body_is_read_in_display_order() {
        let display = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";
        let body = hex::decode(display).unwrap();
        assert_eq!(hash_from_display_bytes(&body).unwrap().to_string(), display);
        assert!(hash_from_display_bytes(&body[1..]).is_none());
    }
}
