//! Events in the order Core's ZMQ notifier sees them (zmq.json `sequence` bodies): 'A'/'R' carry
//! a mempool sequence that every mempool add and removal increments, block inclusion included.

use std::sync::Arc;

use bitcoin::hashes::Hash;
use bitcoin::locktime::absolute::LockTime;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, WPubkeyHash, Witness,
};
use bitcoind_sim::node::{Node, NodeConfig, NodeEvent};

fn script(tag: u8) -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([tag; 20]))
}

fn spend(coin: OutPoint, value: u64, tag: u8) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: coin,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(value),
            script_pubkey: script(tag),
        }],
    }
}

fn funded(dir: &std::path::Path, mature: u32) -> (Node, Vec<OutPoint>) {
    let node = Node::open(NodeConfig {
        datadir: dir.to_path_buf(),
        txindex: false,
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
    (node, coins)
}

#[test]
fn block_inclusion_is_silent_but_consumes_mempool_sequence_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (node, coins) = funded(dir.path(), 2);
    let events = node.subscribe();
    let first = spend(coins[0], 5_000_000_000 - 1_000, 2);
    node.accept_transaction(first.clone(), None, false).unwrap();
    let hash = node.generate_to_script(1, &script(1)).unwrap()[0];
    let second = spend(coins[1], 5_000_000_000 - 1_000, 2);
    node.accept_transaction(second.clone(), None, false)
        .unwrap();

    let got: Vec<NodeEvent> = events.try_iter().collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(matches!(&got[0], NodeEvent::TxAdded { tx, mempool_sequence: 1 } if *tx == first));
    match &got[1] {
        NodeEvent::BlockConnected { block, hash: h } => {
            assert_eq!(*h, hash);
            assert_eq!(block.block_hash(), hash);
            assert_eq!(block.txdata[1], first);
        }
        other => panic!("expected BlockConnected, got {other:?}"),
    }
    // Sequence 2 went to the block's removal of `first`, as in zmq.json (A 1, A 3).
    assert!(matches!(&got[2], NodeEvent::TxAdded { tx, mempool_sequence: 3 } if *tx == second));
}

#[test]
fn every_subscriber_sees_the_same_events_and_dropped_ones_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let (node, _) = funded(dir.path(), 1);
    let gone = node.subscribe();
    let a = node.subscribe();
    let b = node.subscribe();
    drop(gone);
    let hashes = node.generate_to_script(3, &script(1)).unwrap();
    for rx in [&a, &b] {
        let connected: Vec<_> = rx
            .try_iter()
            .map(|e| match e {
                NodeEvent::BlockConnected { hash, .. } => hash,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(connected, hashes);
    }
}

#[test]
fn node_is_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Node>();
    let dir = tempfile::tempdir().unwrap();
    let (node, coins) = funded(dir.path(), 20);
    let node = Arc::new(node);
    let events = node.subscribe();
    let miner = {
        let node = node.clone();
        std::thread::spawn(move || node.generate_to_script(10, &script(3)).unwrap())
    };
    let sender = {
        let node = node.clone();
        std::thread::spawn(move || {
            for (i, coin) in coins.into_iter().enumerate() {
                node.accept_transaction(spend(coin, 5_000_000_000 - 1_000, i as u8), None, false)
                    .unwrap();
            }
        })
    };
    miner.join().unwrap();
    sender.join().unwrap();
    node.generate_to_script(1, &script(3)).unwrap();
    assert!(node.mempool_txids().is_empty());
    assert_eq!(node.block_count(), 119 + 11);
    // Sequence numbers of mempool events strictly increase in delivery order.
    let seqs: Vec<u64> = events
        .try_iter()
        .filter_map(|e| match e {
            NodeEvent::TxAdded {
                mempool_sequence, ..
            }
            | NodeEvent::TxRemoved {
                mempool_sequence, ..
            } => Some(mempool_sequence),
            _ => None,
        })
        .collect();
    assert_eq!(seqs.len(), 20);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}
