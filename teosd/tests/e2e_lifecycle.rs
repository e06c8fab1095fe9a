//! Tower lifecycle details: key persistence and replacement, ZMQ discovery, outdated users.

mod common;

use std::time::Duration;

use common::*;
use teos_common::protocol::GetAppointmentResponse;

#[test]
fn tower_key_is_kept_across_restarts_replaced_by_overwritekey_and_never_logged() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let first = tower.tower_id();
    let tower2 = {
        assert!(tower.stop().success());
        TowerProcess::spawn(&tower.datadir.clone(), tower.api_port, &[])
    };
    assert_eq!(tower2.tower_id(), first, "same key after a restart");
    let mut tower2 = tower2;
    assert!(tower2.stop().success());
    let mut tower3 = TowerProcess::spawn(
        &tower2.datadir.clone(),
        tower2.api_port,
        &["--overwritekey"],
    );
    let replaced = tower3.tower_id();
    assert_ne!(replaced, first, "--overwritekey makes a new key");
    assert!(tower3.stop().success());

    let store = teosd::storage::Store::open(&dir.path().join("regtest/teos_db.sql3")).unwrap();
    let (count, latest) = store
        .read_blocking(|conn| -> Result<_, teosd::storage::StorageError> {
            Ok((conn.count_tower_keys()?, conn.latest_tower_key()?))
        })
        .unwrap();
    store.close().unwrap();
    assert_eq!(count, 2, "the old key is kept");
    let secret_hex = hex::encode(latest.unwrap().secret_bytes());
    for lines in [tower.lines(), tower2.lines(), tower3.lines()] {
        assert!(
            lines.iter().all(|l| !l.raw.contains(&secret_hex)),
            "secret key logged"
        );
    }
}

#[test]
fn zmq_endpoint_is_discovered_with_getzmqnotifications() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let sim = chain.sim();
    // No btc_zmq_hashblock, and polling once an hour: within the test, only notifications from the
    // endpoint teosd discovers can tell it about a new block.
    std::fs::write(
        dir.path().join("teos.toml"),
        format!(
            "btc_network = \"regtest\"\nbtc_rpc_port = {}\nbtc_rpc_cookie = \"{}\"\napi_port = {}\nrpc_port = {}\npolling_delta = 3600\n",
            sim.rpc_port(),
            sim.cookie_path().display(),
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    let tower = TowerProcess::spawn(dir.path(), 0, &[]);
    // A notification sent before the subscription reached the publisher is lost (ZMQ's slow
    // joiner), so a block is mined again each second until the tower follows.
    let mut mined = std::time::Instant::now();
    chain.mine(1);
    wait_until(
        "the tower following a block it was notified of",
        SOON,
        || {
            let followed = tower.tip() == chain.tip();
            if !followed && mined.elapsed() > Duration::from_secs(1) {
                chain.mine(1);
                mined = std::time::Instant::now();
            }
            followed
        },
    );
}

#[test]
fn breach_in_the_block_that_outdates_its_user_is_not_answered_and_the_tower_keeps_going() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let options = TowerOptions {
        extra: vec![
            "subscription_duration = 2".into(),
            "expiry_delta = 1".into(),
        ],
    };
    let tower = TowerProcess::start(&chain, dir.path(), &options);
    let user = User::new(&tower.url(), 21);
    let expiry = user.register().unwrap().subscription_expiry;
    let (commitment, penalty) = chain.breach();
    let appointment = appointment_for(&commitment, &penalty);
    user.add(&appointment).unwrap();
    assert!(matches!(
        user.get(&appointment.locator).unwrap(),
        GetAppointmentResponse::BeingWatched(_)
    ));

    // Mine up to the block before the user is outdated (expiry + expiry_delta), then the breach in it.
    let outdated_at = expiry + 1;
    chain.mine(outdated_at - 1 - chain.height());
    chain.broadcast(&commitment);
    chain.mine(1);
    assert_eq!(chain.height(), outdated_at);
    chain.mine(1);
    tower.wait_for_tip(&chain);
    assert!(
        !chain.in_mempool(&penalty.compute_txid()),
        "outdated user's breach answered"
    );
    assert_eq!(error_code(user.info()), (401, 7), "user deleted");
}
