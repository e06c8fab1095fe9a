//! End to end: `teos-cli` lists many items (more than a page of 1000) from the real teosd, written
//! item by item as pages arrive (JSON, byte-compatible with the one-document form, and NDJSON), and
//! the listing matches what is stored.
//!
//! The database is seeded directly through teosd's storage API before teosd starts (thousands of
//! appointments through HTTP would take minutes), then read back only through teos-cli.
//! `teos-cli` must be built next to teosd (`cargo build --workspace --bins`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use bitcoin::consensus::encode::serialize_hex;
use common::*;
use serde_json::{Value, json};
use teos_common::appointment::{AppointmentId, Locator, UserId};
use teosd::storage::records::{AppointmentRecord, TrackerRecord, TrackerStatus, UserRecord};
use teosd::storage::{StorageError, Store};

/// The teos-cli binary built next to teosd.
fn cli_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_teosd")).with_file_name("teos-cli");
    assert!(
        path.exists(),
        "{} is missing: build it first (`cargo build --workspace --bins`)",
        path.display()
    );
    path
}

fn run_cli(datadir: &Path, args: &[&str]) -> Output {
    let output = Command::new(cli_binary())
        .arg("--datadir")
        .arg(datadir)
        .args(args)
        .env_remove("TEOS_RPC_BIND")
        .env_remove("TEOS_RPC_PORT")
        .env_remove("TEOS_DATA_DIR")
        .output()
        .expect("cannot run teos-cli");
    assert!(
        output.status.success(),
        "teos-cli {args:?} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The JSON document teos-cli printed.
fn cli_json(datadir: &Path, args: &[&str]) -> Value {
    serde_json::from_slice(&run_cli(datadir, args).stdout).expect("teos-cli printed no JSON")
}

/// The NDJSON lines teos-cli printed, each parsed.
fn cli_ndjson(datadir: &Path, args: &[&str]) -> Vec<Value> {
    let mut full = vec!["--ndjson"];
    full.extend_from_slice(args);
    let stdout = String::from_utf8(run_cli(datadir, &full).stdout).unwrap();
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("an NDJSON line"))
        .collect()
}

fn user_id(n: u32) -> UserId {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    bytes[31] = 1;
    let sk = secp256k1::SecretKey::from_slice(&bytes).unwrap();
    UserId(sk.public_key(secp256k1::SECP256K1))
}

fn tx(lock: u32) -> bitcoin::Transaction {
    bitcoin::Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::from_consensus(lock),
        input: vec![bitcoin::TxIn::default()],
        output: vec![],
    }
}

/// What was seeded, as teos-cli should print it.
struct Seeded {
    /// Every appointment entry in listing order: watched (uuid order), then trackers (uuid order).
    entries: Vec<Value>,
    /// Every user id, sorted.
    user_ids: Vec<String>,
    /// The first user's appointment uuids, sorted.
    first_user_uuids: Vec<String>,
}

/// Seeds `n_users` users, the first `with_appointments` of them holding `per_user` appointments
/// each (`blob_len`-byte blobs), every `tracker_every`-th appointment answered by a tracker.
fn seed(
    db: &Path,
    n_users: u32,
    with_appointments: u32,
    per_user: u32,
    blob_len: usize,
    tracker_every: u32,
) -> Seeded {
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let store = Store::open(db).unwrap();
    let mut watched = Vec::new();
    let mut tracked = Vec::new();
    let mut first_user_uuids = Vec::new();
    let mut user_ids = Vec::new();
    let mut records = Vec::new();
    let mut tracker_records = Vec::new();
    for u in 0..n_users {
        let user = user_id(u);
        user_ids.push(user.to_string());
        if u >= with_appointments {
            continue;
        }
        for a in 0..per_user {
            let mut bytes = [0u8; 16];
            bytes[..4].copy_from_slice(&u.to_be_bytes());
            bytes[4..8].copy_from_slice(&a.to_be_bytes());
            let locator = Locator::from_slice(&bytes).unwrap();
            let uuid = AppointmentId::new(&locator, &user);
            if u == 0 {
                first_user_uuids.push(uuid.to_string());
            }
            let blob = vec![(a % 251) as u8; blob_len];
            let record = AppointmentRecord {
                uuid,
                locator,
                user_id: user,
                encrypted_blob: blob.clone(),
                to_self_delay: 42,
                user_signature: "sig".into(),
                start_block: 1,
                slots: 1,
            };
            if tracker_every > 0 && a % tracker_every == 0 {
                let (dispute, penalty) = (tx(a), tx(1_000_000 + a + u));
                tracked.push((
                    uuid,
                    json!({ "tracker": {
                        "dispute_txid": dispute.compute_txid().to_string(),
                        "penalty_txid": penalty.compute_txid().to_string(),
                        "penalty_rawtx": serialize_hex(&penalty),
                    }}),
                ));
                tracker_records.push(TrackerRecord {
                    uuid,
                    dispute_txid: dispute.compute_txid(),
                    dispute_tx: dispute,
                    penalty_txid: penalty.compute_txid(),
                    penalty_tx: penalty,
                    dispute_height: Some(1),
                    status: TrackerStatus::InMempool,
                    status_height: 1,
                    to_self_delay: 42,
                });
            } else {
                watched.push((
                    uuid,
                    json!({ "appointment": {
                        "locator": locator.to_string(),
                        "encrypted_blob": hex::encode(&blob),
                        "to_self_delay": 42,
                    }}),
                ));
            }
            records.push(record);
        }
    }
    let ids: Vec<UserId> = (0..n_users).map(user_id).collect();
    store
        .write_blocking(move |conn| -> Result<(), StorageError> {
            let record = UserRecord {
                available_slots: 1_000_000,
                subscription_start: 1,
                subscription_expiry: 1_000_000,
            };
            for id in &ids {
                conn.upsert_user(id, &record)?;
            }
            for record in &records {
                conn.upsert_appointment(record)?;
            }
            for record in &tracker_records {
                conn.insert_tracker(record)?;
            }
            Ok(())
        })
        .unwrap();
    store.close().unwrap();
    watched.sort_by_key(|(uuid, _)| *uuid);
    tracked.sort_by_key(|(uuid, _)| *uuid);
    user_ids.sort();
    first_user_uuids.sort();
    Seeded {
        entries: watched.into_iter().chain(tracked).map(|(_, v)| v).collect(),
        user_ids,
        first_user_uuids,
    }
}

