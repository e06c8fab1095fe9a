//! The block tree: every block the node stored (any number of branches), its cumulative work,
//! validity flags, and the active chain (Bitcoin Core's `CBlockIndex` map plus `CChain`).
//!
//! Blocks are kept in insertion order, so a block's index doubles as Core's `nSequenceId`: among
//! tips with equal work the one stored first wins (Core's `CBlockIndexWorkComparator`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash, Txid, Work};

use super::shared::SharedBlock;

/// Number of blocks whose median time is a block's "median time past" (BIP113).
const MEDIAN_TIME_SPAN: usize = 11;

/// One stored block and what the node knows about it.
pub(crate) struct BlockIndex {
    pub hash: BlockHash,
    pub header: Header,
    pub height: u32,
    /// Cumulative work up to and including this block.
    pub chainwork: Work,
    /// Median time past of the 11 blocks ending at this one (seconds).
    pub median_time: u32,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    /// Marked invalid itself (`invalidateblock`, or it failed to connect): Core's BLOCK_FAILED_VALID.
    pub failed: bool,
    /// `failed` or descends from a failed block (Core's BLOCK_FAILED_MASK).
    pub invalid: bool,
    /// Was connected once, so fully validated (Core's BLOCK_VALID_SCRIPTS).
    pub validated: bool,
    pub block: Arc<Block>,
    /// Txids of `block` in order, filled on first use by a reader (see [`SharedBlock::txids`]).
    pub txids: Arc<OnceLock<Box<[Txid]>>>,
    /// Serialized size with and without witness (bytes), and weight (weight units).
    pub size: usize,
    pub stripped_size: usize,
    pub weight: u64,
}

impl BlockIndex {
    /// The block for readers: shared, not copied.
    pub fn shared(&self) -> SharedBlock {
        SharedBlock::new(self.block.clone(), self.txids.clone(), self.size)
    }
}

/// All stored blocks, indexed by hash, and the active chain by height.
pub(crate) struct BlockTree {
    nodes: Vec<BlockIndex>,
    by_hash: HashMap<BlockHash, usize>,
    /// `active[h]` is the index of the active-chain block at height `h`.
    active: Vec<usize>,
    /// The valid block with the most work, first stored among equals (kept up to date).
    best: usize,
}

impl BlockTree {
    /// A tree holding only `genesis`, which is also the active tip.
    pub fn new(genesis: Block) -> BlockTree {
        let mut tree = BlockTree {
            nodes: Vec::new(),
            by_hash: HashMap::new(),
            active: Vec::new(),
            best: 0,
        };
        let idx = tree.insert(genesis);
        tree.active.push(idx);
        tree.nodes[idx].validated = true;
        tree
    }

    /// Adds a block whose parent is stored (or the genesis block to an empty tree) and returns its
    /// index. An already stored block returns its existing index.
    pub fn insert(&mut self, block: Block) -> usize {
        let hash = block.block_hash();
        if let Some(&idx) = self.by_hash.get(&hash) {
            return idx;
        }
        let parent = self.by_hash.get(&block.header.prev_blockhash).copied();
        let (height, prev_work, invalid) = match parent {
            Some(p) => {
                let n = &self.nodes[p];
                (n.height + 1, Some(n.chainwork), n.invalid)
            }
            None => (0, None, false),
        };
        let work = block.header.work();
        let chainwork = match prev_work {
            Some(w) => w + work,
            None => work,
        };
        let idx = self.nodes.len();
        let mut times = vec![block.header.time];
        let mut cursor = parent;
        while let Some(p) = cursor {
            if times.len() == MEDIAN_TIME_SPAN {
                break;
            }
            times.push(self.nodes[p].header.time);
            cursor = self.nodes[p].parent;
        }
        times.sort_unstable();
        let median_time = times[times.len() / 2];
        let size = block.total_size();
        let weight = block.weight().to_wu();
        let stripped_size = ((weight as usize) - size) / 3;
        self.nodes.push(BlockIndex {
            hash,
            header: block.header,
            height,
            chainwork,
            median_time,
            parent,
            children: Vec::new(),
            failed: false,
            invalid,
            validated: false,
            block: Arc::new(block),
            txids: Arc::new(OnceLock::new()),
            size,
            stripped_size,
            weight,
        });
        if let Some(p) = parent {
            self.nodes[p].children.push(idx);
        }
        self.by_hash.insert(hash, idx);
        if !invalid && chainwork > self.nodes[self.best].chainwork {
            self.best = idx;
        }
        idx
    }

