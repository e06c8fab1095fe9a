//! Regressions (review of 3faf63f, sections 3, 4, 11 and R): what the tower does with bitcoind's
//! answers to `sendrawtransaction` (-27 for a penalty already mined, -26 for a fee below the
//! mempool's minimum, -25 for a dispute whose input another branch spent) and with a slot refund
//! that would overflow.
//!
//! Real teosd + bitcoind-sim over loopback; state read through the protocol client, the admin API
//! and the simulator's node.

mod common;

use std::time::Duration;

use bitcoin::Amount;
use common::*;

/// `to_self_delay` of [`appointment_for`]'s appointments (blocks).
const TO_SELF_DELAY: u32 = 42;

#[test]
fn late_appointment_whose_penalty_is_already_confirmed_completes_and_refunds_its_slot() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let admin = AdminView::connect(&tower);
    let user = User::new(&tower.url(), 1);
    let slots = user.register().unwrap().available_slots;

    // Another tower answered the breach: dispute and penalty are both mined.
    let (commitment, penalty) = chain.breach();
    chain.broadcast(&commitment);
    chain.mine(1);
    chain.broadcast(&penalty);
    chain.mine(1);
    tower.wait_at_tip(&admin, &chain);

    // The client's retrier delivers the appointment late (dispute within the last 6 blocks).
    let appointment = appointment_for(&commitment, &penalty);
    assert_eq!(user.add(&appointment).unwrap().available_slots, slots - 1);
    wait_until("the late breach handled", SOON, || {
        appointment_state(&user, &appointment.locator) != "being_watched"
    });

    chain.mine(110);
    tower.wait_at_tip(&admin, &chain);
    wait_for_state(&user, &appointment.locator, "not_found");
    assert_eq!(user.info().unwrap().available_slots, slots, "slot refunded");
    assert_eq!(admin.info().unwrap().trackers, 0);
}

/// Registers a user, adds the appointment of a fresh breach, raises bitcoind's mempool min fee
/// above the penalty's 2 sat/vB and mines the dispute directly into a block (not through the
/// mempool). Returns the user, the appointment, the penalty and the dispute's height.
fn breach_during_a_fee_spike(
    chain: &Chain,
    tower: &mut TowerProcess,
    admin: &AdminView,
    seed: u8,
) -> (
    User,
    teos_common::appointment::Appointment,
    bitcoin::Transaction,
    u32,
) {
    let user = User::new(&tower.url(), seed);
    user.register().unwrap();
    let (commitment, penalty) = chain.breach();
    let appointment = appointment_for(&commitment, &penalty);
    user.add(&appointment).unwrap();
    chain.sim().node().set_mempool_min_fee(5_000);
    let sends = chain.sim().faults().calls("sendrawtransaction");
    chain.mine_with(std::slice::from_ref(&commitment), 80);
    let dispute_height = chain.height();
    tower.wait_at_tip(admin, chain);
    assert!(
        chain.sim().faults().calls("sendrawtransaction") > sends,
        "the tower tried the penalty"
    );
    assert!(!chain.in_mempool(&penalty.compute_txid()));
    (user, appointment, penalty, dispute_height)
}

#[test]
fn penalty_refused_for_the_mempool_min_fee_is_kept_and_sent_once_fees_fall() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let admin = AdminView::connect(&tower);
    let (user, appointment, penalty, _) = breach_during_a_fee_spike(&chain, &mut tower, &admin, 2);
    assert_eq!(
        appointment_state(&user, &appointment.locator),
        "dispute_responded",
        "the appointment is kept while the to_self_delay window is open"
    );

    chain.sim().node().set_mempool_min_fee(0);
    chain.mine(1);
    tower.wait_at_tip(&admin, &chain);
    wait_for_penalty(&chain, &penalty.compute_txid(), &user, &appointment.locator);
}

#[test]
fn penalty_refused_for_fees_until_the_to_self_delay_window_closes_is_dropped() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let admin = AdminView::connect(&tower);
    let (user, appointment, penalty, dispute_height) =
        breach_during_a_fee_spike(&chain, &mut tower, &admin, 3);
    chain.mine(2);
    tower.wait_at_tip(&admin, &chain);
    assert_eq!(
        appointment_state(&user, &appointment.locator),
        "dispute_responded"
    );

    // The fee never falls: once the dispute is to_self_delay deep the penalty cannot win.
    let target = dispute_height + TO_SELF_DELAY + 1;
    chain.mine(target - chain.height());
    tower.wait_at_tip(&admin, &chain);
    wait_for_state(&user, &appointment.locator, "not_found");
    assert!(!chain.in_mempool(&penalty.compute_txid()));
}

