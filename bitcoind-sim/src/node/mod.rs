//! The simulated node's state: block tree, active chain, UTXO set, mempool, mining and persistence.
//!
//! This module is the seam between the consensus/mempool core (owned by `node/`) and the RPC/ZMQ
//! surface (owned by `rpc/`, `json.rs`, `zmq_pub.rs`). The RPC layer only calls the public API
//! below; it never reaches into internals.
//!
//! Everything here follows Bitcoin Core's regtest behaviour (see `../shared/spec/BITCOIND.md`).

use std::path::PathBuf;

use bitcoin::block::Header;
use bitcoin::{Amount, Block, BlockHash, FeeRate, ScriptBuf, Transaction, Txid, Work, Wtxid};

/// How a [`Node`] is opened.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Data directory; chain state lives under `<datadir>/regtest/`.
    pub datadir: PathBuf,
    /// Like `-txindex`: confirmed transactions can be looked up without a block hash.
    pub txindex: bool,
    /// Like `-persistmempool`: save the mempool on close and load it on open.
    pub persist_mempool: bool,
}

/// Where a block stands in the block tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockStatus {
    /// On the active chain.
    Active,
    /// Valid, but on a branch that is not the active chain (`confirmations` -1).
    ValidFork,
    /// Marked invalid by `invalidateblock`, or descends from such a block.
    Invalid,
}

/// Everything the RPC layer needs to render a block header (`getblockheader`, `getblock`).
#[derive(Clone, Debug)]
pub struct BlockEntry {
    pub hash: BlockHash,
    pub header: Header,
    pub height: u32,
    /// Cumulative chain work up to and including this block.
    pub chainwork: Work,
    pub status: BlockStatus,
    /// Core's `confirmations`: tip height - height + 1 on the active chain, -1 otherwise.
    pub confirmations: i64,
    /// Median time past of the 11 blocks ending at this one (seconds since the epoch).
    pub median_time: u32,
    pub n_tx: usize,
    /// Serialized size with witness, without witness, and weight (bytes, bytes, weight units).
    pub size: usize,
    pub stripped_size: usize,
    pub weight: u64,
    pub previous: Option<BlockHash>,
    /// The next block on the active chain, if this block is on it and not the tip.
    pub next: Option<BlockHash>,
}

/// One element of `getchaintips`.
#[derive(Clone, Debug)]
pub struct ChainTip {
    pub height: u32,
    pub hash: BlockHash,
    /// Blocks between this tip and the active chain (0 for the active tip).
    pub branch_len: u32,
    /// Core's status string: "active", "valid-fork", "valid-headers", "headers-only" or "invalid".
    pub status: &'static str,
}

/// Summary used by `getblockchaininfo`.
#[derive(Clone, Debug)]
pub struct ChainInfo {
    pub blocks: u32,
    pub best_block_hash: BlockHash,
    pub bits: bitcoin::CompactTarget,
    pub time: u32,
    pub median_time: u32,
    pub chainwork: Work,
    /// Core: true while the tip is older than 24 hours (a fresh regtest genesis is).
    pub initial_block_download: bool,
    /// Bytes used on disk by the block files.
    pub size_on_disk: u64,
}

/// A confirmed or mempool transaction found by [`Node::get_transaction`].
#[derive(Clone, Debug)]
pub struct TxLookup {
    pub tx: Transaction,
    /// `Some` when confirmed: the block it is in.
    pub block: Option<TxBlockInfo>,
}

#[derive(Clone, Debug)]
pub struct TxBlockInfo {
    pub hash: BlockHash,
    pub height: u32,
    pub confirmations: i64,
    pub time: u32,
    /// Whether that block is on the active chain (`in_active_chain`, only shown when a block hash was given).
    pub in_active_chain: bool,
}

/// Why [`Node::get_transaction`] found nothing; the RPC layer maps each to Core's -5 message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxLookupError {
    /// Block hash given but unknown: "Block hash not found".
    BlockNotFound,
    /// Block hash given, tx not in it: "No such transaction found in the provided block. ..."
    NotInBlock,
    /// No block hash; not in the mempool (nor in the chain when txindex is on).
    /// The message depends on txindex (see BITCOIND.md / rpc.json).
    NotFound { txindex: bool },
}

/// A mempool entry (`getmempoolentry`, `getrawmempool true`).
#[derive(Clone, Debug)]
pub struct MempoolEntry {
    pub tx: Transaction,
    pub txid: Txid,
    pub wtxid: Wtxid,
    pub fee: Amount,
    pub vsize: u64,
    pub weight: u64,
    /// Seconds since the epoch when it entered the mempool.
    pub time: u64,
    /// Chain height when it entered the mempool.
    pub height: u32,
    /// In-mempool parents and children.
    pub depends: Vec<Txid>,
    pub spent_by: Vec<Txid>,
    pub ancestor_count: u64,
    pub ancestor_size: u64,
    pub ancestor_fees: Amount,
    pub descendant_count: u64,
    pub descendant_size: u64,
    pub descendant_fees: Amount,
}

/// A transaction accepted (or acceptable, for testmempoolaccept) into the mempool.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub txid: Txid,
    pub wtxid: Wtxid,
    pub vsize: u64,
    pub fee: Amount,
    /// Txids evicted by replace-by-fee.
    pub replaced: Vec<Txid>,
}

/// A rejection with Core's RPC error code and message.
///
/// `code`: -25 (RPC_VERIFY_ERROR, missing/spent inputs, max fee exceeded), -26 (RPC_VERIFY_REJECTED,
/// policy/consensus), -27 (RPC_VERIFY_ALREADY_IN_CHAIN), -22 (decode). `reason` is the short reject
/// reason (`testmempoolaccept`'s `reject-reason`), `message` the full RPC message
/// (`sendrawtransaction`'s error message, `reject-details`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub code: i32,
    pub reason: String,
    pub message: String,
}

