//! Block validation as Bitcoin Core does it on regtest: `CheckBlock` (context-free),
//! `ContextualCheckBlockHeader`/`ContextualCheckBlock` (needs the parent), and the input checks of
//! `ConnectBlock` (needs the UTXO set). Scripts are not executed (a documented simplification).

use std::collections::{HashMap, HashSet};

use bitcoin::blockdata::script::Builder;
use bitcoin::{Amount, Block, CompactTarget, OutPoint, Transaction};

use super::coins::{BlockUndo, Coin, CoinsView};
use super::policy::{self, COINBASE_MATURITY, MAX_BLOCK_WEIGHT, MAX_MONEY};

/// Regtest's fixed difficulty (`powLimit`, no retargeting).
pub(crate) const REGTEST_BITS: u32 = 0x207f_ffff;
/// Core's `MAX_FUTURE_BLOCK_TIME` (seconds).
const MAX_FUTURE_BLOCK_TIME: u32 = 2 * 60 * 60;
/// BIP68 flags.
const SEQUENCE_DISABLE_FLAG: u32 = 1 << 31;
const SEQUENCE_TYPE_FLAG: u32 = 1 << 22;
const SEQUENCE_MASK: u32 = 0x0000_ffff;
const SEQUENCE_GRANULARITY: u32 = 9;

/// Why a block (or a transaction inside it) is invalid: Core's `BlockValidationState` reject
/// reason and debug message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BlockReject {
    pub reason: String,
    pub debug: String,
    /// The block is valid but must not be stored yet/at all (Core: not marked failed).
    pub mutated: bool,
}

impl BlockReject {
    fn new(reason: &str, debug: impl Into<String>) -> BlockReject {
        BlockReject {
            reason: reason.to_string(),
            debug: debug.into(),
            mutated: false,
        }
    }

    fn mutated(reason: &str, debug: impl Into<String>) -> BlockReject {
        BlockReject {
            mutated: true,
            ..BlockReject::new(reason, debug)
        }
    }

    /// Core's `ValidationState::ToString`: "reason, debug" (or just the reason).
    pub fn to_core_string(&self) -> String {
        if self.debug.is_empty() {
            self.reason.clone()
        } else {
            format!("{}, {}", self.reason, self.debug)
        }
    }
}

/// Core's `CheckBlock`: proof of work, merkle root, size, coinbase placement, each transaction's
/// `CheckTransaction`.
pub(crate) fn check_block(block: &Block) -> Result<(), BlockReject> {
    if !block.header.target().is_met_by(block.block_hash()) {
        return Err(BlockReject::mutated("high-hash", "proof of work failed"));
    }
    if !block.check_merkle_root() {
        return Err(BlockReject::mutated(
            "bad-txnmrklroot",
            "hashMerkleRoot mismatch",
        ));
    }
    check_block_body(block)
}

/// `CheckBlock` without the proof-of-work and merkle-root checks (as `TestBlockValidity` runs it).
pub(crate) fn check_block_body(block: &Block) -> Result<(), BlockReject> {
    let mut txids = HashSet::new();
    if !block
        .txdata
        .iter()
        .all(|tx| txids.insert(tx.compute_txid()))
    {
        return Err(BlockReject::mutated(
            "bad-txns-duplicate",
            "duplicate transaction",
        ));
    }
    let base_weight = (block.weight().to_wu() as usize - block.total_size()) / 3 * 4;
    if block.txdata.is_empty() || base_weight as u64 > MAX_BLOCK_WEIGHT {
        return Err(BlockReject::new("bad-blk-length", "size limits failed"));
    }
    if !block.txdata[0].is_coinbase() {
        return Err(BlockReject::new(
            "bad-cb-missing",
            "first tx is not coinbase",
        ));
    }
    if block.txdata[1..].iter().any(|tx| tx.is_coinbase()) {
        return Err(BlockReject::new(
            "bad-cb-multiple",
            "more than one coinbase",
        ));
    }
    for tx in &block.txdata {
        if let Err(reason) = policy::check_transaction(tx) {
            let debug = format!("Transaction check failed (tx hash {}) ", tx.compute_txid());
            return Err(BlockReject::new(reason, debug));
        }
    }
    Ok(())
}

/// What the contextual checks need to know about the parent block.
pub(crate) struct ParentInfo {
    pub height: u32,
    pub median_time: u32,
}

