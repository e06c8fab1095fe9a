//! The node's state behind its one lock, and the chain-changing operations of Bitcoin Core's
//! `Chainstate`: accept a block, activate the most-work valid chain (reorganising through the fork
//! point), invalidate and reconsider blocks, keep the mempool consistent, and emit events in the
//! order Core's validation interface does.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::{Block, BlockHash, Network, Transaction, Txid};

use super::chain::BlockTree;
use super::coins::{BlockUndo, CoinsView};
use super::mempool::Mempool;
use super::store::{FlagOp, Store, StoreError};
use super::validation::{self, BlockReject, ParentInfo};
use super::{NodeConfig, NodeError, NodeEvent};

/// Core's `DEFAULT_MAX_TIP_AGE`: the node leaves initial block download once its tip is younger.
const MAX_TIP_AGE: u64 = 24 * 60 * 60;

/// Current time (seconds since the epoch).
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl From<StoreError> for NodeError {
    fn from(e: StoreError) -> NodeError {
        NodeError::Storage(e.to_string())
    }
}

/// What happened to a block handed to [`State::process_block`].
#[derive(Debug)]
pub(crate) enum ProcessOutcome {
    /// Stored and now on the active chain.
    Connected,
    /// Stored, valid so far, but not on the active chain (Core's submitblock "inconclusive").
    Inconclusive,
    /// Already stored and not invalid.
    Duplicate,
    /// Invalid; `stored` when it was written and marked failed while connecting.
    Rejected { reject: BlockReject, stored: bool },
}

/// Everything behind [`super::Node`]'s lock.
pub(crate) struct State {
    pub config: NodeConfig,
    pub tree: BlockTree,
    pub coins: CoinsView,
    /// Undo data of every active-chain block, by tree index.
    undo: HashMap<usize, BlockUndo>,
    /// Confirmed transaction → block, as Core's `-txindex` (entries of reorganised-away blocks
    /// stay until overwritten, like Core's index).
    pub txindex: HashMap<Txid, BlockHash>,
    pub mempool: Mempool,
    /// Core's mempool sequence: next value handed out (starts at 1).
    mempool_seq: u64,
    pub store: Store,
    subscribers: Vec<Sender<NodeEvent>>,
    /// Core's latched `IsInitialBlockDownload`.
    pub ibd: bool,
    /// Why a block failed to connect (for submitblock's answer).
    fail_reasons: HashMap<usize, BlockReject>,
    /// Stored blocks left out of the tree by a restart behind, in stored order (parents first).
    held_back: VecDeque<Block>,
    /// Flag records of the held-back blocks, in log order.
    held_flags: Vec<(FlagOp, BlockHash)>,
    /// The floor a full mempool sets (satoshis per 1000 vbytes, 0 = none; see `min_fee.rs`).
    pub rolling_min_fee: u64,
    /// `-minrelaytxfee` (satoshis per 1000 vbytes; Core v30+'s default 100).
    pub min_relay_fee: u64,
}

impl State {
    /// Opens the store, replays blocks and flags, rebuilds the UTXO set along the best chain,
    /// and loads `mempool.dat` when `persist_mempool`.
    ///
    /// With `visible_height`, stored blocks above that height are held back (not in the block
    /// tree) until [`State::reconnect_stored`] hands them in again: the node restarted behind.
    pub fn open(config: NodeConfig, visible_height: Option<u32>) -> Result<State, NodeError> {
        let (mut store, loaded) = Store::open(&config.datadir)?;
        let genesis = bitcoin::constants::genesis_block(Network::Regtest);
        let mut blocks = loaded.blocks.into_iter();
        match blocks.next() {
            None => store.append_block(&genesis)?,
            Some(first) if first.block_hash() == genesis.block_hash() => {}
            Some(first) => {
                return Err(NodeError::Storage(format!(
                    "block file does not start with the regtest genesis block ({})",
                    first.block_hash()
                )));
            }
        }
        let mut tree = BlockTree::new(genesis);
        let mut held_back = VecDeque::new();
        let mut held_hashes = HashSet::new();
        for block in blocks {
            let parent = block.header.prev_blockhash;
            if held_hashes.contains(&parent) {
                held_hashes.insert(block.block_hash());
                held_back.push_back(block);
                continue;
            }
            let Some(parent_idx) = tree.lookup(&parent) else {
                tracing::warn!(hash = %block.block_hash(), "stored block with unknown parent ignored");
                continue;
            };
            if visible_height.is_some_and(|h| tree.node(parent_idx).height >= h) {
                held_hashes.insert(block.block_hash());
                held_back.push_back(block);
                continue;
            }
            tree.insert(block);
        }
        let mut held_flags = Vec::new();
        for (op, hash) in loaded.flags {
            let Some(idx) = tree.lookup(&hash) else {
                if held_hashes.contains(&hash) {
                    held_flags.push((op, hash));
                }
                continue;
            };
            apply_flag(&mut tree, op, idx);
        }
        let mut state = State {
            config,
            tree,
            coins: CoinsView::default(),
            undo: HashMap::new(),
            txindex: HashMap::new(),
            mempool: Mempool::default(),
            mempool_seq: 1,
            store,
            subscribers: Vec::new(),
            ibd: true,
            fail_reasons: HashMap::new(),
            rolling_min_fee: 0,
            min_relay_fee: super::policy::MIN_RELAY_FEE_PER_KVB,
            held_back,
            held_flags,
        };
        let genesis_idx = state.tree.tip();
        let genesis_block = state.tree.node(genesis_idx).block.clone();
        state.coins.apply(&genesis_block, 0);
        state.undo.insert(genesis_idx, BlockUndo::default());
        state.update_ibd();
        state.activate_best_chain()?;
        if state.config.persist_mempool {
            state.load_mempool()?;
        }
        Ok(state)
    }

