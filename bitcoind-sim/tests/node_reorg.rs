//! Reorganisations through the public API: `invalidate_block`/`reconsider_block`, competing
//! branches via `submit_block`, `generate_block`, chain tips (rpc.json entries 73-89), and the
//! mempool and event consequences (Core's MaybeUpdateMempoolForReorg and notification order).

use std::sync::mpsc::Receiver;

use bitcoin::blockdata::script::Builder;
use bitcoin::hashes::Hash;
use bitcoin::locktime::absolute::LockTime;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, Block, BlockHash, CompactTarget, OutPoint, ScriptBuf, Sequence, Transaction, TxIn,
    TxMerkleNode, TxOut, Txid, WPubkeyHash, Witness,
};
use bitcoind_sim::node::{
    BlockStatus, Node, NodeConfig, NodeError, NodeEvent, SubmitOutcome, TxOrTxid,
};

const COIN: u64 = 5_000_000_000;

fn script(tag: u8) -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([tag; 20]))
}

fn open(dir: &std::path::Path) -> Node {
    Node::open(NodeConfig {
        datadir: dir.to_path_buf(),
        txindex: true,
        persist_mempool: false,
    })
    .unwrap()
}

/// A node with 101 blocks (coinbase of block 1 mature) and that coin's outpoint.
fn funded(dir: &std::path::Path) -> (Node, OutPoint) {
    let node = open(dir);
    let hashes = node.generate_to_script(101, &script(1)).unwrap();
    let coin = OutPoint {
        txid: node.block(&hashes[0]).unwrap().txdata[0].compute_txid(),
        vout: 0,
    };
    (node, coin)
}

fn spend(inputs: &[OutPoint], value: u64, to: ScriptBuf) -> Transaction {
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
        output: vec![TxOut {
            value: Amount::from_sat(value),
            script_pubkey: to,
        }],
    }
}

/// A valid block on `prev` built by hand (coinbase tagged with `tag` so branches differ).
fn make_block(node: &Node, prev: BlockHash, txs: Vec<Transaction>, tag: u8) -> Block {
    let parent = node.block_entry(&prev).unwrap();
    let height = parent.height + 1;
    let mut witness = Witness::new();
    witness.push([0u8; 32]);
    let coinbase = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: Builder::new()
                .push_int(i64::from(height))
                .push_int(i64::from(tag))
                .into_script(),
            sequence: Sequence::MAX,
            witness,
        }],
        output: vec![TxOut {
            value: Amount::from_sat(COIN >> (height / 150)),
            script_pubkey: script(tag),
        }],
    };
    let mut txdata = vec![coinbase];
    txdata.extend(txs);
    let header = bitcoin::block::Header {
        version: bitcoin::block::Version::from_consensus(0x2000_0000),
        prev_blockhash: prev,
        merkle_root: TxMerkleNode::all_zeros(),
        time: parent.median_time.max(parent.header.time) + 1,
        bits: CompactTarget::from_consensus(0x207f_ffff),
        nonce: 0,
    };
    let mut block = Block { header, txdata };
    let root = block.witness_root().unwrap();
    let commitment = Block::compute_witness_commitment(&root, &[0u8; 32]);
    let mut bytes = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
    bytes.extend_from_slice(commitment.as_byte_array());
    block.txdata[0].output.push(TxOut {
        value: Amount::ZERO,
        script_pubkey: ScriptBuf::from_bytes(bytes),
    });
    block.header.merkle_root = block.compute_merkle_root().unwrap();
    grind(&mut block);
    block
}

fn grind(block: &mut Block) {
    while !block.header.target().is_met_by(block.block_hash()) {
        block.header.nonce += 1;
    }
}

fn drain(events: &Receiver<NodeEvent>) -> Vec<String> {
    events
        .try_iter()
        .map(|e| match e {
            NodeEvent::TxAdded { tx, .. } => format!("A {}", tx.compute_txid()),
            NodeEvent::TxRemoved { txid, .. } => format!("R {txid}"),
            NodeEvent::BlockConnected { hash, .. } => format!("C {hash}"),
            NodeEvent::BlockDisconnected { hash } => format!("D {hash}"),
        })
        .collect()
}

