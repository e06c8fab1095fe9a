//! Mempool acceptance through `Node::accept_transaction`: every rejection Core gives a tower,
//! with Core's code, reject reason and message (BITCOIND.md table, rpc.json entries 43-66).

use bitcoin::hashes::Hash;
use bitcoin::locktime::absolute::LockTime;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, FeeRate, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, WPubkeyHash,
    Witness,
};
use bitcoind_sim::node::{Node, NodeConfig, NodeEvent, Rejection};

struct Fixture {
    _dir: tempfile::TempDir,
    node: Node,
    /// Mature 50 BTC coinbase outputs, oldest first.
    coins: Vec<OutPoint>,
}

fn script(tag: u8) -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([tag; 20]))
}

/// A node with `mature` spendable coinbase outputs (mined to `script(1)`, then 100 blocks on top).
fn fixture(mature: u32) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(NodeConfig {
        datadir: dir.path().to_path_buf(),
        txindex: true,
        persist_mempool: false,
    })
    .unwrap();
    let hashes = node.generate_to_script(mature + 99, &script(1)).unwrap();
    let coins = hashes[..mature as usize]
        .iter()
        .map(|h| OutPoint {
            txid: node.block(h).unwrap().txdata[0].compute_txid(),
            vout: 0,
        })
        .collect();
    Fixture {
        _dir: dir,
        node,
        coins,
    }
}

/// An unsigned version-2 spend (the simulator does not run scripts), RBF-signalling.
fn spend(inputs: &[OutPoint], outputs: &[(u64, ScriptBuf)]) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: inputs
            .iter()
            .map(|op| TxIn {
                previous_output: *op,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs
            .iter()
            .map(|(v, s)| TxOut {
                value: Amount::from_sat(*v),
                script_pubkey: s.clone(),
            })
            .collect(),
    }
}

const COIN: u64 = 5_000_000_000;

fn send(node: &Node, tx: &Transaction) -> Result<Txid, Rejection> {
    node.accept_transaction(tx.clone(), None, false)
        .map(|a| a.txid)
}

fn assert_rejected(result: Result<Txid, Rejection>, code: i32, reason: &str, message: &str) {
    let r = result.expect_err("expected a rejection");
    assert_eq!(
        (r.code, r.reason.as_str(), r.message.as_str()),
        (code, reason, message)
    );
}

#[test]
fn valid_spend_enters_the_mempool_with_its_fee_and_size() {
    let f = fixture(1);
    let tx = spend(&[f.coins[0]], &[(COIN - 1_000, script(2))]);
    let accepted = f.node.accept_transaction(tx.clone(), None, false).unwrap();
    assert_eq!(accepted.txid, tx.compute_txid());
    assert_eq!(accepted.fee, Amount::from_sat(1_000));
    assert_eq!(accepted.vsize, tx.vsize() as u64);
    assert!(accepted.replaced.is_empty());
    assert_eq!(f.node.mempool_txids(), vec![tx.compute_txid()]);
    let entry = f.node.mempool_entry(&tx.compute_txid()).unwrap();
    assert_eq!(entry.fee, Amount::from_sat(1_000));
    assert_eq!(entry.height, f.node.block_count());
    assert_eq!((entry.ancestor_count, entry.descendant_count), (1, 1));
}

#[test]
fn resending_a_mempool_transaction_returns_its_txid_but_test_accept_rejects_it() {
    let f = fixture(1);
    let tx = spend(&[f.coins[0]], &[(COIN - 1_000, script(2))]);
    let txid = send(&f.node, &tx).unwrap();
    assert_eq!(send(&f.node, &tx).unwrap(), txid);
    let tested = f.node.accept_transaction(tx, None, true).map(|a| a.txid);
    assert_rejected(
        tested,
        -26,
        "txn-already-in-mempool",
        "txn-already-in-mempool",
    );
}

#[test]
fn confirmed_transaction_is_already_in_the_utxo_set() {
    let f = fixture(1);
    let tx = spend(&[f.coins[0]], &[(COIN - 1_000, script(2))]);
    send(&f.node, &tx).unwrap();
    f.node.generate_to_script(1, &script(1)).unwrap();
    assert_rejected(
        send(&f.node, &tx),
        -27,
        "txn-already-known",
        "Transaction outputs already in utxo set",
    );
    let tested = f.node.accept_transaction(tx, None, true).map(|a| a.txid);
    assert_rejected(tested, -26, "txn-already-known", "txn-already-known");
}

