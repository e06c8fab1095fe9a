//! A scripted bitcoind for unit tests: a block tree of headers with Bitcoin Core's chain rules as far as
//! the tower sees them (most work is active, stale headers stay known, invalidated branches are reported
//! by `getchaintips`), per-transaction `sendrawtransaction` answers, a mempool of txids with its
//! sequence number (`getrawmempool false true`) and scripted `submitpackage` answers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash, CompactTarget, Transaction, TxMerkleNode, Txid, Work};

use super::{
    BitcoindRpc, ChainInfo, ChainTip, HeaderInfo, MempoolSnapshot, PackageAnswer, RpcError,
    ZmqNotification, codes,
};

struct Entry {
    header: Header,
    height: u32,
    chainwork: Work,
}

#[derive(Default)]
struct State {
    blocks: HashMap<BlockHash, Entry>,
    /// The active chain, genesis first.
    active: Vec<BlockHash>,
    /// Blocks bitcoind does not know (as after -reindex, or another node): unknown to every call.
    hidden: HashSet<BlockHash>,
    invalid: HashSet<BlockHash>,
    nonce: u32,
    /// Scripted answers of `sendrawtransaction`, per txid, used in order; then "accepted".
    sends: HashMap<Txid, VecDeque<Result<Txid, RpcError>>>,
    /// Every txid sent, in order.
    sent: Vec<Txid>,
    txs: HashMap<Txid, Transaction>,
    /// What `getrawmempool false true` answers.
    mempool: Vec<Txid>,
    /// Its `mempool_sequence`.
    mempool_sequence: u64,
    /// Scripted answers of `submitpackage`, used in order; then "success".
    packages: VecDeque<Result<PackageAnswer, RpcError>>,
    /// Every package submitted (its txids), in order.
    submitted: Vec<Vec<Txid>>,
    /// Calls of `getrawmempool false true`.
    snapshots: u64,
}

/// The scripted bitcoind (see the module docs).
pub struct FakeBitcoind(Mutex<State>);