fn in_mempool(node: &Node, txid: &Txid) -> bool {
    node.mempool_txids().contains(txid)
}

#[test]
fn invalidating_a_block_returns_its_transactions_and_marks_the_branch_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let (node, coin) = funded(dir.path());
    let tx = spend(&[coin], COIN - 10_000, script(2));
    let txid = node.accept_transaction(tx, None, false).unwrap().txid;
    let b1 = node.generate_to_script(1, &script(1)).unwrap()[0];
    let rest = node.generate_to_script(2, &script(1)).unwrap();
    let tip = rest[1];
    assert!(!in_mempool(&node, &txid));
    let events = node.subscribe();

    node.invalidate_block(&b1).unwrap();
    assert_eq!(node.block_count(), 101);
    assert!(in_mempool(&node, &txid));
    assert!(node.get_transaction(&txid, None).unwrap().block.is_none());
    let header = node.block_entry(&tip).unwrap();
    assert_eq!(
        (header.confirmations, header.status),
        (-1, BlockStatus::Invalid)
    );
    let tips = node.chain_tips();
    assert_eq!(tips.len(), 2);
    assert_eq!(
        (
            tips[0].hash,
            tips[0].height,
            tips[0].branch_len,
            tips[0].status
        ),
        (tip, 104, 3, "invalid")
    );
    assert_eq!(
        (tips[1].height, tips[1].branch_len, tips[1].status),
        (101, 0, "active")
    );
    assert_eq!(
        drain(&events),
        vec![
            format!("D {tip}"),
            format!("D {}", rest[0]),
            format!("D {b1}"),
            format!("A {txid}")
        ]
    );

    // A longer valid branch confirms the transaction again; the invalid tip sorts below it.
    let new = node.generate_to_script(4, &script(3)).unwrap();
    let found = node.get_transaction(&txid, None).unwrap().block.unwrap();
    assert_eq!((found.hash, found.confirmations), (new[0], 4));
    let tips = node.chain_tips();
    assert_eq!(
        (tips[0].hash, tips[0].status, tips[0].branch_len),
        (new[3], "active", 0)
    );
    assert_eq!(
        (tips[1].hash, tips[1].status, tips[1].branch_len),
        (tip, "invalid", 3)
    );

    // Reconsidering the old branch keeps the heavier chain active; the old tip becomes a valid fork.
    node.reconsider_block(&b1).unwrap();
    assert_eq!(node.best_block_hash(), new[3]);
    let tips = node.chain_tips();
    assert_eq!((tips[1].hash, tips[1].status), (tip, "valid-fork"));
    assert_eq!(
        node.block_entry(&tip).unwrap().status,
        BlockStatus::ValidFork
    );
}

#[test]
fn reconsidering_the_heavier_branch_reorganises_back_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let old = node.generate_to_script(3, &script(1)).unwrap();
    node.invalidate_block(&old[0]).unwrap();
    assert_eq!(node.block_count(), 0);
    let new = node.generate_to_script(1, &script(2)).unwrap();
    node.reconsider_block(&old[0]).unwrap();
    assert_eq!(node.best_block_hash(), old[2]);
    assert_eq!(node.block_entry(&new[0]).unwrap().confirmations, -1);
}

#[test]
fn rebuilding_an_invalidated_block_is_refused_like_core() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    // Mined in quick succession, block times run ahead of the clock (median time past + 1), so
    // the next template's time does not depend on when it is built.
    node.generate_to_script(110, &script(1)).unwrap();
    let hash = node.generate_to_script(1, &script(1)).unwrap()[0];
    let block = node.block(&hash).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        u64::from(block.header.time) > now + 5,
        "precondition: template time is median time past + 1"
    );
    node.invalidate_block(&hash).unwrap();
    let err = node.generate_to_script(1, &script(1)).unwrap_err();
    match err {
        NodeError::Rpc { code, message } => {
            assert_eq!(
                (code, message.as_str()),
                (-32603, "ProcessNewBlock, block not accepted")
            )
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        node.submit_block_outcome(block).unwrap(),
        SubmitOutcome::Rejected("duplicate-invalid".into())
    );
    // Another payout address makes a different block, which is accepted.
    let other = node.generate_to_script(1, &script(2)).unwrap()[0];
    assert_ne!(other, hash);
    assert_eq!(node.block_count(), 111);
}

