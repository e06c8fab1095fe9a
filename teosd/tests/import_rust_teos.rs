//! `teosd import-rust-teos`: a real rust-teos data dir (`tests/fixtures/rust-teos/`, written by rust-teos
//! 0.2 against Bitcoin Core regtest; its README and expected.json say what is inside) imported with the
//! real binary, then served by teosd against bitcoind-sim and checked as its users see it over HTTP.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bitcoin::hashes::{Hash, HashEngine, sha256};
use common::*;
use secp256k1::SecretKey;
use serde_json::Value;
use teos_common::appointment::{AppointmentId, Locator};
use teos_common::protocol::GetAppointmentResponse;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rust-teos")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Copies the fixture's data dir to `<dir>/rust-teos` (files keep their read-only mode).
fn copy_fixture(dir: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    let source = dir.join("rust-teos");
    copy(&fixture_dir().join("datadir"), &source);
    source
}

/// A digest of everything under `dir`: each entry's relative path, kind, size, mode, mtime and
/// content. Any file added (a `-journal`, `-wal` or `-shm`), removed or touched changes it.
fn tree_digest(dir: &Path) -> sha256::Hash {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let mut record = format!(
                "{:?} {} {:?}",
                meta.file_type(),
                meta.len(),
                meta.modified().unwrap()
            );
            #[cfg(unix)]
            record.push_str(&format!(
                " {:o}",
                std::os::unix::fs::PermissionsExt::mode(&meta.permissions())
            ));
            let mut bytes = record.into_bytes();
            if meta.is_dir() {
                walk(&path, root, out);
            } else {
                bytes.extend(std::fs::read(&path).unwrap());
            }
            out.insert(rel, bytes);
        }
    }
    let mut entries = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut entries);
    }
    let mut engine = sha256::Hash::engine();
    for (path, bytes) in entries {
        engine.input(path.as_bytes());
        engine.input(&bytes);
    }
    sha256::Hash::from_engine(engine)
}

