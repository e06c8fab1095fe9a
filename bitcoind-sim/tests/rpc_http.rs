//! The HTTP/JSON-RPC surface over real sockets: authentication, envelopes, batches, status codes
//! (transcript entries 9-17 of `../shared/spec/bitcoind/rpc.json`).

mod sim_support;

use std::time::Duration;

use serde_json::{Value, json};
use sim_support::{call, cookie, err, http, ok, post, start, wait_until};

#[test]
fn cookie_authenticates_and_wrong_password_gets_401_with_core_headers() {
    let (sim, _dir) = start(|_| {});
    let cookie = cookie(&sim);
    assert!(cookie.starts_with("__cookie__:"));
    assert_eq!(cookie.len(), "__cookie__:".len() + 64);
    let body = r#"{"jsonrpc":"1.0","id":"t","method":"getblockcount","params":[]}"#;

    let good = http(sim.rpc_port(), "POST", "/", Some(&cookie), body).unwrap();
    assert_eq!(good.status, 200);
    assert_eq!(good.json(), json!({"result": 0, "error": null, "id": "t"}));
    assert_eq!(good.header("content-type"), Some("application/json"));

    let wrong = http(sim.rpc_port(), "POST", "/", Some("__cookie__:nope"), body).unwrap();
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body, "");
    assert_eq!(
        wrong.header("www-authenticate"),
        Some("Basic realm=\"jsonrpc\"")
    );
    assert_eq!(
        wrong.header("content-type"),
        Some("text/html; charset=ISO-8859-1")
    );
    assert_eq!(wrong.header("content-length"), Some("0"));
    assert!(wrong.header("date").is_some());

    let missing = http(sim.rpc_port(), "POST", "/", None, body).unwrap();
    assert_eq!(missing.status, 401);
}

#[test]
fn rpcuser_and_rpcpassword_work_beside_the_cookie() {
    let (sim, _dir) = start(|c| c.rpc_auth = Some(("alice".into(), "secret".into())));
    let body = r#"{"id":1,"method":"getblockcount"}"#;
    assert_eq!(
        http(sim.rpc_port(), "POST", "/", Some("alice:secret"), body)
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        http(sim.rpc_port(), "POST", "/", Some(&cookie(&sim)), body)
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        http(sim.rpc_port(), "POST", "/", Some("alice:wrong"), body)
            .unwrap()
            .status,
        401
    );
}

#[test]
fn body_that_is_not_json_is_500_with_core_text() {
    let (sim, _dir) = start(|_| {});
    let response = post(&sim, "this is not json");
    assert_eq!(response.status, 500);
    assert_eq!(
        response.body,
        "{\"result\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error\"},\"id\":null}\n"
    );
}