/// A tower on a database seeded with `seed`'s arguments.
fn tower_with(
    chain: &Chain,
    datadir: &Path,
    args: (u32, u32, u32, usize, u32),
) -> (TowerProcess, Seeded) {
    let api_port = TowerProcess::configure(chain, datadir, &TowerOptions::default());
    let db = datadir.join("regtest").join("teos_db.sql3");
    let (n_users, with, per_user, blob_len, every) = args;
    let seeded = seed(&db, n_users, with, per_user, blob_len, every);
    (TowerProcess::spawn(datadir, api_port, &[]), seeded)
}

fn sorted_strings(values: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = values
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect();
    out.sort();
    out
}

#[test]
fn listings_of_several_pages_match_the_database_in_json_and_ndjson() {
    let chain = Chain::start(0);
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path();
    // 1,500 users (two pages of ids); the first two hold 1,800 appointments each (four pages of
    // entries), every 7th with a tracker (the watched → trackers turn falls inside a page).
    let (_tower, seeded) = tower_with(&chain, datadir, (1_500, 2, 1_800, 120, 7));
    assert_eq!(seeded.entries.len(), 3_600);

    let all = cli_json(datadir, &["getallappointments"]);
    assert_eq!(all, json!({ "appointments": seeded.entries }));
    assert_eq!(cli_ndjson(datadir, &["getallappointments"]), seeded.entries);

    let users = cli_json(datadir, &["getusers"]);
    assert_eq!(users, json!({ "user_ids": seeded.user_ids }));
    let ndjson_users = cli_ndjson(datadir, &["getusers"]);
    assert_eq!(ndjson_users, users["user_ids"].as_array().unwrap().clone());

    // getuser: uuids in storage order, each exactly once, across pages.
    let first = &seeded
        .user_ids
        .iter()
        .find(|id| **id == user_id(0).to_string());
    let first = first.expect("user 0").as_str();
    let user = cli_json(datadir, &["getuser", first]);
    assert_eq!(user["user_id"], first);
    assert_eq!(user["available_slots"], 1_000_000);
    assert_eq!(user["subscription_expiry"], 1_000_000);
    let uuids = user["appointments"].as_array().unwrap();
    assert_eq!(sorted_strings(uuids), seeded.first_user_uuids);
    let ndjson_uuids = cli_ndjson(datadir, &["getuser", first]);
    assert_eq!(&ndjson_uuids, uuids);

    // A reader that stops early (`| head -1`): teos-cli stops quietly, with success. The listing
    // (over 1 MB) cannot fit in the pipe, so teos-cli is still writing when the pipe closes.
    let mut child = Command::new(cli_binary())
        .arg("--datadir")
        .arg(datadir)
        .args(["--ndjson", "getallappointments"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let stdout = child.stdout.take().unwrap();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut first).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&first).unwrap(),
        seeded.entries[0]
    );
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "{}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    // A user without appointments: an empty list, in both forms.
    let last = user_id(1_499).to_string();
    assert_eq!(
        cli_json(datadir, &["getuser", &last])["appointments"],
        json!([])
    );
    assert!(cli_ndjson(datadir, &["getuser", &last]).is_empty());
}

/// Peak memory of `teos-cli getallappointments` over many appointments (not a pass/fail test: run by
/// hand, figures in the report / README). `TEOS_LISTING_N` appointments (default 200,000) of 256-byte
/// blobs for one user; prints teos-cli's maximum resident set size from `/usr/bin/time`.
///
/// `cargo test -p teosd --test admin_cli_listing -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, run by hand"]
fn peak_memory_of_listing_many_appointments() {
    let n: u32 = std::env::var("TEOS_LISTING_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let chain = Chain::start(0);
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path();
    let (_tower, seeded) = tower_with(&chain, datadir, (1, 1, n, 256, 0));
    drop(seeded);
    for args in [
        &["getallappointments"][..],
        &["--ndjson", "getallappointments"][..],
    ] {
        let output = Command::new("/usr/bin/time")
            .args(["-f", "%M %e"])
            .arg(cli_binary())
            .arg("--datadir")
            .arg(datadir)
            .args(args)
            .stdout(Stdio::null())
            .output()
            .expect("/usr/bin/time (apt-get install time)");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        println!("teos-cli {args:?} over {n} appointments: max RSS (KiB) and seconds: {last}");
    }
}
