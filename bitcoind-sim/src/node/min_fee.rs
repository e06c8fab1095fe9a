//! The mempool's dynamic minimum fee, as a full Bitcoin Core mempool has it (`CTxMemPool::GetMinFee`,
//! `TrimToSize`): once the mempool outgrows `-maxmempool`, Core evicts its cheapest transactions
//! and refuses new ones paying less than the evicted ones (-26 "mempool min fee not met, <fee> <
//! <min fee>", checked by `CheckFeeRate` before the min relay fee). The simulator never fills up,
//! so a test sets the floor directly ([`super::Node::set_mempool_min_fee`]).
//!
//! Simplifications: the floor does not decay with time (Core halves it every 12 hours once
//! blocks arrive) and it goes back only when set again; eviction takes, repeatedly, the
//! transaction with the lowest descendant score (the higher of its own feerate and that of it with
//! its descendants) with its descendants while that score is below the floor, as Core did before
//! the cluster mempool (v31 evicts its worst chunks).

use bitcoin::Txid;

use super::policy::{INCREMENTAL_RELAY_FEE_PER_KVB, fee_at};
use super::state::State;

impl State {
    /// Core's `GetMinFee()`: 0 when no floor is set, else the floor but at least the incremental
    /// relay fee (satoshis per 1000 vbytes).
    pub fn mempool_reject_rate(&self) -> u64 {
        match self.rolling_min_fee {
            0 => 0,
            rate => rate.max(INCREMENTAL_RELAY_FEE_PER_KVB),
        }
    }

    /// `getmempoolinfo`'s `mempoolminfee`: the higher of [`Self::mempool_reject_rate`] and the
    /// min relay fee (satoshis per 1000 vbytes).
    pub fn mempool_min_fee(&self) -> u64 {
        self.mempool_reject_rate().max(self.min_relay_fee)
    }

    /// The fee (satoshis) a transaction of `vsize` vbytes must pay to enter the mempool under the
    /// floor; 0 when no floor is set.
    pub fn mempool_reject_fee(&self, vsize: u64) -> u64 {
        fee_at(self.mempool_reject_rate(), vsize)
    }

    /// Sets the floor (satoshis per 1000 vbytes; 0 = none, as in an uncongested mempool) and
    /// evicts what pays less, reporting each eviction like any other removal ('R').
    pub fn set_mempool_min_fee(&mut self, per_kvb: u64) {
        self.rolling_min_fee = per_kvb;
        let floor = self.mempool_reject_rate();
        if floor == 0 {
            return;
        }
        while let Some(worst) = self.cheapest_below(floor) {
            let doomed = self.mempool.with_descendants(&[worst]);
            self.remove_from_mempool(&doomed, true);
        }
    }

    /// The mempool transaction with the lowest descendant score, if that score is below `floor`
    /// (satoshis per 1000 vbytes); the first entered among equals.
    fn cheapest_below(&self, floor: u64) -> Option<Txid> {
        let below =
            |fee: u64, vsize: u64| u128::from(fee) * 1000 < u128::from(floor) * u128::from(vsize);
        let mut worst: Option<(f64, Txid)> = None;
        for e in self.mempool.ordered() {
            let Some(entry) = self.mempool.entry(&e.txid) else {
                continue;
            };
            let own = (entry.fee.to_sat(), entry.vsize);
            let package = (entry.descendant_fees.to_sat(), entry.descendant_size);
            if !(below(own.0, own.1) && below(package.0, package.1)) {
                continue;
            }
            let rate = |(fee, vsize): (u64, u64)| fee as f64 / vsize.max(1) as f64;
            let score = rate(own).max(rate(package));
            if worst.is_none_or(|(w, _)| score < w) {
                worst = Some((score, e.txid));
            }
        }
        worst.map(|(_, txid)| txid)
    }
}
