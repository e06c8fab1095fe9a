//! The block processor's storage commands: a block's scan ([`ScanBlock`]), its commit with the
//! components' decisions ([`CommitBlock`]), a reorg's unwind ([`UnwindBlocks`]), the answer to a late
//! appointment ([`AnswerLate`]), and the chain-view bookkeeping ([`ReloadWatchedLocators`],
//! [`StoreBlockTxids`]). Each is one rule over `&mut dyn Tx`, whatever the backend.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bitcoin::{BlockHash, Txid};
use teos_common::appointment::Locator;
use teos_common::constants::{CONFIRMATIONS_BEFORE_RETRY, IRREVOCABLY_RESOLVED};

use super::{KEPT_BLOCKS, ProcessError};
use crate::chain_view::SharedChainView;
use crate::chain_walker::Tip;
use crate::listen::Decision;
use crate::metrics as m;
use crate::responder::TrackerChange;
use crate::storage::records::{AppointmentId, AppointmentRecord, TrackerRecord, TrackerStatus};
use crate::storage::{Command, Order, StorageError, Tx};
use crate::watched_locators::WatchedLocators;
use teos_common::appointment::UserId;

/// Everything a block scan hands back from the storage writer.
pub(super) struct Scan {
    pub(super) appointments: Vec<AppointmentRecord>,
    pub(super) trackers: Vec<TrackerRecord>,
}

/// Command: step 1 of connecting a block, [`scan_block`]. Ordered with appointment inserts
/// ([`Order::Block`]): every appointment stored before it is found, every one stored after it sees
/// the block in the locator cache (`chain_view`).
pub(super) struct ScanBlock {
    /// The chain view: its locator cache gets the block's txids.
    pub(super) view: SharedChainView,
    /// The block.
    pub(super) hash: BlockHash,
    /// Its height (blocks).
    pub(super) height: u32,
    /// Its txids, in block order.
    pub(super) txids: Arc<Vec<Txid>>,
    /// Grace period after a subscription's expiry (blocks).
    pub(super) expiry_delta: u32,
}

impl Command for ScanBlock {
    type Output = Scan;
    type Error = ProcessError;
    const NAME: &'static str = "scan_block";
    const ORDER: Order = Order::Block;

    fn run(self, tx: &mut dyn Tx) -> Result<Scan, ProcessError> {
        scan_block(
            tx,
            &self.view,
            self.hash,
            self.height,
            &self.txids,
            self.expiry_delta,
        )
    }
}

/// Command: step 3 of connecting a block: its decisions ([`apply_decisions`]) and the block as the
/// new tip, in one transaction, then the chain view's tip. Returns whether the watched-locators
/// index has piled up entries of deleted appointments and must be reloaded.
pub(super) struct CommitBlock {
    /// The chain view: its tip moves to the block once the writes succeeded.
    pub(super) view: SharedChainView,
    /// What the Gatekeeper, Watcher and Responder decided for the block, in order.
    pub(super) decisions: Vec<Decision>,
    /// The block's height (blocks), hash and total work.
    pub(super) tip: Tip,
    /// The block's txids, kept with it for the locator cache of the next start (`None`: not kept).
    pub(super) txids: Option<Arc<Vec<Txid>>>,
    /// Blocks whose txids are kept (the locator cache's window).
    pub(super) cache_window: u32,
}

impl Command for CommitBlock {
    type Output = bool;
    type Error = ProcessError;
    const NAME: &'static str = "commit_block";
    const ORDER: Order = Order::Block;

    fn run(self, tx: &mut dyn Tx) -> Result<bool, ProcessError> {
        let Tip {
            height,
            hash,
            chainwork,
        } = self.tip;
        apply_decisions(tx, &self.decisions)?;
        tx.push_block(height, &hash, chainwork, KEPT_BLOCKS)?;
        if let Some(txids) = &self.txids {
            tx.set_block_txids(height, &hash, txids)?;
        }
        tx.clear_block_txids_below((height + 1).saturating_sub(self.cache_window))?;
        let stored = tx.stored_appointments()?;
        let mut view = self.view.lock();
        view.tip_height = height;
        view.tip_hash = hash;
        Ok(view.watched.needs_rebuild(stored))
    }
}

