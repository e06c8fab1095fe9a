//! Replays `../shared/spec/bitcoind/mempool.json` (recorded from a real Bitcoin Core v28.99 on
//! regtest: a dispute and its penalty in the mempool, packages, a zero-fee version 3 parent, a
//! replaced parent) against the simulator, and compares every answer and every ZMQ frame.
//!
//! The chain is rebuilt equivalently: 120 blocks, then Core's own transactions with only their
//! funding coinbases swapped for ours (the simulator does not run scripts, so Core's witnesses
//! and output scripts are kept: sizes, fees and addresses are the same as Core's). Every txid,
//! wtxid and block hash of the transcript is mapped to ours as our equivalents appear, and the
//! answers are compared with that mapping: same keys, same values (times excepted), same error
//! codes and messages. ZMQ frames are compared per topic (the recorder's cross-topic order is not
//! reliable): bodies mapped, labels and mempool sequence numbers equal, per-topic counters
//! advancing as Core's. The simulator runs with Core v28's min relay fee (1000 sat/kvB), the
//! version the transcript was recorded with (v30+ uses 100: "0 < 11" instead of "0 < 110").
//! Keys that differ between v28.99 and v31 (the simulator's reference, `rpc.json`) are listed in
//! [`V31_ONLY`] and [`V28_ONLY`] and left out of the comparison.

mod sim_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bitcoin::consensus::encode::{deserialize_hex, serialize, serialize_hex};
use bitcoin::{OutPoint, Transaction};
use bitcoind_sim::Simulator;
use serde_json::Value;
use sim_support::{call, start};

const TRANSCRIPT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/spec/bitcoind/mempool.json"
));

/// Core v28's `-minrelaytxfee` default (satoshis per 1000 vbytes).
const CORE_V28_MIN_RELAY_FEE: u64 = 1_000;
/// The chain height when the transcript's dispute was sent.
const START_HEIGHT: u32 = 120;
/// Keys Core v31 (`rpc.json`, the simulator's reference) answers and v28.99 did not: cluster
/// mempool sizes, `getblock`'s `coinbase_tx`/`target`, testmempoolaccept's `reject-details`.
const V31_ONLY: [&str; 7] = [
    "chunk",
    "chunkweight",
    "vsize_adjusted",
    "vsize_bip141",
    "coinbase_tx",
    "target",
    "reject-details",
];
/// Keys v28.99 answered and v31 dropped (`bip125-replaceable`: full RBF made it meaningless).
const V28_ONLY: [&str; 1] = ["bip125-replaceable"];
/// ZMQ topics the recorder subscribed to.
const TOPICS: [&str; 4] = ["hashblock", "hashtx", "rawtx", "sequence"];

fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One ZMQ message as received (or as recorded).
#[derive(Clone, Debug)]
struct Frame {
    topic: String,
    body: Vec<u8>,
    counter: u32,
}

fn recorded_frames(transcript: &Value) -> (Vec<Frame>, Vec<Frame>) {
    let mut before = Vec::new();
    let mut after = Vec::new();
    let mut started = false;
    for f in transcript["zmq"].as_array().unwrap() {
        if f.get("marker").is_some() {
            started = true;
            continue;
        }
        let counter = hex::decode(f["seq_le_hex"].as_str().unwrap()).unwrap();
        let frame = Frame {
            topic: f["topic"].as_str().unwrap().to_owned(),
            body: hex::decode(f["body_hex"].as_str().unwrap()).unwrap(),
            counter: u32::from_le_bytes(counter.try_into().unwrap()),
        };
        if started {
            after.push(frame);
        } else {
            before.push(frame);
        }
    }
    (before, after)
}

struct Replay {
    sim: Simulator,
    _dir: tempfile::TempDir,
    sub: zmq::Socket,
    /// Core's txids, wtxids and block hashes (display hex) → ours.
    map: HashMap<String, String>,
    /// Our mature coinbase outputs not handed out yet (oldest first).
    coins: Vec<OutPoint>,
    failures: Vec<String>,
}

