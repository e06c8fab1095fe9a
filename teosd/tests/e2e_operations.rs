//! Operating teosd (issue 5): systemd notifications, Prometheus metrics, and riding out bitcoind trouble
//! — each recovery ends with a breach answered.

mod common;

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use teos_common::protocol::GetAppointmentResponse;

/// Registers a user, hands the tower one appointment and returns (user, commitment, penalty).
fn watched_breach(
    chain: &Chain,
    tower: &TowerProcess,
    seed: u8,
) -> (User, bitcoin::Transaction, bitcoin::Transaction) {
    let user = User::new(&tower.url(), seed);
    user.register().unwrap();
    let (commitment, penalty) = chain.breach();
    user.add(&appointment_for(&commitment, &penalty)).unwrap();
    (user, commitment, penalty)
}

/// Mines the commitment and waits for the tower's penalty in the simulator's mempool.
fn breach_is_answered(
    chain: &Chain,
    commitment: &bitcoin::Transaction,
    penalty: &bitcoin::Transaction,
) {
    chain.broadcast(commitment);
    chain.mine(1);
    wait_until("the penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty.compute_txid())
    });
}

#[test]
fn sd_notify_sends_ready_status_watchdog_and_stopping_in_order() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let received = received.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while std::time::Instant::now() < deadline {
                if let Ok(n) = socket.recv(&mut buf) {
                    let message = String::from_utf8_lossy(&buf[..n]).to_string();
                    let stop = message.contains("STOPPING=1");
                    received.lock().unwrap().push(message);
                    if stop {
                        return;
                    }
                }
            }
        })
    };

    // bitcoind refuses RPC at first: systemd's STATUS says we are waiting.
    chain.sim().faults().refuse_rpc(Duration::from_secs(2));
    let datadir = dir.path().join("teos");
    let api_port = TowerProcess::configure(&chain, &datadir, &TowerOptions::default());
    let socket_env = socket_path.to_str().unwrap();
    let mut tower = TowerProcess::spawn_with(
        &datadir,
        api_port,
        &[],
        &[("NOTIFY_SOCKET", socket_env), ("WATCHDOG_USEC", "300000")],
        "Tower ready",
    );
    wait_until("a watchdog ping", SOON, || {
        received
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.contains("WATCHDOG=1"))
    });
    assert!(tower.stop().success());
    reader.join().unwrap();

    let messages = received.lock().unwrap().clone();
    let position = |what: &str| messages.iter().position(|m| m.contains(what));
    let waiting =
        position("STATUS=waiting for bitcoind").expect("STATUS while waiting for bitcoind");
    let ready = position("READY=1").expect("READY=1");
    let ready_status = messages
        .iter()
        .skip(ready)
        .position(|m| m.starts_with("STATUS="))
        .map(|i| i + ready);
    let watchdog = position("WATCHDOG=1").expect("WATCHDOG=1");
    let stopping = position("STOPPING=1").expect("STOPPING=1");
    assert!(waiting < ready, "{messages:?}");
    assert!(
        ready < ready_status.expect("STATUS after READY"),
        "{messages:?}"
    );
    assert!(
        ready_status.unwrap() < watchdog && watchdog < stopping,
        "{messages:?}"
    );
}

