//! Leadership terms: the chain pipeline runs only while this instance leads.
//!
//! The pipeline is what must run exactly once for the whole tower: the chain monitor, the block
//! processor (Gatekeeper, Watcher, Responder, Carrier, late appointments, expiry) and the mempool
//! watcher. The public and admin APIs are not part of it: every instance serves them.
//!
//! A **term** begins when the role turns [`Role::Leader`] and ends when the role changes or the
//! process shuts down. Each term has its own end flag ([`Shutdown`]) handed to the pipeline's
//! components in place of the process's, so a term can end (leadership lost) without stopping the
//! process; the next term resumes from the committed tip, as a restart would (catch-up, then late
//! appointments). The process's shutdown ends the current term too.
//!
//! With the embedded SQLite database the instance is alone: its role is `Leader` from start to
//! shutdown (epoch 0), the first term is begun before the servers start, and nothing differs from a
//! tower without fleets. In a fleet (issue 12, docs/fleet.md) the role comes from
//! [`crate::fleet::Leadership`].

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

use super::pipeline::{Pipeline, catch_up};
use super::{Shared, starting_tip};
use crate::bitcoind::{BitcoindClient, BitcoindRpc};
use crate::block_processor::{BlockProcessor, ProcessError};
use crate::config::Config;
use crate::fleet::{Epoch, Role};
use crate::shutdown::Shutdown;
use crate::storage::Store;

/// The role of the instance alone on its database (SQLite): leader for ever, epoch 0. The sender is
/// kept so the channel never closes.
pub(super) fn sole_leader() -> (watch::Sender<Role>, watch::Receiver<Role>) {
    watch::channel(Role::Leader { epoch: Epoch(0) })
}

/// One term's running pipeline and the flag that ends it.
pub(super) struct Term {
    /// The fencing token of the term (0 on SQLite).
    pub(super) epoch: Epoch,
    /// Triggered when the role leaves `Leader { epoch }` or the process shuts down.
    pub(super) end: Arc<Shutdown>,
    /// The pipeline's threads, joined when the term ends.
    pipeline: Pipeline,
    /// The database, whose fence is lifted when the term ends.
    store: Store,
}

impl Term {
    /// Ends the term (if not already) and waits for the pipeline's threads.
    pub(super) fn finish(self) {
        self.end.trigger();
        self.pipeline.join();
        self.store.set_fence(None);
        crate::metrics::fleet_role(Role::Standby);
        tracing::info!(epoch = %self.epoch, event = "pipeline_stopped", "chain pipeline stopped");
    }
}

/// What a term needs from the daemon (owned: the supervisor thread keeps it).
pub(super) struct TermContext {
    /// The API runtime, where each term's end relay runs.
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) rpc: Arc<BitcoindClient>,
    pub(super) config: Arc<Config>,
    pub(super) shared: Shared,
}

/// The term's end flag: triggered by the process's shutdown or by the role leaving
/// `Leader { epoch }` (a task on the API runtime relays both).
fn end_flag(cx: &TermContext, epoch: Epoch, mut roles: watch::Receiver<Role>) -> Arc<Shutdown> {
    let end = Arc::new(Shutdown::new());
    let (relay_end, process) = (end.clone(), cx.shared.shutdown.clone());
    cx.runtime.spawn(async move {
        tokio::select! {
            () = process.wait() => {}
            () = relay_end.wait() => {}
            changed = roles.wait_for(|role| *role != Role::Leader { epoch }) => {
                if changed.is_ok() {
                    tracing::warn!(%epoch, event = "leadership_lost", "leadership lost: stopping the chain pipeline");
                }
            }
        }
        relay_end.trigger();
    });
    end
}

/// A term caught up and ready to start its pipeline ([`Prepared::launch`]).
pub(super) struct Prepared {
    epoch: Epoch,
    end: Arc<Shutdown>,
    processor: BlockProcessor<BitcoindClient>,
    store: Store,
}

