//! The tower's only window on bitcoind: a narrow, blocking JSON-RPC client trait.
//!
//! `bitcoincore-rpc` is archived and blocking, so it stays behind [`BitcoindRpc`] and is only ever
//! called from plain threads (the block processor, the chain monitor's poller) or `spawn_blocking`.
//! Swapping it for another client means one new impl of this trait.
//!
//! Error classes follow `../shared/spec/PROTOCOL.md` ("Responding"): an RPC error carries bitcoind's
//! code; anything that kept the request from being answered (connection refused, timeout, HTTP 401 after a
//! cookie change, a body that is not JSON-RPC) is a [`RpcError::Transport`] and means "bitcoind
//! unreachable, retry".

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::consensus::encode;
use bitcoin::{Block, BlockHash, Transaction, Txid, Work};
use bitcoincore_rpc::RpcApi;
use serde::Deserialize;

#[cfg(test)]
pub mod fake;
mod transport;

/// Bitcoin Core RPC error codes the tower reacts to (`src/rpc/protocol.h` in Bitcoin Core).
pub mod codes {
    /// RPC_INVALID_ADDRESS_OR_KEY: unknown block or transaction.
    pub const INVALID_ADDRESS_OR_KEY: i32 = -5;
    /// RPC_INVALID_PARAMETER: e.g. block height out of range.
    pub const INVALID_PARAMETER: i32 = -8;
    /// RPC_DESERIALIZATION_ERROR: the transaction does not decode.
    pub const DESERIALIZATION_ERROR: i32 = -22;
    /// RPC_VERIFY_ERROR: missing or spent inputs, fee over maxfeerate.
    pub const VERIFY_ERROR: i32 = -25;
    /// RPC_VERIFY_REJECTED: policy or consensus rejection.
    pub const VERIFY_REJECTED: i32 = -26;
    /// RPC_VERIFY_ALREADY_IN_CHAIN: the transaction is already confirmed.
    pub const VERIFY_ALREADY_IN_CHAIN: i32 = -27;
    /// RPC_IN_WARMUP: bitcoind is still starting.
    pub const IN_WARMUP: i32 = -28;
}

/// Why a call to bitcoind failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// bitcoind answered with a JSON-RPC error.
    #[error("bitcoind error {code}: {message}")]
    Rpc { code: i32, message: String },
    /// bitcoind could not be reached or did not answer in time (also wrong credentials).
    #[error("bitcoind unreachable: {0}")]
    Transport(String),
    /// bitcoind answered something the tower could not decode.
    #[error("unexpected answer from bitcoind: {0}")]
    Decode(String),
}

impl RpcError {
    /// True when the error means "try again later" (unreachable, or -28 warm-up).
    pub fn is_transient(&self) -> bool {
        match self {
            RpcError::Transport(_) => true,
            RpcError::Rpc { code, .. } => *code == codes::IN_WARMUP,
            RpcError::Decode(_) => false,
        }
    }

