//! Replays every request of `../shared/spec/bitcoind/rpc.json` (recorded from a real Bitcoin Core
//! on regtest) against the simulator and checks each answer: same HTTP status, same error code
//! (and message), and the same JSON shape (same keys recursively, same JSON types, integers
//! where Core has integers).
//!
//! The chain is rebuilt to be equivalent: the same number of blocks at each step, and, for every
//! transaction of the transcript, one of ours with the same role (a wallet payment, an RBF chain,
//! a child before its parent, a non-final or dust or zero-fee spend, a premature coinbase
//! spend...). Hashes and txids differ from Core's; the test learns the correspondence from the
//! answers (a 64-hex string in a transcript answer ↔ ours at the same place), substitutes it in
//! later requests, and checks every later occurrence is consistent (so `getbestblockhash` after
//! `reconsiderblock` must name *our* equivalent of Core's tip).

mod sim_support;

use std::collections::{HashMap, HashSet};

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, CompressedPublicKey, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
    absolute,
};
use bitcoind_sim::wallet::TestWallet;
use bitcoind_sim::{MINING_SECRET_KEY, Simulator};
use serde_json::{Value, json};
use sim_support::{HttpResponse, cookie, http, start};

const TRANSCRIPT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/spec/bitcoind/rpc.json"
));
/// The address Core's wallet mined to in the transcript; replaced by ours (whose key we hold).
const CORE_MINING_ADDRESS: &str = "bcrt1qcyfda4xwwk3cl3cp79hl29fjmqc48ttstju6cq";
/// Error messages that embed values specific to Core's run (a txid, a size): compared with
/// hashes and digits blanked out.
const VARIABLE_MESSAGES: [usize; 2] = [61, 64];

fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Our transactions standing in for the transcript's, by role.
#[derive(Default)]
struct Txs {
    named: HashMap<&'static str, Transaction>,
    /// Our coins spent by several transactions (an RBF chain).
    coins: HashMap<&'static str, (OutPoint, Amount)>,
}

struct Replay {
    sim: Simulator,
    _dir: tempfile::TempDir,
    wallet: TestWallet,
    key: SecretKey,
    me: ScriptBuf,
    /// Transcript value → ours (hashes learnt from answers, the mining address).
    map: HashMap<String, String>,
    /// Ours already paired with some transcript value.
    mapped_targets: HashSet<String>,
    txs: Txs,
    used_coins: HashSet<OutPoint>,
    failures: Vec<String>,
}

impl Replay {
    fn new() -> Replay {
        let (sim, dir) = start(|_| {});
        let key = SecretKey::from_slice(&MINING_SECRET_KEY).unwrap();
        let mut map = HashMap::new();
        map.insert(
            CORE_MINING_ADDRESS.to_owned(),
            Simulator::mining_address().to_string(),
        );
        Replay {
            me: Simulator::mining_address().script_pubkey(),
            sim,
            _dir: dir,
            wallet: TestWallet::new(7),
            key,
            map,
            mapped_targets: HashSet::new(),
            txs: Txs::default(),
            used_coins: HashSet::new(),
            failures: Vec::new(),
        }
    }

    fn fail(&mut self, index: usize, what: String) {
        self.failures.push(format!("entry {index}: {what}"));
    }

    // ---- transactions ------------------------------------------------------------------

    /// A mature coinbase of ours not used yet.
    fn coin(&mut self) -> (OutPoint, Amount) {
        let scripts: HashSet<ScriptBuf> = [self.me.clone()].into();
        let mut coins: Vec<_> = self
            .sim
            .node()
            .outputs_to(&scripts)
            .into_iter()
            .filter(|o| {
                o.coinbase && o.confirmations >= 100 && !self.used_coins.contains(&o.outpoint)
            })
            .collect();
        coins.sort_by_key(|o| o.height);
        let coin = coins.first().expect("a mature coinbase of ours");
        self.used_coins.insert(coin.outpoint);
        (coin.outpoint, coin.txout.value)
    }