/// Prepares a term as leader with fencing token `epoch`: resumes from `tip` when the caller just
/// read it, else from the committed tip (or bitcoind's tip on a fresh database), and catches up.
/// `Ok(None)` when the term ended during catch-up (shutdown or leadership lost).
///
/// Errors: as the daemon's startup (the stored tip unusable, bitcoind pruned what the tower needs);
/// the caller stops the process.
pub(super) fn prepare(
    cx: &TermContext,
    epoch: Epoch,
    roles: watch::Receiver<Role>,
    tip: Option<(u32, bitcoin::BlockHash)>,
) -> anyhow::Result<Option<Prepared>> {
    let end = end_flag(cx, epoch, roles);
    crate::metrics::fleet_role(Role::Leader { epoch });
    // From now on this instance's block commands carry its epoch (PostgreSQL checks it inside each).
    cx.shared.store.set_fence(Some(epoch.0));
    let tip = match tip {
        Some(tip) => tip,
        None => {
            let tip = starting_tip(&*cx.rpc, &cx.shared.store, &cx.config)?;
            tracing::info!(%epoch, "leading from block {} ({})", tip.0, tip.1);
            tip
        }
    };
    // What another leader committed meanwhile is unknown here: a fresh view, which the catch-up
    // fills (watched locators, locator cache).
    cx.shared
        .view
        .reset(tip.0, tip.1, cx.config.locator_cache_size as usize);
    let mut processor = processor_for(cx, end.clone());
    match catch_up(&mut processor, &cx.config) {
        Err(ProcessError::Interrupted) => {
            cx.shared.store.set_fence(None);
            return Ok(None);
        }
        Err(e) => {
            cx.shared.store.set_fence(None);
            return Err(e.into());
        }
        Ok(()) => {}
    }
    // The tip resumed from (or caught up to) is processed as of now; its block time comes from
    // bitcoind (teosd_tip_age_seconds).
    match cx.rpc.block_header(&processor.tip().hash) {
        Ok(header) => crate::metrics::tip_processed(header.time),
        Err(e) => tracing::debug!("cannot read the tip's block time: {e}"),
    }
    Ok(Some(Prepared {
        epoch,
        end,
        processor,
        store: cx.shared.store.clone(),
    }))
}

impl Prepared {
    /// Starts the term's pipeline.
    ///
    /// Errors: a thread that cannot start (the term is ended and what started is joined).
    pub(super) fn launch(self, cx: &TermContext) -> anyhow::Result<Term> {
        let Prepared {
            epoch,
            end,
            processor,
            store,
        } = self;
        let mut pipeline = Pipeline::default();
        if let Err(e) = pipeline.start(cx.rpc.clone(), &cx.config, &cx.shared, &end, processor) {
            end.trigger();
            pipeline.join();
            store.set_fence(None);
            return Err(e);
        }
        tracing::info!(%epoch, event = "pipeline_started", "chain pipeline started");
        Ok(Term {
            epoch,
            end,
            pipeline,
            store,
        })
    }

    /// Ends the term before its pipeline started.
    pub(super) fn abandon(self) {
        self.end.trigger();
        self.store.set_fence(None);
        crate::metrics::fleet_role(Role::Standby);
    }
}

/// A block processor whose components stop when `end` is triggered.
pub(super) fn processor_for(
    cx: &TermContext,
    end: Arc<Shutdown>,
) -> BlockProcessor<BitcoindClient> {
    let shared = &cx.shared;
    BlockProcessor::new(
        cx.rpc.clone(),
        shared.store.clone(),
        shared.view.clone(),
        shared.params,
        end,
        shared.reachable.clone(),
        shared.heartbeat.clone(),
    )
}

/// Runs terms for as long as the process lives: waits to lead, runs a term, and again, on the
/// `fleet-terms` thread. `current` is the term begun before the servers started, if any. Between
/// terms (standby) the heartbeat is beaten: a standby is healthy while it waits.
///
/// Errors: a term that cannot begin stops the process (the thread fails, see [`crate::thread`]).
pub(super) fn supervise(
    cx: TermContext,
    mut roles: watch::Receiver<Role>,
    mut current: Option<Term>,
) -> std::io::Result<JoinHandle<()>> {
    crate::thread::spawn("fleet-terms", move || {
        let shutdown = cx.shared.shutdown.clone();
        loop {
            if let Some(term) = current.take() {
                while !term.end.wait_timeout(Duration::from_secs(1)) {}
                term.finish();
            }
            // Standby: wait for the role to turn Leader (or shutdown).
            crate::metrics::fleet_role(Role::Standby);
            let epoch = loop {
                if shutdown.is_triggered() {
                    return Ok(());
                }
                if let Role::Leader { epoch } = *roles.borrow_and_update() {
                    break epoch;
                }
                cx.shared.heartbeat.beat();
                follow_committed_tip(&cx);
                shutdown.wait_timeout(Duration::from_millis(500));
            };
            current = match prepare(&cx, epoch, roles.clone(), None)? {
                Some(prepared) => Some(prepared.launch(&cx)?),
                None => None,
            };
        }
    })
}

/// A standby's view follows the tip the leader committed (the API's heights: registrations'
/// subscription start, appointments' start block, expiry checks). Errors are logged: the next
/// turn tries again.
fn follow_committed_tip(cx: &TermContext) {
    match cx.shared.store.read_blocking(|tx| tx.chain_tip()) {
        Ok(Some((height, hash))) => {
            let mut view = cx.shared.view.lock();
            view.tip_height = height;
            view.tip_hash = hash;
        }
        Ok(None) => {}
        Err(e) => tracing::debug!("cannot read the committed tip: {e}"),
    }
}