impl Replay {
    fn new() -> Replay {
        let (sim, dir) = start(|c| c.min_relay_fee_per_kvb = CORE_V28_MIN_RELAY_FEE);
        let endpoint = sim.zmq_endpoint().unwrap();
        let sub = zmq::Context::new().socket(zmq::SUB).unwrap();
        for topic in TOPICS {
            sub.set_subscribe(topic.as_bytes()).unwrap();
        }
        sub.set_rcvtimeo(100).unwrap();
        sub.connect(&endpoint).unwrap();
        // Mine up to the transcript's height, one block at a time until the subscription is
        // active (a SUB socket only gets what is published after it reached the publisher).
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut subscribed = false;
        while sim.node().block_count() < START_HEIGHT {
            sim.mine(1);
            if !subscribed {
                subscribed = receive(&sub).is_some();
                assert!(Instant::now() < deadline, "ZMQ subscription never active");
            }
        }
        assert!(
            subscribed,
            "ZMQ subscription not active by height {START_HEIGHT}"
        );
        while receive(&sub).is_some() {}
        sub.set_rcvtimeo(5_000).unwrap();
        let node = sim.node();
        let coins = (1..=10)
            .map(|h| OutPoint {
                txid: node.block(&node.block_hash(h).unwrap()).unwrap().txdata[0].compute_txid(),
                vout: 0,
            })
            .collect();
        Replay {
            sim,
            _dir: dir,
            sub,
            map: HashMap::new(),
            coins,
            failures: Vec::new(),
        }
    }

    /// Core's transaction with its inputs moved to our equivalents (a coinbase of ours for an
    /// input spending one of Core's coins we have not seen); records the txid/wtxid mapping.
    fn translate(&mut self, core: &Transaction) -> Transaction {
        let mut ours = core.clone();
        for input in &mut ours.input {
            if input.previous_output.is_null() {
                continue;
            }
            let key = input.previous_output.txid.to_string();
            let txid = match self.map.get(&key) {
                Some(t) => t.parse().unwrap(),
                None => {
                    let coin = self.coins.remove(0);
                    self.map.insert(key, coin.txid.to_string());
                    coin.txid
                }
            };
            input.previous_output.txid = txid;
        }
        self.map.insert(
            core.compute_txid().to_string(),
            ours.compute_txid().to_string(),
        );
        self.map.insert(
            core.compute_wtxid().to_string(),
            ours.compute_wtxid().to_string(),
        );
        ours
    }

    /// A request parameter with Core's hashes and transactions replaced by ours.
    fn translate_param(&mut self, value: &Value) -> Value {
        match value {
            Value::String(s) if is_hash(s) => {
                Value::String(self.map.get(s).cloned().unwrap_or_else(|| s.clone()))
            }
            Value::String(s) if s.len() > 64 => match deserialize_hex::<Transaction>(s) {
                Ok(tx) => Value::String(serialize_hex(&self.translate(&tx))),
                Err(_) => value.clone(),
            },
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.translate_param(v)).collect())
            }
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), self.translate_param(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Mines one block standing for Core's `core_hash` (its coinbase for `core_coinbase`).
    fn mine_as(&mut self, core_hash: &str, core_coinbase: &str) {
        let hash = self.sim.mine(1)[0];
        let coinbase = self.sim.node().block(&hash).unwrap().txdata[0].compute_txid();
        self.map.insert(core_hash.to_owned(), hash.to_string());
        self.map
            .insert(core_coinbase.to_owned(), coinbase.to_string());
    }

    fn send(&mut self, core: &Transaction) {
        let ours = self.translate(core);
        let hex = serialize_hex(&ours);
        if let Err(e) = call(&self.sim, "sendrawtransaction", serde_json::json!([hex])) {
            panic!("our equivalent of {} refused: {e:?}", core.compute_txid());
        }
    }

    /// Compares Core's answer with ours (mapped); `ignore` lists keys whose values differ by
    /// nature (times, our coinbase's size).
    fn compare(&mut self, at: &str, core: &Value, ours: &Value, ignore: &[&str]) {
        match (core, ours) {
            (Value::Object(c), Value::Object(o)) => {
                let mapped = |k: &String| self.map.get(k).cloned().unwrap_or_else(|| k.clone());
                let mut ck: Vec<String> = c
                    .keys()
                    .filter(|k| !V28_ONLY.contains(&k.as_str()))
                    .map(mapped)
                    .collect();
                let mut ok: Vec<String> = o
                    .keys()
                    .filter(|k| !V31_ONLY.contains(&k.as_str()))
                    .cloned()
                    .collect();
                ck.sort();
                ok.sort();
                if ck != ok {
                    self.failures
                        .push(format!("{at}: keys {ck:?} (Core) vs {ok:?} (ours)"));
                    return;
                }
                for (k, cv) in c {
                    if ignore.contains(&k.as_str()) || V28_ONLY.contains(&k.as_str()) {
                        continue;
                    }
                    let key = self.map.get(k).cloned().unwrap_or_else(|| k.clone());
                    self.compare(&format!("{at}.{k}"), cv, &o[&key], ignore);
                }
            }
            (Value::Array(c), Value::Array(o)) => {
                if c.len() != o.len() {
                    self.failures.push(format!(
                        "{at}: {} elements (Core) vs {} (ours)",
                        c.len(),
                        o.len()
                    ));
                    return;
                }
                for (i, (cv, ov)) in c.iter().zip(o).enumerate() {
                    self.compare(&format!("{at}[{i}]"), cv, ov, ignore);
                }
            }
            (Value::String(c), Value::String(o)) if is_hash(c) => match self.map.get(c) {
                Some(m) if m == o => {}
                Some(m) => self
                    .failures
                    .push(format!("{at}: {o} but Core's {c} is our {m}")),
                // Not an id (e.g. `chainwork`): equal as it is.
                None if c == o => {}
                None => self
                    .failures
                    .push(format!("{at}: {o} (ours) vs {c} (Core, not mapped)")),
            },
            (Value::Number(c), Value::Number(o)) => {
                let (c, o) = (c.as_f64().unwrap(), o.as_f64().unwrap());
                if (c - o).abs() > 1e-12 {
                    self.failures
                        .push(format!("{at}: {c} (Core) vs {o} (ours)"));
                }
            }
            (c, o) if c == o => {}
            (c, o) => self
                .failures
                .push(format!("{at}: {c} (Core) vs {o} (ours)")),
        }
    }

    /// Our ZMQ messages since the start of the scenario, `n` of them.
    fn our_frames(&self, n: usize) -> Vec<Frame> {
        (0..n)
            .map(|i| receive(&self.sub).unwrap_or_else(|| panic!("ZMQ message {i} of {n} missing")))
            .collect()
    }
}