    /// The bitcoind error code, if bitcoind answered with one.
    pub fn code(&self) -> Option<i32> {
        match self {
            RpcError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// What the tower reads from `getblockchaininfo`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChainInfo {
    /// `main`, `test`, `testnet4`, `signet` or `regtest`.
    pub chain: String,
    /// Height of the best block.
    pub blocks: u32,
    /// Height of the best known header.
    pub headers: u32,
    #[serde(rename = "bestblockhash")]
    pub best_block_hash: BlockHash,
    #[serde(rename = "initialblockdownload", default)]
    pub initial_block_download: bool,
    #[serde(default)]
    pub pruned: bool,
    /// Lowest height with a block still on disk (pruned nodes only).
    #[serde(rename = "pruneheight", default)]
    pub prune_height: Option<u32>,
}

/// What the tower reads from `getblockheader <hash> true` (BITCOIND.md; Bitcoin Core keeps the headers of
/// stale branches, so this answers for blocks that left the active chain too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderInfo {
    /// The block's hash.
    pub hash: BlockHash,
    /// Height of the block (blocks).
    pub height: u32,
    /// Confirmations on bitcoind's active chain; -1 when the block is not on it (stale or invalid).
    pub confirmations: i64,
    /// Total work of the chain ending at this block (`chainwork`).
    pub chainwork: Work,
    /// The parent block; `None` for the genesis block.
    pub previous: Option<BlockHash>,
    /// The block's time (header `nTime`), seconds since the Unix epoch.
    pub time: u32,
}

impl HeaderInfo {
    /// Whether the block is on bitcoind's active chain.
    pub fn in_active_chain(&self) -> bool {
        self.confirmations >= 0
    }
}

#[derive(Deserialize)]
struct HeaderJson {
    hash: BlockHash,
    height: u32,
    confirmations: i64,
    chainwork: String,
    #[serde(rename = "previousblockhash", default)]
    previous: Option<BlockHash>,
    time: u32,
}

impl TryFrom<HeaderJson> for HeaderInfo {
    type Error = RpcError;
    fn try_from(json: HeaderJson) -> Result<HeaderInfo, RpcError> {
        Ok(HeaderInfo {
            hash: json.hash,
            height: json.height,
            confirmations: json.confirmations,
            chainwork: parse_chainwork(&json.chainwork)?,
            previous: json.previous,
            time: json.time,
        })
    }
}

/// Parses a `chainwork` field: 64 hex digits, big-endian.
pub fn parse_chainwork(hex: &str) -> Result<Work, RpcError> {
    let bytes: [u8; 32] = const_hex::decode_to_array(hex)
        .map_err(|e| RpcError::Decode(format!("chainwork {hex:?}: {e}")))?;
    Ok(Work::from_be_bytes(bytes))
}

/// A `getchaintips` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChainTip {
    /// Height of the branch's tip.
    pub height: u32,
    /// Hash of the branch's tip.
    pub hash: BlockHash,
    /// Blocks from the tip down to the active chain (0 for the active tip).
    #[serde(rename = "branchlen")]
    pub branch_len: u32,
    /// `active`, `valid-fork`, `valid-headers`, `headers-only` or `invalid`.
    pub status: String,
}

/// A `getzmqnotifications` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ZmqNotification {
    /// e.g. `pubhashblock`.
    #[serde(rename = "type")]
    pub kind: String,
    /// e.g. `tcp://127.0.0.1:28332`.
    pub address: String,
}

/// What `getrawmempool false true` answers (BITCOIND.md, "Unconfirmed breaches and packages").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MempoolSnapshot {
    /// Every transaction in bitcoind's mempool.
    pub txids: Vec<Txid>,
    /// `mempool_sequence`: the next mempool sequence number bitcoind will hand out. The ZMQ
    /// `sequence` topic's `A`/`R` frames numbered below it are already reflected in `txids`.
    #[serde(rename = "mempool_sequence")]
    pub sequence: u64,
}

/// What `submitpackage` answered when it did not fail as a whole (BITCOIND.md, "Unconfirmed breaches
/// and packages"): Bitcoin Core reports a transaction's refusal inside its answer, not as an RPC error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageAnswer {
    /// `package_msg`: `success` when every transaction is in the mempool (newly or already).
    pub message: String,
    /// `tx-results.*.error`: the refused transactions and bitcoind's reasons.
    pub errors: Vec<(Txid, String)>,
}

impl PackageAnswer {
    /// Whether every transaction of the package is in the mempool.
    pub fn is_success(&self) -> bool {
        self.message == "success"
    }
}

#[derive(Deserialize)]
struct PackageJson {
    package_msg: String,
    #[serde(rename = "tx-results", default)]
    tx_results: std::collections::HashMap<String, PackageTxJson>,
}

#[derive(Deserialize)]
struct PackageTxJson {
    txid: Txid,
    #[serde(default)]
    error: Option<String>,
}

