//! The mempool (Core's `src/rpc/mempool.cpp`): sendrawtransaction, testmempoolaccept,
//! getrawmempool, getmempoolentry, getmempoolinfo.

use std::collections::BTreeMap;

use bitcoin::{Amount, FeeRate, Txid};
use serde::Serialize;
use serde_json::Value;

use super::RpcContext;
use super::envelope::Json;
use super::error::{RPC_DESERIALIZATION_ERROR, RPC_TYPE_ERROR, RPC_VERIFY_ERROR, RpcError};
use super::params::Args;
use super::rawtransaction::{decode_failed, decode_tx};
use crate::json::{btc, mempool_entry_json};

/// Core's minimum relay fee rate since v30: 100 sat/kvB (0.1 sat/vB), in BTC/kvB.
const MIN_RELAY_FEE_BTC_KVB: f64 = 0.000_001;

/// Core's `AmountFromValue`: a JSON number or string of at most 8 decimals, in BTC, to satoshis.
/// -3 "Amount is not a number or string" / "Invalid amount" / "Amount out of range".
pub(super) fn amount_from_value(value: &Value) -> Result<Amount, RpcError> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => {
            return Err(RpcError::new(
                RPC_TYPE_ERROR,
                "Amount is not a number or string",
            ));
        }
    };
    let invalid = || RpcError::new(RPC_TYPE_ERROR, "Invalid amount");
    let btc: f64 = text.trim().parse().map_err(|_| invalid())?;
    let sats = btc * 1e8;
    if !sats.is_finite() || (sats - sats.round()).abs() > 1e-3 {
        return Err(invalid());
    }
    let sats = sats.round();
    if sats < 0.0 || sats > Amount::MAX_MONEY.to_sat() as f64 {
        return Err(RpcError::new(RPC_TYPE_ERROR, "Amount out of range"));
    }
    Ok(Amount::from_sat(sats as u64))
}

/// Core's `ParseFeeRate` for `maxfeerate` (BTC/kvB): `None` when absent (the node's default,
/// 0.10 BTC/kvB); 0 means no limit; 1 BTC/kvB or more is -8.
fn max_fee_rate(value: Option<&Value>) -> Result<Option<FeeRate>, RpcError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let per_kvb = amount_from_value(value)?;
    if per_kvb >= Amount::ONE_BTC {
        return Err(RpcError::invalid_parameter(
            "Fee rates larger than or equal to 1BTC/kvB are not accepted",
        ));
    }
    // 1 vB = 4 weight units, so sat/kvB / 4 = sat/kwu.
    Ok(Some(FeeRate::from_sat_per_kwu(per_kvb.to_sat() / 4)))
}

/// `sendrawtransaction hex [maxfeerate] [maxburnamount]`: the txid, also when the transaction is
/// already in the mempool. Rejections carry the node's code and message (-25, -26, -27);
/// an undecodable transaction is -22 (transcript entries 37, 43, 46-65).
pub fn sendrawtransaction(ctx: &RpcContext, args: &Args) -> Result<Json, RpcError> {
    let tx = decode_tx(args.str(0).unwrap_or_default()).ok_or_else(decode_failed)?;
    let fee_rate = max_fee_rate(args.get(1))?;
    let max_burn = args
        .get(2)
        .map(amount_from_value)
        .transpose()?
        .unwrap_or(Amount::ZERO);
    let burns = tx.output.iter().any(|o| {
        (o.script_pubkey.is_op_return() || o.script_pubkey.len() > 10_000) && o.value > max_burn
    });
    if burns {
        return Err(RpcError::new(
            RPC_VERIFY_ERROR,
            "Unspendable output exceeds maximum configured by user (maxburnamount)",
        ));
    }
    let accepted = ctx
        .node
        .accept_transaction(tx, fee_rate, false)
        .map_err(|r| RpcError::new(r.code, r.message))?;
    Ok(Json::of(&accepted.txid.to_string()))
}

