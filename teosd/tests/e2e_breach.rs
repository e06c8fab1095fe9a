//! End to end: bitcoind-sim + the real teosd binary + a protocol client over HTTP.

mod common;

use common::*;
use teos_common::protocol::GetAppointmentResponse;
use teosd::storage::{StorageError, Store};

#[test]
fn breach_is_answered_and_the_tracker_completes_after_100_confirmations() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let user = User::new(&tower.url(), 1);

    let registered = user.register().unwrap();
    let slots = registered.available_slots;
    let (commitment, penalty) = chain.breach();
    let appointment = appointment_for(&commitment, &penalty);
    let receipt = user.add(&appointment).unwrap();
    assert_eq!(receipt.available_slots, slots - 1);
    assert_eq!(receipt.start_block, chain.height());
    match user.get(&appointment.locator).unwrap() {
        GetAppointmentResponse::BeingWatched(watched) => assert_eq!(watched, appointment),
        other => panic!("expected being_watched, got {other:?}"),
    }

    chain.broadcast(&commitment);
    chain.mine(1);
    let penalty_txid = penalty.compute_txid();
    wait_until("the penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty_txid)
    });
    wait_until("dispute_responded", SOON, || {
        matches!(
            user.get(&appointment.locator),
            Ok(GetAppointmentResponse::DisputeResponded(_))
        )
    });
    match user.get(&appointment.locator).unwrap() {
        GetAppointmentResponse::DisputeResponded(t) => {
            assert_eq!(t.dispute_txid, commitment.compute_txid());
            assert_eq!(t.penalty_txid, penalty_txid);
            assert_eq!(t.penalty_rawtx, penalty);
        }
        other => panic!("expected dispute_responded, got {other:?}"),
    }

    chain.mine(1);
    assert_eq!(chain.confirmations(&penalty_txid), 1);
    chain.mine(98);
    // 99 confirmations: still tracked.
    tower.wait_for_tip(&chain);
    assert!(matches!(
        user.get(&appointment.locator),
        Ok(GetAppointmentResponse::DisputeResponded(_))
    ));
    chain.mine(1);
    wait_until("the tracker completed", SOON, || {
        error_code_of_get(&user, &appointment) == Some(36)
    });
    assert_eq!(
        user.info().unwrap().available_slots,
        slots,
        "slots refunded"
    );
}

fn error_code_of_get(
    user: &User,
    appointment: &teos_common::appointment::Appointment,
) -> Option<u8> {
    match user.get(&appointment.locator) {
        Err(teos_common::client::ClientError::Api { error, .. }) => Some(error.code.as_u8()),
        _ => None,
    }
}

#[test]
fn late_appointment_is_answered_at_once() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let user = User::new(&tower.url(), 2);
    user.register().unwrap();

    let (commitment, penalty) = chain.breach();
    chain.broadcast(&commitment);
    chain.mine(3);
    tower.wait_for_tip(&chain);

    let appointment = appointment_for(&commitment, &penalty);
    user.add(&appointment).unwrap();
    wait_until("the penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty.compute_txid())
    });
    wait_until("dispute_responded", SOON, || {
        matches!(
            user.get(&appointment.locator),
            Ok(GetAppointmentResponse::DisputeResponded(_))
        )
    });
    assert_eq!(
        common::error_code(user.add(&appointment)),
        (400, 35),
        "already triggered"
    );
}

#[test]
fn breach_while_the_tower_is_stopped_is_answered_after_restart() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let user = User::new(&tower.url(), 3);
    user.register().unwrap();
    let (commitment, penalty) = chain.breach();
    let appointment = appointment_for(&commitment, &penalty);
    user.add(&appointment).unwrap();

    assert!(tower.stop().success());
    chain.broadcast(&commitment);
    chain.mine(5);
    let tower = TowerProcess::spawn(&tower.datadir.clone(), tower.api_port, &[]);
    wait_until("the penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty.compute_txid())
    });
    let user = User::new(&tower.url(), 3);
    assert!(matches!(
        user.get(&appointment.locator).unwrap(),
        GetAppointmentResponse::DisputeResponded(_)
    ));
}

#[test]
fn breach_during_a_bitcoind_outage_is_answered_once_it_is_back() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let user = User::new(&tower.url(), 4);
    user.register().unwrap();
    let (commitment, penalty) = chain.breach();
    let appointment = appointment_for(&commitment, &penalty);
    user.add(&appointment).unwrap();

    chain
        .sim()
        .faults()
        .refuse_rpc(std::time::Duration::from_secs(4));
    wait_until("the API answering 503", SOON, || {
        matches!(
            user.info(),
            Err(teos_common::client::ClientError::Api { status: 503, .. })
        )
    });
    chain.broadcast(&commitment);
    chain.mine(1);
    wait_until("the penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty.compute_txid())
    });
    wait_until("the API serving again", SOON, || user.info().is_ok());
}