impl From<PackageJson> for PackageAnswer {
    fn from(json: PackageJson) -> PackageAnswer {
        let mut errors: Vec<(Txid, String)> = json
            .tx_results
            .into_values()
            .filter_map(|tx| tx.error.map(|error| (tx.txid, error)))
            .collect();
        errors.sort();
        PackageAnswer {
            message: json.package_msg,
            errors,
        }
    }
}

/// The calls the tower makes to bitcoind. All of them block; call them off the async runtime.
pub trait BitcoindRpc: Send + Sync + 'static {
    /// `getblockchaininfo`.
    fn chain_info(&self) -> Result<ChainInfo, RpcError>;
    /// `getbestblockhash`.
    fn best_block_hash(&self) -> Result<BlockHash, RpcError>;
    /// `getblockhash height`; -8 when the height is above the tip.
    fn block_hash(&self, height: u32) -> Result<BlockHash, RpcError>;
    /// `getblockheader hash true`; -5 when bitcoind does not know the block.
    fn block_header(&self, hash: &BlockHash) -> Result<HeaderInfo, RpcError>;
    /// `getchaintips`.
    fn chain_tips(&self) -> Result<Vec<ChainTip>, RpcError>;
    /// `getblock hash 0`, decoded; -5 when unknown.
    fn block(&self, hash: &BlockHash) -> Result<Block, RpcError>;
    /// `sendrawtransaction hex`; the txid on success (also when already in the mempool).
    fn send_raw_transaction(&self, tx: &Transaction) -> Result<Txid, RpcError>;
    /// `getrawtransaction txid false [blockhash]`; -5 when not found.
    fn raw_transaction(
        &self,
        txid: &Txid,
        block: Option<&BlockHash>,
    ) -> Result<Transaction, RpcError>;
    /// `getzmqnotifications`.
    fn zmq_notifications(&self) -> Result<Vec<ZmqNotification>, RpcError>;
    /// `getrawmempool false true`: the mempool's txids and its sequence number.
    fn mempool_snapshot(&self) -> Result<MempoolSnapshot, RpcError>;
    /// `submitpackage [hex, ...]`: one child with its parents, parents first. A refusal of the
    /// package's shape is an RPC error (-25 topology, -8 size, -22 decode); a refused transaction is
    /// reported in the [`PackageAnswer`].
    fn submit_package(&self, txs: &[Transaction]) -> Result<PackageAnswer, RpcError>;
}

/// How to authenticate to bitcoind.
#[derive(Clone)]
pub enum Auth {
    /// `rpcuser`/`rpcpassword`.
    UserPass(String, String),
    /// The cookie file `<bitcoind datadir>/<network>/.cookie`, re-read whenever bitcoind stops
    /// accepting the current one (it changes at every bitcoind start).
    Cookie(PathBuf),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::UserPass(user, _) => write!(f, "UserPass({user}, ****)"),
            Auth::Cookie(path) => write!(f, "Cookie({})", path.display()),
        }
    }
}

/// [`BitcoindRpc`] over HTTP with `bitcoincore-rpc`.
pub struct BitcoindClient {
    url: String,
    auth: Auth,
    timeout: Duration,
    /// The current client; replaced when the cookie changes. The lock is held only to clone the `Arc`.
    client: Mutex<Option<Arc<bitcoincore_rpc::Client>>>,
}

impl BitcoindClient {
    /// A client for `url` (e.g. `http://127.0.0.1:18443`). Nothing is sent until the first call, so
    /// this succeeds while bitcoind is down. `timeout` bounds every call (whole seconds, at least 1).
    pub fn new(url: impl Into<String>, auth: Auth, timeout: Duration) -> BitcoindClient {
        BitcoindClient {
            url: url.into(),
            auth,
            timeout: timeout.max(Duration::from_secs(1)),
            client: Mutex::new(None),
        }
    }

