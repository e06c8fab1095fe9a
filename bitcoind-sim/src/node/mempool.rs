//! The mempool's storage: accepted transactions, which outpoints they spend, and their in-mempool
//! relatives (Bitcoin Core's `CTxMemPool` without the policy, which lives in `accept.rs`).

use std::collections::{BTreeSet, HashMap, HashSet};

use bitcoin::{Amount, OutPoint, Transaction, TxOut, Txid, Wtxid};

use super::MempoolEntry;

/// One mempool transaction with the facts policy and mining need.
#[derive(Clone, Debug)]
pub(crate) struct PoolTx {
    pub tx: Transaction,
    pub txid: Txid,
    pub wtxid: Wtxid,
    pub fee: Amount,
    /// Virtual size (vbytes) and weight (weight units).
    pub vsize: u64,
    pub weight: u64,
    /// Seconds since the epoch when it entered the mempool.
    pub time: u64,
    /// Chain height when it entered.
    pub height: u32,
    /// Insertion order, used to list the mempool in a stable order.
    pub order: u64,
    /// In Core's unbroadcast set (see `AcceptOptions::unbroadcast`).
    pub unbroadcast: bool,
}

/// The transactions of the mempool and the outpoints they spend.
#[derive(Default)]
pub(crate) struct Mempool {
    txs: HashMap<Txid, PoolTx>,
    spenders: HashMap<OutPoint, Txid>,
    next_order: u64,
}

impl Mempool {
    pub fn get(&self, txid: &Txid) -> Option<&PoolTx> {
        self.txs.get(txid)
    }

    pub fn contains(&self, txid: &Txid) -> bool {
        self.txs.contains_key(txid)
    }

    /// The in-mempool transaction spending `outpoint`.
    pub fn spender(&self, outpoint: &OutPoint) -> Option<Txid> {
        self.spenders.get(outpoint).copied()
    }

    /// An output created by a mempool transaction.
    pub fn output(&self, outpoint: &OutPoint) -> Option<&TxOut> {
        self.txs
            .get(&outpoint.txid)
            .and_then(|p| p.tx.output.get(outpoint.vout as usize))
    }

    pub fn insert(&mut self, mut entry: PoolTx) {
        entry.order = self.next_order;
        self.next_order += 1;
        for input in &entry.tx.input {
            self.spenders.insert(input.previous_output, entry.txid);
        }
        self.txs.insert(entry.txid, entry);
    }

    /// Removes one transaction (not its descendants).
    pub fn remove(&mut self, txid: &Txid) -> Option<PoolTx> {
        let entry = self.txs.remove(txid)?;
        for input in &entry.tx.input {
            if self.spenders.get(&input.previous_output) == Some(txid) {
                self.spenders.remove(&input.previous_output);
            }
        }
        Some(entry)
    }

    /// In-mempool parents (transactions whose outputs it spends), sorted.
    pub fn parents(&self, txid: &Txid) -> Vec<Txid> {
        let Some(entry) = self.txs.get(txid) else {
            return Vec::new();
        };
        let set: BTreeSet<Txid> = entry
            .tx
            .input
            .iter()
            .map(|i| i.previous_output.txid)
            .filter(|p| self.txs.contains_key(p))
            .collect();
        set.into_iter().collect()
    }

    /// In-mempool children (transactions spending its outputs), sorted.
    pub fn children(&self, txid: &Txid) -> Vec<Txid> {
        let Some(entry) = self.txs.get(txid) else {
            return Vec::new();
        };
        let set: BTreeSet<Txid> = (0..entry.tx.output.len() as u32)
            .filter_map(|vout| self.spenders.get(&OutPoint { txid: *txid, vout }).copied())
            .collect();
        set.into_iter().collect()
    }

    /// All in-mempool ancestors of `txid`, excluding itself.
    pub fn ancestors(&self, txid: &Txid) -> HashSet<Txid> {
        self.closure(txid, |t| self.parents(t))
    }

    /// All in-mempool descendants of `txid`, excluding itself.
    pub fn descendants(&self, txid: &Txid) -> HashSet<Txid> {
        self.closure(txid, |t| self.children(t))
    }

    fn closure(&self, start: &Txid, next: impl Fn(&Txid) -> Vec<Txid>) -> HashSet<Txid> {
        let mut seen = HashSet::new();
        let mut stack = next(start);
        while let Some(t) = stack.pop() {
            if seen.insert(t) {
                stack.extend(next(&t));
            }
        }
        seen
    }

    /// `txids` followed by their descendants, each once, parents before children.
    pub fn with_descendants(&self, txids: &[Txid]) -> Vec<Txid> {
        let mut set: HashSet<Txid> = HashSet::new();
        for t in txids {
            if self.txs.contains_key(t) {
                set.insert(*t);
                set.extend(self.descendants(t));
            }
        }
        self.topological(set)
    }

    /// Orders `set` so that every transaction comes after its in-set parents (ties by insertion
    /// order).
    pub fn topological(&self, set: HashSet<Txid>) -> Vec<Txid> {
        let mut pending: Vec<Txid> = set.iter().copied().collect();
        pending.sort_by_key(|t| self.txs.get(t).map_or(u64::MAX, |e| e.order));
        let mut done: HashSet<Txid> = HashSet::new();
        let mut out = Vec::with_capacity(pending.len());
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|t| {
                let ready = self
                    .parents(t)
                    .iter()
                    .all(|p| !set.contains(p) || done.contains(p));
                if ready {
                    done.insert(*t);
                    out.push(*t);
                }
                !ready
            });
            if pending.len() == before {
                // A cycle cannot happen between valid transactions; keep the rest as they are.
                out.append(&mut pending);
            }
        }
        out
    }

    /// Every transaction in insertion order.
    pub fn ordered(&self) -> Vec<&PoolTx> {
        let mut all: Vec<&PoolTx> = self.txs.values().collect();
        all.sort_by_key(|e| e.order);
        all
    }

    /// The public view of an entry, with its relatives' totals.
    pub fn entry(&self, txid: &Txid) -> Option<MempoolEntry> {
        let e = self.txs.get(txid)?;
        let ancestors = self.ancestors(txid);
        let descendants = self.descendants(txid);
        let sum = |set: &HashSet<Txid>| -> (u64, Amount) {
            set.iter()
                .filter_map(|t| self.txs.get(t))
                .fold((0, Amount::ZERO), |(s, f), x| (s + x.vsize, f + x.fee))
        };
        let (anc_size, anc_fees) = sum(&ancestors);
        let (desc_size, desc_fees) = sum(&descendants);
        Some(MempoolEntry {
            tx: e.tx.clone(),
            txid: e.txid,
            wtxid: e.wtxid,
            fee: e.fee,
            vsize: e.vsize,
            weight: e.weight,
            time: e.time,
            height: e.height,
            unbroadcast: e.unbroadcast,
            depends: self.parents(txid),
            spent_by: self.children(txid),
            ancestor_count: ancestors.len() as u64 + 1,
            ancestor_size: anc_size + e.vsize,
            ancestor_fees: anc_fees + e.fee,
            descendant_count: descendants.len() as u64 + 1,
            descendant_size: desc_size + e.vsize,
            descendant_fees: desc_fees + e.fee,
        })
    }
}
