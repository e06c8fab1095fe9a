//! A stored block as readers get it: shared with the block tree (an `Arc`, never a deep copy), so
//! the node lock is held only to find it, and encoding or hashing happens outside the lock.

use std::sync::{Arc, OnceLock};

use bitcoin::{Block, Txid};

/// One stored block, cheap to clone (two `Arc`s and a size).
///
/// `getblock <hash> 0` encodes [`SharedBlock::block`] with [`SharedBlock::size`] known up front;
/// `getblock <hash> 1` lists [`SharedBlock::txids`], computed once per block on first use by
/// whichever reader asks first (Core reads them from its block index and block files).
#[derive(Clone, Debug)]
pub struct SharedBlock {
    block: Arc<Block>,
    txids: Arc<OnceLock<Box<[Txid]>>>,
    size: usize,
}

impl SharedBlock {
    pub(crate) fn new(block: Arc<Block>, txids: Arc<OnceLock<Box<[Txid]>>>, size: usize) -> Self {
        SharedBlock { block, txids, size }
    }

    /// The block.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// The block behind its `Arc` (shared, not copied).
    pub fn shared(&self) -> Arc<Block> {
        self.block.clone()
    }

    /// Serialized size with witness data (bytes): the length of its consensus encoding.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The txids of its transactions, in block order (computed on the first call for this block,
    /// then remembered in the block tree).
    pub fn txids(&self) -> &[Txid] {
        self.txids.get_or_init(|| {
            self.block
                .txdata
                .iter()
                .map(|tx| tx.compute_txid())
                .collect()
        })
    }
}
