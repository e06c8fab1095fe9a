//! Persistence under `<datadir>/regtest/`: blocks and flags survive a restart or a crash,
//! `mempool.dat` is written on close and loaded only with `persist_mempool`.

use std::io::Write;
use std::path::Path;

use bitcoin::hashes::Hash;
use bitcoin::locktime::absolute::LockTime;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, WPubkeyHash, Witness,
};
use bitcoind_sim::node::{BlockStatus, Node, NodeConfig};

fn script(tag: u8) -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([tag; 20]))
}

fn open(dir: &Path, persist_mempool: bool) -> Node {
    Node::open(NodeConfig {
        datadir: dir.to_path_buf(),
        txindex: true,
        persist_mempool,
    })
    .unwrap()
}

fn spend(coin: OutPoint, value: u64) -> Transaction {
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
            script_pubkey: script(2),
        }],
    }
}

/// Mines 102 blocks and puts a parent/child pair spending the first coinbase in the mempool.
fn chain_with_mempool(node: &Node) -> (Vec<bitcoin::BlockHash>, Transaction, Transaction) {
    let hashes = node.generate_to_script(102, &script(1)).unwrap();
    let coin = OutPoint {
        txid: node.block(&hashes[0]).unwrap().txdata[0].compute_txid(),
        vout: 0,
    };
    let parent = spend(coin, 5_000_000_000 - 10_000);
    let child = spend(
        OutPoint {
            txid: parent.compute_txid(),
            vout: 0,
        },
        5_000_000_000 - 20_000,
    );
    node.accept_transaction(parent.clone(), None, false)
        .unwrap();
    node.accept_transaction(child.clone(), None, false).unwrap();
    (hashes, parent, child)
}

#[test]
fn restart_keeps_the_chain_and_a_persisted_mempool() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), true);
    let (hashes, parent, child) = chain_with_mempool(&node);
    let time = node.mempool_entry(&parent.compute_txid()).unwrap().time;
    let info = node.chain_info();
    node.close().unwrap();
    drop(node);

    let node = open(dir.path(), true);
    assert_eq!(node.best_block_hash(), hashes[101]);
    assert_eq!(node.block_count(), 102);
    assert_eq!(node.chain_info().size_on_disk, info.size_on_disk);
    assert_eq!(
        node.mempool_txids(),
        vec![parent.compute_txid(), child.compute_txid()]
    );
    assert_eq!(
        node.mempool_entry(&parent.compute_txid()).unwrap().time,
        time
    );
    // The transaction index was rebuilt by the replay.
    let found = node
        .get_transaction(
            &node.block(&hashes[5]).unwrap().txdata[0].compute_txid(),
            None,
        )
        .unwrap();
    assert_eq!(found.block.unwrap().height, 6);
    node.generate_to_script(1, &script(1)).unwrap();
    assert!(node.mempool_txids().is_empty());
}

#[test]
fn restart_without_persist_mempool_starts_with_an_empty_mempool() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), true);
    let (hashes, parent, _) = chain_with_mempool(&node);
    node.close().unwrap();
    drop(node);
    let node = open(dir.path(), false);
    assert!(node.mempool_txids().is_empty());
    assert_eq!(node.best_block_hash(), hashes[101]);
    // The transaction is still valid and can be sent again.
    node.accept_transaction(parent, None, false).unwrap();
}

#[test]
fn crash_keeps_every_reported_block() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), true);
    let (hashes, _, _) = chain_with_mempool(&node);
    drop(node); // no close(): like a kill -9
    let node = open(dir.path(), true);
    assert_eq!(node.best_block_hash(), hashes[101]);
    for (height, hash) in hashes.iter().enumerate() {
        assert_eq!(node.block_hash(height as u32 + 1), Some(*hash));
    }
    assert!(node.mempool_txids().is_empty(), "nothing saved the mempool");
}

#[test]
fn invalidated_blocks_stay_invalid_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), false);
    let old = node.generate_to_script(3, &script(1)).unwrap();
    node.invalidate_block(&old[1]).unwrap();
    let new = node.generate_to_script(1, &script(3)).unwrap();
    drop(node);

    let node = open(dir.path(), false);
    assert_eq!(node.best_block_hash(), new[0]);
    assert_eq!(
        node.block_entry(&old[2]).unwrap().status,
        BlockStatus::Invalid
    );
    let tips = node.chain_tips();
    assert_eq!((tips[0].hash, tips[0].status), (old[2], "invalid"));
    node.reconsider_block(&old[1]).unwrap();
    assert_eq!(node.best_block_hash(), old[2]);
    drop(node);

    let node = open(dir.path(), false);
    assert_eq!(node.best_block_hash(), old[2]);
    let tips = node.chain_tips();
    assert_eq!((tips[1].hash, tips[1].status), (new[0], "valid-fork"));
}

#[test]
fn a_torn_block_record_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), false);
    let hashes = node.generate_to_script(5, &script(1)).unwrap();
    let size = node.chain_info().size_on_disk;
    drop(node);
    let path = dir.path().join("regtest/blocks/blk00000.dat");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(&[0xfa, 0xbf, 0xb5, 0xda, 0xf0, 0x00, 0x00, 0x00, 0x01, 0x02])
        .unwrap();
    drop(file);

    let node = open(dir.path(), false);
    assert_eq!(node.best_block_hash(), hashes[4]);
    assert_eq!(node.chain_info().size_on_disk, size);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
    let more = node.generate_to_script(1, &script(1)).unwrap();
    drop(node);
    assert_eq!(open(dir.path(), false).best_block_hash(), more[0]);
}

#[test]
fn size_on_disk_counts_every_block_record() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path(), false);
    let before = node.chain_info().size_on_disk;
    let hash = node.generate_to_script(1, &script(1)).unwrap()[0];
    let size = node.block_entry(&hash).unwrap().size as u64;
    assert_eq!(node.chain_info().size_on_disk, before + 8 + size);
}

#[test]
fn a_corrupt_block_file_is_a_storage_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), false));
    std::fs::write(
        dir.path().join("regtest/blocks/blk00000.dat"),
        b"not a block file at all",
    )
    .unwrap();
    let err = Node::open(NodeConfig {
        datadir: dir.path().to_path_buf(),
        txindex: false,
        persist_mempool: false,
    });
    assert!(matches!(
        err,
        Err(bitcoind_sim::node::NodeError::Storage(_))
    ));
}
