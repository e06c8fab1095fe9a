//! Read-side views of [`State`] for the public API (`getblockheader`, `getchaintips`,
//! `getrawtransaction`, `gettxout`) and block building for `generatetoaddress`/`generateblock`.

use std::collections::HashSet;

use bitcoin::{Amount, Block, BlockHash, OutPoint, ScriptBuf, Transaction, Txid};

use super::state::{ProcessOutcome, State, now};
use super::{
    BlockEntry, BlockStatus, ChainTip, NodeError, OwnedOutput, TxBlockInfo, TxLookup,
    TxLookupError, TxOrTxid, TxOutInfo, mining,
};

/// RPC_INTERNAL_ERROR, as `generatetoaddress` answers a block `ProcessNewBlock` refused.
const RPC_INTERNAL_ERROR: i32 = -32603;
/// RPC_INVALID_ADDRESS_OR_KEY.
const RPC_INVALID_ADDRESS_OR_KEY: i32 = -5;
/// RPC_VERIFY_ERROR.
const RPC_VERIFY_ERROR: i32 = -25;

pub(crate) fn block_entry(s: &State, idx: usize) -> BlockEntry {
    let n = s.tree.node(idx);
    let active = s.tree.is_active(idx);
    let status = if active {
        BlockStatus::Active
    } else if n.invalid {
        BlockStatus::Invalid
    } else {
        BlockStatus::ValidFork
    };
    let confirmations = if active {
        i64::from(s.tree.height()) - i64::from(n.height) + 1
    } else {
        -1
    };
    let next = if active {
        s.tree.active_at(n.height + 1).map(|i| s.tree.node(i).hash)
    } else {
        None
    };
    BlockEntry {
        hash: n.hash,
        header: n.header,
        height: n.height,
        chainwork: n.chainwork,
        status,
        confirmations,
        median_time: n.median_time,
        n_tx: n.block.txdata.len(),
        size: n.size,
        stripped_size: n.stripped_size,
        weight: n.weight,
        previous: n.parent.map(|p| s.tree.node(p).hash),
        next,
    }
}

pub(crate) fn chain_tips(s: &State) -> Vec<ChainTip> {
    let tip = s.tree.tip();
    let mut tips: Vec<(usize, ChainTip)> = s
        .tree
        .tips()
        .into_iter()
        .map(|idx| {
            let n = s.tree.node(idx);
            let fork = s.tree.node(s.tree.fork_point(idx)).height;
            let status = if idx == tip {
                "active"
            } else if n.invalid {
                "invalid"
            } else if n.validated {
                "valid-fork"
            } else {
                "valid-headers"
            };
            (
                idx,
                ChainTip {
                    height: n.height,
                    hash: n.hash,
                    branch_len: n.height - fork,
                    status,
                },
            )
        })
        .collect();
    tips.sort_by(|a, b| b.1.height.cmp(&a.1.height).then(a.0.cmp(&b.0)));
    tips.into_iter().map(|(_, t)| t).collect()
}

fn tx_block_info(s: &State, idx: usize) -> TxBlockInfo {
    let n = s.tree.node(idx);
    let active = s.tree.is_active(idx);
    TxBlockInfo {
        hash: n.hash,
        height: n.height,
        confirmations: if active {
            i64::from(s.tree.height()) - i64::from(n.height) + 1
        } else {
            0
        },
        time: n.header.time,
        in_active_chain: active,
    }
}

/// The transaction `txid` of block `idx`, found through the block's remembered txids (computed
/// the first time any reader needs them, then a scan of 32-byte values).
fn find_in_block(s: &State, idx: usize, txid: &Txid) -> Option<Transaction> {
    let shared = s.tree.node(idx).shared();
    let position = shared.txids().iter().position(|t| t == txid)?;
    shared.block().txdata.get(position).cloned()
}

/// Core's `GetTransaction`: with a block hash only that block is searched; otherwise the
/// mempool, then the transaction index when enabled.
pub(crate) fn get_transaction(
    s: &State,
    txid: &Txid,
    block: Option<&BlockHash>,
) -> Result<TxLookup, TxLookupError> {
    if let Some(hash) = block {
        let idx = s.tree.lookup(hash).ok_or(TxLookupError::BlockNotFound)?;
        let tx = find_in_block(s, idx, txid).ok_or(TxLookupError::NotInBlock)?;
        return Ok(TxLookup {
            tx,
            block: Some(tx_block_info(s, idx)),
        });
    }
    if let Some(e) = s.mempool.get(txid) {
        return Ok(TxLookup {
            tx: e.tx.clone(),
            block: None,
        });
    }
    let txindex = s.config.txindex;
    if txindex
        && let Some(idx) = s.txindex.get(txid).and_then(|h| s.tree.lookup(h))
        && let Some(tx) = find_in_block(s, idx, txid)
    {
        return Ok(TxLookup {
            tx,
            block: Some(tx_block_info(s, idx)),
        });
    }
    Err(TxLookupError::NotFound { txindex })
}

/// Time of a block mined on the tip now: Core's `UpdateTime` (median time past + 1 at least).
fn block_time(s: &State) -> u32 {
    let mtp = s.tree.tip_node().median_time;
    (mtp + 1).max(now() as u32)
}