/// Core's `ContextualCheckBlockHeader` and `ContextualCheckBlock` for a block on top of `parent`.
/// `now` is the current time (seconds since the epoch).
pub(crate) fn contextual_check(
    block: &Block,
    parent: &ParentInfo,
    now: u32,
) -> Result<(), BlockReject> {
    let header = &block.header;
    let height = parent.height + 1;
    if header.bits != CompactTarget::from_consensus(REGTEST_BITS) {
        return Err(BlockReject::new("bad-diffbits", "incorrect proof of work"));
    }
    if header.time <= parent.median_time {
        return Err(BlockReject::new(
            "time-too-old",
            "block's timestamp is too early",
        ));
    }
    if header.time > now.saturating_add(MAX_FUTURE_BLOCK_TIME) {
        return Err(BlockReject::mutated(
            "time-too-new",
            "block timestamp too far in the future",
        ));
    }
    if header.version.to_consensus() < 4 {
        let v = header.version.to_consensus() as u32;
        return Err(BlockReject::new(
            &format!("bad-version(0x{v:08x})"),
            format!("rejected nVersion=0x{v:08x} block"),
        ));
    }
    for tx in &block.txdata {
        if !policy::is_final(tx, height, parent.median_time) {
            return Err(BlockReject::new(
                "bad-txns-nonfinal",
                "non-final transaction",
            ));
        }
    }
    let expect = Builder::new().push_int(i64::from(height)).into_script();
    let script_sig = block
        .txdata
        .first()
        .and_then(|cb| cb.input.first())
        .map(|i| i.script_sig.as_bytes());
    if !script_sig.is_some_and(|s| s.starts_with(expect.as_bytes())) {
        return Err(BlockReject::new(
            "bad-cb-height",
            "block height mismatch in coinbase",
        ));
    }
    check_witness_commitment(block)?;
    if block.weight().to_wu() > MAX_BLOCK_WEIGHT {
        return Err(BlockReject::new(
            "bad-blk-weight",
            "ContextualCheckBlock : weight limit failed",
        ));
    }
    Ok(())
}

/// BIP141's commitment rules (Core's `CheckWitnessMalleation`).
fn check_witness_commitment(block: &Block) -> Result<(), BlockReject> {
    let coinbase = &block.txdata[0];
    let has_commitment = coinbase.output.iter().any(|o| {
        let b = o.script_pubkey.as_bytes();
        b.len() >= 38 && b[..6] == [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]
    });
    if has_commitment {
        let w = &coinbase.input[0].witness;
        if w.len() != 1 || w.nth(0).map(<[u8]>::len) != Some(32) {
            return Err(BlockReject::mutated(
                "bad-witness-nonce-size",
                "CheckWitnessMalleation : invalid witness reserved value size",
            ));
        }
        if !block.check_witness_commitment() {
            return Err(BlockReject::mutated(
                "bad-witness-merkle-match",
                "CheckWitnessMalleation : witness merkle commitment mismatch",
            ));
        }
        return Ok(());
    }
    if block
        .txdata
        .iter()
        .any(|tx| tx.input.iter().any(|i| !i.witness.is_empty()))
    {
        return Err(BlockReject::mutated(
            "unexpected-witness",
            "CheckWitnessMalleation : unexpected witness data found",
        ));
    }
    Ok(())
}

/// BIP68 relative lock-time bounds of `tx`, given the heights of the coins it spends and the
/// median time past of active-chain blocks by height (Core's `CalculateSequenceLocks`).
/// Returns (minimum height, minimum time); -1 means unconstrained.
pub(crate) fn sequence_locks(
    tx: &Transaction,
    coin_heights: &[u32],
    mtp_at: &dyn Fn(u32) -> u32,
) -> (i64, i64) {
    let mut min_height: i64 = -1;
    let mut min_time: i64 = -1;
    if tx.version.0 < 2 {
        return (min_height, min_time);
    }
    for (input, &coin_height) in tx.input.iter().zip(coin_heights) {
        let seq = input.sequence.0;
        if seq & SEQUENCE_DISABLE_FLAG != 0 {
            continue;
        }
        let value = i64::from(seq & SEQUENCE_MASK);
        if seq & SEQUENCE_TYPE_FLAG != 0 {
            let coin_time = i64::from(mtp_at(coin_height.saturating_sub(1)));
            min_time = min_time.max(coin_time + (value << SEQUENCE_GRANULARITY) - 1);
        } else {
            min_height = min_height.max(i64::from(coin_height) + value - 1);
        }
    }
    (min_height, min_time)
}

/// Core's `EvaluateSequenceLocks` for a block at `height` whose parent has median time `prev_mtp`.
pub(crate) fn sequence_locks_met(locks: (i64, i64), height: u32, prev_mtp: u32) -> bool {
    locks.0 < i64::from(height) && locks.1 < i64::from(prev_mtp)
}