    /// Hands the next `n` held-back blocks (see [`State::open`]) to block processing again, in
    /// the order they were first stored, without storing them twice; returns their hashes.
    /// Their invalidate/reconsider flags are replayed as each one is back in the tree, before
    /// the best chain is activated.
    pub fn reconnect_stored(&mut self, n: u32) -> Result<Vec<BlockHash>, NodeError> {
        let mut hashes = Vec::new();
        for _ in 0..n {
            let Some(block) = self.held_back.pop_front() else {
                break;
            };
            let hash = block.block_hash();
            self.restore_block(block)?;
            hashes.push(hash);
        }
        Ok(hashes)
    }

    /// Puts a held-back block back in the tree as [`State::open`] does for stored blocks (it was
    /// checked when first stored), replays its flags, then activates the best chain.
    fn restore_block(&mut self, block: Block) -> Result<(), NodeError> {
        if self.tree.lookup(&block.block_hash()).is_some() {
            return Ok(());
        }
        if self.tree.lookup(&block.header.prev_blockhash).is_none() {
            tracing::warn!(hash = %block.block_hash(), "stored block with unknown parent ignored");
            return Ok(());
        }
        let idx = self.tree.insert(block);
        self.replay_held_flags(idx);
        self.activate_best_chain()
    }

    /// Applies the flag records of a block handed back in by [`State::reconnect_stored`].
    fn replay_held_flags(&mut self, idx: usize) {
        let hash = self.tree.node(idx).hash;
        let flags: Vec<FlagOp> = self
            .held_flags
            .iter()
            .filter(|(_, h)| *h == hash)
            .map(|(op, _)| *op)
            .collect();
        for op in flags {
            apply_flag(&mut self.tree, op, idx);
        }
    }

    /// Stored blocks still held back after a restart behind.
    pub fn held_back(&self) -> usize {
        self.held_back.len()
    }

    fn load_mempool(&mut self) -> Result<(), NodeError> {
        for (tx, time) in self.store.read_mempool()? {
            let opts = super::accept::AcceptOptions {
                time: Some(time),
                ..Default::default()
            };
            if let Err(r) = self.accept(tx, &opts) {
                tracing::debug!(reason = %r.message, "mempool.dat transaction not re-accepted");
            }
        }
        Ok(())
    }

    /// Writes `mempool.dat` (parents before children) when `persist_mempool`.
    pub fn dump_mempool(&self) -> Result<(), NodeError> {
        if !self.config.persist_mempool {
            return Ok(());
        }
        let all: HashSet<Txid> = self.mempool.ordered().iter().map(|e| e.txid).collect();
        let txs: Vec<(Transaction, u64)> = self
            .mempool
            .topological(all)
            .iter()
            .filter_map(|t| self.mempool.get(t))
            .map(|e| (e.tx.clone(), e.time))
            .collect();
        self.store.write_mempool(&txs)?;
        Ok(())
    }

    // ---- events ------------------------------------------------------------------------------

    pub fn subscribe(&mut self) -> Receiver<NodeEvent> {
        let (tx, rx) = mpsc::channel();
        self.subscribers.push(tx);
        rx
    }

    /// Sends to every subscriber (mpsc sends never block) and forgets dropped ones.
    pub fn emit(&mut self, event: NodeEvent) {
        self.subscribers.retain(|s| s.send(event.clone()).is_ok());
    }

