//! `teosd migrate-db`: a tower's embedded database copied into PostgreSQL and back, checked, with
//! every acknowledged appointment and tracker, the same tower key and chain state (issue 12 item 5).
//!
//! PostgreSQL is a throwaway cluster (teos-testkit's `PgTarget`); without PostgreSQL installed the
//! test prints SKIPPED, unless TEOS_TEST_REQUIRE_POSTGRES is set (CI), when it fails.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use teos_common::appointment::{Appointment, Locator};
use teos_common::protocol::GetAppointmentResponse;
use teos_testkit::postgres::{PgTarget, unique_database_name};

/// A watched appointment of its own locator (not a real penalty: the tower cannot tell).
fn watched(n: u8) -> Appointment {
    Appointment {
        locator: Locator::from_slice(&[n; 16]).unwrap(),
        encrypted_blob: vec![n; 100],
        to_self_delay: 42,
    }
}

/// Runs `teosd migrate-db <direction> <url> --datadir <datadir>`.
fn migrate(direction: &str, url: &str, datadir: &Path) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_teosd"))
        .args(["migrate-db", direction, url, "--datadir"])
        .arg(datadir)
        .env_remove("TEOS_DATA_DIR")
        .env_remove("TEOS_DATABASE_URL")
        .output()
        .unwrap();
    eprintln!(
        "[migrate-db {direction}] {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A new, empty database on the server of `target`.
fn fresh_database(target: &PgTarget) -> String {
    let base = target.url();
    let name = unique_database_name();
    let mut admin = postgres::Client::connect(&base, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

#[test]
fn a_tower_moves_to_postgresql_and_back_with_everything_it_acknowledged() {
    let test = "a_tower_moves_to_postgresql_and_back_with_everything_it_acknowledged";
    let Some(pg) = PgTarget::from_env(test).expect("PostgreSQL for the test") else {
        return;
    };
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("tower");
    let mut tower = TowerProcess::start(&chain, &datadir, &TowerOptions::default());
    let tower_id = tower.tower_id();

    // Two users with watched appointments, and a breach answered (a tracker).
    let alice = User::new(&tower.url(), 11).verifying(tower_id);
    let bob = User::new(&tower.url(), 12).verifying(tower_id);
    alice.register().unwrap();
    bob.register().unwrap();
    for n in 1..=20 {
        alice.add(&watched(n)).unwrap();
        bob.add(&watched(100 + n)).unwrap();
    }
    let (commitment, penalty) = chain.breach();
    let breach = appointment_for(&commitment, &penalty);
    alice.add(&breach).unwrap();
    chain.broadcast(&commitment);
    chain.mine(1);
    wait_for_state(&alice, &breach.locator, "dispute_responded");
    let slots_before = alice.info().unwrap().available_slots;
    tower.wait_for_tip(&chain);
    let tip = tower.tip();
    assert!(tower.stop().success());

    // Into PostgreSQL: copied and checked; a second copy into the same database is refused.
    let url = fresh_database(&pg);
    let output = migrate("--to", &url, &datadir);
    assert!(
        output.status.success(),
        "migrate-db --to: {:?}",
        output.status
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("2 users, 41 appointments, 1 trackers"),
        "{said}"
    );
    assert!(
        !said.contains("secret"),
        "the password is never printed: {said}"
    );
    let again = migrate("--to", &url, &datadir);
    assert_eq!(
        again.status.code(),
        Some(2),
        "a database holding a tower is refused"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // And back, into a new data dir: the tower there is the same tower.
    let back = dir.path().join("back");
    let api_port = TowerProcess::configure(&chain, &back, &TowerOptions::default());
    let output = migrate("--from", &url, &back);
    assert!(
        output.status.success(),
        "migrate-db --from: {:?}",
        output.status
    );
    let tower = TowerProcess::spawn(&back, api_port, &[]);
    assert_eq!(tower.tower_id(), tower_id, "the same tower key");
    assert_eq!(tower.tip(), tip, "the same chain state");
    let alice = User::new(&tower.url(), 11).verifying(tower_id);
    let bob = User::new(&tower.url(), 12).verifying(tower_id);
    for n in 1..=20 {
        for (user, a) in [(&alice, watched(n)), (&bob, watched(100 + n))] {
            match user.get(&a.locator) {
                Ok(GetAppointmentResponse::BeingWatched(stored)) => assert_eq!(stored, a),
                other => panic!("appointment {n} after the round trip: {other:?}"),
            }
        }
    }
    match alice.get(&breach.locator) {
        Ok(GetAppointmentResponse::DisputeResponded(t)) => {
            assert_eq!(t.penalty_txid, penalty.compute_txid())
        }
        other => panic!("the tracker after the round trip: {other:?}"),
    }
    assert_eq!(alice.info().unwrap().available_slots, slots_before);
    // A receipt signed by the moved tower verifies against the same tower id.
    alice.add(&watched(50)).unwrap();
}

#[test]
fn migrate_db_refuses_bad_operands_and_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    // Subcommands read teosd's configuration as the daemon does: bitcoind credentials included.
    std::fs::write(
        dir.path().join("teos.toml"),
        "btc_network = \"regtest\"\nbtc_rpc_user = \"u\"\nbtc_rpc_password = \"p\"\n",
    )
    .unwrap();
    let bad_flag = migrate("--into", "postgresql://teos@127.0.0.1:1/teos", dir.path());
    assert_eq!(bad_flag.status.code(), Some(2));
    let bad_url = migrate("--to", "mysql://x", dir.path());
    assert_eq!(bad_url.status.code(), Some(2));
    let no_db = migrate("--to", "postgresql://teos@127.0.0.1:1/teos", dir.path());
    assert_eq!(no_db.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_db.stderr).contains("no database at"));
}