    fn build_client(&self) -> Result<bitcoincore_rpc::Client, RpcError> {
        let (user, pass) = match &self.auth {
            Auth::UserPass(user, pass) => (user.clone(), pass.clone()),
            Auth::Cookie(path) => read_cookie(path)?,
        };
        let transport = transport::UreqTransport::new(&self.url, &user, &pass, self.timeout);
        Ok(bitcoincore_rpc::Client::from_jsonrpc(
            jsonrpc::Client::with_transport(transport),
        ))
    }

    fn client(&self) -> Result<Arc<bitcoincore_rpc::Client>, RpcError> {
        let mut guard = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = guard.as_ref() {
            return Ok(client.clone());
        }
        let client = Arc::new(self.build_client()?);
        *guard = Some(client.clone());
        Ok(client)
    }

    /// Forgets the current client so the next call re-reads the cookie.
    fn reset(&self) {
        let mut guard = self.client.lock().unwrap_or_else(|e| e.into_inner());
        *guard = None;
    }

    fn with_client<T>(
        &self,
        f: impl FnOnce(&bitcoincore_rpc::Client) -> Result<T, bitcoincore_rpc::Error>,
    ) -> Result<T, RpcError> {
        let client = self.client()?;
        let result = f(&client).map_err(map_error);
        if let Err(e) = &result {
            let code = e
                .code()
                .map_or_else(|| "transport".to_owned(), |c| c.to_string());
            metrics::counter!(crate::metrics::BITCOIND_ERRORS, "code" => code).increment(1);
        }
        if matches!(result, Err(RpcError::Transport(_))) {
            // bitcoind may have restarted with a new cookie, or the connection broke: start afresh.
            self.reset();
        }
        result
    }
}

/// Reads `__cookie__:<hex>` from a cookie file.
fn read_cookie(path: &PathBuf) -> Result<(String, String), RpcError> {
    let content = std::fs::read_to_string(path).map_err(|e| {
        RpcError::Transport(format!("cannot read cookie file {}: {e}", path.display()))
    })?;
    let line = content.lines().next().unwrap_or("");
    match line.split_once(':') {
        Some((user, pass)) if !user.is_empty() => Ok((user.to_owned(), pass.to_owned())),
        _ => Err(RpcError::Transport(format!(
            "cookie file {} is not of the form user:password",
            path.display()
        ))),
    }
}

fn map_error(e: bitcoincore_rpc::Error) -> RpcError {
    use bitcoincore_rpc::Error as E;
    match e {
        E::JsonRpc(jsonrpc::Error::Rpc(err)) => RpcError::Rpc {
            code: err.code,
            message: err.message,
        },
        E::JsonRpc(jsonrpc::Error::Transport(err)) => RpcError::Transport(err.to_string()),
        E::JsonRpc(other) => RpcError::Transport(other.to_string()),
        E::Io(err) => RpcError::Transport(err.to_string()),
        E::InvalidCookieFile => RpcError::Transport("invalid cookie file".into()),
        other => RpcError::Decode(other.to_string()),
    }
}

impl BitcoindRpc for BitcoindClient {
    fn chain_info(&self) -> Result<ChainInfo, RpcError> {
        let value: serde_json::Value = self.with_client(|c| c.call("getblockchaininfo", &[]))?;
        serde_json::from_value(value).map_err(|e| RpcError::Decode(e.to_string()))
    }

    fn best_block_hash(&self) -> Result<BlockHash, RpcError> {
        self.with_client(|c| c.get_best_block_hash())
    }

    fn block_hash(&self, height: u32) -> Result<BlockHash, RpcError> {
        self.with_client(|c| c.get_block_hash(u64::from(height)))
    }

    fn block_header(&self, hash: &BlockHash) -> Result<HeaderInfo, RpcError> {
        let json: HeaderJson = self
            .with_client(|c| c.call("getblockheader", &[hash.to_string().into(), true.into()]))?;
        json.try_into()
    }