impl FakeBitcoind {
    /// A chain with a genesis block and `blocks` more.
    pub fn new(blocks: u32) -> FakeBitcoind {
        let fake = FakeBitcoind(Mutex::new(State::default()));
        {
            let mut s = fake.state();
            let genesis = s.header(BlockHash::all_zeros());
            let hash = genesis.block_hash();
            s.blocks.insert(
                hash,
                Entry {
                    header: genesis,
                    height: 0,
                    chainwork: genesis.work(),
                },
            );
            s.active.push(hash);
        }
        fake.mine(blocks);
        fake
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Mines `n` blocks on the active tip; returns their hashes.
    pub fn mine(&self, n: u32) -> Vec<BlockHash> {
        let tip = self.tip();
        self.branch(tip, n)
    }

    /// Mines `n` blocks on top of `parent`; the branch becomes active if it has more work.
    pub fn branch(&self, parent: BlockHash, n: u32) -> Vec<BlockHash> {
        let mut s = self.state();
        let mut hashes = Vec::new();
        let mut parent = parent;
        for _ in 0..n {
            let header = s.header(parent);
            let (height, work) = {
                let p = &s.blocks[&parent];
                (p.height + 1, p.chainwork + header.work())
            };
            let hash = header.block_hash();
            s.blocks.insert(
                hash,
                Entry {
                    header,
                    height,
                    chainwork: work,
                },
            );
            hashes.push(hash);
            parent = hash;
        }
        s.activate_best();
        hashes
    }

    /// `invalidateblock`: the block and its descendants are invalid; the best valid chain becomes
    /// active (possibly with less work).
    pub fn invalidate(&self, hash: BlockHash) {
        let mut s = self.state();
        s.invalid.insert(hash);
        s.activate_best();
    }

    /// Forgets every block above `height` of the active chain (as a node restarted with -reindex that
    /// has not got there yet): they are unknown until [`FakeBitcoind::reveal`].
    pub fn hide_above(&self, height: u32) {
        let mut s = self.state();
        let hidden: Vec<BlockHash> = s.active.drain(height as usize + 1..).collect();
        s.hidden.extend(hidden);
    }

    /// Forgets `hashes` for good (a node that never saw them).
    pub fn forget(&self, hashes: &[BlockHash]) {
        let mut s = self.state();
        s.hidden.extend(hashes.iter().copied());
        s.activate_best();
    }

    /// Makes hidden blocks known again.
    pub fn reveal(&self) {
        let mut s = self.state();
        s.hidden.clear();
        s.activate_best();
    }

    /// The active tip.
    pub fn tip(&self) -> BlockHash {
        *self.state().active.last().expect("genesis")
    }

    /// The active block at `height`.
    pub fn at(&self, height: u32) -> BlockHash {
        self.state().active[height as usize]
    }

    /// The chainwork of block `hash`.
    pub fn work(&self, hash: &BlockHash) -> Work {
        self.state().blocks[hash].chainwork
    }

    /// The next answers of `sendrawtransaction` for `txid`, in order.
    pub fn script_send(&self, txid: Txid, answers: Vec<Result<Txid, RpcError>>) {
        self.state().sends.entry(txid).or_default().extend(answers);
    }

    /// Every txid sent so far, in order.
    pub fn sent(&self) -> Vec<Txid> {
        self.state().sent.clone()
    }

    /// Makes `tx` available to `getrawtransaction`.
    pub fn add_tx(&self, tx: Transaction) {
        self.state().txs.insert(tx.compute_txid(), tx);
    }

    /// Sets what `getrawmempool false true` answers.
    pub fn set_mempool(&self, txids: Vec<Txid>, sequence: u64) {
        let mut s = self.state();
        s.mempool = txids;
        s.mempool_sequence = sequence;
    }

    /// The next answers of `submitpackage`, in order.
    pub fn script_package(&self, answers: Vec<Result<PackageAnswer, RpcError>>) {
        self.state().packages.extend(answers);
    }

    /// Every package submitted so far (its txids), in order.
    pub fn packages(&self) -> Vec<Vec<Txid>> {
        self.state().submitted.clone()
    }

    /// How many times `getrawmempool false true` was called.
    pub fn snapshots(&self) -> u64 {
        self.state().snapshots
    }
}

impl State {
    fn header(&mut self, parent: BlockHash) -> Header {
        self.nonce += 1;
        Header {
            version: Version::TWO,
            prev_blockhash: parent,
            merkle_root: TxMerkleNode::all_zeros(),
            time: 1_700_000_000 + self.nonce,
            bits: CompactTarget::from_consensus(0x207f_ffff),
            nonce: self.nonce,
        }
    }

    fn is_invalid(&self, mut hash: BlockHash) -> bool {
        loop {
            if self.invalid.contains(&hash) {
                return true;
            }
            match self.blocks.get(&hash) {
                Some(e) if e.height > 0 => hash = e.header.prev_blockhash,
                _ => return false,
            }
        }
    }

    fn known(&self, hash: &BlockHash) -> Option<&Entry> {
        (!self.hidden.contains(hash))
            .then(|| self.blocks.get(hash))
            .flatten()
    }

    /// Makes the valid known chain with the most work active (first seen wins a tie, as in Core).
    fn activate_best(&mut self) {
        let current = *self.active.last().expect("genesis");
        let mut best = current;
        if self.is_invalid(best) || self.hidden.contains(&best) {
            best = self.active[0];
        }
        let mut candidates: Vec<BlockHash> = self.blocks.keys().copied().collect();
        candidates.sort_by_key(|h| self.blocks[h].header.nonce);
        for hash in candidates {
            if self.hidden.contains(&hash) || self.is_invalid(hash) {
                continue;
            }
            if self.blocks[&hash].chainwork > self.blocks[&best].chainwork {
                best = hash;
            }
        }
        let mut chain = vec![best];
        while self.blocks[chain.last().expect("non-empty")].height > 0 {
            let prev = self.blocks[chain.last().expect("non-empty")]
                .header
                .prev_blockhash;
            chain.push(prev);
        }
        chain.reverse();
        self.active = chain;
    }
}

fn not_found() -> RpcError {
    RpcError::Rpc {
        code: codes::INVALID_ADDRESS_OR_KEY,
        message: "Block not found".into(),
    }
}

impl BitcoindRpc for FakeBitcoind {
    fn chain_info(&self) -> Result<ChainInfo, RpcError> {
        let s = self.state();
        let tip = *s.active.last().expect("genesis");
        let height = s.blocks[&tip].height;
        Ok(ChainInfo {
            chain: "regtest".into(),
            blocks: height,
            headers: height,
            best_block_hash: tip,
            initial_block_download: false,
            pruned: false,
            prune_height: None,
        })
    }

