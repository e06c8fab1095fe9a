//! Regressions (review of 3faf63f, sections 2 and 6): the tower follows reorgs that reach below
//! the first block it processed or deeper than the blocks it keeps, and does not follow bitcoind
//! to a chain with less work (a `-reindex`, a restore from an older snapshot) unless bitcoind
//! marked the tower's blocks invalid.
//!
//! Real teosd + bitcoind-sim over loopback; state read through the protocol client, the admin API
//! and the simulator's node.

mod common;

use common::*;

/// A user with one appointment the tower acknowledged, and the breach that triggers it.
struct Watched {
    user: User,
    appointment: teos_common::appointment::Appointment,
    commitment: bitcoin::Transaction,
    penalty: bitcoin::Transaction,
}

fn watched(chain: &Chain, tower: &TowerProcess, seed: u8) -> Watched {
    let user = User::new(&tower.url(), seed);
    user.register().unwrap();
    let (commitment, penalty) = chain.breach();
    let appointment = appointment_for(&commitment, &penalty);
    user.add(&appointment).unwrap();
    Watched {
        user,
        appointment,
        commitment,
        penalty,
    }
}

/// Breaches `w` on bitcoind's current chain and waits for the tower's penalty in the mempool.
fn breach_is_answered(chain: &Chain, tower: &mut TowerProcess, admin: &AdminView, w: &Watched) {
    assert_eq!(
        appointment_state(&w.user, &w.appointment.locator),
        "being_watched",
        "the acknowledged appointment is still there"
    );
    chain.broadcast(&w.commitment);
    chain.mine(1);
    tower.wait_at_tip(admin, chain);
    let penalty = w.penalty.compute_txid();
    wait_until("the penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty)
    });
    wait_for_state(&w.user, &w.appointment.locator, "dispute_responded");
}

#[test]
fn reorg_of_the_bootstrap_block_is_followed() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let admin = AdminView::connect(&tower);
    let bootstrap = chain.sim().node().best_block_hash();
    assert_eq!(tower.wait_at_tip(&admin, &chain).hash, bootstrap);
    let w = watched(&chain, &tower, 1);

    // A one-block reorg of the block the tower started at.
    chain.sim().node().invalidate_block(&bootstrap).unwrap();
    chain.mine_elsewhere(2, 90);
    let info = tower.wait_at_tip(&admin, &chain);
    assert_eq!(info.height, chain.height());
    breach_is_answered(&chain, &mut tower, &admin, &w);
}

#[test]
fn reorg_one_block_deeper_than_the_blocks_connected_since_bootstrap_is_followed() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let admin = AdminView::connect(&tower);
    let bootstrap = chain.sim().node().best_block_hash();
    let w = watched(&chain, &tower, 2);
    chain.mine(3);
    tower.wait_at_tip(&admin, &chain);

    // 4 blocks deep: the 3 connected since the start and the bootstrap block itself.
    chain.sim().node().invalidate_block(&bootstrap).unwrap();
    chain.mine_elsewhere(5, 91);
    tower.wait_at_tip(&admin, &chain);
    breach_is_answered(&chain, &mut tower, &admin, &w);
}

#[test]
fn reorg_of_the_stored_tip_while_the_tower_is_down_is_followed_after_restart() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let bootstrap = chain.sim().node().best_block_hash();
    let w = watched(&chain, &tower, 3);
    assert!(tower.stop().success());

    chain.sim().node().invalidate_block(&bootstrap).unwrap();
    chain.mine_elsewhere(2, 92);
    let mut tower = TowerProcess::spawn_serving(&tower.datadir.clone(), tower.api_port);
    let admin = AdminView::connect(&tower);
    tower.wait_at_tip(&admin, &chain);
    let w = Watched {
        user: User::new(&tower.url(), 3),
        ..w
    };
    breach_is_answered(&chain, &mut tower, &admin, &w);
}

