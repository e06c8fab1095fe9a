//! When bitcoind-sim connected each block and accepted each transaction into its mempool, as seen
//! by a subscriber thread of the in-process node.
//!
//! The node sends its events while it holds its lock, in the order its ZMQ publisher sees them
//! (`bitcoind_sim::node::NodeEvent`), so the instant a `BlockConnected` arrives here is the instant
//! the `hashblock` notification goes out, give or take a channel hop on both sides.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bitcoin::{BlockHash, Txid};
use bitcoind_sim::node::{Node, NodeEvent};

use teos_testkit::wait_for;

use crate::error::BenchError;

#[derive(Default)]
struct Seen {
    blocks: HashMap<BlockHash, Instant>,
    txs: HashMap<Txid, Instant>,
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Seen>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Arrival instants of the node's block and mempool events since [`EventLog::subscribe`].
#[derive(Clone)]
pub struct EventLog {
    shared: Arc<Shared>,
}

impl EventLog {
    /// Subscribes to `node` and records events on a background thread until the node goes away.
    pub fn subscribe(node: &Node) -> Result<EventLog, BenchError> {
        let events = node.subscribe();
        let shared = Arc::new(Shared::default());
        let log = EventLog {
            shared: shared.clone(),
        };
        std::thread::Builder::new()
            .name("sim-events".into())
            .spawn(move || {
                for event in events {
                    let now = Instant::now();
                    {
                        let mut seen = shared.lock();
                        match event {
                            NodeEvent::BlockConnected { hash, .. } => {
                                seen.blocks.insert(hash, now);
                            }
                            NodeEvent::TxAdded { tx, .. } => {
                                seen.txs.entry(tx.compute_txid()).or_insert(now);
                            }
                            NodeEvent::TxRemoved { .. } | NodeEvent::BlockDisconnected { .. } => {}
                        }
                    }
                }
            })
            .map_err(|e| BenchError::io("starting the event thread", e))?;
        Ok(log)
    }

    /// When block `hash` was connected, waiting up to `timeout` for it.
    pub fn block_connected(
        &self,
        hash: &BlockHash,
        timeout: Duration,
    ) -> Result<Instant, BenchError> {
        self.wait(timeout, &format!("block {hash} to connect"), |seen| {
            seen.blocks.get(hash).copied()
        })
    }

    /// When `txid` first entered the mempool, waiting up to `timeout` for it.
    pub fn tx_added(&self, txid: &Txid, timeout: Duration) -> Result<Instant, BenchError> {
        self.wait(timeout, &format!("{txid} in the mempool"), |seen| {
            seen.txs.get(txid).copied()
        })
    }

    /// Waits (teos-testkit's deadline loop) until `find` finds the instant. The instants were
    /// taken by the subscriber thread on arrival, so how often this polls does not change them.
    fn wait(
        &self,
        timeout: Duration,
        what: &str,
        find: impl Fn(&Seen) -> Option<Instant>,
    ) -> Result<Instant, BenchError> {
        Ok(wait_for(what, timeout, || Ok(find(&self.shared.lock())))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoind_sim::wallet::TestWallet;
    use bitcoind_sim::{SimConfig, Simulator};

    #[test]
    fn blocks_and_mempool_entries_are_timestamped_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SimConfig::new(dir.path());
        config.zmq = false;
        let sim = Simulator::start(config).unwrap();
        let node = sim.node();
        let wallet = TestWallet::new(5);
        wallet.fund(&node, 1).unwrap();
        let log = EventLog::subscribe(&node).unwrap();

        let tx = wallet
            .send(
                &node,
                &wallet.fresh_script(),
                bitcoin::Amount::from_sat(100_000),
            )
            .unwrap();
        node.accept_transaction(tx.clone(), None, false).unwrap();
        let hash = sim.mine(1)[0];
        let added = log
            .tx_added(&tx.compute_txid(), Duration::from_secs(10))
            .unwrap();
        let connected = log.block_connected(&hash, Duration::from_secs(10)).unwrap();
        assert!(added <= connected);
        let unknown = BlockHash::from_raw_hash(bitcoin::hashes::Hash::all_zeros());
        assert!(matches!(
            log.block_connected(&unknown, Duration::from_millis(50)),
            Err(BenchError::Kit(teos_testkit::KitError::Timeout { .. }))
        ));
    }
}
