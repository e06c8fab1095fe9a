//! The block processor: walks the tower from its last processed block to bitcoind's best block, one
//! block at a time and in order, disconnecting back to the fork point on a reorg
//! (BITCOIND.md, "ZMQ": notifications are only wake-ups; the chain walk is the source of truth).
//!
//! For each block, events reach the components in the order Gatekeeper → Watcher → Responder, and all
//! the state changes the block causes (new trackers, tracker transitions, deletions, refunds, expired
//! users, the new tip) are committed as ONE storage transaction. A crash at any instant restarts from
//! a consistent tip and simply reprocesses the block, which is idempotent.
//!
//! Runs on its own thread: every call here blocks (bitcoind RPC, SQLite).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use bitcoin::{Block, BlockHash, Transaction, Txid};
use teos_common::appointment::Locator;

use crate::bitcoind::{BitcoindRpc, RpcError, codes};
use crate::carrier::{Carrier, Interrupted};
use crate::chain_view::SharedChainView;
use crate::gatekeeper::{self, SubscriptionParams};
use crate::metrics as m;
use crate::notify::Heartbeat;
use crate::responder::{Breach, Responder, TrackerChange};
use crate::shutdown::{Shutdown, Wakeup};
use crate::storage::records::TrackerStatus;
use crate::storage::{StorageError, Store, appointments, chain, pending, trackers};
use crate::watched_locators::WatchedLocators;
use crate::watcher;

mod prefetch;
mod storage_ops;

pub use prefetch::{PREFETCH_DEPTH, PREFETCH_THREADS};
use prefetch::{StopFlag, prefetch_blocks};
use storage_ops::{apply_changes, scan_block};

/// How many of its last processed block hashes the tower keeps (the deepest reorg it can follow).
pub const KEPT_BLOCKS: u32 = 288;

/// Why the block processor stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("interrupted by shutdown")]
    Interrupted,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The tower cannot follow bitcoind any more without an operator (see the message).
    #[error("{0}")]
    Fatal(String),
}

impl From<Interrupted> for ProcessError {
    fn from(_: Interrupted) -> Self {
        ProcessError::Interrupted
    }
}

impl From<rusqlite::Error> for ProcessError {
    fn from(e: rusqlite::Error) -> Self {
        ProcessError::Storage(e.into())
    }
}

/// Follows bitcoind's chain and drives Gatekeeper, Watcher and Responder.
pub struct BlockProcessor<B: BitcoindRpc> {
    rpc: Arc<B>,
    fetcher: Carrier<B>,
    responder: Responder<B>,
    store: Store,
    view: SharedChainView,
    params: SubscriptionParams,
    shutdown: Arc<Shutdown>,
    reachable: Arc<AtomicBool>,
    heartbeat: Arc<Heartbeat>,
    tip: (u32, BlockHash),
}

impl<B: BitcoindRpc> BlockProcessor<B> {
    /// A processor whose last processed block is the view's tip.
    pub fn new(
        rpc: Arc<B>,
        store: Store,
        view: SharedChainView,
        params: SubscriptionParams,
        shutdown: Arc<Shutdown>,
        reachable: Arc<AtomicBool>,
        heartbeat: Arc<Heartbeat>,
    ) -> BlockProcessor<B> {
        let tip = view.tip();
        let carrier = || {
            Carrier::new(rpc.clone(), reachable.clone(), shutdown.clone())
                .with_heartbeat(heartbeat.clone())
        };
        BlockProcessor {
            rpc: rpc.clone(),
            fetcher: carrier(),
            responder: Responder::new(carrier()),
            store,
            view,
            params,
            shutdown,
            reachable,
            heartbeat,
            tip,
        }
    }

    /// The last processed block (height, hash).
    pub fn tip(&self) -> (u32, BlockHash) {
        self.tip
    }

    /// Calls bitcoind, retrying while it is unreachable or warming up (until shutdown).
    fn fetch<T>(
        &self,
        call: impl FnMut(&B) -> Result<T, RpcError>,
    ) -> Result<Result<T, RpcError>, ProcessError> {
        Ok(self.fetcher.retrying(call)?)
    }

