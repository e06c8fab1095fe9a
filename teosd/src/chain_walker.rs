//! The chain walker: the only code that asks bitcoind about the chain, and the owner of the tower's
//! tip (the last block whose effects are committed).
//!
//! Each [`ChainWalker::poll`] compares the tip with bitcoind's best block and says what to do next
//! ([`Step`]). The rules, from Bitcoin Core's own (BITCOIND.md; rust-teos follows the same through
//! lightning-block-sync):
//! - **Most work wins.** The tower moves to bitcoind's best block only if that block's chain has MORE
//!   total work (`chainwork`) than the tower's tip. A best block with less or equal work (bitcoind
//!   restarted with `-reindex`, restored from an older snapshot, or a lagging node) is waited for:
//!   the tower keeps its tip and every tracker, and carries on once bitcoind passes it. The one
//!   exception is a tip bitcoind marked invalid (`invalidateblock`, or a block it found invalid):
//!   bitcoind will never return to it, so the tower follows bitcoind down.
//! - **Any reorg depth.** The fork point is found by walking the headers of the tower's own branch
//!   back (`getblockheader`; Bitcoin Core keeps the headers of stale branches) until one is on
//!   bitcoind's active chain. It does not depend on how many blocks the tower remembers. Should
//!   bitcoind not know the tower's blocks at all (a node that never saw them), the tower's remembered
//!   blocks are compared height by height, and below them the tower re-processes from the block
//!   under the lowest one it remembers.

use std::sync::Arc;

use bitcoin::{BlockHash, Work};

use crate::bitcoind::{BitcoindRpc, HeaderInfo, RpcError, codes};
use crate::block_processor::ProcessError;
use crate::carrier::Carrier;
use crate::storage::{Command, Order, StorageError, Store, Tx};

/// A block of the tower's chain: its height (blocks), hash, and the chain's total work up to it when
/// known (rows written before schema V4 have none until bitcoind is asked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    /// Height (blocks).
    pub height: u32,
    /// Block hash.
    pub hash: BlockHash,
    /// Total work of the chain ending here (`chainwork`).
    pub chainwork: Option<Work>,
}

impl Tip {
    /// A tip whose chainwork is not known yet.
    pub fn new(height: u32, hash: BlockHash) -> Tip {
        Tip {
            height,
            hash,
            chainwork: None,
        }
    }
}

/// Command: the tower (re)starts following the chain from `tip`: every remembered block is
/// forgotten and `tip` becomes the only one. Used on a fresh start (bitcoind's best block, nothing
/// remembered yet) and by `--forceupdate` when bitcoind pruned the blocks after the stored tip.
/// Trackers, appointments and late breaches are kept.
#[derive(Clone, Copy, Debug)]
pub struct StartFrom {
    /// The new tip.
    pub tip: Tip,
}

impl Command for StartFrom {
    type Output = ();
    type Error = StorageError;
    const NAME: &'static str = "start_from";
    const ORDER: Order = Order::Block;

    fn run(self, tx: &mut dyn Tx) -> Result<(), StorageError> {
        let Tip {
            height,
            hash,
            chainwork,
        } = self.tip;
        tx.pop_blocks(0)?;
        tx.push_block(
            height,
            &hash,
            chainwork,
            crate::block_processor::KEPT_BLOCKS,
        )
    }
}

/// What the block processor must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The tip is bitcoind's best block.
    AtTip,
    /// bitcoind's best chain extends the tip up to `best_height`: connect the next blocks.
    Behind { best_height: u32 },
    /// The tip left bitcoind's best chain: disconnect down to the fork point.
    Reorg(Reorg),
    /// bitcoind's best block has no more work than the tip: wait for bitcoind to pass it.
    Waiting { best: HeaderInfo },
}

/// The blocks to disconnect and where the tower lands.
#[derive(Debug, PartialEq, Eq)]
pub struct Reorg {
    /// The last block shared by the tower's chain and bitcoind's active chain.
    pub fork: Tip,
    /// Every height above the fork up to the tower's tip, tip first, with the tower's block hash
    /// there when known (below the tower's remembered blocks it may not be).
    pub stale: Vec<(u32, Option<BlockHash>)>,
}