#[test]
fn reorg_deeper_than_the_kept_blocks_is_followed() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let admin = AdminView::connect(&tower);
    let w = watched(&chain, &tower, 4);
    let start = chain.height();
    let hashes = chain.mine(300);
    tower.wait_at_tip(&admin, &chain);

    // 295 blocks deep, more than the 288 the tower keeps; the new branch is longer.
    let fork = chain.sim().node().block_hash(start + 6).unwrap();
    assert_eq!(fork, hashes[5]);
    chain.sim().node().invalidate_block(&fork).unwrap();
    assert_eq!(chain.height(), start + 5);
    chain.mine_elsewhere(297, 93);
    tower.wait_at_tip(&admin, &chain);
    breach_is_answered(&chain, &mut tower, &admin, &w);
}

#[test]
fn invalidated_tip_is_followed_even_though_the_remaining_chain_has_less_work() {
    // Guard for the fix of the next test: a branch bitcoind marks invalid is left even when what
    // remains has less work (the existing reorg tests rely on it).
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let admin = AdminView::connect(&tower);
    let w = watched(&chain, &tower, 5);
    let mined = chain.mine(3);
    tower.wait_at_tip(&admin, &chain);

    chain.sim().node().invalidate_block(&mined[2]).unwrap();
    let info = tower.wait_at_tip(&admin, &chain);
    assert_eq!(info.hash, mined[1]);
    breach_is_answered(&chain, &mut tower, &admin, &w);
}

#[test]
fn lower_work_tip_after_bitcoind_comes_back_behind_is_not_followed() {
    let mut chain = Chain::start(3);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let admin = AdminView::connect(&tower);
    let confirmed = watched(&chain, &tower, 6);
    let later = watched(&chain, &tower, 7);

    // A confirmed tracker: dispute at height d, penalty at d + 1, then a few more blocks.
    chain.broadcast(&confirmed.commitment);
    let dispute_height = chain.height() + 1;
    chain.mine(1);
    let penalty = confirmed.penalty.compute_txid();
    wait_until("the penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty)
    });
    chain.mine(5);
    assert!(chain.confirmations(&penalty) >= 1);
    let before = tower.wait_at_tip(&admin, &chain);
    assert_eq!(before.trackers, 1);

    // bitcoind comes back behind, below the dispute: less work than the tower's tip.
    chain.restart_behind(dispute_height - 2);
    assert!(chain.height() < before.height);
    // The tower has looked at the lower tip several times (its poller asks every second).
    let faults = chain.sim().faults();
    let chain_calls = || -> u64 {
        [
            "getbestblockhash",
            "getblockchaininfo",
            "getblockheader",
            "getblockhash",
            "getchaintips",
        ]
        .iter()
        .map(|m| faults.calls(m))
        .sum()
    };
    let polls = chain_calls();
    wait_until("the tower polling bitcoind", SOON, || {
        chain_calls() >= polls + 8
    });
    tower.assert_running("bitcoind is behind");
    let during = admin.info().expect("the admin API answers");
    assert_eq!(
        (during.height, during.hash),
        (before.height, before.hash),
        "the tower's tip stays where it was"
    );
    assert_eq!(during.trackers, 1);
    assert_eq!(
        appointment_state(&confirmed.user, &confirmed.appointment.locator),
        "dispute_responded"
    );
    assert!(
        !chain.in_mempool(&penalty) && !chain.in_mempool(&confirmed.commitment.compute_txid()),
        "dispute and penalty are not re-sent"
    );
    assert!(later.user.info().is_ok(), "the tower keeps serving");

    // bitcoind catches up past the old tip: the tower continues and answers later breaches.
    let node = chain.sim().node();
    while node.held_back_blocks() > 0 {
        node.reconnect_stored(10).unwrap();
    }
    assert_eq!(node.best_block_hash(), before.hash);
    chain.mine(1);
    let after = tower.wait_at_tip(&admin, &chain);
    assert_eq!(after.height, before.height + 1);
    breach_is_answered(&chain, &mut tower, &admin, &later);
    assert_eq!(
        appointment_state(&confirmed.user, &confirmed.appointment.locator),
        "dispute_responded"
    );
}