    fn chain_tips(&self) -> Result<Vec<ChainTip>, RpcError> {
        self.with_client(|c| c.call("getchaintips", &[]))
    }

    fn block(&self, hash: &BlockHash) -> Result<Block, RpcError> {
        let hex: String =
            self.with_client(|c| c.call("getblock", &[hash.to_string().into(), 0.into()]))?;
        let bytes = const_hex::decode(hex).map_err(|e| RpcError::Decode(e.to_string()))?;
        let block: Block =
            encode::deserialize(&bytes).map_err(|e| RpcError::Decode(e.to_string()))?;
        if block.block_hash() != *hash {
            return Err(RpcError::Decode(format!(
                "getblock {hash} returned another block"
            )));
        }
        Ok(block)
    }

    fn send_raw_transaction(&self, tx: &Transaction) -> Result<Txid, RpcError> {
        let hex = encode::serialize_hex(tx);
        self.with_client(|c| c.call("sendrawtransaction", &[hex.into()]))
    }

    fn raw_transaction(
        &self,
        txid: &Txid,
        block: Option<&BlockHash>,
    ) -> Result<Transaction, RpcError> {
        self.with_client(|c| c.get_raw_transaction(txid, block))
    }

    fn zmq_notifications(&self) -> Result<Vec<ZmqNotification>, RpcError> {
        self.with_client(|c| c.call("getzmqnotifications", &[]))
    }

    fn mempool_snapshot(&self) -> Result<MempoolSnapshot, RpcError> {
        self.with_client(|c| c.call("getrawmempool", &[false.into(), true.into()]))
    }

    fn submit_package(&self, txs: &[Transaction]) -> Result<PackageAnswer, RpcError> {
        let hexes: Vec<serde_json::Value> = txs
            .iter()
            .map(|tx| encode::serialize_hex(tx).into())
            .collect();
        let json: PackageJson =
            self.with_client(|c| c.call("submitpackage", &[serde_json::Value::Array(hexes)]))?;
        Ok(json.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submitpackage_answers_are_read_as_core_writes_them() {
        // `bitcoind/mempool.json`, section 2 (success), and Core's shape of a refused transaction.
        let success: PackageJson = serde_json::from_str(
            r#"{"package_msg":"success","tx-results":{"9c8f7440ea11b12358f3bcc467d26c33622cb1995209a8b63e0dc6bb81faf16e":{"txid":"a1ab0d5f0163249681d7f8ebdbc2908872aa8b08f4b3248daafedafe91f847cb","vsize":110,"fees":{"base":0.0}}},"replaced-transactions":[]}"#,
        )
        .unwrap();
        let answer = PackageAnswer::from(success);
        assert!(answer.is_success() && answer.errors.is_empty());
        let failed: PackageJson = serde_json::from_str(
            r#"{"package_msg":"transaction failed","tx-results":{"9c8f7440ea11b12358f3bcc467d26c33622cb1995209a8b63e0dc6bb81faf16e":{"txid":"a1ab0d5f0163249681d7f8ebdbc2908872aa8b08f4b3248daafedafe91f847cb","error":"min relay fee not met, 0 < 110"}},"replaced-transactions":[]}"#,
        )
        .unwrap();
        let answer = PackageAnswer::from(failed);
        assert!(!answer.is_success());
        assert_eq!(answer.errors[0].1, "min relay fee not met, 0 < 110");
    }

    #[test]
    fn getrawmempool_with_its_sequence_is_read_as_core_writes_it() {
        let snapshot: MempoolSnapshot = serde_json::from_str(
            r#"{"txids":["1fe97e3d051e7fcf726aa6b05a216345dc35041a677237d08d8197a5b8b5ca40"],"mempool_sequence":3}"#,
        )
        .unwrap();
        assert_eq!(snapshot.sequence, 3);
        assert_eq!(
            snapshot.txids[0].to_string(),
            "1fe97e3d051e7fcf726aa6b05a216345dc35041a677237d08d8197a5b8b5ca40"
        );
    }
}