    /// Core's `GetAndIncrementSequence`.
    pub fn next_mempool_seq(&mut self) -> u64 {
        let s = self.mempool_seq;
        self.mempool_seq += 1;
        s
    }

    /// Removes `txids` (callers include descendants). Each removal takes a mempool sequence
    /// number; only non-block removals are reported (Core's `removeUnchecked`), and those go in
    /// Core's `RemoveStaged` order: by txid, compared as stored (internal byte order), not parents
    /// first (mempool.json: a replaced parent `12c6…` is reported before its child `0c61…`).
    /// Returns the txids removed, in that order.
    pub fn remove_from_mempool(&mut self, txids: &[Txid], report: bool) -> Vec<Txid> {
        let mut txids = txids.to_vec();
        if report {
            txids.sort();
        }
        let mut removed = Vec::with_capacity(txids.len());
        for txid in &txids {
            if self.mempool.remove(txid).is_some() {
                let seq = self.next_mempool_seq();
                if report {
                    self.emit(NodeEvent::TxRemoved {
                        txid: *txid,
                        mempool_sequence: seq,
                    });
                }
                removed.push(*txid);
            }
        }
        removed
    }

    /// Core's `m_sequence_number` as `getrawmempool false true` shows it: the next number.
    pub fn mempool_sequence(&self) -> u64 {
        self.mempool_seq
    }

    // ---- chain helpers -----------------------------------------------------------------------

    /// Median time past of the active-chain block at `height` (the tip's when above).
    pub fn mtp_at(&self, height: u32) -> u32 {
        let idx = self
            .tree
            .active_at(height)
            .unwrap_or_else(|| self.tree.tip());
        self.tree.node(idx).median_time
    }

    fn update_ibd(&mut self) {
        if self.ibd && u64::from(self.tree.tip_node().header.time) + MAX_TIP_AGE >= now() {
            self.ibd = false;
        }
    }

    /// Core's TestBlockValidity for a block on the active tip (no proof-of-work or merkle check).
    pub fn test_block_validity(&self, block: &Block) -> Result<(), BlockReject> {
        let tip = self.tree.tip_node();
        let parent = ParentInfo {
            height: tip.height,
            median_time: tip.median_time,
        };
        validation::contextual_check(block, &parent, now() as u32)?;
        validation::check_block_body(block)?;
        let mtp_at = |h: u32| self.mtp_at(h);
        validation::connect_inputs(block, tip.height + 1, tip.median_time, &self.coins, &mtp_at)?;
        Ok(())
    }

    // ---- blocks ------------------------------------------------------------------------------

    /// Core's `ProcessNewBlock`: check, store, then activate the best chain.
    pub fn process_block(&mut self, block: Block) -> Result<ProcessOutcome, NodeError> {
        let hash = block.block_hash();
        if let Some(idx) = self.tree.lookup(&hash) {
            if self.tree.node(idx).invalid {
                let reject = BlockReject {
                    reason: "duplicate-invalid".into(),
                    debug: String::new(),
                    mutated: false,
                };
                return Ok(ProcessOutcome::Rejected {
                    reject,
                    stored: false,
                });
            }
            self.activate_best_chain()?;
            return Ok(ProcessOutcome::Duplicate);
        }
        if let Err(reject) = validation::check_block(&block) {
            return Ok(ProcessOutcome::Rejected {
                reject,
                stored: false,
            });
        }
        let Some(parent_idx) = self.tree.lookup(&block.header.prev_blockhash) else {
            let reject = BlockReject {
                reason: "prev-blk-not-found".into(),
                debug: String::new(),
                mutated: false,
            };
            return Ok(ProcessOutcome::Rejected {
                reject,
                stored: false,
            });
        };
        let parent = self.tree.node(parent_idx);
        if parent.invalid {
            let reject = BlockReject {
                reason: "bad-prevblk".into(),
                debug: String::new(),
                mutated: false,
            };
            return Ok(ProcessOutcome::Rejected {
                reject,
                stored: false,
            });
        }
        let info = ParentInfo {
            height: parent.height,
            median_time: parent.median_time,
        };
        if let Err(reject) = validation::contextual_check(&block, &info, now() as u32) {
            return Ok(ProcessOutcome::Rejected {
                reject,
                stored: false,
            });
        }
        self.store.append_block(&block)?;
        let idx = self.tree.insert(block);
        self.activate_best_chain()?;
        if self.tree.is_active(idx) {
            return Ok(ProcessOutcome::Connected);
        }
        match self.fail_reasons.get(&idx) {
            Some(reject) => Ok(ProcessOutcome::Rejected {
                reject: reject.clone(),
                stored: true,
            }),
            None => Ok(ProcessOutcome::Inconclusive),
        }
    }