/// The UTXO set as seen while connecting one block: coins created and spent by its earlier
/// transactions on top of the active chain's set.
struct BlockView<'a> {
    coins: &'a CoinsView,
    created: HashMap<OutPoint, Coin>,
    spent: HashSet<OutPoint>,
    undo: BlockUndo,
}

impl BlockView<'_> {
    /// Core's `Consensus::CheckTxInputs` for `tx` in a block at `height`: every input exists
    /// and is unspent, coinbase spends are mature, values are in range. Returns the input total
    /// (satoshis) and the heights of the spent coins; records spent pre-existing coins as undo.
    fn spend_inputs(
        &mut self,
        tx: &Transaction,
        height: u32,
    ) -> Result<(u64, Vec<u32>), BlockReject> {
        let mut value_in: u64 = 0;
        let mut heights = Vec::with_capacity(tx.input.len());
        for input in &tx.input {
            let op = input.previous_output;
            let from_block = self.created.get(&op);
            let coin = if self.spent.contains(&op) {
                None
            } else {
                from_block.or_else(|| self.coins.get(&op))
            };
            let Some(coin) = coin else {
                let reject = BlockReject::new(
                    "bad-txns-inputs-missingorspent",
                    "CheckTxInputs: inputs missing/spent",
                );
                return Err(in_tx(reject, tx));
            };
            if coin.coinbase && height - coin.height < COINBASE_MATURITY {
                let debug = format!("tried to spend coinbase at depth {}", height - coin.height);
                return Err(in_tx(
                    BlockReject::new("bad-txns-premature-spend-of-coinbase", debug),
                    tx,
                ));
            }
            value_in += coin.txout.value.to_sat();
            if coin.txout.value.to_sat() > MAX_MONEY || value_in > MAX_MONEY {
                return Err(in_tx(
                    BlockReject::new("bad-txns-inputvalues-outofrange", ""),
                    tx,
                ));
            }
            heights.push(coin.height);
            if from_block.is_none() {
                self.undo.spent.push((op, coin.clone()));
            }
        }
        for input in &tx.input {
            self.spent.insert(input.previous_output);
        }
        Ok((value_in, heights))
    }

    fn add_outputs(&mut self, tx: &Transaction, height: u32, coinbase: bool) {
        let txid = tx.compute_txid();
        for (vout, txout) in tx.output.iter().enumerate() {
            let coin = Coin {
                txout: txout.clone(),
                height,
                coinbase,
            };
            self.created.insert(
                OutPoint {
                    txid,
                    vout: vout as u32,
                },
                coin,
            );
        }
    }
}

/// The input checks of Core's `ConnectBlock` for a block at `height` on top of the active tip:
/// inputs exist and are unspent, coinbase maturity, value ranges, BIP68, and the coinbase not
/// paying more than subsidy plus fees. Returns the coins it spends (the undo data) and the fees.
pub(crate) fn connect_inputs(
    block: &Block,
    height: u32,
    prev_mtp: u32,
    coins: &CoinsView,
    mtp_at: &dyn Fn(u32) -> u32,
) -> Result<(BlockUndo, Amount), BlockReject> {
    let mut view = BlockView {
        coins,
        created: HashMap::new(),
        spent: HashSet::new(),
        undo: BlockUndo::default(),
    };
    let mut fees: u64 = 0;
    for (i, tx) in block.txdata.iter().enumerate() {
        if i > 0 {
            let (value_in, heights) = view.spend_inputs(tx, height)?;
            let value_out = policy::value_out(tx).to_sat();
            if value_in < value_out {
                let debug = format!(
                    "value in ({}) < value out ({})",
                    policy::format_money(value_in as i64),
                    policy::format_money(value_out as i64)
                );
                return Err(in_tx(BlockReject::new("bad-txns-in-belowout", debug), tx));
            }
            if !sequence_locks_met(sequence_locks(tx, &heights, mtp_at), height, prev_mtp) {
                return Err(BlockReject::new(
                    "bad-txns-nonfinal",
                    "contains a non-BIP68-final transaction",
                ));
            }
            fees += value_in - value_out;
        }
        view.add_outputs(tx, height, i == 0);
    }
    let limit = super::mining::subsidy(height).to_sat() + fees;
    let paid = policy::value_out(&block.txdata[0]).to_sat();
    if paid > limit {
        let debug = format!("coinbase pays too much (actual={paid} vs limit={limit})");
        return Err(BlockReject::new("bad-cb-amount", debug));
    }
    Ok((view.undo, Amount::from_sat(fees)))
}

fn in_tx(mut reject: BlockReject, tx: &Transaction) -> BlockReject {
    reject.debug = format!("{} in transaction {}", reject.debug, tx.compute_txid());
    reject
}
