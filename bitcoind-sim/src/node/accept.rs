//! Mempool acceptance as Bitcoin Core's `BroadcastTransaction` + `AcceptToMemoryPool` do it, in
//! Core's check order and with its codes and messages (`PreChecks`, `CheckTxInputs`,
//! `CheckFeeRate` with the dynamic mempool minimum fee of `min_fee.rs`, `ReplacementChecks`). Scripts and signatures are not verified (documented
//! simplification); cluster-size limits are not enforced.

use std::collections::{HashMap, HashSet};

use bitcoin::{Amount, OutPoint, Transaction, TxOut, Txid, Wtxid};

use super::mempool::PoolTx;
use super::policy::{self, COINBASE_MATURITY, MAX_MONEY, format_money};
use super::state::{State, now};
use super::validation;
use super::{Accepted, NodeEvent, Rejection};

/// RPC_VERIFY_ERROR: missing inputs, fee above `maxfeerate`.
const RPC_VERIFY_ERROR: i32 = -25;
/// RPC_VERIFY_REJECTED: every other policy or consensus rejection.
const RPC_VERIFY_REJECTED: i32 = -26;
/// RPC_VERIFY_ALREADY_IN_UTXO_SET.
const RPC_VERIFY_ALREADY_IN_UTXO_SET: i32 = -27;
/// Core's `MAX_REPLACEMENT_CANDIDATES`.
const MAX_REPLACEMENT_CANDIDATES: usize = 100;

/// How a transaction is offered to the mempool.
#[derive(Clone, Debug, Default)]
pub(crate) struct AcceptOptions {
    /// Check only (`testmempoolaccept`); the mempool is not changed.
    pub test_only: bool,
    /// Skip the fee floor, as for transactions of disconnected blocks.
    pub bypass_limits: bool,
    /// `maxfeerate` in satoshis per 1000 vbytes; `None` = no limit.
    pub max_fee_per_kvb: Option<u64>,
    /// Entry time to record (seconds since the epoch) instead of now (mempool.dat).
    pub time: Option<u64>,
    /// Record it as locally submitted and not yet announced to a peer (Core's unbroadcast set:
    /// `sendrawtransaction` of a new transaction; not packages, reorgs or mempool.dat).
    pub unbroadcast: bool,
    /// Part of a `submitpackage` (Core's package `ATMPArgs`): no TRUC sibling eviction.
    pub in_package: bool,
    /// Skip the individual fee floors (mempool min fee, min relay fee): the caller checks the
    /// package feerate instead (Core's `m_package_feerates`).
    pub package_feerates: bool,
}

/// The outputs of earlier transactions of a package under evaluation, which are not in the
/// mempool yet (Core's `CCoinsViewMemPool::PackageAddTransaction`).
#[derive(Default)]
pub(crate) struct PackageView {
    outputs: HashMap<OutPoint, TxOut>,
    /// Version and wtxid of each transaction added, by txid (for the TRUC rules).
    txs: HashMap<Txid, (i32, Wtxid)>,
}

impl PackageView {
    /// Makes `tx`'s outputs spendable by later package transactions.
    pub fn add(&mut self, tx: &Transaction) {
        let txid = tx.compute_txid();
        self.txs.insert(txid, (tx.version.0, tx.compute_wtxid()));
        for (vout, out) in tx.output.iter().enumerate() {
            let outpoint = OutPoint {
                txid,
                vout: vout as u32,
            };
            self.outputs.insert(outpoint, out.clone());
        }
    }

    fn output(&self, outpoint: &OutPoint) -> Option<&TxOut> {
        self.outputs.get(outpoint)
    }

    /// Version and wtxid of a package transaction added earlier.
    pub fn tx(&self, txid: &Txid) -> Option<(i32, Wtxid)> {
        self.txs.get(txid).copied()
    }
}

/// A transaction that passed every check.
pub(crate) struct Checked {
    pub txid: Txid,
    pub fee: u64,
    pub vsize: u64,
    /// Direct conflicts and their descendants, parents first.
    pub replaced: Vec<Txid>,
}

