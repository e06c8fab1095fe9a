//! Tower lifecycle details: key persistence and replacement, ZMQ discovery, outdated users.

mod common;

use common::*;
use teos_common::protocol::GetAppointmentResponse;

fn tower_id_logged(tower: &TowerProcess) -> String {
    let logs = tower.logs();
    let line = logs
        .iter()
        .rev()
        .find(|l| l.contains("tower id: "))
        .expect("tower id logged");
    line.rsplit("tower id: ").next().unwrap().trim().to_owned()
}

#[test]
fn tower_key_is_kept_across_restarts_replaced_by_overwritekey_and_never_logged() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let first = tower_id_logged(&tower);
    let tower2 = {
        assert!(tower.stop().success());
        TowerProcess::spawn(&tower.datadir.clone(), tower.api_port, &[])
    };
    assert_eq!(tower_id_logged(&tower2), first, "same key after a restart");
    let mut tower2 = tower2;
    assert!(tower2.stop().success());
    let mut tower3 = TowerProcess::spawn(
        &tower2.datadir.clone(),
        tower2.api_port,
        &["--overwritekey"],
    );
    let replaced = tower_id_logged(&tower3);
    assert_ne!(replaced, first, "--overwritekey makes a new key");
    assert!(tower3.stop().success());

    let store = teosd::storage::Store::open(&dir.path().join("regtest/teos_db.sql3")).unwrap();
    let (count, latest) = store
        .read_blocking(|conn| -> Result<_, teosd::storage::StorageError> {
            Ok((
                teosd::storage::keys::count(conn)?,
                teosd::storage::keys::latest(conn)?,
            ))
        })
        .unwrap();
    store.close().unwrap();
    assert_eq!(count, 2, "the old key is kept");
    let secret_hex = hex::encode(latest.unwrap().secret_bytes());
    for logs in [tower.logs(), tower2.logs(), tower3.logs()] {
        assert!(
            logs.iter().all(|l| !l.contains(&secret_hex)),
            "secret key logged"
        );
    }
}

#[test]
fn zmq_endpoint_is_discovered_with_getzmqnotifications() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let sim = chain.sim();
    let api_port = free_port();
    std::fs::write(
        dir.path().join("teos.toml"),
        format!(
            "btc_network = \"regtest\"\nbtc_rpc_port = {}\nbtc_rpc_cookie = \"{}\"\napi_port = {api_port}\nrpc_port = {}\n",
            sim.rpc_port(),
            sim.cookie_path().display(),
            free_port()
        ),
    )
    .unwrap();
    let tower = TowerProcess::spawn(dir.path(), api_port, &[]);
    let endpoint = sim.zmq_endpoint().unwrap();
    let port = endpoint.rsplit(':').next().unwrap();
    assert!(
        tower.has_log(&format!(
            "hashblock notifications on tcp://localhost:{port}"
        )) || tower.has_log(&format!(
            "hashblock notifications on tcp://127.0.0.1:{port}"
        )),
        "discovered endpoint not used: {:?}",
        tower.logs()
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
    let tip = chain.height();
    wait_until("the tower past the outdating block", SOON, || {
        tower.has_log(&format!("block connected height={tip} "))
    });
    assert!(
        !chain.in_mempool(&penalty.compute_txid()),
        "outdated user's breach answered"
    );
    assert_eq!(error_code(user.info()), (401, 7), "user deleted");
}