    /// Core's `ActivateBestChain`: while a valid block with more work (or equal work, seen
    /// earlier) than the tip exists, take a step toward it; a block failing to connect is marked
    /// invalid and another chain chosen.
    pub fn activate_best_chain(&mut self) -> Result<(), NodeError> {
        loop {
            let best = self.tree.best_valid();
            if best == self.tree.tip() {
                return Ok(());
            }
            self.activate_step(best)?;
        }
    }

    /// Core's `ActivateBestChainStep`: disconnect to the fork point, connect toward `best` until
    /// the chain has more work than before (or a block fails), put the disconnected transactions
    /// back into the mempool, then report the connected blocks. Events come out as Core's:
    /// disconnections (tip first), removals of conflicts, re-additions, connections.
    fn activate_step(&mut self, best: usize) -> Result<(), NodeError> {
        let old_work = self.tree.tip_node().chainwork;
        let fork = self.tree.fork_point(best);
        let mut disconnected: Vec<Vec<Transaction>> = Vec::new();
        while self.tree.tip() != fork {
            disconnected.push(self.disconnect_tip()?);
        }
        let mut connected = Vec::new();
        let mut confirmed: HashSet<Txid> = HashSet::new();
        for idx in self.tree.path(fork, best) {
            match self.connect_tip(idx) {
                Ok(()) => {
                    let block = self.tree.node(idx).block.clone();
                    confirmed.extend(block.txdata.iter().map(Transaction::compute_txid));
                    connected.push(idx);
                    if self.tree.tip_node().chainwork > old_work {
                        break;
                    }
                }
                Err(reject) => {
                    self.mark_failed(idx, reject)?;
                    break;
                }
            }
        }
        if !disconnected.is_empty() {
            let pool: Vec<Transaction> = disconnected
                .into_iter()
                .rev()
                .flatten()
                .filter(|tx| !confirmed.contains(&tx.compute_txid()))
                .collect();
            self.update_mempool_for_reorg(pool);
        }
        for idx in connected {
            let node = self.tree.node(idx);
            let event = NodeEvent::BlockConnected {
                block: node.block.clone(),
                hash: node.hash,
            };
            self.emit(event);
        }
        Ok(())
    }

    fn mark_failed(&mut self, idx: usize, reject: BlockReject) -> Result<(), NodeError> {
        let hash = self.tree.node(idx).hash;
        tracing::debug!(%hash, reason = %reject.to_core_string(), "block failed to connect");
        self.tree.set_failed(idx);
        self.fail_reasons.insert(idx, reject);
        self.store.append_flag(FlagOp::Failed, &hash)?;
        Ok(())
    }

    /// Core's `ConnectTip`: validate inputs, update the UTXO set, then the mempool (block
    /// transactions leave silently, conflicting ones are reported removed).
    fn connect_tip(&mut self, idx: usize) -> Result<(), BlockReject> {
        let node = self.tree.node(idx);
        let block = node.block.clone();
        let height = node.height;
        let prev_mtp = self.tree.tip_node().median_time;
        let mtp_at = |h: u32| self.mtp_at(h);
        let (undo, _fees) =
            validation::connect_inputs(&block, height, prev_mtp, &self.coins, &mtp_at)?;
        self.coins.apply(&block, height);
        self.undo.insert(idx, undo);
        self.tree.push_active(idx);
        let hash = self.tree.node(idx).hash;
        for tx in block.txdata.iter().skip(usize::from(height == 0)) {
            self.txindex.insert(tx.compute_txid(), hash);
        }
        for tx in &block.txdata {
            let txid = tx.compute_txid();
            if self.mempool.contains(&txid) {
                self.remove_from_mempool(&[txid], false);
            }
            if tx.is_coinbase() {
                continue;
            }
            let conflicts: Vec<Txid> = tx
                .input
                .iter()
                .filter_map(|i| self.mempool.spender(&i.previous_output))
                .filter(|t| *t != txid)
                .collect();
            let doomed = self.mempool.with_descendants(&conflicts);
            self.remove_from_mempool(&doomed, true);
        }
        self.update_ibd();
        Ok(())
    }