/// Runs `teosd import-rust-teos <source> --datadir <target> <extra...>`.
fn import(source: &Path, target: &Path, extra: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_teosd"))
        .arg("import-rust-teos")
        .arg(source)
        .arg("--datadir")
        .arg(target)
        .args(extra)
        .env_remove("TEOS_DATA_DIR")
        .output()
        .unwrap();
    eprintln!(
        "[import] {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn summary(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "import failed: {:?}",
        output.status
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// bitcoind-sim's RPC address and its cookie's credentials as teosd flags (a rust-teos teos.toml
/// names a user and password, which the cookie's pair replaces).
fn bitcoind_flags(chain: &Chain) -> Vec<String> {
    let cookie = std::fs::read_to_string(chain.sim().cookie_path()).unwrap();
    let (user, password) = cookie.trim().split_once(':').unwrap();
    vec![
        "--btcrpcconnect".into(),
        "127.0.0.1".into(),
        "--btcrpcport".into(),
        chain.sim().rpc_port().to_string(),
        "--btcrpcuser".into(),
        user.into(),
        "--btcrpcpassword".into(),
        password.into(),
    ]
}

fn user(url: &str, json: &Value, tower_id: teos_common::appointment::UserId) -> User {
    let sk: SecretKey = json["secret_key_hex"].as_str().unwrap().parse().unwrap();
    let user = User::with_key(url, sk).verifying(tower_id);
    assert_eq!(user.id.to_string(), json["user_id"].as_str().unwrap());
    user
}

fn sorted_locators(mut info: Value) -> Value {
    if let Some(locators) = info["locators"].as_array_mut() {
        locators.sort_by_key(|l| l.as_str().unwrap_or_default().to_owned());
    }
    info
}

/// What `user` gets from `get_appointment` for `locator`, as JSON.
fn get_appointment(user: &User, locator: &str) -> Value {
    let locator: Locator = locator.parse().unwrap();
    serde_json::to_value(user.get(&locator).unwrap()).unwrap()
}

#[test]
fn fixture_import_keeps_the_tower_id_every_user_appointment_and_tracker_and_never_touches_the_source()
 {
    let expected = expected();
    let chain = Chain::start(1); // height 101: below rust-teos's last block (123)
    let dir = tempfile::tempdir().unwrap();
    let source = copy_fixture(dir.path());
    let target = dir.path().join("teosd");
    let metrics_port = free_port();
    let options = TowerOptions {
        extra: vec![format!("metrics_bind = \"127.0.0.1:{metrics_port}\"")],
    };
    let api_port = TowerProcess::configure(&chain, &target, &options);
    let before = tree_digest(&source);

    let summary = summary(&import(&source, &target, &[]));
    assert_eq!(
        tree_digest(&source),
        before,
        "the rust-teos dir was modified"
    );
    assert_eq!(summary["tower_id"], expected["tower_id"]);
    assert_eq!(
        (
            summary["users"].as_u64(),
            summary["appointments"].as_u64(),
            summary["trackers"].as_u64()
        ),
        (Some(3), Some(6), Some(1))
    );
    // bitcoind-sim never saw rust-teos's blocks: the tower resumes below the highest height the data
    // records (the tracker's, 122).
    assert_eq!(summary["resume_block"]["known_to_bitcoind"], false);
    assert_eq!(summary["resume_block"]["height"], 122);
    assert_eq!(
        summary["resume_block"]["hash"],
        expected["best_block"]["hash"]
    );
    for name in [
        "ca.pem",
        "ca-key.pem",
        "server.pem",
        "server-key.pem",
        "client.pem",
        "client-key.pem",
    ] {
        assert_eq!(
            std::fs::read(target.join(name)).unwrap(),
            std::fs::read(source.join(name)).unwrap(),
            "{name} copied"
        );
    }

    // teosd serves the imported tower: same id, and (the admin API answering with rust-teos's CA and
    // client certificate) the same admin credentials.
    let mut tower = TowerProcess::spawn(&target, api_port, &[]);
    let tower_id = tower.tower_id();
    assert_eq!(tower_id.to_string(), expected["tower_id"].as_str().unwrap());
    let admin = AdminView::connect(&tower);
    let info = admin
        .info()
        .expect("admin API with rust-teos's certificates");
    assert_eq!((info.users, info.appointments, info.trackers), (3, 5, 1));

    let url = tower.url();
    let users: Vec<User> = expected["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| user(&url, u, tower_id))
        .collect();
    for (user, json) in users.iter().zip(expected["users"].as_array().unwrap()) {
        let info = serde_json::to_value(user.info().unwrap()).unwrap();
        assert_eq!(
            sorted_locators(info),
            sorted_locators(json["subscription_info"].clone())
        );
    }
    let tracker = &expected["trackers"][0];
    for a in expected["appointments"].as_array().unwrap() {
        let owner = users
            .iter()
            .find(|u| u.id.to_string() == a["user_id"])
            .unwrap();
        let got = get_appointment(owner, a["locator"].as_str().unwrap());
        if a["locator"] == tracker["locator"] {
            assert_eq!(
                got, tracker["get_appointment"],
                "tracker as its user sees it"
            );
        } else {
            assert_eq!(got["status"], "being_watched");
            assert_eq!(got["appointment"]["locator"], a["locator"]);
            assert_eq!(got["appointment"]["encrypted_blob"], a["encrypted_blob"]);
            assert_eq!(got["appointment"]["to_self_delay"], a["to_self_delay"]);
        }
    }

    // rust-teos's tracker was confirmed (its penalty mined at 122): so it is in teosd.
    wait_until("the trackers gauge", SOON, || {
        metric(metrics_port, "teosd_trackers{status=\"confirmed\"}") == Some(1.0)
    });

    // A new appointment's receipt is signed by the same tower id (the client checks it).
    let (commitment, penalty) = chain.breach();
    let receipt = users[0]
        .add(&appointment_for(&commitment, &penalty))
        .unwrap();
    assert_eq!(receipt.start_block, 122, "the tower's tip is rust-teos's");
    assert_eq!(receipt.available_slots, 197);

    // The chain moved on without rust-teos's blocks: the tower follows bitcoind from below the
    // imported tip, and the tracker whose dispute is not on this chain is watched again.
    chain.mine(30);
    tower.wait_at_tip(&admin, &chain);
    let got = get_appointment(&users[1], tracker["locator"].as_str().unwrap());
    assert_eq!(got["status"], "being_watched", "{got}");
    assert_eq!(users[0].info().unwrap().available_slots, 197);
    assert!(tower.stop().success());
}

/// Inserts into a rust-teos database, as rust-teos would have, an appointment of `user_sk` for the
/// breach `commitment`/`penalty`, accepted at `height`; sets its last processed block to `last`.
fn rust_teos_accepted(
    db: &Path,
    user_sk: &SecretKey,
    commitment: &bitcoin::Transaction,
    penalty: &bitcoin::Transaction,
    height: u32,
    last: bitcoin::BlockHash,
) {
    let mut perms = std::fs::metadata(db).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)] // a test's own copy of the fixture
    perms.set_readonly(false);
    std::fs::set_permissions(db, perms).unwrap();
    let appointment = appointment_for(commitment, penalty);
    let user_id = teos_common::appointment::UserId(user_sk.public_key(secp256k1::SECP256K1));
    let uuid = AppointmentId::new(&appointment.locator, &user_id);
    let signature = teos_common::cryptography::sign(&appointment.to_signed_bytes(), user_sk);
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute(
        "INSERT INTO appointments (UUID, locator, encrypted_blob, to_self_delay, user_signature, \
         start_block, user_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        rusqlite::params![
            uuid.as_bytes().as_slice(),
            appointment.locator.as_bytes().as_slice(),
            appointment.encrypted_blob,
            appointment.to_self_delay,
            signature,
            height,
            user_id.to_bytes().as_slice()
        ],
    )
    .unwrap();
    conn.execute(
        "UPDATE last_known_block SET block_hash = ?1",
        [last.to_byte_array().as_slice()],
    )
    .unwrap();
}

