//! Packages: Bitcoin Core's `ProcessNewPackage` for `submitpackage` (`AcceptPackage`) and for
//! `testmempoolaccept` of several transactions (`AcceptMultipleTransactions` in test mode), as
//! recorded in `../shared/spec/bitcoind/mempool.json` (Core v28.99).
//!
//! `submitpackage` takes exactly one child with all of its unconfirmed parents, parents first.
//! Each transaction not yet in the mempool is first tried alone (and stays in the mempool when it
//! passes); the ones refused only for their feerate ("min relay fee not met", "mempool min fee
//! not met"), or for inputs that a refused parent would create, are then evaluated together, their
//! fees and sizes summed (the package feerate), so a zero-fee parent gets in with a child paying
//! for both. Any other refusal ends the package ("transaction failed"), after the remaining
//! transactions were still tried alone.
//!
//! Simplification: package replace-by-fee applies the single-transaction rules to the package's
//! totals (Core v28 restricts it to one parent and one child and words its errors differently).

use std::collections::{HashMap, HashSet};

use bitcoin::{Amount, Transaction, Txid, Wtxid};

use super::accept::{AcceptOptions, Checked, PackageView, reject};
use super::state::State;
use super::{Accepted, PackageResult, PackageTxResult, Rejection};

/// Core's `MAX_PACKAGE_COUNT`.
pub(crate) const MAX_PACKAGE_COUNT: usize = 25;
/// Core's `MAX_PACKAGE_WEIGHT` (weight units).
const MAX_PACKAGE_WEIGHT: u64 = 404_000;
/// RPC_INVALID_PARAMETER.
const RPC_INVALID_PARAMETER: i32 = -8;
/// RPC_VERIFY_ERROR (Core's `TransactionError::INVALID_PACKAGE`).
const RPC_VERIFY_ERROR: i32 = -25;

/// What a package evaluation gives each transaction that entered: its wtxid, outcome, and the
/// txids it replaced.
type Entered = Vec<(Wtxid, PackageTxResult, Vec<Txid>)>;

/// Per transaction of a package test: `None` when not evaluated, else its acceptance or refusal.
pub type PackageTest = Vec<Option<Result<Accepted, Rejection>>>;

/// Core's `CFeeRate(fee, vsize).GetFeePerK()`: satoshis per 1000 vbytes, truncated.
pub fn fee_per_kvb(fee: Amount, vsize: u64) -> u64 {
    match vsize {
        0 => 0,
        v => (u128::from(fee.to_sat()) * 1000 / u128::from(v)) as u64,
    }
}

/// Core's `IsChildWithParents`: at least two transactions, and every one but the last is spent
/// by the last.
fn is_child_with_parents(txs: &[Transaction]) -> bool {
    let Some((child, parents)) = txs.split_last() else {
        return false;
    };
    if parents.is_empty() {
        return false;
    }
    let spent: HashSet<Txid> = child.input.iter().map(|i| i.previous_output.txid).collect();
    parents.iter().all(|p| spent.contains(&p.compute_txid()))
}

/// Core's `IsChildWithParentsTree`: [`is_child_with_parents`] and no parent spends another.
pub(crate) fn is_child_with_parents_tree(txs: &[Transaction]) -> bool {
    if !is_child_with_parents(txs) {
        return false;
    }
    let parents = &txs[..txs.len() - 1];
    let ids: HashSet<Txid> = parents.iter().map(Transaction::compute_txid).collect();
    parents.iter().all(|p| {
        p.input
            .iter()
            .all(|i| !ids.contains(&i.previous_output.txid))
    })
}