#[derive(Serialize)]
struct AcceptedFees {
    base: f64,
    #[serde(rename = "effective-feerate")]
    effective_feerate: f64,
    #[serde(rename = "effective-includes")]
    effective_includes: Vec<String>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum TestAcceptJson {
    Allowed {
        txid: String,
        wtxid: String,
        allowed: bool,
        vsize: u64,
        fees: AcceptedFees,
    },
    Rejected {
        txid: String,
        wtxid: String,
        allowed: bool,
        #[serde(rename = "reject-reason")]
        reject_reason: String,
        #[serde(rename = "reject-details")]
        reject_details: String,
    },
}

/// `testmempoolaccept [hex, ...] [maxfeerate]` (transcript entries 38, 66): one result per
/// transaction, `allowed` with `vsize`/`fees`, or `reject-reason`/`reject-details`. Transactions
/// are tested one by one against the current mempool (no package evaluation).
pub fn testmempoolaccept(ctx: &RpcContext, args: &Args) -> Result<Json, RpcError> {
    let raw: Vec<Value> = args
        .get(0)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if raw.is_empty() || raw.len() > 25 {
        return Err(RpcError::invalid_parameter(
            "Array must contain between 1 and 25 transactions.",
        ));
    }
    let fee_rate = max_fee_rate(args.get(1))?;
    let mut txs = Vec::with_capacity(raw.len());
    for item in &raw {
        let text = item.as_str().unwrap_or_default();
        let tx = decode_tx(text).ok_or_else(|| {
            RpcError::new(
                RPC_DESERIALIZATION_ERROR,
                format!("TX decode failed: {text} Make sure the tx has at least one input."),
            )
        })?;
        txs.push(tx);
    }
    let results: Vec<TestAcceptJson> = txs
        .into_iter()
        .map(|tx| test_accept(ctx, tx, fee_rate))
        .collect();
    Ok(Json::of(&results))
}

fn test_accept(
    ctx: &RpcContext,
    tx: bitcoin::Transaction,
    fee_rate: Option<FeeRate>,
) -> TestAcceptJson {
    let txid = tx.compute_txid();
    let wtxid = tx.compute_wtxid().to_string();
    let rejected = |reason: &str, details: &str| TestAcceptJson::Rejected {
        txid: txid.to_string(),
        wtxid: wtxid.clone(),
        allowed: false,
        reject_reason: reason.to_owned(),
        reject_details: details.to_owned(),
    };
    if ctx.node.mempool_entry(&txid).is_some() {
        return rejected("txn-already-in-mempool", "txn-already-in-mempool");
    }
    match ctx.node.accept_transaction(tx, fee_rate, true) {
        Ok(accepted) => {
            let per_kvb = accepted.fee.to_sat() as f64 * 1000.0 / accepted.vsize.max(1) as f64;
            TestAcceptJson::Allowed {
                txid: accepted.txid.to_string(),
                wtxid: accepted.wtxid.to_string(),
                allowed: true,
                vsize: accepted.vsize,
                fees: AcceptedFees {
                    base: btc(accepted.fee),
                    effective_feerate: (per_kvb.round()) / 1e8,
                    effective_includes: vec![accepted.wtxid.to_string()],
                },
            }
        }
        Err(rejection) => rejected(&rejection.reason, &rejection.message),
    }
}

/// `getrawmempool [verbose=false] [mempool_sequence=false]`: txids, or txid → entry.
/// `mempool_sequence` is not supported (-8).
pub fn getrawmempool(ctx: &RpcContext, args: &Args) -> Result<Json, RpcError> {
    let verbose = args.bool_or(0, false);
    let with_sequence = args.bool_or(1, false);
    if verbose && with_sequence {
        return Err(RpcError::invalid_parameter(
            "Verbose results cannot contain mempool sequence values.",
        ));
    }
    if with_sequence {
        return Err(RpcError::invalid_parameter(
            "mempool_sequence is not supported by bitcoind-sim",
        ));
    }
    let txids = ctx.node.mempool_txids();
    if !verbose {
        let list: Vec<String> = txids.iter().map(Txid::to_string).collect();
        return Ok(Json::of(&list));
    }
    let entries: BTreeMap<String, _> = txids
        .iter()
        .filter_map(|txid| ctx.node.mempool_entry(txid))
        .map(|e| (e.txid.to_string(), mempool_entry_json(&e)))
        .collect();
    Ok(Json::of(&entries))
}

/// `getmempoolentry txid` (transcript entry 34); -5 "Transaction not in mempool".
pub fn getmempoolentry(ctx: &RpcContext, args: &Args) -> Result<Json, RpcError> {
    let txid = Txid::from_raw_hash(args.hash(0, "parameter 1")?);
    let entry = ctx
        .node
        .mempool_entry(&txid)
        .ok_or_else(|| RpcError::not_found("Transaction not in mempool"))?;
    Ok(Json::of(&mempool_entry_json(&entry)))
}

#[derive(Serialize)]
struct MempoolInfo {
    loaded: bool,
    size: usize,
    bytes: u64,
    usage: u64,
    total_fee: f64,
    maxmempool: u64,
    mempoolminfee: f64,
    minrelaytxfee: f64,
    incrementalrelayfee: f64,
    unbroadcastcount: u64,
    permitbaremultisig: bool,
    maxdatacarriersize: u64,
    limitclustercount: u64,
    limitclustersize: u64,
    optimal: bool,
}

/// `getmempoolinfo` (transcript entry 72). `usage` is an estimate (Core measures allocations).
pub fn getmempoolinfo(ctx: &RpcContext, _: &Args) -> Result<Json, RpcError> {
    let entries: Vec<_> = ctx
        .node
        .mempool_txids()
        .iter()
        .filter_map(|txid| ctx.node.mempool_entry(txid))
        .collect();
    let bytes: u64 = entries.iter().map(|e| e.vsize).sum();
    let total_fee: Amount = entries.iter().map(|e| e.fee).sum();
    Ok(Json::of(&MempoolInfo {
        loaded: true,
        size: entries.len(),
        bytes,
        usage: 64 + entries.iter().map(|e| e.weight + 400).sum::<u64>(),
        total_fee: btc(total_fee),
        maxmempool: 300_000_000,
        // Satoshis per kvB to BTC per kvB; 100 (the min relay fee) unless a floor is set.
        mempoolminfee: ctx.node.mempool_min_fee() as f64 / 1e8,
        minrelaytxfee: MIN_RELAY_FEE_BTC_KVB,
        incrementalrelayfee: MIN_RELAY_FEE_BTC_KVB,
        // No peers ever ask for a transaction, so every one stays unbroadcast (see json.rs).
        unbroadcastcount: entries.len() as u64,
        permitbaremultisig: true,
        maxdatacarriersize: 100_000,
        limitclustercount: 64,
        limitclustersize: 101_000,
        optimal: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_parse_like_core() {
        assert_eq!(
            amount_from_value(&json!(0.1)).unwrap(),
            Amount::from_sat(10_000_000)
        );
        assert_eq!(
            amount_from_value(&json!("0.00000001")).unwrap(),
            Amount::from_sat(1)
        );
        assert_eq!(
            amount_from_value(&json!(1e-5)).unwrap(),
            Amount::from_sat(1000)
        );
        assert_eq!(
            amount_from_value(&json!(0.000000001)).unwrap_err().message,
            "Invalid amount"
        );
        assert_eq!(
            amount_from_value(&json!(-1)).unwrap_err().message,
            "Amount out of range"
        );
        assert_eq!(amount_from_value(&json!(true)).unwrap_err().code, -3);
    }

    #[test]
    fn max_fee_rate_converts_btc_per_kvb_to_sat_per_kwu() {
        assert_eq!(max_fee_rate(None).unwrap(), None);
        assert_eq!(
            max_fee_rate(Some(&json!(0.1))).unwrap(),
            Some(FeeRate::from_sat_per_kwu(2_500_000))
        );
        assert_eq!(max_fee_rate(Some(&json!(0))).unwrap(), Some(FeeRate::ZERO));
        assert_eq!(max_fee_rate(Some(&json!(1))).unwrap_err().code, -8);
    }
}