    /// Processes blocks until the tower's tip is bitcoind's best block. `progress` is called with
    /// (processed height, bitcoind's best height) after each block.
    ///
    /// More than one block behind, blocks are downloaded ahead on prefetch threads while the current
    /// one is connected ([`PREFETCH_THREADS`]); a prefetched block is only connected if it builds on the
    /// tower's tip, so a reorg during catch-up falls back to the block-by-block walk below.
    pub fn sync(&mut self, mut progress: impl FnMut(u32, u32)) -> Result<(), ProcessError> {
        loop {
            if self.shutdown.is_triggered() {
                return Err(ProcessError::Interrupted);
            }
            let best = self.fetch(|rpc| rpc.best_block_hash())??;
            let (height, hash) = self.tip;
            if best == hash {
                return Ok(());
            }
            // Only for progress reports and the prefetch window: a failure here is not fatal.
            let best_height = self
                .fetch(|rpc| rpc.chain_info())?
                .map_or(height + 1, |i| i.blocks.max(height + 1));
            if best_height > height + 1 && self.catch_up(best_height, &mut progress)? > 0 {
                continue;
            }
            let next = match self.fetch(|rpc| rpc.block_hash(height + 1))? {
                Ok(next) => Some(next),
                Err(RpcError::Rpc { code, .. }) if code == codes::INVALID_PARAMETER => None,
                Err(e) => return Err(e.into()),
            };
            let block = match next {
                Some(next) => match self.fetch(|rpc| rpc.block(&next))? {
                    Ok(block) => Some(block),
                    // The chain moved under us; start over.
                    Err(RpcError::Rpc { code, .. }) if code == codes::INVALID_ADDRESS_OR_KEY => {
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                },
                None => None,
            };
            match block {
                Some(block) if block.header.prev_blockhash == hash => {
                    let txids = block.txdata.iter().map(Transaction::compute_txid).collect();
                    let keep = self.keeps_txids(height + 1, best_height);
                    self.connect_with_txids(&block, height + 1, txids, keep)?;
                    self.after_block(height + 1, best_height, &mut progress);
                }
                // bitcoind's chain no longer builds on our tip (previous-hash mismatch, or its chain is now
                // shorter than ours): our tip was reorged out.
                _ => {
                    if self.tip_in_active_chain()? {
                        continue; // raced with a new block; look again
                    }
                    self.disconnect_tip()?;
                }
            }
        }
    }

    fn after_block(&self, height: u32, best_height: u32, progress: &mut impl FnMut(u32, u32)) {
        let best_height = best_height.max(height);
        metrics::gauge!(m::BLOCKS_BEHIND).set(f64::from(best_height - height));
        self.heartbeat.beat();
        progress(height, best_height);
    }

    /// Connects the blocks after the tip up to `best_height` while [`PREFETCH_THREADS`] threads
    /// download them ahead. Stops early, without error, at the first block that does not
    /// build on the tip (reorg) or that the prefetcher could not get (bitcoind trouble is then met by
    /// the retrying walk in [`Self::sync`]). Returns how many blocks were connected.
    fn catch_up(
        &mut self,
        best_height: u32,
        progress: &mut impl FnMut(u32, u32),
    ) -> Result<u32, ProcessError> {
        let stop = StopFlag::default();
        let first = self.tip.0 + 1;
        let mut receivers = Vec::with_capacity(PREFETCH_THREADS as usize);
        for worker in 0..PREFETCH_THREADS {
            // Worker `w` fetches heights first + w, first + w + PREFETCH_THREADS, ...; the blocks are
            // taken from the workers in turn, so they are connected in height order.
            let (sender, receiver) = mpsc::sync_channel(PREFETCH_DEPTH);
            let rpc = self.rpc.clone();
            let heights = (first + worker..=best_height).step_by(PREFETCH_THREADS as usize);
            let stop_prefetch = stop.0.clone();
            let spawned = std::thread::Builder::new()
                .name("teosd-prefetch".into())
                .spawn(move || prefetch_blocks(&*rpc, heights, &sender, &stop_prefetch));
            if let Err(e) = spawned {
                tracing::warn!(
                    "cannot start the block prefetcher ({e}); fetching one block at a time"
                );
                return Ok(0);
            }
            receivers.push(receiver);
        }
        let mut connected = 0;
        loop {
            if self.shutdown.is_triggered() {
                return Err(ProcessError::Interrupted);
            }
            let receiver = &receivers[(connected % PREFETCH_THREADS) as usize];
            let fetched = match receiver.recv_timeout(Duration::from_secs(1)) {
                Ok(fetched) => fetched,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.heartbeat.beat();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(connected),
            };
            let (height, hash) = self.tip;
            if fetched.height != height + 1 || fetched.block.header.prev_blockhash != hash {
                return Ok(connected);
            }
            let keep = self.keeps_txids(fetched.height, best_height);
            self.connect_with_txids(&fetched.block, fetched.height, fetched.txids, keep)?;
            connected += 1;
            self.after_block(fetched.height, best_height, progress);
        }
    }

    fn tip_in_active_chain(&self) -> Result<bool, ProcessError> {
        let (height, hash) = self.tip;
        match self.fetch(|rpc| rpc.block_hash(height))? {
            Ok(active) => Ok(active == hash),
            Err(RpcError::Rpc { code, .. }) if code == codes::INVALID_PARAMETER => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Connects `block` at `height`: scan → decrypt → respond → commit (see the module docs).
    pub fn connect_block(&mut self, block: &Block, height: u32) -> Result<(), ProcessError> {
        let txids: Vec<Txid> = block.txdata.iter().map(Transaction::compute_txid).collect();
        self.connect_with_txids(block, height, txids, true)
    }

    /// Whether the block at `height` ends up in the locator cache once the tower reaches
    /// `best_height`; only those blocks' txids are stored (for [`Self::warm_locator_cache`]).
    fn keeps_txids(&self, height: u32, best_height: u32) -> bool {
        let window = u32::try_from(self.view.lock().cache.capacity()).unwrap_or(u32::MAX);
        best_height.saturating_sub(height) < window
    }

    /// [`Self::connect_block`] with the block's txids (in block order) already computed. With
    /// `keep_txids` they are stored with the block (migration V3) so a restart can fill the locator
    /// cache without downloading it.
    fn connect_with_txids(
        &mut self,
        block: &Block,
        height: u32,
        txids: Vec<Txid>,
        keep_txids: bool,
    ) -> Result<(), ProcessError> {
        let started = Instant::now();
        let hash = block.block_hash();
        let by_locator: HashMap<Locator, (Txid, &Transaction)> = txids
            .iter()
            .zip(&block.txdata)
            .map(|(txid, tx)| (Locator::new(txid), (*txid, tx)))
            .collect();
        let txid_set: HashSet<Txid> = txids.iter().copied().collect();

        // Until the block's commit succeeds, a failure anywhere below takes its txids back out of
        // the locator cache and puts the chain view's tip back (see `UncommittedBlock`).
        let mut uncommitted = UncommittedBlock {
            view: self.view.clone(),
            hash,
            tip: self.tip,
            committed: false,
        };

        // 1. Scan, on the writer so it is ordered with incoming appointments (see chain_view).
        let txids = Arc::new(txids);
        let scan = {
            let view = self.view.clone();
            let txids = txids.clone();
            let expiry_delta = self.params.expiry_delta;
            self.store.write_blocking(move |conn| {
                scan_block(conn, &view, hash, height, &txids, expiry_delta)
            })?
        };
        let scanned = started.elapsed();

        // 2. Watcher: decrypt what matched. 3. Responder: answer breaches, follow trackers.
        let (breaches, mut changes) =
            watcher::find_breaches(scan.appointments, &by_locator, height);
        metrics::counter!(m::APPOINTMENTS_TRIGGERED).increment(breaches.len() as u64);
        for breach in breaches {
            let change = self
                .responder
                .handle_breach(breach, height, Some(&txid_set))?;
            if matches!(&change, TrackerChange::Track(t) if t.status == TrackerStatus::InMempool) {
                metrics::histogram!(m::BREACH_RESPONSE).record(started.elapsed().as_secs_f64());
            }
            changes.push(change);
        }
        changes.extend(
            self.responder
                .block_connected(height, &txid_set, scan.trackers)?,
        );

        // 4. Commit every effect of the block and the new tip at once.
        let responded = started.elapsed();
        let view = self.view.clone();
        let params = self.params;
        let window = u32::try_from(self.view.lock().cache.capacity()).unwrap_or(u32::MAX);
        let block_txids = keep_txids.then(|| txids.clone());
        let rebuild = self
            .store
            .write_blocking(move |conn| -> Result<bool, ProcessError> {
                let outdated = gatekeeper::remove_outdated(conn, height, &params)?;
                if !outdated.is_empty() {
                    tracing::info!(height, count = outdated.len(), "removed outdated users");
                }
                apply_changes(conn, &changes)?;
                chain::push(conn, height, &hash, KEPT_BLOCKS)?;
                if let Some(txids) = &block_txids {
                    chain::set_txids(conn, height, &hash, txids)?;
                }
                chain::clear_txids_below(conn, (height + 1).saturating_sub(window))?;
                let stored = appointments::stored(conn)?;
                let mut view = view.lock();
                view.tip_height = height;
                view.tip_hash = hash;
                Ok(view.watched.needs_rebuild(stored))
            })?;
        uncommitted.committed = true;
        self.tip = (height, hash);
        if rebuild {
            self.reload_watched_locators()?;
        }
        metrics::histogram!(m::BLOCK_PROCESSING).record(started.elapsed().as_secs_f64());
        metrics::gauge!(m::BEST_HEIGHT).set(f64::from(height));
        let elapsed = started.elapsed();
        tracing::debug!(
            height,
            %hash,
            txs = txids.len(),
            elapsed_ms = elapsed.as_millis() as u64,
            scan_us = scanned.as_micros() as u64,
            respond_us = (responded - scanned).as_micros() as u64,
            commit_us = (elapsed - responded).as_micros() as u64,
            "block connected"
        );
        Ok(())
    }

    /// Reloads the index of watched locators from the database (startup, and when entries of deleted
    /// appointments have piled up). Runs as a write op, so no appointment is stored meanwhile.
    pub fn reload_watched_locators(&self) -> Result<(), ProcessError> {
        let view = self.view.clone();
        let started = Instant::now();
        let entries = self
            .store
            .write_blocking(move |conn| -> Result<usize, ProcessError> {
                let watched = WatchedLocators::load(conn)?;
                let entries = watched.len();
                view.lock().watched = watched;
                Ok(entries)
            })?;
        tracing::info!(
            entries,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "watched locators loaded"
        );
        Ok(())
    }

    /// Disconnects the tower's tip (reorg), marking trackers whose dispute or penalty it held.
    pub fn disconnect_tip(&mut self) -> Result<(), ProcessError> {
        let (height, hash) = self.tip;
        let parent = self
            .store
            .read_blocking(move |conn| -> Result<_, ProcessError> {
                Ok(chain::hash_at(conn, height.saturating_sub(1))?)
            })?;
        let Some(parent) = parent.filter(|_| height > 0) else {
            return Err(ProcessError::Fatal(format!(
                "bitcoind reorganized deeper than the {KEPT_BLOCKS} blocks the tower keeps (at height {height}); \
                 the tower cannot find the fork point"
            )));
        };
        let view = self.view.clone();
        self.store
            .write_blocking(move |conn| -> Result<(), ProcessError> {
                for t in trackers::penalty_confirmed_at(conn, height)? {
                    trackers::update_status(conn, &t.uuid, TrackerStatus::Reorged, height)?;
                }
                for t in trackers::dispute_confirmed_at(conn, height)? {
                    trackers::set_dispute_height(conn, &t.uuid, None)?;
                    trackers::update_status(conn, &t.uuid, TrackerStatus::Reorged, height)?;
                }
                pending::delete_by_block(conn, &hash)?;
                chain::pop(conn, height)?;
                let mut view = view.lock();
                view.cache.disconnect_block(&hash);
                view.tip_height = height - 1;
                view.tip_hash = parent;
                Ok(())
            })?;
        tracing::warn!(height, %hash, "block disconnected (reorg)");
        self.tip = (height - 1, parent);
        Ok(())
    }

    /// Answers late appointments: their dispute was already in a recent block when they arrived.
    pub fn handle_pending_breaches(&mut self) -> Result<(), ProcessError> {
        let pending = self
            .store
            .read_blocking(|conn| -> Result<_, ProcessError> { Ok(pending::list(conn)?) })?;
        for p in pending {
            let (uuid, dispute_txid, block_hash) = (p.uuid, p.dispute_txid, p.block_hash);
            let found = self
                .store
                .read_blocking(move |conn| -> Result<_, ProcessError> {
                    let appointment = appointments::get(conn, &uuid)?;
                    let height = chain::height_of(conn, &block_hash)?;
                    Ok(appointment.zip(height))
                })?;
            let Some((appointment, dispute_height)) = found else {
                // The block left the chain or the appointment is gone: keep watching, as before.
                self.store
                    .write_blocking(move |conn| -> Result<_, ProcessError> {
                        Ok(pending::delete(conn, &uuid)?)
                    })?;
                continue;
            };
            let change = match self
                .fetch(|rpc| rpc.raw_transaction(&dispute_txid, Some(&block_hash)))?
            {
                Ok(dispute_tx) => match teos_common::cryptography::decrypt(
                    &appointment.encrypted_blob,
                    &dispute_txid,
                ) {
                    Ok(penalty_tx) => {
                        let breach = Breach {
                            uuid,
                            user_id: appointment.user_id,
                            dispute_tx,
                            penalty_tx,
                            dispute_height,
                        };
                        self.responder.handle_breach(breach, self.tip.0, None)?
                    }
                    Err(e) => TrackerChange::Drop {
                        uuid,
                        reason: format!("late breach but the blob does not decrypt: {e}"),
                    },
                },
                Err(e) => {
                    tracing::warn!(%uuid, "cannot fetch the dispute of a late appointment ({e}); watching it");
                    TrackerChange::Rewatch { uuid }
                }
            };
            self.store
                .write_blocking(move |conn| -> Result<(), ProcessError> {
                    apply_changes(conn, std::slice::from_ref(&change))?;
                    pending::delete(conn, &uuid)?;
                    Ok(())
                })?;
        }
        Ok(())
    }

    /// Fills the locator cache with the txids of the last `blocks` processed blocks (at startup): from
    /// the database where they were stored with the block, downloading only the blocks without them
    /// (processed before migration V3, or with a smaller `locator_cache_size` at the time).
    pub fn warm_locator_cache(&mut self, blocks: u32) -> Result<(), ProcessError> {
        let recent = self
            .store
            .read_blocking(move |conn| -> Result<_, ProcessError> {
                let mut recent = Vec::new();
                for (height, hash) in chain::recent(conn)?.into_iter().take(blocks as usize) {
                    recent.push((height, hash, chain::txids_at(conn, height)?));
                }
                Ok(recent)
            })?;
        let mut downloaded = Vec::new();
        for (height, hash, stored) in recent.into_iter().rev() {
            let txids = match stored {
                Some(txids) => txids,
                None => {
                    let block = self.fetch(|rpc| rpc.block(&hash))??;
                    let txids: Vec<Txid> =
                        block.txdata.iter().map(Transaction::compute_txid).collect();
                    downloaded.push((height, hash, txids.clone()));
                    txids
                }
            };
            self.view.lock().cache.connect_block(hash, height, &txids);
        }
        tracing::debug!(
            blocks,
            downloaded = downloaded.len(),
            "locator cache filled"
        );
        if !downloaded.is_empty() {
            // Kept so the next start does not download them again.
            self.store
                .write_blocking(move |conn| -> Result<(), ProcessError> {
                    for (height, hash, txids) in &downloaded {
                        chain::set_txids(conn, *height, hash, txids)?;
                    }
                    Ok(())
                })?;
        }
        Ok(())
    }

    /// The thread's main loop: sync whenever woken (ZMQ, poller, late appointment) or every
    /// `poll_interval`, until shutdown. Fatal errors stop the tower (`on_fatal`). The heartbeat is beaten
    /// at least once a second while the loop is healthy (systemd watchdog, see `notify`).
    pub fn run(
        mut self,
        wakeup: Arc<Wakeup>,
        poll_interval: Duration,
        on_fatal: impl Fn(&ProcessError),
    ) {
        while !self.shutdown.is_triggered() {
            self.heartbeat.beat();
            let result = self
                .sync(|height, best| {
                    if best > height {
                        let status = format!("catching up: block {height} of {best}");
                        tracing::info!("{status}");
                        crate::notify::Notifier::status(&status);
                    }
                })
                .and_then(|()| self.handle_pending_breaches());
            match result {
                Ok(()) => self.reachable.store(true, Ordering::SeqCst),
                Err(ProcessError::Interrupted) => break,
                Err(e @ ProcessError::Fatal(_)) => {
                    tracing::error!("{e}");
                    on_fatal(&e);
                    break;
                }
                Err(e) => {
                    tracing::error!("block processing failed, retrying: {e}");
                    self.shutdown.wait_timeout(Duration::from_secs(1));
                    continue;
                }
            }
            let slept = Instant::now();
            while !wakeup.wait(Duration::from_secs(1)) && slept.elapsed() < poll_interval {
                self.heartbeat.beat();
                if self.shutdown.is_triggered() {
                    break;
                }
            }
        }
        tracing::info!("block processor stopped at height {}", self.tip.0);
    }
}

/// A block being connected, until its commit succeeds. Dropped uncommitted (an error after the scan,
/// a failed COMMIT, a shutdown while answering a breach), it takes the block's txids back out of the
/// locator cache and sets the chain view's tip back to the last committed block, so late appointments
/// are not matched against, nor dated by, a block the tower has not processed. The retry scans the
/// block again.
struct UncommittedBlock {
    view: SharedChainView,
    hash: BlockHash,
    tip: (u32, BlockHash),
    committed: bool,
}

impl Drop for UncommittedBlock {
    fn drop(&mut self) {
        if !self.committed {
            let mut view = self.view.lock();
            view.cache.disconnect_block(&self.hash);
            view.tip_height = self.tip.0;
            view.tip_hash = self.tip.1;
        }
    }
}

#[cfg(test)]
mod tests;