pub(crate) fn reject(code: i32, reason: &str, debug: impl Into<String>) -> Rejection {
    let debug = debug.into();
    let message = if debug.is_empty() {
        reason.to_string()
    } else {
        format!("{reason}, {debug}")
    };
    Rejection {
        code,
        reason: reason.to_string(),
        message,
    }
}

pub(crate) fn rejected(reason: &str, debug: impl Into<String>) -> Rejection {
    reject(RPC_VERIFY_REJECTED, reason, debug)
}

impl State {
    /// `sendrawtransaction` (`test_only` false) or `testmempoolaccept` (true) semantics: for a
    /// send, a confirmed transaction is -27 and one already in the mempool is accepted as is.
    pub fn broadcast(
        &mut self,
        tx: Transaction,
        max_fee_per_kvb: Option<u64>,
        test_only: bool,
    ) -> Result<Accepted, Rejection> {
        let txid = tx.compute_txid();
        if !test_only {
            if self.coins.has_any_output(txid, tx.output.len()) {
                return Err(reject(
                    RPC_VERIFY_ALREADY_IN_UTXO_SET,
                    "txn-already-known",
                    String::new(),
                )
                .with_message("Transaction outputs already in utxo set"));
            }
            if let Some(e) = self.mempool.get(&txid) {
                return Ok(Accepted {
                    txid,
                    wtxid: e.wtxid,
                    vsize: e.vsize,
                    fee: e.fee,
                    replaced: Vec::new(),
                });
            }
        }
        let opts = AcceptOptions {
            test_only,
            max_fee_per_kvb,
            unbroadcast: true,
            ..Default::default()
        };
        self.accept(tx, &opts)
    }

    /// Core's `AcceptToMemoryPool`: all checks, then (unless `test_only`) evict what it replaces
    /// (reported removed) and add it (reported added).
    pub fn accept(&mut self, tx: Transaction, opts: &AcceptOptions) -> Result<Accepted, Rejection> {
        let checked = self.pre_checks(&tx, opts, &PackageView::default())?;
        if let Some(max) = opts.max_fee_per_kvb
            && max > 0
            && checked.fee > policy::fee_at(max, checked.vsize)
        {
            return Err(
                reject(RPC_VERIFY_ERROR, "max-fee-exceeded", String::new()).with_message(
                    "Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)",
                ),
            );
        }
        if opts.test_only {
            return Ok(accepted(&tx, &checked));
        }
        Ok(self.commit(tx, &checked, opts))
    }

    /// Adds a checked transaction: evicts what it replaces (reported removed, in Core's order),
    /// then inserts it (reported added). The mempool sequence advances once per change.
    pub(crate) fn commit(
        &mut self,
        tx: Transaction,
        checked: &Checked,
        opts: &AcceptOptions,
    ) -> Accepted {
        let accepted = accepted(&tx, checked);
        let wtxid = accepted.wtxid;
        self.remove_from_mempool(&checked.replaced, true);
        let entry = PoolTx {
            txid: checked.txid,
            wtxid,
            fee: Amount::from_sat(checked.fee),
            vsize: checked.vsize,
            weight: tx.weight().to_wu(),
            time: opts.time.unwrap_or_else(now),
            unbroadcast: opts.unbroadcast,
            height: self.tree.height(),
            order: 0,
            tx: tx.clone(),
        };
        self.mempool.insert(entry);
        let seq = self.next_mempool_seq();
        self.emit(NodeEvent::TxAdded {
            tx,
            mempool_sequence: seq,
        });
        accepted
    }

