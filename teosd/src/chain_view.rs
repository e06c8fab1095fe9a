//! The tower's view of the chain that request handlers need: its tip and the locator cache.
//!
//! One lock guards both, so a handler sees a tip and a cache that belong together. The block
//! processor updates it from inside its storage write ops; request handlers read it from inside theirs.
//! Because all write ops run in order on the one storage writer thread, "an appointment arrives" and
//! "a block is scanned" are strictly ordered: either the appointment was stored before the block's
//! locators were looked up (and is found there), or it sees the block in the cache (and is answered
//! as a late appointment). No breach falls between the two.

use std::sync::{Arc, Mutex, MutexGuard};

use bitcoin::BlockHash;

use crate::locator_cache::LocatorCache;
use crate::watched_locators::WatchedLocators;

/// Tip and recent transactions, as last processed by the tower (not bitcoind's tip).
pub struct ChainView {
    /// Height of the last processed block.
    pub tip_height: u32,
    /// Hash of the last processed block.
    pub tip_hash: BlockHash,
    /// Txids of the last few processed blocks.
    pub cache: LocatorCache,
    /// Which locators stored appointments may have (unloaded until the daemon loads it at startup).
    pub watched: WatchedLocators,
}

/// Shared handle on the [`ChainView`].
#[derive(Clone)]
pub struct SharedChainView(Arc<Mutex<ChainView>>);

impl SharedChainView {
    /// A view at `tip` with an empty cache of `cache_blocks` blocks and an unloaded
    /// [`WatchedLocators`] (every locator is looked up in the database until it is loaded).
    pub fn new(tip_height: u32, tip_hash: BlockHash, cache_blocks: usize) -> SharedChainView {
        SharedChainView(Arc::new(Mutex::new(ChainView {
            tip_height,
            tip_hash,
            cache: LocatorCache::new(cache_blocks),
            watched: WatchedLocators::unloaded(),
        })))
    }

    /// Points the view at `tip` with an empty cache of `cache_blocks` blocks and an unloaded
    /// [`WatchedLocators`], as [`SharedChainView::new`] (a new leadership term: what another
    /// instance committed meanwhile is not in the old view).
    pub fn reset(&self, tip_height: u32, tip_hash: BlockHash, cache_blocks: usize) {
        *self.lock() = ChainView {
            tip_height,
            tip_hash,
            cache: LocatorCache::new(cache_blocks),
            watched: WatchedLocators::unloaded(),
        };
    }

    /// Locks the view. Never hold the guard across I/O or another lock.
    pub fn lock(&self) -> MutexGuard<'_, ChainView> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The tip height.
    pub fn height(&self) -> u32 {
        self.lock().tip_height
    }

    /// The tip (height, hash).
    pub fn tip(&self) -> (u32, BlockHash) {
        let view = self.lock();
        (view.tip_height, view.tip_hash)
    }
}
