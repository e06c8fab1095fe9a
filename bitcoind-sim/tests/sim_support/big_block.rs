//! One big block, cheaply, with the library's fillers (`bitcoind_sim::fillers`): a fan-out
//! transaction splitting a wallet coin, then one filler per fan-out output in the next block.
//!
//! Shared by the tests and the `getblock` bench (`#[path]`-included there).

use bitcoin::BlockHash;
use bitcoind_sim::Simulator;
use bitcoind_sim::fillers::{Fillers, mine};
use bitcoind_sim::node::Node;
use bitcoind_sim::wallet::TestWallet;

/// Mines a block of `txs` transactions counting the coinbase (at least 2): the coinbase then
/// `txs - 1` fillers, spending the outputs of a fan-out transaction mined in the block before.
/// Funds itself first (101 small blocks). Panics on failure (test and bench helper).
pub fn mine_big_block(node: &Node, txs: usize) -> BlockHash {
    assert!(txs >= 2, "a big block has a coinbase and fillers");
    let width = txs - 1;
    let miner = Simulator::mining_address().script_pubkey();
    let wallet = TestWallet::new(7);
    wallet.fund(node, 1).expect("funding the wallet");
    let coin = wallet.spendable(node).into_iter().next().expect("a coin");
    let (mut fillers, _) = Fillers::fan_out(node, &coin, width, &miner).expect("the fan-out");
    let block_txs = fillers.take(width).expect("the fillers");
    mine(node, block_txs, &miner).expect("generateblock of the big block")
}
