//! Signals, black-box (teosd/src/signals.rs): the real teosd against bitcoind-sim.
//!
//! | signal | expected |
//! |---|---|
//! | SIGHUP | the log file is reopened; the tower keeps running and watching, also during startup |
//! | SIGTERM, SIGINT | graceful shutdown: the database is closed, exit 0 |
//! | a second SIGTERM during the graceful shutdown | exit at once with 130 |
//!
//! Before the signals table, SIGHUP started the graceful shutdown (exit 0, so systemd's
//! `Restart=on-failure` left the tower down after every `systemctl reload` or logrotate) and the log
//! file was never reopened.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use bitcoind_sim::{SimConfig, Simulator};
use common::*;

/// Size of the file at `path` in bytes, 0 if it does not exist.
fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Whether the database's WAL is empty or gone: `Store::close` checkpoints it (TRUNCATE) and SQLite
/// deletes it when the last connection closes, so after a graceful stop nothing is left in it.
fn wal_is_empty(datadir: &Path) -> bool {
    size(&datadir.join("regtest").join("teos_db.sql3-wal")) == 0
}

#[test]
fn sighup_reopens_the_log_file_and_the_tower_keeps_watching() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("teosd.log");
    let options = TowerOptions {
        extra: vec![format!("log_file = \"{}\"", log.display())],
    };
    let api_port = TowerProcess::configure(&chain, dir.path(), &options);
    // The log goes to the file, not stderr: readiness is read from the API.
    let mut tower = TowerProcess::spawn_with(dir.path(), api_port, &[], &[], "");
    wait_until("the API to answer", Duration::from_secs(60), || {
        ping(api_port)
    });
    assert!(size(&log) > 0, "nothing logged to log_file");

    // logrotate: move the file away, then `systemctl reload` (ExecReload sends SIGHUP).
    let rotated = dir.path().join("teosd.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    signal(tower.pid(), "HUP");
    wait_until("a new log file with lines in it", SOON, || size(&log) > 0);
    assert!(ping(api_port), "the API stopped answering after SIGHUP");

    // Still watching: a breach is answered, and the new file receives the block's lines.
    let reopened_size = size(&log);
    let user = User::new(&tower.url(), 3);
    user.register().unwrap();
    let (commitment, penalty) = chain.breach();
    user.add(&appointment_for(&commitment, &penalty)).unwrap();
    chain.broadcast(&commitment);
    chain.mine(1);
    wait_until("the penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty.compute_txid())
    });
    wait_until("the new log file to grow", SOON, || {
        size(&log) > reopened_size
    });

    signal(tower.pid(), "TERM");
    let status = tower.stop_after_signal(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "teosd exited with {status}");
}

#[test]
fn sighup_while_waiting_for_bitcoind_does_not_stop_the_tower() {
    let mut chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let api_port = TowerProcess::configure(&chain, dir.path(), &TowerOptions::default());
    let sim = chain.sim.take().unwrap();
    let rpc_port = sim.rpc_port();
    let zmq_port: u16 = sim
        .zmq_endpoint()
        .and_then(|e| e.rsplit(':').next()?.parse().ok())
        .unwrap();
    let cookie = sim.cookie_path();
    sim.stop().unwrap();

    // bitcoind not reachable yet: its RPC port accepts connections and closes them unanswered, which
    // also shows the test each of teosd's attempts (with a cookie file, or teosd would not connect).
    std::fs::write(&cookie, "__cookie__:not-yet").unwrap();
    let bitcoind = TcpListener::bind((Ipv4Addr::LOCALHOST, rpc_port)).unwrap();
    bitcoind.set_nonblocking(true).unwrap();
    let mut tower = TowerProcess::spawn_with(dir.path(), api_port, &[], &[], "");
    wait_until("teosd to try bitcoind", SOON, || bitcoind.accept().is_ok());
    signal(tower.pid(), "HUP");
    // Attempts are at least 250 ms apart and the test accepts every 20 ms, so at most one was
    // already queued when the signal arrived: the second one is made after it.
    for n in 1..=2 {
        wait_until(
            &format!("teosd to try bitcoind again after SIGHUP ({n})"),
            SOON,
            || bitcoind.accept().is_ok(),
        );
    }

    // bitcoind comes up on the same ports: the tower gets ready.
    drop(bitcoind);
    let config = SimConfig {
        rpc_port,
        zmq_port,
        ..SimConfig::new(chain.dir.path().join("bitcoind"))
    };
    chain.sim = Some(Simulator::start(config).unwrap());
    wait_until("the API to answer", Duration::from_secs(90), || {
        ping(api_port)
    });

    signal(tower.pid(), "TERM");
    let status = tower.stop_after_signal(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "teosd exited with {status}");
}

/// `name` (TERM or INT) stops the tower gracefully: exit 0, database closed.
fn stop_signal_shuts_down_gracefully(name: &str) {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    // Something in the WAL for the close to checkpoint.
    User::new(&tower.url(), 4).register().unwrap();
    assert!(!wal_is_empty(dir.path()));

    signal(tower.pid(), name);
    let status = tower.stop_after_signal(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "teosd exited with {status}");
    assert!(wal_is_empty(dir.path()), "the database was not closed");
}

#[test]
fn sigterm_shuts_down_gracefully_with_exit_code_0() {
    stop_signal_shuts_down_gracefully("TERM");
}

#[test]
fn sigint_shuts_down_gracefully_with_exit_code_0() {
    stop_signal_shuts_down_gracefully("INT");
}

#[test]
fn a_second_sigterm_during_a_slow_graceful_shutdown_exits_at_once_with_130() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let options = TowerOptions {
        extra: vec!["api_body_timeout = 600".into()],
    };
    let mut tower = TowerProcess::start(&chain, dir.path(), &options);

    // A request in flight that the graceful shutdown waits for: its handler is reading a body that
    // never comes (hyper answers "100 Continue" once the handler starts reading it).
    let mut slow = TcpStream::connect((Ipv4Addr::LOCALHOST, tower.api_port)).unwrap();
    slow.set_read_timeout(Some(SOON)).unwrap();
    slow.write_all(
        b"POST /register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
          Content-Length: 80\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut answer = [0u8; 64];
    let read = slow.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 100"), "got {answer:?}");

    signal(tower.pid(), "TERM");
    wait_until(
        "the graceful shutdown to close the API listener",
        SOON,
        || TcpStream::connect((Ipv4Addr::LOCALHOST, tower.api_port)).is_err(),
    );
    // Still draining the request in flight (up to 10 s): the second signal cuts it short.
    signal(tower.pid(), "TERM");
    let status = tower.stop_after_signal(SOON);
    assert_eq!(status.code(), Some(130), "teosd exited with {status}");
    drop(slow);
}