/// A `generatetoaddress` block on the tip: the whole mempool (best packages first) and a
/// coinbase paying subsidy plus fees to `script`.
pub(crate) fn template(s: &State, script: &ScriptBuf) -> Result<Block, NodeError> {
    let txids = mining::select_transactions(&s.mempool);
    let mut fees = Amount::ZERO;
    let mut txs = Vec::with_capacity(txids.len());
    for t in &txids {
        if let Some(e) = s.mempool.get(t) {
            fees += e.fee;
            txs.push(e.tx.clone());
        }
    }
    let tip = s.tree.tip_node();
    let height = tip.height + 1;
    let coinbase = mining::coinbase(height, script, mining::subsidy(height) + fees);
    Ok(mining::assemble(tip.hash, block_time(s), coinbase, txs))
}

/// A `generateblock` block: exactly `txs`, a subsidy-only coinbase, checked with
/// `TestBlockValidity`.
pub(crate) fn explicit_block(
    s: &State,
    script: &ScriptBuf,
    txs: Vec<TxOrTxid>,
) -> Result<Block, NodeError> {
    let mut resolved: Vec<Transaction> = Vec::with_capacity(txs.len());
    for item in txs {
        match item {
            TxOrTxid::Tx(tx) => resolved.push(tx),
            TxOrTxid::Txid(txid) => match s.mempool.get(&txid) {
                Some(e) => resolved.push(e.tx.clone()),
                None => {
                    return Err(NodeError::Rpc {
                        code: RPC_INVALID_ADDRESS_OR_KEY,
                        message: format!("Transaction {txid} not in mempool."),
                    });
                }
            },
        }
    }
    let tip = s.tree.tip_node();
    let height = tip.height + 1;
    let coinbase = mining::coinbase(height, script, mining::subsidy(height));
    let block = mining::assemble(tip.hash, block_time(s), coinbase, resolved);
    if let Err(reject) = s.test_block_validity(&block) {
        return Err(NodeError::Rpc {
            code: RPC_VERIFY_ERROR,
            message: format!("TestBlockValidity failed: {}", reject.to_core_string()),
        });
    }
    Ok(block)
}

/// Grinds the nonce and hands the block to `ProcessNewBlock` like Core's `GenerateBlock`.
pub(crate) fn process_mined(s: &mut State, mut block: Block) -> Result<BlockHash, NodeError> {
    if !mining::grind(&mut block) {
        return Err(NodeError::Rpc {
            code: RPC_INTERNAL_ERROR,
            message: "Couldn't find a valid nonce".into(),
        });
    }
    let hash = block.block_hash();
    match s.process_block(block)? {
        ProcessOutcome::Rejected { stored: false, .. } => Err(NodeError::Rpc {
            code: RPC_INTERNAL_ERROR,
            message: "ProcessNewBlock, block not accepted".into(),
        }),
        _ => Ok(hash),
    }
}

pub(crate) fn get_tx_out(
    s: &State,
    outpoint: &OutPoint,
    include_mempool: bool,
) -> Option<TxOutInfo> {
    let best_block = s.tree.tip_node().hash;
    if include_mempool {
        if s.mempool.spender(outpoint).is_some() {
            return None;
        }
        if let Some(out) = s.mempool.output(outpoint) {
            return Some(TxOutInfo {
                txout: out.clone(),
                confirmations: 0,
                coinbase: false,
                best_block,
            });
        }
    }
    let coin = s.coins.get(outpoint)?;
    Some(TxOutInfo {
        txout: coin.txout.clone(),
        confirmations: s.tree.height() - coin.height + 1,
        coinbase: coin.coinbase,
        best_block,
    })
}

pub(crate) fn outputs_to(s: &State, scripts: &HashSet<ScriptBuf>) -> Vec<OwnedOutput> {
    let tip = s.tree.height();
    let mut out: Vec<OwnedOutput> = s
        .coins
        .iter()
        .filter(|(_, c)| scripts.contains(&c.txout.script_pubkey))
        .map(|(op, c)| OwnedOutput {
            outpoint: *op,
            txout: c.txout.clone(),
            height: Some(c.height),
            confirmations: tip - c.height + 1,
            coinbase: c.coinbase,
            spent_in_mempool: s.mempool.spender(op).is_some(),
        })
        .collect();
    for e in s.mempool.ordered() {
        for (vout, txout) in e.tx.output.iter().enumerate() {
            if !scripts.contains(&txout.script_pubkey) {
                continue;
            }
            let outpoint = OutPoint {
                txid: e.txid,
                vout: vout as u32,
            };
            out.push(OwnedOutput {
                outpoint,
                txout: txout.clone(),
                height: None,
                confirmations: 0,
                coinbase: false,
                spent_in_mempool: s.mempool.spender(&outpoint).is_some(),
            });
        }
    }
    out.sort_by(|a, b| {
        let ha = a.height.unwrap_or(u32::MAX);
        let hb = b.height.unwrap_or(u32::MAX);
        ha.cmp(&hb).then(a.outpoint.cmp(&b.outpoint))
    });
    out
}
