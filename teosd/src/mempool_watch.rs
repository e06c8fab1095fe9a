//! The mempool watcher: answers a breach the moment its dispute enters bitcoind's mempool, so the
//! penalty (its child, spending the revocation path, which has no relative timelock) can be mined in
//! the dispute's own block (issue 13; BITCOIND.md, "Unconfirmed breaches and packages").
//!
//! Input. bitcoind's ZMQ `sequence` topic (found with `getzmqnotifications`, like `hashblock`) is a
//! wake-up: each `A` message names a transaction that entered the mempool. `getrawmempool false true`
//! is the truth: the mempool is reconciled at startup, whenever [`sequence::Gaps`] says messages were
//! lost (or bitcoind restarted), and every [`RECONCILE_EVERY`] ([`POLL_EVERY`] without ZMQ).
//!
//! Matching needs no RPC: a locator is the first half of a txid, so a mempool txid is checked against
//! the watched-locators index in memory, the few that pass against storage, and a stored appointment's
//! blob is decrypted with the txid.
//!
//! Answer. The penalty is sent with `sendrawtransaction`; when bitcoind refuses it alone for its fee
//! (or misses its input), the dispute is fetched from the mempool and `submitpackage [dispute,
//! penalty]` is tried (a zero-fee version 3 dispute is accepted only with a fee-paying child).
//!
//! Ownership (ARCHITECTURE.md, "Chain and response rules"). The mempool path owns nothing the block
//! path depends on: it never writes storage. The appointment stays watched; what the watcher answered
//! is a [`MempoolResponse`] kept in memory, read by `get_appointment` (`dispute_responded`). When the
//! dispute is mined the block path answers it as any breach (bitcoind says the penalty is already in
//! its mempool, or the penalty is in the same block: tracker confirmed there) and the record is dropped
//! once the tower has processed bitcoind's best block. When the dispute leaves the mempool unmined
//! (replaced, evicted, bitcoind restarted without its mempool) the record is dropped and the appointment
//! is still watched. A restart of teosd loses the records; the startup reconciliation finds the
//! dispute again and bitcoind answers the penalty as already known. Slots are charged by
//! `add_appointment` only, whatever the path.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bitcoin::{Transaction, Txid};
use teos_common::appointment::{AppointmentId, Locator};
use teos_common::cryptography;

use crate::bitcoind::{BitcoindRpc, RpcError};
use crate::carrier::{Carrier, Delivery, Interrupted};
use crate::chain_view::SharedChainView;
use crate::metrics as m;
use crate::shutdown::Shutdown;
use crate::storage::records::AppointmentRecord;
use crate::storage::{StorageError, Store, Tx};

mod listen;
pub mod responses;
pub mod sequence;

pub use responses::{MempoolResponse, MempoolResponses};

/// How often the mempool is reconciled with `getrawmempool false true` while ZMQ `sequence`
/// messages arrive (they may be lost without a gap showing, e.g. every message after the last one).
pub const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// How often the mempool is read when bitcoind publishes no `sequence` topic.
pub const POLL_EVERY: Duration = Duration::from_secs(2);
/// Least time between two reconciliations asked for by gaps in the ZMQ stream.
pub const GAP_RECONCILE_MIN: Duration = Duration::from_secs(1);
/// How long a breach the watcher could not answer (penalty refused, blob not decrypting, penalty
/// already confirmed) waits before it is tried again while its dispute stays in the mempool.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);
/// Mempool txids checked per lock of the chain view (the lock is never held for long).
const CHECK_CHUNK: usize = 4096;

/// Why the mempool watcher could not do a step; it logs it and tries again later.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The tower is shutting down.
    #[error("interrupted by shutdown")]
    Interrupted,
    /// bitcoind refused a call (e.g. a bitcoind older than 0.21 has no `mempool_sequence`).
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// Reading the matched appointments failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<Interrupted> for WatchError {
    fn from(_: Interrupted) -> Self {
        WatchError::Interrupted
    }
}