#[test]
fn imported_tower_resumes_at_rust_teos_last_block_and_answers_a_breach_mined_after_it() {
    let expected = expected();
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let source = copy_fixture(dir.path());
    // rust-teos followed this chain up to block 123 and accepted an appointment there.
    chain.mine(123 - chain.height());
    let (height, last) = chain.tip();
    assert_eq!(height, 123);
    let (commitment, penalty) = chain.breach();
    let user_sk: SecretKey = expected["users"][0]["secret_key_hex"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    rust_teos_accepted(
        &source.join("regtest/teos_db.sql3"),
        &user_sk,
        &commitment,
        &penalty,
        123,
        last,
    );
    // Then it stopped; the breach was mined at 125, and the chain went on to 130.
    chain.mine(1);
    chain.broadcast(&commitment);
    chain.mine(6);

    let target = dir.path().join("teosd");
    let api_port = TowerProcess::configure(&chain, &target, &TowerOptions::default());
    let summary = summary(&import(&source, &target, &[]));
    assert_eq!(summary["resume_block"]["height"], 123);
    assert_eq!(summary["resume_block"]["known_to_bitcoind"], true);
    assert_eq!(summary["resume_block"]["in_active_chain"], true);

    let mut tower = TowerProcess::spawn(&target, api_port, &[]);
    let admin = AdminView::connect(&tower);
    tower.wait_at_tip(&admin, &chain);
    let user = User::with_key(&tower.url(), user_sk).verifying(tower.tower_id());
    match user.get(&Locator::new(&commitment.compute_txid())).unwrap() {
        GetAppointmentResponse::DisputeResponded(t) => {
            assert_eq!(t.penalty_txid, penalty.compute_txid())
        }
        other => panic!("breach at 125 not answered: {other:?}"),
    }
    let penalty_txid = penalty.compute_txid();
    wait_until("the penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty_txid)
    });
    assert!(tower.stop().success());
}

#[test]
fn import_refuses_another_network_a_target_holding_a_tower_and_a_dir_that_is_not_rust_teos() {
    let chain = Chain::start(0);
    let dir = tempfile::tempdir().unwrap();
    let source = copy_fixture(dir.path());
    std::fs::write(source.join("regtest/onion_v3_sk"), [7u8; 64]).unwrap();
    let flags = bitcoind_flags(&chain);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let source_digest = tree_digest(&source);
    let refused = |output: Output, what: &str| {
        assert_eq!(output.status.code(), Some(2), "{what}: exit code");
        assert!(!output.stderr.is_empty(), "{what}: no message");
    };

    // Another network than the rust-teos database's: nothing written.
    let target = dir.path().join("teosd");
    let mut args = flags.clone();
    args.extend(["--btcnetwork", "signet"]);
    let output = import(&source, &target, &args);
    assert!(String::from_utf8_lossy(&output.stderr).contains("network mismatch"));
    refused(output, "wrong network");
    assert!(!target.exists(), "nothing written for a wrong network");

    // overwrite_key would replace the imported key at teosd's start.
    let mut args = flags.clone();
    args.push("--overwritekey");
    refused(import(&source, &target, &args), "overwrite_key");
    assert!(!target.exists(), "nothing written with overwrite_key");

    // Not a rust-teos dir: an empty directory, a file.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    refused(import(&empty, &target, &flags), "empty dir");
    refused(import(&source.join("teos.toml"), &target, &flags), "a file");
    assert!(
        !target.exists(),
        "nothing written for a dir that is not rust-teos's"
    );

    // A target without teos.toml gets rust-teos's, and the onion key where teosd's Tor support reads
    // it (the network directory, as rust-teos).
    let output = import(&source, &target, &flags);
    assert!(output.status.success());
    assert_eq!(
        std::fs::read(target.join("teos.toml")).unwrap(),
        std::fs::read(source.join("teos.toml")).unwrap()
    );
    assert_eq!(
        std::fs::read(target.join("regtest/onion_v3_sk")).unwrap(),
        [7u8; 64]
    );
    assert!(!target.join("regtest/teos_db.sql3.import-tmp").exists());

    // The target now holds a tower: a second import is refused and changes nothing.
    let target_digest = tree_digest(&target);
    refused(import(&source, &target, &flags), "a target holding a tower");
    assert_eq!(tree_digest(&target), target_digest);

    // teosd's own data dir is not a rust-teos one.
    let other = dir.path().join("other");
    let output = import(&target, &other, &flags);
    assert!(String::from_utf8_lossy(&output.stderr).contains("teosd database"));
    refused(output, "a teosd dir");
    assert!(!other.exists());
    assert_eq!(
        tree_digest(&source),
        source_digest,
        "the rust-teos dir was modified"
    );
}

#[test]
fn teosd_help_lists_the_subcommands_and_each_has_its_own_help() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_teosd"))
            .args(args)
            .output()
            .unwrap()
    };
    let help = run(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("import-rust-teos") && text.contains("backup"),
        "{text}"
    );
    for sub in ["import-rust-teos", "backup"] {
        let help = run(&[sub, "--help"]);
        assert!(help.status.success());
        assert!(String::from_utf8_lossy(&help.stdout).starts_with(&format!("Usage: teosd {sub}")));
        assert_eq!(
            run(&[sub]).status.code(),
            Some(2),
            "{sub} without its operand"
        );
    }
}
