//! The simulated node's state: block tree, active chain, UTXO set, mempool, mining and persistence.
//!
//! This module is the seam between the consensus/mempool core (owned by `node/`) and the RPC/ZMQ
//! surface (owned by `rpc/`, `json.rs`, `zmq_pub.rs`). The RPC layer only calls the public API
//! below; it never reaches into internals.
//!
//! Everything here follows Bitcoin Core's regtest behaviour (see `../shared/spec/BITCOIND.md`).
//!
//! Inside: `chain` (block tree, work, active chain), `coins` (UTXO set and undo data),
//! `validation` (block checks and input checks), `mempool` (storage and relatives), `accept`
//! (AcceptToMemoryPool), `min_fee` (a full mempool's dynamic minimum fee), `policy` (standardness,
//! dust, fees), `mining` (coinbase, templates,
//! proof of work), `store` (files under `<datadir>/regtest/`), `state` (the locked state and the
//! chain-changing operations), `queries` (read views and block building).
//!
//! Known simplifications, relative to Core v31: scripts and signatures are never executed;
//! sigops are not counted; cluster-size limits (64 transactions / 101 kvB) are not enforced;
//! the replace-by-fee feerate-diagram check is approximated by "the replacement's feerate is not
//! below the combined feerate of what it evicts"; TRUC (version 3) rules are Core v28's
//! (`truc`); packages (`package`) follow Core v28's `submitpackage`; a
//! block that fails contextual checks is not remembered as invalid (Core keeps its header).

mod accept;
mod chain;
mod coins;
mod mempool;
mod min_fee;
mod mining;
mod package;
mod policy;
mod queries;
mod shared;
mod state;
mod store;
mod truc;
mod validation;

pub use package::{PackageTest, fee_per_kvb};
pub use shared::SharedBlock;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use bitcoin::block::Header;
use bitcoin::{
    Amount, Block, BlockHash, FeeRate, OutPoint, ScriptBuf, Transaction, Txid, Work, Wtxid,
};

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
    /// Core's `unbroadcast`: submitted here with `sendrawtransaction` and (no peers ever asking
    /// for it) not announced yet. False for transactions of `submitpackage` (Core only re-announces
    /// those: `mempool.json` section 2), of disconnected blocks and of a reloaded `mempool.dat`.
    pub unbroadcast: bool,
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

/// One transaction's outcome in [`Node::submit_package`]: an entry of `submitpackage`'s
/// `tx-results` (keyed there by wtxid), as Core v28 answers it (`mempool.json`, section 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PackageTxResult {
    /// Entered the mempool by this call. `effective_feerate_per_kvb` (satoshis per 1000 vbytes,
    /// truncated as Core's `CFeeRate::GetFeePerK`) is its own feerate when it got in alone, else
    /// the package feerate of the transactions in `effective_includes` (wtxids).
    Accepted {
        txid: Txid,
        vsize: u64,
        fee: Amount,
        effective_feerate_per_kvb: u64,
        effective_includes: Vec<Wtxid>,
    },
    /// Already in the mempool (Core shows only `vsize` and `fees.base`).
    InMempool { txid: Txid, vsize: u64, fee: Amount },
    /// A transaction with the same txid but another witness is in the mempool (`other-wtxid`).
    DifferentWitness { txid: Txid, other_wtxid: Wtxid },
    /// Refused: Core's `error` string, "<reason>" or "<reason>, <details>" (e.g. "min relay fee
    /// not met, 0 < 110", "bad-txns-inputs-missingorspent").
    Rejected { txid: Txid, error: String },
}

/// What [`Node::submit_package`] answers when the call itself is valid (`submitpackage`'s result,
/// HTTP 200 even when a transaction was refused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageResult {
    /// `package_msg`: "success" (every transaction is in the mempool now), "transaction failed",
    /// or a package-wide policy reason ("package-not-child-with-unconfirmed-parents",
    /// "package-contains-duplicates", "package-not-sorted", "conflict-in-package",
    /// "package-too-large").
    pub message: String,
    /// Per transaction, in package order, keyed by wtxid; transactions Core did not evaluate are
    /// left out, as Core leaves them out of `tx-results`.
    pub results: Vec<(Wtxid, PackageTxResult)>,
    /// Txids evicted by replace-by-fee, sorted as Core sorts them (internal byte order).
    pub replaced: Vec<Txid>,
}

