//! JSON renderings of transactions, blocks, headers and mempool entries, shaped like Bitcoin
//! Core's (`TxToUniv`, `blockheaderToJSON`, `blockToJSON`, `entryToJSON`); see transcript
//! entries 23, 26, 27, 31-36 and 80 of `../shared/spec/bitcoind/rpc.json`.
//!
//! Structs serialize their fields in Core's order. Amounts are JSON numbers in BTC: an `f64`
//! computed from satoshis, which parses back to the same satoshi value (Core prints 8 decimals,
//! e.g. `0.49997180`; this prints the shortest equivalent, `0.4999718`).

mod descriptor;
pub mod hex_str;
mod script;

pub use descriptor::{checksum as descriptor_checksum, strip_checksum};
pub use script::{ScriptPubKeyJson, ScriptType, asm, classify, script_pubkey_json};

use bitcoin::{Amount, Block, CompactTarget, Target, Transaction, TxIn};
use serde::Serialize;

use crate::node::{BlockEntry, MempoolEntry};

/// Satoshis as a BTC JSON number.
pub fn btc(amount: Amount) -> f64 {
    amount.to_btc()
}

/// A decoded transaction (`decoderawtransaction`, `getrawtransaction` verbose, `getblock` 2).
///
/// The optional fields around the core ones are those `getrawtransaction` adds.
#[derive(Clone, Debug, Serialize)]
pub struct TxJson {
    /// Only when a block hash was passed to `getrawtransaction`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_active_chain: Option<bool>,
    /// Only for a transaction in the mempool (Core v31 shows the sigop-adjusted vsize first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vsize_adjusted: Option<u64>,
    /// Transaction id (hex, display order).
    pub txid: String,
    /// The wtxid.
    pub hash: String,
    /// `nVersion`.
    pub version: i32,
    /// Bytes with witness.
    pub size: usize,
    /// Virtual bytes: ceil(weight / 4).
    pub vsize: usize,
    /// Weight units.
    pub weight: u64,
    /// `nLockTime`.
    pub locktime: u32,
    /// Inputs, in order.
    pub vin: Vec<VinJson>,
    /// Outputs, in order.
    pub vout: Vec<VoutJson>,
    /// The serialized transaction (absent in `decoderawtransaction`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    /// The block holding the transaction, when confirmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blockhash: Option<String>,
    /// Depth in the active chain, 0 when the given block is not on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmations: Option<i64>,
    /// Block time (seconds since the epoch), only for a block on the active chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<u32>,
    /// Same as `time`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocktime: Option<u32>,
}

/// One input: the coinbase form or a spend.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum VinJson {
    /// The coinbase input.
    Coinbase {
        /// Hex of the coinbase scriptSig.
        coinbase: String,
        /// Witness stack items as hex; absent when the witness is empty.
        #[serde(skip_serializing_if = "Option::is_none")]
        txinwitness: Option<Vec<String>>,
        /// `nSequence`.
        sequence: u32,
    },
    /// A spend of an earlier output.
    Spend {
        /// Txid of the spent output.
        txid: String,
        /// Index of the spent output.
        vout: u32,
        /// The scriptSig.
        #[serde(rename = "scriptSig")]
        script_sig: ScriptSigJson,
        /// Witness stack items as hex; absent when the witness is empty.
        #[serde(skip_serializing_if = "Option::is_none")]
        txinwitness: Option<Vec<String>>,
        /// `nSequence`.
        sequence: u32,
    },
}

/// `{"asm": .., "hex": ..}` of a scriptSig (signatures decoded as `<hex>[ALL]`).
#[derive(Clone, Debug, Serialize)]
pub struct ScriptSigJson {
    /// Core's assembly rendering.
    pub asm: String,
    /// Raw script, hex.
    pub hex: String,
}

/// One output.
#[derive(Clone, Debug, Serialize)]
pub struct VoutJson {
    /// BTC.
    pub value: f64,
    /// Output index.
    pub n: u32,
    /// The output script.
    #[serde(rename = "scriptPubKey")]
    pub script_pubkey: ScriptPubKeyJson,
}

fn witness_json(input: &TxIn) -> Option<Vec<String>> {
    (!input.witness.is_empty()).then(|| input.witness.iter().map(hex::encode).collect())
}

