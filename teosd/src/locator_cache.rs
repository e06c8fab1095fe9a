//! The locator cache: the transactions of the last few blocks, by locator.
//!
//! An appointment that arrives after its dispute transaction was mined (a "late" appointment) must be
//! answered at once (PROTOCOL.md, "Triggered appointments"): the tower keeps the txids of the last
//! `capacity` blocks (6 by default, `locator_cache_size`) and looks new appointments up here.
//! Memory: one `Locator` (16 bytes) + `Txid` + `BlockHash` per cached transaction.

use std::collections::{HashMap, VecDeque};

use bitcoin::{BlockHash, Txid};
use teos_common::appointment::Locator;

/// Where a cached dispute transaction was mined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachedTx {
    pub txid: Txid,
    pub block_hash: BlockHash,
    pub height: u32,
}

#[derive(Clone)]
struct CachedBlock {
    hash: BlockHash,
    locators: Vec<Locator>,
}

/// Txids of the last `capacity` blocks of the tower's chain, keyed by locator. `Clone` so a reorg can
/// put the cache back if its commit fails.
#[derive(Clone)]
pub struct LocatorCache {
    capacity: usize,
    blocks: VecDeque<CachedBlock>,
    /// foldhash: SipHash over 8,000 locators a block was a quarter of the writer's time in catch-up
    /// (BENCHMARKS.md); foldhash is still seeded per process, so mined txids cannot be ground to collide.
    map: HashMap<Locator, CachedTx, foldhash::fast::RandomState>,
}

impl LocatorCache {
    /// An empty cache keeping `capacity` blocks (at least 1).
    pub fn new(capacity: usize) -> LocatorCache {
        LocatorCache {
            capacity: capacity.max(1),
            blocks: VecDeque::new(),
            map: HashMap::default(),
        }
    }

    /// How many blocks the cache keeps (`locator_cache_size`, at least 1).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds the block at the tip, evicting the oldest one beyond capacity. Idempotent per block hash.
    pub fn connect_block(&mut self, hash: BlockHash, height: u32, txids: &[Txid]) {
        if self.blocks.iter().any(|b| b.hash == hash) {
            return;
        }
        let mut locators = Vec::with_capacity(txids.len());
        for txid in txids {
            let locator = Locator::new(txid);
            self.map.insert(
                locator,
                CachedTx {
                    txid: *txid,
                    block_hash: hash,
                    height,
                },
            );
            locators.push(locator);
        }
        self.blocks.push_back(CachedBlock { hash, locators });
        while self.blocks.len() > self.capacity {
            if let Some(old) = self.blocks.pop_front() {
                self.forget(&old);
            }
        }
    }

    /// Removes a block that left the chain (reorg).
    pub fn disconnect_block(&mut self, hash: &BlockHash) {
        if let Some(pos) = self.blocks.iter().position(|b| b.hash == *hash)
            && let Some(block) = self.blocks.remove(pos)
        {
            self.forget(&block);
        }
    }

    fn forget(&mut self, block: &CachedBlock) {
        for locator in &block.locators {
            if self
                .map
                .get(locator)
                .is_some_and(|c| c.block_hash == block.hash)
            {
                self.map.remove(locator);
            }
        }
    }

    /// The cached transaction whose locator is `locator`, if it was mined in a cached block.
    pub fn get(&self, locator: &Locator) -> Option<CachedTx> {
        self.map.get(locator).copied()
    }

    /// Number of cached blocks.
    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    fn txid(n: u8) -> Txid {
        Txid::from_byte_array([n; 32])
    }
    fn hash(n: u8) -> BlockHash {
        BlockHash::from_byte_array([n; 32])
    }

    #[test]
    fn finds_txids_of_cached_blocks_and_evicts_the_oldest() {
        let mut cache = LocatorCache::new(2);
        cache.connect_block(hash(1), 1, &[txid(1)]);
        cache.connect_block(hash(2), 2, &[txid(2)]);
        assert_eq!(cache.get(&Locator::new(&txid(1))).unwrap().height, 1);
        cache.connect_block(hash(3), 3, &[txid(3)]);
        assert!(cache.get(&Locator::new(&txid(1))).is_none());
        assert_eq!(
            cache.get(&Locator::new(&txid(3))).unwrap().block_hash,
            hash(3)
        );
        assert_eq!(cache.blocks(), 2);
    }

    #[test]
    fn disconnected_block_is_forgotten_but_a_reconfirmed_tx_stays() {
        let mut cache = LocatorCache::new(6);
        cache.connect_block(hash(1), 1, &[txid(1), txid(9)]);
        cache.connect_block(hash(2), 2, &[txid(2)]);
        cache.disconnect_block(&hash(2));
        assert!(cache.get(&Locator::new(&txid(2))).is_none());
        // the same tx mined again in the replacement block
        cache.connect_block(hash(3), 2, &[txid(2)]);
        assert_eq!(
            cache.get(&Locator::new(&txid(2))).unwrap().block_hash,
            hash(3)
        );
        assert!(cache.get(&Locator::new(&txid(9))).is_some());
    }
}