#[test]
fn dispute_refused_for_missing_inputs_while_its_block_is_reorged_out_is_watched_again_and_answered_when_remined()
 {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let admin = AdminView::connect(&tower);
    let user = User::new(&tower.url(), 4);
    user.register().unwrap();

    // The dispute, and a conflicting transaction spending the same coin.
    let node = chain.sim().node();
    let coin = chain.wallet.spendable(&node)[0].clone();
    let breach = chain
        .wallet
        .build_breach_from(vec![coin.clone()], Amount::from_sat(1_000_000), 42)
        .unwrap();
    let conflict = chain
        .wallet
        .build_breach_from(vec![coin], Amount::from_sat(900_000), 42)
        .unwrap()
        .commitment;
    let (dispute, penalty) = (breach.commitment, breach.penalty);
    let appointment = appointment_for(&dispute, &penalty);
    user.add(&appointment).unwrap();

    // Block B with the dispute; the tower's penalty send is held while bitcoind replaces B with
    // a branch where the conflict spends the dispute's input.
    let faults = chain.sim().faults();
    faults.stall_method("sendrawtransaction", Duration::from_secs(600));
    let b = chain.mine_with(std::slice::from_ref(&dispute), 81);
    wait_until("the tower sending the penalty", SOON, || {
        faults.held_calls("sendrawtransaction") == 1
    });
    node.invalidate_block(&b).unwrap();
    chain.mine_with(std::slice::from_ref(&conflict), 82);
    chain.mine_elsewhere(1, 82);
    faults.clear_method("sendrawtransaction");
    tower.wait_at_tip(&admin, &chain);
    wait_for_state(&user, &appointment.locator, "being_watched");

    // That branch is reorged out too and the dispute mined again: answered.
    let conflict_block = node
        .get_transaction(&conflict.compute_txid(), None)
        .unwrap()
        .block
        .unwrap()
        .hash;
    node.invalidate_block(&conflict_block).unwrap();
    chain.mine_with(std::slice::from_ref(&dispute), 83);
    chain.mine_elsewhere(2, 83);
    tower.wait_at_tip(&admin, &chain);
    wait_for_penalty(&chain, &penalty.compute_txid(), &user, &appointment.locator);
}

#[test]
fn slot_refund_that_would_overflow_does_not_stop_block_processing() {
    let chain = Chain::start(3);
    let dir = tempfile::tempdir().unwrap();
    let options = TowerOptions {
        extra: vec!["subscription_slots = 2147483648".into()],
    };
    let mut tower = TowerProcess::start(&chain, dir.path(), &options);
    let admin = AdminView::connect(&tower);

    let u = User::new(&tower.url(), 5);
    assert_eq!(u.register().unwrap().available_slots, 2_147_483_648);
    let (commitment, penalty) = chain.breach();
    let appointment = appointment_for(&commitment, &penalty);
    assert_eq!(u.add(&appointment).unwrap().available_slots, 2_147_483_647);
    assert_eq!(u.register().unwrap().available_slots, u32::MAX);

    chain.broadcast(&commitment);
    chain.mine(1);
    let penalty = penalty.compute_txid();
    wait_until("the penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty)
    });
    chain.mine(1);
    assert_eq!(chain.confirmations(&penalty), 1);

    let v = User::new(&tower.url(), 6);
    v.register().unwrap();
    let (commitment_v, penalty_v) = chain.breach();
    let appointment_v = appointment_for(&commitment_v, &penalty_v);
    v.add(&appointment_v).unwrap();

    // The 100th confirmation completes U's tracker; its refund would pass u32::MAX.
    chain.mine(100);
    tower.wait_at_tip(&admin, &chain);
    wait_for_state(&u, &appointment.locator, "not_found");
    assert_eq!(u.info().unwrap().available_slots, u32::MAX, "saturated");

    // Later breaches are still answered.
    chain.broadcast(&commitment_v);
    chain.mine(1);
    tower.wait_at_tip(&admin, &chain);
    let penalty_v = penalty_v.compute_txid();
    wait_until("V's penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty_v)
    });
}
