//! Method behaviours the transcript does not show: txindex off, `maxfeerate`/`maxburnamount`,
//! `generateblock` with mempool txids and descriptors, verbosity spellings, parameter limits.

mod sim_support;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Amount, ScriptBuf, Transaction, TxOut};
use bitcoind_sim::Simulator;
use bitcoind_sim::wallet::TestWallet;
use serde_json::{Value, json};
use sim_support::{err, ok, start};

/// A funded wallet and one unbroadcast payment from it.
fn payment(sim: &Simulator, seed: u64) -> (TestWallet, Transaction) {
    let wallet = TestWallet::new(seed);
    wallet.fund(&sim.node(), 2).unwrap();
    let tx = wallet
        .send(
            &sim.node(),
            &wallet.fresh_script(),
            Amount::from_sat(100_000),
        )
        .unwrap();
    (wallet, tx)
}

#[test]
fn without_txindex_confirmed_transactions_need_the_block_hash() {
    let (sim, _dir) = start(|c| c.txindex = false);
    let (_wallet, tx) = payment(&sim, 21);
    let txid = ok(&sim, "sendrawtransaction", json!([serialize_hex(&tx)]));
    let block = ok(
        &sim,
        "generatetoaddress",
        json!([1, Simulator::mining_address().to_string()]),
    )[0]
    .clone();
    let (_, code, message) = err(&sim, "getrawtransaction", json!([txid, true]));
    assert_eq!(code, -5);
    assert_eq!(
        message,
        "No such mempool transaction. Use -txindex or provide a block hash to enable blockchain transaction queries. Use gettransaction for wallet transactions."
    );
    let found = ok(&sim, "getrawtransaction", json!([txid, true, block]));
    assert_eq!(found["in_active_chain"], true);
    assert_eq!(found["confirmations"], 1);
    let unknown_block = "11".repeat(32);
    assert_eq!(
        err(
            &sim,
            "getrawtransaction",
            json!([txid, true, unknown_block])
        )
        .2,
        "Block hash not found"
    );
}

#[test]
fn verbosity_accepts_bools_and_numbers() {
    let (sim, _dir) = start(|_| {});
    let hash = sim.mine(1)[0].to_string();
    assert!(ok(&sim, "getblock", json!([hash, false])).is_string());
    assert!(ok(&sim, "getblock", json!([hash, true]))["tx"][0].is_string());
    assert!(ok(&sim, "getblock", json!([hash, 2]))["tx"][0].is_object());
    assert!(ok(&sim, "getblock", json!([hash, 3]))["tx"][0].is_object());
    let txid = ok(&sim, "getblock", json!([hash]))["tx"][0].clone();
    assert!(ok(&sim, "getrawtransaction", json!([txid, 0])).is_string());
    assert!(ok(&sim, "getrawtransaction", json!([txid, 1]))["vin"][0]["coinbase"].is_string());
    assert_eq!(err(&sim, "getblock", json!([hash, "x"])).1, -3);
    let (_, code, message) = err(&sim, "getblockheader", json!([hash, 1]));
    assert_eq!(code, -3);
    assert!(message.contains(
        "\"Position 2 (verbose)\": \"JSON value of type number is not of expected type bool\""
    ));
}

#[test]
fn maxfeerate_is_btc_per_kvb_and_zero_means_no_limit() {
    let (sim, _dir) = start(|_| {});
    let (_wallet, tx) = payment(&sim, 22);
    let hex = serialize_hex(&tx);
    // The wallet pays 2 sat/vB = 0.00002 BTC/kvB.
    let (_, code, message) = err(&sim, "sendrawtransaction", json!([hex, 0.00001]));
    assert_eq!(code, -25);
    assert_eq!(
        message,
        "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)"
    );
    let (_, code, _) = err(&sim, "sendrawtransaction", json!([hex, 1]));
    assert_eq!(code, -8, "1 BTC/kvB or more is refused");
    assert_eq!(err(&sim, "sendrawtransaction", json!([hex, "abc"])).1, -3);
    let allowed = ok(&sim, "testmempoolaccept", json!([[hex], "0.0001"]));
    assert_eq!(allowed[0]["allowed"], true);
    assert_eq!(allowed[0]["vsize"], tx.vsize());
    assert_eq!(
        ok(&sim, "sendrawtransaction", json!([hex, 0])),
        tx.compute_txid().to_string()
    );
}