/// Command: disconnects every block above `fork` in one transaction: the decisions for the
/// disconnected blocks ([`apply_decisions`]), the remembered blocks above the fork forgotten, the
/// fork point as the tip (recorded if it was not remembered), and the chain view unwound to it.
pub(super) struct UnwindBlocks {
    /// The chain view: the disconnected blocks leave its locator cache, its tip moves to `fork`.
    pub(super) view: SharedChainView,
    /// What the components decided for the disconnected blocks, tip first.
    pub(super) decisions: Vec<Decision>,
    /// The fork point: the new tip.
    pub(super) fork: Tip,
    /// Hashes of the disconnected blocks that are known.
    pub(super) stale: Vec<BlockHash>,
}

impl Command for UnwindBlocks {
    type Output = ();
    type Error = ProcessError;
    const NAME: &'static str = "unwind_blocks";
    const ORDER: Order = Order::Block;

    fn run(self, tx: &mut dyn Tx) -> Result<(), ProcessError> {
        let fork = self.fork;
        apply_decisions(tx, &self.decisions)?;
        for hash in &self.stale {
            tx.forget_block_locators(hash)?;
        }
        tx.pop_blocks(fork.height + 1)?;
        if tx.block_hash_at(fork.height)? != Some(fork.hash) {
            tx.push_block(fork.height, &fork.hash, fork.chainwork, KEPT_BLOCKS)?;
        }
        let mut view = self.view.lock();
        for hash in &self.stale {
            view.cache.disconnect_block(hash);
        }
        view.tip_height = fork.height;
        view.tip_hash = fork.hash;
        Ok(())
    }
}

/// Command: reloads the watched-locators index from the stored appointments. Ordered with
/// appointment inserts ([`Order::Block`]), so none is stored while the index is rebuilt. Returns its
/// number of entries.
pub(super) struct ReloadWatchedLocators {
    /// The chain view holding the index.
    pub(super) view: SharedChainView,
}

impl Command for ReloadWatchedLocators {
    type Output = usize;
    type Error = ProcessError;
    const NAME: &'static str = "reload_watched_locators";
    const ORDER: Order = Order::Block;

    fn run(self, tx: &mut dyn Tx) -> Result<usize, ProcessError> {
        let watched = WatchedLocators::load(tx)?;
        let entries = watched.len();
        self.view.lock().watched = watched;
        Ok(entries)
    }
}

/// Command: keeps the txids of remembered blocks (downloaded at startup for the locator cache), so
/// the next start does not download them again. Blocks no longer remembered are skipped.
pub(super) struct StoreBlockTxids {
    /// `(height, hash, txids in block order)` of each block.
    pub(super) blocks: Vec<(u32, BlockHash, Vec<Txid>)>,
}

impl Command for StoreBlockTxids {
    type Output = ();
    type Error = ProcessError;
    const NAME: &'static str = "store_block_txids";
    const ORDER: Order = Order::Free;

    fn run(self, tx: &mut dyn Tx) -> Result<(), ProcessError> {
        for (height, hash, txids) in &self.blocks {
            tx.set_block_txids(*height, hash, txids)?;
        }
        Ok(())
    }
}

/// Command: records the transactions of the remembered blocks warmed into the locator cache at the
/// start of a term in the database's locator cache (`Tx::remember_block_locators`; a fleet's
/// `recent_locators`, nothing on SQLite), so an appointment stored on any instance for a dispute in
/// one of them is answered as a late appointment. A block command (ordered and fenced).
pub(super) struct RememberRecentBlocks {
    /// `(height, hash, txids in block order)` of each block, lowest first.
    pub(super) blocks: Vec<(u32, BlockHash, Vec<Txid>)>,
    /// The locator cache's window (blocks).
    pub(super) window: u32,
}

impl Command for RememberRecentBlocks {
    type Output = ();
    type Error = ProcessError;
    const NAME: &'static str = "remember_recent_blocks";
    const ORDER: Order = Order::Block;

    fn run(self, tx: &mut dyn Tx) -> Result<(), ProcessError> {
        for (height, hash, txids) in &self.blocks {
            tx.remember_block_locators(hash, *height, txids, self.window)?;
        }
        Ok(())
    }
}

/// Command: the Responder's answer to a late appointment: its change ([`apply_changes`]) and the
/// pending breach forgotten, in one transaction.
pub(super) struct AnswerLate {
    /// The late appointment.
    pub(super) uuid: AppointmentId,
    /// What the Responder decided (track it, or watch it again).
    pub(super) change: TrackerChange,
}

impl Command for AnswerLate {
    type Output = ();
    type Error = ProcessError;
    const NAME: &'static str = "answer_late";
    const ORDER: Order = Order::Block;