#[test]
fn metrics_move_with_a_breach() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let options = TowerOptions {
        extra: vec![format!("metrics_bind = \"127.0.0.1:{metrics_port}\"")],
    };
    let tower = TowerProcess::start(&chain, dir.path(), &options);
    let (_user, commitment, penalty) = watched_breach(&chain, &tower, 31);
    wait_until("appointments gauge", SOON, || {
        metric(metrics_port, "teosd_appointments ") == Some(1.0)
    });
    assert_eq!(
        metric(metrics_port, "teosd_appointments_triggered_total").unwrap_or(0.0),
        0.0
    );

    breach_is_answered(&chain, &commitment, &penalty);
    let tip = chain.height();
    wait_until("triggered counter", SOON, || {
        metric(metrics_port, "teosd_appointments_triggered_total") == Some(1.0)
    });
    assert_eq!(
        metric(metrics_port, "teosd_breach_response_seconds_count"),
        Some(1.0)
    );
    wait_until("best height", SOON, || {
        metric(metrics_port, "teosd_best_height") == Some(f64::from(tip))
    });
    wait_until("trackers gauge", SOON, || {
        metric(metrics_port, "teosd_trackers{status=\"in_mempool\"}") == Some(1.0)
    });
    assert!(metric(metrics_port, "teosd_block_processing_seconds_count").unwrap() >= 1.0);
    assert!(metric(metrics_port, "teosd_chain_notifications_total").is_some());
    assert!(metric(metrics_port, "teosd_db_size_bytes").unwrap() > 0.0);
    assert!(metric(metrics_port, "teosd_data_dir_bytes").unwrap() > 0.0);
    // Alone on SQLite the tower is the leader of its one-instance fleet, with epoch 0.
    assert_eq!(
        metric(metrics_port, "teosd_fleet_role{role=\"leader\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(metrics_port, "teosd_fleet_role{role=\"standby\"}"),
        Some(0.0)
    );
    assert_eq!(metric(metrics_port, "teosd_leader_epoch"), Some(0.0));
    assert!(
        metric(
            metrics_port,
            "teosd_http_requests_total{endpoint=\"add_appointment\",status=\"200\"}"
        )
        .unwrap()
            >= 1.0
    );
    drop(tower);
}

#[test]
fn bitcoind_unreachable_at_start_is_waited_for() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    chain.sim().faults().refuse_rpc(Duration::from_secs(3));
    let tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    assert!(tower.has_log("waiting for bitcoind"));
    let (_user, commitment, penalty) = watched_breach(&chain, &tower, 32);
    breach_is_answered(&chain, &commitment, &penalty);
}

#[test]
fn bitcoind_warming_up_is_waited_for_at_start_and_later() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    chain.sim().faults().warmup(Duration::from_secs(2));
    let tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    assert!(tower.has_log("-28"), "the warm-up answer was seen");
    let (_user, commitment, penalty) = watched_breach(&chain, &tower, 33);
    chain.sim().faults().warmup(Duration::from_secs(2));
    breach_is_answered(&chain, &commitment, &penalty);
}

#[test]
fn bitcoind_restart_with_a_new_cookie_is_followed() {
    let mut chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let (user, commitment, penalty) = watched_breach(&chain, &tower, 34);
    let old_cookie = std::fs::read_to_string(chain.sim().cookie_path()).unwrap();
    chain.restart(true);
    assert_ne!(
        std::fs::read_to_string(chain.sim().cookie_path()).unwrap(),
        old_cookie
    );
    breach_is_answered(&chain, &commitment, &penalty);
    wait_until("dispute_responded", SOON, || {
        matches!(
            user.get(&appointment_for(&commitment, &penalty).locator),
            Ok(GetAppointmentResponse::DisputeResponded(_))
        )
    });
}

#[test]
fn stalled_bitcoind_delays_but_does_not_lose_a_breach() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let (_user, commitment, penalty) = watched_breach(&chain, &tower, 35);
    chain.sim().faults().stall_rpc(Duration::from_secs(2));
    breach_is_answered(&chain, &commitment, &penalty);
}

#[test]
fn wrong_network_is_refused_with_a_clear_message() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    // Duplicate TOML keys are an error, so the regtest line is rewritten rather than overridden.
    let api_port = TowerProcess::configure(&chain, dir.path(), &TowerOptions::default());
    let text = std::fs::read_to_string(dir.path().join("teos.toml")).unwrap();
    std::fs::write(
        dir.path().join("teos.toml"),
        text.replace("btc_network = \"regtest\"", "btc_network = \"testnet\""),
    )
    .unwrap();
    let mut tower = TowerProcess::spawn_with(dir.path(), api_port, &[], &[], "");
    let status = tower.wait_exit(SOON);
    assert!(!status.success());
    assert!(
        tower.has_log("is on network 'regtest' but teosd is configured for 'test'"),
        "{:?}",
        tower.logs()
    );
}
