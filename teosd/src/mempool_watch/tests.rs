//! The mempool watcher against a scripted bitcoind (`bitcoind::fake`): which mempool transactions it
//! answers, how (alone or as a package), and when its records go.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bitcoin::BlockHash;
use bitcoin::hashes::Hash;

use super::*;
use crate::bitcoind::PackageAnswer;
use crate::bitcoind::fake::FakeBitcoind;
use crate::storage::records::{TrackerRecord, TrackerStatus, UserRecord};
use crate::test_fixtures::{tx, user};
use crate::watched_locators::WatchedLocators;

/// The appointment for dispute `tx(n)`, whose blob decrypts to penalty `tx(n + 1000)` (or garbage).
fn appointment(n: u32, decryptable: bool) -> AppointmentRecord {
    let txid = tx(n).compute_txid();
    let locator = Locator::new(&txid);
    AppointmentRecord {
        uuid: AppointmentId::new(&locator, &user()),
        locator,
        user_id: user(),
        encrypted_blob: if decryptable {
            cryptography::encrypt(&tx(n + 1000), &txid)
        } else {
            vec![7; 100]
        },
        to_self_delay: 42,
        user_signature: "sig".into(),
        start_block: 100,
        slots: 1,
    }
}

fn txid(n: u32) -> Txid {
    tx(n).compute_txid()
}

fn refused(code: i32, message: &str) -> Result<Txid, RpcError> {
    Err(RpcError::Rpc {
        code,
        message: message.into(),
    })
}

/// A store holding `appointments` of one user (subscription until `expiry`), a view at the fake's tip
/// (height 110) with the watched-locators index loaded, and a watcher.
struct World {
    bitcoind: Arc<FakeBitcoind>,
    store: Store,
    view: SharedChainView,
    responses: MempoolResponses,
    watcher: MempoolWatcher<FakeBitcoind>,
    _dir: tempfile::TempDir,
}

impl World {
    fn new(appointments: &[AppointmentRecord], expiry: u32) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("teos.db")).unwrap();
        let bitcoind = Arc::new(FakeBitcoind::new(110));
        let view = SharedChainView::new(110, bitcoind.tip(), 6);
        let records = appointments.to_vec();
        let watched = store
            .write_blocking(move |conn| -> Result<_, StorageError> {
                let record = UserRecord {
                    available_slots: 10,
                    subscription_start: 100,
                    subscription_expiry: expiry,
                };
                conn.upsert_user(&user(), &record)?;
                for a in &records {
                    conn.upsert_appointment(a)?;
                }
                WatchedLocators::load(conn)
            })
            .unwrap();
        view.lock().watched = watched;
        let responses = MempoolResponses::new();
        let carrier = Carrier::new(
            bitcoind.clone(),
            Arc::new(AtomicBool::new(true)),
            Arc::new(Shutdown::new()),
        );
        let watcher =
            MempoolWatcher::new(carrier, store.clone(), view.clone(), responses.clone(), 6);
        World {
            bitcoind,
            store,
            view,
            responses,
            watcher,
            _dir: dir,
        }
    }

    fn mempool(&self, txids: &[Txid]) {
        self.bitcoind.set_mempool(txids.to_vec(), 100);
    }

    fn reconcile(&mut self) {
        self.watcher.reconcile(Reason::Periodic).unwrap();
    }
}

#[test]
fn a_dispute_in_the_mempool_is_answered_with_its_penalty_alone() {
    let a = appointment(1, true);
    let mut world = World::new(std::slice::from_ref(&a), 1000);
    world.mempool(&[txid(50), txid(1), txid(51)]);
    world.reconcile();
    assert_eq!(world.bitcoind.sent(), vec![txid(1001)]);
    assert!(world.bitcoind.packages().is_empty());
    let record = world.responses.get(&a.uuid).expect("recorded");
    assert_eq!(
        (record.dispute_txid, record.penalty_txid, record.via_package),
        (txid(1), txid(1001), false)
    );
    assert_eq!(record.penalty_tx, tx(1001));

    // Seen again (a ZMQ message, the next reconciliation): not sent again.
    world.mempool(&[txid(50), txid(1), txid(51), txid(1001)]);
    world.watcher.check(&[txid(1)], Instant::now()).unwrap();
    world.reconcile();
    assert_eq!(world.bitcoind.sent(), vec![txid(1001)]);
}

#[test]
fn unrelated_mempool_transactions_are_sent_nothing() {
    let mut world = World::new(&[appointment(1, true)], 1000);
    let unrelated: Vec<Txid> = (2..2000).map(txid).collect();
    world.mempool(&unrelated);
    world.reconcile();
    world.watcher.check(&unrelated, Instant::now()).unwrap();
    assert!(world.bitcoind.sent().is_empty());
    assert!(world.responses.is_empty());
}

#[test]
fn a_penalty_refused_alone_for_its_fee_is_submitted_with_its_dispute() {
    let a = appointment(1, true);
    let mut world = World::new(std::slice::from_ref(&a), 1000);
    world.bitcoind.add_tx(tx(1));
    world.bitcoind.script_send(
        txid(1001),
        vec![refused(-26, "mempool min fee not met, 110 < 2000")],
    );
    world.mempool(&[txid(1)]);
    world.reconcile();
    assert_eq!(world.bitcoind.packages(), vec![vec![txid(1), txid(1001)]]);
    assert!(world.responses.get(&a.uuid).expect("recorded").via_package);
}

