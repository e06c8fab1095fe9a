//! The block processor: follows the chain walker from the tower's last processed block to bitcoind's
//! best block, one block at a time and in order, disconnecting back to the fork point on a reorg
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
use crate::chain_walker::{ChainWalker, Reorg, Step, Tip};
use crate::gatekeeper::{Gatekeeper, SubscriptionParams};
use crate::listen::{ConnectedBlock, Decision, DisconnectedBlock, Listen};
use crate::locator_cache::LocatorCache;
use crate::metrics as m;
use crate::notify::Heartbeat;
use crate::responder::{Responder, ResponderFound, TrackerChange};
use crate::shutdown::{Shutdown, Wakeup};
use crate::storage::records::TrackerStatus;
use crate::storage::{StorageError, Store};
use crate::watcher::Watcher;

mod late;
mod prefetch;
mod storage_ops;

pub use prefetch::{PREFETCH_DEPTH, PREFETCH_THREADS};
use prefetch::{StopFlag, prefetch_blocks};
use storage_ops::{
    CommitBlock, ReloadWatchedLocators, RememberRecentBlocks, ScanBlock, StoreBlockTxids,
    UnwindBlocks,
};

/// How many of its last processed blocks the tower remembers in storage (`chain` rows). Reorgs of any
/// depth are followed (the chain walker asks bitcoind for headers); this bounds the locator cache
/// (`locator_cache_size` ≤ this) and the stored txids.
pub const KEPT_BLOCKS: u32 = 288;

/// Late appointments answered per turn of the main loop, between looks at bitcoind's tip, so a flood
/// of them cannot delay the next block's scan by more than this many answers.
pub const LATE_BATCH: u32 = 16;

/// How often "waiting for bitcoind to pass the tip" is logged while it lasts (a reindex takes hours).
const WAITING_LOG_EVERY: Duration = Duration::from_secs(60);

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

