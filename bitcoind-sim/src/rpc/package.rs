//! Packages (Core's `src/rpc/mempool.cpp`): `submitpackage`, and `testmempoolaccept` of several
//! transactions. Shapes as `../shared/spec/bitcoind/mempool.json` (Core v28.99), section 2.

use bitcoin::{Amount, Transaction, Wtxid};
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;

use super::RpcContext;
use super::envelope::Json;
use super::error::{RPC_DESERIALIZATION_ERROR, RPC_VERIFY_ERROR, RpcError};
use super::mempool::{TestAcceptJson, amount_from_value, max_fee_rate, test_accept_json};
use super::params::Args;
use super::rawtransaction::decode_tx;
use crate::json::btc;
use crate::node::{PackageTxResult, Rejection};

/// Core's `MAX_PACKAGE_COUNT`.
const MAX_PACKAGE_COUNT: usize = 25;

#[derive(Serialize)]
struct Fees {
    base: f64,
    #[serde(rename = "effective-feerate", skip_serializing_if = "Option::is_none")]
    effective_feerate: Option<f64>,
    #[serde(rename = "effective-includes", skip_serializing_if = "Option::is_none")]
    effective_includes: Option<Vec<String>>,
}

/// One `tx-results` entry: `txid`, then `other-wtxid`, or `vsize` + `fees`, or `error`.
#[derive(Serialize)]
struct TxResultJson {
    txid: String,
    #[serde(rename = "other-wtxid", skip_serializing_if = "Option::is_none")]
    other_wtxid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vsize: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fees: Option<Fees>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// A JSON object whose keys keep their order (Core pushes `tx-results` in package order).
struct Ordered<T>(Vec<(String, T)>);

impl<T: Serialize> Serialize for Ordered<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct SubmitPackageJson {
    package_msg: String,
    #[serde(rename = "tx-results")]
    tx_results: Ordered<TxResultJson>,
    #[serde(rename = "replaced-transactions")]
    replaced_transactions: Vec<String>,
}

fn tx_result_json(result: &PackageTxResult) -> TxResultJson {
    let base = |txid: String| TxResultJson {
        txid,
        other_wtxid: None,
        vsize: None,
        fees: None,
        error: None,
    };
    match result {
        PackageTxResult::Accepted {
            txid,
            vsize,
            fee,
            effective_feerate_per_kvb,
            effective_includes,
        } => TxResultJson {
            vsize: Some(*vsize),
            fees: Some(Fees {
                base: btc(*fee),
                effective_feerate: Some(btc(Amount::from_sat(*effective_feerate_per_kvb))),
                effective_includes: Some(effective_includes.iter().map(Wtxid::to_string).collect()),
            }),
            ..base(txid.to_string())
        },
        PackageTxResult::InMempool { txid, vsize, fee } => TxResultJson {
            vsize: Some(*vsize),
            fees: Some(Fees {
                base: btc(*fee),
                effective_feerate: None,
                effective_includes: None,
            }),
            ..base(txid.to_string())
        },
        PackageTxResult::DifferentWitness { txid, other_wtxid } => TxResultJson {
            other_wtxid: Some(other_wtxid.to_string()),
            ..base(txid.to_string())
        },
        PackageTxResult::Rejected { txid, error } => TxResultJson {
            error: Some(error.clone()),
            ..base(txid.to_string())
        },
    }
}

/// Decodes every element of a `rawtxs`/`package` array: -22 "TX decode failed: <hex> Make sure
/// the tx has at least one input." for the first that is not a transaction.
fn decode_all(raw: &[Value]) -> Result<Vec<Transaction>, RpcError> {
    raw.iter()
        .map(|item| {
            let text = item.as_str().unwrap_or_default();
            decode_tx(text).ok_or_else(|| {
                RpcError::new(
                    RPC_DESERIALIZATION_ERROR,
                    format!("TX decode failed: {text} Make sure the tx has at least one input."),
                )
            })
        })
        .collect()
}

/// `submitpackage ["rawtx",...] ( maxfeerate maxburnamount )`: exactly one child with all its
/// unconfirmed parents, parents first. Errors before anything is evaluated: -8 "Array must
/// contain between 2 and 25 transactions." (also for undecodable elements: the count comes
/// first); -22 decode; -25 "Unspendable output exceeds maximum configured by user
/// (maxburnamount)"; -25 "package topology disallowed. not child-with-parents or parents depend
/// on each other.". Otherwise `{"package_msg", "tx-results", "replaced-transactions"}`, also
/// when a transaction was refused (its entry has `error`).
pub fn submitpackage(ctx: &RpcContext, args: &Args) -> Result<Json, RpcError> {
    let raw: Vec<Value> = args
        .get(0)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if raw.len() < 2 || raw.len() > MAX_PACKAGE_COUNT {
        return Err(RpcError::invalid_parameter(format!(
            "Array must contain between 2 and {MAX_PACKAGE_COUNT} transactions."
        )));
    }
    let fee_rate = max_fee_rate(args.get(1))?;
    let max_burn = args
        .get(2)
        .map(amount_from_value)
        .transpose()?
        .unwrap_or(Amount::ZERO);
    let txs = decode_all(&raw)?;
    let burns = txs.iter().flat_map(|t| &t.output).any(|o| {
        (o.script_pubkey.is_op_return() || o.script_pubkey.len() > 10_000) && o.value > max_burn
    });
    if burns {
        return Err(RpcError::new(
            RPC_VERIFY_ERROR,
            "Unspendable output exceeds maximum configured by user (maxburnamount)",
        ));
    }
    let result = ctx
        .node
        .submit_package(txs, fee_rate)
        .map_err(|r| RpcError::new(r.code, r.message))?;
    Ok(Json::of(&SubmitPackageJson {
        package_msg: result.message,
        tx_results: Ordered(
            result
                .results
                .iter()
                .map(|(wtxid, r)| (wtxid.to_string(), tx_result_json(r)))
                .collect(),
        ),
        replaced_transactions: result.replaced.iter().map(ToString::to_string).collect(),
    }))
}

/// `testmempoolaccept` of two or more transactions (already decoded), as Core's package test:
/// one result per transaction, in order; after the first refusal (or a fee above `maxfeerate`,
/// "max-fee-exceeded") the others show only `txid` and `wtxid`; a package-wide policy failure
/// adds `package-error` to every one.
pub(super) fn test_package(
    ctx: &RpcContext,
    txs: Vec<Transaction>,
    max_fee_per_kvb: u64,
) -> Vec<TestAcceptJson> {
    let outcomes = ctx.node.test_accept_package(&txs);
    let mut exit_early = false;
    txs.iter()
        .enumerate()
        .map(|(i, tx)| {
            let txid = tx.compute_txid().to_string();
            let wtxid = tx.compute_wtxid().to_string();
            let outcome: Option<&Result<_, Rejection>> = match &outcomes {
                Err(package_error) => {
                    return TestAcceptJson::PackageError {
                        txid,
                        wtxid,
                        package_error: package_error.clone(),
                    };
                }
                Ok(list) => list.get(i).and_then(Option::as_ref),
            };
            match outcome {
                Some(result) if !exit_early => {
                    let json = test_accept_json(txid, wtxid, result, max_fee_per_kvb);
                    exit_early = !json.is_allowed();
                    json
                }
                _ => TestAcceptJson::Unevaluated { txid, wtxid },
            }
        })
        .collect()
}