/// Why the mempool watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The `sequence` subscription could not be set up (e.g. a malformed endpoint).
    #[error("zmq: {0}")]
    Zmq(#[from] zmq::Error),
    /// The OS could not start the `mempool-watch` thread.
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Why a reconciliation runs (the `reason` label of `teosd_mempool_reconciliations_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The watcher started (teosd started).
    Startup,
    /// ZMQ messages were lost, or bitcoind restarted.
    Gap,
    /// The periodic reconciliation.
    Periodic,
}

impl Reason {
    fn label(self) -> &'static str {
        match self {
            Reason::Startup => "startup",
            Reason::Gap => "gap",
            Reason::Periodic => "periodic",
        }
    }
}

/// Watches bitcoind's mempool for disputes (see the module docs). Runs on its own thread.
pub struct MempoolWatcher<B: BitcoindRpc> {
    /// Every bitcoind call (penalties, packages, the mempool, the best block), retried while bitcoind
    /// is unreachable.
    carrier: Carrier<B>,
    /// Where the matched appointments are read (never written).
    store: Store,
    /// The watched-locators index and the tower's tip.
    view: SharedChainView,
    /// What was answered; shared with `get_appointment`.
    responses: MempoolResponses,
    /// Blocks an outdated user's data is kept (`expiry_delta`): their appointments are not answered,
    /// as in the block path.
    expiry_delta: u32,
    /// Breaches tried and not answered, with their dispute and when to try again (see [`RETRY_AFTER`]).
    retry_at: HashMap<AppointmentId, (Txid, Instant)>,
}

impl<B: BitcoindRpc> MempoolWatcher<B> {
    /// A watcher sending through `carrier`, reading `store`, matching against `view`'s index.
    pub fn new(
        carrier: Carrier<B>,
        store: Store,
        view: SharedChainView,
        responses: MempoolResponses,
        expiry_delta: u32,
    ) -> MempoolWatcher<B> {
        MempoolWatcher {
            carrier,
            store,
            view,
            responses,
            expiry_delta,
            retry_at: HashMap::new(),
        }
    }

    /// Checks the mempool transactions `txids`, first seen at `seen`: answers each breach among them
    /// that is not answered yet. Returns how many were answered.
    pub fn check(&mut self, txids: &[Txid], seen: Instant) -> Result<usize, WatchError> {
        let candidates = self.candidates(txids);
        if candidates.is_empty() {
            return Ok(0);
        }
        let locators: Vec<Locator> = candidates.keys().copied().collect();
        let (height, expiry_delta) = (self.view.height(), self.expiry_delta);
        let found = self
            .store
            .read_blocking(move |tx| unanswered(tx, &locators, height, expiry_delta))?;
        let mut answered = 0;
        let now = Instant::now();
        for appointment in found {
            let Some(&dispute_txid) = candidates.get(&appointment.locator) else {
                continue;
            };
            if self.responses.contains(&appointment.uuid)
                || self
                    .retry_at
                    .get(&appointment.uuid)
                    .is_some_and(|(txid, at)| *txid == dispute_txid && *at > now)
            {
                continue;
            }
            if self.answer(&appointment, dispute_txid, seen)? {
                answered += 1;
            }
        }
        Ok(answered)
    }

    /// The txids whose locator a stored appointment may have, by locator. In a fleet (PostgreSQL)
    /// every txid: appointments stored by the other instances are not in this process's
    /// watched-locators index, so the database's locator index is asked for all of them.
    fn candidates(&self, txids: &[Txid]) -> HashMap<Locator, Txid> {
        if self.store.is_postgres() {
            return txids
                .iter()
                .map(|txid| (Locator::new(txid), *txid))
                .collect();
        }
        let mut candidates = HashMap::new();
        for chunk in txids.chunks(CHECK_CHUNK) {
            let view = self.view.lock();
            for txid in chunk {
                let locator = Locator::new(txid);
                if view.watched.may_contain(&locator) {
                    candidates.insert(locator, *txid);
                }
            }
        }
        candidates
    }

    /// Decrypts `appointment` with its dispute's txid and sends the penalty (alone, else as a package
    /// with the dispute). Returns whether bitcoind accepted it.
    fn answer(
        &mut self,
        appointment: &AppointmentRecord,
        dispute_txid: Txid,
        seen: Instant,
    ) -> Result<bool, Interrupted> {
        let uuid = appointment.uuid;
        let penalty = match cryptography::decrypt(&appointment.encrypted_blob, &dispute_txid) {
            Ok(penalty) => penalty,
            Err(e) => {
                tracing::info!(%uuid, dispute = %dispute_txid, "dispute in the mempool but the blob does not decrypt ({e}); left to the block path");
                self.retry_later(uuid, dispute_txid);
                return Ok(false);
            }
        };
        let penalty_txid = penalty.compute_txid();
        let alone = self.carrier.send(&penalty)?;
        let (delivery, via_package) = if alone.is_fee_refusal() || alone.is_missing_inputs() {
            (self.send_package(dispute_txid, &penalty, alone)?, true)
        } else {
            (alone, false)
        };
        match delivery {
            Delivery::InMempool => {
                let elapsed = seen.elapsed();
                tracing::info!(%uuid, dispute = %dispute_txid, penalty = %penalty_txid, via_package, elapsed_ms = elapsed.as_millis() as u64, "breach answered from the mempool");
                metrics::counter!(m::MEMPOOL_BREACHES_ANSWERED, "via" => if via_package { "package" } else { "alone" })
                    .increment(1);
                metrics::histogram!(m::MEMPOOL_RESPONSE).record(elapsed.as_secs_f64());
                self.retry_at.remove(&uuid);
                self.responses.insert(
                    uuid,
                    MempoolResponse {
                        dispute_txid,
                        penalty_txid,
                        penalty_tx: penalty,
                        accepted_at: SystemTime::now(),
                        via_package,
                    },
                );
                Ok(true)
            }
            Delivery::AlreadyConfirmed => {
                tracing::debug!(%uuid, penalty = %penalty_txid, "penalty already confirmed; the block path answers");
                self.retry_later(uuid, dispute_txid);
                Ok(false)
            }
            refused => {
                tracing::warn!(%uuid, dispute = %dispute_txid, penalty = %penalty_txid, "bitcoind refused the penalty of a dispute in its mempool ({refused:?}); tried again in {} s or answered when the dispute is mined", RETRY_AFTER.as_secs());
                self.retry_later(uuid, dispute_txid);
                Ok(false)
            }
        }
    }

    /// `submitpackage [dispute, penalty]`, the dispute read from bitcoind's mempool. When the dispute
    /// cannot be read (it left), `alone` (the penalty's own refusal) stands.
    fn send_package(
        &self,
        dispute_txid: Txid,
        penalty: &Transaction,
        alone: Delivery,
    ) -> Result<Delivery, Interrupted> {
        let dispute = match self
            .carrier
            .retrying(|rpc| rpc.raw_transaction(&dispute_txid, None))?
        {
            Ok(dispute) => dispute,
            Err(e) => {
                tracing::debug!(dispute = %dispute_txid, "cannot read the dispute for a package ({e})");
                return Ok(alone);
            }
        };
        tracing::debug!(dispute = %dispute_txid, "penalty refused alone ({alone:?}); submitting it with its dispute");
        self.carrier.send_package(&[dispute, penalty.clone()])
    }

    fn retry_later(&mut self, uuid: AppointmentId, dispute_txid: Txid) {
        self.retry_at
            .insert(uuid, (dispute_txid, Instant::now() + RETRY_AFTER));
    }

    /// Reads bitcoind's mempool and acts on it: forgets what left it, then answers the breaches in it.
    /// Returns the snapshot's `mempool_sequence`.
    pub fn reconcile(&mut self, reason: Reason) -> Result<u64, WatchError> {
        let started = Instant::now();
        metrics::counter!(m::MEMPOOL_RECONCILIATIONS, "reason" => reason.label()).increment(1);
        let snapshot = self.carrier.retrying(|rpc| rpc.mempool_snapshot())??;
        // Forget first: every record is older than the snapshot (this thread made them all).
        self.forget_gone(&snapshot.txids)?;
        let answered = self.check(&snapshot.txids, started)?;
        tracing::debug!(
            ?reason,
            txs = snapshot.txids.len(),
            answered,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "mempool reconciled"
        );
        Ok(snapshot.sequence)
    }

    /// Drops the records whose dispute or penalty is not in `mempool` (see the module docs), and the
    /// retry marks of disputes that left it.
    fn forget_gone(&mut self, mempool: &[Txid]) -> Result<(), WatchError> {
        if self.responses.is_empty() && self.retry_at.is_empty() {
            return Ok(());
        }
        let in_mempool: HashSet<&Txid> = mempool.iter().collect();
        self.retry_at
            .retain(|_, (dispute, _)| in_mempool.contains(dispute));
        // A penalty gone while its dispute stays (replaced by another spend, evicted): answer again.
        let replaced = self.responses.remove_where(|r| {
            in_mempool.contains(&r.dispute_txid) && !in_mempool.contains(&r.penalty_txid)
        });
        for uuid in replaced {
            tracing::info!(%uuid, "penalty left the mempool while its dispute stays; answering again");
        }
        let gone: HashSet<Txid> = self
            .responses
            .disputes()
            .into_iter()
            .filter(|txid| !in_mempool.contains(txid))
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        // A dispute that left may have been mined: its record goes once the block processor has caught
        // up with bitcoind, so get_appointment passes from the record to the tracker without a gap.
        let best = self.carrier.retrying(|rpc| rpc.best_block_hash())??;
        if best == self.view.tip().1 {
            for uuid in self
                .responses
                .remove_where(|r| gone.contains(&r.dispute_txid))
            {
                tracing::info!(%uuid, "dispute left the mempool; the appointment is answered by the block path or watched again");
            }
        }
        Ok(())
    }

    /// An `R` message: `txid` left the mempool for another reason than a block (replaced, conflicting,
    /// evicted, expired). Records whose dispute or penalty it was are dropped at once.
    pub fn removed(&mut self, txid: &Txid) {
        for uuid in self
            .responses
            .remove_where(|r| r.dispute_txid == *txid || r.penalty_txid == *txid)
        {
            tracing::info!(%uuid, %txid, "dispute or penalty removed from the mempool (not mined); the appointment is watched");
        }
        self.retry_at.retain(|_, (dispute, _)| dispute != txid);
    }
}

/// The stored appointments with one of `locators` that the block path would answer at `height` and
/// has not: no tracker, no pending late breach, a user not outdated (`expiry + expiry_delta > height`,
/// the block path's rule in `block_processor::storage_ops::scan_block`).
fn unanswered(
    tx: &mut dyn Tx,
    locators: &[Locator],
    height: u32,
    expiry_delta: u32,
) -> Result<Vec<AppointmentRecord>, StorageError> {
    let mut found = Vec::new();
    for a in tx.appointments_by_locators(locators)? {
        let user = tx.user(&a.user_id)?;
        let outdated =
            user.is_none_or(|u| u.subscription_expiry.saturating_add(expiry_delta) <= height);
        if outdated || tx.tracker(&a.uuid)?.is_some() || tx.has_pending_breach(&a.uuid)? {
            continue;
        }
        found.push(a);
    }
    Ok(found)
}

/// The running mempool watcher thread; [`MempoolWatch::join`] waits for it after shutdown.
pub struct MempoolWatch {
    thread: JoinHandle<()>,
}

impl MempoolWatch {
    /// Starts `watcher` on the `mempool-watch` thread ([`crate::thread::spawn`]: a panic stops the
    /// tower), subscribed to `zmq_sequence` (bitcoind's `pubsequence` endpoint) when given; it
    /// reconciles at once, and stops when `shutdown` is triggered (within about 250 ms).
    ///
    /// Errors: the ZMQ socket cannot be set up, or the thread cannot start.
    pub fn start<B: BitcoindRpc>(
        watcher: MempoolWatcher<B>,
        zmq_sequence: Option<String>,
        shutdown: Arc<Shutdown>,
    ) -> Result<MempoolWatch, StartError> {
        let socket = zmq_sequence.as_deref().map(listen::subscribe).transpose()?;
        match &zmq_sequence {
            Some(endpoint) => tracing::info!(
                "watching bitcoind's mempool through its sequence notifications on {endpoint}"
            ),
            None => tracing::info!(
                "bitcoind publishes no sequence notifications (-zmqpubsequence); reading its mempool every {} s",
                POLL_EVERY.as_secs()
            ),
        }
        let thread = crate::thread::spawn("mempool-watch", move || {
            listen::run(watcher, socket, &shutdown);
            Ok(())
        })?;
        Ok(MempoolWatch { thread })
    }

    /// Waits for the thread to end (trigger shutdown first).
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

#[cfg(test)]
mod tests;
