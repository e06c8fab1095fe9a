//! End to end: the address users need (`tower_id@host:port`, issue 14 item 5) in the ready event and
//! in `teos-cli gettowerinfo`, and a start that goes on past an unknown `TEOS_*` variable (issue 14
//! item 6), with the real teosd on bitcoind-sim and the real teos-cli.
//!
//! `teos-cli` must be built next to teosd (`cargo build --workspace --bins`, as scripts/test.sh does).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// Bound on waiting for an event already logged before the ready event.
const SOON: Duration = Duration::from_secs(10);

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

/// `teos-cli --datadir <datadir> gettowerinfo`, parsed.
fn gettowerinfo(datadir: &Path) -> Value {
    let output = Command::new(cli_binary())
        .arg("--datadir")
        .arg(datadir)
        .arg("gettowerinfo")
        .env_remove("TEOS_RPC_BIND")
        .env_remove("TEOS_RPC_PORT")
        .env_remove("TEOS_DATA_DIR")
        .output()
        .expect("cannot run teos-cli");
    assert!(output.status.success(), "teos-cli gettowerinfo: {output:?}");
    serde_json::from_slice(&output.stdout).expect("teos-cli printed no JSON")
}

#[test]
fn external_address_is_advertised_at_start_and_in_gettowerinfo_and_unknown_teos_vars_only_warn() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let options = TowerOptions {
        extra: vec!["external_address = \"tower.example.com\"".into()],
    };
    let api_port = TowerProcess::configure(&chain, dir.path(), &options);
    // What a container platform sets for a service named "teos" (Docker links, Kubernetes).
    let env = [
        ("TEOS_PORT", "tcp://10.0.0.7:9814"),
        ("TEOS_SERVICE_HOST", "10.0.0.7"),
    ];
    let tower = TowerProcess::spawn_with(dir.path(), api_port, &[], &env, "Tower ready");

    // The start went on, with one warning per unknown variable, as structured events.
    for name in ["TEOS_PORT", "TEOS_SERVICE_HOST"] {
        let warning = tower.wait_for_event(&format!("the warning about {name}"), SOON, |e| {
            e.is("config_warning") && e.text("variable").as_deref() == Some(name)
        });
        assert!(warning.is("config_warning"));
    }

    // The ready event carries the address; without a port in external_address it is the API's.
    let expected = format!("{}@tower.example.com:{}", tower.tower_id(), tower.api_port);
    let ready = tower.wait_for_event("the ready event", SOON, |e| e.is("ready"));
    assert_eq!(ready.text("tower_address"), Some(expected.clone()));

    // gettowerinfo reports the same, and lists the advertised address, not the bind address.
    let info = gettowerinfo(dir.path());
    assert_eq!(info["tower_address"], json!(expected));
    assert_eq!(
        info["addresses"],
        json!([{ "type": "ipv4", "address": "tower.example.com", "port": tower.api_port }])
    );
}

#[test]
fn loopback_bind_is_advertised_as_it_is() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let expected = format!("{}@127.0.0.1:{}", tower.tower_id(), tower.api_port);
    let ready = tower.wait_for_event("the ready event", SOON, |e| e.is("ready"));
    assert_eq!(ready.text("tower_address"), Some(expected.clone()));
    assert_eq!(gettowerinfo(dir.path())["tower_address"], json!(expected));
}

#[test]
fn wildcard_bind_without_external_address_advertises_nothing() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let api_port = TowerProcess::configure(&chain, dir.path(), &TowerOptions::default());
    let tower = TowerProcess::spawn(dir.path(), api_port, &["--apibind", "0.0.0.0"]);
    let ready = tower.wait_for_event("the ready event", SOON, |e| e.is("ready"));
    assert_eq!(ready.text("tower_address"), None);
    let info = gettowerinfo(dir.path());
    assert_eq!(info["tower_address"], Value::Null);
    assert_eq!(info["addresses"], json!([]));
}
