//! The UTXO set of the active chain and the undo data that lets a block be disconnected
//! (Bitcoin Core's `CCoinsViewCache` and `CBlockUndo`).

use std::collections::HashMap;

use bitcoin::{Block, OutPoint, Transaction, TxOut, Txid};

/// An unspent output and where it was created.
#[derive(Clone, Debug)]
pub(crate) struct Coin {
    pub txout: TxOut,
    /// Height of the block that created it.
    pub height: u32,
    pub coinbase: bool,
}

/// Coins a connected block spent, in the order it spent them.
#[derive(Clone, Debug, Default)]
pub(crate) struct BlockUndo {
    pub spent: Vec<(OutPoint, Coin)>,
}

/// The set of unspent outputs at the active tip.
#[derive(Default)]
pub(crate) struct CoinsView {
    map: HashMap<OutPoint, Coin>,
}

impl CoinsView {
    pub fn get(&self, outpoint: &OutPoint) -> Option<&Coin> {
        self.map.get(outpoint)
    }

    /// Whether any output of `txid` (with `n_outputs` outputs) is unspent: the transaction is
    /// confirmed on the active chain and not fully spent.
    pub fn has_any_output(&self, txid: Txid, n_outputs: usize) -> bool {
        (0..n_outputs as u32).any(|vout| self.map.contains_key(&OutPoint { txid, vout }))
    }

    /// Applies a validated block transaction by transaction: removes the coins it spends, adds every spendable output
    /// (Core's `AddCoins` skips provably unspendable ones).
    pub fn apply(&mut self, block: &Block, height: u32) {
        for tx in &block.txdata {
            if !tx.is_coinbase() {
                for input in &tx.input {
                    self.map.remove(&input.previous_output);
                }
            }
            self.add_outputs(tx, height);
        }
    }

    fn add_outputs(&mut self, tx: &Transaction, height: u32) {
        let txid = tx.compute_txid();
        let coinbase = tx.is_coinbase();
        for (vout, txout) in tx.output.iter().enumerate() {
            if txout.script_pubkey.is_op_return() || txout.script_pubkey.len() > 10_000 {
                continue;
            }
            let coin = Coin {
                txout: txout.clone(),
                height,
                coinbase,
            };
            self.map.insert(
                OutPoint {
                    txid,
                    vout: vout as u32,
                },
                coin,
            );
        }
    }

    /// Reverts [`CoinsView::apply`]: removes the block's outputs and restores what it spent.
    pub fn revert(&mut self, block: &Block, undo: &BlockUndo) {
        for tx in block.txdata.iter().rev() {
            let txid = tx.compute_txid();
            for vout in 0..tx.output.len() as u32 {
                self.map.remove(&OutPoint { txid, vout });
            }
        }
        for (outpoint, coin) in undo.spent.iter().rev() {
            self.map.insert(*outpoint, coin.clone());
        }
    }

    /// Iterates over every unspent output.
    pub fn iter(&self) -> impl Iterator<Item = (&OutPoint, &Coin)> {
        self.map.iter()
    }
}
