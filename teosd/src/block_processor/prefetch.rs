//! Downloading blocks ahead during catch-up: threads that fetch the next blocks (and their txids)
//! while the block processor connects the current one. They change nothing: a block they hand over
//! is connected only if it builds on the tower's tip, and they stop at their first error, leaving
//! retries to the block processor (see `BlockProcessor::sync`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

use bitcoin::{Block, Transaction, Txid};

use crate::bitcoind::BitcoindRpc;

/// How many threads download blocks ahead during catch-up: `getblock` is bitcoind's serialization
/// plus the tower's decoding, both slower than connecting a block, so two downloads run at once.
pub const PREFETCH_THREADS: u32 = 2;

/// How many downloaded blocks each prefetch thread may have waiting (each is held decoded in memory: up
/// to ~4 MB for a full block).
pub const PREFETCH_DEPTH: usize = 1;

/// A block downloaded ahead by the prefetcher, with its txids computed off the block processor's thread.
pub(super) struct Fetched {
    pub(super) height: u32,
    pub(super) block: Block,
    pub(super) txids: Vec<Txid>,
}

/// Tells the prefetch thread to stop; set when the catch-up that started it ends, however it ends.
#[derive(Default)]
pub(super) struct StopFlag(pub(super) Arc<AtomicBool>);

impl Drop for StopFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The prefetch thread: `getblockhash` + `getblock` for each height in order, handing each block over
/// through `sender` (which blocks while [`PREFETCH_DEPTH`] are waiting). Ends at the first failed call
/// (no retry here: the block processor's own walk retries), when `stop` is set, or when the receiver is
/// gone.
pub(super) fn prefetch_blocks<B: BitcoindRpc>(
    rpc: &B,
    heights: impl Iterator<Item = u32>,
    sender: &mpsc::SyncSender<Fetched>,
    stop: &AtomicBool,
) {
    for height in heights {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let block = rpc.block_hash(height).and_then(|hash| rpc.block(&hash));
        let block = match block {
            Ok(block) => block,
            Err(e) => {
                tracing::debug!(height, "prefetch stopped: {e}");
                return;
            }
        };
        let txids = block.txdata.iter().map(Transaction::compute_txid).collect();
        if sender
            .send(Fetched {
                height,
                block,
                txids,
            })
            .is_err()
        {
            return;
        }
    }
}
