//! The test wallet: funding, signed spends and breach pairs, checked by the node's mempool and by
//! libbitcoinconsensus (Bitcoin Core's script interpreter) for the signatures.

use std::collections::HashSet;

use bitcoin::consensus::encode::serialize;
use bitcoin::{Amount, Transaction, TxOut};
use bitcoind_sim::node::{Node, NodeConfig};
use bitcoind_sim::wallet::{FEE_RATE_SAT_PER_VB, TestWallet, WalletError};

fn open(dir: &std::path::Path) -> Node {
    Node::open(NodeConfig {
        datadir: dir.to_path_buf(),
        txindex: true,
        persist_mempool: false,
    })
    .unwrap()
}

/// Runs Core's consensus script checks (P2SH, DERSIG, NULLDUMMY, CLTV, CSV, WITNESS) on every input.
fn assert_scripts_valid(tx: &Transaction, spent: &[TxOut]) {
    let bytes = serialize(tx);
    for (i, out) in spent.iter().enumerate() {
        bitcoinconsensus::verify(
            out.script_pubkey.as_bytes(),
            out.value.to_sat(),
            &bytes,
            None,
            i,
        )
        .unwrap_or_else(|e| {
            panic!(
                "input {i} of {} fails script validation: {e:?}",
                tx.compute_txid()
            )
        });
    }
}

fn spent_outputs(node: &Node, tx: &Transaction) -> Vec<TxOut> {
    tx.input
        .iter()
        .map(|i| {
            node.get_tx_out(&i.previous_output, true)
                .expect("input is unspent")
                .txout
        })
        .collect()
}

#[test]
fn same_seed_gives_same_keys_and_fresh_scripts_are_distinct() {
    let a = TestWallet::new(7);
    let b = TestWallet::new(7);
    let c = TestWallet::new(8);
    assert_eq!(a.script_pubkey(), b.script_pubkey());
    assert_ne!(a.script_pubkey(), c.script_pubkey());
    assert!(a.address().to_string().starts_with("bcrt1q"));
    let fresh: HashSet<_> = (0..10).map(|_| a.fresh_script()).collect();
    assert_eq!(fresh.len(), 10);
    assert!(!fresh.contains(&a.script_pubkey()));
    assert!(a.script_pubkey().is_p2wpkh());
}

#[test]
fn fund_makes_the_requested_coins_mature() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let wallet = TestWallet::new(1);
    assert!(wallet.spendable(&node).is_empty());
    wallet.fund(&node, 5).unwrap();
    assert_eq!(node.block_count(), 105);
    let coins = wallet.spendable(&node);
    assert!(coins.len() >= 5, "{} mature coins", coins.len());
    assert!(coins.iter().all(|c| c.coinbase && c.confirmations >= 100));
}

#[test]
fn send_builds_a_signed_standard_transaction_the_node_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let wallet = TestWallet::new(2);
    wallet.fund(&node, 2).unwrap();
    let to = TestWallet::new(99).script_pubkey();
    let tx = wallet
        .send(&node, &to, Amount::from_sat(1_000_000))
        .unwrap();
    assert_scripts_valid(&tx, &spent_outputs(&node, &tx));
    let accepted = node.accept_transaction(tx.clone(), None, false).unwrap();
    assert_eq!(accepted.txid, tx.compute_txid());
    assert!(accepted.fee.to_sat() >= accepted.vsize * FEE_RATE_SAT_PER_VB);
    assert!(accepted.fee.to_sat() <= accepted.vsize * FEE_RATE_SAT_PER_VB + 4);
    assert_eq!(tx.output[0].script_pubkey, to);
    assert_eq!(tx.output[0].value, Amount::from_sat(1_000_000));
    node.generate_to_script(1, &wallet.script_pubkey()).unwrap();
    assert!(
        node.get_transaction(&tx.compute_txid(), None)
            .unwrap()
            .block
            .is_some()
    );
}

#[test]
fn dust_sends_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let wallet = TestWallet::new(3);
    wallet.fund(&node, 1).unwrap();
    let err = wallet
        .send(&node, &wallet.fresh_script(), Amount::from_sat(293))
        .unwrap_err();
    assert!(matches!(err, WalletError::AmountTooSmall(293)));
}

