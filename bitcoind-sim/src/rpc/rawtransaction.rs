//! Raw transactions (Core's `src/rpc/rawtransaction.cpp`): getrawtransaction,
//! decoderawtransaction, and the hex decoding the mempool and mining calls share.

use bitcoin::{BlockHash, Network, Transaction, Txid};

use super::RpcContext;
use super::blockchain::verbosity;
use super::envelope::Json;
use super::error::{RPC_DESERIALIZATION_ERROR, RpcError};
use super::params::Args;
use crate::json::tx_json;
use crate::node::{TxLookup, TxLookupError};

/// Decodes a hex transaction, `None` if the hex or the serialization is bad (or has trailing bytes).
pub(super) fn decode_tx(hex_text: &str) -> Option<Transaction> {
    let bytes = hex::decode(hex_text).ok()?;
    bitcoin::consensus::encode::deserialize(&bytes).ok()
}

/// -22 "TX decode failed. Make sure the tx has at least one input." (transcript entries 46, 47).
pub(super) fn decode_failed() -> RpcError {
    RpcError::new(
        RPC_DESERIALIZATION_ERROR,
        "TX decode failed. Make sure the tx has at least one input.",
    )
}

fn lookup_error(error: TxLookupError) -> RpcError {
    RpcError::not_found(match error {
        TxLookupError::BlockNotFound => "Block hash not found",
        TxLookupError::NotInBlock => {
            "No such transaction found in the provided block. Use gettransaction for wallet transactions."
        }
        TxLookupError::NotFound { txindex: true } => {
            "No such mempool or blockchain transaction. Use gettransaction for wallet transactions."
        }
        TxLookupError::NotFound { txindex: false } => {
            "No such mempool transaction. Use -txindex or provide a block hash to enable blockchain transaction queries. Use gettransaction for wallet transactions."
        }
    })
}

/// `getrawtransaction txid [verbosity=0] [blockhash]` (transcript entries 31-33, 41-45, 80, 85).
///
/// Verbosity may be a bool or a number (2 is answered like 1). A mempool transaction has no
/// `blockhash`/`confirmations` and shows `vsize_adjusted` first; with a block hash the answer
/// starts with `in_active_chain`. A confirmed transaction is found without a block hash only with
/// txindex. Errors are -5 with Core's messages.
pub fn getrawtransaction(ctx: &RpcContext, args: &Args) -> Result<Json, RpcError> {
    let txid = Txid::from_raw_hash(args.hash(0, "parameter 1")?);
    let verbosity = verbosity(args.get(1), 0, true)?;
    let block_hash = match args.get(2) {
        Some(_) => Some(BlockHash::from_raw_hash(args.hash(2, "parameter 3")?)),
        None => None,
    };
    let genesis = bitcoin::blockdata::constants::genesis_block(Network::Regtest);
    if txid.to_raw_hash() == genesis.header.merkle_root.to_raw_hash() {
        return Err(RpcError::not_found(
            "The genesis block coinbase is not considered an ordinary transaction and cannot be retrieved",
        ));
    }
    let TxLookup { tx, block } = ctx
        .node
        .get_transaction(&txid, block_hash.as_ref())
        .map_err(lookup_error)?;
    if verbosity <= 0 {
        return Ok(Json::of(&bitcoin::consensus::encode::serialize_hex(&tx)));
    }
    let mut out = tx_json(&tx, true);
    match block {
        None => {
            let vsize = ctx
                .node
                .mempool_entry(&txid)
                .map_or(tx.vsize() as u64, |e| e.vsize);
            out.vsize_adjusted = Some(vsize);
        }
        Some(info) => {
            if block_hash.is_some() {
                out.in_active_chain = Some(info.in_active_chain);
            }
            out.blockhash = Some(info.hash.to_string());
            if info.in_active_chain {
                out.confirmations = Some(info.confirmations);
                out.time = Some(info.time);
                out.blocktime = Some(info.time);
            } else {
                out.confirmations = Some(0);
            }
        }
    }
    Ok(Json::of(&out))
}

/// `decoderawtransaction hex [iswitness]` (transcript entry 39): the decoded transaction without
/// `hex`; -22 "TX decode failed" when it does not decode.
pub fn decoderawtransaction(_: &RpcContext, args: &Args) -> Result<Json, RpcError> {
    let tx = decode_tx(args.str(0).unwrap_or_default())
        .ok_or_else(|| RpcError::new(RPC_DESERIALIZATION_ERROR, "TX decode failed"))?;
    Ok(Json::of(&tx_json(&tx, false)))
}