/// Core's `IsWellFormedPackage` (sorted required): the package-wide policy reason when not.
fn well_formed(txs: &[Transaction]) -> Result<(), &'static str> {
    if txs.len() > MAX_PACKAGE_COUNT {
        return Err("package-too-many-transactions");
    }
    let weight: u64 = txs.iter().map(|t| t.weight().to_wu()).sum();
    if txs.len() > 1 && weight > MAX_PACKAGE_WEIGHT {
        return Err("package-too-large");
    }
    let ids: Vec<Txid> = txs.iter().map(Transaction::compute_txid).collect();
    let mut later: HashSet<Txid> = ids.iter().copied().collect();
    if later.len() != txs.len() {
        return Err("package-contains-duplicates");
    }
    for (tx, id) in txs.iter().zip(&ids) {
        if tx
            .input
            .iter()
            .any(|i| later.contains(&i.previous_output.txid))
        {
            return Err("package-not-sorted");
        }
        later.remove(id);
    }
    let mut spent = HashSet::new();
    for tx in txs {
        if tx.input.is_empty() || !tx.input.iter().all(|i| spent.insert(i.previous_output)) {
            return Err("conflict-in-package");
        }
    }
    Ok(())
}

/// A refusal the package feerate may overturn (Core's `TX_RECONSIDERABLE`), or missing inputs
/// (a parent refused for its feerate would create them).
fn worth_package_evaluation(r: &Rejection) -> bool {
    matches!(
        r.reason.as_str(),
        "min relay fee not met" | "mempool min fee not met" | "missing-inputs"
    )
}

/// An error of the call itself (Core throws these before validating anything).
fn rpc_error(code: i32, message: String) -> Rejection {
    Rejection {
        code,
        reason: String::new(),
        message,
    }
}

fn failed(txid: Txid, r: &Rejection) -> PackageTxResult {
    PackageTxResult::Rejected {
        txid,
        error: r.message.clone(),
    }
}

/// Core's `maxfeerate` check inside package validation: "max feerate exceeded".
fn check_max_fee_rate(max_per_kvb: Option<u64>, fee: u64, vsize: u64) -> Result<(), Rejection> {
    match max_per_kvb {
        Some(max) if fee_per_kvb(Amount::from_sat(fee), vsize) > max => {
            Err(reject(-26, "max feerate exceeded", ""))
        }
        _ => Ok(()),
    }
}

impl State {
    /// `submitpackage`: see the module documentation and [`super::Node::submit_package`].
    /// `max_fee_per_kvb`: satoshis per 1000 vbytes, `None` = no limit.
    pub fn submit_package(
        &mut self,
        txs: Vec<Transaction>,
        max_fee_per_kvb: Option<u64>,
    ) -> Result<PackageResult, Rejection> {
        if txs.len() < 2 || txs.len() > MAX_PACKAGE_COUNT {
            return Err(rpc_error(
                RPC_INVALID_PARAMETER,
                format!("Array must contain between 2 and {MAX_PACKAGE_COUNT} transactions."),
            ));
        }
        if !is_child_with_parents_tree(&txs) {
            return Err(rpc_error(
                RPC_VERIFY_ERROR,
                "package topology disallowed. not child-with-parents or parents depend on each other."
                    .into(),
            ));
        }
        let mut result = PackageResult {
            message: "success".into(),
            results: Vec::new(),
            replaced: Vec::new(),
        };
        if let Err(reason) = well_formed(&txs) {
            result.message = reason.into();
            return Ok(result);
        }
        if !self.child_spends_only_package_or_chain(&txs) {
            result.message = "package-not-child-with-unconfirmed-parents".into();
            return Ok(result);
        }
        let mut outcomes: HashMap<Wtxid, PackageTxResult> = HashMap::new();
        let mut to_evaluate: Vec<Transaction> = Vec::new();
        let mut quit_early = false;
        for tx in &txs {
            let (txid, wtxid) = (tx.compute_txid(), tx.compute_wtxid());
            if let Some(e) = self.mempool.get(&txid) {
                let outcome = if e.wtxid == wtxid {
                    PackageTxResult::InMempool {
                        txid,
                        vsize: e.vsize,
                        fee: e.fee,
                    }
                } else {
                    PackageTxResult::DifferentWitness {
                        txid,
                        other_wtxid: e.wtxid,
                    }
                };
                outcomes.insert(wtxid, outcome);
                continue;
            }
            match self.accept_in_package(tx, max_fee_per_kvb) {
                Ok(accepted) => {
                    result.replaced.extend(&accepted.replaced);
                    outcomes.insert(wtxid, accepted_alone(&accepted));
                }
                Err(r) => {
                    if !worth_package_evaluation(&r) {
                        quit_early = true;
                    } else {
                        to_evaluate.push(tx.clone());
                    }
                    outcomes.insert(wtxid, failed(txid, &r));
                }
            }
        }
        if quit_early {
            result.message = "transaction failed".into();
        } else if !to_evaluate.is_empty() {
            match self.accept_together(&to_evaluate, max_fee_per_kvb) {
                Ok(accepted) => {
                    for (wtxid, outcome, replaced) in accepted {
                        result.replaced.extend(replaced);
                        outcomes.insert(wtxid, outcome);
                    }
                }
                Err((wtxid, outcome)) => {
                    result.message = "transaction failed".into();
                    outcomes.insert(wtxid, outcome);
                }
            }
        }
        result.replaced.sort();
        result.replaced.dedup();
        result.results = txs
            .iter()
            .filter_map(|tx| {
                let wtxid = tx.compute_wtxid();
                outcomes.remove(&wtxid).map(|o| (wtxid, o))
            })
            .collect();
        Ok(result)
    }