#[test]
fn unknown_or_spent_inputs_are_missing() {
    let f = fixture(1);
    let unknown = OutPoint {
        txid: Txid::from_byte_array([0x22; 32]),
        vout: 0,
    };
    let tx = spend(&[unknown], &[(100_000_000, script(2))]);
    assert_rejected(
        send(&f.node, &tx),
        -25,
        "missing-inputs",
        "bad-txns-inputs-missingorspent",
    );
    // testmempoolaccept's reject-reason for missing inputs is "missing-inputs".
    let tested = f.node.accept_transaction(tx, None, true).map(|a| a.txid);
    assert_rejected(
        tested,
        -25,
        "missing-inputs",
        "bad-txns-inputs-missingorspent",
    );

    let first = spend(&[f.coins[0]], &[(COIN - 1_000, script(2))]);
    send(&f.node, &first).unwrap();
    f.node.generate_to_script(1, &script(1)).unwrap();
    let double = spend(&[f.coins[0]], &[(COIN - 2_000, script(3))]);
    assert_rejected(
        send(&f.node, &double),
        -25,
        "missing-inputs",
        "bad-txns-inputs-missingorspent",
    );

    // A child whose parent is unknown to the node (Core treats it as an orphan: missing inputs).
    let parent = spend(&[f.coins[0]], &[(COIN - 5_000, script(4))]);
    let child = spend(
        &[OutPoint {
            txid: parent.compute_txid(),
            vout: 0,
        }],
        &[(COIN - 9_000, script(5))],
    );
    assert_rejected(
        send(&f.node, &child),
        -25,
        "missing-inputs",
        "bad-txns-inputs-missingorspent",
    );
}

#[test]
fn immature_coinbase_spend_reports_its_depth() {
    let f = fixture(1);
    let tip = f.node.best_block_hash();
    let coinbase = OutPoint {
        txid: f.node.block(&tip).unwrap().txdata[0].compute_txid(),
        vout: 0,
    };
    let tx = spend(&[coinbase], &[(COIN - 1_000, script(2))]);
    let message = "bad-txns-premature-spend-of-coinbase, tried to spend coinbase at depth 1";
    assert_rejected(
        send(&f.node, &tx),
        -26,
        "bad-txns-premature-spend-of-coinbase",
        message,
    );
    let tested = f
        .node
        .accept_transaction(tx.clone(), None, true)
        .map(|a| a.txid);
    assert_rejected(tested, -26, "bad-txns-premature-spend-of-coinbase", message);
    // 99 blocks later it is mature (depth 100 at the next block).
    f.node.generate_to_script(98, &script(1)).unwrap();
    let message = "bad-txns-premature-spend-of-coinbase, tried to spend coinbase at depth 99";
    assert_rejected(
        send(&f.node, &tx),
        -26,
        "bad-txns-premature-spend-of-coinbase",
        message,
    );
    f.node.generate_to_script(1, &script(1)).unwrap();
    send(&f.node, &tx).unwrap();
}

#[test]
fn outputs_above_inputs_are_rejected_in_core_format() {
    let f = fixture(1);
    let tx = spend(&[f.coins[0]], &[(COIN + 1, script(2))]);
    let message = "bad-txns-in-belowout, value in (50.00) < value out (50.00000001)";
    assert_rejected(send(&f.node, &tx), -26, "bad-txns-in-belowout", message);
}

#[test]
fn future_lock_times_are_non_final() {
    let f = fixture(2);
    let height = f.node.block_count();
    let mut tx = spend(&[f.coins[0]], &[(COIN - 1_000, script(2))]);
    tx.lock_time = LockTime::from_consensus(height + 1);
    assert_rejected(send(&f.node, &tx), -26, "non-final", "non-final");
    tx.lock_time = LockTime::from_consensus(height);
    send(&f.node, &tx).unwrap();

    let mtp = f.node.chain_info().median_time;
    let mut timed = spend(&[f.coins[1]], &[(COIN - 1_000, script(2))]);
    timed.lock_time = LockTime::from_consensus(mtp);
    assert_rejected(send(&f.node, &timed), -26, "non-final", "non-final");
    // A final sequence on every input disables the lock time.
    timed.input[0].sequence = Sequence::MAX;
    send(&f.node, &timed).unwrap();
}

