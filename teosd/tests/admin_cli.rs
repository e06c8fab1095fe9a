//! End to end: the real `teos-cli` binary against the real teosd (on bitcoind-sim), over mutual TLS.
//! Every command is driven and its JSON compared with state created through the public HTTP API.
//!
//! `teos-cli` must be built next to teosd (`cargo build --workspace --bins`, which `scripts/test.sh`
//! does first).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use bitcoin::consensus::encode::serialize_hex;
use common::*;
use serde_json::{Value, json};
use teos_common::appointment::{Appointment, AppointmentId, Locator, UserId};
use teos_common::protocol::GetAppointmentResponse;

/// Exit codes documented in `teos-cli --help`.
const EXIT_BAD_ARGUMENTS: i32 = 2;
const EXIT_CANNOT_CONNECT: i32 = 3;
const EXIT_REFUSED: i32 = 4;

/// The teos-cli binary built next to teosd.
fn cli_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_teosd")).with_file_name("teos-cli");
    assert!(
        path.exists(),
        "{} is missing: build it first (`cargo build --workspace --bins`, as scripts/test.sh does)",
        path.display()
    );
    path
}

/// Runs teos-cli with `--datadir datadir` and `args`.
fn run_cli(datadir: &Path, args: &[&str]) -> Output {
    Command::new(cli_binary())
        .arg("--datadir")
        .arg(datadir)
        .args(args)
        .env_remove("TEOS_RPC_BIND")
        .env_remove("TEOS_RPC_PORT")
        .env_remove("TEOS_DATA_DIR")
        .output()
        .expect("cannot run teos-cli")
}