/// Asks bitcoind about the chain (retrying while it is unreachable) and keeps the tip.
pub struct ChainWalker<B: BitcoindRpc> {
    fetcher: Carrier<B>,
    store: Store,
    tip: Tip,
}

impl<B: BitcoindRpc> ChainWalker<B> {
    /// A walker at `tip`; `fetcher` retries bitcoind calls while it is unreachable.
    pub fn new(fetcher: Carrier<B>, store: Store, tip: Tip) -> ChainWalker<B> {
        ChainWalker {
            fetcher,
            store,
            tip,
        }
    }

    /// The tower's tip (the last committed block).
    pub fn tip(&self) -> Tip {
        self.tip
    }

    /// Moves the tip after the block processor committed a block or a reorg.
    pub fn set_tip(&mut self, tip: Tip) {
        self.tip = tip;
    }

    /// Calls bitcoind, retrying while it is unreachable or warming up (until shutdown). The inner
    /// result is bitcoind's answer.
    pub fn fetch<T>(
        &self,
        call: impl FnMut(&B) -> Result<T, RpcError>,
    ) -> Result<Result<T, RpcError>, ProcessError> {
        Ok(self.fetcher.retrying(call)?)
    }

    /// The bitcoind handle (for block downloads by the prefetch threads).
    pub fn rpc(&self) -> Arc<B> {
        self.fetcher.rpc()
    }

