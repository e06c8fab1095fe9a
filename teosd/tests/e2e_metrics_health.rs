//! The metrics an operator alerts on (`contrib/prometheus-alerts.yml`), read through `/metrics`:
//! bitcoind reachability, the age of the processed tip, build info and process metrics.

mod common;

use std::time::Duration;

use common::*;

fn start(chain: &Chain, dir: &std::path::Path) -> (TowerProcess, u16) {
    let port = free_port();
    let options = TowerOptions {
        extra: vec![format!("metrics_bind = \"127.0.0.1:{port}\"")],
    };
    (
        TowerProcess::start(chain, &dir.join("teos"), &options),
        port,
    )
}

#[test]
fn tip_ages_build_info_and_process_metrics_are_exported() {
    let chain = Chain::start(0);
    let dir = tempfile::tempdir().unwrap();
    let (mut tower, port) = start(&chain, dir.path());

    wait_until("the health gauges", SOON, || {
        metric(port, "teosd_bitcoind_reachable ") == Some(1.0)
            && metric(port, "teosd_tip_processed_age_seconds ").is_some()
    });
    // The simulator stamps blocks with the current time, so the tip is young; so is its processing.
    let age = metric(port, "teosd_tip_age_seconds ").expect("tip age");
    assert!((0.0..600.0).contains(&age), "{age}");
    let processed = metric(port, "teosd_tip_processed_age_seconds ").unwrap();
    assert!((0.0..600.0).contains(&processed), "{processed}");

    let text = scrape_metrics(port).unwrap_or_default();
    let build = text
        .lines()
        .find(|l| l.starts_with("teosd_build_info{"))
        .unwrap_or_else(|| panic!("no build info in:\n{text}"));
    assert!(
        build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
            && build.contains("commit=\"")
            && build.ends_with(" 1"),
        "{build}"
    );
    assert!(metric(port, "process_resident_memory_bytes ").unwrap() > 0.0);
    assert!(metric(port, "process_cpu_seconds_total ").is_some());
    assert!(metric(port, "process_open_fds ").unwrap() > 0.0);

    // A new block is processed: the processed age starts again from 0 (it is refreshed every 5 s,
    // in whole seconds, so it is compared with its value before the block, at least 10 s).
    wait_until("a processed age of at least 10 s", SOON, || {
        metric(port, "teosd_tip_processed_age_seconds ").is_some_and(|a| a >= 10.0)
    });
    let before = metric(port, "teosd_tip_processed_age_seconds ").unwrap();
    chain.mine(1);
    tower.wait_for_tip(&chain);
    wait_until("the processed age to start again", SOON, || {
        metric(port, "teosd_tip_processed_age_seconds ").is_some_and(|a| a < before)
    });
    assert!(tower.stop().success());
}

#[test]
fn bitcoind_reachable_goes_to_zero_while_bitcoind_refuses_and_back_to_one() {
    let chain = Chain::start(0);
    let dir = tempfile::tempdir().unwrap();
    let (mut tower, port) = start(&chain, dir.path());
    wait_until("bitcoind reachable", SOON, || {
        metric(port, "teosd_bitcoind_reachable ") == Some(1.0)
    });
    chain.sim().faults().refuse_rpc(Duration::from_secs(8));
    wait_until("bitcoind unreachable", SOON, || {
        metric(port, "teosd_bitcoind_reachable ") == Some(0.0)
    });
    wait_until("bitcoind reachable again", SOON, || {
        metric(port, "teosd_bitcoind_reachable ") == Some(1.0)
    });
    assert!(tower.stop().success());
}
