//! A panic in any of the tower's threads stops teosd with a failure exit code (teosd/src/thread.rs),
//! so systemd's `Restart=on-failure` restarts it, instead of leaving the HTTP API accepting
//! appointments that nothing watches (a dead block processor) or stores (a dead writer).
//!
//! The panic is injected with the debug-build-only `TEOSD_FAULT_PANIC_THREAD=<thread name>`: once the
//! public API serves, the named thread panics at its next fault point (where it starts, or for the
//! storage writer and the metrics refresher, at its next op or refresh).

mod common;

use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use common::*;

/// Starts teosd with a panic injected into `thread` (and the config lines `extra`), lets `poke` make
/// the thread reach its fault point once the API answers, and expects exit code 1 within the deadline.
fn panic_in_thread_stops_teosd_with_exit_code_1(
    thread: &str,
    extra: &[&str],
    poke: impl FnOnce(&TowerProcess),
) {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let options = TowerOptions {
        extra: extra.iter().map(|l| l.to_string()).collect(),
    };
    let api_port = TowerProcess::configure(&chain, dir.path(), &options);
    let mut tower = TowerProcess::spawn_with(
        dir.path(),
        api_port,
        &[],
        &[("TEOSD_FAULT_PANIC_THREAD", thread)],
        "",
    );
    wait_until("the API to listen", Duration::from_secs(60), || {
        TcpStream::connect((Ipv4Addr::LOCALHOST, api_port)).is_ok() || tower.has_log("panicked")
    });
    poke(&tower);
    let status = tower.wait_for_exit(Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(1),
        "teosd exited with {status} after thread {thread} panicked"
    );
    assert!(
        tower.has_log(&format!("thread {thread} panicked")),
        "the failure was not logged with the thread's name"
    );
}

#[test]
fn a_panic_in_the_block_processor_stops_teosd_with_exit_code_1() {
    panic_in_thread_stops_teosd_with_exit_code_1("block-processor", &[], |_| {});
}

#[test]
fn a_panic_in_the_storage_writer_stops_teosd_with_exit_code_1() {
    // The writer is idle until a request writes: a registration (which the tower cannot store).
    panic_in_thread_stops_teosd_with_exit_code_1("teosd-db-writer", &[], |tower| {
        assert!(User::new(&tower.url(), 5).register().is_err());
    });
}

#[test]
fn a_panic_in_the_zmq_listener_stops_teosd_with_exit_code_1() {
    panic_in_thread_stops_teosd_with_exit_code_1("zmq-hashblock", &[], |_| {});
}

#[test]
fn a_panic_in_the_bitcoind_poller_stops_teosd_with_exit_code_1() {
    panic_in_thread_stops_teosd_with_exit_code_1("bitcoind-poller", &[], |_| {});
}

#[test]
fn a_panic_in_the_metrics_refresher_stops_teosd_with_exit_code_1() {
    let bind = format!("metrics_bind = \"127.0.0.1:{}\"", free_port());
    panic_in_thread_stops_teosd_with_exit_code_1("metrics", &[&bind], |_| {});
}

#[test]
fn a_panic_in_the_mempool_watcher_stops_teosd_with_exit_code_1() {
    panic_in_thread_stops_teosd_with_exit_code_1(
        "mempool-watch",
        &["mempool_watch = true"],
        |_| {},
    );
}