/// Errors of chain-changing calls, mapped by the RPC layer to Core's codes.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// -5 "Block not found".
    #[error("Block not found")]
    BlockNotFound,
    /// -25 for generateblock with an unknown txid / -26 for an invalid tx; message as Core's.
    #[error("{message}")]
    Rpc { code: i32, message: String },
    /// Disk or corruption trouble; -1 with the message.
    #[error("storage: {0}")]
    Storage(String),
}

/// Events the node emits, in the order Core's ZMQ notifier sees them.
#[derive(Clone, Debug)]
pub enum NodeEvent {
    /// A transaction entered the mempool (`mempool_sequence` as in the `sequence` topic's 'A').
    TxAdded { tx: Transaction, mempool_sequence: u64 },
    /// A transaction left the mempool for a reason other than inclusion in a block ('R').
    TxRemoved { txid: Txid, mempool_sequence: u64 },
    /// A block was connected to the active chain ('C'; also `hashblock`/`rawblock` and, for each of
    /// its transactions, `hashtx`/`rawtx`).
    BlockConnected { block: Block, hash: BlockHash },
    /// A block was disconnected from the active chain ('D').
    BlockDisconnected { hash: BlockHash },
}

/// A regtest node: thread-safe (internally locked), shared behind an `Arc`.
pub struct Node {
    _private: (),
}

impl Node {
    /// Opens (or creates with the regtest genesis block) the chain state in `config.datadir`.
    pub fn open(config: NodeConfig) -> Result<Node, NodeError> {
        let _ = config;
        todo!()
    }

    /// Persists what must survive a restart (the mempool when `persist_mempool`), fsyncs, and closes.
    pub fn close(&self) -> Result<(), NodeError> {
        todo!()
    }

    /// Registers a subscriber; every later event is sent to it in order. Dropped receivers are pruned.
    pub fn subscribe(&self) -> std::sync::mpsc::Receiver<NodeEvent> {
        todo!()
    }

    // ---- chain queries -------------------------------------------------------------------

    pub fn chain_info(&self) -> ChainInfo {
        todo!()
    }
    pub fn best_block_hash(&self) -> BlockHash {
        todo!()
    }
    pub fn block_count(&self) -> u32 {
        todo!()
    }
    /// Hash of the active-chain block at `height`, `None` when out of range.
    pub fn block_hash(&self, height: u32) -> Option<BlockHash> {
        let _ = height;
        todo!()
    }
    /// Any known block (active, fork or invalid).
    pub fn block_entry(&self, hash: &BlockHash) -> Option<BlockEntry> {
        let _ = hash;
        todo!()
    }
    pub fn block(&self, hash: &BlockHash) -> Option<Block> {
        let _ = hash;
        todo!()
    }
    pub fn chain_tips(&self) -> Vec<ChainTip> {
        todo!()
    }
    /// `getrawtransaction txid [blockhash]` semantics, including the txindex rule.
    pub fn get_transaction(
        &self,
        txid: &Txid,
        block: Option<&BlockHash>,
    ) -> Result<TxLookup, TxLookupError> {
        let _ = (txid, block);
        todo!()
    }

    // ---- mempool ---------------------------------------------------------------------------

    /// Core's AcceptToMemoryPool. `max_fee_rate` None = the default 0.10 BTC/kvB; zero = no limit.
    /// With `test_only` the mempool is not changed (testmempoolaccept).
    /// Already in the mempool: Ok (sendrawtransaction returns the txid). Already confirmed: -27.
    pub fn accept_transaction(
        &self,
        tx: Transaction,
        max_fee_rate: Option<FeeRate>,
        test_only: bool,
    ) -> Result<Accepted, Rejection> {
        let _ = (tx, max_fee_rate, test_only);
        todo!()
    }
    pub fn mempool_txids(&self) -> Vec<Txid> {
        todo!()
    }
    pub fn mempool_entry(&self, txid: &Txid) -> Option<MempoolEntry> {
        let _ = txid;
        todo!()
    }

    // ---- mining and chain control ----------------------------------------------------------

    /// Mines `n` blocks paying the subsidy and fees to `script`, each taking the whole mempool
    /// (in a valid order). Returns the new block hashes.
    pub fn generate_to_script(&self, n: u32, script: &ScriptBuf) -> Result<Vec<BlockHash>, NodeError> {
        let _ = (n, script);
        todo!()
    }
    /// `generateblock`: one block with exactly `txs` (raw txs, or txids taken from the mempool).
    pub fn generate_block(&self, script: &ScriptBuf, txs: Vec<TxOrTxid>) -> Result<BlockHash, NodeError> {
        let _ = (script, txs);
        todo!()
    }
    pub fn invalidate_block(&self, hash: &BlockHash) -> Result<(), NodeError> {
        let _ = hash;
        todo!()
    }
    pub fn reconsider_block(&self, hash: &BlockHash) -> Result<(), NodeError> {
        let _ = hash;
        todo!()
    }
    /// Submits an externally built block (e.g. a competing branch made by a test).
    /// Returns Ok(true) if it became (part of) the active chain.
    pub fn submit_block(&self, block: Block) -> Result<bool, NodeError> {
        let _ = block;
        todo!()
    }
}

/// An entry of `generateblock`'s transaction list.
#[derive(Clone, Debug)]
pub enum TxOrTxid {
    Tx(Transaction),
    Txid(Txid),
}