#[test]
fn reorg_removing_dispute_and_penalty_with_an_emptied_mempool_ends_with_the_penalty_confirmed() {
    let mut chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let user = User::new(&tower.url(), 5);
    user.register().unwrap();
    let (commitment, penalty) = chain.breach();
    let appointment = appointment_for(&commitment, &penalty);
    user.add(&appointment).unwrap();

    chain.broadcast(&commitment);
    let dispute_block = chain.mine(1)[0];
    let penalty_txid = penalty.compute_txid();
    wait_until("the penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty_txid)
    });
    chain.mine(1);
    assert_eq!(chain.confirmations(&penalty_txid), 1);
    tower.wait_for_tip(&chain);

    // Both blocks leave the chain; bitcoind restarts with an empty mempool, forgetting both txs.
    chain.sim().node().invalidate_block(&dispute_block).unwrap();
    chain.restart(false);
    assert!(!chain.in_mempool(&commitment.compute_txid()));
    // A longer competing branch, mined by someone else.
    let other = bitcoind_sim::wallet::TestWallet::new(99);
    chain
        .sim()
        .node()
        .generate_to_script(3, &other.script_pubkey())
        .unwrap();
    wait_until("dispute and penalty re-sent", SOON, || {
        chain.in_mempool(&penalty_txid)
    });
    chain.mine(1);
    assert!(
        chain.confirmations(&penalty_txid) >= 1,
        "penalty confirmed on the new chain"
    );
    assert!(matches!(
        user.get(&appointment.locator).unwrap(),
        GetAppointmentResponse::DisputeResponded(_)
    ));
}

#[test]
fn deep_reorg_of_ten_blocks_is_followed_and_the_breach_answered_again() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let user = User::new(&tower.url(), 6);
    user.register().unwrap();
    let (commitment, penalty) = chain.breach();
    let appointment = appointment_for(&commitment, &penalty);
    user.add(&appointment).unwrap();

    let fork_point = chain.height();
    chain.broadcast(&commitment);
    let first = chain.mine(1)[0];
    let penalty_txid = penalty.compute_txid();
    wait_until("the penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty_txid)
    });
    chain.mine(9);
    let tip = chain.height();
    assert_eq!(tip, fork_point + 10);
    tower.wait_for_tip(&chain);

    // Ten blocks reorged out; the dispute and penalty go back to the mempool and are mined again
    // on an 11-block branch.
    chain.sim().node().invalidate_block(&first).unwrap();
    let other = bitcoind_sim::wallet::TestWallet::new(98);
    chain
        .sim()
        .node()
        .generate_to_script(11, &other.script_pubkey())
        .unwrap();
    let new_tip = chain.height();
    assert_eq!(new_tip, fork_point + 11);
    // The tower's tip becomes the new branch's (hash included): it left the ten blocks it had
    // processed.
    tower.wait_for_tip(&chain);
    assert!(
        chain.confirmations(&penalty_txid) >= 1,
        "penalty confirmed on the new branch"
    );
    assert!(matches!(
        user.get(&appointment.locator).unwrap(),
        GetAppointmentResponse::DisputeResponded(_)
    ));
}

#[test]
fn penalty_lost_from_the_mempool_is_rebroadcast_after_six_blocks() {
    let mut chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let user = User::new(&tower.url(), 7);
    user.register().unwrap();
    let (commitment, penalty) = chain.breach();
    user.add(&appointment_for(&commitment, &penalty)).unwrap();
    chain.broadcast(&commitment);
    chain.mine(1);
    let penalty_txid = penalty.compute_txid();
    wait_until("the penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty_txid)
    });

    // bitcoind restarts without its mempool: the penalty is gone, the dispute stays confirmed.
    chain.restart(false);
    assert!(!chain.in_mempool(&penalty_txid));
    let other = bitcoind_sim::wallet::TestWallet::new(97);
    chain
        .sim()
        .node()
        .generate_to_script(5, &other.script_pubkey())
        .unwrap();
    tower.wait_for_tip(&chain);
    assert!(
        !chain.in_mempool(&penalty_txid),
        "rebroadcast before 6 blocks"
    );
    chain
        .sim()
        .node()
        .generate_to_script(1, &other.script_pubkey())
        .unwrap();
    wait_until("the penalty rebroadcast", SOON, || {
        chain.in_mempool(&penalty_txid)
    });
    chain.mine(1);
    assert_eq!(chain.confirmations(&penalty_txid), 1);
}