impl PackageResult {
    /// Whether every transaction of the package is in the mempool now.
    pub fn is_success(&self) -> bool {
        self.message == "success"
    }
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
    TxAdded {
        tx: Transaction,
        mempool_sequence: u64,
    },
    /// A transaction left the mempool for a reason other than inclusion in a block ('R').
    TxRemoved { txid: Txid, mempool_sequence: u64 },
    /// A block was connected to the active chain ('C'; also `hashblock`/`rawblock` and, for each of
    /// its transactions, `hashtx`/`rawtx`).
    /// The block is shared with the node's block tree, not copied.
    BlockConnected { block: Arc<Block>, hash: BlockHash },
    /// A block was disconnected from the active chain ('D').
    BlockDisconnected { hash: BlockHash },
}

/// A regtest node: thread-safe (internally locked), shared behind an `Arc`.
///
/// All state sits behind one `Mutex`; every method takes it for its whole duration, so calls are
/// serialised like Core's `cs_main`. Readers of blocks get them shared ([`SharedBlock`]) and
/// encode them after the lock is released, so big answers never hold it. Events are sent to
/// subscribers while the lock is held (mpsc sends never block), which keeps them in the order the
/// changes happened.
pub struct Node {
    state: Mutex<state::State>,
}

impl Node {
    /// Opens (or creates with the regtest genesis block) the chain state in `config.datadir`.
    ///
    /// Replays `<datadir>/regtest/blocks/blk00000.dat` and the block flags to rebuild the block
    /// tree, active chain and UTXO set, then loads `mempool.dat` when `persist_mempool`
    /// (re-validating each transaction). Errors: [`NodeError::Storage`] for unreadable or corrupt
    /// files.
    pub fn open(config: NodeConfig) -> Result<Node, NodeError> {
        let state = state::State::open(config, None)?;
        Ok(Node {
            state: Mutex::new(state),
        })
    }

    /// [`Node::open`], but the node comes back behind, as after `bitcoind -reindex` (while it
    /// re-reads its block files) or a restore from an older snapshot: stored blocks above
    /// `visible_height` are held back, out of the block index (`getblockheader`, `getblock`,
    /// `getblockhash` of them answer as for unknown blocks: -5 "Block not found", -8 "Block height
    /// out of range"; their transactions are unknown to `getrawtransaction`), so the active
    /// chain ends at `visible_height` (or at the best stored chain below it) with that chain's
    /// `chainwork`. [`Node::reconnect_stored`] hands them back in, with the same hashes. The block
    /// files are not changed: a later plain [`Node::open`] sees every block again (the reindex
    /// finished while the node was down).
    pub fn open_behind(config: NodeConfig, visible_height: u32) -> Result<Node, NodeError> {
        let state = state::State::open(config, Some(visible_height))?;
        Ok(Node {
            state: Mutex::new(state),
        })
    }

    /// After [`Node::open_behind`]: processes the next `n` held-back blocks again, in the order
    /// they were first stored (parents first), as if they had just arrived: the best chain is
    /// activated as usual (a reorg when they make a heavier branch) and ZMQ publishes each
    /// connected block. Returns the hashes handed in (fewer than `n` when none are left).
    /// Errors: [`NodeError::Storage`].
    pub fn reconnect_stored(&self, n: u32) -> Result<Vec<BlockHash>, NodeError> {
        self.lock().reconnect_stored(n)
    }

    /// Stored blocks still held back since [`Node::open_behind`] (0 otherwise).
    pub fn held_back_blocks(&self) -> usize {
        self.lock().held_back()
    }

    /// A poisoned lock still holds consistent state (no operation panics half-way by design),
    /// so it is taken over rather than propagated.
    fn lock(&self) -> MutexGuard<'_, state::State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Persists what must survive a restart (the mempool when `persist_mempool`), fsyncs, and closes.
    pub fn close(&self) -> Result<(), NodeError> {
        self.lock().dump_mempool()
    }

    /// Registers a subscriber; every later event is sent to it in order. Dropped receivers are pruned.
    pub fn subscribe(&self) -> std::sync::mpsc::Receiver<NodeEvent> {
        self.lock().subscribe()
    }

    // ---- chain queries -------------------------------------------------------------------

