//! Unit tests of the block processor with a bitcoind that is never reached.

use bitcoin::Network;
use bitcoin::blockdata::constants::genesis_block;
use bitcoin::hashes::Hash;

use super::*;
use crate::bitcoind::{ChainInfo, ZmqNotification};
use crate::storage::StorageError;

/// A bitcoind that is never reached: connecting a block without breaches or trackers makes no call.
struct Unreachable;

impl BitcoindRpc for Unreachable {
    fn chain_info(&self) -> Result<ChainInfo, RpcError> {
        Err(RpcError::Transport("test".into()))
    }
    fn best_block_hash(&self) -> Result<BlockHash, RpcError> {
        Err(RpcError::Transport("test".into()))
    }
    fn block_hash(&self, _: u32) -> Result<BlockHash, RpcError> {
        Err(RpcError::Transport("test".into()))
    }
    fn block_header(&self, _: &BlockHash) -> Result<crate::bitcoind::HeaderInfo, RpcError> {
        Err(RpcError::Transport("test".into()))
    }
    fn chain_tips(&self) -> Result<Vec<crate::bitcoind::ChainTip>, RpcError> {
        Err(RpcError::Transport("test".into()))
    }
    fn block(&self, _: &BlockHash) -> Result<Block, RpcError> {
        Err(RpcError::Transport("test".into()))
    }
    fn send_raw_transaction(&self, _: &Transaction) -> Result<Txid, RpcError> {
        Err(RpcError::Transport("test".into()))
    }
    fn raw_transaction(&self, _: &Txid, _: Option<&BlockHash>) -> Result<Transaction, RpcError> {
        Err(RpcError::Transport("test".into()))
    }
    fn zmq_notifications(&self) -> Result<Vec<ZmqNotification>, RpcError> {
        Err(RpcError::Transport("test".into()))
    }
    fn mempool_snapshot(&self) -> Result<crate::bitcoind::MempoolSnapshot, RpcError> {
        Err(RpcError::Transport("test".into()))
    }
    fn submit_package(
        &self,
        _: &[Transaction],
    ) -> Result<crate::bitcoind::PackageAnswer, RpcError> {
        Err(RpcError::Transport("test".into()))
    }
}

fn processor(store: &Store, view: &SharedChainView) -> BlockProcessor<Unreachable> {
    BlockProcessor::new(
        Arc::new(Unreachable),
        store.clone(),
        view.clone(),
        SubscriptionParams {
            slots: 10,
            duration: 4320,
            expiry_delta: 6,
        },
        Arc::new(Shutdown::new()),
        Arc::new(AtomicBool::new(true)),
        Arc::new(crate::notify::Heartbeat::new()),
    )
}

#[test]
fn a_block_whose_commit_fails_leaves_no_trace_in_the_chain_view() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("teos.db")).unwrap();
    let start = BlockHash::from_byte_array([7; 32]);
    let view = SharedChainView::new(100, start, 6);
    let mut processor = processor(&store, &view);
    let block = genesis_block(Network::Regtest);
    let locator = Locator::new(&block.txdata[0].compute_txid());

    // Make the block's commit op fail: its `chain` row cannot be written.
    store
        .write_sqlite_blocking(|conn| -> Result<(), StorageError> {
            conn.execute_batch("ALTER TABLE chain RENAME TO chain_away")?;
            Ok(())
        })
        .unwrap();
    assert!(processor.connect_block(&block, 101).is_err());
    assert_eq!(view.tip(), (100, start), "tip not advanced");
    assert!(
        view.lock().cache.get(&locator).is_none(),
        "txids taken back out"
    );
    assert_eq!((processor.tip().height, processor.tip().hash), (100, start));

    // Once the commit can succeed, the same block connects normally.
    store
        .write_sqlite_blocking(|conn| -> Result<(), StorageError> {
            conn.execute_batch("ALTER TABLE chain_away RENAME TO chain")?;
            Ok(())
        })
        .unwrap();
    processor.connect_block(&block, 101).unwrap();
    assert_eq!(view.tip(), (101, block.block_hash()));
    assert!(view.lock().cache.get(&locator).is_some());
}