#[test]
fn breaches_in_many_blocks_mined_while_stopped_are_all_answered_during_catch_up() {
    let chain = Chain::start(4);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let user = User::new(&tower.url(), 8);
    user.register().unwrap();
    let breaches: Vec<_> = (0..3).map(|_| chain.breach()).collect();
    for (commitment, penalty) in &breaches {
        user.add(&appointment_for(commitment, penalty)).unwrap();
    }

    // Blocks are downloaded ahead during catch-up: breaches early, in consecutive blocks, in the same
    // block and in the last block must all be found.
    assert!(tower.stop().success());
    chain.mine(1);
    chain.broadcast(&breaches[0].0);
    chain.mine(1);
    chain.mine(7);
    chain.broadcast(&breaches[1].0);
    chain.mine(1);
    chain.broadcast(&breaches[2].0);
    chain.mine(1);
    let tip = chain.height();
    let tower = TowerProcess::spawn(&tower.datadir.clone(), tower.api_port, &[]);
    for (_, penalty) in &breaches {
        let txid = penalty.compute_txid();
        wait_until("every penalty in the mempool", SOON, || {
            chain.in_mempool(&txid)
        });
    }
    tower.wait_for_tip(&chain);

    // Each block of the catch-up was connected: the tower remembers every one by its hash.
    let mut tower = tower;
    assert!(tower.stop().success());
    let store = Store::open(&tower.datadir.join("regtest/teos_db.sql3")).unwrap();
    let remembered = store
        .read_blocking(move |conn| -> Result<Vec<_>, StorageError> {
            (tip - 10..=tip)
                .map(|height| conn.block_hash_at(height))
                .collect()
        })
        .unwrap();
    store.close().unwrap();
    let node = chain.sim().node();
    let active: Vec<_> = (tip - 10..=tip).map(|h| node.block_hash(h)).collect();
    assert_eq!(remembered, active, "blocks {} to {tip} connected", tip - 10);
}

#[test]
fn reorg_while_stopped_is_followed_before_catching_up_on_the_new_branch() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let user = User::new(&tower.url(), 9);
    user.register().unwrap();
    let (commitment, penalty) = chain.breach();
    let appointment = appointment_for(&commitment, &penalty);
    user.add(&appointment).unwrap();
    let stale = chain.mine(3);
    let tower_tip = chain.height();
    tower.wait_for_tip(&chain);

    // While the tower is down, its last 3 blocks are reorged out by a longer branch holding the
    // dispute: the first blocks it downloads do not build on its tip.
    assert!(tower.stop().success());
    chain.sim().node().invalidate_block(&stale[0]).unwrap();
    chain.broadcast(&commitment);
    let other = bitcoind_sim::wallet::TestWallet::new(97);
    chain
        .sim()
        .node()
        .generate_to_script(8, &other.script_pubkey())
        .unwrap();
    let new_tip = chain.height();
    assert_eq!(new_tip, tower_tip + 5);
    let tower = TowerProcess::spawn(&tower.datadir.clone(), tower.api_port, &[]);
    wait_until("the penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty.compute_txid())
    });
    // On the new branch, hash included: the three stale blocks were left.
    tower.wait_for_tip(&chain);
}

#[test]
fn after_a_restart_late_appointments_are_answered_from_stored_txids_without_block_downloads() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let user = User::new(&tower.url(), 10);
    user.register().unwrap();

    // Seven blocks processed by the tower; the dispute is in the fifth, inside the 6-block cache.
    let (commitment, penalty) = chain.breach();
    chain.mine(4);
    chain.broadcast(&commitment);
    chain.mine(3);
    tower.wait_for_tip(&chain);
    assert!(tower.stop().success());

    let tower = TowerProcess::spawn(&tower.datadir.clone(), tower.api_port, &[]);
    wait_for_locator_cache(&tower, 0);
    let user = User::new(&tower.url(), 10);
    user.add(&appointment_for(&commitment, &penalty)).unwrap();
    wait_until("the penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty.compute_txid())
    });
}

#[test]
fn a_block_downloaded_to_fill_the_locator_cache_is_not_downloaded_again() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    // The first start begins at bitcoind's tip without having processed it: its txids are unknown.
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    wait_for_locator_cache(&tower, 1);
    assert!(tower.stop().success());
    let tower = TowerProcess::spawn(&tower.datadir.clone(), tower.api_port, &[]);
    wait_for_locator_cache(&tower, 0);
}

/// Waits for the startup event saying the 6-block locator cache is filled, `downloaded` of its
/// blocks fetched from bitcoind (the others' txids came from the database). The event is known by
/// its target and constant message, its counts read from its fields.
fn wait_for_locator_cache(tower: &TowerProcess, downloaded: u64) {
    tower.wait_for_event("the locator cache filled", SOON, |e| {
        e.target == "teosd::block_processor"
            && e.message() == "locator cache filled"
            && e.u64("blocks") == Some(6)
            && e.u64("downloaded") == Some(downloaded)
    });
}