    /// `getblockchaininfo`'s chain fields.
    pub fn chain_info(&self) -> ChainInfo {
        let s = self.lock();
        let tip = s.tree.tip_node();
        ChainInfo {
            blocks: tip.height,
            best_block_hash: tip.hash,
            bits: tip.header.bits,
            time: tip.header.time,
            median_time: tip.median_time,
            chainwork: tip.chainwork,
            initial_block_download: s.ibd,
            size_on_disk: s.store.size_on_disk(),
        }
    }

    /// Hash of the active tip.
    pub fn best_block_hash(&self) -> BlockHash {
        self.lock().tree.tip_node().hash
    }

    /// Height of the active tip (blocks).
    pub fn block_count(&self) -> u32 {
        self.lock().tree.height()
    }

    /// Hash of the active-chain block at `height`, `None` when out of range.
    pub fn block_hash(&self, height: u32) -> Option<BlockHash> {
        let s = self.lock();
        s.tree.active_at(height).map(|i| s.tree.node(i).hash)
    }

    /// Any known block (active, fork or invalid).
    pub fn block_entry(&self, hash: &BlockHash) -> Option<BlockEntry> {
        let s = self.lock();
        let idx = s.tree.lookup(hash)?;
        Some(queries::block_entry(&s, idx))
    }

    /// A copy of the full block, for any known block (the copy is made after the lock is
    /// released; [`Node::shared_block`] avoids it).
    pub fn block(&self, hash: &BlockHash) -> Option<Block> {
        self.shared_block(hash).map(|b| b.block().clone())
    }

    /// Any known block, shared with the block tree: the lock is held only for the lookup.
    pub fn shared_block(&self, hash: &BlockHash) -> Option<SharedBlock> {
        let s = self.lock();
        let idx = s.tree.lookup(hash)?;
        Some(s.tree.node(idx).shared())
    }

    /// [`Node::block_entry`] and [`Node::shared_block`] of one block, seen under one lock (so the
    /// entry describes the same chain state the block was found in).
    pub fn block_with_entry(&self, hash: &BlockHash) -> Option<(BlockEntry, SharedBlock)> {
        let s = self.lock();
        let idx = s.tree.lookup(hash)?;
        Some((queries::block_entry(&s, idx), s.tree.node(idx).shared()))
    }

    /// `getchaintips`: the active tip and every block without children off the active chain,
    /// highest first (Core's order).
    pub fn chain_tips(&self) -> Vec<ChainTip> {
        queries::chain_tips(&self.lock())
    }

    /// `getrawtransaction txid [blockhash]` semantics, including the txindex rule.
    pub fn get_transaction(
        &self,
        txid: &Txid,
        block: Option<&BlockHash>,
    ) -> Result<TxLookup, TxLookupError> {
        queries::get_transaction(&self.lock(), txid, block)
    }

    // ---- mempool ---------------------------------------------------------------------------

    /// Core's AcceptToMemoryPool. `max_fee_rate` None = the default 0.10 BTC/kvB; zero = no limit.
    /// With `test_only` the mempool is not changed (testmempoolaccept).
    /// Already in the mempool: Ok (sendrawtransaction returns the txid). Already confirmed: -27.
    ///
    /// Rejections carry Core's code, reject reason and message (see [`Rejection`]); the checks run
    /// in Core's order (structure, standardness, finality, inputs, BIP68, maturity, amounts,
    /// dust, min relay fee 100 sat/kvB, replace-by-fee, then `maxfeerate`). Scripts are not run.
    /// Missing or spent inputs: code -25, reason "missing-inputs" (testmempoolaccept's
    /// reject-reason, shown without reject-details), message "bad-txns-inputs-missingorspent".
    /// Fee above `maxfeerate`: -25, reason "max-fee-exceeded", message "Fee exceeds maximum
    /// configured by user (e.g. -maxtxfee, maxfeerate)".
    pub fn accept_transaction(
        &self,
        tx: Transaction,
        max_fee_rate: Option<FeeRate>,
        test_only: bool,
    ) -> Result<Accepted, Rejection> {
        let per_kvb = match max_fee_rate {
            None => Some(policy::DEFAULT_MAX_FEE_PER_KVB),
            Some(rate) if rate == FeeRate::ZERO => None,
            Some(rate) => Some(rate.to_sat_per_kwu().saturating_mul(4)),
        };
        self.lock().broadcast(tx, per_kvb, test_only)
    }

