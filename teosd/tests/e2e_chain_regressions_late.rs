//! Regressions (review of 3faf63f, sections 7-10, 12 and 14): late appointments (their dispute is
//! already in a recent block) are decided in the request, survive bitcoind errors and long
//! catch-ups, are not deleted by a block that was scanned before they were updated; startup does
//! not depend on bitcoind still serving recent blocks; `locator_cache_size` is bounded.
//!
//! Real teosd + bitcoind-sim over loopback; state read through the protocol client, the admin API
//! and the simulator's node. bitcoind's calls are held or failed with the simulator's per-method
//! faults, which is what makes the races below deterministic.

mod common;

use std::time::Duration;

use common::*;
use teos_common::appointment::Appointment;
use teos_common::cryptography;

/// The calls a tower can make to look at bitcoind's chain; stalling them all holds it before it
/// connects any block.
const CHAIN_METHODS: [&str; 6] = [
    "getbestblockhash",
    "getblockchaininfo",
    "getblockhash",
    "getblockheader",
    "getblock",
    "getchaintips",
];

/// An appointment for `commitment` whose blob does not decrypt with its txid.
fn undecryptable(commitment: &bitcoin::Transaction, penalty: &bitcoin::Transaction) -> Appointment {
    let mut appointment = appointment_for(commitment, penalty);
    let wrong_key = penalty.compute_txid();
    appointment.encrypted_blob = cryptography::encrypt(penalty, &wrong_key);
    appointment
}

#[test]
fn late_appointment_that_does_not_decrypt_gets_a_receipt_but_is_not_stored() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let admin = AdminView::connect(&tower);
    let user = User::new(&tower.url(), 1);
    user.register().unwrap();
    let (commitment, penalty) = chain.breach();
    chain.broadcast(&commitment);
    chain.mine(1);
    tower.wait_at_tip(&admin, &chain);

    // Nothing the block processor could do in the background: it would be held here.
    let faults = chain.sim().faults();
    faults.stall_method("getrawtransaction", Duration::from_secs(600));
    let appointment = undecryptable(&commitment, &penalty);
    user.add(&appointment)
        .expect("a receipt, as rust-teos gives");
    assert_eq!(
        appointment_state(&user, &appointment.locator),
        "not_found",
        "decided in the request (PROTOCOL.md, Triggered appointments), never stored"
    );
    faults.clear();
    assert_eq!(admin.info().unwrap().appointments, 0);
}

#[test]
fn late_appointment_is_answered_once_getrawtransaction_succeeds_again() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let admin = AdminView::connect(&tower);
    let user = User::new(&tower.url(), 2);
    user.register().unwrap();
    let (commitment, penalty) = chain.breach();
    chain.broadcast(&commitment);
    chain.mine(1);
    tower.wait_at_tip(&admin, &chain);

    // Core's answer for a transaction it cannot find in the given block.
    let faults = chain.sim().faults();
    let calls = faults.calls("getrawtransaction");
    faults.fail_method(
        "getrawtransaction",
        -5,
        "No such transaction found in the provided block. Use gettransaction for wallet transactions.",
        Some(3),
    );
    let appointment = appointment_for(&commitment, &penalty);
    user.add(&appointment).unwrap();
    // Each time the tower meets an answer, a new block, in case it retries pending breaches only
    // with blocks (at most 3 blocks: the dispute stays recent).
    let penalty = penalty.compute_txid();
    let deadline = std::time::Instant::now() + SOON;
    let mut seen = calls;
    while !chain.in_mempool(&penalty) {
        tower.assert_running("retrying the late appointment");
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for the penalty in the mempool ({} getrawtransaction calls; \
             appointment {})",
            faults.calls("getrawtransaction") - calls,
            appointment_state(&user, &appointment.locator)
        );
        let now = faults.calls("getrawtransaction");
        if now > seen && now <= calls + 3 {
            seen = now;
            chain.mine(1);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The penalty is sent before the tracker is committed: wait for the commit.
    wait_for_state(&user, &appointment.locator, "dispute_responded");
}