    /// Core's `DisconnectTip`: restores the UTXO set, reports the block disconnected, and
    /// returns its non-coinbase transactions.
    fn disconnect_tip(&mut self) -> Result<Vec<Transaction>, NodeError> {
        let idx = self.tree.tip();
        let Some(undo) = self.undo.remove(&idx) else {
            return Err(NodeError::Storage("missing undo data for the tip".into()));
        };
        let block = self.tree.node(idx).block.clone();
        self.coins.revert(&block, &undo);
        self.tree.pop_active();
        let hash = self.tree.node(idx).hash;
        self.store.append_flag(FlagOp::Validated, &hash)?;
        self.emit(NodeEvent::BlockDisconnected { hash });
        Ok(block.txdata.iter().skip(1).cloned().collect())
    }

    /// Core's `MaybeUpdateMempoolForReorg`: re-accept disconnected transactions in block order
    /// (without the fee floor), drop the ones that fail along with their in-mempool descendants,
    /// then evict what the new tip makes invalid (immature or non-final spends).
    fn update_mempool_for_reorg(&mut self, pool: Vec<Transaction>) {
        for tx in pool {
            let txid = tx.compute_txid();
            let opts = super::accept::AcceptOptions {
                bypass_limits: true,
                ..Default::default()
            };
            if self.accept(tx.clone(), &opts).is_err() {
                let children: Vec<Txid> = (0..tx.output.len() as u32)
                    .filter_map(|vout| self.mempool.spender(&bitcoin::OutPoint { txid, vout }))
                    .collect();
                let doomed = self.mempool.with_descendants(&children);
                self.remove_from_mempool(&doomed, true);
            }
        }
        let stale: Vec<Txid> = self
            .mempool
            .ordered()
            .iter()
            .filter(|e| !self.still_valid(&e.tx))
            .map(|e| e.txid)
            .collect();
        let doomed = self.mempool.with_descendants(&stale);
        self.remove_from_mempool(&doomed, true);
    }

    /// Whether a mempool transaction can still be mined in the next block: inputs present,
    /// coinbase spends mature, final, BIP68-final (Core's `removeForReorg` filter).
    fn still_valid(&self, tx: &Transaction) -> bool {
        let tip = self.tree.tip_node();
        let next = tip.height + 1;
        if !super::policy::is_final(tx, next, tip.median_time) {
            return false;
        }
        let mut heights = Vec::with_capacity(tx.input.len());
        for input in &tx.input {
            if self.mempool.output(&input.previous_output).is_some() {
                heights.push(next);
                continue;
            }
            match self.coins.get(&input.previous_output) {
                Some(coin)
                    if coin.coinbase && next - coin.height < super::policy::COINBASE_MATURITY =>
                {
                    return false;
                }
                Some(coin) => heights.push(coin.height),
                None => return false,
            }
        }
        let mtp_at = |h: u32| self.mtp_at(h);
        let locks = validation::sequence_locks(tx, &heights, &mtp_at);
        validation::sequence_locks_met(locks, next, tip.median_time)
    }

    /// Core's `InvalidateBlock`: mark the block failed, disconnect it and its descendants from
    /// the active chain (their transactions go back to the mempool), then activate the best
    /// remaining chain.
    pub fn invalidate(&mut self, idx: usize) -> Result<(), NodeError> {
        if self.tree.node(idx).parent.is_none() {
            // The genesis block cannot be disconnected.
            return Ok(());
        }
        let hash = self.tree.node(idx).hash;
        let was_active = self.tree.is_active(idx);
        let mut disconnected: Vec<Vec<Transaction>> = Vec::new();
        if was_active {
            while self.tree.is_active(idx) {
                disconnected.push(self.disconnect_tip()?);
            }
        }
        self.tree.set_failed(idx);
        self.store.append_flag(FlagOp::Failed, &hash)?;
        if !disconnected.is_empty() {
            let pool: Vec<Transaction> = disconnected.into_iter().rev().flatten().collect();
            self.update_mempool_for_reorg(pool);
        }
        self.activate_best_chain()
    }

    /// Core's `ReconsiderBlock`: clear the failure flags of the block, its ancestors and
    /// descendants, then activate the best chain.
    pub fn reconsider(&mut self, idx: usize) -> Result<(), NodeError> {
        let hash = self.tree.node(idx).hash;
        self.tree.clear_failed(idx);
        self.fail_reasons.retain(|i, _| self.tree.node(*i).failed);
        self.store.append_flag(FlagOp::Reconsider, &hash)?;
        self.activate_best_chain()
    }
}

/// Applies one record of the block-flag log to `idx`.
fn apply_flag(tree: &mut BlockTree, op: FlagOp, idx: usize) {
    match op {
        FlagOp::Failed => tree.set_failed(idx),
        FlagOp::Reconsider => tree.clear_failed(idx),
        FlagOp::Validated => tree.node_mut(idx).validated = true,
    }
}