    /// A signed P2WPKH spend of one of our outputs.
    fn spend(
        &self,
        input: (OutPoint, Amount),
        outputs: Vec<TxOut>,
        lock_time: u32,
        sequence: u32,
    ) -> Transaction {
        let mut tx = Transaction {
            version: Version::TWO,
            lock_time: absolute::LockTime::from_consensus(lock_time),
            input: vec![TxIn {
                previous_output: input.0,
                script_sig: ScriptBuf::new(),
                sequence: Sequence(sequence),
                witness: Witness::new(),
            }],
            output: outputs,
        };
        let secp = Secp256k1::new();
        let sighash = SighashCache::new(&tx)
            .p2wpkh_signature_hash(0, &self.me, input.1, EcdsaSighashType::All)
            .unwrap();
        let signature = bitcoin::ecdsa::Signature {
            signature: secp.sign_ecdsa(&Message::from_digest(sighash.to_byte_array()), &self.key),
            sighash_type: EcdsaSighashType::All,
        };
        let public = CompressedPublicKey(self.key.public_key(&secp));
        tx.input[0].witness = Witness::p2wpkh(&signature, &public.0);
        tx
    }

    fn pay_me(&self, sats: u64) -> TxOut {
        TxOut {
            value: Amount::from_sat(sats),
            script_pubkey: self.me.clone(),
        }
    }

    /// Spends `input` back to us minus `fee` satoshis (final, RBF-signalling).
    fn simple(&self, input: (OutPoint, Amount), fee: u64) -> Transaction {
        self.spend(
            input,
            vec![self.pay_me(input.1.to_sat() - fee)],
            0,
            0xffff_fffd,
        )
    }

    fn output0(tx: &Transaction) -> (OutPoint, Amount) {
        (OutPoint::new(tx.compute_txid(), 0), tx.output[0].value)
    }

    fn named(&self, name: &str) -> Transaction {
        self.txs
            .named
            .get(name)
            .unwrap_or_else(|| panic!("no tx {name} yet"))
            .clone()
    }

    fn remember(&mut self, name: &'static str, tx: Transaction) -> Transaction {
        self.txs.named.insert(name, tx.clone());
        tx
    }

    /// The transactions our request carries instead of the transcript's, for entry `index`.
    fn crafted(&mut self, index: usize) -> Option<Vec<Transaction>> {
        let tx = match index {
            37 | 38 | 39 | 43 => self.named("A"),
            49 => {
                let coin = self.coin();
                self.txs.coins.insert("K1", coin);
                let tx = self.simple(coin, 1_000);
                self.remember("R1", tx)
            }
            50 => {
                let tx = self.simple(self.txs.coins["K1"], 2_000);
                self.remember("R2", tx)
            }
            51 => {
                let tx = self.simple(self.txs.coins["K1"], 100_000);
                self.remember("R3", tx)
            }
            54 | 56 => {
                if !self.txs.named.contains_key("P") {
                    let coin = self.coin();
                    let parent = self.simple(coin, 1_000);
                    self.remember("P", parent);
                }
                let child = self.simple(Self::output0(&self.named("P")), 1_000);
                self.remember("C", child)
            }
            55 => self.named("P"),
            57 => {
                let coin = self.coin();
                self.spend(coin, vec![self.pay_me(100_000)], 0, 0xffff_fffd)
            }
            60 => {
                let height = self.sim.node().block_count();
                let input = Self::output0(&self.named("R3"));
                self.spend(
                    input,
                    vec![self.pay_me(input.1.to_sat() - 1_000)],
                    height + 10,
                    0xffff_fffe,
                )
            }
            61 => self.simple(Self::output0(&self.named("R3")), 0),
            62 => {
                let input = Self::output0(&self.named("R3"));
                let outputs = vec![
                    self.pay_me(100),
                    self.pay_me(input.1.to_sat() - 100 - 1_000),
                ];
                self.spend(input, outputs, 0, 0xffff_fffd)
            }
            63 => {
                let tx = self.simple(Self::output0(&self.named("R3")), 100_000);
                self.remember("T63", tx)
            }
            64 => self.simple(Self::output0(&self.named("R3")), 10_000),
            65 | 66 => {
                let tip = self.sim.node().best_block_hash();
                let coinbase = self.sim.node().block(&tip).unwrap().txdata[0].clone();
                self.simple(Self::output0(&coinbase), 1_000)
            }
            67 => {
                let coin = self.coin();
                self.simple(coin, 10_000)
            }
            _ => return None,
        };
        Some(vec![tx])
    }

