//! Context-free transaction rules: Bitcoin Core's consensus `CheckTransaction`, its standardness
//! policy (`IsStandardTx`, dust), lock-time finality, and its money/fee formatting helpers.

use bitcoin::{Amount, Transaction, TxOut};

/// Core's `MAX_MONEY` (satoshis).
pub(crate) const MAX_MONEY: u64 = 21_000_000 * 100_000_000;
/// `-minrelaytxfee` default of Core v30+ (satoshis per 1000 vbytes): 0.000001 BTC/kvB.
pub(crate) const MIN_RELAY_FEE_PER_KVB: u64 = 100;
/// `-incrementalrelayfee` default (satoshis per 1000 vbytes).
pub(crate) const INCREMENTAL_RELAY_FEE_PER_KVB: u64 = 100;
/// `-dustrelayfee` default (satoshis per 1000 vbytes).
pub(crate) const DUST_RELAY_FEE_PER_KVB: u64 = 3000;
/// Default `maxfeerate` of `sendrawtransaction`/`testmempoolaccept`: 0.10 BTC/kvB in sat/kvB.
pub(crate) const DEFAULT_MAX_FEE_PER_KVB: u64 = 10_000_000;
/// Coinbase outputs can be spent this many blocks after their own (Core's `COINBASE_MATURITY`).
pub(crate) const COINBASE_MATURITY: u32 = 100;
/// Core's `MAX_STANDARD_TX_WEIGHT` (weight units).
const MAX_STANDARD_TX_WEIGHT: u64 = 400_000;
/// Core's `MAX_BLOCK_WEIGHT` (weight units).
pub(crate) const MAX_BLOCK_WEIGHT: u64 = 4_000_000;
/// Core's `MIN_STANDARD_TX_NONWITNESS_SIZE` (bytes).
const MIN_STANDARD_TX_NONWITNESS_SIZE: usize = 65;
/// Core's `MAX_STANDARD_SCRIPTSIG_SIZE` (bytes).
const MAX_STANDARD_SCRIPTSIG_SIZE: usize = 1650;
/// Core v30's `-datacarriersize` default: bytes of OP_RETURN scripts per transaction.
const MAX_DATACARRIER_BYTES: usize = 100_000;
/// Lock times below this are block heights, above are Unix times (Core's `LOCKTIME_THRESHOLD`).
pub(crate) const LOCKTIME_THRESHOLD: u32 = 500_000_000;

/// Formats satoshis as Core's `FormatMoney`: BTC with trailing zeros trimmed but at least two
/// decimals ("0.001", "1.00", "0.00").
pub(crate) fn format_money(sat: i64) -> String {
    let abs = sat.unsigned_abs();
    let sign = if sat < 0 { "-" } else { "" };
    let mut s = format!("{sign}{}.{:08}", abs / 100_000_000, abs % 100_000_000);
    while s.ends_with('0') && s.as_bytes()[s.len() - 3].is_ascii_digit() {
        s.pop();
    }
    s
}

/// Core's `CFeeRate::GetFee`: the fee (satoshis) for `vsize` vbytes at `per_kvb` satoshis per
/// 1000 vbytes, rounded up, and at least 1 satoshi for a non-zero rate and size.
pub(crate) fn fee_at(per_kvb: u64, vsize: u64) -> u64 {
    let fee = (per_kvb as u128 * vsize as u128).div_ceil(1000) as u64;
    if fee == 0 && per_kvb > 0 && vsize > 0 {
        1
    } else {
        fee
    }
}

/// Core's `GetDustThreshold` at the default dust relay fee (satoshis): the value below which
/// spending the output would cost more than it is worth. 294 for P2WPKH, 330 for P2WSH/P2TR,
/// 546 for P2PKH; 0 for unspendable outputs.
pub(crate) fn dust_threshold(txout: &TxOut) -> u64 {
    let script = &txout.script_pubkey;
    if script.is_op_return() || script.len() > 10_000 {
        return 0;
    }
    let mut size = txout.size() as u64;
    size += if script.is_witness_program() {
        32 + 4 + 1 + 107 / 4 + 4
    } else {
        32 + 4 + 1 + 107 + 4
    };
    fee_at(DUST_RELAY_FEE_PER_KVB, size)
}