fn vin_json(tx: &Transaction, input: &TxIn) -> VinJson {
    if tx.is_coinbase() {
        return VinJson::Coinbase {
            coinbase: hex::encode(input.script_sig.as_bytes()),
            txinwitness: witness_json(input),
            sequence: input.sequence.0,
        };
    }
    VinJson::Spend {
        txid: input.previous_output.txid.to_string(),
        vout: input.previous_output.vout,
        script_sig: ScriptSigJson {
            asm: asm(&input.script_sig, true),
            hex: hex::encode(input.script_sig.as_bytes()),
        },
        txinwitness: witness_json(input),
        sequence: input.sequence.0,
    }
}

/// Core's `TxToUniv`; `include_hex` adds the serialized transaction (not in `decoderawtransaction`).
pub fn tx_json(tx: &Transaction, include_hex: bool) -> TxJson {
    TxJson {
        in_active_chain: None,
        vsize_adjusted: None,
        txid: tx.compute_txid().to_string(),
        hash: tx.compute_wtxid().to_string(),
        version: tx.version.0,
        size: tx.total_size(),
        vsize: tx.vsize(),
        weight: tx.weight().to_wu(),
        locktime: tx.lock_time.to_consensus_u32(),
        vin: tx.input.iter().map(|i| vin_json(tx, i)).collect(),
        vout: tx
            .output
            .iter()
            .enumerate()
            .map(|(n, o)| VoutJson {
                value: btc(o.value),
                n: n as u32,
                script_pubkey: script_pubkey_json(&o.script_pubkey),
            })
            .collect(),
        hex: include_hex.then(|| hex_str::consensus_hex(tx, tx.total_size())),
        blockhash: None,
        confirmations: None,
        time: None,
        blocktime: None,
    }
}

/// A double as Core prints it (UniValue writes 16 significant digits), read back: clients parse
/// the same value from our shortest-form output as from Core's text.
pub fn core_double(value: f64) -> f64 {
    format!("{value:.15e}").parse().unwrap_or(value)
}

/// Core's `GetDifficulty`: the difficulty-1 target over this target, from the compact bits
/// (rounded to 16 significant digits, see [`core_double`]).
pub fn difficulty(bits: CompactTarget) -> f64 {
    let bits = bits.to_consensus();
    let mut shift = (bits >> 24) & 0xff;
    let mantissa = f64::from(bits & 0x00ff_ffff);
    if mantissa == 0.0 {
        return 0.0;
    }
    let mut diff = f64::from(0x0000_ffffu32) / mantissa;
    while shift < 29 {
        diff *= 256.0;
        shift += 1;
    }
    while shift > 29 {
        diff /= 256.0;
        shift -= 1;
    }
    core_double(diff)
}

/// The 256-bit target of `bits` as 64 hex digits, big-endian.
pub fn target_hex(bits: CompactTarget) -> String {
    hex::encode(Target::from_compact(bits).to_be_bytes())
}

/// `getblockheader` verbose (and the first fields of `getblock` 1/2).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub struct HeaderJson {
    /// Block hash.
    pub hash: String,
    /// Depth in the active chain; -1 when the block is not on it.
    pub confirmations: i64,
    /// Height in its branch (blocks).
    pub height: u32,
    /// `nVersion`.
    pub version: i32,
    /// `version` as 8 hex digits.
    #[serde(rename = "versionHex")]
    pub version_hex: String,
    /// Merkle root of the transactions.
    pub merkleroot: String,
    /// Seconds since the epoch.
    pub time: u32,
    /// Median time past of the 11 blocks ending here (seconds).
    pub mediantime: u32,
    /// Header nonce.
    pub nonce: u32,
    /// Compact target as 8 hex digits.
    pub bits: String,
    /// Target as 64 hex digits.
    pub target: String,
    /// Difficulty relative to the minimum (Core's `GetDifficulty`).
    pub difficulty: f64,
    /// Cumulative work as 64 hex digits.
    pub chainwork: String,
    /// Number of transactions.
    #[serde(rename = "nTx")]
    pub n_tx: usize,
    /// Parent hash (absent for genesis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previousblockhash: Option<String>,
    /// Child on the active chain, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nextblockhash: Option<String>,
}