    /// `submitpackage`: exactly one child with all of its unconfirmed parents, parents first
    /// (see `node/package.rs`). `max_fee_rate`: as for [`Node::accept_transaction`] (None = 0.10
    /// BTC/kvB; zero = no limit); a transaction above it is refused "max feerate exceeded".
    ///
    /// Errors (the call itself, nothing evaluated): -8 "Array must contain between 2 and 25
    /// transactions."; -25 "package topology disallowed. not child-with-parents or parents depend
    /// on each other.". Refusals of transactions are in the [`PackageResult`], not errors.
    /// Every transaction entering the mempool is announced like any other (`hashtx`, `rawtx`,
    /// `sequence` `A`, with its own mempool sequence), parents first.
    pub fn submit_package(
        &self,
        txs: Vec<Transaction>,
        max_fee_rate: Option<FeeRate>,
    ) -> Result<PackageResult, Rejection> {
        let per_kvb = match max_fee_rate {
            None => Some(policy::DEFAULT_MAX_FEE_PER_KVB),
            Some(rate) if rate == FeeRate::ZERO => None,
            Some(rate) => Some(rate.to_sat_per_kwu().saturating_mul(4)),
        };
        self.lock().submit_package(txs, per_kvb)
    }

    /// `testmempoolaccept` of two or more transactions: see `State::test_package` (each checked
    /// alone, later ones seeing the earlier ones' outputs; `None` = not evaluated). `Err` is a
    /// package-wide policy reason (`package-error`), e.g. "package-not-sorted".
    pub fn test_accept_package(&self, txs: &[Transaction]) -> Result<PackageTest, String> {
        self.lock().test_package(txs).map_err(str::to_owned)
    }

    /// The mempool transaction spending `outpoint`, if any (`gettxspendingprevout`).
    pub fn mempool_spender(&self, outpoint: &OutPoint) -> Option<Txid> {
        self.lock().mempool.spender(outpoint)
    }

    /// `getrawmempool`'s `mempool_sequence`: the number the next mempool change will take
    /// (Core's `m_sequence_number`; 1 after a start, +1 per transaction added or removed for
    /// any reason, including confirmation in a block).
    pub fn mempool_sequence(&self) -> u64 {
        self.lock().mempool_sequence()
    }

    /// The mempool's txids (entry order) and [`Node::mempool_sequence`], read under one lock:
    /// `getrawmempool false true`.
    pub fn mempool_txids_with_sequence(&self) -> (Vec<Txid>, u64) {
        let s = self.lock();
        let txids = s.mempool.ordered().iter().map(|e| e.txid).collect();
        (txids, s.mempool_sequence())
    }

    /// Test control: removes `txid` and its in-mempool descendants as Core does when a
    /// transaction expires (`-mempoolexpiry`) or is trimmed by `-maxmempool`: each is reported
    /// removed (`sequence` `R`, taking a mempool sequence number), in Core's order (by txid).
    /// Returns the txids removed, in that order; empty when `txid` was not in the mempool.
    pub fn evict_from_mempool(&self, txid: &Txid) -> Vec<Txid> {
        let mut s = self.lock();
        let doomed = s.mempool.with_descendants(&[*txid]);
        s.remove_from_mempool(&doomed, true)
    }

    /// Test control: Core's `-minrelaytxfee`, in satoshis per 1000 vbytes. The default, 100, is
    /// Core v30+'s; Core up to v29 (the version `mempool.json` was recorded with) used 1000, so
    /// a 110-vbyte zero-fee transaction is refused "min relay fee not met, 0 < 110" there and
    /// "0 < 11" with the default. Applies to later acceptances; `getmempoolinfo` shows it.
    pub fn set_min_relay_fee(&self, sat_per_kvb: u64) {
        self.lock().min_relay_fee = sat_per_kvb;
    }

    /// [`Node::set_min_relay_fee`]'s current value (satoshis per 1000 vbytes).
    pub fn min_relay_fee(&self) -> u64 {
        self.lock().min_relay_fee
    }

    /// Txids in the mempool, in the order they entered.
    pub fn mempool_txids(&self) -> Vec<Txid> {
        self.lock()
            .mempool
            .ordered()
            .iter()
            .map(|e| e.txid)
            .collect()
    }

