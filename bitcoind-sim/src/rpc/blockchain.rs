//! Chain queries and chain control (Core's `src/rpc/blockchain.cpp`): getblockchaininfo,
//! getblockcount, getbestblockhash, getblockhash, getblockheader, getblock, getchaintips,
//! invalidateblock, reconsiderblock.

use bitcoin::BlockHash;
use serde::Serialize;
use serde_json::Value;

use super::envelope::Json;
use super::error::{RPC_INVALID_PARAMETER, RPC_TYPE_ERROR, RpcError};
use super::params::Args;
use super::{RpcContext, node_error};
use crate::json::hex_str::{TxidHex, consensus_hex_json};
use crate::json::{block_json, difficulty, header_json, target_hex, tx_json};

/// Core's `ParseHashV` for a block hash parameter.
pub(super) fn block_hash_arg(args: &Args, index: usize, name: &str) -> Result<BlockHash, RpcError> {
    Ok(BlockHash::from_raw_hash(args.hash(index, name)?))
}

/// Core's `ParseVerbosity`: absent → `default`; a bool → 0/1 (if allowed); else an integer.
pub(super) fn verbosity(
    value: Option<&Value>,
    default: i64,
    allow_bool: bool,
) -> Result<i64, RpcError> {
    match value {
        None => Ok(default),
        Some(Value::Bool(b)) if allow_bool => Ok(i64::from(*b)),
        Some(Value::Bool(_)) => Err(RpcError::new(
            RPC_TYPE_ERROR,
            "Verbosity was boolean but only integer allowed",
        )),
        Some(v) => v
            .as_i64()
            .ok_or_else(|| RpcError::new(RPC_TYPE_ERROR, "Verbosity was not an integer")),
    }
}

#[derive(Serialize)]
struct BlockchainInfo {
    chain: &'static str,
    blocks: u32,
    headers: u32,
    bestblockhash: String,
    bits: String,
    target: String,
    difficulty: f64,
    time: u32,
    mediantime: u32,
    verificationprogress: f64,
    initialblockdownload: bool,
    chainwork: String,
    size_on_disk: u64,
    pruned: bool,
    warnings: Vec<String>,
}

/// `getblockchaininfo` (transcript entry 1). `verificationprogress` is 1 once out of initial block
/// download and a small fraction before (Core estimates it from transaction counts).
pub fn getblockchaininfo(ctx: &RpcContext, _: &Args) -> Result<Json, RpcError> {
    let info = ctx.node.chain_info();
    Ok(Json::of(&BlockchainInfo {
        chain: "regtest",
        blocks: info.blocks,
        headers: info.blocks,
        bestblockhash: info.best_block_hash.to_string(),
        bits: format!("{:08x}", info.bits.to_consensus()),
        target: target_hex(info.bits),
        difficulty: difficulty(info.bits),
        time: info.time,
        mediantime: info.median_time,
        verificationprogress: if info.initial_block_download {
            2.0e-6
        } else {
            1.0
        },
        initialblockdownload: info.initial_block_download,
        chainwork: hex::encode(info.chainwork.to_be_bytes()),
        size_on_disk: info.size_on_disk,
        pruned: false,
        warnings: Vec::new(),
    }))
}

/// `getblockcount`: height of the active tip.
pub fn getblockcount(ctx: &RpcContext, _: &Args) -> Result<Json, RpcError> {
    Ok(Json::of(&ctx.node.block_count()))
}

/// `getbestblockhash`.
pub fn getbestblockhash(ctx: &RpcContext, _: &Args) -> Result<Json, RpcError> {
    Ok(Json::of(&ctx.node.best_block_hash().to_string()))
}

/// `getblockhash height`: -8 "Block height out of range" below 0 or above the tip.
pub fn getblockhash(ctx: &RpcContext, args: &Args) -> Result<Json, RpcError> {
    let height = args.i64_or(0, 0)?;
    let out_of_range = || RpcError::new(RPC_INVALID_PARAMETER, "Block height out of range");
    let height = u32::try_from(height).map_err(|_| out_of_range())?;
    let hash = ctx.node.block_hash(height).ok_or_else(out_of_range)?;
    Ok(Json::of(&hash.to_string()))
}

/// `getblockheader hash [verbose=true]`: an object, or the 80-byte header as hex.
/// Unknown hash: -5 "Block not found".
pub fn getblockheader(ctx: &RpcContext, args: &Args) -> Result<Json, RpcError> {
    let hash = block_hash_arg(args, 0, "hash")?;
    let entry = ctx
        .node
        .block_entry(&hash)
        .ok_or_else(RpcError::block_not_found)?;
    if !args.bool_or(1, true) {
        return Ok(Json(consensus_hex_json(&entry.header, 80)));
    }
    Ok(Json::of(&header_json(&entry)))
}

/// `getblock hash [verbosity=1]`: 0 raw hex, 1 with txids, 2 (and 3) with decoded transactions
/// (without `fee`: the simulator keeps no undo data). Unknown hash: -5 "Block not found".
///
/// The node lock is held only to find the block (shared, not copied); the hex of verbosity 0 is
/// written straight into the result string, and verbosity 1 uses the block's txids, computed once.
pub fn getblock(ctx: &RpcContext, args: &Args) -> Result<Json, RpcError> {
    let hash = block_hash_arg(args, 0, "blockhash")?;
    let verbosity = verbosity(args.get(1), 1, true)?;
    if verbosity <= 0 {
        let shared = ctx
            .node
            .shared_block(&hash)
            .ok_or_else(RpcError::block_not_found)?;
        return Ok(Json(consensus_hex_json(shared.block(), shared.size())));
    }
    let (entry, shared) = ctx
        .node
        .block_with_entry(&hash)
        .ok_or_else(RpcError::block_not_found)?;
    let block = shared.block();
    Ok(match verbosity {
        1 => {
            let txids: Vec<TxidHex<'_>> = shared.txids().iter().map(TxidHex).collect();
            Json::of(&block_json(&entry, block, txids))
        }
        _ => {
            let txs = block.txdata.iter().map(|tx| tx_json(tx, true)).collect();
            Json::of(&block_json(&entry, block, txs))
        }
    })
}

#[derive(Serialize)]
struct ChainTipJson {
    height: u32,
    hash: String,
    branchlen: u32,
    status: &'static str,
}

/// `getchaintips`: every tip of the block tree (transcript entry 82).
pub fn getchaintips(ctx: &RpcContext, _: &Args) -> Result<Json, RpcError> {
    let tips: Vec<ChainTipJson> = ctx
        .node
        .chain_tips()
        .into_iter()
        .map(|t| ChainTipJson {
            height: t.height,
            hash: t.hash.to_string(),
            branchlen: t.branch_len,
            status: t.status,
        })
        .collect();
    Ok(Json::of(&tips))
}

/// `invalidateblock hash`: null on success, -5 "Block not found" for an unknown hash.
pub fn invalidateblock(ctx: &RpcContext, args: &Args) -> Result<Json, RpcError> {
    let hash = block_hash_arg(args, 0, "blockhash")?;
    ctx.node.invalidate_block(&hash).map_err(node_error)?;
    Ok(Json::null())
}

/// `reconsiderblock hash`: null on success, -5 "Block not found" for an unknown hash.
pub fn reconsiderblock(ctx: &RpcContext, args: &Args) -> Result<Json, RpcError> {
    let hash = block_hash_arg(args, 0, "blockhash")?;
    ctx.node.reconsider_block(&hash).map_err(node_error)?;
    Ok(Json::null())
}
