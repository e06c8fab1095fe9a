//! Per-method faults ([`Faults::fail_method`], [`Faults::stall_method`]) as a JSON-RPC client
//! sees them, through the library and through the control endpoint.

mod sim_support;

use std::time::Duration;

use serde_json::{Value, json};
use sim_support::{err, http, ok, start, wait_until};

fn control(port: u16, path: &str, body: &str) -> (u16, Value) {
    let response = http(port, "POST", path, None, body).unwrap();
    (response.status, response.json())
}

#[test]
fn failing_method_answers_cores_error_envelope_the_given_number_of_times() {
    let (sim, _dir) = start(|_| {});
    let hash = sim.mine(1)[0].to_string();
    sim.faults()
        .fail_method("getblock", -1, "Block not available (pruned data)", Some(2));
    for _ in 0..2 {
        assert_eq!(
            err(&sim, "getblock", json!([hash, 0])),
            (500, -1, "Block not available (pruned data)".to_owned())
        );
        // Other methods are untouched.
        assert_eq!(ok(&sim, "getblockcount", json!([])), 1);
    }
    assert!(ok(&sim, "getblock", json!([hash, 0])).is_string());
    assert_eq!(sim.faults().calls("getblock"), 3);
}

#[test]
fn failing_method_without_a_count_fails_until_cleared() {
    let (sim, _dir) = start(|_| {});
    let message =
        "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.";
    sim.faults()
        .fail_method("getrawtransaction", -5, message, None);
    let txid = "00".repeat(32);
    for _ in 0..3 {
        assert_eq!(
            err(&sim, "getrawtransaction", json!([txid])),
            (500, -5, message.to_owned())
        );
    }
    assert!(
        sim.faults().status().methods["getrawtransaction"]
            .fail
            .is_some()
    );
    sim.faults().clear_method("getrawtransaction");
    // Now the node answers: the same -5, from the node this time (txindex on).
    assert_eq!(err(&sim, "getrawtransaction", json!([txid])).1, -5);
    assert!(sim.faults().status().methods.is_empty());
}

#[test]
fn stalled_method_is_held_while_other_methods_answer_then_answered_when_lifted() {
    let (sim, _dir) = start(|_| {});
    sim.mine(1);
    sim.faults()
        .stall_method("getbestblockhash", Duration::from_secs(600));
    let port = sim.rpc_port();
    let cookie = std::fs::read_to_string(sim.cookie_path()).unwrap();
    let held = std::thread::spawn(move || {
        let body = json!({"jsonrpc": "1.0", "id": 1, "method": "getbestblockhash", "params": []});
        http(port, "POST", "/", Some(&cookie), &body.to_string())
            .unwrap()
            .json()
    });
    assert!(wait_until(Duration::from_secs(20), || sim
        .faults()
        .held_calls("getbestblockhash")
        == 1));
    assert_eq!(ok(&sim, "getblockcount", json!([])), 1);
    assert!(!held.is_finished());
    sim.faults().clear();
    let answer = held.join().unwrap();
    assert_eq!(answer["result"], sim.node().best_block_hash().to_string());
    assert_eq!(sim.faults().held_calls("getbestblockhash"), 0);
}

#[test]
fn short_method_stall_ends_by_itself() {
    let (sim, _dir) = start(|_| {});
    let stall = Duration::from_millis(300);
    let before = std::time::Instant::now();
    sim.faults().stall_method("getblockcount", stall);
    assert_eq!(ok(&sim, "getblockcount", json!([])), 0);
    assert!(before.elapsed() >= stall);
}

#[test]
fn control_endpoint_sets_and_lifts_method_faults() {
    let (sim, _dir) = start(|c| c.control_port = Some(0));
    let port = sim.control_port().unwrap();
    let (status, state) = control(
        port,
        "/faults/fail_method",
        r#"{"method": "getblockhash", "code": -8, "message": "Block height out of range", "times": 1}"#,
    );
    assert_eq!(status, 200, "{state}");
    assert_eq!(
        state["faults"]["methods"]["getblockhash"]["fail"],
        json!({"code": -8, "message": "Block height out of range", "times": 1})
    );
    assert_eq!(
        err(&sim, "getblockhash", json!([0])),
        (500, -8, "Block height out of range".to_owned())
    );
    assert!(ok(&sim, "getblockhash", json!([0])).is_string());

    let (status, state) = control(
        port,
        "/faults/stall_method",
        r#"{"method": "getblockcount", "seconds": 600}"#,
    );
    assert_eq!(status, 200);
    assert!(
        state["faults"]["methods"]["getblockcount"]["stall_ms"]
            .as_u64()
            .unwrap()
            > 0
    );
    let (status, state) = control(
        port,
        "/faults/clear_method",
        r#"{"method": "getblockcount"}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(state["faults"]["methods"], json!({}));
    assert_eq!(ok(&sim, "getblockcount", json!([])), 0);

    let (status, _) = control(port, "/faults/fail_method", r#"{"method": "getblock"}"#);
    assert_eq!(status, 400);
    let (status, _) = control(port, "/faults/stall_method", r#"{"seconds": 1}"#);
    assert_eq!(status, 400);
}