    /// Sets the dynamic mempool minimum fee a full mempool has (`sat_per_kvb` satoshis per 1000
    /// vbytes; 0 = none, the default). While set, a transaction paying less than that rate for
    /// its size (but at least the incremental relay fee, 100 sat/kvB) is refused with -26
    /// "mempool min fee not met, <fee> < <required fee>" (satoshis), before the min relay fee
    /// check, as Core's `CheckFeeRate`; transactions of disconnected blocks are exempt (Core's
    /// `bypass_limits`). Mempool transactions paying less are evicted (reported removed, 'R'), as
    /// Core's `TrimToSize`. `getmempoolinfo` reports it as `mempoolminfee`. Setting it lower
    /// (or 0) lowers it at once; it does not decay by itself.
    pub fn set_mempool_min_fee(&self, sat_per_kvb: u64) {
        self.lock().set_mempool_min_fee(sat_per_kvb);
    }

    /// `getmempoolinfo`'s `mempoolminfee` in satoshis per 1000 vbytes: the dynamic minimum
    /// ([`Node::set_mempool_min_fee`]) or the min relay fee (100), whichever is higher.
    pub fn mempool_min_fee(&self) -> u64 {
        self.lock().mempool_min_fee()
    }

    /// One mempool entry with its ancestor/descendant totals.
    pub fn mempool_entry(&self, txid: &Txid) -> Option<MempoolEntry> {
        self.lock().mempool.entry(txid)
    }

    // ---- mining and chain control ----------------------------------------------------------

    /// Mines `n` blocks paying the subsidy and fees to `script`, each taking the whole mempool
    /// (in a valid order). Returns the new block hashes.
    ///
    /// Each block is built like Core's `generatetoaddress`: time = max(median time past + 1,
    /// now), nonce ground from 0. Rebuilding a block that was invalidated gives the same hash and
    /// fails with -32603 "ProcessNewBlock, block not accepted", as in Core.
    pub fn generate_to_script(
        &self,
        n: u32,
        script: &ScriptBuf,
    ) -> Result<Vec<BlockHash>, NodeError> {
        let mut hashes = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let mut s = self.lock();
            let block = queries::template(&s, script)?;
            hashes.push(queries::process_mined(&mut s, block)?);
        }
        Ok(hashes)
    }

    /// `generateblock`: one block with exactly `txs` (raw txs, or txids taken from the mempool).
    ///
    /// Errors: -5 "Transaction <txid> not in mempool." for an unknown txid; -25 "TestBlockValidity
    /// failed: <reason>" when the block would be invalid; -32603 as for
    /// [`Node::generate_to_script`]. The coinbase pays only the subsidy (Core builds it from an
    /// empty template, so fees are forfeited).
    pub fn generate_block(
        &self,
        script: &ScriptBuf,
        txs: Vec<TxOrTxid>,
    ) -> Result<BlockHash, NodeError> {
        let mut s = self.lock();
        let block = queries::explicit_block(&s, script, txs)?;
        queries::process_mined(&mut s, block)
    }

    /// `invalidateblock`: the block and its descendants become invalid and the node reorganises
    /// to the best valid chain. Errors: [`NodeError::BlockNotFound`].
    pub fn invalidate_block(&self, hash: &BlockHash) -> Result<(), NodeError> {
        let mut s = self.lock();
        let idx = s.tree.lookup(hash).ok_or(NodeError::BlockNotFound)?;
        s.invalidate(idx)
    }

    /// `reconsiderblock`: clears the invalid flags of the block, its ancestors and descendants,
    /// then re-selects the best chain. Errors: [`NodeError::BlockNotFound`].
    pub fn reconsider_block(&self, hash: &BlockHash) -> Result<(), NodeError> {
        let mut s = self.lock();
        let idx = s.tree.lookup(hash).ok_or(NodeError::BlockNotFound)?;
        s.reconsider(idx)
    }

    /// Submits an externally built block (e.g. a competing branch made by a test).
    /// Returns Ok(true) if it became (part of) the active chain.
    ///
    /// Ok(false): stored but not on the active chain (Core's "inconclusive"). Every other
    /// `submitblock` answer is `NodeError::Rpc { code: -25, message }` with Core's result string
    /// as message ("duplicate", "duplicate-invalid", "prev-blk-not-found", "high-hash",
    /// "bad-txnmrklroot", ...); a block without a coinbase first is -22 "Block does not start
    /// with a coinbase". See [`Node::submit_block_outcome`] for the answer without errors.
    pub fn submit_block(&self, block: Block) -> Result<bool, NodeError> {
        match self.submit_block_outcome(block)? {
            SubmitOutcome::Accepted => Ok(true),
            SubmitOutcome::Inconclusive => Ok(false),
            SubmitOutcome::Duplicate => Err(NodeError::Rpc {
                code: -25,
                message: "duplicate".into(),
            }),
            SubmitOutcome::Rejected(reason) => Err(NodeError::Rpc {
                code: -25,
                message: reason,
            }),
        }
    }

    /// `submitblock` as Core answers it: see [`SubmitOutcome`]. Errors: -22 when the block has
    /// no coinbase first; [`NodeError::Storage`].
    pub fn submit_block_outcome(&self, block: Block) -> Result<SubmitOutcome, NodeError> {
        if block.txdata.first().is_none_or(|tx| !tx.is_coinbase()) {
            return Err(NodeError::Rpc {
                code: -22,
                message: "Block does not start with a coinbase".into(),
            });
        }
        let outcome = self.lock().process_block(block)?;
        Ok(match outcome {
            state::ProcessOutcome::Connected => SubmitOutcome::Accepted,
            state::ProcessOutcome::Inconclusive => SubmitOutcome::Inconclusive,
            state::ProcessOutcome::Duplicate => SubmitOutcome::Duplicate,
            state::ProcessOutcome::Rejected { reject, .. } => {
                SubmitOutcome::Rejected(reject.reason)
            }
        })
    }

    /// An unspent output: of the active chain's UTXO set, or (with `include_mempool`) created by
    /// a mempool transaction; `None` when unknown or spent (also when spent by the mempool with
    /// `include_mempool`), like `gettxout`.
    pub fn get_tx_out(&self, outpoint: &OutPoint, include_mempool: bool) -> Option<TxOutInfo> {
        queries::get_tx_out(&self.lock(), outpoint, include_mempool)
    }

    /// Every unspent output (chain and mempool) paying to one of `scripts`; used by the test
    /// wallet. Outputs spent by mempool transactions are flagged, not left out.
    pub fn outputs_to(&self, scripts: &std::collections::HashSet<ScriptBuf>) -> Vec<OwnedOutput> {
        queries::outputs_to(&self.lock(), scripts)
    }
}

