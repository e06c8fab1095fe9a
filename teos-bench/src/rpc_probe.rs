//! Where a block fetch spends its time: `getblock <hash> 0` of a big block from bitcoind-sim, through
//! teosd's own bitcoind client (`teosd::bitcoind::BitcoindClient`: bitcoincore-rpc over teosd's
//! ureq transport) and through a plain HTTP client that reads the whole body at once, both
//! followed by the same JSON, hex and consensus decoding.

use std::time::{Duration, Instant};

use bitcoin::{Block, BlockHash};
use bitcoind_sim::wallet::TestWallet;
use bitcoind_sim::{SimConfig, Simulator};
use bytes::Bytes;
use teosd::bitcoind::{Auth, BitcoindClient, BitcoindRpc};

use crate::error::BenchError;
use crate::http::HttpConn;
use crate::stats::{Latencies, ms};
use bitcoind_sim::fillers::{Fillers, mine};

const USER: &str = "bench";
const PASSWORD: &str = "bench";

/// Fetch times of one block by both clients.
#[derive(Debug)]
pub struct RpcReport {
    /// Serialized size of the block (bytes).
    pub block_bytes: usize,
    /// Transactions in the block.
    pub txs: usize,
    /// teosd's client (ureq transport), decode included.
    pub teosd_client: Latencies,
    /// Plain HTTP client reading the body at once, decode included.
    pub whole_body: Latencies,
    /// The decoding part of `whole_body` (JSON, hex, consensus).
    pub decode: Latencies,
}

impl RpcReport {
    /// Prints both distributions.
    pub fn print(&self) {
        println!(
            "getblock of a {}-tx block ({} bytes, {} hex characters in the answer)",
            self.txs,
            self.block_bytes,
            self.block_bytes * 2
        );
        println!(
            "  teosd's client (ureq transport): {}",
            self.teosd_client.summary()
        );
        println!(
            "  whole-body HTTP + from_slice: {}",
            self.whole_body.summary()
        );
        println!("    of which decoding:          {}", self.decode.summary());
        println!(
            "  median difference: {} per block",
            ms(self
                .teosd_client
                .quantile(0.5)
                .saturating_sub(self.whole_body.quantile(0.5)))
        );
    }
}

/// Mines one block of `txs` transactions in a fresh bitcoind-sim and fetches it `count` times with
/// each client.
pub fn run(txs: usize, count: usize) -> Result<RpcReport, BenchError> {
    let dir = tempfile::tempdir().map_err(|e| BenchError::io("creating a temp dir", e))?;
    let mut config = SimConfig::new(dir.path());
    config.zmq = false;
    config.rpc_auth = Some((USER.into(), PASSWORD.into()));
    let sim = Simulator::start(config).map_err(BenchError::sim)?;
    let node = sim.node();
    let wallet = TestWallet::new(21);
    wallet.fund(&node, 1).map_err(BenchError::sim)?;
    let coin = wallet
        .spendable(&node)
        .into_iter()
        .next()
        .ok_or_else(|| BenchError::Sim("no coin".into()))?;
    let miner = Simulator::mining_address().script_pubkey();
    let (mut fillers, _) = Fillers::fan_out(&node, &coin, txs.saturating_sub(1).max(1), &miner)?;
    let hash = mine(&node, fillers.take(txs.saturating_sub(1).max(1))?, &miner)?;
    let block = node
        .block(&hash)
        .ok_or_else(|| BenchError::Sim("mined block not found".into()))?;
    let block_bytes = bitcoin::consensus::serialize(&block).len();

    let client = BitcoindClient::new(
        sim.rpc_url(),
        Auth::UserPass(USER.into(), PASSWORD.into()),
        Duration::from_secs(30),
    );
    let mut teosd_client = Latencies::new();
    for _ in 0..count {
        let t = Instant::now();
        let got = client
            .block(&hash)
            .map_err(|e| BenchError::Sim(format!("getblock through teosd's client: {e}")))?;
        teosd_client.record(t.elapsed());
        check(&got, &hash)?;
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("starting a runtime", e))?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], sim.rpc_port()));
    let (whole_body, decode) = runtime.block_on(async {
        let mut conn = HttpConn::connect(addr)
            .await?
            .with_basic_auth(USER, PASSWORD);
        let request = Bytes::from(format!(
            r#"{{"jsonrpc":"1.0","id":1,"method":"getblock","params":["{hash}",0]}}"#
        ));
        let (mut latencies, mut decoding) = (Latencies::new(), Latencies::new());
        for _ in 0..count {
            let t = Instant::now();
            let body = conn.post_ok("/", request.clone()).await?;
            let d = Instant::now();
            let got = decode_block(&body)?;
            decoding.record(d.elapsed());
            latencies.record(t.elapsed());
            check(&got, &hash)?;
        }
        Ok::<_, BenchError>((latencies, decoding))
    })?;
    Ok(RpcReport {
        block_bytes,
        txs: block.txdata.len(),
        teosd_client,
        whole_body,
        decode,
    })
}

/// `{"result": "<hex>", ...}` → the block.
fn decode_block(body: &[u8]) -> Result<Block, BenchError> {
    #[derive(serde::Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        result: &'a str,
    }
    let answer: Answer<'_> = serde_json::from_slice(body)
        .map_err(|e| BenchError::Check(format!("getblock answer: {e}")))?;
    let raw = const_hex::decode(answer.result)
        .map_err(|e| BenchError::Check(format!("getblock hex: {e}")))?;
    bitcoin::consensus::deserialize(&raw)
        .map_err(|e| BenchError::Check(format!("getblock block: {e}")))
}

fn check(block: &Block, hash: &BlockHash) -> Result<(), BenchError> {
    if block.block_hash() == *hash {
        Ok(())
    } else {
        Err(BenchError::Check("getblock returned another block".into()))
    }
}