    // ---- requests and answers ----------------------------------------------------------

    fn substitute(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => {
                Value::String(self.map.get(s).cloned().unwrap_or_else(|| s.clone()))
            }
            Value::Array(items) => Value::Array(items.iter().map(|v| self.substitute(v)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), self.substitute(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn our_request(&mut self, index: usize, request: &Value) -> Value {
        let mut ours = self.substitute(request);
        if let Some(txs) = self.crafted(index) {
            let hexes: Vec<Value> = txs
                .iter()
                .map(|t| Value::String(serialize_hex(t)))
                .collect();
            let params = ours["params"].as_array_mut().unwrap();
            match request["method"].as_str().unwrap() {
                "testmempoolaccept" => params[0] = Value::Array(hexes),
                "generateblock" => params[1] = Value::Array(hexes),
                _ => params[0] = hexes[0].clone(),
            }
        }
        ours
    }

    fn post(&self, path: &str, body: &str) -> HttpResponse {
        http(
            self.sim.rpc_port(),
            "POST",
            path,
            Some(&cookie(&self.sim)),
            body,
        )
        .unwrap()
    }

    /// Pairs 64-hex strings of the transcript's answer with ours; checks known pairs agree.
    fn learn(&mut self, index: usize, theirs: &Value, ours: &Value) {
        match (theirs, ours) {
            (Value::String(t), Value::String(o)) if is_hash(t) => match self.map.get(t) {
                Some(expected) if expected != o => {
                    let what = format!("{t} should be our {expected}, got {o}");
                    self.fail(index, what);
                }
                Some(_) => {}
                None if !self.mapped_targets.contains(o) || t == o => {
                    self.map.insert(t.clone(), o.clone());
                    self.mapped_targets.insert(o.clone());
                }
                None => {}
            },
            (Value::Array(t), Value::Array(o)) => {
                for (t, o) in t.iter().zip(o) {
                    self.learn(index, t, o);
                }
            }
            (Value::Object(t), Value::Object(o)) => {
                for (key, t) in t {
                    let our_key = self.map.get(key).unwrap_or(key);
                    if let Some(o) = o
                        .get(our_key)
                        .or_else(|| (o.len() == 1).then(|| o.values().next()).flatten())
                    {
                        self.learn(index, t, o);
                    }
                }
            }
            _ => {}
        }
    }

    fn check(
        &mut self,
        index: usize,
        expected_status: u64,
        theirs: &Value,
        response: &HttpResponse,
    ) {
        if u64::from(response.status) != expected_status {
            let what = format!(
                "status {} instead of {expected_status}: {}",
                response.status, response.body
            );
            self.fail(index, what);
            return;
        }
        let ours = response.json();
        let mut problems = Vec::new();
        same_shape("$", theirs, &ours, &mut problems);
        for p in problems {
            self.fail(index, p);
        }
        if let (Some(t), Some(o)) = (theirs["error"].as_object(), ours["error"].as_object()) {
            let (tm, om) = (
                t["message"].as_str().unwrap(),
                o["message"].as_str().unwrap_or(""),
            );
            let comparable = |m: &str| -> String {
                if !VARIABLE_MESSAGES.contains(&index) {
                    return m.to_owned();
                }
                let words = m.split(' ').map(|w| {
                    if is_hash(w.trim_end_matches(',')) {
                        "<hash>"
                    } else {
                        w
                    }
                });
                words
                    .collect::<Vec<_>>()
                    .join(" ")
                    .replace(|c: char| c.is_ascii_digit(), "#")
            };
            if t["code"] != o["code"] || comparable(tm) != comparable(om) {
                self.fail(index, format!("error {o:?} instead of {t:?}"));
            }
        }
        self.learn(index, theirs, &ours);
    }

    // ---- the transcript's steps --------------------------------------------------------

    fn replay_request(&mut self, index: usize, entry: &Value) {
        let request = &entry["request"];
        let method = request["method"].as_str().unwrap();
        match method {
            // Wallet RPCs: the simulator has no wallet (see the README); createwallet and
            // getnewaddress have no effect on the node, so they are skipped.
            "createwallet" | "getnewaddress" => return,
            "sendtoaddress" => return self.wallet_payment(index, entry),
            _ => {}
        }
        let ours = self.our_request(index, request);
        let response = self.post("/", &ours.to_string());
        let status = entry["http_status"].as_u64().unwrap();
        self.check(index, status, &entry["response"], &response);
    }

    /// `sendtoaddress` stands for "the wallet pays someone". The first payment (entry 30) is
    /// made by our test wallet and pays us; the second (entry 74) spends that payment's output,
    /// as Core's wallet did, so it is signed by us. Both are broadcast with sendrawtransaction.
    fn wallet_payment(&mut self, index: usize, entry: &Value) {
        let amount = Amount::from_btc(entry["request"]["params"][1].as_f64().unwrap()).unwrap();
        let tx = if index == 30 {
            let tx = self
                .wallet
                .send(&self.sim.node(), &self.me, amount)
                .unwrap();
            self.remember("A", tx)
        } else {
            let input = Self::output0(&self.named("A"));
            let payee = TxOut {
                value: amount,
                script_pubkey: self.wallet.fresh_script(),
            };
            let change = self.pay_me(input.1.to_sat() - amount.to_sat() - 2_820);
            let tx = self.spend(input, vec![change, payee], 0, 0xffff_fffd);
            self.remember("B", tx)
        };
        let body = json!({"jsonrpc": "1.0", "id": "t", "method": "sendrawtransaction", "params": [serialize_hex(&tx)]});
        let response = self.post("/", &body.to_string());
        self.check(index, 200, &entry["response"], &response);
    }

    /// Entry 21: 110 blocks; ours pay the test wallet (5) and us (105) so both can spend.
    fn mine_110(&mut self, entry: &Value) {
        let wallet_script = self.wallet.script_pubkey();
        let mut hashes = self
            .sim
            .node()
            .generate_to_script(5, &wallet_script)
            .unwrap();
        hashes.extend(self.sim.mine(105));
        for (key, ours) in [("first", hashes[0]), ("last", hashes[109])] {
            let theirs = entry[key].as_str().unwrap().to_owned();
            self.map.insert(theirs, ours.to_string());
            self.mapped_targets.insert(ours.to_string());
        }
    }

    fn replay_note(&mut self, index: usize, entry: &Value) {
        let call = |id: Value, method: &str, version: &str| json!({"jsonrpc": version, "id": id, "method": method, "params": []});
        let response = match index {
            13 => return self.wrong_password(entry),
            14 => self.post(
                "/",
                &json!([
                    call(json!(1), "getblockcount", "1.0"),
                    call(json!(2), "nosuchmethod", "1.0")
                ])
                .to_string(),
            ),
            15 => self.post("/", &call(json!(3), "getblockcount", "2.0").to_string()),
            16 => self.post("/", &call(json!(4), "nosuchmethod", "2.0").to_string()),
            17 => {
                let response = self.post("/", "this is not json");
                if response.status != 500
                    || response.body != entry["response_text"].as_str().unwrap()
                {
                    self.fail(index, format!("{} {:?}", response.status, response.body));
                }
                return;
            }
            21 => return self.mine_110(entry),
            _ => panic!("entry {index}: unexpected note {entry}"),
        };
        let status = entry["http_status"].as_u64().unwrap();
        self.check(index, status, &entry["response"], &response);
    }

    fn wrong_password(&mut self, entry: &Value) {
        let body = r#"{"jsonrpc":"1.0","id":"t","method":"getblockcount","params":[]}"#;
        let response = http(
            self.sim.rpc_port(),
            "POST",
            "/",
            Some("__cookie__:wrong"),
            body,
        )
        .unwrap();
        if response.status != 401 || !response.body.is_empty() {
            self.fail(13, format!("{} {:?}", response.status, response.body));
        }
        for name in ["WWW-Authenticate", "Content-Length", "Content-Type"] {
            let expected = entry["headers"][name].as_str();
            if response.header(name) != expected {
                self.fail(
                    13,
                    format!(
                        "header {name}: {:?} instead of {expected:?}",
                        response.header(name)
                    ),
                );
            }
        }
        if response.header("Date").is_none() {
            self.fail(13, "no Date header".into());
        }
    }
}

/// JSON "kinds" as clients see them: integers and floats apart.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Same keys recursively and same kinds; objects keyed by hashes (getrawmempool true) are
/// compared value by value in order; arrays element by element while both have elements.
fn same_shape(path: &str, theirs: &Value, ours: &Value, problems: &mut Vec<String>) {
    if kind(theirs) != kind(ours) {
        problems.push(format!(
            "{path}: {} instead of {} ({ours} vs {theirs})",
            kind(ours),
            kind(theirs)
        ));
        return;
    }
    match (theirs, ours) {
        (Value::Object(t), Value::Object(o)) if t.keys().all(|k| is_hash(k)) && !t.is_empty() => {
            for (i, (tv, ov)) in t.values().zip(o.values()).enumerate() {
                same_shape(&format!("{path}[{i}]"), tv, ov, problems);
            }
        }
        (Value::Object(t), Value::Object(o)) => {
            let tk: Vec<_> = t.keys().collect();
            let ok: Vec<_> = o.keys().collect();
            if tk.iter().collect::<HashSet<_>>() != ok.iter().collect::<HashSet<_>>() {
                problems.push(format!("{path}: keys {ok:?} instead of {tk:?}"));
            }
            for (k, tv) in t {
                if let Some(ov) = o.get(k) {
                    same_shape(&format!("{path}.{k}"), tv, ov, problems);
                }
            }
        }
        (Value::Array(t), Value::Array(o)) => {
            for (i, (tv, ov)) in t.iter().zip(o).enumerate() {
                same_shape(&format!("{path}[{i}]"), tv, ov, problems);
            }
        }
        _ => {}
    }
}

#[test]
fn every_transcript_request_gets_an_answer_shaped_like_core() {
    let entries: Vec<Value> = serde_json::from_str(TRANSCRIPT).unwrap();
    let mut replay = Replay::new();
    let mut replayed = 0;
    for (index, entry) in entries.iter().enumerate() {
        if entry.get("section").is_some() {
            continue;
        }
        if entry.get("request").is_some() {
            replay.replay_request(index, entry);
        } else {
            replay.replay_note(index, entry);
        }
        replayed += 1;
    }
    assert!(replayed > 70, "only {replayed} entries replayed");
    assert!(
        replay.failures.is_empty(),
        "{} differences:\n{}",
        replay.failures.len(),
        replay.failures.join("\n")
    );
}

#[test]
fn shape_comparison_catches_a_missing_key_and_a_float_for_an_integer() {
    let mut problems = Vec::new();
    same_shape(
        "$",
        &json!({"a": 1, "b": [{"c": "x"}]}),
        &json!({"a": 1.5, "b": [{}]}),
        &mut problems,
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
}
