//! `teosd backup` while the tower runs and writes, then the documented restore into a new data dir.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bitcoin::hashes::{Hash, sha256};
use common::*;
use serde_json::Value;
use teos_common::appointment::{Appointment, Locator};
use teos_common::protocol::GetAppointmentResponse;

/// The `n`th appointment of the load: a locator of its own, a blob that is not a real penalty (the
/// tower cannot tell before a breach).
fn appointment(n: u32) -> Appointment {
    let digest = sha256::Hash::hash(&n.to_be_bytes());
    Appointment {
        locator: Locator::from_slice(&digest[..16]).unwrap(),
        encrypted_blob: digest.to_byte_array().repeat(4),
        to_self_delay: 42,
    }
}

/// Runs `teosd backup <dest> --datadir <datadir>`.
fn backup(datadir: &Path, dest: &Path) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_teosd"))
        .arg("backup")
        .arg(dest)
        .arg("--datadir")
        .arg(datadir)
        .env_remove("TEOS_DATA_DIR")
        .output()
        .unwrap();
    eprintln!(
        "[backup] {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn backup_of_a_running_tower_under_load_restores_with_the_same_id_and_every_acknowledged_appointment()
 {
    let chain = Chain::start(0);
    let dir = tempfile::tempdir().unwrap();
    let datadir = dir.path().join("tower");
    let options = TowerOptions {
        extra: vec!["add_appointment_rate_limit = 0".into()],
    };
    let mut tower = TowerProcess::start(&chain, &datadir, &options);
    let tower_id = tower.tower_id();
    let user = User::new(&tower.url(), 9).verifying(tower_id);
    user.register().unwrap();

    // Load: appointments back to back, and a block every 10 of them (the block processor writes too).
    let acked: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let dests = [
        dir.path().join("backup-1.sql3"),
        dir.path().join("backup-2.sql3"),
    ];
    let mut during = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 20_000 {
                user.add(&appointment(n)).unwrap();
                acked.lock().unwrap().push(n);
                n += 1;
                if n % 10 == 0 {
                    chain.mine(1);
                }
            }
        });
        for dest in &dests {
            let floor = acked.lock().unwrap().len() + 100;
            wait_until("more appointments acknowledged", SOON, || {
                acked.lock().unwrap().len() >= floor
            });
            let before = acked.lock().unwrap().len();
            let output = backup(&datadir, dest);
            let after = acked.lock().unwrap().len();
            during.push((before, after, output));
        }
        stop.store(true, Ordering::Relaxed);
    });

    for (before, after, output) in &during {
        assert!(
            output.status.success(),
            "backup failed: {:?}",
            output.status
        );
        let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(summary["tower_id"], tower_id.to_string());
        let stored = summary["appointments"].as_u64().unwrap() as usize;
        assert!(
            (*before..=*after).contains(&stored),
            "{stored} appointments, {before} acknowledged before the backup, {after} after"
        );
        assert!(after > before, "the tower kept writing during the backup");
    }
    assert!(tower.stop().success());

    // Restore (README "Backup and restore") into a new data dir: the database file, the TLS files.
    let restored = dir.path().join("restored");
    let api_port = TowerProcess::configure(&chain, &restored, &TowerOptions::default());
    std::fs::create_dir_all(restored.join("regtest")).unwrap();
    std::fs::copy(&dests[1], restored.join("regtest/teos_db.sql3")).unwrap();
    for name in [
        "ca.pem",
        "ca-key.pem",
        "server.pem",
        "server-key.pem",
        "client.pem",
        "client-key.pem",
    ] {
        std::fs::copy(datadir.join(name), restored.join(name)).unwrap();
    }
    let tower = TowerProcess::spawn(&restored, api_port, &[]);
    assert_eq!(tower.tower_id(), tower_id);
    let admin = AdminView::connect(&tower);
    wait_until("the restored tower at bitcoind's tip", SOON, || {
        admin.info().is_some_and(|i| i.hash == chain.tip().1)
    });
    let info = tower.admin().tower_info().unwrap();
    assert!(info.data_dir_bytes > 0);

    let (before, _, _) = during[1];
    let user = User::new(&tower.url(), 9).verifying(tower_id);
    for n in acked.lock().unwrap()[..before].iter() {
        match user.get(&appointment(*n).locator) {
            Ok(GetAppointmentResponse::BeingWatched(a)) => assert_eq!(a, appointment(*n)),
            other => panic!("appointment {n}, acknowledged before the backup: {other:?}"),
        }
    }
}