    fn best_block_hash(&self) -> Result<BlockHash, RpcError> {
        Ok(self.tip())
    }

    fn block_hash(&self, height: u32) -> Result<BlockHash, RpcError> {
        self.state()
            .active
            .get(height as usize)
            .copied()
            .ok_or(RpcError::Rpc {
                code: codes::INVALID_PARAMETER,
                message: "Block height out of range".into(),
            })
    }

    fn block_header(&self, hash: &BlockHash) -> Result<HeaderInfo, RpcError> {
        let s = self.state();
        let entry = s.known(hash).ok_or_else(not_found)?;
        let active_height = s.active.len() as i64 - 1;
        let in_active = s.active.get(entry.height as usize) == Some(hash);
        Ok(HeaderInfo {
            hash: *hash,
            height: entry.height,
            confirmations: if in_active {
                active_height - i64::from(entry.height) + 1
            } else {
                -1
            },
            chainwork: entry.chainwork,
            previous: (entry.height > 0).then_some(entry.header.prev_blockhash),
            time: entry.header.time,
        })
    }

    fn chain_tips(&self) -> Result<Vec<ChainTip>, RpcError> {
        let s = self.state();
        let parents: HashSet<BlockHash> =
            s.blocks.values().map(|e| e.header.prev_blockhash).collect();
        let mut tips = Vec::new();
        for (hash, entry) in &s.blocks {
            if parents.contains(hash) || s.hidden.contains(hash) {
                continue;
            }
            let mut branch_len = 0;
            let mut cursor = *hash;
            while s.active.get(s.blocks[&cursor].height as usize) != Some(&cursor) {
                branch_len += 1;
                cursor = s.blocks[&cursor].header.prev_blockhash;
            }
            let status = if branch_len == 0 {
                "active"
            } else if s.is_invalid(*hash) {
                "invalid"
            } else {
                "valid-fork"
            };
            tips.push(ChainTip {
                height: entry.height,
                hash: *hash,
                branch_len,
                status: status.into(),
            });
        }
        Ok(tips)
    }

    fn block(&self, hash: &BlockHash) -> Result<Block, RpcError> {
        let s = self.state();
        let entry = s.known(hash).ok_or_else(not_found)?;
        Ok(Block {
            header: entry.header,
            txdata: Vec::new(),
        })
    }

    fn send_raw_transaction(&self, tx: &Transaction) -> Result<Txid, RpcError> {
        let txid = tx.compute_txid();
        let mut s = self.state();
        s.sent.push(txid);
        s.sends
            .get_mut(&txid)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Ok(txid))
    }

    fn raw_transaction(
        &self,
        txid: &Txid,
        _block: Option<&BlockHash>,
    ) -> Result<Transaction, RpcError> {
        self.state().txs.get(txid).cloned().ok_or(RpcError::Rpc {
            code: codes::INVALID_ADDRESS_OR_KEY,
            message: "No such mempool or blockchain transaction".into(),
        })
    }

    fn zmq_notifications(&self) -> Result<Vec<ZmqNotification>, RpcError> {
        Ok(Vec::new())
    }

    fn mempool_snapshot(&self) -> Result<MempoolSnapshot, RpcError> {
        let mut s = self.state();
        s.snapshots += 1;
        Ok(MempoolSnapshot {
            txids: s.mempool.clone(),
            sequence: s.mempool_sequence,
        })
    }

    fn submit_package(&self, txs: &[Transaction]) -> Result<PackageAnswer, RpcError> {
        let mut s = self.state();
        s.submitted
            .push(txs.iter().map(Transaction::compute_txid).collect());
        s.packages.pop_front().unwrap_or(Ok(PackageAnswer {
            message: "success".into(),
            errors: Vec::new(),
        }))
    }
}
