//! The mempool behaviours teosd's mempool watcher is tested against, beyond what
//! `mempool_transcript.rs` replays: the test-control API (eviction, restarts with and without the
//! mempool, dropped `sequence` messages), the wallet's conflicting spends and zero-fee version 3
//! breaches, TRUC refusals, and `submitpackage`'s failure shapes (Core v28's, as in
//! `../shared/spec/bitcoind/mempool.json`).

mod sim_support;

use std::time::{Duration, Instant};

use bitcoin::absolute::LockTime;
use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, WPubkeyHash, Witness,
};
use bitcoind_sim::Simulator;
use bitcoind_sim::node::fee_per_kvb;
use bitcoind_sim::wallet::{TestWallet, WalletError};
use bitcoind_sim::zmq_pub::Topic;
use serde_json::{Value, json};
use sim_support::{err, ok, start};

/// 50 BTC, the regtest subsidy of the coinbases spent here (satoshis).
const COIN: u64 = 5_000_000_000;

fn script(tag: u8) -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([tag; 20]))
}

/// A spend with a P2WPKH-sized witness (the simulator does not run scripts): one input and one
/// P2WPKH output make 110 vbytes, as the transcript's transactions.
fn spend(version: i32, inputs: &[OutPoint], outputs: &[(u64, ScriptBuf)]) -> Transaction {
    let mut witness = Witness::new();
    witness.push([0x30; 71]);
    witness.push([0x02; 33]);
    Transaction {
        version: Version(version),
        lock_time: LockTime::ZERO,
        input: inputs
            .iter()
            .map(|op| TxIn {
                previous_output: *op,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: witness.clone(),
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

fn out(tx: &Transaction, vout: u32) -> OutPoint {
    OutPoint {
        txid: tx.compute_txid(),
        vout,
    }
}

/// A simulator with `n` mature coinbase outputs (of 50 BTC) to spend.
fn chain(n: u32) -> (Simulator, tempfile::TempDir, Vec<OutPoint>) {
    let (sim, dir) = start(|_| {});
    let hashes = sim.mine(n + 100);
    let node = sim.node();
    let coins = hashes[..n as usize]
        .iter()
        .map(|h| out(&node.block(h).unwrap().txdata[0], 0))
        .collect();
    (sim, dir, coins)
}

fn send(sim: &Simulator, tx: &Transaction) -> Value {
    ok(sim, "sendrawtransaction", json!([serialize_hex(tx)]))
}

fn send_err(sim: &Simulator, tx: &Transaction) -> (i64, String) {
    let (_, code, message) = err(sim, "sendrawtransaction", json!([serialize_hex(tx)]));
    (code, message)
}

fn submit(sim: &Simulator, txs: &[&Transaction]) -> Value {
    let hex: Vec<String> = txs.iter().map(|t| serialize_hex(*t)).collect();
    ok(sim, "submitpackage", json!([hex]))
}

/// A SUB socket on the simulator's endpoint for `topics`, active (blocks were mined until a
/// message arrived, then everything pending was drained).
fn subscriber(sim: &Simulator, topics: &[&str]) -> zmq::Socket {
    let socket = zmq::Context::new().socket(zmq::SUB).unwrap();
    for t in topics.iter().chain(&["sequence"]) {
        socket.set_subscribe(t.as_bytes()).unwrap();
    }
    socket.set_rcvtimeo(100).unwrap();
    socket.connect(&sim.zmq_endpoint().unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "subscription never active");
        sim.mine(1);
        if socket.recv_multipart(0).is_ok() {
            break;
        }
    }
    while socket.recv_multipart(0).is_ok() {}
    socket.set_rcvtimeo(5_000).unwrap();
    socket
}

/// The next message: (topic, body, per-topic counter).
fn next(socket: &zmq::Socket) -> (String, Vec<u8>, u32) {
    let parts = socket.recv_multipart(0).expect("a ZMQ message");
    (
        String::from_utf8(parts[0].clone()).unwrap(),
        parts[1].clone(),
        u32::from_le_bytes(parts[2].as_slice().try_into().unwrap()),
    )
}

/// A `sequence` body for a mempool event: display-order txid, label, 8-byte LE sequence.
fn mempool_event(txid: Txid, label: u8, seq: u64) -> Vec<u8> {
    let mut body = txid.to_byte_array().to_vec();
    body.reverse();
    body.push(label);
    body.extend_from_slice(&seq.to_le_bytes());
    body
}

fn mempool_sequence(sim: &Simulator) -> u64 {
    ok(sim, "getrawmempool", json!([false, true]))["mempool_sequence"]
        .as_u64()
        .unwrap()
}

#[test]
fn zero_fee_v3_breach_is_refused_alone_and_accepted_as_a_package() {
    let (sim, _dir) = start(|_| {});
    let node = sim.node();
    let wallet = TestWallet::new(3);
    wallet.fund(&node, 1).unwrap();
    let breach = wallet
        .build_v3_breach(&node, Amount::from_sat(1_000_000), 42)
        .unwrap();
    let (dispute, penalty) = (&breach.commitment, &breach.penalty);
    assert_eq!((dispute.version.0, penalty.version.0), (3, 3));
    let vsize = dispute.vsize() as u64;
    let (code, message) = send_err(&sim, dispute);
    assert_eq!(code, -26);
    // Core v30+'s min relay fee: 100 sat/kvB, rounded up.
    assert_eq!(
        message,
        format!("min relay fee not met, 0 < {}", vsize.div_ceil(10))
    );
    let tested = ok(&sim, "testmempoolaccept", json!([[serialize_hex(dispute)]]));
    assert_eq!(tested[0]["allowed"], false);
    assert_eq!(tested[0]["reject-reason"], "min relay fee not met");
    assert_eq!(
        send_err(&sim, penalty),
        (-25, "bad-txns-inputs-missingorspent".to_owned())
    );

    let result = submit(&sim, &[dispute, penalty]);
    assert_eq!(result["package_msg"], "success");
    assert_eq!(result["replaced-transactions"], json!([]));
    let penalty_fee = breach.to_local_value.to_sat() - penalty.output[0].value.to_sat();
    let total_vsize = vsize + penalty.vsize() as u64;
    let rate = Amount::from_sat(fee_per_kvb(Amount::from_sat(penalty_fee), total_vsize));
    let includes = json!([
        dispute.compute_wtxid().to_string(),
        penalty.compute_wtxid().to_string()
    ]);
    for (tx, fee) in [(dispute, 0), (penalty, penalty_fee)] {
        let entry = &result["tx-results"][tx.compute_wtxid().to_string()];
        assert_eq!(entry["txid"], tx.compute_txid().to_string());
        assert_eq!(entry["fees"]["base"], json!(Amount::from_sat(fee).to_btc()));
        assert_eq!(entry["fees"]["effective-feerate"], json!(rate.to_btc()));
        assert_eq!(entry["fees"]["effective-includes"], includes);
    }
    let entry = ok(
        &sim,
        "getmempoolentry",
        json!([penalty.compute_txid().to_string()]),
    );
    assert_eq!(entry["ancestorcount"], 2);
    assert_eq!(entry["unbroadcast"], false);

    let block = sim.mine(1)[0];
    let txs = ok(&sim, "getblock", json!([block.to_string(), 1]))["tx"].clone();
    assert_eq!(txs[1], dispute.compute_txid().to_string());
    assert_eq!(txs[2], penalty.compute_txid().to_string());
}

#[test]
fn penalty_spends_an_unconfirmed_dispute_and_both_are_mined_together() {
    let (sim, _dir) = start(|_| {});
    let node = sim.node();
    let wallet = TestWallet::new(4);
    wallet.fund(&node, 1).unwrap();
    let breach = wallet
        .build_breach(&node, Amount::from_sat(1_000_000), 42)
        .unwrap();
    let socket = subscriber(&sim, &[]);
    send(&sim, &breach.commitment);
    assert_eq!(
        send(&sim, &breach.penalty),
        json!(breach.penalty.compute_txid().to_string())
    );
    let entry = ok(
        &sim,
        "getmempoolentry",
        json!([breach.penalty.compute_txid().to_string()]),
    );
    assert_eq!(entry["ancestorcount"], 2);
    assert_eq!(entry["unbroadcast"], true);
    let spending = ok(
        &sim,
        "gettxspendingprevout",
        json!([[{"txid": breach.commitment.compute_txid().to_string(), "vout": 0}]]),
    );
    assert_eq!(
        spending[0]["spendingtxid"],
        breach.penalty.compute_txid().to_string()
    );
    next(&socket);
    next(&socket);
    let block = sim.mine(1)[0];
    let (topic, body, _) = next(&socket);
    let mut c = block.to_byte_array().to_vec();
    c.reverse();
    c.push(b'C');
    assert_eq!((topic.as_str(), body), ("sequence", c));
    let txs = ok(&sim, "getblock", json!([block.to_string(), 1]))["tx"].clone();
    assert_eq!(txs.as_array().unwrap().len(), 3);
}

#[test]
fn conflicting_spend_of_the_funding_input_replaces_dispute_and_penalty() {
    let (sim, _dir) = start(|_| {});
    let node = sim.node();
    let wallet = TestWallet::new(5);
    wallet.fund(&node, 1).unwrap();
    let breach = wallet
        .build_breach(&node, Amount::from_sat(1_000_000), 42)
        .unwrap();
    let socket = subscriber(&sim, &[]);
    let seq = mempool_sequence(&sim);
    send(&sim, &breach.commitment);
    send(&sim, &breach.penalty);
    let conflict = wallet.build_conflict(&node, &breach.commitment).unwrap();
    assert_eq!(
        conflict.input[0].previous_output,
        breach.commitment.input[0].previous_output
    );
    send(&sim, &conflict);
    assert_eq!(
        ok(&sim, "getrawmempool", json!([])),
        json!([conflict.compute_txid().to_string()])
    );
    let (d, p) = (
        breach.commitment.compute_txid(),
        breach.penalty.compute_txid(),
    );
    // Core's RemoveStaged order: by txid as stored.
    let (first, second) = if d < p { (d, p) } else { (p, d) };
    let expected = [
        mempool_event(d, b'A', seq),
        mempool_event(p, b'A', seq + 1),
        mempool_event(first, b'R', seq + 2),
        mempool_event(second, b'R', seq + 3),
        mempool_event(conflict.compute_txid(), b'A', seq + 4),
    ];
    for body in expected {
        assert_eq!(next(&socket).1, body);
    }
    assert_eq!(
        send_err(&sim, &breach.penalty),
        (-25, "bad-txns-inputs-missingorspent".to_owned())
    );
    let spending = ok(
        &sim,
        "gettxspendingprevout",
        json!([[{"txid": d.to_string(), "vout": 0}, {"txid": conflict.input[0].previous_output.txid.to_string(), "vout": conflict.input[0].previous_output.vout}]]),
    );
    assert_eq!(
        spending,
        json!([
            {"txid": d.to_string(), "vout": 0},
            {
                "txid": conflict.input[0].previous_output.txid.to_string(),
                "vout": conflict.input[0].previous_output.vout,
                "spendingtxid": conflict.compute_txid().to_string()
            }
        ])
    );
    // A transaction whose inputs are not the wallet's coins cannot be conflicted.
    let foreign = spend(2, &[out(&conflict, 0)], &[(1_000, script(9))]);
    assert!(matches!(
        wallet.build_conflict(&node, &foreign),
        Err(WalletError::UnknownCoin(_))
    ));
}

#[test]
fn evicted_parent_takes_its_descendants_with_r_frames() {
    let (sim, _dir, coins) = chain(1);
    let socket = subscriber(&sim, &[]);
    let parent = spend(2, &[coins[0]], &[(COIN - 10_000, script(2))]);
    let child = spend(2, &[out(&parent, 0)], &[(COIN - 20_000, script(3))]);
    send(&sim, &parent);
    send(&sim, &child);
    let seq = mempool_sequence(&sim);
    let (p, c) = (parent.compute_txid(), child.compute_txid());
    let removed = sim.node().evict_from_mempool(&p);
    let mut sorted = vec![p, c];
    sorted.sort();
    assert_eq!(removed, sorted);
    assert!(sim.node().evict_from_mempool(&p).is_empty());
    assert_eq!(ok(&sim, "getrawmempool", json!([])), json!([]));
    assert_eq!(mempool_sequence(&sim), seq + 2);
    next(&socket);
    next(&socket);
    assert_eq!(next(&socket).1, mempool_event(sorted[0], b'R', seq));
    assert_eq!(next(&socket).1, mempool_event(sorted[1], b'R', seq + 1));
    assert_eq!(
        send_err(&sim, &child),
        (-25, "bad-txns-inputs-missingorspent".to_owned())
    );
}

#[test]
fn dropped_sequence_messages_leave_a_gap_while_other_topics_flow() {
    let (sim, _dir, coins) = chain(2);
    let socket = subscriber(&sim, &["hashtx"]);
    sim.mine(1);
    assert_eq!(next(&socket).0, "hashtx");
    let (topic, _, before) = next(&socket);
    assert_eq!(topic, "sequence");
    let first = spend(2, &[coins[0]], &[(COIN - 10_000, script(2))]);
    let second = spend(2, &[coins[1]], &[(COIN - 10_000, script(3))]);
    sim.faults().drop_zmq_topic(Topic::Sequence, 1);
    assert_eq!(sim.faults().status().drop_zmq_topics["sequence"], 1);
    send(&sim, &first);
    send(&sim, &second);
    let seq = mempool_sequence(&sim);
    let hashtx = |tx: &Transaction| {
        let (topic, body, _) = next(&socket);
        let mut id = tx.compute_txid().to_byte_array().to_vec();
        id.reverse();
        assert_eq!((topic.as_str(), body), ("hashtx", id));
    };
    hashtx(&first);
    hashtx(&second);
    let (topic, body, counter) = next(&socket);
    assert_eq!(topic, "sequence");
    assert_eq!(body, mempool_event(second.compute_txid(), b'A', seq - 1));
    // `first`'s `A` was dropped but took its counter: the subscriber sees the gap.
    assert_eq!(counter, before + 2);
    assert!(sim.faults().status().drop_zmq_topics.is_empty());
}

#[test]
fn restart_without_mempool_forgets_it_and_with_mempool_reloads_it() {
    let (sim, _dir, coins) = chain(1);
    let tx = spend(2, &[coins[0]], &[(COIN - 10_000, script(2))]);
    send(&sim, &tx);
    let txid = json!([tx.compute_txid().to_string()]);
    let sim = sim.restart(true).unwrap();
    assert_eq!(ok(&sim, "getrawmempool", json!([])), txid);
    // Reloaded: one mempool change since the start; no longer "unbroadcast" (Core saves an
    // empty unbroadcast set in mempool.dat here too).
    assert_eq!(mempool_sequence(&sim), 2);
    let entry = ok(&sim, "getmempoolentry", txid.clone());
    assert_eq!(entry["unbroadcast"], false);
    let sim = sim.restart(false).unwrap();
    assert_eq!(ok(&sim, "getrawmempool", json!([])), json!([]));
    assert_eq!(mempool_sequence(&sim), 1);
}

#[test]
fn truc_rules_refuse_mixed_versions_and_judge_a_second_child_as_a_replacement() {
    let (sim, _dir, coins) = chain(1);
    let parent = spend(
        3,
        &[coins[0]],
        &[(COIN / 2, script(2)), (COIN / 2 - 10_000, script(3))],
    );
    send(&sim, &parent);
    let v2_child = spend(2, &[out(&parent, 0)], &[(COIN / 2 - 10_000, script(4))]);
    let (code, message) = send_err(&sim, &v2_child);
    assert_eq!(code, -26);
    assert_eq!(
        message,
        format!(
            "TRUC-violation, non-version=3 tx {} (wtxid={}) cannot spend from version=3 tx {} (wtxid={})",
            v2_child.compute_txid(),
            v2_child.compute_wtxid(),
            parent.compute_txid(),
            parent.compute_wtxid()
        )
    );
    let child = spend(3, &[out(&parent, 0)], &[(COIN / 2 - 10_000, script(5))]);
    send(&sim, &child);
    // A second child: Core's sibling eviction judges it as a replacement of the first one.
    let sibling = spend(3, &[out(&parent, 1)], &[(COIN / 2 - 20_000, script(6))]);
    let (code, message) = send_err(&sim, &sibling);
    assert_eq!(code, -26);
    assert!(
        message.starts_with(&format!(
            "insufficient fee, rejecting replacement {}, not enough additional fees to relay",
            sibling.compute_txid()
        )),
        "{message}"
    );
    // Within a package there is no sibling eviction: Core's descendant-limit refusal.
    let richer = spend(3, &[out(&parent, 1)], &[(COIN / 2 - 40_000, script(6))]);
    let result = submit(&sim, &[&parent, &richer]);
    assert_eq!(result["package_msg"], "transaction failed");
    assert_eq!(
        result["tx-results"][richer.compute_wtxid().to_string()]["error"],
        format!(
            "TRUC-violation, tx {} (wtxid={}) would exceed descendant count limit",
            parent.compute_txid(),
            parent.compute_wtxid()
        )
    );
    // Alone, paying enough more, it evicts its sibling.
    send(&sim, &richer);
    assert!(sim.node().mempool_entry(&child.compute_txid()).is_none());
    assert!(sim.node().mempool_entry(&richer.compute_txid()).is_some());
    let grandchild = spend(3, &[out(&richer, 0)], &[(COIN / 2 - 50_000, script(7))]);
    assert_eq!(
        send_err(&sim, &grandchild),
        (
            -26,
            format!(
                "TRUC-violation, tx {} (wtxid={}) would have too many ancestors",
                grandchild.compute_txid(),
                grandchild.compute_wtxid()
            )
        )
    );
}

#[test]
fn package_failures_have_cores_shapes() {
    let (sim, _dir, coins) = chain(3);
    // Too low a package feerate: both fail, the child with the package's totals.
    let parent = spend(2, &[coins[0]], &[(COIN, script(2))]);
    let child = spend(2, &[out(&parent, 0)], &[(COIN, script(3))]);
    let result = submit(&sim, &[&parent, &child]);
    assert_eq!(
        result,
        json!({
            "package_msg": "transaction failed",
            "tx-results": {
                parent.compute_wtxid().to_string(): {
                    "txid": parent.compute_txid().to_string(),
                    "error": "min relay fee not met, 0 < 11"
                },
                child.compute_wtxid().to_string(): {
                    "txid": child.compute_txid().to_string(),
                    "error": "min relay fee not met, 0 < 22"
                }
            },
            "replaced-transactions": []
        })
    );
    assert_eq!(ok(&sim, "getrawmempool", json!([])), json!([]));

    // The child also spends a mempool transaction that is not in the package.
    let other = spend(2, &[coins[1]], &[(COIN - 10_000, script(4))]);
    send(&sim, &other);
    let child = spend(
        2,
        &[out(&parent, 0), out(&other, 0)],
        &[(2 * COIN - 50_000, script(5))],
    );
    assert_eq!(
        submit(&sim, &[&parent, &child]),
        json!({
            "package_msg": "package-not-child-with-unconfirmed-parents",
            "tx-results": {},
            "replaced-transactions": []
        })
    );

    // The parent is already confirmed (a dispute mined first): it fails "txn-already-known",
    // the child still gets in on its own.
    let mined_parent = spend(2, &[coins[2]], &[(COIN - 10_000, script(6))]);
    send(&sim, &mined_parent);
    sim.mine(1);
    let penalty = spend(2, &[out(&mined_parent, 0)], &[(COIN - 20_000, script(7))]);
    let result = submit(&sim, &[&mined_parent, &penalty]);
    assert_eq!(result["package_msg"], "transaction failed");
    assert_eq!(
        result["tx-results"][mined_parent.compute_wtxid().to_string()]["error"],
        "txn-already-known"
    );
    assert_eq!(
        result["tx-results"][penalty.compute_wtxid().to_string()]["vsize"],
        110
    );
    assert!(sim.node().mempool_entry(&penalty.compute_txid()).is_some());

    // Rust callers get the same answers from the node.
    let refused = sim
        .node()
        .submit_package(vec![mined_parent.clone()], None)
        .unwrap_err();
    assert_eq!(
        (refused.code, refused.message.as_str()),
        (-8, "Array must contain between 2 and 25 transactions.")
    );
}

#[test]
fn argument_errors_are_cores() {
    let (sim, _dir) = start(|_| {});
    let txid = "1fe97e3d051e7fcf726aa6b05a216345dc35041a677237d08d8197a5b8b5ca40";
    let cases = [
        (
            "getrawmempool",
            json!([true, true]),
            -8,
            "Verbose results cannot contain mempool sequence values.",
        ),
        (
            "gettxspendingprevout",
            json!([[]]),
            -8,
            "Invalid parameter, outputs are missing",
        ),
        (
            "gettxspendingprevout",
            json!([[{"txid": txid, "vout": -1}]]),
            -8,
            "Invalid parameter, vout cannot be negative",
        ),
        (
            "gettxspendingprevout",
            json!([[{"txid": txid}]]),
            -3,
            "Missing vout",
        ),
        (
            "gettxspendingprevout",
            json!([[{"txid": txid, "vout": "0"}]]),
            -3,
            "JSON value of type string for field vout is not of expected type number",
        ),
        (
            "gettxspendingprevout",
            json!([[{"txid": txid, "vout": 0, "x": 1}]]),
            -3,
            "Unexpected key x",
        ),
        (
            "submitpackage",
            json!([["00", "00"]]),
            -22,
            "TX decode failed: 00 Make sure the tx has at least one input.",
        ),
    ];
    for (method, params, code, message) in cases {
        let (_, got_code, got_message) = err(&sim, method, params.clone());
        assert_eq!(
            (got_code, got_message.as_str()),
            (code, message),
            "{method} {params}"
        );
    }
    assert_eq!(
        ok(&sim, "getrawmempool", json!([false, true])),
        json!({"txids": [], "mempool_sequence": 1})
    );
}

#[test]
fn removals_are_reported_in_cores_txid_order_not_parents_first() {
    let (sim, _dir, coins) = chain(1);
    let socket = subscriber(&sim, &[]);
    let parent = spend(2, &[coins[0]], &[(COIN - 10_000, script(2))]);
    // A child whose txid sorts before its parent's (Core's RemoveStaged goes by txid as stored,
    // so the child's `R` comes first).
    let child = (1..)
        .map(|k| spend(2, &[out(&parent, 0)], &[(COIN - 20_000 - k, script(3))]))
        .find(|c| c.compute_txid() < parent.compute_txid())
        .unwrap();
    send(&sim, &parent);
    send(&sim, &child);
    let seq = mempool_sequence(&sim);
    let (p, c) = (parent.compute_txid(), child.compute_txid());
    assert_eq!(sim.node().evict_from_mempool(&p), vec![c, p]);
    next(&socket);
    next(&socket);
    assert_eq!(next(&socket).1, mempool_event(c, b'R', seq));
    assert_eq!(next(&socket).1, mempool_event(p, b'R', seq + 1));
}

#[test]
fn penalty_evicts_the_cheaters_child_of_a_zero_fee_v3_dispute() {
    let (sim, _dir) = start(|_| {});
    let node = sim.node();
    let wallet = TestWallet::new(6);
    wallet.fund(&node, 1).unwrap();
    let breach = wallet
        .build_v3_breach(&node, Amount::from_sat(1_000_000), 42)
        .unwrap();
    let dispute = &breach.commitment;
    // The cheater gets the dispute in with a child of its change output paying little.
    let cheater = wallet
        .build_child(dispute, 1, Amount::from_sat(100))
        .unwrap();
    assert_eq!(cheater.version.0, 3);
    assert_eq!(submit(&sim, &[dispute, &cheater])["package_msg"], "success");
    // As a package the penalty is refused (no sibling eviction there) ...
    let result = submit(&sim, &[dispute, &breach.penalty]);
    assert_eq!(result["package_msg"], "transaction failed");
    // ... alone it replaces the cheater's child.
    send(&sim, &breach.penalty);
    assert!(sim.node().mempool_entry(&cheater.compute_txid()).is_none());
    let entry = ok(
        &sim,
        "getmempoolentry",
        json!([breach.penalty.compute_txid().to_string()]),
    );
    assert_eq!(entry["ancestorcount"], 2);
    assert!(matches!(
        wallet.build_child(dispute, 0, Amount::from_sat(100)),
        Err(WalletError::UnknownCoin(_))
    ));
}