#[test]
fn maxburnamount_guards_op_return_outputs() {
    let (sim, _dir) = start(|_| {});
    let wallet = TestWallet::new(23);
    wallet.fund(&sim.node(), 1).unwrap();
    let burn = ScriptBuf::new_op_return([1u8; 4]);
    let mut tx = wallet
        .send(
            &sim.node(),
            &wallet.fresh_script(),
            Amount::from_sat(100_000),
        )
        .unwrap();
    // Unsigned changes are fine here: the check happens before the node sees the transaction.
    tx.output.push(TxOut {
        value: Amount::from_sat(1_000),
        script_pubkey: burn,
    });
    let (_, code, message) = err(&sim, "sendrawtransaction", json!([serialize_hex(&tx)]));
    assert_eq!(code, -25);
    assert_eq!(
        message,
        "Unspendable output exceeds maximum configured by user (maxburnamount)"
    );
}

#[test]
fn generateblock_takes_mempool_txids_and_descriptors() {
    let (sim, _dir) = start(|_| {});
    let (_wallet, tx) = payment(&sim, 24);
    let txid = ok(&sim, "sendrawtransaction", json!([serialize_hex(&tx)]));
    let address = Simulator::mining_address().to_string();
    let checksum = bitcoind_sim::json::descriptor_checksum(&format!("addr({address})")).unwrap();
    let descriptor = format!("addr({address})#{checksum}");
    let hash = ok(&sim, "generateblock", json!([descriptor, [txid]]))["hash"].clone();
    let block = ok(&sim, "getblock", json!([hash]));
    assert_eq!(block["tx"][1], txid);
    assert_eq!(ok(&sim, "getrawmempool", json!([])), json!([]));

    let (_, code, message) = err(&sim, "generateblock", json!([address, ["22".repeat(32)]]));
    assert_eq!(code, -5);
    assert!(message.contains("not in mempool"), "{message}");
    let (_, code, message) = err(&sim, "generateblock", json!(["bc1qnotregtest", []]));
    assert_eq!(
        (code, message.as_str()),
        (-5, "Error: Invalid address or descriptor")
    );
    let (_, code, _) = err(&sim, "generateblock", json!([address, ["zz"]]));
    assert_eq!(code, -22);
}

#[test]
fn parameter_limits_follow_core() {
    let (sim, _dir) = start(|_| {});
    assert_eq!(err(&sim, "testmempoolaccept", json!([[]])).1, -8);
    assert_eq!(err(&sim, "estimatesmartfee", json!([0])).1, -8);
    assert_eq!(err(&sim, "estimatesmartfee", json!([2, "FAST"])).1, -8);
    assert_eq!(
        ok(&sim, "estimatesmartfee", json!([2, "CONSERVATIVE"]))["blocks"],
        0
    );
    assert_eq!(err(&sim, "getrawmempool", json!([true, true])).1, -8);
    assert_eq!(
        err(&sim, "getmempoolentry", json!(["11".repeat(32)])).2,
        "Transaction not in mempool"
    );
    assert_eq!(
        err(&sim, "decoderawtransaction", json!(["00"])).2,
        "TX decode failed"
    );
    let (_, code, message) = err(&sim, "generatetoaddress", json!([1, "notanaddress"]));
    assert_eq!((code, message.as_str()), (-5, "Error: Invalid address"));
    let genesis_coinbase = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b";
    assert_eq!(
        err(&sim, "getrawtransaction", json!([genesis_coinbase])).1,
        -5
    );
    let tips: Value = ok(&sim, "getchaintips", json!([]));
    assert_eq!(
        tips,
        json!([{"height": 0, "hash": sim.node().best_block_hash().to_string(), "branchlen": 0, "status": "active"}])
    );
}