    /// Compares the tip with bitcoind's best block (see the module docs for the rules).
    pub fn poll(&mut self) -> Result<Step, ProcessError> {
        loop {
            let best = self.fetch(|rpc| rpc.best_block_hash())??;
            if best == self.tip.hash {
                return Ok(Step::AtTip);
            }
            let best = match self.fetch(|rpc| rpc.block_header(&best))? {
                Ok(header) => header,
                // The best block changed between the two calls: ask again.
                Err(RpcError::Rpc { code, .. }) if code == codes::INVALID_ADDRESS_OR_KEY => {
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let behind = match self.tip_work()? {
                Some(ours) => best.chainwork <= ours,
                // bitcoind knows neither the tip nor a longer chain (a tip from before schema V4,
                // and a node that is reindexing or never saw it): it is behind too.
                None => best.height <= self.tip.height,
            };
            if behind && !self.tip_is_invalid()? {
                return Ok(Step::Waiting { best });
            }
            if best.height > self.tip.height && self.tip_in_active_chain()? {
                return Ok(Step::Behind {
                    best_height: best.height,
                });
            }
            return Ok(Step::Reorg(self.find_fork()?));
        }
    }

    /// The tip's chainwork: known, stored, or asked from bitcoind (`None` if bitcoind does not know the
    /// block either).
    fn tip_work(&mut self) -> Result<Option<Work>, ProcessError> {
        if self.tip.chainwork.is_none() {
            let hash = self.tip.hash;
            self.tip.chainwork = self.store.read_blocking(move |tx| tx.block_work(&hash))?;
        }
        if self.tip.chainwork.is_none() {
            match self.fetch(|rpc| rpc.block_header(&self.tip.hash))? {
                Ok(header) => self.tip.chainwork = Some(header.chainwork),
                Err(RpcError::Rpc { code, .. }) if code == codes::INVALID_ADDRESS_OR_KEY => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(self.tip.chainwork)
    }

    /// Whether bitcoind's active chain holds the tip at its height.
    fn tip_in_active_chain(&self) -> Result<bool, ProcessError> {
        match self.fetch(|rpc| rpc.block_hash(self.tip.height))? {
            Ok(active) => Ok(active == self.tip.hash),
            Err(RpcError::Rpc { code, .. }) if code == codes::INVALID_PARAMETER => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the tip is on a branch bitcoind marked invalid (`getchaintips` status "invalid"): the tip
    /// is that branch's tip or one of its ancestors above the fork.
    fn tip_is_invalid(&self) -> Result<bool, ProcessError> {
        let tips = self.fetch(|rpc| rpc.chain_tips())??;
        for branch in tips.iter().filter(|t| t.status == "invalid") {
            let lowest = branch.height.saturating_sub(branch.branch_len);
            if branch.height < self.tip.height || self.tip.height <= lowest {
                continue;
            }
            let mut hash = branch.hash;
            for _ in self.tip.height..branch.height {
                match self.fetch(|rpc| rpc.block_header(&hash))?? {
                    HeaderInfo {
                        previous: Some(previous),
                        ..
                    } => hash = previous,
                    _ => break,
                }
            }
            if hash == self.tip.hash {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Finds where the tower's chain meets bitcoind's active chain (see the module docs).
    fn find_fork(&self) -> Result<Reorg, ProcessError> {
        let mut stale = Vec::new();
        let (mut height, mut hash) = (self.tip.height, self.tip.hash);
        loop {
            match self.fetch(|rpc| rpc.block_header(&hash))? {
                Ok(header) if header.in_active_chain() => {
                    return Ok(Reorg {
                        fork: Tip {
                            height: header.height,
                            hash: header.hash,
                            chainwork: Some(header.chainwork),
                        },
                        stale,
                    });
                }
                Ok(header) => {
                    let Some(previous) = header.previous else {
                        return Err(ProcessError::Fatal(format!(
                            "bitcoind's genesis block {hash} is not on its own active chain"
                        )));
                    };
                    stale.push((header.height, Some(header.hash)));
                    (height, hash) = (header.height.saturating_sub(1), previous);
                }
                Err(RpcError::Rpc { code, .. }) if code == codes::INVALID_ADDRESS_OR_KEY => {
                    return self.find_fork_by_height(stale, height);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Fork point search when bitcoind does not know the tower's block at `height` (nor, so, its
    /// ancestors' link to it): compares the remembered blocks with bitcoind's chain height by height.
    fn find_fork_by_height(
        &self,
        mut stale: Vec<(u32, Option<BlockHash>)>,
        height: u32,
    ) -> Result<Reorg, ProcessError> {
        let remembered = self.store.read_blocking(|tx| tx.recent_blocks())?;
        let mut next = height;
        for (h, hash) in remembered.into_iter().filter(|(h, _)| *h <= height) {
            // Heights without a remembered row between the last one looked at and this one.
            while next > h {
                stale.push((next, None));
                next -= 1;
            }
            if self.fetch(|rpc| rpc.block_hash(h))?.ok() == Some(hash) {
                return self.fork_at(h, stale);
            }
            stale.push((h, Some(hash)));
            next = h.saturating_sub(1);
        }
        // None of the remembered blocks is on bitcoind's chain: re-process from below them.
        tracing::warn!(
            height = next,
            "bitcoind knows none of the tower's remembered blocks; re-processing from the block below them"
        );
        self.fork_at(next, stale)
    }

    /// A reorg whose fork point is bitcoind's block at `height` (or its best block, if lower).
    fn fork_at(
        &self,
        height: u32,
        mut stale: Vec<(u32, Option<BlockHash>)>,
    ) -> Result<Reorg, ProcessError> {
        let info = self.fetch(|rpc| rpc.chain_info())??;
        let height = height.min(info.blocks);
        let hash = self.fetch(|rpc| rpc.block_hash(height))??;
        let header = self.fetch(|rpc| rpc.block_header(&hash))??;
        stale.retain(|(h, _)| *h > height);
        let mut covered = stale.last().map_or(self.tip.height, |(h, _)| h - 1);
        while covered > height {
            stale.push((covered, None));
            covered -= 1;
        }
        Ok(Reorg {
            fork: Tip {
                height,
                hash,
                chainwork: Some(header.chainwork),
            },
            stale,
        })
    }
}

#[cfg(test)]
mod tests;