/// Runs teos-cli, expects success and returns its JSON output.
fn cli_json(datadir: &Path, args: &[&str]) -> Value {
    let output = run_cli(datadir, args);
    assert!(
        output.status.success(),
        "teos-cli {args:?} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "teos-cli {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Runs teos-cli, expects exit code `code`, nothing on stdout and a message on stderr.
fn cli_fails(datadir: &Path, args: &[&str], code: i32) -> String {
    let output = run_cli(datadir, args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "teos-cli {args:?}: {stderr}"
    );
    assert!(output.stdout.is_empty(), "teos-cli {args:?} printed output");
    assert!(!stderr.trim().is_empty(), "teos-cli {args:?}: no message");
    stderr
}

fn watched_json(appointment: &Appointment) -> Value {
    json!({ "appointment": {
        "locator": appointment.locator.to_string(),
        "encrypted_blob": hex::encode(&appointment.encrypted_blob),
        "to_self_delay": appointment.to_self_delay,
    }})
}

fn tracker_json(commitment: &bitcoin::Transaction, penalty: &bitcoin::Transaction) -> Value {
    json!({ "tracker": {
        "dispute_txid": commitment.compute_txid().to_string(),
        "penalty_txid": penalty.compute_txid().to_string(),
        "penalty_rawtx": serialize_hex(penalty),
    }})
}

/// Sorts the `appointments` uuids of a `getuser` answer.
fn sort_uuids(user: &mut Value) {
    if let Some(uuids) = user["appointments"].as_array_mut() {
        uuids.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    }
}

fn uuid_hex(locator: &Locator, user: &UserId) -> String {
    AppointmentId::new(locator, user).to_string()
}

/// What the test sets up through HTTP: two users, a watched locator both users filed, and a breach
/// the tower responded to.
struct Scenario {
    alice: User,
    bob: User,
    shared: Appointment,
    bob_shared: Appointment,
    breached: Appointment,
    commitment: bitcoin::Transaction,
    penalty: bitcoin::Transaction,
}

fn set_up(chain: &Chain, tower: &TowerProcess) -> Scenario {
    let alice = User::new(&tower.url(), 1);
    let bob = User::new(&tower.url(), 2);
    alice.register().unwrap();
    bob.register().unwrap();

    let (shared_commitment, shared_penalty) = chain.breach();
    let shared = appointment_for(&shared_commitment, &shared_penalty);
    alice.add(&shared).unwrap();
    let mut bob_shared = shared.clone();
    bob_shared.to_self_delay = 144;
    bob.add(&bob_shared).unwrap();

    let (commitment, penalty) = chain.breach();
    let breached = appointment_for(&commitment, &penalty);
    bob.add(&breached).unwrap();
    chain.broadcast(&commitment);
    chain.mine(1);
    wait_until("the breach answered", SOON, || {
        matches!(
            bob.get(&breached.locator),
            Ok(GetAppointmentResponse::DisputeResponded(_))
        )
    });
    Scenario {
        alice,
        bob,
        shared,
        bob_shared,
        breached,
        commitment,
        penalty,
    }
}

#[test]
fn every_command_reports_the_state_created_over_http_and_stop_loses_nothing() {
    let chain = Chain::start(3);
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path();
    let mut tower = TowerProcess::start(&chain, datadir, &TowerOptions::default());
    let s = set_up(&chain, &tower);

    // gettowerinfo, once the tower has processed bitcoind's tip.
    let tip = chain.height();
    wait_until("the tower at the tip", SOON, || {
        cli_json(datadir, &["gettowerinfo"])["best_block_height"] == json!(tip)
    });
    let info = cli_json(datadir, &["gettowerinfo"]);
    assert_eq!(info["tower_id"], json!(tower.tower_id().to_string()));
    assert_eq!(info["n_registered_users"], json!(2));
    assert_eq!(info["n_watcher_appointments"], json!(2));
    assert_eq!(info["n_responder_trackers"], json!(1));
    assert_eq!(info["bitcoind_reachable"], json!(true));
    assert_eq!(
        info["addresses"],
        json!([{ "type": "ipv4", "address": "127.0.0.1", "port": tower.api_port }])
    );
    let tip_hash = chain.sim().node().best_block_hash();
    assert_eq!(info["best_block_hash"], json!(tip_hash.to_string()));
    assert_eq!(info["version"], json!(env!("CARGO_PKG_VERSION")));
    assert!(info["uptime_secs"].is_u64());

    // getallappointments: watched ones (uuid order), then the tracker.
    let mut watched = vec![
        (
            AppointmentId::new(&s.shared.locator, &s.alice.id),
            watched_json(&s.shared),
        ),
        (
            AppointmentId::new(&s.bob_shared.locator, &s.bob.id),
            watched_json(&s.bob_shared),
        ),
    ];
    watched.sort_by_key(|(uuid, _)| *uuid);
    let mut expected: Vec<Value> = watched.into_iter().map(|(_, v)| v).collect();
    expected.push(tracker_json(&s.commitment, &s.penalty));
    let all = cli_json(datadir, &["getallappointments"]);
    assert_eq!(all, json!({ "appointments": expected }));

    // getappointments <locator>: every user's appointment under it; the breached one as a tracker.
    let shared_out = cli_json(datadir, &["getappointments", &s.shared.locator.to_string()]);
    assert_eq!(shared_out["appointments"].as_array().unwrap().len(), 2);
    for appointment in [&s.shared, &s.bob_shared] {
        assert!(
            shared_out["appointments"]
                .as_array()
                .unwrap()
                .contains(&watched_json(appointment))
        );
    }
    assert_eq!(
        cli_json(
            datadir,
            &["getappointments", &s.breached.locator.to_string()]
        ),
        json!({ "appointments": [tracker_json(&s.commitment, &s.penalty)] })
    );
    assert_eq!(
        cli_json(datadir, &["getappointments", &"ab".repeat(16)]),
        json!({ "appointments": [] })
    );

    // getusers and getuser, against the subscriptions the users see over HTTP.
    let mut ids = vec![s.alice.id.to_string(), s.bob.id.to_string()];
    ids.sort();
    assert_eq!(cli_json(datadir, &["getusers"]), json!({ "user_ids": ids }));
    let bob_info = s.bob.info().unwrap();
    let mut bob_uuids = vec![
        uuid_hex(&s.bob_shared.locator, &s.bob.id),
        uuid_hex(&s.breached.locator, &s.bob.id),
    ];
    bob_uuids.sort();
    // Uuids come in storage order (paged through get_user_paged).
    let mut bob_out = cli_json(datadir, &["getuser", &s.bob.id.to_string()]);
    sort_uuids(&mut bob_out);
    assert_eq!(
        bob_out,
        json!({
            "user_id": s.bob.id.to_string(),
            "available_slots": bob_info.available_slots,
            "subscription_expiry": bob_info.subscription_expiry,
            "appointments": bob_uuids,
        })
    );
    let stranger = User::new(&tower.url(), 9);
    let stderr = cli_fails(
        datadir,
        &["getuser", &stranger.id.to_string()],
        EXIT_REFUSED,
    );
    assert!(stderr.contains("not found"), "{stderr}");

    // stop: teosd exits 0 after answering; after a restart everything is still there.
    assert_eq!(cli_json(datadir, &["stop"]), json!({ "stopping": true }));
    let status = tower.wait_for_exit(Duration::from_secs(60));
    assert!(status.success(), "teosd exited with {status}");
    cli_fails(datadir, &["gettowerinfo"], EXIT_CANNOT_CONNECT);

    let tower = TowerProcess::spawn(datadir, tower.api_port, &[]);
    assert_eq!(cli_json(datadir, &["getallappointments"]), all);
    let mut bob_again = cli_json(datadir, &["getuser", &s.bob.id.to_string()]);
    sort_uuids(&mut bob_again);
    assert_eq!(bob_again["appointments"], json!(bob_uuids));
    // A new client: the old one's pooled connection went down with the first process.
    let alice = User::new(&tower.url(), 1);
    match alice.get(&s.shared.locator).unwrap() {
        GetAppointmentResponse::BeingWatched(a) => assert_eq!(a, s.shared),
        other => panic!("expected being_watched, got {other:?}"),
    }
    drop(tower);
}

#[test]
fn malformed_ids_are_rejected_before_any_call() {
    // Nothing listens on this port: a call would exit with "cannot connect" instead.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    for args in [
        vec!["getappointments", "1234"],
        vec!["getappointments", "not hex at all, not hex at all!!"],
        vec!["getuser", "02abcdef"],
        vec!["getuser", &"07".repeat(33)],
        vec!["getuser"],
        vec!["nosuchcommand"],
    ] {
        let mut full = vec!["--rpcport", &port];
        full.extend(args.iter().copied());
        cli_fails(dir.path(), &full, EXIT_BAD_ARGUMENTS);
    }
}

#[test]
fn completions_are_printed_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let output = run_cli(dir.path(), &["completions", shell]);
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&output.stdout);
        assert!(script.contains("getallappointments"), "{shell}");
    }
}