#[test]
fn relative_lock_times_are_non_bip68_final() {
    let f = fixture(3);
    // coins[0] (height 1) is 102 blocks deep at the next block (tip 102, next 103).
    let mut tx = spend(&[f.coins[0]], &[(COIN - 1_000, script(2))]);
    tx.input[0].sequence = Sequence::from_height(103);
    assert_rejected(
        send(&f.node, &tx),
        -26,
        "non-BIP68-final",
        "non-BIP68-final",
    );
    tx.input[0].sequence = Sequence::from_height(102);
    send(&f.node, &tx).unwrap();
    // Version 1 transactions ignore BIP68.
    let mut v1 = spend(&[f.coins[1]], &[(COIN - 1_000, script(2))]);
    v1.version = Version::ONE;
    v1.input[0].sequence = Sequence::from_height(1_000);
    send(&f.node, &v1).unwrap();
    // Time-based, on an unconfirmed parent: counted from the tip's median time past.
    let parent = spend(&[f.coins[2]], &[(COIN - 1_000, script(2))]);
    send(&f.node, &parent).unwrap();
    let mut child = spend(
        &[OutPoint {
            txid: parent.compute_txid(),
            vout: 0,
        }],
        &[(COIN - 2_000, script(3))],
    );
    child.input[0].sequence = Sequence::from_512_second_intervals(1);
    assert_rejected(
        send(&f.node, &child),
        -26,
        "non-BIP68-final",
        "non-BIP68-final",
    );
    // Zero intervals is already satisfied.
    child.input[0].sequence = Sequence::from_512_second_intervals(0);
    send(&f.node, &child).unwrap();
}

#[test]
fn zero_fee_misses_the_min_relay_fee() {
    let f = fixture(1);
    let tx = spend(&[f.coins[0]], &[(COIN, script(2))]);
    let required = (tx.vsize() as u64 * 100).div_ceil(1000);
    let message = format!("min relay fee not met, 0 < {required}");
    assert_rejected(send(&f.node, &tx), -26, "min relay fee not met", &message);
    // One satoshi below the floor still fails; at the floor it passes.
    let below = spend(&[f.coins[0]], &[(COIN - required + 1, script(2))]);
    assert!(send(&f.node, &below).is_err());
    let at = spend(&[f.coins[0]], &[(COIN - required, script(2))]);
    send(&f.node, &at).unwrap();
}

#[test]
fn dust_outputs_need_a_zero_fee() {
    let f = fixture(1);
    let tx = spend(
        &[f.coins[0]],
        &[(100, script(2)), (COIN - 10_000, script(3))],
    );
    assert_rejected(
        send(&f.node, &tx),
        -26,
        "dust",
        "dust, tx with dust output must be 0-fee",
    );
    let two = spend(
        &[f.coins[0]],
        &[
            (100, script(2)),
            (200, script(3)),
            (COIN - 10_000, script(4)),
        ],
    );
    assert_rejected(send(&f.node, &two), -26, "dust", "dust");
    // 294 sat is the P2WPKH threshold.
    let ok = spend(
        &[f.coins[0]],
        &[(294, script(2)), (COIN - 10_000, script(3))],
    );
    send(&f.node, &ok).unwrap();
}

#[test]
fn fee_above_maxfeerate_is_refused_unless_unlimited() {
    let f = fixture(1);
    let tx = spend(&[f.coins[0]], &[(100_000, script(2))]);
    let message = "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)";
    assert_rejected(send(&f.node, &tx), -25, "max-fee-exceeded", message);
    let tested = f
        .node
        .accept_transaction(tx.clone(), None, true)
        .map(|a| a.txid);
    assert_rejected(tested, -25, "max-fee-exceeded", message);
    assert!(f.node.mempool_txids().is_empty());
    let txid = f
        .node
        .accept_transaction(tx, Some(FeeRate::ZERO), false)
        .unwrap()
        .txid;
    assert_eq!(f.node.mempool_txids(), vec![txid]);
}

#[test]
fn maxfeerate_is_compared_with_the_fee_for_the_transaction_size() {
    let f = fixture(1);
    let fee = 10_000u64;
    let tx = spend(&[f.coins[0]], &[(COIN - fee, script(2))]);
    let vsize = tx.vsize() as u64;
    // Just below the actual feerate fails, at it passes.
    let low = FeeRate::from_sat_per_vb(fee / vsize).unwrap();
    assert!(
        f.node
            .accept_transaction(tx.clone(), Some(low), true)
            .is_err()
    );
    let high = FeeRate::from_sat_per_vb(fee / vsize + 1).unwrap();
    f.node.accept_transaction(tx, Some(high), false).unwrap();
}

