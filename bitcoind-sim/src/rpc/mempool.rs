//! The mempool (Core's `src/rpc/mempool.cpp`): sendrawtransaction, testmempoolaccept,
//! getrawmempool, getmempoolentry, getmempoolinfo.

use std::collections::BTreeMap;

use bitcoin::{Amount, FeeRate, OutPoint, Txid};
use serde::Serialize;
use serde_json::Value;

use super::RpcContext;
use super::envelope::Json;
use super::error::{
    RPC_DESERIALIZATION_ERROR, RPC_MISC_ERROR, RPC_TYPE_ERROR, RPC_VERIFY_ERROR, RpcError,
};
use super::params::{Args, parse_hash, type_name};
use super::rawtransaction::{decode_failed, decode_tx};
use crate::json::{btc, mempool_entry_json};
use crate::node::{Accepted, Rejection};

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
pub(super) fn max_fee_rate(value: Option<&Value>) -> Result<Option<FeeRate>, RpcError> {
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
pub(super) struct AcceptedFees {
    base: f64,
    #[serde(rename = "effective-feerate")]
    effective_feerate: f64,
    #[serde(rename = "effective-includes")]
    effective_includes: Vec<String>,
}

/// One element of `testmempoolaccept`'s answer, in Core's shapes.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum TestAcceptJson {
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
        /// Left out for "missing-inputs" and "max-fee-exceeded", as Core does.
        #[serde(rename = "reject-details", skip_serializing_if = "Option::is_none")]
        reject_details: Option<String>,
    },
    /// A package transaction not evaluated (Core: "Validation unfinished").
    Unevaluated { txid: String, wtxid: String },
    /// A package refused as a whole before any transaction was evaluated.
    PackageError {
        txid: String,
        wtxid: String,
        #[serde(rename = "package-error")]
        package_error: String,
    },
}

impl TestAcceptJson {
    pub(super) fn is_allowed(&self) -> bool {
        matches!(self, TestAcceptJson::Allowed { .. })
    }
}

/// Core's `maxfeerate` default for testmempoolaccept (0.10 BTC/kvB) in sat/kvB, or the given one.
fn max_fee_per_kvb(rate: Option<FeeRate>) -> u64 {
    rate.map_or(10_000_000, |r| r.to_sat_per_kwu().saturating_mul(4))
}

/// `testmempoolaccept ["rawtx",...] ( maxfeerate )`: one result per transaction, `allowed` with
/// `vsize`/`fees`, or `reject-reason`/`reject-details`. One transaction is tested against the
/// mempool (transcript entries 38, 66); several are tested as Core tests a package, each seeing
/// the outputs of the earlier ones (`mempool.json` section 2; see [`super::package`]).
/// -8 "Array must contain between 1 and 25 transactions."; -22 for an undecodable element.
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
    let max = max_fee_per_kvb(fee_rate);
    if txs.len() > 1 {
        return Ok(Json::of(&super::package::test_package(ctx, txs, max)));
    }
    let results: Vec<TestAcceptJson> = txs
        .into_iter()
        .map(|tx| test_accept(ctx, tx, max))
        .collect();
    Ok(Json::of(&results))
}

fn test_accept(ctx: &RpcContext, tx: bitcoin::Transaction, max_fee_per_kvb: u64) -> TestAcceptJson {
    let txid = tx.compute_txid().to_string();
    let wtxid = tx.compute_wtxid().to_string();
    if ctx.node.mempool_entry(&tx.compute_txid()).is_some() {
        return TestAcceptJson::Rejected {
            txid,
            wtxid,
            allowed: false,
            reject_reason: "txn-already-in-mempool".into(),
            reject_details: Some("txn-already-in-mempool".into()),
        };
    }
    let outcome = ctx.node.accept_transaction(tx, Some(FeeRate::ZERO), true);
    test_accept_json(txid, wtxid, &outcome, max_fee_per_kvb)
}

/// The answer for one evaluated transaction: refused; allowed but above `maxfeerate`
/// (satoshis per 1000 vbytes; "max-fee-exceeded", checked after validation as Core does); or
/// allowed with its own feerate (Core's `CFeeRate::GetFeePerK`, truncated).
pub(super) fn test_accept_json(
    txid: String,
    wtxid: String,
    outcome: &Result<Accepted, Rejection>,
    max_fee_per_kvb: u64,
) -> TestAcceptJson {
    let rejected = |reason: &str, details: Option<String>| TestAcceptJson::Rejected {
        txid: txid.clone(),
        wtxid: wtxid.clone(),
        allowed: false,
        reject_reason: reason.to_owned(),
        reject_details: details,
    };
    match outcome {
        Ok(accepted) => {
            let max_fee = fee_for(max_fee_per_kvb, accepted.vsize);
            if max_fee_per_kvb > 0 && accepted.fee.to_sat() > max_fee {
                return rejected("max-fee-exceeded", None);
            }
            let per_kvb = crate::node::fee_per_kvb(accepted.fee, accepted.vsize);
            TestAcceptJson::Allowed {
                txid: txid.clone(),
                wtxid: wtxid.clone(),
                allowed: true,
                vsize: accepted.vsize,
                fees: AcceptedFees {
                    base: btc(accepted.fee),
                    effective_feerate: btc(Amount::from_sat(per_kvb)),
                    effective_includes: vec![accepted.wtxid.to_string()],
                },
            }
        }
        Err(r) if r.reason == "missing-inputs" => rejected(&r.reason, None),
        Err(r) => rejected(&r.reason, Some(r.message.clone())),
    }
}