    fn run(self, tx: &mut dyn Tx) -> Result<(), ProcessError> {
        apply_changes(tx, std::slice::from_ref(&self.change))?;
        tx.delete_pending_breach(&self.uuid)?;
        Ok(())
    }
}

/// Step 1 of connecting a block (on the writer): add its txids to the locator cache, then find the
/// appointments it triggers and the trackers it concerns.
///
/// Gatekeeper before Watcher: appointments of users outdated at `height` are not answered (their data is
/// deleted by this block's commit), exactly as if the Gatekeeper had removed them first.
pub(super) fn scan_block(
    tx: &mut dyn Tx,
    view: &SharedChainView,
    hash: BlockHash,
    height: u32,
    txids: &[Txid],
    expiry_delta: u32,
) -> Result<Scan, ProcessError> {
    let locators: Vec<Locator> = {
        let mut view = view.lock();
        view.cache.connect_block(hash, height, txids);
        if tx.shared() {
            // A fleet: appointments stored by other instances are not in this process's index;
            // every locator of the block is looked up (one `= ANY` statement).
            txids.iter().map(Locator::new).collect()
        } else {
            txids
                .iter()
                .map(Locator::new)
                .filter(|locator| view.watched.may_contain(locator))
                .collect()
        }
    };
    // A fleet: appointments stored on any instance after this scan commits find the block here
    // (late appointments); on SQLite the chain view's cache above does it.
    let window = u32::try_from(view.lock().cache.capacity()).unwrap_or(u32::MAX);
    tx.remember_block_locators(&hash, height, txids, window)?;
    let mut found = tx.appointments_by_locators(&locators)?;
    let mut outdated = HashSet::new();
    for a in &found {
        let user = tx.user(&a.user_id)?;
        if user.is_none_or(|u| u.subscription_expiry.saturating_add(expiry_delta) <= height) {
            outdated.insert(a.uuid);
        }
    }
    found.retain(|a| !outdated.contains(&a.uuid));
    // An appointment already answered (block reprocessed after a crash, or re-mined after a reorg) is
    // followed through its tracker instead.
    let mut with_tracker = HashSet::new();
    for a in &found {
        if tx.tracker(&a.uuid)?.is_some() {
            with_tracker.insert(a.uuid);
        }
    }
    found.retain(|a| !with_tracker.contains(&a.uuid));

    let mut relevant: HashMap<_, TrackerRecord> = HashMap::new();
    let mut add = |list: Vec<TrackerRecord>| {
        for t in list {
            relevant.insert(t.uuid, t);
        }
    };
    add(tx.trackers_by_dispute_or_penalty_txids(txids)?);
    add(tx.trackers_with_status(TrackerStatus::Reorged)?);
    add(tx.trackers_with_status(TrackerStatus::Rejected)?);
    if let Some(h) = height.checked_sub(CONFIRMATIONS_BEFORE_RETRY) {
        add(tx.trackers_in_mempool_since_at_most(h)?);
    }
    if let Some(h) = (height + 1).checked_sub(IRREVOCABLY_RESOLVED) {
        add(tx.trackers_confirmed_at_most(h)?);
    }
    Ok(Scan {
        appointments: found,
        trackers: relevant.into_values().collect(),
    })
}

/// Applies the components' decisions for a block (inside the block's transaction), in order.
pub(super) fn apply_decisions(tx: &mut dyn Tx, decisions: &[Decision]) -> Result<(), ProcessError> {
    for decision in decisions {
        match decision {
            Decision::RemoveOutdatedUsers {
                height,
                expiry_delta,
            } => {
                let outdated = tx.delete_outdated_users(*height, *expiry_delta)?;
                if !outdated.is_empty() {
                    tracing::info!(height, count = outdated.len(), "removed outdated users");
                }
            }
            Decision::ForgetLate { from_height, hash } => {
                tx.delete_pending_breaches_from(*from_height)?;
                if let Some(hash) = hash {
                    tx.delete_pending_breaches_of_block(hash)?;
                }
            }
            Decision::Tracker(change) => apply_changes(tx, std::slice::from_ref(change))?,
            Decision::Breach(breach) => {
                // The block processor hands breaches to the Responder; one here is a defect.
                tracing::error!(uuid = %breach.uuid, "a breach reached the commit unanswered");
            }
        }
    }
    Ok(())
}