    /// Core's `PreChecks` plus `ReplacementChecks`, in Core's order; `view` holds the outputs of
    /// earlier transactions of the package being evaluated (empty for a lone transaction).
    pub(crate) fn pre_checks(
        &self,
        tx: &Transaction,
        opts: &AcceptOptions,
        view: &PackageView,
    ) -> Result<Checked, Rejection> {
        let txid = tx.compute_txid();
        policy::check_transaction(tx).map_err(|r| rejected(r, ""))?;
        if tx.is_coinbase() {
            return Err(rejected("coinbase", ""));
        }
        policy::check_standard(tx).map_err(|r| rejected(r, ""))?;
        if policy::is_too_small(tx) {
            return Err(rejected("tx-size-small", ""));
        }
        let tip = self.tree.tip_node();
        if !policy::is_final(tx, tip.height + 1, tip.median_time) {
            return Err(rejected("non-final", ""));
        }
        if let Some(e) = self.mempool.get(&txid) {
            if e.wtxid == tx.compute_wtxid() {
                return Err(rejected("txn-already-in-mempool", ""));
            }
            return Err(rejected("txn-same-nonwitness-data-in-mempool", ""));
        }
        let mut conflicts: Vec<Txid> = {
            let mut seen = HashSet::new();
            tx.input
                .iter()
                .filter_map(|i| self.mempool.spender(&i.previous_output))
                .filter(|t| seen.insert(*t))
                .collect()
        };
        let fee = self.check_inputs(tx, txid, view)?;
        let vsize = tx.vsize() as u64;
        if fee != 0 && policy::dust_outputs(tx) > 0 {
            return Err(rejected("dust", "tx with dust output must be 0-fee"));
        }
        if !opts.bypass_limits && !opts.package_feerates {
            self.check_fee_rate(fee, vsize)?;
        }
        if let Err(refusal) = self.truc_checks(tx, txid, vsize, view) {
            match refusal.sibling {
                // Core's TRUC sibling eviction (single transactions only): the parent's other
                // child becomes a conflict, judged by the replace-by-fee rules below.
                Some(sibling) if !opts.in_package => conflicts.push(sibling),
                _ => return Err(refusal.rejection),
            }
        }
        let replaced = self.mempool.with_descendants(&conflicts);
        if !replaced.is_empty() && !opts.package_feerates {
            self.replacement_checks(tx, txid, fee, vsize, &replaced)?;
        }
        Ok(Checked {
            txid,
            fee,
            vsize,
            replaced,
        })
    }

    /// Core's `CheckFeeRate`: the mempool minimum fee (when the mempool is full), then the min
    /// relay fee, for `fee` satoshis over `vsize` vbytes (one transaction or a whole package).
    /// Both failures are what Core calls `TX_RECONSIDERABLE`: a package feerate may still pass.
    pub(crate) fn check_fee_rate(&self, fee: u64, vsize: u64) -> Result<(), Rejection> {
        let reject_fee = self.mempool_reject_fee(vsize);
        if reject_fee > 0 && fee < reject_fee {
            return Err(rejected(
                "mempool min fee not met",
                format!("{fee} < {reject_fee}"),
            ));
        }
        let min_fee = policy::fee_at(self.min_relay_fee, vsize);
        if fee < min_fee {
            return Err(rejected(
                "min relay fee not met",
                format!("{fee} < {min_fee}"),
            ));
        }
        Ok(())
    }

    /// Input availability, BIP68 and Core's `Consensus::CheckTxInputs`; returns the fee (satoshis).
    fn check_inputs(
        &self,
        tx: &Transaction,
        txid: Txid,
        view: &PackageView,
    ) -> Result<u64, Rejection> {
        let tip = self.tree.tip_node();
        let next = tip.height + 1;
        let mut coins = Vec::with_capacity(tx.input.len());
        for input in &tx.input {
            let op = &input.previous_output;
            if let Some(out) = self.mempool.output(op).or_else(|| view.output(op)) {
                coins.push((out.value.to_sat(), next, false));
            } else if let Some(coin) = self.coins.get(op) {
                coins.push((coin.txout.value.to_sat(), coin.height, coin.coinbase));
            } else {
                if self.coins.has_any_output(txid, tx.output.len()) {
                    return Err(rejected("txn-already-known", ""));
                }
                // testmempoolaccept reports TX_MISSING_INPUTS as "missing-inputs" (and no
                // details); sendrawtransaction's message is the validation reason.
                return Err(reject(RPC_VERIFY_ERROR, "missing-inputs", "")
                    .with_message("bad-txns-inputs-missingorspent"));
            }
        }
        let heights: Vec<u32> = coins.iter().map(|c| c.1).collect();
        let mtp_at = |h: u32| self.mtp_at(h);
        let locks = validation::sequence_locks(tx, &heights, &mtp_at);
        if !validation::sequence_locks_met(locks, next, tip.median_time) {
            return Err(rejected("non-BIP68-final", ""));
        }
        let mut value_in: u64 = 0;
        for &(value, height, coinbase) in &coins {
            if coinbase && next - height < COINBASE_MATURITY {
                let debug = format!("tried to spend coinbase at depth {}", next - height);
                return Err(rejected("bad-txns-premature-spend-of-coinbase", debug));
            }
            value_in += value;
            if value > MAX_MONEY || value_in > MAX_MONEY {
                return Err(rejected("bad-txns-inputvalues-outofrange", ""));
            }
        }
        let value_out = policy::value_out(tx).to_sat();
        if value_in < value_out {
            let debug = format!(
                "value in ({}) < value out ({})",
                format_money(value_in as i64),
                format_money(value_out as i64)
            );
            return Err(rejected("bad-txns-in-belowout", debug));
        }
        Ok(value_in - value_out)
    }

