//! bitcoind-sim in this process, with a funded test wallet: the chain a tower under test follows.

use bitcoin::{Amount, BlockHash, Transaction, Txid};
use bitcoind_sim::wallet::TestWallet;
use bitcoind_sim::{SimConfig, Simulator};

use crate::KitError;

/// Value of the `to_local` output of the breaches [`Chain::breach`] makes.
pub const BREACH_VALUE: Amount = Amount::from_sat(1_000_000);
/// `to_self_delay` (blocks) of the breaches [`Chain::breach`] makes.
pub const BREACH_TO_SELF_DELAY: u16 = 42;

/// How [`Chain::start_with`] sets the simulator up.
#[derive(Clone, Debug)]
pub struct ChainConfig {
    /// Seed of the test wallet's keys (the same seed gives the same keys).
    pub wallet_seed: u64,
    /// Mature coinbase coins the wallet owns at the start, one per breach it can make (`coins`
    /// blocks then 100 more are mined to the wallet, whatever `coins` is).
    pub coins: usize,
    /// Publish ZMQ notifications (`hashblock` and the rest) on an ephemeral port.
    pub zmq: bool,
}

impl Default for ChainConfig {
    /// Wallet seed 7, no coins, ZMQ on.
    fn default() -> Self {
        ChainConfig {
            wallet_seed: 7,
            coins: 0,
            zmq: true,
        }
    }
}

/// The simulator (JSON-RPC with cookie auth and ZMQ on 127.0.0.1, ephemeral ports) plus a funded
/// test wallet, in a temp dir removed on drop.
pub struct Chain {
    /// The simulator; `None` only while [`Chain::restart`] replaces it.
    pub sim: Option<Simulator>,
    /// The wallet that makes breaches (Lightning-like commitment/penalty pairs).
    pub wallet: TestWallet,
    /// The simulator's data dir's parent.
    pub dir: tempfile::TempDir,
}

impl Chain {
    /// Starts bitcoind-sim with ZMQ and a wallet (seed 7) holding `coins` mature coins.
    ///
    /// Errors: [`KitError::Sim`], [`KitError::Io`] (temp dir).
    pub fn start(coins: usize) -> Result<Chain, KitError> {
        Chain::start_with(&ChainConfig {
            coins,
            ..ChainConfig::default()
        })
    }

    /// Starts bitcoind-sim as `config` says.
    ///
    /// Errors: [`KitError::Sim`], [`KitError::Io`] (temp dir).
    pub fn start_with(config: &ChainConfig) -> Result<Chain, KitError> {
        let dir = tempfile::tempdir().map_err(|e| KitError::io("creating a temp dir", e))?;
        let mut sim_config = SimConfig::new(dir.path().join("bitcoind"));
        sim_config.zmq = config.zmq;
        let sim = Simulator::start(sim_config).map_err(KitError::sim)?;
        let wallet = TestWallet::new(config.wallet_seed);
        wallet
            .fund(&sim.node(), config.coins)
            .map_err(KitError::sim)?;
        Ok(Chain {
            sim: Some(sim),
            wallet,
            dir,
        })
    }

    /// The simulator.
    ///
    /// # Panics
    /// During a failed [`Chain::restart`] (there is no simulator then).
    pub fn sim(&self) -> &Simulator {
        match &self.sim {
            Some(sim) => sim,
            None => panic!("bitcoind-sim is not running (a restart failed)"),
        }
    }

    /// Mines `n` blocks (taking the mempool) to the simulator's mining address; their hashes.
    ///
    /// # Panics
    /// If the simulator cannot mine (see [`Simulator::mine`]).
    pub fn mine(&self, n: u32) -> Vec<BlockHash> {
        self.sim().mine(n)
    }

    /// Height of the active chain's tip.
    pub fn height(&self) -> u32 {
        self.sim().node().block_count()
    }

    /// Height and hash of the active chain's tip.
    pub fn tip(&self) -> (u32, BlockHash) {
        let node = self.sim().node();
        (node.block_count(), node.best_block_hash())
    }

    /// Whether `txid` is in the mempool.
    pub fn in_mempool(&self, txid: &Txid) -> bool {
        self.sim().node().mempool_entry(txid).is_some()
    }

    /// Confirmations of `txid` on the active chain (0 if unconfirmed or unknown).
    pub fn confirmations(&self, txid: &Txid) -> i64 {
        match self.sim().node().get_transaction(txid, None) {
            Ok(found) => found.block.map_or(0, |b| {
                if b.in_active_chain || b.confirmations > 0 {
                    b.confirmations
                } else {
                    0
                }
            }),
            Err(_) => 0,
        }
    }

    /// Puts `tx` into the mempool (as `sendrawtransaction` would).
    ///
    /// Errors: [`KitError::Sim`] with the simulator's reason for refusing it.
    pub fn broadcast(&self, tx: &Transaction) -> Result<(), KitError> {
        self.sim()
            .node()
            .accept_transaction(tx.clone(), None, false)
            .map(|_| ())
            .map_err(|e| KitError::Sim(format!("refused {}: {e:?}", tx.compute_txid())))
    }

    /// Restarts bitcoind-sim on the same ports (new cookie), keeping or emptying its mempool.
    ///
    /// Errors: [`KitError::Sim`] (the chain then has no simulator: see [`Chain::sim`]).
    pub fn restart(&mut self, keep_mempool: bool) -> Result<(), KitError> {
        let sim = self.sim.take().ok_or(KitError::Sim("not running".into()))?;
        self.sim = Some(sim.restart(keep_mempool).map_err(KitError::sim)?);
        Ok(())
    }

    /// A commitment/penalty pair as Lightning would make it ([`BREACH_VALUE`],
    /// [`BREACH_TO_SELF_DELAY`]); nothing is broadcast. Each uses up one of the wallet's coins.
    ///
    /// Errors: [`KitError::Sim`] (no coin left).
    pub fn breach(&self) -> Result<(Transaction, Transaction), KitError> {
        let breach = self
            .wallet
            .build_breach(&self.sim().node(), BREACH_VALUE, BREACH_TO_SELF_DELAY)
            .map_err(KitError::sim)?;
        Ok((breach.commitment, breach.penalty))
    }
}