#[test]
fn longer_competing_branch_wins_and_sends_transactions_back() {
    let dir = tempfile::tempdir().unwrap();
    let (node, coin) = funded(dir.path());
    let fork = node.best_block_hash();
    let tx = spend(&[coin], COIN - 10_000, script(2));
    let txid = node.accept_transaction(tx, None, false).unwrap().txid;
    let a = node.generate_to_script(2, &script(1)).unwrap();
    let events = node.subscribe();

    let b1 = make_block(&node, fork, vec![], 7);
    assert!(
        !node.submit_block(b1.clone()).unwrap(),
        "equal work: the first seen stays active"
    );
    let b2 = make_block(&node, b1.block_hash(), vec![], 7);
    assert_eq!(
        node.submit_block_outcome(b2.clone()).unwrap(),
        SubmitOutcome::Inconclusive
    );
    assert_eq!(node.best_block_hash(), a[1]);
    assert!(drain(&events).is_empty());
    let tips = node.chain_tips();
    assert_eq!(
        (tips[1].hash, tips[1].status, tips[1].branch_len),
        (b2.block_hash(), "valid-headers", 2)
    );

    let b3 = make_block(&node, b2.block_hash(), vec![], 7);
    assert!(node.submit_block(b3.clone()).unwrap());
    assert_eq!(node.best_block_hash(), b3.block_hash());
    assert!(in_mempool(&node, &txid));
    assert_eq!(
        drain(&events),
        vec![
            format!("D {}", a[1]),
            format!("D {}", a[0]),
            format!("A {txid}"),
            format!("C {}", b1.block_hash()),
            format!("C {}", b2.block_hash()),
            format!("C {}", b3.block_hash()),
        ]
    );
    let tips = node.chain_tips();
    assert_eq!((tips[0].hash, tips[0].status), (b3.block_hash(), "active"));
    assert_eq!(
        (tips[1].hash, tips[1].status, tips[1].branch_len),
        (a[1], "valid-fork", 2)
    );
    assert_eq!(node.block_entry(&a[0]).unwrap().confirmations, -1);
    assert_eq!(
        node.submit_block_outcome(b3).unwrap(),
        SubmitOutcome::Duplicate
    );
}

#[test]
fn reorg_drops_transactions_the_new_branch_double_spends() {
    let dir = tempfile::tempdir().unwrap();
    let (node, coin) = funded(dir.path());
    let fork = node.best_block_hash();
    let confirmed = spend(&[coin], COIN - 10_000, script(2));
    node.accept_transaction(confirmed.clone(), None, false)
        .unwrap();
    let a = node.generate_to_script(1, &script(1)).unwrap();
    // A child waits in the mempool on the confirmed transaction.
    let child = spend(
        &[OutPoint {
            txid: confirmed.compute_txid(),
            vout: 0,
        }],
        COIN - 20_000,
        script(3),
    );
    node.accept_transaction(child.clone(), None, false).unwrap();
    let events = node.subscribe();

    let double = spend(&[coin], COIN - 30_000, script(4));
    let b1 = make_block(&node, fork, vec![double.clone()], 8);
    assert!(!node.submit_block(b1.clone()).unwrap());
    let b2 = make_block(&node, b1.block_hash(), vec![], 8);
    assert!(node.submit_block(b2.clone()).unwrap());
    assert_eq!(node.mempool_txids(), Vec::<Txid>::new());
    assert_eq!(
        drain(&events),
        vec![
            format!("D {}", a[0]),
            format!("R {}", child.compute_txid()),
            format!("C {}", b1.block_hash()),
            format!("C {}", b2.block_hash()),
        ]
    );
    assert!(
        node.get_transaction(&double.compute_txid(), None)
            .unwrap()
            .block
            .is_some()
    );
}

