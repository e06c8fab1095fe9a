//! Mining and fee estimation (Core's `src/rpc/mining.cpp`, `src/rpc/fees.cpp`):
//! generatetoaddress, generateblock, estimatesmartfee.

use std::str::FromStr;

use bitcoin::{Address, Network, ScriptBuf, Txid};
use serde::Serialize;
use serde_json::Value;

use super::envelope::Json;
use super::error::{RPC_DESERIALIZATION_ERROR, RpcError};
use super::params::Args;
use super::params::parse_hash;
use super::rawtransaction::decode_tx;
use super::{RpcContext, node_error};
use crate::json::strip_checksum;
use crate::node::TxOrTxid;

/// Core's `-maxtxfee`-independent horizon of `estimatesmartfee` (blocks).
const MAX_CONF_TARGET: i64 = 1008;

/// A regtest address's output script, `None` if it is not a valid regtest address.
pub(crate) fn regtest_script(address: &str) -> Option<ScriptBuf> {
    let address = Address::from_str(address)
        .ok()?
        .require_network(Network::Regtest)
        .ok()?;
    Some(address.script_pubkey())
}

/// `addr(ADDRESS)` or `raw(HEX)`, checksum optional but verified when present.
fn descriptor_script(text: &str) -> Option<ScriptBuf> {
    let desc = strip_checksum(text)?;
    if let Some(inner) = desc.strip_prefix("addr(").and_then(|r| r.strip_suffix(')')) {
        return regtest_script(inner);
    }
    let inner = desc.strip_prefix("raw(")?.strip_suffix(')')?;
    Some(ScriptBuf::from_bytes(hex::decode(inner).ok()?))
}

/// `generatetoaddress n address [maxtries]`: mines `n` blocks (each taking the whole mempool),
/// returns their hashes. Invalid address: -5 "Error: Invalid address".
pub fn generatetoaddress(ctx: &RpcContext, args: &Args) -> Result<Json, RpcError> {
    let count = args.i64_or(0, 0)?.clamp(0, i64::from(u32::MAX)) as u32;
    let script = regtest_script(args.str(1).unwrap_or_default())
        .ok_or_else(|| RpcError::not_found("Error: Invalid address"))?;
    let hashes = ctx
        .node
        .generate_to_script(count, &script)
        .map_err(node_error)?;
    let hashes: Vec<String> = hashes.iter().map(ToString::to_string).collect();
    Ok(Json::of(&hashes))
}

#[derive(Serialize)]
struct GeneratedBlock {
    hash: String,
}

/// `generateblock output [txs] [submit=true]`: one block with exactly `txs` (raw hex, or txids
/// taken from the mempool; `[]` mines an empty block) paying to `output` (an address, or an
/// `addr()`/`raw()` descriptor). Returns `{"hash": ..}`. `submit=false` is not supported.
pub fn generateblock(ctx: &RpcContext, args: &Args) -> Result<Json, RpcError> {
    let output = args.str(0).unwrap_or_default();
    let script = descriptor_script(output)
        .or_else(|| regtest_script(output))
        .ok_or_else(|| RpcError::not_found("Error: Invalid address or descriptor"))?;
    if !args.bool_or(2, true) {
        return Err(RpcError::invalid_parameter(
            "submit=false is not supported by bitcoind-sim",
        ));
    }
    let items: Vec<Value> = args
        .get(1)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut txs = Vec::with_capacity(items.len());
    for item in &items {
        let text = item.as_str().ok_or_else(|| {
            RpcError::new(
                super::error::RPC_TYPE_ERROR,
                "JSON value is not a string as expected",
            )
        })?;
        txs.push(tx_or_txid(text)?);
    }
    let hash = ctx.node.generate_block(&script, txs).map_err(node_error)?;
    Ok(Json::of(&GeneratedBlock {
        hash: hash.to_string(),
    }))
}

/// A 64-hex string is a txid (Core's `ParseHashStr`), anything else a raw transaction.
fn tx_or_txid(text: &str) -> Result<TxOrTxid, RpcError> {
    if text.len() == 64
        && let Ok(hash) = parse_hash(text, "txid")
    {
        return Ok(TxOrTxid::Txid(Txid::from_raw_hash(hash)));
    }
    decode_tx(text).map(TxOrTxid::Tx).ok_or_else(|| {
        RpcError::new(
            RPC_DESERIALIZATION_ERROR,
            format!(
                "Transaction decode failed for {text}. Make sure the tx has at least one input."
            ),
        )
    })
}

#[derive(Serialize)]
struct FeeEstimate {
    errors: Vec<&'static str>,
    blocks: u32,
}

/// `estimatesmartfee conf_target [mode]` (transcript entry 71): the simulator collects no fee
/// statistics, so it answers like a fresh regtest node: no `feerate`, an error, `blocks` 0.
/// conf_target outside 1..=1008 or an unknown mode: -8 with Core's messages.
pub fn estimatesmartfee(_: &RpcContext, args: &Args) -> Result<Json, RpcError> {
    let target = args.i64_or(0, 0)?;
    if !(1..=MAX_CONF_TARGET).contains(&target) {
        return Err(RpcError::invalid_parameter(format!(
            "Invalid conf_target, must be between 1 and {MAX_CONF_TARGET}"
        )));
    }
    let mode = args.str(1).unwrap_or("economical").to_ascii_lowercase();
    if !["unset", "economical", "conservative"].contains(&mode.as_str()) {
        return Err(RpcError::invalid_parameter(
            "Invalid estimate_mode parameter, must be one of: \"unset\", \"economical\", \"conservative\"",
        ));
    }
    Ok(Json::of(&FeeEstimate {
        errors: vec!["Insufficient data or no feerate found"],
        blocks: 0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regtest_addresses_only() {
        assert!(regtest_script("bcrt1qcyfda4xwwk3cl3cp79hl29fjmqc48ttstju6cq").is_some());
        assert!(regtest_script("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq").is_none());
        assert!(regtest_script("notanaddress").is_none());
    }

    #[test]
    fn descriptors_with_and_without_checksum() {
        let addr = "bcrt1qcyfda4xwwk3cl3cp79hl29fjmqc48ttstju6cq";
        let expected = regtest_script(addr).unwrap();
        assert_eq!(
            descriptor_script(&format!("addr({addr})")),
            Some(expected.clone())
        );
        assert_eq!(
            descriptor_script(&format!("addr({addr})#8590c3ln")),
            Some(expected)
        );
        assert_eq!(descriptor_script(&format!("addr({addr})#qqqqqqqq")), None);
        assert_eq!(
            descriptor_script("raw(51)").map(|s| s.to_bytes()),
            Some(vec![0x51])
        );
    }

    #[test]
    fn txid_or_raw_transaction() {
        let txid = "5add885a95cef5de09f896403bc9bde7c1fea7bd11fcfb8dddb6d14baba35900";
        assert!(matches!(tx_or_txid(txid), Ok(TxOrTxid::Txid(t)) if t.to_string() == txid));
        assert_eq!(tx_or_txid("00").unwrap_err().code, -22);
    }
}