/// Core's `submitblock` result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// Valid and connected (Core answers null).
    Accepted,
    /// Stored, valid so far, but not on the active chain ("inconclusive").
    Inconclusive,
    /// Already known and valid ("duplicate").
    Duplicate,
    /// Invalid, with Core's reject reason ("duplicate-invalid", "high-hash", "bad-txnmrklroot",
    /// "prev-blk-not-found", "bad-txns-inputs-missingorspent", ...).
    Rejected(String),
}

impl SubmitOutcome {
    /// The JSON result Core's `submitblock` gives: `None` for null, else the string.
    pub fn as_core_result(&self) -> Option<&str> {
        match self {
            SubmitOutcome::Accepted => None,
            SubmitOutcome::Inconclusive => Some("inconclusive"),
            SubmitOutcome::Duplicate => Some("duplicate"),
            SubmitOutcome::Rejected(r) => Some(r),
        }
    }
}

/// An unspent output found by [`Node::get_tx_out`] (`gettxout`).
#[derive(Clone, Debug)]
pub struct TxOutInfo {
    /// Value (satoshis) and script of the output.
    pub txout: bitcoin::TxOut,
    /// Confirmations (0 for a mempool output).
    pub confirmations: u32,
    /// Created by a coinbase transaction (spendable 100 blocks after its own).
    pub coinbase: bool,
    /// The active tip the answer refers to (`bestblock`).
    pub best_block: BlockHash,
}

/// An output paying to a watched script, as [`Node::outputs_to`] reports it.
#[derive(Clone, Debug)]
pub struct OwnedOutput {
    /// Where the output is.
    pub outpoint: OutPoint,
    /// Value (satoshis) and script.
    pub txout: bitcoin::TxOut,
    /// Height of the confirming block; `None` while in the mempool.
    pub height: Option<u32>,
    /// Confirmations at the active tip (0 in the mempool).
    pub confirmations: u32,
    /// Created by a coinbase transaction (spendable 100 blocks after its own).
    pub coinbase: bool,
    /// A mempool transaction spends it.
    pub spent_in_mempool: bool,
}

/// An entry of `generateblock`'s transaction list.
#[derive(Clone, Debug)]
pub enum TxOrTxid {
    /// A transaction given in full (it need not be in the mempool).
    Tx(Transaction),
    /// A transaction taken from the mempool; unknown: -5 "Transaction <txid> not in mempool.".
    Txid(Txid),
}