#[test]
fn a_reorg_whose_commit_fails_leaves_the_chain_view_unchanged() {
    use crate::bitcoind::fake::FakeBitcoind;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("teos.db")).unwrap();
    let bitcoind = Arc::new(FakeBitcoind::new(10));
    let tip = bitcoind.tip();
    store
        .write_blocking(move |conn| conn.push_block(10, &tip, None, KEPT_BLOCKS))
        .unwrap();
    let view = SharedChainView::new(10, tip, 6);
    view.lock()
        .cache
        .connect_block(tip, 10, &[Txid::from_byte_array([5; 32])]);
    let mut processor = BlockProcessor::new(
        bitcoind.clone(),
        store.clone(),
        view.clone(),
        SubscriptionParams {
            slots: 10,
            duration: 4320,
            expiry_delta: 6,
        },
        Arc::new(Shutdown::new()),
        Arc::new(AtomicBool::new(true)),
        Arc::new(crate::notify::Heartbeat::new()),
    );
    // The bootstrap block is reorged out by a longer branch.
    let branch = bitcoind.branch(bitcoind.at(9), 2);
    let cached = Locator::new(&Txid::from_byte_array([5; 32]));

    // The reorg's COMMIT fails (after the op ran and changed the view): a deferred foreign key on the
    // row it deletes. The view must keep the old tip and its cached block.
    store
        .write_sqlite_blocking(|conn| -> Result<(), StorageError> {
            conn.execute_batch(
                "CREATE TABLE hold (height INTEGER REFERENCES chain (height)
                     DEFERRABLE INITIALLY DEFERRED);
                 INSERT INTO hold VALUES (10);",
            )?;
            Ok(())
        })
        .unwrap();
    assert!(processor.sync(|_, _| {}).is_err());
    assert_eq!(view.tip(), (10, tip), "tip unchanged");
    assert!(view.lock().cache.get(&cached).is_some(), "cache unchanged");
    assert_eq!(processor.tip().hash, tip);

    // Once commits succeed, the tower follows the branch from the fork point.
    store
        .write_sqlite_blocking(|conn| -> Result<(), StorageError> {
            conn.execute_batch("DROP TABLE hold")?;
            Ok(())
        })
        .unwrap();
    processor.sync(|_, _| {}).unwrap();
    assert_eq!(view.tip(), (11, branch[1]));
    assert!(
        view.lock().cache.get(&cached).is_none(),
        "stale block left the cache"
    );
    let stored = store.read_blocking(|tx| tx.chain_tip()).unwrap();
    assert_eq!(stored, Some((11, branch[1])));
}

#[test]
fn late_appointments_are_answered_in_bounded_batches_between_looks_at_the_tip() {
    use crate::bitcoind::fake::FakeBitcoind;
    use crate::storage::records::{AppointmentRecord, UserRecord};
    use bitcoin::absolute::LockTime;
    use bitcoin::transaction::Version;
    use teos_common::appointment::{AppointmentId, UserId};

    let tx = |n: u32| Transaction {
        version: Version::TWO,
        lock_time: LockTime::from_consensus(n),
        input: Vec::new(),
        output: Vec::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("teos.db")).unwrap();
    let bitcoind = Arc::new(FakeBitcoind::new(10));
    let tip = bitcoind.tip();
    let sk = secp256k1::SecretKey::from_slice(&[5; 32]).unwrap();
    let user = UserId(sk.public_key(secp256k1::SECP256K1));
    // 40 late appointments whose disputes are in block 10 (their blobs decrypt to penalties).
    let late = 2 * LATE_BATCH + 8;
    let disputes: Vec<Transaction> = (0..late).map(tx).collect();
    for dispute in &disputes {
        bitcoind.add_tx(dispute.clone());
    }
    let rows = disputes.clone();
    store
        .write_blocking(move |conn| -> Result<(), StorageError> {
            conn.push_block(10, &tip, None, KEPT_BLOCKS)?;
            conn.upsert_user(
                &user,
                &UserRecord {
                    available_slots: 100,
                    subscription_start: 0,
                    subscription_expiry: 1000,
                },
            )?;
            for (n, dispute) in rows.iter().enumerate() {
                let txid = dispute.compute_txid();
                let locator = Locator::new(&txid);
                let uuid = AppointmentId::new(&locator, &user);
                conn.upsert_appointment(&AppointmentRecord {
                    uuid,
                    locator,
                    user_id: user,
                    encrypted_blob: teos_common::cryptography::encrypt(&tx(1000 + n as u32), &txid),
                    to_self_delay: 42,
                    user_signature: "sig".into(),
                    start_block: 10,
                    slots: 1,
                })?;
                conn.upsert_pending_breach(&uuid, &txid, &tip, 10)?;
            }
            Ok(())
        })
        .unwrap();
    let view = SharedChainView::new(10, tip, 6);
    let mut processor = BlockProcessor::new(
        bitcoind.clone(),
        store.clone(),
        view,
        SubscriptionParams {
            slots: 10,
            duration: 4320,
            expiry_delta: 6,
        },
        Arc::new(Shutdown::new()),
        Arc::new(AtomicBool::new(true)),
        Arc::new(crate::notify::Heartbeat::new()),
    );
    let pending = || {
        store
            .read_blocking(|tx| tx.pending_breaches_after(None, u32::MAX))
            .unwrap()
            .len() as u32
    };
    let tracked = || store.read_blocking(|tx| tx.count_trackers()).unwrap() as u32;

    // Each turn answers at most LATE_BATCH and says whether more wait, so the main loop looks at
    // bitcoind's tip (and connects a new block) between batches.
    assert!(processor.handle_pending_breaches(LATE_BATCH).unwrap());
    assert_eq!((pending(), tracked()), (late - LATE_BATCH, LATE_BATCH));
    assert_eq!(
        bitcoind.sent().len() as u32,
        LATE_BATCH,
        "one penalty sent per answer"
    );
    assert!(processor.handle_pending_breaches(LATE_BATCH).unwrap());
    assert!(!processor.handle_pending_breaches(LATE_BATCH).unwrap());
    assert_eq!((pending(), tracked()), (0, late));
}
