//! The client teosd uses, `bitcoincore-rpc` 0.19 with cookie authentication, against the
//! simulator: every method the simulator implements, through the client's typed methods where it
//! has them (so their result types must deserialize) and `call()` otherwise.

mod sim_support;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::Hash;
use bitcoin::{Amount, BlockHash, Network};
use bitcoincore_rpc::jsonrpc::error::{Error as JsonRpcError, RpcError};
use bitcoincore_rpc::{Auth, Client, Error, RpcApi};
use bitcoind_sim::Simulator;
use bitcoind_sim::wallet::TestWallet;
use serde_json::{Value, json};
use sim_support::start;

fn client(sim: &Simulator) -> Client {
    Client::new(&sim.rpc_url(), Auth::CookieFile(sim.cookie_path())).unwrap()
}

/// The RPC error code of a failed call.
fn code<T: std::fmt::Debug>(result: Result<T, Error>) -> i32 {
    match result {
        Err(Error::JsonRpc(JsonRpcError::Rpc(RpcError { code, .. }))) => code,
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

#[test]
fn node_information_methods_deserialize() {
    let (sim, _dir) = start(|_| {});
    let rpc = client(&sim);
    let info = rpc.get_blockchain_info().unwrap();
    assert_eq!(info.chain, Network::Regtest);
    assert_eq!(info.blocks, 0);
    assert!(info.initial_block_download);
    let network = rpc.get_network_info().unwrap();
    assert_eq!(network.version, 310_000);
    assert_eq!(rpc.version().unwrap(), 310_000);
    assert_eq!(rpc.get_block_count().unwrap(), 0);
    let genesis = rpc.get_best_block_hash().unwrap();
    assert_eq!(rpc.get_block_hash(0).unwrap(), genesis);
    assert!(rpc.uptime().unwrap() < 3_600);
    let notifications = rpc.get_zmq_notifications().unwrap();
    assert_eq!(notifications.len(), 5);
    assert_eq!(notifications[0].notification_type, "pubhashblock");
    assert_eq!(notifications[0].hwm, 1000);
    let fee = rpc.estimate_smart_fee(6, None).unwrap();
    assert_eq!(fee.fee_rate, None);
    assert_eq!(
        fee.errors,
        Some(vec!["Insufficient data or no feerate found".to_owned()])
    );
    let fee = rpc
        .estimate_smart_fee(2, Some(bitcoincore_rpc::json::EstimateMode::Conservative))
        .unwrap();
    assert_eq!(fee.blocks, 0);
    let mempool = rpc.get_mempool_info().unwrap();
    assert_eq!(mempool.size, 0);
    assert_eq!(code(rpc.get_block_hash(99_999)), -8);
    assert_eq!(code(rpc.call::<Value>("nosuchmethod", &[])), -32601);
}

#[test]
fn blocks_and_headers_deserialize_at_every_verbosity() {
    let (sim, _dir) = start(|_| {});
    let rpc = client(&sim);
    let address = Simulator::mining_address();
    let hashes = rpc.generate_to_address(3, &address).unwrap();
    assert_eq!(hashes.len(), 3);
    let hash = hashes[1];
    let header = rpc.get_block_header(&hash).unwrap();
    assert_eq!(header.block_hash(), hash);
    let header_info = rpc.get_block_header_info(&hash).unwrap();
    assert_eq!((header_info.height, header_info.confirmations), (2, 2));
    assert_eq!(header_info.next_block_hash, Some(hashes[2]));
    let block = rpc.get_block(&hash).unwrap();
    assert_eq!(block.block_hash(), hash);
    assert_eq!(rpc.get_block_hex(&hash).unwrap(), serialize_hex(&block));
    let info = rpc.get_block_info(&hash).unwrap();
    assert_eq!(info.tx, vec![block.txdata[0].compute_txid()]);
    let decoded: Value = rpc.call("getblock", &[json!(hash), json!(2)]).unwrap();
    assert_eq!(
        decoded["tx"][0]["txid"],
        block.txdata[0].compute_txid().to_string()
    );
    assert_eq!(
        code(rpc.get_block(&BlockHash::from_byte_array([0; 32]))),
        -5
    );
    assert_eq!(
        code(rpc.get_block_header_info(&BlockHash::from_byte_array([0; 32]))),
        -5
    );
}

#[test]
fn transactions_move_from_mempool_to_chain() {
    let (sim, _dir) = start(|_| {});
    let rpc = client(&sim);
    let wallet = TestWallet::new(11);
    wallet.fund(&sim.node(), 2).unwrap();
    let tx = wallet
        .send(
            &sim.node(),
            &wallet.fresh_script(),
            Amount::from_sat(200_000),
        )
        .unwrap();
    let txid = tx.compute_txid();

    let accepted = rpc.test_mempool_accept(&[&tx]).unwrap();
    assert!(accepted[0].allowed, "{accepted:?}");
    assert_eq!(accepted[0].txid, txid);
    let decoded = rpc.decode_raw_transaction(&tx, None).unwrap();
    assert_eq!(decoded.txid, txid);
    assert_eq!(rpc.send_raw_transaction(&tx).unwrap(), txid);
    let again: Value = rpc
        .call(
            "sendrawtransaction",
            &[json!(serialize_hex(&tx)), json!(0.1)],
        )
        .unwrap();
    assert_eq!(
        again,
        json!(txid.to_string()),
        "already in the mempool: same txid"
    );
    let rejected = rpc.test_mempool_accept(&[&tx]).unwrap();
    assert_eq!(
        rejected[0].reject_reason.as_deref(),
        Some("txn-already-in-mempool")
    );

    assert_eq!(rpc.get_raw_mempool().unwrap(), vec![txid]);
    // bitcoincore-rpc 0.19's mempool entry type requires `bip125-replaceable`, which Core v31
    // no longer sends (transcript entry 34); like against a real v31 node, the typed methods
    // fail and `call()` works.
    let missing_field = |e: Error| e.to_string().contains("bip125-replaceable");
    assert!(rpc.get_mempool_entry(&txid).is_err_and(missing_field));
    assert!(rpc.get_raw_mempool_verbose().is_err_and(missing_field));
    let entry: Value = rpc.call("getmempoolentry", &[json!(txid)]).unwrap();
    assert_eq!(entry["vsize"], tx.vsize());
    let verbose: Value = rpc.call("getrawmempool", &[json!(true)]).unwrap();
    assert_eq!(
        verbose[txid.to_string()]["wtxid"],
        tx.compute_wtxid().to_string()
    );
    assert_eq!(rpc.get_raw_transaction(&txid, None).unwrap(), tx);
    let info = rpc.get_raw_transaction_info(&txid, None).unwrap();
    assert_eq!((info.blockhash, info.confirmations), (None, None));
    let by_int: Value = rpc
        .call("getrawtransaction", &[json!(txid), json!(1)])
        .unwrap();
    assert_eq!(by_int["txid"], txid.to_string());
    assert_eq!(rpc.get_mempool_info().unwrap().size, 1);

    let block = rpc
        .generate_to_address(1, &Simulator::mining_address())
        .unwrap()[0];
    let info = rpc.get_raw_transaction_info(&txid, Some(&block)).unwrap();
    assert_eq!((info.blockhash, info.confirmations), (Some(block), Some(1)));
    assert_eq!(
        rpc.get_raw_transaction(&txid, None).unwrap(),
        tx,
        "found with txindex"
    );
    assert_eq!(code(rpc.get_mempool_entry(&txid)), -5);
    assert_eq!(code(rpc.send_raw_transaction(&tx)), -27);
    assert_eq!(
        code(rpc.call::<Value>("sendrawtransaction", &[json!("00")])),
        -22
    );
}

#[test]
fn generateblock_and_reorg_control() {
    let (sim, _dir) = start(|_| {});
    let rpc = client(&sim);
    let wallet = TestWallet::new(12);
    wallet.fund(&sim.node(), 1).unwrap();
    let tx = wallet
        .send(
            &sim.node(),
            &wallet.fresh_script(),
            Amount::from_sat(100_000),
        )
        .unwrap();
    let address = Simulator::mining_address().to_string();

    let with_tx: Value = rpc
        .call(
            "generateblock",
            &[json!(address), json!([serialize_hex(&tx)])],
        )
        .unwrap();
    let with_tx: BlockHash = serde_json::from_value(with_tx["hash"].clone()).unwrap();
    assert_eq!(rpc.get_block(&with_tx).unwrap().txdata[1], tx);
    let empty: Value = rpc
        .call("generateblock", &[json!(address), json!([])])
        .unwrap();
    let empty: BlockHash = serde_json::from_value(empty["hash"].clone()).unwrap();
    assert_eq!(rpc.get_block_info(&empty).unwrap().n_tx, 1);

    rpc.invalidate_block(&with_tx).unwrap();
    assert_eq!(
        rpc.get_raw_mempool().unwrap(),
        vec![tx.compute_txid()],
        "back to the mempool"
    );
    let tips = rpc.get_chain_tips().unwrap();
    assert_eq!(tips.len(), 2);
    assert_eq!(rpc.get_block_header_info(&empty).unwrap().confirmations, -1);
    rpc.reconsider_block(&with_tx).unwrap();
    assert_eq!(rpc.get_best_block_hash().unwrap(), empty);
    assert_eq!(
        code(rpc.invalidate_block(&BlockHash::from_byte_array([1; 32]))),
        -5
    );
    let bad_address = rpc.call::<Value>("generatetoaddress", &[json!(1), json!("notanaddress")]);
    assert_eq!(code(bad_address), -5);
}

#[test]
fn stop_is_answered_before_the_node_stops() {
    let (sim, _dir) = start(|_| {});
    let rpc = client(&sim);
    assert_eq!(rpc.stop().unwrap(), "Bitcoin Core stopping");
    assert!(sim.wait_for_stop_request(Some(std::time::Duration::from_secs(20))));
}
