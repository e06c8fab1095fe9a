//! The dynamic mempool minimum fee of a full mempool ([`Node::set_mempool_min_fee`]): Core's -26
//! "mempool min fee not met, <fee> < <min fee>", `getmempoolinfo.mempoolminfee`, eviction, and
//! lowering it again.

mod sim_support;

use bitcoin::Amount;
use bitcoin::consensus::encode::serialize_hex;
use bitcoind_sim::node::NodeEvent;
use bitcoind_sim::wallet::TestWallet;
use serde_json::json;
use sim_support::{err, ok, start};

#[test]
fn transaction_below_the_mempool_min_fee_is_refused_with_cores_message_until_it_falls() {
    let (sim, _dir) = start(|_| {});
    let node = sim.node();
    let wallet = TestWallet::new(3);
    wallet.fund(&node, 2).unwrap();
    assert_eq!(
        ok(&sim, "getmempoolinfo", json!([]))["mempoolminfee"],
        json!(0.000001)
    );

    // The wallet pays 2 sat/vB (2000 sat/kvB); a floor of 5000 sat/kvB refuses it.
    let tx = wallet
        .send(&node, &wallet.fresh_script(), Amount::from_sat(50_000))
        .unwrap();
    let vsize = tx.vsize() as u64;
    let fee = node
        .accept_transaction(tx.clone(), None, true)
        .unwrap()
        .fee
        .to_sat();
    assert!(fee * 1000 < 5000 * vsize);
    node.set_mempool_min_fee(5000);
    assert_eq!(node.mempool_min_fee(), 5000);
    assert_eq!(
        ok(&sim, "getmempoolinfo", json!([]))["mempoolminfee"],
        json!(0.00005)
    );
    let required = (5000 * vsize).div_ceil(1000);
    let (status, code, message) = err(&sim, "sendrawtransaction", json!([serialize_hex(&tx)]));
    assert_eq!(
        (status, code, message),
        (
            500,
            -26,
            format!("mempool min fee not met, {fee} < {required}")
        )
    );
    let tested = ok(&sim, "testmempoolaccept", json!([[serialize_hex(&tx)]]));
    assert_eq!(tested[0]["allowed"], false);
    assert_eq!(tested[0]["reject-reason"], "mempool min fee not met");

    // Lowered: accepted, and mempoolminfee is back to the min relay fee.
    node.set_mempool_min_fee(0);
    assert_eq!(
        ok(&sim, "getmempoolinfo", json!([]))["mempoolminfee"],
        json!(0.000001)
    );
    assert_eq!(
        ok(&sim, "sendrawtransaction", json!([serialize_hex(&tx)])),
        tx.compute_txid().to_string()
    );
}

#[test]
fn a_floor_below_the_incremental_relay_fee_counts_as_the_incremental_relay_fee() {
    let (sim, _dir) = start(|_| {});
    sim.node().set_mempool_min_fee(1);
    assert_eq!(sim.node().mempool_min_fee(), 100);
}

#[test]
fn raising_the_floor_evicts_cheaper_mempool_transactions_and_reports_them_removed() {
    let (sim, _dir) = start(|_| {});
    let node = sim.node();
    let wallet = TestWallet::new(4);
    wallet.fund(&node, 1).unwrap();
    let tx = wallet
        .send(&node, &wallet.fresh_script(), Amount::from_sat(50_000))
        .unwrap();
    let txid = tx.compute_txid();
    node.accept_transaction(tx, None, false).unwrap();
    let events = node.subscribe();
    node.set_mempool_min_fee(1000);
    assert!(
        node.mempool_entry(&txid).is_some(),
        "2 sat/vB stays above 1 sat/vB"
    );
    node.set_mempool_min_fee(3000);
    assert!(node.mempool_entry(&txid).is_none());
    assert!(matches!(
        events.try_recv(),
        Ok(NodeEvent::TxRemoved { txid: removed, .. }) if removed == txid
    ));
}