#[test]
fn higher_fee_replacement_evicts_the_original_and_its_children() {
    let f = fixture(1);
    let events = f.node.subscribe();
    let original = spend(&[f.coins[0]], &[(COIN - 1_000, script(2))]);
    let child = spend(
        &[OutPoint {
            txid: original.compute_txid(),
            vout: 0,
        }],
        &[(COIN - 2_000, script(3))],
    );
    send(&f.node, &original).unwrap();
    send(&f.node, &child).unwrap();
    let replacement = spend(&[f.coins[0]], &[(COIN - 5_000, script(4))]);
    let accepted = f
        .node
        .accept_transaction(replacement.clone(), None, false)
        .unwrap();
    assert_eq!(
        accepted.replaced,
        vec![original.compute_txid(), child.compute_txid()]
    );
    assert_eq!(f.node.mempool_txids(), vec![replacement.compute_txid()]);
    let seen: Vec<String> = events
        .try_iter()
        .map(|e| match e {
            NodeEvent::TxAdded {
                tx,
                mempool_sequence,
            } => format!("A {} {mempool_sequence}", tx.compute_txid()),
            NodeEvent::TxRemoved {
                txid,
                mempool_sequence,
            } => format!("R {txid} {mempool_sequence}"),
            other => format!("{other:?}"),
        })
        .collect();
    let (o, c, r) = (
        original.compute_txid(),
        child.compute_txid(),
        replacement.compute_txid(),
    );
    // Core's RemoveStaged goes through its set of entries ordered by txid (internal byte
    // order), not parents first.
    let (first, second) = if o < c { (o, c) } else { (c, o) };
    assert_eq!(
        seen,
        vec![
            format!("A {o} 1"),
            format!("A {c} 2"),
            format!("R {first} 3"),
            format!("R {second} 4"),
            format!("A {r} 5")
        ]
    );
}

#[test]
fn lower_fee_replacement_loses_with_cores_message() {
    let f = fixture(1);
    let original = spend(&[f.coins[0]], &[(COIN - 100_000, script(2))]);
    send(&f.node, &original).unwrap();
    let loser = spend(&[f.coins[0]], &[(COIN - 10_000, script(3))]);
    let message = format!(
        "insufficient fee, rejecting replacement {}, less fees than conflicting txs; 0.0001 < 0.001",
        loser.compute_txid()
    );
    assert_rejected(send(&f.node, &loser), -26, "insufficient fee", &message);
    assert_eq!(f.node.mempool_txids(), vec![original.compute_txid()]);
}

#[test]
fn replacement_must_pay_for_its_own_relay() {
    let f = fixture(1);
    let original = spend(&[f.coins[0]], &[(COIN - 1_000, script(2))]);
    send(&f.node, &original).unwrap();
    let replacement = spend(&[f.coins[0]], &[(COIN - 1_005, script(3))]);
    let relay = (replacement.vsize() as u64 * 100).div_ceil(1000);
    let message = format!(
        "insufficient fee, rejecting replacement {}, not enough additional fees to relay; 0.00000005 < 0.{relay:08}",
        replacement.compute_txid()
    );
    assert_rejected(
        send(&f.node, &replacement),
        -26,
        "insufficient fee",
        &message,
    );
}

#[test]
fn replacement_spending_what_it_replaces_is_rejected() {
    let f = fixture(2);
    let original = spend(&[f.coins[0]], &[(COIN - 1_000, script(2))]);
    send(&f.node, &original).unwrap();
    let bad = spend(
        &[
            f.coins[0],
            OutPoint {
                txid: original.compute_txid(),
                vout: 0,
            },
        ],
        &[(COIN, script(3))],
    );
    let message = format!(
        "bad-txns-spends-conflicting-tx, {} spends conflicting transaction {}",
        bad.compute_txid(),
        original.compute_txid()
    );
    assert_rejected(
        send(&f.node, &bad),
        -26,
        "bad-txns-spends-conflicting-tx",
        &message,
    );
}

