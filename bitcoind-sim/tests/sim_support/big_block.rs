//! One big block, cheaply: a fan-out transaction splitting a wallet coin, then one "filler" per
//! fan-out output, all in the same block. Fillers look like ordinary P2WPKH payments (one input
//! with a 72-byte signature and a 33-byte key in its witness, two outputs, about 220 bytes) but
//! carry no real signature: the simulator does not run scripts (see the README).
//!
//! Shared by the tests and the `getblock` bench (`#[path]`-included there).

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, WPubkeyHash,
    Witness,
};
use bitcoind_sim::Simulator;
use bitcoind_sim::node::{Node, TxOrTxid};
use bitcoind_sim::wallet::TestWallet;

/// Satoshis each filler pays in fees and sends to its second output.
const CHANGE: u64 = 1_000;

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

/// Mines (with `generateblock`) a block of `txs` transactions counting the coinbase (at least 2):
/// the coinbase then `txs - 1` fillers, spending the outputs of a fan-out transaction mined in the
/// block before. Funds itself first (101 small blocks). Panics on failure (test and bench helper).
pub fn mine_big_block(node: &Node, txs: usize) -> BlockHash {
    assert!(txs >= 2, "a big block has a coinbase and fillers");
    let width = txs - 1;
    let miner = Simulator::mining_address().script_pubkey();
    let wallet = TestWallet::new(7);
    wallet.fund(node, 1).expect("funding the wallet");
    let coin = wallet.spendable(node).into_iter().next().expect("a coin");
    let script = ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([0x42; 20]));
    let each = coin.txout.value.to_sat() / width as u64;
    assert!(each > 3 * CHANGE, "coin too small for {width} fillers");
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
    let fan_out_txid = fan_out.compute_txid();
    node.generate_block(&miner, vec![TxOrTxid::Tx(fan_out)])
        .expect("generateblock of the fan-out");
    let mut block_txs = Vec::with_capacity(width);
    for vout in 0..width as u32 {
        block_txs.push(TxOrTxid::Tx(Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![filler_input(OutPoint {
                txid: fan_out_txid,
                vout,
            })],
            output: vec![
                TxOut {
                    value: Amount::from_sat(each - 2 * CHANGE),
                    script_pubkey: script.clone(),
                },
                TxOut {
                    value: Amount::from_sat(CHANGE),
                    script_pubkey: script.clone(),
                },
            ],
        }));
    }
    node.generate_block(&miner, block_txs)
        .expect("generateblock of the big block")
}