#[test]
fn mempool_conflicts_of_a_new_block_are_reported_removed_before_it_connects() {
    let dir = tempfile::tempdir().unwrap();
    let (node, coin) = funded(dir.path());
    let waiting = spend(&[coin], COIN - 10_000, script(2));
    node.accept_transaction(waiting.clone(), None, false)
        .unwrap();
    let events = node.subscribe();
    let double = spend(&[coin], COIN - 30_000, script(4));
    let block = make_block(&node, node.best_block_hash(), vec![double], 9);
    assert!(node.submit_block(block.clone()).unwrap());
    assert_eq!(
        drain(&events),
        vec![
            format!("R {}", waiting.compute_txid()),
            format!("C {}", block.block_hash())
        ]
    );
}

#[test]
fn submitted_blocks_are_checked_with_cores_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let tip = node.generate_to_script(1, &script(1)).unwrap()[0];
    let good = make_block(&node, tip, vec![], 5);
    let outcome = |b: Block| node.submit_block_outcome(b).unwrap();

    let mut orphan = make_block(&node, tip, vec![], 6);
    orphan.header.prev_blockhash = BlockHash::from_byte_array([9; 32]);
    grind(&mut orphan);
    assert_eq!(
        outcome(orphan),
        SubmitOutcome::Rejected("prev-blk-not-found".into())
    );

    let mut bad_root = good.clone();
    bad_root.header.merkle_root = TxMerkleNode::from_byte_array([1; 32]);
    grind(&mut bad_root);
    assert_eq!(
        outcome(bad_root),
        SubmitOutcome::Rejected("bad-txnmrklroot".into())
    );

    let mut weak = good.clone();
    while weak.header.target().is_met_by(weak.block_hash()) {
        weak.header.nonce += 1;
    }
    assert_eq!(outcome(weak), SubmitOutcome::Rejected("high-hash".into()));

    let missing = spend(
        &[OutPoint {
            txid: Txid::from_byte_array([3; 32]),
            vout: 0,
        }],
        1_000,
        script(2),
    );
    let invalid = make_block(&node, tip, vec![missing], 7);
    let err = node.submit_block(invalid.clone()).unwrap_err();
    assert!(
        matches!(err, NodeError::Rpc { code: -25, ref message } if message == "bad-txns-inputs-missingorspent")
    );
    assert_eq!(node.best_block_hash(), tip);
    assert_eq!(
        node.block_entry(&invalid.block_hash()).unwrap().status,
        BlockStatus::Invalid
    );
    assert_eq!(
        outcome(invalid),
        SubmitOutcome::Rejected("duplicate-invalid".into())
    );

    assert_eq!(outcome(good.clone()), SubmitOutcome::Accepted);
    assert_eq!(outcome(good.clone()).as_core_result(), Some("duplicate"));
    let mut no_coinbase = good;
    no_coinbase.txdata.remove(0);
    assert!(matches!(
        node.submit_block(no_coinbase),
        Err(NodeError::Rpc { code: -22, .. })
    ));
}

