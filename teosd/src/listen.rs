//! The one chain interface of the tower's components, in the manner of rust-lightning's `chain::Listen`
//! (and rust-teos's `impl chain::Listen for Watcher`): the block processor hands every connected and
//! disconnected block to the Gatekeeper, the Watcher and the Responder, in that order, and each returns
//! [`Decision`]s. Components never write and never call back up the pipeline; the block processor
//! commits a block's decisions, with the new tip, in one storage transaction.
//!
//! Requirements on the caller (the block processor), as rust-lightning states them for `Listen`:
//! - blocks are connected in chain order, each building on the previous one, and disconnected from the
//!   tip down, never skipping one;
//! - `found` holds what the component needs from storage for that block, read in the block's scan op
//!   (so it is ordered with incoming appointments, see `chain_view`);
//! - the Watcher's [`Decision::Breach`]es are handed to the Responder of the same block.

use std::collections::{HashMap, HashSet};

use bitcoin::{BlockHash, Transaction, Txid};
use teos_common::appointment::Locator;

use crate::carrier::Interrupted;
use crate::responder::{Breach, ConfirmedAt, TrackerChange};

/// A block being connected, as the components see it.
pub struct ConnectedBlock<'a> {
    /// Height (blocks).
    pub height: u32,
    /// Block hash.
    pub hash: BlockHash,
    /// Its txids.
    pub txids: &'a HashSet<Txid>,
    /// Its transactions by locator (the first half of their txid).
    pub txs: &'a HashMap<Locator, (Txid, &'a Transaction)>,
    /// Where a transaction bitcoind reports as already confirmed is among the blocks the tower knows.
    pub confirmed_at: ConfirmedAt<'a>,
}

/// A block leaving the tower's chain (reorg).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DisconnectedBlock {
    /// Height (blocks).
    pub height: u32,
    /// Its hash, when the tower knows it (below its remembered blocks it may not).
    pub hash: Option<BlockHash>,
}

/// What a component decided for a block; committed with the block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Gatekeeper: delete the users outdated at `height` (`expiry + expiry_delta <= height`) and their
    /// appointments, except what a tracker not yet irrevocably resolved needs (PROTOCOL.md
    /// "Subscriptions").
    RemoveOutdatedUsers { height: u32, expiry_delta: u32 },
    /// Watcher → Responder: a breach to answer (handed on, not written).
    Breach(Breach),
    /// Watcher: late appointments whose dispute was in a block at `from_height` or above (or in block
    /// `hash`, for marks written before schema V4) go back to being watched (those blocks left the chain).
    ForgetLate {
        from_height: u32,
        hash: Option<BlockHash>,
    },
    /// Watcher / Responder: a change to an appointment or its tracker.
    Tracker(TrackerChange),
}

/// Block connected / block disconnected, implemented by the Gatekeeper, the Watcher and the Responder.
pub trait Listen {
    /// What the component needs from storage about the block (read by the block processor).
    type Found;

    /// Decisions for a block connected at the tip. May send transactions (the Responder); fails only
    /// when the tower shuts down meanwhile, and then nothing of the block is committed.
    fn block_connected(
        &self,
        block: &ConnectedBlock<'_>,
        found: Self::Found,
    ) -> Result<Vec<Decision>, Interrupted>;

    /// Decisions for the tip leaving the chain. Sends nothing: the next connected block does.
    fn block_disconnected(&self, block: &DisconnectedBlock, found: Self::Found) -> Vec<Decision>;
}
