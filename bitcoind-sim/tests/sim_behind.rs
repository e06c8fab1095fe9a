//! A restart that comes back behind ([`Simulator::restart_behind`]), catching up again with
//! [`Node::reconnect_stored`]; and the chain views Core gives of blocks off the active chain
//! (`getchaintips` "invalid", `getblockheader` `confirmations` -1).

mod sim_support;

use bitcoind_sim::node::NodeEvent;
use serde_json::{Value, json};
use sim_support::{cookie, err, http, ok, start};

fn chainwork_of(sim: &bitcoind_sim::Simulator, hash: &str) -> Value {
    ok(sim, "getblockheader", json!([hash]))["chainwork"].clone()
}

#[test]
fn restart_behind_hides_the_blocks_above_then_reconnects_them_with_the_same_hashes() {
    let (sim, _dir) = start(|_| {});
    let hashes: Vec<String> = sim.mine(20).iter().map(ToString::to_string).collect();
    let old_tip_work = ok(&sim, "getblockchaininfo", json!([]))["chainwork"].clone();
    let work_at_12 = chainwork_of(&sim, &hashes[11]);
    let old_cookie = cookie(&sim);

    let sim = sim.restart_behind(12).unwrap();
    assert_ne!(cookie(&sim), old_cookie, "a new cookie, as at every start");
    let info = ok(&sim, "getblockchaininfo", json!([]));
    assert_eq!(
        (info["blocks"].clone(), info["headers"].clone()),
        (json!(12), json!(12))
    );
    assert_eq!(info["bestblockhash"], json!(hashes[11]));
    assert_eq!(info["chainwork"], work_at_12);
    assert_eq!(chainwork_of(&sim, &hashes[11]), work_at_12);
    assert_eq!(
        ok(&sim, "getblockheader", json!([hashes[11]]))["confirmations"],
        1
    );
    // Above: unknown, as for any block the node never saw.
    assert_eq!(
        err(&sim, "getblockheader", json!([hashes[12]])),
        (500, -5, "Block not found".to_owned())
    );
    assert_eq!(err(&sim, "getblock", json!([hashes[19], 0])).1, -5);
    assert_eq!(
        err(&sim, "getblockhash", json!([13])),
        (500, -8, "Block height out of range".to_owned())
    );
    assert_eq!(sim.node().held_back_blocks(), 8);

    // Catching up: the same blocks come back, published as connected.
    let events = sim.node().subscribe();
    let back = sim.node().reconnect_stored(3).unwrap();
    let back: Vec<String> = back.iter().map(ToString::to_string).collect();
    assert_eq!(back, hashes[12..15]);
    assert_eq!(ok(&sim, "getblockcount", json!([])), 15);
    assert_eq!(
        chainwork_of(&sim, &hashes[14]),
        ok(&sim, "getblockchaininfo", json!([]))["chainwork"]
    );
    let connected: Vec<String> = events
        .try_iter()
        .filter_map(|e| match e {
            NodeEvent::BlockConnected { hash, .. } => Some(hash.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(connected, hashes[12..15]);

    sim.node().reconnect_stored(100).unwrap();
    assert_eq!(sim.node().held_back_blocks(), 0);
    let info = ok(&sim, "getblockchaininfo", json!([]));
    assert_eq!(info["bestblockhash"], json!(hashes[19]));
    assert_eq!(info["chainwork"], old_tip_work);
    // And it grows past the old tip.
    sim.mine(1);
    assert_eq!(ok(&sim, "getblockcount", json!([])), 21);
}

#[test]
fn blocks_handed_back_keep_their_invalidation() {
    let (sim, _dir) = start(|_| {});
    let old: Vec<_> = sim.mine(6);
    sim.node().invalidate_block(&old[4]).unwrap();
    let other = bitcoind_sim::wallet::TestWallet::new(5);
    let new = sim
        .node()
        .generate_to_script(3, &other.script_pubkey())
        .unwrap();
    let sim = sim.restart_behind(3).unwrap();
    sim.node().reconnect_stored(100).unwrap();
    assert_eq!(sim.node().best_block_hash(), new[2]);
    let tips = ok(&sim, "getchaintips", json!([]));
    assert!(
        tips.as_array()
            .unwrap()
            .iter()
            .any(|t| t["hash"] == json!(old[5].to_string()) && t["status"] == "invalid"),
        "{tips}"
    );
}

#[test]
fn invalidated_branch_is_an_invalid_chain_tip_and_its_blocks_have_minus_one_confirmations() {
    let (sim, _dir) = start(|_| {});
    let old = sim.mine(5);
    ok(&sim, "invalidateblock", json!([old[2].to_string()]));
    let other = bitcoind_sim::wallet::TestWallet::new(6);
    sim.node()
        .generate_to_script(4, &other.script_pubkey())
        .unwrap();
    let tips = ok(&sim, "getchaintips", json!([]));
    assert_eq!(
        tips[1],
        json!({"height": 5, "hash": old[4].to_string(), "branchlen": 3, "status": "invalid"})
    );
    assert_eq!(tips[0]["status"], "active");
    for hash in &old[2..] {
        assert_eq!(
            ok(&sim, "getblockheader", json!([hash.to_string()]))["confirmations"],
            -1
        );
    }
    assert_eq!(
        ok(&sim, "getblockheader", json!([old[1].to_string()]))["confirmations"],
        5
    );
}

#[test]
fn control_endpoint_restarts_behind_and_reconnects() {
    let (sim, _dir) = start(|c| c.control_port = Some(0));
    let port = sim.control_port().unwrap();
    let hashes = sim.mine(4);
    let post = |path: &str, body: &str| {
        let response = http(port, "POST", path, None, body).unwrap();
        (response.status, response.json())
    };
    let (status, state) = post("/restart", r#"{"visible_height": 2}"#);
    assert_eq!((status, state["running"].clone()), (200, json!(true)));
    assert_eq!(ok(&sim, "getblockcount", json!([])), 2);
    let (status, back) = post("/reconnect", r#"{"blocks": 2}"#);
    assert_eq!(status, 200);
    assert_eq!(
        back["blocks"],
        json!([hashes[2].to_string(), hashes[3].to_string()])
    );
    assert_eq!(ok(&sim, "getblockcount", json!([])), 4);
}
