//! The `Simulator` lifecycle: restarts on the same ports with a new cookie, with and without the
//! mempool; the `stop` RPC; stop deleting the cookie; use from async tests.

mod sim_support;

use std::net::TcpStream;
use std::time::Duration;

use bitcoin::Amount;
use bitcoin::consensus::encode::serialize_hex;
use bitcoind_sim::wallet::TestWallet;
use bitcoind_sim::{SimConfig, Simulator};
use serde_json::json;
use sim_support::{call, cookie, http, ok, start, wait_until};

/// Puts one wallet payment in the mempool; returns its txid.
fn mempool_tx(sim: &Simulator) -> String {
    let wallet = TestWallet::new(3);
    wallet.fund(&sim.node(), 1).unwrap();
    let tx = wallet
        .send(
            &sim.node(),
            &wallet.fresh_script(),
            Amount::from_sat(50_000),
        )
        .unwrap();
    let txid = ok(sim, "sendrawtransaction", json!([serialize_hex(&tx)]));
    txid.as_str().unwrap().to_owned()
}

#[test]
fn restart_keeps_ports_chain_and_mempool_and_changes_the_cookie() {
    let (sim, _dir) = start(|_| {});
    let (rpc_port, zmq) = (sim.rpc_port(), sim.zmq_endpoint());
    let txid = mempool_tx(&sim);
    let tip = ok(&sim, "getbestblockhash", json!([]));
    let old_cookie = cookie(&sim);

    let sim = sim.restart(true).unwrap();
    assert_eq!((sim.rpc_port(), sim.zmq_endpoint()), (rpc_port, zmq));
    assert_ne!(cookie(&sim), old_cookie);
    let body = r#"{"id":1,"method":"getblockcount"}"#;
    assert_eq!(
        http(rpc_port, "POST", "/", Some(&old_cookie), body)
            .unwrap()
            .status,
        401
    );
    assert_eq!(ok(&sim, "getbestblockhash", json!([])), tip);
    assert_eq!(ok(&sim, "getrawmempool", json!([])), json!([txid]));
}

#[test]
fn restart_without_mempool_comes_back_empty_and_stays_empty() {
    let (sim, _dir) = start(|_| {});
    mempool_tx(&sim);
    let sim = sim.restart(false).unwrap();
    assert_eq!(ok(&sim, "getrawmempool", json!([])), json!([]));
    let sim = sim.restart(true).unwrap();
    assert_eq!(
        ok(&sim, "getrawmempool", json!([])),
        json!([]),
        "no stale mempool.dat"
    );
}

#[test]
fn stop_rpc_answers_then_shuts_down_deletes_the_cookie_and_restart_revives() {
    let (sim, _dir) = start(|_| {});
    let port = sim.rpc_port();
    assert_eq!(ok(&sim, "stop", json!([])), "Bitcoin Core stopping");
    assert!(sim.wait_for_stop_request(Some(Duration::from_secs(20))));
    assert!(wait_until(Duration::from_secs(20), || !sim.is_running()));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!sim.cookie_path().exists());
    // A restart brings it back and forgets the old stop request.
    let sim = sim.restart(true).unwrap();
    assert!(!sim.wait_for_stop_request(Some(Duration::from_millis(50))));
    assert_eq!(ok(&sim, "getblockcount", json!([])), 0);
    sim.stop().unwrap();
}

#[test]
fn stop_closes_the_port_and_deletes_the_cookie_and_the_chain_survives() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(SimConfig::new(dir.path())).unwrap();
    let port = sim.rpc_port();
    let cookie_path = sim.cookie_path();
    let hashes = sim.mine(3);
    sim.stop().unwrap();
    assert!(!cookie_path.exists());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());

    let mut config = SimConfig::new(dir.path());
    config.rpc_port = port;
    let sim = Simulator::start(config).unwrap();
    assert_eq!(sim.rpc_port(), port);
    assert_eq!(
        ok(&sim, "getbestblockhash", json!([])),
        hashes[2].to_string()
    );
}

#[test]
fn no_wait_for_stop_request_without_a_stop_rpc() {
    let (sim, _dir) = start(|_| {});
    assert!(!sim.wait_for_stop_request(Some(Duration::from_millis(50))));
    assert!(call(&sim, "getblockcount", json!([])).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_starts_and_drops_inside_an_async_test() {
    let (sim, _dir) = start(|_| {});
    let url = format!("{}/", sim.rpc_url());
    let response = reqwest::Client::new()
        .post(url)
        .basic_auth(
            "__cookie__",
            Some(cookie(&sim).trim_start_matches("__cookie__:")),
        )
        .body(r#"{"jsonrpc":"1.0","id":"t","method":"getblockcount","params":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "{\"result\":0,\"error\":null,\"id\":\"t\"}\n"
    );
    drop(sim);
}