/// Follows bitcoind's chain and drives Gatekeeper, Watcher and Responder.
pub struct BlockProcessor<B: BitcoindRpc> {
    /// Talks to bitcoind about the chain and owns the tip.
    walker: ChainWalker<B>,
    /// Removes outdated users.
    gatekeeper: Gatekeeper,
    /// Answers breaches and follows trackers (sends through its own Carrier).
    responder: Responder<B>,
    /// Where every block's effects are committed.
    store: Store,
    /// The tip and locator cache request handlers see; changed only inside storage ops.
    view: SharedChainView,
    /// Subscription terms (for outdated users).
    params: SubscriptionParams,
    shutdown: Arc<Shutdown>,
    /// "bitcoind reachable", set after every successful turn of the loop.
    reachable: Arc<AtomicBool>,
    /// Beaten while the pipeline is alive (systemd watchdog).
    heartbeat: Arc<Heartbeat>,
    /// Late appointments: where the last batch stopped, and when to retry failed ones.
    late: late::LateQueue,
    /// When waiting for bitcoind to pass the tip was last logged (see [`WAITING_LOG_EVERY`]).
    waiting_since: Option<Instant>,
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
        let (height, hash) = view.tip();
        let carrier = || {
            Carrier::new(rpc.clone(), reachable.clone(), shutdown.clone())
                .with_heartbeat(heartbeat.clone())
        };
        BlockProcessor {
            walker: ChainWalker::new(carrier(), store.clone(), Tip::new(height, hash)),
            gatekeeper: Gatekeeper {
                expiry_delta: params.expiry_delta,
            },
            responder: Responder::new(carrier()),
            store,
            view,
            params,
            shutdown,
            reachable,
            heartbeat,
            late: late::LateQueue::default(),
            waiting_since: None,
        }
    }

    /// The last processed block.
    pub fn tip(&self) -> Tip {
        self.walker.tip()
    }

    /// Processes blocks until the tower's tip is bitcoind's best block, or bitcoind's best block has no
    /// more work than the tip (see `chain_walker`). `progress` is called with (processed height,
    /// bitcoind's best height) after each block.
    ///
    /// More than one block behind, blocks are downloaded ahead on prefetch threads while the current
    /// one is connected ([`PREFETCH_THREADS`]); a prefetched block is only connected if it builds on the
    /// tower's tip, so a reorg during catch-up falls back to the block-by-block walk below.
    pub fn sync(&mut self, mut progress: impl FnMut(u32, u32)) -> Result<(), ProcessError> {
        loop {
            if self.shutdown.is_triggered() {
                return Err(ProcessError::Interrupted);
            }
            match self.walker.poll()? {
                Step::AtTip => {
                    self.waiting_since = None;
                    return Ok(());
                }
                Step::Waiting { best } => {
                    if self
                        .waiting_since
                        .is_none_or(|logged| logged.elapsed() >= WAITING_LOG_EVERY)
                    {
                        let tip = self.walker.tip();
                        let status = format!(
                            "waiting for bitcoind: its best block {} ({}) has no more work than the \
                             tower's tip {} ({}); bitcoind is behind (reindexing, restored or lagging)",
                            best.height, best.hash, tip.height, tip.hash
                        );
                        tracing::warn!("{status}");
                        crate::notify::Notifier::status(&status);
                        self.waiting_since = Some(Instant::now());
                    }
                    return Ok(());
                }
                Step::Reorg(reorg) => self.disconnect_to(reorg)?,
                Step::Behind { best_height } => {
                    let height = self.walker.tip().height;
                    if best_height > height + 1 && self.catch_up(best_height, &mut progress)? > 0 {
                        continue;
                    }
                    self.connect_next(best_height, &mut progress)?;
                }
            }
        }
    }

    /// Downloads and connects the block after the tip, if it still builds on it (otherwise the next
    /// poll sees why).
    fn connect_next(
        &mut self,
        best_height: u32,
        progress: &mut impl FnMut(u32, u32),
    ) -> Result<(), ProcessError> {
        let tip = self.walker.tip();
        let height = tip.height + 1;
        let next = match self.walker.fetch(|rpc| rpc.block_hash(height))? {
            Ok(next) => next,
            Err(RpcError::Rpc { code, .. }) if code == codes::INVALID_PARAMETER => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let block = match self.walker.fetch(|rpc| rpc.block(&next))? {
            Ok(block) => block,
            // The chain moved under us; look again.
            Err(RpcError::Rpc { code, .. }) if code == codes::INVALID_ADDRESS_OR_KEY => {
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        if block.header.prev_blockhash != tip.hash {
            return Ok(());
        }
        let txids = block.txdata.iter().map(Transaction::compute_txid).collect();
        let keep = self.keeps_txids(height, best_height);
        self.connect_with_txids(&block, height, txids, keep)?;
        self.after_block(height, best_height, progress);
        Ok(())
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
        let first = self.walker.tip().height + 1;
        let mut receivers = Vec::with_capacity(PREFETCH_THREADS as usize);
        for worker in 0..PREFETCH_THREADS {
            // Worker `w` fetches heights first + w, first + w + PREFETCH_THREADS, ...; the blocks are
            // taken from the workers in turn, so they are connected in height order.
            let (sender, receiver) = mpsc::sync_channel(PREFETCH_DEPTH);
            let rpc = self.walker.rpc();
            let heights = (first + worker..=best_height).step_by(PREFETCH_THREADS as usize);
            let stop_prefetch = stop.0.clone();
            let spawned = crate::thread::spawn("teosd-prefetch", move || {
                prefetch_blocks(&*rpc, heights, &sender, &stop_prefetch);
                Ok(())
            });
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
            let tip = self.walker.tip();
            if fetched.height != tip.height + 1 || fetched.block.header.prev_blockhash != tip.hash {
                return Ok(connected);
            }
            let keep = self.keeps_txids(fetched.height, best_height);
            self.connect_with_txids(&fetched.block, fetched.height, fetched.txids, keep)?;
            connected += 1;
            self.after_block(fetched.height, best_height, progress);
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
        best_height.saturating_sub(height) < self.cache_window()
    }

    /// How many blocks the locator cache keeps (`locator_cache_size`).
    fn cache_window(&self) -> u32 {
        u32::try_from(self.view.lock().cache.capacity()).unwrap_or(u32::MAX)
    }

    /// Where a penalty bitcoind reports as confirmed is among the blocks the tower knows: the locator
    /// cache (which holds the block being connected too).
    fn confirmed_at(view: &SharedChainView) -> impl Fn(&Txid) -> Option<u32> + '_ {
        move |txid| {
            let view = view.lock();
            view.cache
                .get(&Locator::new(txid))
                .filter(|cached| cached.txid == *txid)
                .map(|cached| cached.height)
        }
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
        let tip = self.walker.tip();
        let chainwork = tip.chainwork.map(|work| work + block.header.work());
        let by_locator: HashMap<Locator, (Txid, &Transaction)> = txids
            .iter()
            .zip(&block.txdata)
            .map(|(txid, tx)| (Locator::new(txid), (*txid, tx)))
            .collect();
        let txid_set: HashSet<Txid> = txids.iter().copied().collect();

        // Until the block's commit succeeds, a failure anywhere below puts the chain view back as it
        // was (see `UncommittedView`).
        let mut uncommitted = UncommittedView::connecting(&self.view, hash);

        // 1. Scan, on the writer so it is ordered with incoming appointments (see chain_view).
        let txids = Arc::new(txids);
        let scan = self.store.execute_blocking(ScanBlock {
            view: self.view.clone(),
            hash,
            height,
            txids: txids.clone(),
            expiry_delta: self.params.expiry_delta,
        })?;
        let scanned = started.elapsed();

        // 2. Gatekeeper, Watcher, Responder, in that order (see `listen`); the Watcher's breaches go
        // to the Responder.
        let confirmed_at = Self::confirmed_at(&self.view);
        let event = ConnectedBlock {
            height,
            hash,
            txids: &txid_set,
            txs: &by_locator,
            confirmed_at: &confirmed_at,
        };
        let mut decisions = self.gatekeeper.block_connected(&event, ())?;
        let mut breaches = Vec::new();
        for decision in Watcher.block_connected(&event, scan.appointments)? {
            match decision {
                Decision::Breach(breach) => breaches.push(breach),
                other => decisions.push(other),
            }
        }
        metrics::counter!(m::APPOINTMENTS_TRIGGERED).increment(breaches.len() as u64);
        let found = ResponderFound {
            breaches,
            trackers: scan.trackers,
        };
        let responses = self.responder.block_connected(&event, found)?;
        for decision in &responses {
            if matches!(decision, Decision::Tracker(TrackerChange::Track(t)) if t.status == TrackerStatus::InMempool)
            {
                metrics::histogram!(m::BREACH_RESPONSE).record(started.elapsed().as_secs_f64());
            }
        }
        decisions.extend(responses);

        // 4. Commit every effect of the block and the new tip at once.
        let responded = started.elapsed();
        let rebuild = self.store.execute_blocking(CommitBlock {
            view: self.view.clone(),
            decisions,
            tip: Tip {
                height,
                hash,
                chainwork,
            },
            txids: keep_txids.then(|| txids.clone()),
            cache_window: self.cache_window(),
        })?;
        uncommitted.committed();
        self.walker.set_tip(Tip {
            height,
            hash,
            chainwork,
        });
        if rebuild {
            self.reload_watched_locators()?;
        }
        metrics::histogram!(m::BLOCK_PROCESSING).record(started.elapsed().as_secs_f64());
        metrics::gauge!(m::BEST_HEIGHT).set(f64::from(height));
        m::tip_processed(block.header.time);
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
        let started = Instant::now();
        let entries = self.store.execute_blocking(ReloadWatchedLocators {
            view: self.view.clone(),
        })?;
        tracing::info!(
            entries,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "watched locators loaded"
        );
        Ok(())
    }

    /// Disconnects every block above the fork point (one storage transaction): trackers whose dispute
    /// or penalty was in them are marked reorged (sent again at the next block), late appointments
    /// whose dispute was in them go back to being watched, and the fork point becomes the tip.
    fn disconnect_to(&mut self, reorg: Reorg) -> Result<(), ProcessError> {
        let Reorg { fork, stale } = reorg;
        // What each component decides for each disconnected block, tip first. Trackers are read
        // before the write op: only this thread changes them.
        let heights: Vec<u32> = stale.iter().map(|(height, _)| *height).collect();
        let concerned = self
            .store
            .read_blocking(move |tx| -> Result<_, ProcessError> {
                let mut concerned = Vec::with_capacity(heights.len());
                for height in heights {
                    let mut trackers = tx.trackers_with_penalty_at(height)?;
                    trackers.extend(tx.trackers_with_dispute_at(height)?);
                    trackers.sort_by_key(|t| t.uuid);
                    trackers.dedup_by_key(|t| t.uuid);
                    concerned.push(trackers);
                }
                Ok(concerned)
            })?;
        let mut decisions = Vec::new();
        for (&(height, hash), trackers) in stale.iter().zip(concerned) {
            let event = DisconnectedBlock { height, hash };
            decisions.extend(self.gatekeeper.block_disconnected(&event, ()));
            decisions.extend(Watcher.block_disconnected(&event, Vec::new()));
            let found = ResponderFound {
                breaches: Vec::new(),
                trackers,
            };
            decisions.extend(self.responder.block_disconnected(&event, found));
        }

        let mut uncommitted = UncommittedView::unwinding(&self.view);
        self.store.execute_blocking(UnwindBlocks {
            view: self.view.clone(),
            decisions,
            fork,
            stale: stale.iter().filter_map(|(_, hash)| *hash).collect(),
        })?;
        uncommitted.committed();
        for (height, hash) in &stale {
            match hash {
                Some(hash) => tracing::warn!(height, %hash, "block disconnected (reorg)"),
                None => tracing::warn!(height, "block disconnected (reorg)"),
            }
        }
        tracing::info!(height = fork.height, hash = %fork.hash, "reorg: fork point reached");
        self.walker.set_tip(fork);
        Ok(())
    }

    /// Answers up to `budget` late appointments (their dispute was already in a recent block when they
    /// arrived). Returns whether more may be waiting.
    pub fn handle_pending_breaches(&mut self, budget: u32) -> Result<bool, ProcessError> {
        let tip = self.walker.tip();
        let confirmed_at = Self::confirmed_at(&self.view);
        self.late.answer_batch(
            &self.store,
            &self.walker,
            &self.responder,
            tip,
            budget,
            &confirmed_at,
        )
    }

    /// Fills the locator cache with the txids of the last `blocks` processed blocks (at startup): from
    /// the database where they were stored with the block, downloading only the blocks without them
    /// (processed before migration V3, or with a smaller `locator_cache_size` at the time). A block
    /// bitcoind cannot serve (pruned, or a stale block it never had) is left out with a warning: late
    /// appointments for its transactions are then watched instead (a re-mined dispute is still found).
    pub fn warm_locator_cache(&mut self, blocks: u32) -> Result<(), ProcessError> {
        let recent = self
            .store
            .read_blocking(move |tx| -> Result<_, ProcessError> {
                let mut recent = Vec::new();
                for (height, hash) in tx.recent_blocks()?.into_iter().take(blocks as usize) {
                    recent.push((height, hash, tx.block_txids(height)?));
                }
                Ok(recent)
            })?;
        let mut downloaded = Vec::new();
        let mut warmed = Vec::new();
        for (height, hash, stored) in recent.into_iter().rev() {
            let txids = match stored {
                Some(txids) => txids,
                None => match self.walker.fetch(|rpc| rpc.block(&hash))? {
                    Ok(block) => {
                        let txids: Vec<Txid> =
                            block.txdata.iter().map(Transaction::compute_txid).collect();
                        downloaded.push((height, hash, txids.clone()));
                        txids
                    }
                    Err(e) => {
                        tracing::warn!(height, %hash, "cannot download a recent block for the locator cache ({e}); left out");
                        continue;
                    }
                },
            };
            self.view.lock().cache.connect_block(hash, height, &txids);
            if self.store.is_postgres() {
                warmed.push((height, hash, txids));
            }
        }
        tracing::debug!(
            blocks,
            downloaded = downloaded.len(),
            "locator cache filled"
        );
        if !downloaded.is_empty() {
            // Kept so the next start does not download them again.
            self.store
                .execute_blocking(StoreBlockTxids { blocks: downloaded })?;
        }
        if !warmed.is_empty() {
            // A fleet: appointments stored on any instance find these blocks' transactions too
            // (late appointments), also for blocks no leader scanned (a fresh fleet's bootstrap).
            let window = u32::try_from(self.view.lock().cache.capacity()).unwrap_or(u32::MAX);
            self.store.execute_blocking(RememberRecentBlocks {
                blocks: warmed,
                window,
            })?;
        }
        Ok(())
    }

    /// The thread's main loop: sync whenever woken (ZMQ, poller, late appointment) or every
    /// `poll_interval`, until shutdown, answering late appointments in batches of [`LATE_BATCH`]
    /// between looks at bitcoind's tip. Fatal errors stop the tower (`on_fatal`). The heartbeat is
    /// beaten at least once a second while the loop is healthy (systemd watchdog, see `notify`).
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
                .and_then(|()| self.handle_pending_breaches(LATE_BATCH));
            match result {
                Ok(more) => {
                    self.reachable.store(true, Ordering::SeqCst);
                    if more {
                        continue;
                    }
                }
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
            // Sleep until woken, the poll interval, or the next late appointment retry.
            let slept = Instant::now();
            let nap = self.late.next_retry().map_or(poll_interval, |at| {
                at.saturating_duration_since(slept).min(poll_interval)
            });
            while !wakeup.wait(Duration::from_secs(1).min(nap)) && slept.elapsed() < nap {
                self.heartbeat.beat();
                if self.shutdown.is_triggered() {
                    break;
                }
            }
        }
        tracing::info!(
            "block processor stopped at height {}",
            self.walker.tip().height
        );
    }
}

/// The chain view as it was before a block was connected or a reorg unwound, until that commit
/// succeeds. Dropped uncommitted (an error after the scan, a failed COMMIT, a shutdown while answering
/// a breach), it puts the view's tip and locator cache back, so late appointments are neither matched
/// against, nor dated by, nor blind to blocks whose effects are not committed. The retry starts over.
struct UncommittedView {
    view: SharedChainView,
    tip: (u32, BlockHash),
    undo: Option<Undo>,
}

/// How to put the locator cache back.
enum Undo {
    /// Take out the block being connected (cheap: no copy on the hot path).
    Connected(BlockHash),
    /// Restore the whole cache as it was before a reorg (rare).
    Cache(LocatorCache),
}

impl UncommittedView {
    /// Before connecting block `hash`.
    fn connecting(view: &SharedChainView, hash: BlockHash) -> UncommittedView {
        UncommittedView {
            view: view.clone(),
            tip: view.tip(),
            undo: Some(Undo::Connected(hash)),
        }
    }

    /// Before a reorg.
    fn unwinding(view: &SharedChainView) -> UncommittedView {
        let guard = view.lock();
        let tip = (guard.tip_height, guard.tip_hash);
        let cache = guard.cache.clone();
        drop(guard);
        UncommittedView {
            view: view.clone(),
            tip,
            undo: Some(Undo::Cache(cache)),
        }
    }

    /// The commit succeeded: keep the view as the op left it.
    fn committed(&mut self) {
        self.undo = None;
    }
}

impl Drop for UncommittedView {
    fn drop(&mut self) {
        let Some(undo) = self.undo.take() else {
            return;
        };
        let mut view = self.view.lock();
        match undo {
            Undo::Connected(hash) => view.cache.disconnect_block(&hash),
            Undo::Cache(cache) => view.cache = cache,
        }
        view.tip_height = self.tip.0;
        view.tip_hash = self.tip.1;
    }
}

#[cfg(test)]
mod tests;