fn receive(socket: &zmq::Socket) -> Option<Frame> {
    let parts = socket.recv_multipart(0).ok()?;
    assert_eq!(parts.len(), 3, "a ZMQ message has three frames");
    Some(Frame {
        topic: String::from_utf8(parts[0].clone()).unwrap(),
        body: parts[1].clone(),
        counter: u32::from_le_bytes(parts[2].as_slice().try_into().expect("4-byte counter")),
    })
}

/// A hash as a ZMQ body carries it (display order) in hex.
fn display_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn core_tx_from_frames(frames: &[Frame], txid: &str) -> Transaction {
    frames
        .iter()
        .filter(|f| f.topic == "rawtx")
        .map(|f| bitcoin::consensus::encode::deserialize::<Transaction>(&f.body).unwrap())
        .find(|t| t.compute_txid().to_string() == txid)
        .unwrap_or_else(|| panic!("{txid} is not among the recorded rawtx frames"))
}

#[test]
fn mempool_transcript_replays_with_core_answers_and_frames() {
    let transcript: Value = serde_json::from_str(TRANSCRIPT).unwrap();
    let entries = transcript["rpc"].as_array().unwrap().clone();
    let (before, after) = recorded_frames(&transcript);
    let mut r = Replay::new();

    // Core's blocks (and their coinbases) from the first `C` after the scenario began, and the
    // block the chain stood on before it (height 120).
    let blocks: Vec<String> = after
        .iter()
        .filter(|f| f.topic == "sequence" && f.body.last() == Some(&b'C'))
        .map(|f| display_hex(&f.body[..32]))
        .collect();
    let coinbases: Vec<String> = after
        .iter()
        .filter(|f| f.topic == "rawtx")
        .map(|f| bitcoin::consensus::encode::deserialize::<Transaction>(&f.body).unwrap())
        .filter(Transaction::is_coinbase)
        .map(|t| t.compute_txid().to_string())
        .collect();
    assert_eq!((blocks.len(), coinbases.len()), (5, 5));
    let tip_before = before
        .iter()
        .rev()
        .find(|f| f.topic == "sequence")
        .map(|f| display_hex(&f.body[..32]))
        .unwrap();
    let our_tip = r.sim.node().best_block_hash().to_string();
    r.map.insert(tip_before, our_tip);

    let mut mined = 0;
    for (i, entry) in entries.iter().enumerate() {
        let section = entry["section"].as_str().unwrap();
        let method = entry["request"]["method"].as_str().unwrap();
        let first_of_section = i == 0 || entries[i - 1]["section"] != entry["section"];
        // What happened between the recorded calls (from the ZMQ markers and frames).
        if first_of_section {
            let (blocks_before, extra): (usize, Option<Transaction>) = match section {
                "1 mined together" => (1, None),
                "2 package parent known" => {
                    let hex = entry["request"]["params"][0][0].as_str().unwrap();
                    (1, Some(deserialize_hex(hex).unwrap()))
                }
                "2 package errors" => (1, None),
                "3 replaced" => {
                    let parent = core_tx_from_frames(
                        &after,
                        "12c613e7f94e1262e2ab0540ec4eae256fc21195394b7dbc3005cd3358065e51",
                    );
                    (1, Some(parent))
                }
                _ => (0, None),
            };
            for _ in 0..blocks_before {
                r.mine_as(&blocks[mined], &coinbases[mined]);
                mined += 1;
            }
            if let Some(tx) = extra {
                r.send(&tx);
            }
        }
        let params = r.translate_param(&entry["request"]["params"]);
        let at = format!("entry {i} ({section}, {method})");
        let response = &entry["response"];
        match (call(&r.sim, method, params), response["error"].is_null()) {
            (Ok(ours), true) => {
                let ignore: &[&str] = match method {
                    "getblock" => &[
                        "time",
                        "mediantime",
                        "nonce",
                        "merkleroot",
                        "size",
                        "strippedsize",
                        "weight",
                    ],
                    "getrawtransaction" => &["hex", "time", "blocktime"],
                    _ => &["time"],
                };
                r.compare(&at, &response["result"], &ours, ignore);
            }
            (Err((_, e)), false) => {
                let core = &response["error"];
                if (e["code"].clone(), e["message"].clone())
                    != (core["code"].clone(), core["message"].clone())
                {
                    r.failures
                        .push(format!("{at}: error {e} (ours) vs {core} (Core)"));
                }
            }
            (Ok(ours), false) => r
                .failures
                .push(format!("{at}: answered {ours}, Core: {response}")),
            (Err(e), true) => r
                .failures
                .push(format!("{at}: error {e:?}, Core: {response}")),
        }
    }
    // The last recorded block (it confirmed the replacement).
    r.mine_as(&blocks[mined], &coinbases[mined]);
    mined += 1;
    assert_eq!(mined, blocks.len());

    // ZMQ, topic by topic.
    let ours = r.our_frames(after.len());
    for topic in TOPICS {
        let core: Vec<&Frame> = after.iter().filter(|f| f.topic == topic).collect();
        let mine: Vec<&Frame> = ours.iter().filter(|f| f.topic == topic).collect();
        if core.len() != mine.len() {
            r.failures.push(format!(
                "zmq {topic}: {} frames (Core) vs {} (ours)",
                core.len(),
                mine.len()
            ));
            continue;
        }
        for (k, (c, o)) in core.iter().zip(&mine).enumerate() {
            let at = format!("zmq {topic} #{k}");
            if c.counter - core[0].counter != o.counter - mine[0].counter {
                r.failures.push(format!("{at}: counter step differs"));
            }
            match topic {
                "rawtx" => {
                    let tx: Transaction = bitcoin::consensus::encode::deserialize(&c.body).unwrap();
                    if tx.is_coinbase() {
                        let our_tx: Transaction =
                            bitcoin::consensus::encode::deserialize(&o.body).unwrap();
                        if !our_tx.is_coinbase() {
                            r.failures.push(format!("{at}: not a coinbase"));
                        }
                    } else if serialize(&r.translate(&tx)) != o.body {
                        r.failures.push(format!("{at}: body differs"));
                    }
                }
                _ => {
                    let hash = display_hex(&c.body[..32]);
                    let expected = r.map.get(&hash).cloned().unwrap_or(hash);
                    if display_hex(&o.body[..32]) != expected || c.body[32..] != o.body[32..] {
                        r.failures.push(format!(
                            "{at}: {} (ours) vs {expected}{} (Core, mapped)",
                            hex::encode(&o.body),
                            hex::encode(&c.body[32..])
                        ));
                    }
                }
            }
        }
    }
    assert!(
        r.failures.is_empty(),
        "{} differences:\n{}",
        r.failures.len(),
        r.failures.join("\n")
    );
}
