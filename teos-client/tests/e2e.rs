//! End to end: the real `teos-client` binary against the real teosd on bitcoind-sim (teos-testkit):
//! a breach answered for an appointment teos-client added, a wrong tower id refused, key file
//! permissions, and the exit codes of `--help`.
//!
//! teosd must be built next to teos-client (`cargo build --workspace --bins`, which
//! `scripts/test.sh` does first).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use bitcoin::Transaction;
use bitcoin::consensus::encode::serialize_hex;
use serde_json::Value;
use teos_common::appointment::{Locator, TowerId};
use teos_testkit::{Chain, KitError, Launch, SOON, TowerConfig, TowerProcess, wait_until};

/// Exit codes documented in `teos-client --help`.
const EXIT_BAD_ARGUMENTS: i32 = 2;
const EXIT_CANNOT_CONNECT: i32 = 3;
const EXIT_REFUSED: i32 = 4;
const EXIT_KEY: i32 = 5;
const EXIT_UNTRUSTED: i32 = 6;

const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[track_caller]
fn ok<T>(result: Result<T, KitError>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// teosd, built next to this package's binary.
fn teosd_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_teos-client")).with_file_name("teosd");
    assert!(
        path.exists(),
        "{} is missing: build it first (`cargo build --workspace --bins`, as scripts/test.sh does)",
        path.display()
    );
    path
}

/// bitcoind-sim with `coins` coins and a teosd following it, in `dir`.
fn start(coins: usize, dir: &Path) -> (Chain, TowerProcess) {
    let chain = ok(Chain::start(coins));
    let datadir = dir.join("tower");
    ok(TowerConfig::new(&datadir).write(chain.sim()));
    let tower = ok(TowerProcess::start(
        &Launch::new(&teosd_binary(), &datadir),
        READY_TIMEOUT,
    ));
    (chain, tower)
}

/// `tower_id@127.0.0.1:port` of a ready tower.
fn address(tower: &TowerProcess) -> String {
    let ready = tower.ready().expect("teosd is ready");
    format!("{}@{}", ready.tower_id, ready.api)
}

/// A teos-client run with its key file in `home`.
struct Client {
    tower: String,
    key_file: PathBuf,
}

