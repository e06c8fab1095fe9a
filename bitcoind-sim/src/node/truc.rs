//! Version 3 (TRUC, "topologically restricted until confirmation") policy, as Bitcoin Core's
//! `SingleTRUCChecks` (`src/policy/truc_policy.cpp`, BIP 431): a version 3 transaction may have
//! at most one unconfirmed ancestor and one unconfirmed descendant, is at most 10,000 vB (1,000 vB
//! when it has an unconfirmed parent), and version 3 and other versions may not spend each other's
//! unconfirmed outputs. Rejections are -26 "TRUC-violation, <details>" with Core's details.
//!
//! Sibling eviction as Core v28: a new child of a version 3 parent that already has one child
//! (itself without other unconfirmed ancestors) may replace that sibling under the replace-by-fee
//! rules, for a transaction submitted alone (`sendrawtransaction`, `testmempoolaccept` of one);
//! within `submitpackage` it is refused with the descendant-limit message, as Core does.

use bitcoin::{Transaction, Txid, Wtxid};

use super::Rejection;
use super::accept::{PackageView, rejected};
use super::state::State;

/// Core's `TRUC_VERSION`.
const TRUC_VERSION: i32 = 3;
/// Core's `TRUC_MAX_VSIZE` (vbytes).
const TRUC_MAX_VSIZE: u64 = 10_000;
/// Core's `TRUC_CHILD_MAX_VSIZE` (vbytes).
const TRUC_CHILD_MAX_VSIZE: u64 = 1_000;

/// An unconfirmed ancestor as the rules see it.
struct Ancestor {
    txid: Txid,
    wtxid: Wtxid,
    version: i32,
    /// In the mempool (not only in the package): its other children count.
    in_mempool: bool,
}

/// A TRUC refusal; `sibling` is the parent's other child when Core would consider evicting it.
pub(crate) struct TrucRefusal {
    pub rejection: Rejection,
    pub sibling: Option<Txid>,
}

fn violation(details: String) -> TrucRefusal {
    TrucRefusal {
        rejection: rejected("TRUC-violation", details),
        sibling: None,
    }
}

impl State {
    /// Core's `SingleTRUCChecks` for `tx` (`vsize` vbytes), its unconfirmed ancestors being
    /// mempool transactions or earlier transactions of the package (`view`).
    pub(crate) fn truc_checks(
        &self,
        tx: &Transaction,
        txid: Txid,
        vsize: u64,
        view: &PackageView,
    ) -> Result<(), TrucRefusal> {
        let ancestors = self.unconfirmed_ancestors(tx, view);
        let wtxid = tx.compute_wtxid();
        let version = tx.version.0;
        for a in &ancestors {
            if version != TRUC_VERSION && a.version == TRUC_VERSION {
                return Err(violation(format!(
                    "non-version=3 tx {txid} (wtxid={wtxid}) cannot spend from version=3 tx {} (wtxid={})",
                    a.txid, a.wtxid
                )));
            }
            if version == TRUC_VERSION && a.version != TRUC_VERSION {
                return Err(violation(format!(
                    "version=3 tx {txid} (wtxid={wtxid}) cannot spend from non-version=3 tx {} (wtxid={})",
                    a.txid, a.wtxid
                )));
            }
        }
        if version != TRUC_VERSION {
            return Ok(());
        }
        if vsize > TRUC_MAX_VSIZE {
            return Err(violation(format!(
                "version=3 tx {txid} (wtxid={wtxid}) is too big: {vsize} > {TRUC_MAX_VSIZE} virtual bytes"
            )));
        }
        if ancestors.len() + 1 > 2 {
            return Err(violation(format!(
                "tx {txid} (wtxid={wtxid}) would have too many ancestors"
            )));
        }
        let Some(parent) = ancestors.first() else {
            return Ok(());
        };
        if vsize > TRUC_CHILD_MAX_VSIZE {
            return Err(violation(format!(
                "version=3 child tx {txid} (wtxid={wtxid}) is too big: {vsize} > {TRUC_CHILD_MAX_VSIZE} virtual bytes"
            )));
        }
        if parent.in_mempool {
            let conflicts: Vec<Txid> = tx
                .input
                .iter()
                .filter_map(|i| self.mempool.spender(&i.previous_output))
                .collect();
            let children = self.mempool.children(&parent.txid);
            let replaced_anyway = children.iter().any(|c| conflicts.contains(c));
            let descendants = self.mempool.descendants(&parent.txid);
            if !descendants.is_empty() && !replaced_anyway {
                let mut refusal = violation(format!(
                    "tx {} (wtxid={}) would exceed descendant count limit",
                    parent.txid, parent.wtxid
                ));
                // Core: evictable when the parent's only descendant is one child whose only
                // unconfirmed ancestor is the parent.
                if let [only] = children.as_slice()
                    && descendants.len() == 1
                    && self.mempool.ancestors(only).len() == 1
                {
                    refusal.sibling = Some(*only);
                }
                return Err(refusal);
            }
        }
        Ok(())
    }

    /// The unconfirmed ancestors of `tx`: in-mempool ancestors of its in-mempool parents, and
    /// its parents among the package's earlier transactions; each once.
    fn unconfirmed_ancestors(&self, tx: &Transaction, view: &PackageView) -> Vec<Ancestor> {
        let mut seen = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for input in &tx.input {
            let parent = input.previous_output.txid;
            if self.mempool.contains(&parent) {
                let mut family = vec![parent];
                family.extend(self.mempool.ancestors(&parent));
                for t in family {
                    if !seen.insert(t) {
                        continue;
                    }
                    if let Some(e) = self.mempool.get(&t) {
                        out.push(Ancestor {
                            txid: t,
                            wtxid: e.wtxid,
                            version: e.tx.version.0,
                            in_mempool: true,
                        });
                    }
                }
            } else if let Some((version, wtxid)) = view.tx(&parent)
                && seen.insert(parent)
            {
                out.push(Ancestor {
                    txid: parent,
                    wtxid,
                    version,
                    in_mempool: false,
                });
            }
        }
        out
    }
}