/// Core's consensus `CheckTransaction`; returns the reject reason.
pub(crate) fn check_transaction(tx: &Transaction) -> Result<(), &'static str> {
    if tx.input.is_empty() {
        return Err("bad-txns-vin-empty");
    }
    if tx.output.is_empty() {
        return Err("bad-txns-vout-empty");
    }
    if tx.base_size() * 4 > MAX_BLOCK_WEIGHT as usize {
        return Err("bad-txns-oversize");
    }
    let mut total: u64 = 0;
    for out in &tx.output {
        let value = out.value.to_sat();
        if value > i64::MAX as u64 {
            return Err("bad-txns-vout-negative");
        }
        if value > MAX_MONEY {
            return Err("bad-txns-vout-toolarge");
        }
        total += value;
        if total > MAX_MONEY {
            return Err("bad-txns-txouttotal-toolarge");
        }
    }
    let mut seen = std::collections::HashSet::with_capacity(tx.input.len());
    if !tx.input.iter().all(|i| seen.insert(i.previous_output)) {
        return Err("bad-txns-inputs-duplicate");
    }
    if tx.is_coinbase() {
        let len = tx.input[0].script_sig.len();
        if !(2..=100).contains(&len) {
            return Err("bad-cb-length");
        }
    } else if tx.input.iter().any(|i| i.previous_output.is_null()) {
        return Err("bad-txns-prevout-null");
    }
    Ok(())
}

/// Core's `IsStandardTx` (v30 defaults) minus the dust-count rule's single allowed output, which
/// [`dust_outputs`] reports; returns the reject reason.
pub(crate) fn check_standard(tx: &Transaction) -> Result<(), &'static str> {
    if !(1..=3).contains(&tx.version.0) {
        return Err("version");
    }
    if tx.weight().to_wu() > MAX_STANDARD_TX_WEIGHT {
        return Err("tx-size");
    }
    for input in &tx.input {
        if input.script_sig.len() > MAX_STANDARD_SCRIPTSIG_SIZE {
            return Err("scriptsig-size");
        }
        if !input.script_sig.is_push_only() {
            return Err("scriptsig-not-pushonly");
        }
    }
    let mut datacarrier = 0usize;
    for out in &tx.output {
        let s = &out.script_pubkey;
        if s.is_op_return() {
            if !bitcoin::Script::from_bytes(&s.as_bytes()[1..]).is_push_only() {
                return Err("scriptpubkey");
            }
            datacarrier += s.len();
        } else if !is_standard_script(s) {
            return Err("scriptpubkey");
        }
    }
    if datacarrier > MAX_DATACARRIER_BYTES {
        return Err("datacarrier");
    }
    if dust_outputs(tx) > 1 {
        return Err("dust");
    }
    Ok(())
}

/// Output scripts Core's `Solver` recognises (P2PK, P2PKH, P2SH, bare multisig, segwit v0,
/// taproot, anchors and future witness versions).
fn is_standard_script(s: &bitcoin::Script) -> bool {
    if s.is_p2pk() || s.is_p2pkh() || s.is_p2sh() || s.is_p2wpkh() || s.is_p2wsh() || s.is_p2tr() {
        return true;
    }
    if s.is_multisig() {
        return true;
    }
    match s.witness_version() {
        Some(v) => v.to_num() != 0,
        None => false,
    }
}

/// Number of outputs below their dust threshold.
pub(crate) fn dust_outputs(tx: &Transaction) -> usize {
    tx.output
        .iter()
        .filter(|o| o.value.to_sat() < dust_threshold(o))
        .count()
}

/// Non-witness serialized size is at least 65 bytes (Core's "tx-size-small").
pub(crate) fn is_too_small(tx: &Transaction) -> bool {
    tx.base_size() < MIN_STANDARD_TX_NONWITNESS_SIZE
}

/// Core's `IsFinalTx`: whether `tx` may be in a block at `height` whose previous block has median
/// time past `mtp` (BIP113).
pub(crate) fn is_final(tx: &Transaction, height: u32, mtp: u32) -> bool {
    let lock = tx.lock_time.to_consensus_u32();
    if lock == 0 {
        return true;
    }
    let limit = if lock < LOCKTIME_THRESHOLD {
        height
    } else {
        mtp
    };
    if lock < limit {
        return true;
    }
    tx.input.iter().all(|i| i.sequence.0 == u32::MAX)
}

/// Sum of the outputs' values (callers ran [`check_transaction`], so it cannot overflow).
pub(crate) fn value_out(tx: &Transaction) -> Amount {
    Amount::from_sat(tx.output.iter().map(|o| o.value.to_sat()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_money_trims_like_core() {
        assert_eq!(format_money(10_000), "0.0001");
        assert_eq!(format_money(100_000), "0.001");
        assert_eq!(format_money(100_000_000), "1.00");
        assert_eq!(format_money(0), "0.00");
        assert_eq!(format_money(4_999_997_180), "49.9999718");
    }

    #[test]
    fn fee_rounds_up() {
        assert_eq!(fee_at(100, 110), 11);
        assert_eq!(fee_at(100, 141), 15);
        assert_eq!(fee_at(100, 1), 1);
    }
}
