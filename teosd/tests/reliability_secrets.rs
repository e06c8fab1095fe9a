//! Secrets and surfaces (issue 6, item 5), black box on the real teosd:
//! - the files holding secrets (the database with the tower key, its WAL and shared-memory files, the
//!   admin API's TLS private keys) are readable by the tower's user only, even under umask 000;
//! - the public API answers the protocol and nothing else: every other path and method gets a JSON
//!   404/405, admin (gRPC) calls are not served there, and no answer names the server software.
//!
//! The admin API's refusal of clients without a certificate of the tower's CA is tested in
//! `admin_grpc.rs` (`clients_without_a_certificate_of_the_towers_ca_are_refused`).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Files under `datadir` whose mode lets the group or others read or write them, among those that
/// hold secrets: `*.sql3*` (the database, its `-wal` and `-shm`) and `*-key.pem`.
fn exposed_secret_files(datadir: &Path) -> (Vec<String>, usize) {
    let mut exposed = Vec::new();
    let mut seen = 0;
    let mut stack = vec![datadir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.contains(".sql3") || name.ends_with("-key.pem") {
                seen += 1;
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    exposed.push(format!("{} {mode:o}", path.display()));
                }
            }
        }
    }
    (exposed, seen)
}

#[test]
fn secret_files_are_private_to_the_tower_user_even_under_umask_000() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let api_port = TowerProcess::start(&chain, dir.path(), &TowerOptions::default()).api_port;
    // The first start (default umask) created everything; check, then start again under umask 000 in
    // a fresh data directory.
    let (exposed, seen) = exposed_secret_files(dir.path());
    assert!(
        seen >= 4,
        "expected the database and three TLS keys, found {seen} files"
    );
    assert!(exposed.is_empty(), "{exposed:?}");

    let open = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("teos.toml"), open.path().join("teos.toml")).unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" --datadir \"$1\"")
        .arg(env!("CARGO_BIN_EXE_teosd"))
        .arg(open.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain stderr to the end (closing the pipe early would break teosd's logging, see
    // reliability_signals.rs) and report readiness through a channel.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if line.contains("Tower ready") {
                let _ = ready_tx.send(());
            }
        }
    });
    let ready = ready_rx.recv_timeout(Duration::from_secs(60)).is_ok();
    let (exposed, seen) = exposed_secret_files(open.path());
    common::signal(child.id(), "TERM");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("teosd did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    reader.join().unwrap();
    assert!(ready, "teosd did not start under umask 000");
    assert!(seen >= 4, "found {seen} secret files");
    assert!(exposed.is_empty(), "under umask 000: {exposed:?}");
    let _ = api_port;
}

/// Sends a raw request; returns the status and the whole answer.
fn raw(port: u16, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[test]
fn the_public_api_serves_the_protocol_and_nothing_else() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let port = tower.api_port;

    let (status, answer) = raw(
        port,
        "GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("\r\nserver:"),
        "{answer}"
    );

    let probes = [
        "GET /",
        "GET /metrics",
        "GET /admin",
        "GET /get_tower_info",
        "POST /get_tower_info",
        "POST /get_users",
        "POST /get_all_appointments",
        "POST /stop",
        "POST /teos.v2.PrivateTowerServices/GetTowerInfo",
        "POST /teos.v2.PrivateTowerServices/Stop",
        "GET /register",
        "PUT /add_appointment",
        "DELETE /get_appointment",
        "GET /../teos_db.sql3",
        "GET /regtest/teos_db.sql3",
        "GET /ca-key.pem",
        "OPTIONS *",
    ];
    for probe in probes {
        let request = format!(
            "{probe} HTTP/1.1\r\nHost: t\r\nContent-Type: application/grpc\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let (status, answer) = raw(port, &request);
        assert!(
            matches!(status, 400 | 404 | 405),
            "{probe} answered {status}: {answer}"
        );
        assert!(answer.contains(r#""error_code":"#), "{probe}: {answer}");
        assert!(!answer.to_ascii_lowercase().contains("\r\nserver:"));
    }

    // HTTP/2 with prior knowledge (how a gRPC client would talk): not served.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "HTTP/2 got: {answer}"
    );
    let _ = tower;
}