impl Client {
    fn new(tower: String, home: &Path) -> Client {
        Client {
            tower,
            key_file: home.join("keys").join("user.key"),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_teos-client"))
            .arg("--tower")
            .arg(&self.tower)
            .arg("--key-file")
            .arg(&self.key_file)
            .args(args)
            .env_remove("TEOS_CLIENT_TOWER")
            .env_remove("TEOS_CLIENT_KEY_FILE")
            .output()
            .expect("cannot run teos-client")
    }

    /// Runs, expects success and returns the JSON printed.
    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "teos-client {args:?} failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "teos-client {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// Runs, expects exit code `code`, nothing on stdout; returns stderr.
    #[track_caller]
    fn fails(&self, args: &[&str], code: i32) -> String {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(
            output.status.code(),
            Some(code),
            "teos-client {args:?}: {stderr}"
        );
        assert!(
            output.stdout.is_empty(),
            "teos-client {args:?} printed output"
        );
        assert!(
            !stderr.trim().is_empty(),
            "teos-client {args:?}: no message"
        );
        stderr
    }

    fn add(&self, commitment: &Transaction, penalty: &Transaction) -> Vec<String> {
        [
            "add-appointment",
            "--dispute-txid",
            &commitment.compute_txid().to_string(),
            "--penalty-tx",
            &serialize_hex(penalty),
            "--to-self-delay",
            "42",
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn a_breach_is_answered_for_an_appointment_added_by_teos_client() {
    let dir = tempfile::tempdir().unwrap();
    let (chain, tower) = start(2, dir.path());
    let client = Client::new(address(&tower), dir.path());

    let registered = client.json(&["register"]);
    let key_mode = std::fs::metadata(&client.key_file).unwrap().mode() & 0o777;
    assert_eq!(key_mode, 0o600, "key file created owner-only");
    let slots = registered["available_slots"].as_u64().unwrap();
    assert!(slots > 0, "{registered}");
    let user_id = registered["user_id"].as_str().unwrap().to_owned();

    let (commitment, penalty) = ok(chain.breach());
    let locator = Locator::new(&commitment.compute_txid()).to_string();
    let receipt = client.json(&strs(&client.add(&commitment, &penalty)));
    assert_eq!(receipt["locator"], locator.as_str());
    assert_eq!(receipt["start_block"], chain.height());
    assert_eq!(receipt["available_slots"].as_u64(), Some(slots - 1));

    // Through the protocol, as another client sees it: the same user (key read from the file).
    let watched = client.json(&["get-appointment", &locator]);
    assert_eq!(watched["status"], "being_watched");
    assert_eq!(watched["appointment"]["locator"], locator.as_str());
    assert_eq!(watched["appointment"]["to_self_delay"], 42);
    let info = client.json(&["get-subscription-info"]);
    assert_eq!(info["locators"], serde_json::json!([locator]));
    assert_eq!(info["available_slots"].as_u64(), Some(slots - 1));
    // The tower knows the user under the key teos-client created.
    let key_hex = std::fs::read_to_string(&client.key_file).unwrap();
    let sk =
        bitcoin::secp256k1::SecretKey::from_slice(&hex::decode(key_hex.trim()).unwrap()).unwrap();
    assert_eq!(
        sk.public_key(bitcoin::secp256k1::SECP256K1).to_string(),
        user_id
    );

    ok(chain.broadcast(&commitment));
    chain.mine(1);
    let penalty_txid = penalty.compute_txid();
    ok(wait_until("the penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty_txid)
    }));
    // The dispute txid works as well as the locator. The tracker is committed a moment after the
    // penalty reaches the mempool.
    let by_txid = [
        "get-appointment".to_owned(),
        commitment.compute_txid().to_string(),
    ];
    ok(wait_until("dispute_responded", SOON, || {
        client.json(&strs(&by_txid))["status"] == "dispute_responded"
    }));
    let responded = client.json(&strs(&by_txid));
    assert_eq!(
        responded["appointment"]["penalty_txid"],
        penalty_txid.to_string()
    );
    assert_eq!(
        responded["appointment"]["dispute_txid"],
        commitment.compute_txid().to_string()
    );
    assert_eq!(
        responded["appointment"]["penalty_rawtx"],
        serialize_hex(&penalty)
    );
}

#[test]
fn a_wrong_tower_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (chain, tower) = start(1, dir.path());
    let ready = tower.ready().expect("ready");
    let other: TowerId = "02fcc947ae8831879d073eef32a5197784b451a9f4ec4241326abb73f133e796cc"
        .parse()
        .unwrap();
    assert_ne!(other, ready.tower_id);
    let impostor = Client::new(format!("{other}@{}", ready.api), dir.path());

    let stderr = impostor.fails(&["register"], EXIT_UNTRUSTED);
    assert!(stderr.contains("not signed by tower"), "{stderr}");

    // Registered under the right id, the appointment receipt is still checked against the id given.
    let honest = Client::new(address(&tower), dir.path());
    honest.json(&["register"]);
    let (commitment, penalty) = ok(chain.breach());
    let stderr = impostor.fails(&strs(&impostor.add(&commitment, &penalty)), EXIT_UNTRUSTED);
    assert!(stderr.contains("appointment receipt"), "{stderr}");
    honest.json(&strs(&honest.add(&commitment, &penalty)));
}

#[test]
fn a_key_file_others_can_read_is_refused_and_nothing_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (_chain, tower) = start(1, dir.path());
    let client = Client::new(address(&tower), dir.path());

    // No key yet: only register creates one.
    let stderr = client.fails(&["get-subscription-info"], EXIT_KEY);
    assert!(stderr.contains("register"), "{stderr}");
    assert!(!client.key_file.exists());

    let slots = client.json(&["register"])["available_slots"].clone();
    std::fs::set_permissions(&client.key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    for args in [&["get-subscription-info"][..], &["register"][..]] {
        let stderr = client.fails(args, EXIT_KEY);
        assert!(
            stderr.contains("too open") && stderr.contains("0644"),
            "{stderr}"
        );
    }
    std::fs::set_permissions(&client.key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The refused register never reached the tower: it would have added slots.
    let info = client.json(&["get-subscription-info"]);
    assert_eq!(info["available_slots"], slots);
}

#[test]
fn refusals_unreachable_towers_and_bad_arguments_have_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (chain, tower) = start(1, dir.path());
    let client = Client::new(address(&tower), dir.path());
    client.json(&["register"]);

    // Code 36 from the tower: an unknown locator.
    let stderr = client.fails(&["get-appointment", &"ab".repeat(16)], EXIT_REFUSED);
    assert!(stderr.contains("code 36"), "{stderr}");

    // A penalty that does not spend the dispute is the user's mistake, caught before sending.
    let (commitment, penalty) = ok(chain.breach());
    let (other_commitment, _) = ok(chain.breach());
    let mut args = client.add(&other_commitment, &penalty);
    let stderr = client.fails(&strs(&args), EXIT_BAD_ARGUMENTS);
    assert!(stderr.contains("spends no output"), "{stderr}");
    args[2] = commitment.compute_txid().to_string();
    client.json(&strs(&args));

    // Nothing listens there any more.
    let ready_api = tower.ready().expect("ready").api;
    ok(tower.stop(Duration::from_secs(60)));
    let stderr = client.fails(&["get-subscription-info"], EXIT_CANNOT_CONNECT);
    assert!(stderr.contains(&ready_api.to_string()), "{stderr}");
}