    /// Core's replace-by-fee rules (full RBF): no spending of what it replaces, at most 100
    /// evictions, more absolute fee than the replaced plus the incremental relay fee for its own
    /// size, and a feerate that does not make the mempool worse. For a package, `fee` and `vsize`
    /// are the package's totals.
    pub(crate) fn replacement_checks(
        &self,
        tx: &Transaction,
        txid: Txid,
        fee: u64,
        vsize: u64,
        replaced: &[Txid],
    ) -> Result<(), Rejection> {
        let replaced_set: HashSet<Txid> = replaced.iter().copied().collect();
        if let Some(input) = tx
            .input
            .iter()
            .find(|i| replaced_set.contains(&i.previous_output.txid))
        {
            let debug = format!(
                "{txid} spends conflicting transaction {}",
                input.previous_output.txid
            );
            return Err(rejected("bad-txns-spends-conflicting-tx", debug));
        }
        if replaced.len() > MAX_REPLACEMENT_CANDIDATES {
            let debug = format!(
                "rejecting replacement {txid}; too many potential replacements ({} > {MAX_REPLACEMENT_CANDIDATES})\n",
                replaced.len()
            );
            return Err(rejected("too many potential replacements", debug));
        }
        let (old_fee, old_size) = replaced
            .iter()
            .filter_map(|t| self.mempool.get(t))
            .fold((0u64, 0u64), |(f, s), e| (f + e.fee.to_sat(), s + e.vsize));
        if fee < old_fee {
            let debug = format!(
                "rejecting replacement {txid}, less fees than conflicting txs; {} < {}",
                format_money(fee as i64),
                format_money(old_fee as i64)
            );
            return Err(rejected("insufficient fee", debug));
        }
        let additional = fee - old_fee;
        let relay = policy::fee_at(policy::INCREMENTAL_RELAY_FEE_PER_KVB, vsize);
        if additional < relay {
            let debug = format!(
                "rejecting replacement {txid}, not enough additional fees to relay; {} < {}",
                format_money(additional as i64),
                format_money(relay as i64)
            );
            return Err(rejected("insufficient fee", debug));
        }
        // Approximation of Core's feerate-diagram check: the replacement's feerate must not be
        // below the combined feerate of what it evicts.
        if u128::from(fee) * u128::from(old_size) < u128::from(old_fee) * u128::from(vsize) {
            return Err(rejected(
                "replacement-failed",
                "insufficient feerate: does not improve feerate diagram",
            ));
        }
        Ok(())
    }
}

/// The [`Accepted`] answer for a checked transaction.
pub(crate) fn accepted(tx: &Transaction, checked: &Checked) -> Accepted {
    Accepted {
        txid: checked.txid,
        wtxid: tx.compute_wtxid(),
        vsize: checked.vsize,
        fee: Amount::from_sat(checked.fee),
        replaced: checked.replaced.clone(),
    }
}

impl Rejection {
    fn with_message(mut self, message: &str) -> Rejection {
        self.message = message.to_string();
        self
    }
}