/// Renders a block entry's header fields.
pub fn header_json(entry: &BlockEntry) -> HeaderJson {
    let header = &entry.header;
    HeaderJson {
        hash: entry.hash.to_string(),
        confirmations: entry.confirmations,
        height: entry.height,
        version: header.version.to_consensus(),
        version_hex: format!("{:08x}", header.version.to_consensus() as u32),
        merkleroot: header.merkle_root.to_string(),
        time: header.time,
        mediantime: entry.median_time,
        nonce: header.nonce,
        bits: format!("{:08x}", header.bits.to_consensus()),
        target: target_hex(header.bits),
        difficulty: difficulty(header.bits),
        chainwork: hex::encode(entry.chainwork.to_be_bytes()),
        n_tx: entry.n_tx,
        previousblockhash: entry.previous.map(|h| h.to_string()),
        nextblockhash: entry.next.map(|h| h.to_string()),
    }
}

/// `coinbase_tx` of `getblock` 1/2 (Core v30+): the coinbase's fields miners care about.
#[derive(Clone, Debug, Serialize)]
pub struct CoinbaseJson {
    /// `nVersion`.
    pub version: i32,
    /// `nLockTime`.
    pub locktime: u32,
    /// `nSequence` of the coinbase input.
    pub sequence: u32,
    /// Hex of the coinbase scriptSig.
    pub coinbase: String,
    /// Hex of the witness reserved value, when the coinbase has a witness.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness: Option<String>,
}

/// `getblock` verbosity 1 (`T` = txid string) or 2 (`T` = [`TxJson`]).
#[derive(Clone, Debug, Serialize)]
pub struct BlockJson<T: Serialize> {
    /// The header fields (flattened into the block object).
    #[serde(flatten)]
    pub header: HeaderJson,
    /// Size without witness data (bytes).
    pub strippedsize: usize,
    /// Size with witness data (bytes).
    pub size: usize,
    /// Weight units.
    pub weight: u64,
    /// Summary of the coinbase transaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coinbase_tx: Option<CoinbaseJson>,
    /// Txids (verbosity 1) or decoded transactions (verbosity 2).
    pub tx: Vec<T>,
}

fn coinbase_json(block: &Block) -> Option<CoinbaseJson> {
    let tx = block.txdata.first()?;
    let input = tx.input.first()?;
    Some(CoinbaseJson {
        version: tx.version.0,
        locktime: tx.lock_time.to_consensus_u32(),
        sequence: input.sequence.0,
        coinbase: hex::encode(input.script_sig.as_bytes()),
        witness: input.witness.iter().next().map(hex::encode),
    })
}

/// Core's `blockToJSON`; `tx` holds each transaction's rendering in block order (a txid, or a
/// decoded transaction).
pub fn block_json<T: Serialize>(entry: &BlockEntry, block: &Block, tx: Vec<T>) -> BlockJson<T> {
    BlockJson {
        header: header_json(entry),
        strippedsize: entry.stripped_size,
        size: entry.size,
        weight: entry.weight,
        coinbase_tx: coinbase_json(block),
        tx,
    }
}

/// `fees` of a mempool entry, in BTC.
#[derive(Clone, Debug, Serialize)]
pub struct MempoolFeesJson {
    /// Fee paid (BTC).
    pub base: f64,
    /// Fee with prioritisation (BTC; the simulator has none).
    pub modified: f64,
    /// Fees of this transaction and its in-mempool ancestors (BTC).
    pub ancestor: f64,
    /// Fees of this transaction and its in-mempool descendants (BTC).
    pub descendant: f64,
    /// Fee of the entry's chunk (cluster mempool); the simulator's chunk is the entry itself.
    pub chunk: f64,
}

/// `getmempoolentry` / `getrawmempool true` (Core v31 shape, transcript entry 34).
#[derive(Clone, Debug, Serialize)]
pub struct MempoolEntryJson {
    /// Virtual size adjusted for sigops (vbytes; the simulator uses `vsize`).
    pub vsize_adjusted: u64,
    /// Virtual size (vbytes).
    pub vsize: u64,
    /// BIP141 virtual size (vbytes).
    pub vsize_bip141: u64,
    /// Weight units.
    pub weight: u64,
    /// Seconds since the epoch when the transaction entered the mempool.
    pub time: u64,
    /// Chain height when it entered.
    pub height: u32,
    /// In-mempool descendants including itself.
    pub descendantcount: u64,
    /// Their virtual size (vbytes).
    pub descendantsize: u64,
    /// In-mempool ancestors including itself.
    pub ancestorcount: u64,
    /// Their virtual size (vbytes).
    pub ancestorsize: u64,
    /// Witness txid.
    pub wtxid: String,
    /// Weight of the entry's chunk (the entry itself in the simulator).
    pub chunkweight: u64,
    /// Fees (BTC).
    pub fees: MempoolFeesJson,
    /// In-mempool parents (txids).
    pub depends: Vec<String>,
    /// In-mempool children (txids).
    pub spentby: Vec<String>,
    /// Not yet announced to a peer (always true: no peers).
    pub unbroadcast: bool,
}

