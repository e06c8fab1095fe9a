//! A big block over JSON-RPC: `getblock <hash> 0` is exactly its consensus encoding in hex inside
//! Core's envelope, `getblock <hash> 1` lists every txid in block order, and verbosity 2's
//! per-transaction `hex` matches each transaction's encoding.

mod sim_support;

use bitcoin::consensus::encode::serialize_hex;
use serde_json::Value;
use sim_support::big_block::mine_big_block;
use sim_support::{ok, post, start};

/// Transactions in the block, coinbase included: the size of `teos-bench chain`'s blocks (892 kB).
const TXS: usize = 4_000;

#[test]
fn big_block_hex_is_its_consensus_encoding_and_txids_are_in_block_order() {
    let (sim, _dir) = start(|c| c.zmq = false);
    let node = sim.node();
    let hash = mine_big_block(&node, TXS);
    let block = node.block(&hash).unwrap();
    assert_eq!(block.txdata.len(), TXS);

    let raw = post(
        &sim,
        &format!(r#"{{"jsonrpc":"1.0","id":"t","method":"getblock","params":["{hash}",0]}}"#),
    );
    assert_eq!(raw.status, 200);
    assert_eq!(
        raw.body,
        format!(
            "{{\"result\":\"{}\",\"error\":null,\"id\":\"t\"}}\n",
            serialize_hex(&block)
        )
    );
    let v2 = post(
        &sim,
        &format!(r#"{{"jsonrpc":"2.0","id":7,"method":"getblock","params":["{hash}",false]}}"#),
    );
    assert_eq!(
        v2.body,
        format!(
            "{{\"jsonrpc\":\"2.0\",\"result\":\"{}\",\"id\":7}}\n",
            serialize_hex(&block)
        )
    );

    let verbose = ok(&sim, "getblock", serde_json::json!([hash.to_string(), 1]));
    let expected: Vec<Value> = block
        .txdata
        .iter()
        .map(|tx| Value::String(tx.compute_txid().to_string()))
        .collect();
    assert_eq!(verbose["tx"], Value::Array(expected));
    assert_eq!(verbose["nTx"], TXS);
    assert_eq!(verbose["hash"], hash.to_string());
    // Asked twice: the remembered txids give the same answer.
    assert_eq!(
        ok(&sim, "getblock", serde_json::json!([hash.to_string(), 1])),
        verbose
    );

    let decoded = ok(&sim, "getblock", serde_json::json!([hash.to_string(), 2]));
    for i in [0, 1, TXS / 2, TXS - 1] {
        assert_eq!(decoded["tx"][i]["hex"], serialize_hex(&block.txdata[i]));
        assert_eq!(
            decoded["tx"][i]["txid"],
            block.txdata[i].compute_txid().to_string()
        );
    }

    let header = ok(
        &sim,
        "getblockheader",
        serde_json::json!([hash.to_string(), false]),
    );
    assert_eq!(header, serialize_hex(&block.header));
}
