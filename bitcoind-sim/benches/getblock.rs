//! What the simulator costs per block RPC: mines one big block (4,000 transactions by default,
//! about 892 kB, like `teos-bench chain`'s) in an in-process simulator, then calls `getblock <hash>
//! 0`, `getblock <hash> 1`, `getblockheader`, `getblockhash`, `getblockcount` and
//! `getrawtransaction <last txid> false <hash>` many times on one keep-alive connection, and prints per call the wall time (request written → whole body read)
//! and the CPU time of the whole process (server and this client) from `/proc/self/stat`.
//!
//! `cargo bench -p bitcoind-sim --bench getblock [-- TXS CALLS]`. Not a test: numbers depend on the
//! machine and its load.

#[path = "../tests/sim_support/big_block.rs"]
mod big_block;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine;
use bitcoin::BlockHash;
use bitcoind_sim::json::hex_str::consensus_hex_json;
use bitcoind_sim::node::Node;
use bitcoind_sim::{SimConfig, Simulator};

const USER: &str = "bench";
const PASSWORD: &str = "bench";

/// A keep-alive HTTP/1.1 connection speaking just enough for JSON-RPC answers with a
/// `Content-Length` (what the simulator sends).
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    port: u16,
    auth: String,
}

impl Connection {
    fn open(port: u16) -> Connection {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
        Connection {
            reader: BufReader::with_capacity(1 << 16, stream.try_clone().expect("clone")),
            writer: stream,
            port,
            auth,
        }
    }

    /// POSTs `body` to `/` and returns the answer's body.
    fn post(&mut self, body: &str) -> Vec<u8> {
        let request = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Basic {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.port,
            self.auth,
            body.len()
        );
        self.writer.write_all(request.as_bytes()).expect("write");
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("read head");
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((name, value)) = trimmed.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().expect("content-length");
            }
        }
        let mut answer = vec![0u8; length];
        self.reader.read_exact(&mut answer).expect("read body");
        answer
    }
}

/// CPU time (user + system) of this process so far, from `/proc/self/stat` (clock ticks of 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

fn time_calls(name: &str, connection: &mut Connection, body: &str, calls: usize) {
    let expected_len = connection.post(body).len();
    let mut walls = Vec::with_capacity(calls);
    let cpu_before = process_cpu();
    let started = Instant::now();
    for _ in 0..calls {
        let t = Instant::now();
        let answer = connection.post(body);
        walls.push(t.elapsed());
        assert_eq!(answer.len(), expected_len, "{name}: answer changed");
    }
    let total = started.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    walls.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{name:<24} {expected_len:>9} B  wall min {:.3} ms  p50 {:.3} ms  p90 {:.3} ms  mean {:.3} ms  process CPU/call {:.3} ms",
        ms(walls[0]),
        ms(walls[calls / 2]),
        ms(walls[calls * 9 / 10]),
        ms(total) / calls as f64,
        ms(cpu) / calls as f64,
    );
}

/// The encoding alone (no HTTP, no envelope): what `getblock <hash> 0` computes after the lookup.
fn time_encoding(node: &Node, hash: &BlockHash, calls: usize) {
    let shared = node.shared_block(hash).expect("the block");
    let mut bytes = consensus_hex_json(shared.block(), shared.size()).len();
    let mut walls = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        bytes = consensus_hex_json(shared.block(), shared.size()).len();
        walls.push(t.elapsed());
    }
    walls.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{:<24} {bytes:>9} B  wall min {:.3} ms  p50 {:.3} ms  (hex of the block, no HTTP)",
        "encoding only",
        ms(walls[0]),
        ms(walls[calls / 2]),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; keep only the numbers.
    let numbers: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let txs = numbers.first().copied().unwrap_or(4_000);
    let calls = numbers.get(1).copied().unwrap_or(200);

    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = SimConfig::new(dir.path());
    config.zmq = false;
    config.rpc_auth = Some((USER.into(), PASSWORD.into()));
    let sim = Simulator::start(config).expect("simulator");
    let node = sim.node();
    let hash = big_block::mine_big_block(&node, txs);
    let height = node.block_count();
    println!("block {hash} at height {height}: {txs} transactions; {calls} calls each");

    time_encoding(&node, &hash, calls);
    let mut connection = Connection::open(sim.rpc_port());
    let call = |method: &str, params: &str| {
        format!(r#"{{"jsonrpc":"1.0","id":1,"method":"{method}","params":{params}}}"#)
    };
    let getblock0 = call("getblock", &format!(r#"["{hash}",0]"#));
    let getblock1 = call("getblock", &format!(r#"["{hash}",1]"#));
    let header = call("getblockheader", &format!(r#"["{hash}"]"#));
    let blockhash = call("getblockhash", &format!("[{height}]"));
    let count = call("getblockcount", "[]");
    let last_txid = node
        .shared_block(&hash)
        .and_then(|b| b.txids().last().copied())
        .expect("the block's last txid");
    let rawtx = call(
        "getrawtransaction",
        &format!(r#"["{last_txid}",false,"{hash}"]"#),
    );
    time_calls("getblock <hash> 0", &mut connection, &getblock0, calls);
    time_calls("getblock <hash> 1", &mut connection, &getblock1, calls);
    time_calls("getblockheader <hash>", &mut connection, &header, calls);
    time_calls("getblockhash <height>", &mut connection, &blockhash, calls);
    time_calls("getblockcount", &mut connection, &count, calls);
    time_calls("getrawtransaction (last)", &mut connection, &rawtx, calls);
    drop(connection);
    sim.stop().expect("stop");
}