/// Renders a mempool entry.
pub fn mempool_entry_json(entry: &MempoolEntry) -> MempoolEntryJson {
    MempoolEntryJson {
        vsize_adjusted: entry.vsize,
        vsize: entry.vsize,
        vsize_bip141: entry.vsize,
        weight: entry.weight,
        time: entry.time,
        height: entry.height,
        descendantcount: entry.descendant_count,
        descendantsize: entry.descendant_size,
        ancestorcount: entry.ancestor_count,
        ancestorsize: entry.ancestor_size,
        wtxid: entry.wtxid.to_string(),
        chunkweight: entry.weight,
        fees: MempoolFeesJson {
            base: btc(entry.fee),
            modified: btc(entry.fee),
            ancestor: btc(entry.ancestor_fees),
            descendant: btc(entry.descendant_fees),
            chunk: btc(entry.fee),
        },
        depends: entry.depends.iter().map(|t| t.to_string()).collect(),
        spentby: entry.spent_by.iter().map(|t| t.to_string()).collect(),
        // Core keeps a locally submitted transaction "unbroadcast" until a peer asks for it;
        // the simulator has no peers, so it stays so while in the mempool.
        unbroadcast: entry.unbroadcast,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::consensus::encode::deserialize_hex;

    /// The coinbase of block 110 of the transcript (entry 27).
    const COINBASE: &str = "020000000001010000000000000000000000000000000000000000000000000000000000000000ffffffff02016efeffffff0200f2052a01000000160014c112ded4ce75a38fc701f16ff51532d83153ad700000000000000000266a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf9012000000000000000000000000000000000000000000000000000000000000000006d000000";
    /// The wallet transaction of entry 39 (decoderawtransaction).
    const SPEND: &str = "02000000000101dfcffbd54df1859b00f3f883580a8c9d682ff88009e7b2ee6324c05c9a8c246e0000000000fdffffff0200e1f50500000000160014a332e416805a8afc58253ce38f9320e226f4518dfc0510240100000016001415c196c150d1735b42ec1af3ce05ac54f22d279802473044022025626384ea956aaf167f3e411b9355882b30c3f60789410434b1cce65954b48a02203b4c44b556d4d2f0709535bef3565b1c978e76e39e61af841e1abe1195b224840121022b0f186b221713d901e8709376e86dcd0c6b707ae6e0203cd001b1a0b0f36aa76e000000";

    fn transcript_result(index: usize) -> serde_json::Value {
        let text = include_str!("../../../shared/spec/bitcoind/rpc.json");
        let entries: serde_json::Value = serde_json::from_str(text).unwrap();
        entries[index]["response"]["result"].clone()
    }

    #[test]
    fn coinbase_tx_renders_exactly_as_core() {
        let tx: Transaction = deserialize_hex(COINBASE).unwrap();
        let ours = serde_json::to_value(tx_json(&tx, true)).unwrap();
        assert_eq!(ours, transcript_result(27)["tx"][0]);
    }

    #[test]
    fn decoded_spend_renders_exactly_as_core() {
        let tx: Transaction = deserialize_hex(SPEND).unwrap();
        let ours = serde_json::to_value(tx_json(&tx, false)).unwrap();
        assert_eq!(ours, transcript_result(39));
    }

    #[test]
    fn regtest_difficulty_and_target() {
        let bits = CompactTarget::from_consensus(0x207fffff);
        assert_eq!(difficulty(bits), 4.656542373906925e-10);
        assert_eq!(
            target_hex(bits),
            "7fffff0000000000000000000000000000000000000000000000000000000000"
        );
    }
}
