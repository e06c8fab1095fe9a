//! Big blocks, cheaply, for tests and benchmarks: "filler" transactions that look like ordinary
//! P2WPKH payments (one input with a 2-item witness, two outputs, about 220 bytes) but carry no real
//! signature.
//!
//! The simulator checks blocks like Core does except that it does not run scripts (see the
//! README), so a block given to `generateblock` only needs its inputs to exist. One fan-out
//! transaction makes `width` outputs; every later block spends each of them once and leaves a new
//! output in its place, so any number of blocks of `width` fillers can follow without signing.

use std::collections::VecDeque;

use crate::node::{Node, OwnedOutput, TxOrTxid};
use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, WPubkeyHash,
    Witness,
};

/// What each filler sends to the next one's input runs down by this much per block (satoshis): the
/// second output, so each filler has two outputs like a payment with change.
const CHANGE: u64 = 1_000;

/// Why fillers could not be made or mined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FillerError {
    /// The coin cannot fund `width` outputs of more than `CHANGE` × 1,000 satoshis each.
    #[error("a coin of {value} cannot fund {width} fillers")]
    CoinTooSmall { value: Amount, width: usize },
    /// More fillers asked than spendable outputs.
    #[error("{asked} fillers asked, {available} outputs available")]
    TooMany { asked: usize, available: usize },
    /// An output has too little left to pay another filler.
    #[error("a filler output ran dry")]
    Dry,
    /// The node refused the block (its error message).
    #[error("generateblock refused: {0}")]
    Refused(String),
}

/// Spendable filler outputs (each with its value) and the script fillers pay to.
pub struct Fillers {
    outputs: VecDeque<(OutPoint, Amount)>,
    script: ScriptBuf,
}

impl Fillers {
    /// Mines a block on `node` holding one fan-out transaction that splits `coin` into `width`
    /// outputs. Returns the filler set and the block hash.
    ///
    /// Errors: the coin is too small for `width` outputs of more than [`CHANGE`] × 1,000 satoshis,
    /// or the node refused the block.
    pub fn fan_out(
        node: &Node,
        coin: &OwnedOutput,
        width: usize,
        miner: &ScriptBuf,
    ) -> Result<(Fillers, BlockHash), FillerError> {
        let script = ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([0x42; 20]));
        let each = coin.txout.value.to_sat() / width.max(1) as u64;
        if each < CHANGE * 1_000 {
            return Err(FillerError::CoinTooSmall {
                value: coin.txout.value,
                width,
            });
        }
        let fan_out = Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![filler_input(coin.outpoint)],
            output: (0..width)
                .map(|_| TxOut {
                    value: Amount::from_sat(each),
                    script_pubkey: script.clone(),
                })
                .collect(),
        };
        let txid = fan_out.compute_txid();
        let hash = mine(node, vec![fan_out], miner)?;
        let outputs = (0..width as u32)
            .map(|vout| (OutPoint { txid, vout }, Amount::from_sat(each)))
            .collect();
        Ok((Fillers { outputs, script }, hash))
    }

    /// Number of spendable filler outputs (the most fillers one block can take).
    pub fn width(&self) -> usize {
        self.outputs.len()
    }

    /// `n` filler transactions spending the `n` oldest outputs; their first outputs join the set.
    /// Errors: `n` is more than [`width`](Self::width), or an output ran dry.
    pub fn take(&mut self, n: usize) -> Result<Vec<Transaction>, FillerError> {
        if n > self.outputs.len() {
            return Err(FillerError::TooMany {
                asked: n,
                available: self.outputs.len(),
            });
        }
        let mut txs = Vec::with_capacity(n);
        for _ in 0..n {
            let Some((outpoint, value)) = self.outputs.pop_front() else {
                break;
            };
            let Some(next) = value.to_sat().checked_sub(CHANGE).filter(|v| *v > CHANGE) else {
                return Err(FillerError::Dry);
            };
            let tx = Transaction {
                version: Version::TWO,
                lock_time: LockTime::ZERO,
                input: vec![filler_input(outpoint)],
                output: vec![
                    TxOut {
                        value: Amount::from_sat(next),
                        script_pubkey: self.script.clone(),
                    },
                    TxOut {
                        value: Amount::from_sat(CHANGE),
                        script_pubkey: self.script.clone(),
                    },
                ],
            };
            let txid = tx.compute_txid();
            self.outputs
                .push_back((OutPoint { txid, vout: 0 }, Amount::from_sat(next)));
            txs.push(tx);
        }
        Ok(txs)
    }
}

/// An input spending `outpoint` with a witness shaped like a P2WPKH spend (72-byte signature,
/// 33-byte key), so block sizes are realistic.
fn filler_input(previous_output: OutPoint) -> TxIn {
    let mut signature = vec![0x30u8; 71];
    signature.push(0x01);
    let mut key = vec![0x02u8];
    key.extend_from_slice(&[0x11u8; 32]);
    TxIn {
        previous_output,
        script_sig: ScriptBuf::new(),
        sequence: Sequence::MAX,
        witness: Witness::from_slice(&[signature, key]),
    }
}

/// `generateblock` with exactly `txs` (after the coinbase, paying `miner`); returns the block hash.
pub fn mine(
    node: &Node,
    txs: Vec<Transaction>,
    miner: &ScriptBuf,
) -> Result<BlockHash, FillerError> {
    node.generate_block(miner, txs.into_iter().map(TxOrTxid::Tx).collect())
        .map_err(|e| FillerError::Refused(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wallet::TestWallet;
    use crate::{SimConfig, Simulator};

    #[test]
    fn fillers_make_blocks_of_the_requested_size_again_and_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SimConfig::new(dir.path());
        config.zmq = false;
        let sim = Simulator::start(config).unwrap();
        let node = sim.node();
        let wallet = TestWallet::new(3);
        wallet.fund(&node, 1).unwrap();
        let coin = wallet.spendable(&node).remove(0);
        let miner = Simulator::mining_address().script_pubkey();

        let (mut fillers, fan_out_block) = Fillers::fan_out(&node, &coin, 50, &miner).unwrap();
        assert_eq!(node.best_block_hash(), fan_out_block);
        assert_eq!(fillers.width(), 50);
        for _ in 0..3 {
            let txs = fillers.take(50).unwrap();
            let hash = mine(&node, txs, &miner).unwrap();
            let block = node.block(&hash).unwrap();
            assert_eq!(block.txdata.len(), 51, "coinbase + 50 fillers");
            assert_eq!(node.best_block_hash(), hash);
        }
        assert!(fillers.take(51).is_err(), "more fillers than outputs");
    }
}