#[test]
fn generate_block_mines_exactly_the_given_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let (node, coin) = funded(dir.path());
    let in_pool = spend(&[coin], COIN - 10_000, script(2));
    node.accept_transaction(in_pool.clone(), None, false)
        .unwrap();
    let child = spend(
        &[OutPoint {
            txid: in_pool.compute_txid(),
            vout: 0,
        }],
        COIN - 20_000,
        script(3),
    );

    let unknown = Txid::from_byte_array([5; 32]);
    match node
        .generate_block(&script(1), vec![TxOrTxid::Txid(unknown)])
        .unwrap_err()
    {
        NodeError::Rpc { code, message } => {
            assert_eq!(
                (code, message),
                (-5, format!("Transaction {unknown} not in mempool."))
            )
        }
        other => panic!("unexpected {other:?}"),
    }
    // Child before parent: the child's input does not exist yet.
    let err = node
        .generate_block(
            &script(1),
            vec![
                TxOrTxid::Tx(child.clone()),
                TxOrTxid::Txid(in_pool.compute_txid()),
            ],
        )
        .unwrap_err();
    let expected = format!(
        "TestBlockValidity failed: bad-txns-inputs-missingorspent, CheckTxInputs: inputs missing/spent in transaction {}",
        child.compute_txid()
    );
    assert!(
        matches!(err, NodeError::Rpc { code: -25, ref message } if *message == expected),
        "{err:?}"
    );

    let empty = node.generate_block(&script(1), vec![]).unwrap();
    assert_eq!(node.block(&empty).unwrap().txdata.len(), 1);
    assert!(in_mempool(&node, &in_pool.compute_txid()));

    let hash = node
        .generate_block(
            &script(1),
            vec![
                TxOrTxid::Txid(in_pool.compute_txid()),
                TxOrTxid::Tx(child.clone()),
            ],
        )
        .unwrap();
    let block = node.block(&hash).unwrap();
    let txids: Vec<Txid> = block.txdata.iter().map(Transaction::compute_txid).collect();
    assert_eq!(&txids[1..], &[in_pool.compute_txid(), child.compute_txid()]);
    // Core builds the coinbase from an empty template: the fees are not claimed.
    assert_eq!(block.txdata[0].output[0].value, Amount::from_sat(COIN));
    assert!(node.mempool_txids().is_empty());
}

#[test]
fn unknown_blocks_cannot_be_invalidated_or_reconsidered() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let unknown = BlockHash::from_byte_array([1; 32]);
    assert!(matches!(
        node.invalidate_block(&unknown),
        Err(NodeError::BlockNotFound)
    ));
    assert!(matches!(
        node.reconsider_block(&unknown),
        Err(NodeError::BlockNotFound)
    ));
}

#[test]
fn reorg_reports_blocks_past_the_old_work_one_step_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (node, coin) = funded(dir.path());
    let fork = node.best_block_hash();
    let tx = spend(&[coin], COIN - 10_000, script(2));
    let txid = node.accept_transaction(tx, None, false).unwrap().txid;
    let a = node.generate_to_script(3, &script(1)).unwrap();
    let events = node.subscribe();

    // b1..b4 outweigh a1..a3; b5 double-spends the transaction that went back to the mempool.
    let mut b = Vec::new();
    let mut prev = fork;
    for _ in 0..4 {
        let block = make_block(&node, prev, vec![], 6);
        prev = block.block_hash();
        node.submit_block_outcome(block.clone()).unwrap();
        b.push(block);
    }
    let events_so_far = drain(&events);
    assert_eq!(
        events_so_far,
        vec![
            format!("D {}", a[2]),
            format!("D {}", a[1]),
            format!("D {}", a[0]),
            format!("A {txid}"),
            format!("C {}", b[0].block_hash()),
            format!("C {}", b[1].block_hash()),
            format!("C {}", b[2].block_hash()),
            format!("C {}", b[3].block_hash()),
        ]
    );
    let double = spend(&[coin], COIN - 30_000, script(4));
    let b5 = make_block(&node, prev, vec![double], 6);
    assert!(node.submit_block(b5.clone()).unwrap());
    assert_eq!(
        drain(&events),
        vec![format!("R {txid}"), format!("C {}", b5.block_hash())]
    );

    // Back to the a-branch, then reconsider: one reorg over all five b-blocks. Core reports b1..b4
    // (enough to outweigh a1..a3) with the re-added transaction before b5 evicts it again.
    node.invalidate_block(&b[0].block_hash()).unwrap();
    assert_eq!(node.best_block_hash(), a[2]);
    drain(&events);
    node.reconsider_block(&b[0].block_hash()).unwrap();
    assert_eq!(node.best_block_hash(), b5.block_hash());
    let mut expected: Vec<String> = a.iter().rev().map(|h| format!("D {h}")).collect();
    expected.push(format!("A {txid}"));
    expected.extend(b.iter().map(|blk| format!("C {}", blk.block_hash())));
    expected.push(format!("R {txid}"));
    expected.push(format!("C {}", b5.block_hash()));
    assert_eq!(drain(&events), expected);
}