#[test]
fn a_refused_package_leaves_the_appointment_watched_and_waits_before_trying_again() {
    let a = appointment(1, true);
    let mut world = World::new(std::slice::from_ref(&a), 1000);
    world.bitcoind.add_tx(tx(1));
    world.bitcoind.script_send(
        txid(1001),
        vec![refused(-26, "min relay fee not met, 0 < 110")],
    );
    world.bitcoind.script_package(vec![Ok(PackageAnswer {
        message: "transaction failed".into(),
        errors: vec![(txid(1001), "min relay fee not met".into())],
    })]);
    world.mempool(&[txid(1)]);
    world.reconcile();
    assert_eq!(world.bitcoind.packages().len(), 1);
    assert!(world.responses.is_empty());
    world.reconcile();
    assert_eq!(
        world.bitcoind.sent(),
        vec![txid(1001)],
        "not before RETRY_AFTER"
    );
    let uuid = a.uuid;
    let stored = world
        .store
        .read_blocking(move |conn| conn.appointment(&uuid))
        .unwrap();
    assert!(stored.is_some(), "still watched");
}

#[test]
fn a_penalty_refused_for_good_is_not_submitted_as_a_package() {
    let mut world = World::new(&[appointment(1, true)], 1000);
    world.bitcoind.add_tx(tx(1));
    world.bitcoind.script_send(
        txid(1001),
        vec![refused(
            -26,
            "mandatory-script-verify-flag-failed (Signature must be zero)",
        )],
    );
    world.mempool(&[txid(1)]);
    world.reconcile();
    assert!(world.bitcoind.packages().is_empty());
    assert!(world.responses.is_empty());
}

#[test]
fn breaches_the_block_path_owns_or_that_do_not_decrypt_or_of_outdated_users_are_left_alone() {
    // Dispute 1: a tracker exists (the block path answered it). Dispute 2: the blob is garbage.
    let (tracked, garbage) = (appointment(1, true), appointment(2, false));
    let mut world = World::new(&[tracked.clone(), garbage.clone()], 1000);
    let uuid = tracked.uuid;
    world
        .store
        .write_blocking(move |conn| {
            conn.insert_tracker(&TrackerRecord {
                uuid,
                dispute_txid: txid(1),
                dispute_tx: tx(1),
                penalty_txid: txid(1001),
                penalty_tx: tx(1001),
                dispute_height: Some(105),
                status: TrackerStatus::Reorged,
                status_height: 106,
                to_self_delay: 42,
            })
        })
        .unwrap();
    world.mempool(&[txid(1), txid(2)]);
    world.reconcile();
    assert!(world.bitcoind.sent().is_empty());
    let uuid = garbage.uuid;
    let kept = world
        .store
        .read_blocking(move |conn| conn.appointment(&uuid))
        .unwrap();
    assert!(kept.is_some(), "the mempool path never deletes");

    // Subscription expired at 100, kept 6 more blocks: outdated at 106, the tip is 110.
    let mut outdated = World::new(&[appointment(3, true)], 100);
    outdated.mempool(&[txid(3)]);
    outdated.reconcile();
    assert!(outdated.bitcoind.sent().is_empty());
}

#[test]
fn a_dispute_removed_from_the_mempool_drops_its_record() {
    let a = appointment(1, true);
    let mut world = World::new(std::slice::from_ref(&a), 1000);
    world.mempool(&[txid(1), txid(1001)]);
    world.reconcile();
    assert!(world.responses.contains(&a.uuid));
    // An `R` message (replaced by a conflicting transaction): dropped at once.
    world.watcher.removed(&txid(1));
    assert!(world.responses.is_empty());
    // Answered again when it comes back (a reorg, a re-broadcast).
    world.watcher.check(&[txid(1)], Instant::now()).unwrap();
    assert!(world.responses.contains(&a.uuid));
    // Gone from a reconciliation (the `R` message was lost), the tower at bitcoind's tip: dropped.
    world.mempool(&[txid(7)]);
    world.reconcile();
    assert!(world.responses.is_empty());
}

#[test]
fn a_dispute_gone_while_the_tower_is_behind_bitcoind_keeps_its_record_until_it_caught_up() {
    let a = appointment(1, true);
    let mut world = World::new(std::slice::from_ref(&a), 1000);
    world.mempool(&[txid(1), txid(1001)]);
    world.reconcile();
    // Mined: bitcoind is one block ahead of the tower.
    let mined = world.bitcoind.mine(1)[0];
    world.mempool(&[]);
    world.reconcile();
    assert!(
        world.responses.contains(&a.uuid),
        "kept until the block is processed"
    );
    {
        let mut view = world.view.lock();
        view.tip_height = 111;
        view.tip_hash = mined;
    }
    world.reconcile();
    assert!(world.responses.is_empty());
    assert_ne!(mined, BlockHash::all_zeros());
}

#[test]
fn a_penalty_gone_while_its_dispute_stays_is_answered_again() {
    let a = appointment(1, true);
    let mut world = World::new(std::slice::from_ref(&a), 1000);
    world.mempool(&[txid(1)]);
    world.reconcile();
    // The snapshot did not hold the penalty yet: it was sent after it. Still one record, one send.
    assert_eq!(world.bitcoind.sent(), vec![txid(1001)]);
    world.mempool(&[txid(1), txid(1001)]);
    world.reconcile();
    assert_eq!(world.bitcoind.sent(), vec![txid(1001)]);
    // The penalty is evicted; the dispute stays.
    world.mempool(&[txid(1)]);
    world.reconcile();
    assert_eq!(world.bitcoind.sent(), vec![txid(1001), txid(1001)]);
    assert!(world.responses.contains(&a.uuid));
}
