//! Injected faults through the library API and through the control endpoint: stalled RPC,
//! refused connections, -28 warm-up, restarts.

mod sim_support;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sim_support::{answers, cookie, err, http, ok, start, wait_until};

fn refused(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[test]
fn stalled_request_is_held_until_the_stall_ends_then_answered() {
    let (sim, _dir) = start(|_| {});
    let stall = Duration::from_millis(800);
    let before = Instant::now();
    sim.faults().stall_rpc(stall);
    assert_eq!(ok(&sim, "getblockcount", json!([])), 0);
    assert!(
        before.elapsed() >= stall,
        "answered after {:?}",
        before.elapsed()
    );
}

#[test]
fn refused_rpc_closes_the_port_and_open_connections_until_cleared() {
    let (sim, _dir) = start(|_| {});
    let port = sim.rpc_port();
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    sim.faults().refuse_rpc(Duration::from_secs(300));
    assert!(wait_until(Duration::from_secs(20), || refused(port)));
    // The connection opened before the refusal is closed too (EOF or reset, not a hang).
    let mut buf = [0u8; 1];
    assert!(matches!(idle.read(&mut buf), Ok(0) | Err(_)));
    assert!(sim.faults().status().refuse_rpc_ms > 0);
    sim.faults().clear();
    assert!(wait_until(Duration::from_secs(20), || answers(
        &sim,
        "getblockcount"
    )));
    assert_eq!(sim.rpc_port(), port);
}

#[test]
fn short_refusal_ends_by_itself() {
    let (sim, _dir) = start(|_| {});
    sim.faults().refuse_rpc(Duration::from_millis(300));
    assert!(wait_until(Duration::from_secs(20), || answers(
        &sim,
        "getblockcount"
    )));
}

#[test]
fn warmup_fault_answers_minus_28_until_cleared() {
    let (sim, _dir) = start(|_| {});
    sim.faults().warmup(Duration::from_secs(300));
    let (status, code, message) = err(&sim, "getbestblockhash", json!([]));
    assert_eq!(
        (status, code, message.as_str()),
        (500, -28, "Loading block index…")
    );
    sim.faults().clear();
    assert!(ok(&sim, "getbestblockhash", json!([])).is_string());
}

fn control(port: u16, method: &str, path: &str, body: &str) -> (u16, Value) {
    let response = http(port, method, path, None, body).unwrap();
    (response.status, response.json())
}

#[test]
fn control_endpoint_injects_faults_mines_and_restarts() {
    let (sim, _dir) = start(|c| c.control_port = Some(0));
    let port = sim.control_port().unwrap();

    let (status, state) = control(port, "GET", "/status", "");
    assert_eq!(status, 200);
    assert_eq!(state["rpc_port"], sim.rpc_port());
    assert_eq!(state["running"], true);

    let (status, state) = control(port, "POST", "/faults/warmup", r#"{"seconds": 300}"#);
    assert_eq!(status, 200);
    assert!(state["faults"]["warmup_ms"].as_u64().unwrap() > 0);
    assert_eq!(err(&sim, "getblockcount", json!([])).1, -28);
    control(port, "POST", "/faults/clear", "");
    assert_eq!(ok(&sim, "getblockcount", json!([])), 0);

    let (status, mined) = control(port, "POST", "/mine", r#"{"blocks": 2}"#);
    assert_eq!(status, 200);
    assert_eq!(mined["blocks"].as_array().unwrap().len(), 2);
    assert_eq!(ok(&sim, "getbestblockhash", json!([])), mined["blocks"][1]);

    let (status, state) = control(port, "POST", "/faults/drop_zmq", r#"{"count": 4}"#);
    assert_eq!(
        (status, state["faults"]["drop_zmq_next"].as_u64()),
        (200, Some(4))
    );
    let body = r#"{"count": 2, "topic": "sequence"}"#;
    let (status, state) = control(port, "POST", "/faults/drop_zmq", body);
    assert_eq!(
        (
            status,
            state["faults"]["drop_zmq_topics"]["sequence"].as_u64()
        ),
        (200, Some(2))
    );
    let body = r#"{"count": 2, "topic": "nosuchtopic"}"#;
    assert_eq!(control(port, "POST", "/faults/drop_zmq", body).0, 400);

    let old_cookie = cookie(&sim);
    let (status, state) = control(port, "POST", "/restart", r#"{"keep_mempool": false}"#);
    assert_eq!((status, state["running"].as_bool()), (200, Some(true)));
    assert_ne!(cookie(&sim), old_cookie);
    assert_eq!(ok(&sim, "getblockcount", json!([])), 2);

    let (status, body) = control(port, "POST", "/faults/stall", r#"{"seconds": -1}"#);
    assert_eq!(status, 400, "{body}");
    let (status, _) = control(port, "POST", "/faults/nosuchfault", "");
    assert_eq!(status, 404);
}