/// Applies the Responder's and Watcher's decisions (inside the block's transaction).
///
/// Bookkeeping can never fail a block (the pipeline is everyone's protection): each change runs in its
/// own savepoint, and one that violates a constraint (a defect, never expected) is rolled back,
/// logged and counted (`teosd_bookkeeping_errors_total`) while the rest of the block commits. Storage
/// failures (disk full, I/O) still fail the block, which is then retried.
pub(super) fn apply_changes(
    tx: &mut dyn Tx,
    changes: &[TrackerChange],
) -> Result<(), ProcessError> {
    for change in changes {
        tx.savepoint("change")?;
        match apply_change(tx, change) {
            Ok(()) => tx.release_savepoint("change")?,
            Err(e) if is_constraint_violation(&e) => {
                tx.rollback_savepoint("change")?;
                tracing::error!(?change, "bookkeeping step skipped: {e}");
                metrics::counter!(m::BOOKKEEPING_ERRORS, "change" => change_name(change))
                    .increment(1);
            }
            Err(e) => {
                tx.rollback_savepoint("change")?;
                return Err(e);
            }
        }
    }
    Ok(())
}

fn apply_change(tx: &mut dyn Tx, change: &TrackerChange) -> Result<(), ProcessError> {
    match change {
        TrackerChange::Track(record) => {
            // The appointment must still exist (the FK would fail otherwise).
            if tx.appointment(&record.uuid)?.is_some() {
                if tx.tracker(&record.uuid)?.is_none() {
                    tx.insert_tracker(record)?;
                }
            } else {
                tracing::warn!(uuid = %record.uuid, "breach answered but its appointment is gone; not tracked");
            }
            tx.delete_pending_breach(&record.uuid)?;
        }
        TrackerChange::Status {
            uuid,
            status,
            height,
        } => {
            tx.set_tracker_status(uuid, *status, *height)?;
        }
        TrackerChange::DisputeHeight { uuid, height } => {
            tx.set_dispute_height(uuid, *height)?;
        }
        TrackerChange::Complete { uuid } => {
            if let Some(a) = tx.appointment(uuid)?
                && let Some(user) = tx.user(&a.user_id)?
            {
                refund(tx, &a.user_id, user.available_slots, a.slots)?;
            }
            tx.delete_tracker_and_appointment(uuid)?;
        }
        TrackerChange::Drop { uuid, reason } => {
            tracing::warn!(%uuid, "appointment dropped: {reason}");
            tx.delete_appointment(uuid)?;
        }
        TrackerChange::Invalid {
            uuid,
            encrypted_blob,
            reason,
        } => match tx.appointment(uuid)? {
            Some(a) if a.encrypted_blob == *encrypted_blob => {
                tracing::warn!(%uuid, "appointment dropped: {reason}");
                tx.delete_appointment(uuid)?;
            }
            Some(_) => {
                tracing::info!(%uuid, "appointment updated since the block was scanned; the new blob is kept");
            }
            None => {}
        },
        TrackerChange::Rewatch { uuid } => {
            tx.delete_tracker_only(uuid)?;
            tx.delete_pending_breach(uuid)?;
        }
    }
    Ok(())
}

/// Gives `slots` back to a user holding `available`, saturating at `u32::MAX` (a refund that would
/// overflow is cut and logged: PROTOCOL.md caps slots at u32).
fn refund(
    tx: &mut dyn Tx,
    user_id: &UserId,
    available: u32,
    slots: u32,
) -> Result<(), ProcessError> {
    let room = u32::MAX - available;
    if slots > room {
        tracing::warn!(%user_id, available, slots, "slot refund cut at {}", u32::MAX);
        metrics::counter!(m::REFUNDS_SATURATED).increment(1);
    }
    tx.add_slots(user_id, i64::from(slots.min(room)))?;
    Ok(())
}

/// A change refused by the data itself (a defect, never expected): a constraint of the backend, or a
/// slot change out of range / a row that is gone.
fn is_constraint_violation(e: &ProcessError) -> bool {
    match e {
        ProcessError::Storage(StorageError::SlotsOutOfRange { .. } | StorageError::NotFound(_)) => {
            true
        }
        ProcessError::Storage(e) => e.is_constraint_violation(),
        _ => false,
    }
}

fn change_name(change: &TrackerChange) -> &'static str {
    match change {
        TrackerChange::Track(_) => "track",
        TrackerChange::Status { .. } => "status",
        TrackerChange::DisputeHeight { .. } => "dispute_height",
        TrackerChange::Complete { .. } => "complete",
        TrackerChange::Drop { .. } => "drop",
        TrackerChange::Invalid { .. } => "invalid",
        TrackerChange::Rewatch { .. } => "rewatch",
    }
}