    /// Every input of the last transaction spends an earlier package transaction or a confirmed
    /// coin (Core: "package-not-child-with-unconfirmed-parents" otherwise).
    fn child_spends_only_package_or_chain(&self, txs: &[Transaction]) -> bool {
        let Some((child, parents)) = txs.split_last() else {
            return false;
        };
        let ids: HashSet<Txid> = parents.iter().map(Transaction::compute_txid).collect();
        child.input.iter().all(|i| {
            ids.contains(&i.previous_output.txid) || self.coins.get(&i.previous_output).is_some()
        })
    }

    /// One package transaction tried alone (Core's `AcceptSubPackage({tx})`): every check, the
    /// package's `maxfeerate`, then into the mempool.
    fn accept_in_package(
        &mut self,
        tx: &Transaction,
        max_fee_per_kvb: Option<u64>,
    ) -> Result<Accepted, Rejection> {
        let opts = AcceptOptions {
            in_package: true,
            ..AcceptOptions::default()
        };
        let checked = self.pre_checks(tx, &opts, &PackageView::default())?;
        check_max_fee_rate(max_fee_per_kvb, checked.fee, checked.vsize)?;
        Ok(self.commit(tx.clone(), &checked, &AcceptOptions::default()))
    }

    /// Core's `AcceptMultipleTransactions`: every check but the individual fee floors, with the
    /// earlier transactions' outputs visible to the later ones; then the package feerate (total
    /// fees over total size) against the mempool minimum and min relay fees, charged to the last
    /// transaction; then all enter the mempool in order. On failure nothing changes and the
    /// failing transaction's outcome is returned.
    fn accept_together(
        &mut self,
        txs: &[Transaction],
        max_fee_per_kvb: Option<u64>,
    ) -> Result<Entered, (Wtxid, PackageTxResult)> {
        if let [tx] = txs {
            let (txid, wtxid) = (tx.compute_txid(), tx.compute_wtxid());
            return match self.accept_in_package(tx, max_fee_per_kvb) {
                Ok(a) => Ok(vec![(wtxid, accepted_alone(&a), a.replaced)]),
                Err(r) => Err((wtxid, failed(txid, &r))),
            };
        }
        let opts = AcceptOptions {
            package_feerates: true,
            in_package: true,
            ..AcceptOptions::default()
        };
        let mut view = PackageView::default();
        let mut checked: Vec<Checked> = Vec::with_capacity(txs.len());
        for tx in txs {
            let outcome = self
                .pre_checks(tx, &opts, &view)
                .and_then(|c| check_max_fee_rate(max_fee_per_kvb, c.fee, c.vsize).map(|()| c));
            match outcome {
                Ok(c) => checked.push(c),
                Err(r) => return Err((tx.compute_wtxid(), failed(tx.compute_txid(), &r))),
            }
            view.add(tx);
        }
        let total_fee: u64 = checked.iter().map(|c| c.fee).sum();
        let total_vsize: u64 = checked.iter().map(|c| c.vsize).sum();
        let last = &txs[txs.len() - 1];
        if let Err(r) = self.check_fee_rate(total_fee, total_vsize) {
            return Err((last.compute_wtxid(), failed(last.compute_txid(), &r)));
        }
        let replaced: Vec<Txid> = {
            let mut all: Vec<Txid> = checked.iter().flat_map(|c| c.replaced.clone()).collect();
            all.sort();
            all.dedup();
            all
        };
        if !replaced.is_empty() {
            let replaced = self.mempool.with_descendants(&replaced);
            let txid = last.compute_txid();
            if let Err(r) = self.replacement_checks(last, txid, total_fee, total_vsize, &replaced) {
                return Err((last.compute_wtxid(), failed(txid, &r)));
            }
        }
        let includes: Vec<Wtxid> = txs.iter().map(Transaction::compute_wtxid).collect();
        let rate = fee_per_kvb(Amount::from_sat(total_fee), total_vsize);
        let mut out = Vec::with_capacity(txs.len());
        for (tx, c) in txs.iter().zip(checked) {
            let a = self.commit(tx.clone(), &c, &AcceptOptions::default());
            let outcome = PackageTxResult::Accepted {
                txid: a.txid,
                vsize: a.vsize,
                fee: a.fee,
                effective_feerate_per_kvb: rate,
                effective_includes: includes.clone(),
            };
            out.push((a.wtxid, outcome, a.replaced));
        }
        Ok(out)
    }