    pub fn lookup(&self, hash: &BlockHash) -> Option<usize> {
        self.by_hash.get(hash).copied()
    }

    pub fn node(&self, idx: usize) -> &BlockIndex {
        &self.nodes[idx]
    }

    pub fn node_mut(&mut self, idx: usize) -> &mut BlockIndex {
        &mut self.nodes[idx]
    }

    /// Index of the active tip.
    pub fn tip(&self) -> usize {
        self.active[self.active.len() - 1]
    }

    pub fn tip_node(&self) -> &BlockIndex {
        &self.nodes[self.tip()]
    }

    /// Height of the active tip.
    pub fn height(&self) -> u32 {
        (self.active.len() - 1) as u32
    }

    /// The active-chain block at `height`.
    pub fn active_at(&self, height: u32) -> Option<usize> {
        self.active.get(height as usize).copied()
    }

    pub fn is_active(&self, idx: usize) -> bool {
        let h = self.nodes[idx].height as usize;
        self.active.get(h) == Some(&idx)
    }

    /// Appends `idx` (a child of the tip) to the active chain.
    pub fn push_active(&mut self, idx: usize) {
        self.active.push(idx);
        self.nodes[idx].validated = true;
    }

    /// Removes the tip from the active chain (never the genesis block) and returns it.
    pub fn pop_active(&mut self) -> Option<usize> {
        if self.active.len() <= 1 {
            return None;
        }
        self.active.pop()
    }

    /// The last block `idx` shares with the active chain (Core's `CChain::FindFork`).
    pub fn fork_point(&self, idx: usize) -> usize {
        let mut cursor = idx;
        loop {
            if self.is_active(cursor) {
                return cursor;
            }
            match self.nodes[cursor].parent {
                Some(p) => cursor = p,
                None => return self.active[0],
            }
        }
    }

    /// The blocks after `from` up to and including `to`, oldest first (`from` must be an
    /// ancestor of `to`).
    pub fn path(&self, from: usize, to: usize) -> Vec<usize> {
        let mut path = Vec::new();
        let mut cursor = to;
        while cursor != from {
            path.push(cursor);
            match self.nodes[cursor].parent {
                Some(p) => cursor = p,
                None => break,
            }
        }
        path.reverse();
        path
    }

    /// The valid block with the most work, the first stored among equals (Core's
    /// `FindMostWorkChain` over `setBlockIndexCandidates`).
    pub fn best_valid(&self) -> usize {
        self.best
    }

    fn recompute_best(&mut self) {
        let mut best = 0;
        for (idx, n) in self.nodes.iter().enumerate() {
            if !n.invalid && n.chainwork > self.nodes[best].chainwork {
                best = idx;
            }
        }
        self.best = best;
    }

    /// Marks `idx` failed and every descendant invalid.
    pub fn set_failed(&mut self, idx: usize) {
        self.nodes[idx].failed = true;
        self.recompute_invalid();
    }

    /// Clears the failure flags of `idx`, its ancestors and its descendants (Core's
    /// `ResetBlockFailureFlags`).
    pub fn clear_failed(&mut self, idx: usize) {
        let mut cursor = Some(idx);
        while let Some(c) = cursor {
            self.nodes[c].failed = false;
            cursor = self.nodes[c].parent;
        }
        let mut stack = vec![idx];
        while let Some(c) = stack.pop() {
            self.nodes[c].failed = false;
            stack.extend(self.nodes[c].children.iter().copied());
        }
        self.recompute_invalid();
    }

    fn recompute_invalid(&mut self) {
        // Parents are always stored before their children.
        for i in 0..self.nodes.len() {
            let parent_invalid = self.nodes[i].parent.is_some_and(|p| self.nodes[p].invalid);
            self.nodes[i].invalid = self.nodes[i].failed || parent_invalid;
        }
        self.recompute_best();
    }

    /// Blocks without children that are not on the active chain, plus the active tip, for
    /// `getchaintips`; in insertion order.
    pub fn tips(&self) -> Vec<usize> {
        let tip = self.tip();
        (0..self.nodes.len())
            .filter(|&i| i == tip || (self.nodes[i].children.is_empty() && !self.is_active(i)))
            .collect()
    }
}
