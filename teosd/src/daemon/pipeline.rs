//! The chain pipeline's threads for one leadership term (see [`super::terms`]): the chain monitor,
//! the block processor and the mempool watcher, all stopped by the term's end flag.

use std::cell::RefCell;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::anyhow;

use super::{Shared, zmq};
use crate::bitcoind::BitcoindClient;
use crate::block_processor::{BlockProcessor, ProcessError};
use crate::carrier::Carrier;
use crate::chain_monitor::ChainMonitor;
use crate::config::Config;
use crate::mempool_watch::{MempoolWatch, MempoolWatcher};
use crate::notify::Notifier;
use crate::shutdown::Shutdown;

/// A term's threads after catch-up, joined when the term ends. Each is started with
/// [`crate::thread::spawn`], so a panic (or the block processor's fatal error) stops the process and
/// `run` returns it.
#[derive(Default)]
pub(super) struct Pipeline {
    /// The chain monitor's threads (`zmq-hashblock`, `bitcoind-poller`): they wake the processor.
    monitor: Option<ChainMonitor>,
    /// The `mempool-watch` thread (with `mempool_watch`): answers breaches before they are mined.
    mempool: Option<MempoolWatch>,
    /// `block-processor`.
    threads: Vec<JoinHandle<()>>,
}

impl Pipeline {
    /// Starts the chain monitor, the block processor and the mempool watcher (with `mempool_watch`),
    /// each stopped by `end`. Stops at the first that cannot start (the caller triggers `end` and
    /// joins what did).
    pub(super) fn start(
        &mut self,
        rpc: Arc<BitcoindClient>,
        config: &Config,
        shared: &Shared,
        end: &Arc<Shutdown>,
        processor: BlockProcessor<BitcoindClient>,
    ) -> anyhow::Result<()> {
        let polling = Duration::from_secs(u64::from(config.polling_delta).max(1));
        self.monitor = Some(ChainMonitor::start(
            rpc.clone(),
            zmq::hashblock_endpoint(&*rpc, config),
            polling,
            shared.wakeup.clone(),
            shared.reachable.clone(),
            end.clone(),
        )?);
        let wakeup = shared.wakeup.clone();
        // A fleet's late appointments may be stored by another instance, which cannot wake this
        // process: the leader looks at the pending ones at least every second.
        let turn = if shared.store.is_postgres() {
            polling.min(Duration::from_secs(1))
        } else {
            polling
        };
        self.threads
            .push(crate::thread::spawn("block-processor", move || {
                // `run` reports a fatal error (e.g. a reorg deeper than the tower keeps) and returns.
                let fatal = RefCell::new(None);
                processor.run(wakeup, turn, |e| {
                    *fatal.borrow_mut() = Some(e.to_string());
                });
                match fatal.into_inner() {
                    Some(reason) => Err(anyhow!(reason)),
                    None => Ok(()),
                }
            })?);
        if config.mempool_watch {
            let carrier = Carrier::new(rpc.clone(), shared.reachable.clone(), end.clone());
            let watcher = MempoolWatcher::new(
                carrier,
                shared.store.clone(),
                shared.view.clone(),
                shared.mempool.clone(),
                shared.params.expiry_delta,
            );
            let endpoint = zmq::sequence_endpoint(&*rpc, config);
            self.mempool = Some(MempoolWatch::start(watcher, endpoint, end.clone())?);
        }
        Ok(())
    }

    /// Waits for every thread (trigger the term's end first). Never fails: the threads' failures were
    /// reported by [`crate::thread`] when they happened.
    pub(super) fn join(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
        if let Some(monitor) = self.monitor {
            monitor.join();
        }
        if let Some(mempool) = self.mempool {
            mempool.join();
        }
    }
}

/// Catches up to bitcoind's tip: loads the watched-locators index, warms the locator cache, then
/// processes every block up to bitcoind's best (see [`BlockProcessor::sync`]).
pub(super) fn catch_up(
    processor: &mut BlockProcessor<BitcoindClient>,
    config: &Config,
) -> Result<(), ProcessError> {
    processor.reload_watched_locators()?;
    processor.warm_locator_cache(config.locator_cache_size)?;
    let start = processor.tip().height;
    let mut noticed: Option<std::time::Instant> = None;
    processor.sync(|height, best| {
        // A long catch-up (days of blocks) extends systemd's start timeout as it goes.
        if noticed.is_none_or(|at| at.elapsed() >= crate::notify::STARTING_NOTICE_EVERY) {
            Notifier::starting(&format!("catching up: block {height} of {best}"));
            noticed = Some(std::time::Instant::now());
        }
        // After a reorg the walk may go below `start`: distance, not difference.
        if height == best || height.abs_diff(start).is_multiple_of(100) {
            tracing::info!("catching up: block {height} of {best}");
        }
    })?;
    // Late appointments left from before the restart are answered by the block processor's loop,
    // a batch at a time between looks at bitcoind's tip.
    Ok(())
}