#[test]
fn unknown_method_is_404_in_v1_and_200_in_v2() {
    let (sim, _dir) = start(|_| {});
    let v1 = post(
        &sim,
        r#"{"jsonrpc":"1.0","id":"t","method":"nosuchmethod","params":[]}"#,
    );
    assert_eq!(v1.status, 404);
    assert_eq!(
        v1.json(),
        json!({"result": null, "error": {"code": -32601, "message": "Method not found"}, "id": "t"})
    );
    let v2 = post(&sim, r#"{"jsonrpc":"2.0","id":4,"method":"nosuchmethod"}"#);
    assert_eq!(v2.status, 200);
    assert_eq!(
        v2.json(),
        json!({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 4})
    );
    let v2_ok = post(&sim, r#"{"jsonrpc":"2.0","id":3,"method":"getblockcount"}"#);
    assert_eq!(v2_ok.status, 200);
    assert_eq!(
        v2_ok.json(),
        json!({"jsonrpc": "2.0", "result": 0, "id": 3})
    );
}

#[test]
fn batch_is_answered_with_an_array_and_http_200() {
    let (sim, _dir) = start(|_| {});
    let body = r#"[{"jsonrpc":"1.0","id":1,"method":"getblockcount","params":[]},{"jsonrpc":"1.0","id":2,"method":"nosuchmethod","params":[]}]"#;
    let response = post(&sim, body);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.json(),
        json!([
            {"result": 0, "error": null, "id": 1},
            {"result": null, "error": {"code": -32601, "message": "Method not found"}, "id": 2}
        ])
    );
}

#[test]
fn notification_gets_204_and_get_gets_405() {
    let (sim, _dir) = start(|_| {});
    let notification = post(&sim, r#"{"jsonrpc":"2.0","method":"getblockcount"}"#);
    assert_eq!(notification.status, 204);
    let get = http(sim.rpc_port(), "GET", "/", Some(&cookie(&sim)), "").unwrap();
    assert_eq!(get.status, 405);
    assert_eq!(get.body, "JSONRPC server handles only POST requests");
}

#[test]
fn wallet_path_serves_node_methods_and_rejects_wallet_methods() {
    let (sim, _dir) = start(|_| {});
    let body = r#"{"jsonrpc":"1.0","id":"t","method":"getblockcount","params":[]}"#;
    let response = http(
        sim.rpc_port(),
        "POST",
        "/wallet/w",
        Some(&cookie(&sim)),
        body,
    )
    .unwrap();
    assert_eq!(response.json()["result"], 0);
    let body = r#"{"jsonrpc":"1.0","id":"t","method":"getnewaddress","params":[]}"#;
    let response = http(
        sim.rpc_port(),
        "POST",
        "/wallet/w",
        Some(&cookie(&sim)),
        body,
    )
    .unwrap();
    assert_eq!(response.status, 404);
    assert_eq!(response.json()["error"]["code"], -32601);
}

#[test]
fn parameter_errors_have_core_codes_and_messages() {
    let (sim, _dir) = start(|_| {});
    let (status, code, message) = err(&sim, "getblockhash", json!(["notanumber"]));
    assert_eq!((status, code), (500, -3));
    assert_eq!(
        message,
        "Wrong type passed:\n{\n    \"Position 1 (height)\": \"JSON value of type string is not of expected type number\"\n}"
    );
    let (_, code, message) = err(&sim, "getblockhash", json!([]));
    assert_eq!(code, -1);
    assert!(message.starts_with("getblockhash height\n"), "{message}");
    assert_eq!(err(&sim, "getblockhash", json!([99999])).1, -8);
    let (_, code, message) = err(&sim, "getblock", json!(["00".repeat(32)]));
    assert_eq!((code, message.as_str()), (-5, "Block not found"));
    let (_, code, message) = err(&sim, "getblock", json!(["abc"]));
    assert_eq!(
        (code, message.as_str()),
        (-8, "blockhash must be of length 64 (not 3, for 'abc')")
    );
}

#[test]
fn named_parameters_are_accepted() {
    let (sim, _dir) = start(|_| {});
    let genesis = ok(&sim, "getblockhash", json!({"height": 0}));
    let header = ok(
        &sim,
        "getblockheader",
        json!({"blockhash": genesis, "verbose": false}),
    );
    assert_eq!(header.as_str().map(str::len), Some(160));
}

#[test]
fn configured_warmup_answers_minus_28_to_every_call() {
    let (sim, _dir) = start(|c| c.warmup = Duration::from_secs(120));
    let (status, code, message) = err(&sim, "getblockcount", json!([]));
    assert_eq!((status, code), (500, -28));
    assert_eq!(message, "Loading block index…");
    assert_eq!(err(&sim, "nosuchmethod", json!([])).1, -28);
    // The startup warm-up belongs to the run, not to the fault switchboard.
    sim.faults().clear();
    assert_eq!(err(&sim, "getblockcount", json!([])).1, -28);
}

#[test]
fn configured_warmup_ends_by_itself() {
    let (sim, _dir) = start(|c| c.warmup = Duration::from_millis(500));
    assert!(wait_until(Duration::from_secs(20), || call(
        &sim,
        "getblockcount",
        json!([])
    )
    .is_ok()));
}

#[test]
fn fresh_node_answers_like_a_fresh_regtest_bitcoind() {
    let (sim, _dir) = start(|_| {});
    let info = ok(&sim, "getblockchaininfo", json!([]));
    assert_eq!(info["chain"], "regtest");
    assert_eq!(info["blocks"], 0);
    assert_eq!(
        info["bestblockhash"],
        "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    );
    assert_eq!(info["bits"], "207fffff");
    // Same text as Core (16 significant digits); compared as text because serde_json's default
    // float parser is not correctly rounded.
    let raw = post(&sim, r#"{"id":1,"method":"getblockchaininfo"}"#).body;
    assert!(
        raw.contains("\"difficulty\":4.656542373906925e-10"),
        "{raw}"
    );
    assert_eq!(info["initialblockdownload"], true);
    assert_eq!(ok(&sim, "getblockhash", json!([0])), info["bestblockhash"]);
    let fee = ok(&sim, "estimatesmartfee", json!([6]));
    assert_eq!(
        fee,
        json!({"errors": ["Insufficient data or no feerate found"], "blocks": 0})
    );
    assert!(matches!(
        call(&sim, "uptime", json!([])),
        Ok(Value::Number(_))
    ));
}