/// Core's `CFeeRate::GetFee`: satoshis for `vsize` vbytes at `per_kvb`, rounded up.
fn fee_for(per_kvb: u64, vsize: u64) -> u64 {
    (u128::from(per_kvb) * u128::from(vsize)).div_ceil(1000) as u64
}

/// `getrawmempool ( verbose mempool_sequence )`: txids; txid → entry when verbose; with
/// `mempool_sequence`, `{"txids": [...], "mempool_sequence": N}` (`mempool.json` section 1).
/// Both: -8 "Verbose results cannot contain mempool sequence values.", as Core.
pub fn getrawmempool(ctx: &RpcContext, args: &Args) -> Result<Json, RpcError> {
    let verbose = args.bool_or(0, false);
    let with_sequence = args.bool_or(1, false);
    if verbose && with_sequence {
        return Err(RpcError::invalid_parameter(
            "Verbose results cannot contain mempool sequence values.",
        ));
    }
    if with_sequence {
        #[derive(Serialize)]
        struct WithSequence {
            txids: Vec<String>,
            mempool_sequence: u64,
        }
        let (txids, mempool_sequence) = ctx.node.mempool_txids_with_sequence();
        return Ok(Json::of(&WithSequence {
            txids: txids.iter().map(Txid::to_string).collect(),
            mempool_sequence,
        }));
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

#[derive(Serialize)]
struct SpendingJson {
    txid: String,
    vout: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    spendingtxid: Option<String>,
}

/// One `{"txid", "vout"}` of `gettxspendingprevout`, checked as Core's `RPCTypeCheckObj`
/// (strict: no other keys) and `ParseHashO`.
fn parse_prevout(value: &Value) -> Result<OutPoint, RpcError> {
    let Some(object) = value.as_object() else {
        return Err(RpcError::new(
            RPC_TYPE_ERROR,
            format!(
                "JSON value of type {} is not of expected type object",
                type_name(value)
            ),
        ));
    };
    for (key, expected) in [("txid", "string"), ("vout", "number")] {
        match object.get(key) {
            None | Some(Value::Null) => {
                return Err(RpcError::new(RPC_TYPE_ERROR, format!("Missing {key}")));
            }
            Some(v) if type_name(v) != expected => {
                return Err(RpcError::new(
                    RPC_TYPE_ERROR,
                    format!(
                        "JSON value of type {} for field {key} is not of expected type {expected}",
                        type_name(v)
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(key) = object.keys().find(|k| *k != "txid" && *k != "vout") {
        return Err(RpcError::new(
            RPC_TYPE_ERROR,
            format!("Unexpected key {key}"),
        ));
    }
    let text = object
        .get("txid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let txid = Txid::from_raw_hash(parse_hash(text, "txid")?);
    let vout = object
        .get("vout")
        .and_then(Value::as_i64)
        .filter(|v| i32::try_from(*v).is_ok())
        .ok_or_else(|| RpcError::new(RPC_MISC_ERROR, "JSON integer out of range"))?;
    if vout < 0 {
        return Err(RpcError::invalid_parameter(
            "Invalid parameter, vout cannot be negative",
        ));
    }
    Ok(OutPoint {
        txid,
        vout: vout as u32,
    })
}

/// `gettxspendingprevout [{"txid": .., "vout": n}, ...]` (`mempool.json` section 1): each
/// outpoint echoed, with `spendingtxid` when a mempool transaction spends it. -8 "Invalid
/// parameter, outputs are missing" for `[]`; -8 "Invalid parameter, vout cannot be negative";
/// -3 for a malformed element.
pub fn gettxspendingprevout(ctx: &RpcContext, args: &Args) -> Result<Json, RpcError> {
    let raw: Vec<Value> = args
        .get(0)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if raw.is_empty() {
        return Err(RpcError::invalid_parameter(
            "Invalid parameter, outputs are missing",
        ));
    }
    let outpoints = raw
        .iter()
        .map(parse_prevout)
        .collect::<Result<Vec<_>, _>>()?;
    let answer: Vec<SpendingJson> = outpoints
        .iter()
        .map(|op| SpendingJson {
            txid: op.txid.to_string(),
            vout: op.vout,
            spendingtxid: ctx.node.mempool_spender(op).map(|t| t.to_string()),
        })
        .collect();
    Ok(Json::of(&answer))
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
        minrelaytxfee: btc(Amount::from_sat(ctx.node.min_relay_fee())),
        // Core's `-incrementalrelayfee` default since v30: 100 sat/kvB.
        incrementalrelayfee: 0.000_001,
        // No peers ever ask for a transaction, so sent ones stay unbroadcast (see json.rs).
        unbroadcastcount: entries.iter().filter(|e| e.unbroadcast).count() as u64,
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
