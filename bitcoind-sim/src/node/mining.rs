//! Block templates as Bitcoin Core's `BlockAssembler` builds them on regtest, and the nonce
//! grinding of `generatetoaddress`/`generateblock` (real proof of work against `bits` 0x207fffff).

use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::blockdata::script::Builder;
use bitcoin::hashes::Hash;
use bitcoin::locktime::absolute::LockTime;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, Block, BlockHash, CompactTarget, OutPoint, ScriptBuf, Sequence, Transaction, TxIn,
    TxMerkleNode, TxOut, Witness,
};

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};

use bitcoin::Txid;

use super::mempool::Mempool;
use super::policy::MAX_BLOCK_WEIGHT;
use super::validation::REGTEST_BITS;

/// Weight kept free for the coinbase (Core's default `-blockreservedweight` is larger; this only
/// matters for full blocks).
const COINBASE_RESERVED_WEIGHT: u64 = 8_000;

/// Regtest's `nSubsidyHalvingInterval` (blocks).
const HALVING_INTERVAL: u32 = 150;
/// Version of mined blocks: BIP9 top bits and no signalled deployment.
const BLOCK_VERSION: i32 = 0x2000_0000;
/// The witness reserved value Core puts in the coinbase witness.
const WITNESS_RESERVED_VALUE: [u8; 32] = [0; 32];

/// Block reward at `height`: 50 BTC halving every 150 blocks on regtest (Core's `GetBlockSubsidy`).
pub(crate) fn subsidy(height: u32) -> Amount {
    let halvings = height / HALVING_INTERVAL;
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_sat((50 * 100_000_000u64) >> halvings)
}

/// The coinbase Core's miner builds for `height`: scriptSig = BIP34 height push (padded with OP_0
/// to 2 bytes), sequence 0xfffffffe, lock time height - 1, one 32-byte zero witness item, and
/// `value` paid to `script` (the witness commitment output is added by [`assemble`]).
pub(crate) fn coinbase(height: u32, script: &ScriptBuf, value: Amount) -> Transaction {
    let mut script_sig = Builder::new().push_int(i64::from(height)).into_script();
    if script_sig.len() < 2 {
        script_sig = Builder::new()
            .push_int(i64::from(height))
            .push_opcode(bitcoin::opcodes::OP_0)
            .into_script();
    }
    let mut witness = Witness::new();
    witness.push(WITNESS_RESERVED_VALUE);
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::from_consensus(height.saturating_sub(1)),
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig,
            sequence: Sequence::ENABLE_LOCKTIME_NO_RBF,
            witness,
        }],
        output: vec![TxOut {
            value,
            script_pubkey: script.clone(),
        }],
    }
}

/// A block on `prev` at `height` with `coinbase` followed by `txs`, the BIP141 witness
/// commitment appended to the coinbase outputs, the merkle root set, and nonce 0.
pub(crate) fn assemble(
    prev: BlockHash,
    time: u32,
    mut coinbase: Transaction,
    txs: Vec<Transaction>,
) -> Block {
    let header = Header {
        version: BlockVersion::from_consensus(BLOCK_VERSION),
        prev_blockhash: prev,
        merkle_root: TxMerkleNode::all_zeros(),
        time,
        bits: CompactTarget::from_consensus(REGTEST_BITS),
        nonce: 0,
    };
    let mut txdata = Vec::with_capacity(txs.len() + 1);
    txdata.push(coinbase.clone());
    txdata.extend(txs);
    let mut block = Block { header, txdata };
    if let Some(root) = block.witness_root() {
        let commitment = Block::compute_witness_commitment(&root, &WITNESS_RESERVED_VALUE);
        let mut script = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
        script.extend_from_slice(commitment.as_byte_array());
        coinbase.output.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: ScriptBuf::from_bytes(script),
        });
        block.txdata[0] = coinbase;
    }
    if let Some(root) = block.compute_merkle_root() {
        block.header.merkle_root = root;
    }
    block
}

/// Increments the nonce from its current value until the header hash meets its target, like
/// Core's `GenerateBlock`. Returns false if the nonce space ran out (practically never on regtest).
pub(crate) fn grind(block: &mut Block) -> bool {
    let target = block.header.target();
    loop {
        if target.is_met_by(block.header.block_hash()) {
            return true;
        }
        if block.header.nonce == u32::MAX {
            return false;
        }
        block.header.nonce += 1;
    }
}

/// A mempool transaction's package (itself and its not yet selected ancestors) as a heap key:
/// higher feerate first, then the smaller txid.
#[derive(PartialEq, Eq)]
struct Candidate {
    fee: u64,
    vsize: u64,
    txid: Txid,
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        let a = u128::from(self.fee) * u128::from(other.vsize);
        let b = u128::from(other.fee) * u128::from(self.vsize);
        a.cmp(&b).then_with(|| other.txid.cmp(&self.txid))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Chooses mempool transactions for a block like Core's `addPackageTxs`: best ancestor-package
/// feerate first, ancestors before descendants, within the block weight limit. Deterministic
/// for a given mempool content.
pub(crate) fn select_transactions(pool: &Mempool) -> Vec<Txid> {
    let max_weight = MAX_BLOCK_WEIGHT - COINBASE_RESERVED_WEIGHT;
    let package = |txid: &Txid, included: &HashSet<Txid>| -> Vec<Txid> {
        let mut set: HashSet<Txid> = pool
            .ancestors(txid)
            .into_iter()
            .filter(|t| !included.contains(t))
            .collect();
        set.insert(*txid);
        pool.topological(set)
    };
    let score = |txids: &[Txid]| -> (u64, u64) {
        txids
            .iter()
            .filter_map(|t| pool.get(t))
            .fold((0, 0), |(f, s), e| (f + e.fee.to_sat(), s + e.vsize))
    };
    let mut heap = BinaryHeap::new();
    for e in pool.ordered() {
        let (fee, vsize) = score(&package(&e.txid, &HashSet::new()));
        heap.push(Candidate {
            fee,
            vsize,
            txid: e.txid,
        });
    }
    let mut included: HashSet<Txid> = HashSet::new();
    let mut out = Vec::new();
    let mut weight = 0u64;
    while let Some(c) = heap.pop() {
        if included.contains(&c.txid) {
            continue;
        }
        let pkg = package(&c.txid, &included);
        let (fee, vsize) = score(&pkg);
        if (fee, vsize) != (c.fee, c.vsize) {
            heap.push(Candidate {
                fee,
                vsize,
                txid: c.txid,
            });
            continue;
        }
        let pkg_weight: u64 = pkg
            .iter()
            .filter_map(|t| pool.get(t))
            .map(|e| e.weight)
            .sum();
        if weight + pkg_weight > max_weight {
            continue;
        }
        weight += pkg_weight;
        for t in pkg {
            if included.insert(t) {
                out.push(t);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coinbase_script_sig_matches_core() {
        let script = ScriptBuf::new();
        let sig = |h| {
            coinbase(h, &script, Amount::ZERO).input[0]
                .script_sig
                .to_hex_string()
        };
        assert_eq!(sig(1), "5100");
        assert_eq!(sig(16), "6000");
        assert_eq!(sig(17), "0111");
        assert_eq!(sig(110), "016e");
        assert_eq!(sig(128), "028000");
    }

    #[test]
    fn subsidy_halves_every_150_blocks() {
        assert_eq!(subsidy(149), Amount::from_btc(50.0).unwrap());
        assert_eq!(subsidy(150), Amount::from_btc(25.0).unwrap());
        assert_eq!(subsidy(150 * 64), Amount::ZERO);
    }
}