#[test]
fn malformed_transactions_get_cores_consensus_reasons() {
    let f = fixture(2);
    let mut no_inputs = spend(&[], &[(1_000, script(2))]);
    assert_rejected(
        send(&f.node, &no_inputs),
        -26,
        "bad-txns-vin-empty",
        "bad-txns-vin-empty",
    );
    no_inputs.input = spend(&[f.coins[0]], &[]).input;
    no_inputs.output.clear();
    assert_rejected(
        send(&f.node, &no_inputs),
        -26,
        "bad-txns-vout-empty",
        "bad-txns-vout-empty",
    );
    let dup = spend(&[f.coins[0], f.coins[0]], &[(1_000, script(2))]);
    assert_rejected(
        send(&f.node, &dup),
        -26,
        "bad-txns-inputs-duplicate",
        "bad-txns-inputs-duplicate",
    );
    let huge = spend(&[f.coins[0]], &[(21_000_000 * 100_000_000 + 1, script(2))]);
    assert_rejected(
        send(&f.node, &huge),
        -26,
        "bad-txns-vout-toolarge",
        "bad-txns-vout-toolarge",
    );
    let sum = spend(
        &[f.coins[0]],
        &[
            (20_000_000 * 100_000_000, script(2)),
            (2_000_000 * 100_000_000, script(3)),
        ],
    );
    assert_rejected(
        send(&f.node, &sum),
        -26,
        "bad-txns-txouttotal-toolarge",
        "bad-txns-txouttotal-toolarge",
    );
    let negative = spend(&[f.coins[0]], &[(u64::MAX, script(2))]);
    assert_rejected(
        send(&f.node, &negative),
        -26,
        "bad-txns-vout-negative",
        "bad-txns-vout-negative",
    );
    let null = spend(&[f.coins[1], OutPoint::null()], &[(1_000, script(2))]);
    assert_rejected(
        send(&f.node, &null),
        -26,
        "bad-txns-prevout-null",
        "bad-txns-prevout-null",
    );
}

#[test]
fn non_standard_transactions_are_rejected() {
    let f = fixture(1);
    let mut v4 = spend(&[f.coins[0]], &[(COIN - 1_000, script(2))]);
    v4.version = Version(4);
    assert_rejected(send(&f.node, &v4), -26, "version", "version");
    let odd_script = spend(
        &[f.coins[0]],
        &[(COIN - 1_000, ScriptBuf::from_bytes(vec![0x51, 0x51]))],
    );
    assert_rejected(
        send(&f.node, &odd_script),
        -26,
        "scriptpubkey",
        "scriptpubkey",
    );
    let tiny = spend(&[f.coins[0]], &[(0, ScriptBuf::from_bytes(vec![0x6a]))]);
    assert_rejected(send(&f.node, &tiny), -26, "tx-size-small", "tx-size-small");
    // Sending a confirmed coinbase hits the UTXO-set check first; the mempool rule says "coinbase".
    let coinbase = f.node.block(&f.node.best_block_hash()).unwrap().txdata[0].clone();
    let message = "Transaction outputs already in utxo set";
    assert_rejected(send(&f.node, &coinbase), -27, "txn-already-known", message);
    let tested = f
        .node
        .accept_transaction(coinbase, None, true)
        .map(|a| a.txid);
    assert_rejected(tested, -26, "coinbase", "coinbase");
}

#[test]
fn mempool_entries_know_their_relatives() {
    let f = fixture(1);
    let a = spend(&[f.coins[0]], &[(COIN - 1_000, script(2))]);
    let b = spend(
        &[OutPoint {
            txid: a.compute_txid(),
            vout: 0,
        }],
        &[(COIN - 3_000, script(3))],
    );
    let c = spend(
        &[OutPoint {
            txid: b.compute_txid(),
            vout: 0,
        }],
        &[(COIN - 6_000, script(4))],
    );
    for tx in [&a, &b, &c] {
        send(&f.node, tx).unwrap();
    }
    assert_eq!(
        f.node.mempool_txids(),
        vec![a.compute_txid(), b.compute_txid(), c.compute_txid()]
    );
    let mid = f.node.mempool_entry(&b.compute_txid()).unwrap();
    assert_eq!(mid.depends, vec![a.compute_txid()]);
    assert_eq!(mid.spent_by, vec![c.compute_txid()]);
    assert_eq!((mid.ancestor_count, mid.descendant_count), (2, 2));
    assert_eq!(mid.ancestor_fees, Amount::from_sat(3_000));
    assert_eq!(mid.descendant_fees, Amount::from_sat(5_000));
    assert_eq!(mid.ancestor_size, (a.vsize() + b.vsize()) as u64);
    let top = f.node.mempool_entry(&a.compute_txid()).unwrap();
    assert_eq!(top.descendant_count, 3);
    // Mining takes the whole chain, parents first.
    let hash = f.node.generate_to_script(1, &script(1)).unwrap()[0];
    let block = f.node.block(&hash).unwrap();
    let txids: Vec<Txid> = block.txdata[1..]
        .iter()
        .map(Transaction::compute_txid)
        .collect();
    assert_eq!(
        txids,
        vec![a.compute_txid(), b.compute_txid(), c.compute_txid()]
    );
    assert_eq!(
        block.txdata[0].output[0].value,
        Amount::from_sat(COIN + 6_000)
    );
}