#[test]
fn breach_pair_is_valid_and_both_transactions_get_mined() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let wallet = TestWallet::new(4);
    wallet.fund(&node, 2).unwrap();
    let breach = wallet
        .build_breach(&node, Amount::from_sat(100_000), 144)
        .unwrap();

    let to_local = &breach.commitment.output[0];
    assert!(to_local.script_pubkey.is_p2wsh());
    assert_eq!(to_local.script_pubkey, breach.witness_script.to_p2wsh());
    assert_eq!(to_local.value, Amount::from_sat(100_000));
    // OP_IF <33-byte key> OP_ELSE <144> OP_CSV OP_DROP <33-byte key> OP_ENDIF OP_CHECKSIG
    let ws = breach.witness_script.as_bytes();
    assert_eq!(ws[0], 0x63);
    assert_eq!(ws[1], 33);
    assert_eq!(&ws[35..39], &[0x67, 0x02, 0x90, 0x00]);
    assert_eq!(&ws[39..41], &[0xb2, 0x75]);
    assert_eq!(&ws[ws.len() - 2..], &[0x68, 0xac]);
    assert_eq!(breach.commitment.lock_time.to_consensus_u32() >> 24, 0x20);
    assert_eq!(breach.commitment.input[0].sequence.0 >> 24, 0x80);
    assert_eq!(
        breach.penalty.input[0].previous_output.txid,
        breach.commitment.compute_txid()
    );
    assert_eq!(breach.penalty.input[0].witness.len(), 3);
    assert_eq!(breach.penalty.input[0].witness.nth(1).unwrap(), &[1u8]);

    assert_scripts_valid(
        &breach.commitment,
        &spent_outputs(&node, &breach.commitment),
    );
    node.accept_transaction(breach.commitment.clone(), None, false)
        .unwrap();
    assert_scripts_valid(&breach.penalty, std::slice::from_ref(to_local));
    let penalty = node
        .accept_transaction(breach.penalty.clone(), None, false)
        .unwrap();
    let floor = breach.penalty.vsize() as u64 * FEE_RATE_SAT_PER_VB;
    assert!(
        (floor..=floor + 4).contains(&penalty.fee.to_sat()),
        "penalty fee {}",
        penalty.fee
    );

    node.generate_to_script(1, &wallet.script_pubkey()).unwrap();
    for tx in [&breach.commitment, &breach.penalty] {
        let found = node.get_transaction(&tx.compute_txid(), None).unwrap();
        assert_eq!(found.block.unwrap().confirmations, 1);
    }
    assert!(node.mempool_txids().is_empty());
}

#[test]
fn many_breaches_spend_distinct_coins() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let wallet = TestWallet::new(5);
    wallet.fund(&node, 30).unwrap();
    let breaches = wallet
        .build_breaches(&node, 30, Amount::from_sat(50_000), 6)
        .unwrap();
    let inputs: HashSet<_> = breaches
        .iter()
        .map(|b| b.commitment.input[0].previous_output)
        .collect();
    assert_eq!(inputs.len(), 30);
    let single = wallet
        .build_breach(&node, Amount::from_sat(50_000), 6)
        .unwrap();
    assert!(!inputs.contains(&single.commitment.input[0].previous_output));
    for b in &breaches {
        node.accept_transaction(b.commitment.clone(), None, false)
            .unwrap();
        node.accept_transaction(b.penalty.clone(), None, false)
            .unwrap();
    }
    assert_eq!(node.mempool_txids().len(), 60);
    node.generate_to_script(1, &wallet.script_pubkey()).unwrap();
    assert!(node.mempool_txids().is_empty());
}

#[test]
fn running_out_of_coins_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let wallet = TestWallet::new(6);
    let err = wallet
        .build_breach(&node, Amount::from_sat(50_000), 6)
        .unwrap_err();
    assert!(matches!(err, WalletError::InsufficientFunds { .. }));
}

#[test]
fn coins_follow_reorgs() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let wallet = TestWallet::new(7);
    wallet.fund(&node, 1).unwrap();
    let before = wallet.spendable(&node).len();
    let tx = wallet
        .send(
            &node,
            &TestWallet::new(100).script_pubkey(),
            Amount::from_sat(10_000),
        )
        .unwrap();
    node.accept_transaction(tx.clone(), None, false).unwrap();
    let hash = node
        .generate_to_script(1, &bitcoin::ScriptBuf::new_op_return([1u8; 4]))
        .unwrap()[0];
    wallet.release_all();
    // The spent coin is gone, the change is a new confirmed coin.
    let after: Vec<_> = wallet.spendable(&node);
    let spent = tx.input[0].previous_output;
    assert!(after.iter().all(|c| c.outpoint != spent));
    assert!(after.iter().any(|c| c.outpoint.txid == tx.compute_txid()));
    // Undo the block: the send is back in the mempool, its change is unconfirmed again.
    node.invalidate_block(&hash).unwrap();
    assert_eq!(node.mempool_txids(), vec![tx.compute_txid()]);
    let reorged = wallet.spendable(&node);
    assert_eq!(reorged.len(), before - 1);
    assert!(reorged.iter().all(|c| c.outpoint.txid != tx.compute_txid()));
}