    /// `testmempoolaccept` of several transactions (Core's `ProcessNewPackage` in test mode):
    /// checked in order, each seeing the outputs of the earlier ones, each against its own fee
    /// floors (no package feerate). Stops at the first refusal: the earlier and later ones are
    /// then `None` (Core answers only their txid and wtxid). `Err` carries a package-wide
    /// policy reason ("package-not-sorted", "conflict-in-package", ...).
    pub fn test_package(&self, txs: &[Transaction]) -> Result<PackageTest, &'static str> {
        well_formed(txs)?;
        let opts = AcceptOptions {
            test_only: true,
            in_package: true,
            ..AcceptOptions::default()
        };
        let mut view = PackageView::default();
        let mut accepted = Vec::with_capacity(txs.len());
        for (i, tx) in txs.iter().enumerate() {
            match self.pre_checks(tx, &opts, &view) {
                Ok(c) => accepted.push(super::accept::accepted(tx, &c)),
                Err(r) => {
                    let mut out: PackageTest = vec![None; txs.len()];
                    out[i] = Some(Err(r));
                    return Ok(out);
                }
            }
            view.add(tx);
        }
        Ok(accepted.into_iter().map(|a| Some(Ok(a))).collect())
    }
}

/// The outcome of a transaction accepted on its own: its own feerate, only itself included.
fn accepted_alone(a: &Accepted) -> PackageTxResult {
    PackageTxResult::Accepted {
        txid: a.txid,
        vsize: a.vsize,
        fee: a.fee,
        effective_feerate_per_kvb: fee_per_kvb(a.fee, a.vsize),
        effective_includes: vec![a.wtxid],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feerate_truncates_like_core() {
        assert_eq!(fee_per_kvb(Amount::from_sat(10_000), 110), 90_909);
        assert_eq!(fee_per_kvb(Amount::from_sat(20_000), 220), 90_909);
        assert_eq!(fee_per_kvb(Amount::ZERO, 110), 0);
    }
}