#[test]
fn late_breach_is_answered_even_when_a_catch_up_of_300_blocks_runs_first() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let admin = AdminView::connect(&tower);
    let user = User::new(&tower.url(), 3);
    user.register().unwrap();
    let (commitment, penalty) = chain.breach();
    chain.broadcast(&commitment);
    chain.mine(1);
    tower.wait_at_tip(&admin, &chain);

    // The tower is held at its next look at bitcoind's chain while 300 blocks arrive; the late
    // appointment comes in meanwhile, dated by the block the tower last processed.
    let faults = chain.sim().faults();
    for method in CHAIN_METHODS {
        faults.stall_method(method, Duration::from_secs(600));
    }
    chain.mine(300);
    wait_until("the tower waiting on bitcoind", SOON, || {
        CHAIN_METHODS.iter().any(|m| faults.held_calls(m) > 0)
    });
    let appointment = appointment_for(&commitment, &penalty);
    user.add(&appointment).unwrap();
    faults.clear();
    tower.wait_at_tip(&admin, &chain);
    let penalty = penalty.compute_txid();
    wait_until("the penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty)
    });
}

#[test]
fn appointment_corrected_while_its_block_is_being_answered_is_not_deleted_by_that_block() {
    let chain = Chain::start(3);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let admin = AdminView::connect(&tower);
    let alice = User::new(&tower.url(), 4);
    let bob = User::new(&tower.url(), 5);
    alice.register().unwrap();
    bob.register().unwrap();
    // Alice's first blob is wrong; Bob's is right. Both disputes go in the same block.
    let (commitment_a, penalty_a) = chain.breach();
    let (commitment_b, penalty_b) = chain.breach();
    let wrong = undecryptable(&commitment_a, &penalty_a);
    alice.add(&wrong).unwrap();
    bob.add(&appointment_for(&commitment_b, &penalty_b))
        .unwrap();

    // Widen the scan -> commit window: Bob's penalty send is held.
    let faults = chain.sim().faults();
    faults.stall_method("sendrawtransaction", Duration::from_secs(600));
    chain.mine_with(&[commitment_a.clone(), commitment_b.clone()], 84);
    wait_until("the block scanned, Bob's penalty being sent", SOON, || {
        faults.held_calls("sendrawtransaction") == 1
    });
    let corrected = appointment_for(&commitment_a, &penalty_a);
    assert_eq!(corrected.locator, wrong.locator);
    alice
        .add(&corrected)
        .expect("a receipt for the corrected appointment");
    faults.clear();
    tower.wait_at_tip(&admin, &chain);
    wait_until("Bob's penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty_b.compute_txid())
    });
    // The corrected appointment survives the block's drop of the old blob: answered as a late
    // breach (or at least still there).
    let state = appointment_state(&alice, &corrected.locator);
    assert_ne!(
        state, "not_found",
        "the acknowledged correction was deleted"
    );
}

#[test]
fn startup_succeeds_when_bitcoind_cannot_serve_a_block_of_the_locator_cache() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let options = TowerOptions {
        extra: vec!["locator_cache_size = 1".into()],
    };
    let mut tower = TowerProcess::start(&chain, dir.path(), &options);
    let admin = AdminView::connect(&tower);
    chain.mine(5);
    tower.wait_at_tip(&admin, &chain);
    assert!(tower.stop().success());

    // Only the last block's txids were kept; a larger cache needs the 5 before it from bitcoind,
    // which cannot serve them (Core's answer for a pruned block).
    let config = dir.path().join("teos.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace("locator_cache_size = 1", "locator_cache_size = 6");
    std::fs::write(&config, text).unwrap();
    let faults = chain.sim().faults();
    faults.fail_method("getblock", -1, "Block not available (pruned data)", None);
    let mut tower = TowerProcess::spawn_serving(dir.path(), tower.api_port);
    let admin = AdminView::connect(&tower);
    faults.clear();
    chain.mine(1);
    tower.wait_at_tip(&admin, &chain);
}

#[test]
fn locator_cache_size_above_the_kept_blocks_is_refused_at_startup() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let options = TowerOptions {
        extra: vec!["locator_cache_size = 289".into()],
    };
    let api_port = TowerProcess::configure(&chain, dir.path(), &options);
    let mut tower = TowerProcess::spawn_with(dir.path(), api_port, &[], &[], "");
    let status = tower.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(2), "refused as a configuration error");
    assert!(
        tower
            .logs()
            .iter()
            .any(|l| l.contains("locator_cache_size")),
        "the message names the key: {:?}",
        tower.logs()
    );
}
