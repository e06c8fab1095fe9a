//! teosd's lifecycle (the "Lifecycle"): load config → open DB → tower key → wait for bitcoind
//! (retry, never exit; check the network; wait out initial block download) → catch up to the tip →
//! start HTTP and the chain monitor → "Tower ready". On shutdown: stop accepting requests, finish
//! in-flight ones, finish the current block, flush and close the DB.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::api::http::{ApiListener, ClientKeying};
use crate::bitcoind::{Auth, BitcoindClient, BitcoindRpc};
use crate::chain_view::SharedChainView;
use crate::chain_walker::{StartFrom, Tip};
use crate::config::{Advertised, BtcAuth, Config};
use crate::fleet::Role;
use crate::gatekeeper::SubscriptionParams;
use crate::mempool_watch::MempoolResponses;
use crate::notify::{Heartbeat, Notifier};
use crate::shutdown::{Shutdown, Wakeup};
use crate::storage::Store;
use crate::tower::{KeyOrigin, LoadOrCreateTowerKey, Tower, TowerKey};
use crate::watcher::AppointmentRules;
use teos_common::appointment::TowerId;

mod fleet;
mod pipeline;
mod servers;
mod terms;
mod zmq;

use servers::{drain, start_servers};
use terms::TermContext;

/// How long in-flight HTTP requests get to finish at shutdown.
const HTTP_DRAIN: Duration = Duration::from_secs(10);
/// Bound on any single bitcoind call.
const RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the tower until `shutdown` is triggered. Errors are startup failures that need an operator
/// (bad data dir, wrong network, a reorg deeper than the tower keeps, ports in use), and the failure
/// of one of the tower's threads (a panic, or the block processor's fatal error; see
/// [`crate::thread`]), which triggers `shutdown` itself.
pub fn run(config: Config, shutdown: Arc<Shutdown>) -> anyhow::Result<()> {
    let network_dir = config.network_dir();
    std::fs::create_dir_all(&network_dir)
        .with_context(|| format!("cannot create the data directory {}", network_dir.display()))?;
    let Some(store) = fleet::open_store(&config, &shutdown)? else {
        return Ok(()); // shutdown while waiting for PostgreSQL
    };
    let result = serve(&config, store.clone(), shutdown);
    let closed = store.close().context("closing the database");
    // A failed thread is the cause of whatever else went wrong (e.g. a dead writer fails the close).
    if let Some(failure) = crate::thread::failure() {
        return Err(failure.into());
    }
    result.and(closed)
}

/// Handles shared by the tower's parts (one owner each; see ARCHITECTURE.md).
#[derive(Clone)]
struct Shared {
    store: Store,
    view: SharedChainView,
    reachable: Arc<AtomicBool>,
    wakeup: Arc<Wakeup>,
    heartbeat: Arc<Heartbeat>,
    shutdown: Arc<Shutdown>,
    params: SubscriptionParams,
    /// Breaches answered from the mempool: written by the mempool watcher, read by `get_appointment`.
    mempool: MempoolResponses,
    /// This instance's role (leader alone on SQLite; see `daemon/terms.rs`): read by the admin API.
    role: tokio::sync::watch::Receiver<Role>,
}

fn serve(config: &Config, store: Store, shutdown: Arc<Shutdown>) -> anyhow::Result<()> {
    let key = tower_key(&store, config.overwrite_key)?;
    tracing::info!("tower id: {}", key.id());
    let auth = match config.btc_auth() {
        BtcAuth::UserPass(user, pass) => Auth::UserPass(user, pass),
        BtcAuth::Cookie(path) => Auth::Cookie(path),
    };
    let rpc = Arc::new(BitcoindClient::new(config.btc_rpc_url(), auth, RPC_TIMEOUT));
    if !wait_for_bitcoind(&*rpc, config, &shutdown)? {
        return Ok(());
    }
    // Alone (SQLite), the tower resumes from its tip at once. In a fleet only the leader resumes the
    // chain (its first term); until then the view shows the leader's committed tip.
    let fleet_mode = store.is_postgres();
    let tip = if fleet_mode {
        committed_tip(&store)?
    } else {
        starting_tip(&*rpc, &store, config)?
    };
    tracing::info!("last processed block: {} ({})", tip.0, tip.1);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("teosd-api")
        .build()
        .context("cannot start the async runtime")?;
    let reachable = Arc::new(AtomicBool::new(true));
    let metrics_refresher = start_metrics(&runtime, config, &store, &reachable, &shutdown)?;
    // Alone on its database, the instance leads from start to shutdown, and its first term (the
    // catch-up) runs before the servers start. In a fleet the role comes from PostgreSQL.
    let (role_source, roles) = fleet::Roles::start(config, &runtime);
    let shared = Shared {
        store,
        view: SharedChainView::new(tip.0, tip.1, config.locator_cache_size as usize),
        reachable,
        wakeup: Arc::new(Wakeup::new()),
        heartbeat: Arc::new(Heartbeat::new()),
        shutdown,
        params: SubscriptionParams {
            slots: config.subscription_slots,
            duration: config.subscription_duration,
            expiry_delta: config.expiry_delta,
        },
        mempool: MempoolResponses::new(),
        role: roles.clone(),
    };
    let runtime_handle = runtime.handle().clone();
    let cx = TermContext {
        runtime: runtime_handle,
        rpc,
        config: Arc::new(config.clone()),
        shared: shared.clone(),
    };
    let first = match *roles.borrow() {
        Role::Leader { epoch } if !fleet_mode => {
            match terms::prepare(&cx, epoch, roles.clone(), Some(tip))? {
                Some(prepared) => Some(prepared),
                None => return Ok(()), // shutdown during catch-up
            }
        }
        _ => None,
    };

    let tower_id = key.id();
    let servers = match start_servers(&runtime, config, &shared, key) {
        Ok(servers) => servers,
        Err(e) => {
            if let Some(prepared) = first {
                prepared.abandon();
            }
            return Err(e);
        }
    };
    crate::thread::arm_injected_faults(); // test-only, debug builds (see crate::thread)
    let mut threads: Vec<JoinHandle<()>> = metrics_refresher.into_iter().collect();
    let mut supervisor = None;
    let started = first
        .map(|prepared| prepared.launch(&cx))
        .transpose()
        .and_then(|term| Ok(terms::supervise(cx, roles, term)?))
        .map(|terms| supervisor = Some(terms))
        .and_then(|()| {
            let watchdog =
                crate::notify::spawn_watchdog(shared.heartbeat.clone(), shared.shutdown.clone())?;
            threads.extend(watchdog);
            Ok(())
        })
        .context("cannot start the tower's threads");
    match &started {
        Ok(()) => {
            let status = servers.announce_ready(&tower_id);
            Notifier::ready();
            Notifier::status(&status);
            while !shared.shutdown.wait_timeout(Duration::from_secs(3600)) {}
        }
        Err(e) => {
            tracing::error!("{e:#}");
            shared.shutdown.trigger();
        }
    }

    tracing::info!("Shutting down tower");
    Notifier::stopping();
    shared.wakeup.wake();
    // The chain pipeline first, then leadership, then the servers' drain: a leader hands over at
    // once (a standby leads at its next poll), not after its lease nor after the drain, which
    // waits up to 10 s for each server (an admin client that keeps its connection open does).
    if let Some(supervisor) = supervisor {
        let _ = supervisor.join();
    }
    role_source.stop(&runtime);
    drain(&runtime, servers);
    for thread in threads {
        let _ = thread.join();
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    started
}

/// The tip the fleet's leader last committed, for a standby's view; block 0 (and a zero hash)
/// before any leader processed a block.
fn committed_tip(store: &Store) -> anyhow::Result<(u32, bitcoin::BlockHash)> {
    use bitcoin::hashes::Hash;
    let tip = store.read_blocking(|tx| tx.chain_tip())?;
    Ok(tip.unwrap_or((0, bitcoin::BlockHash::all_zeros())))
}

/// The block the tower resumes from: the stored tip, or bitcoind's best block on a fresh start;
/// refused (or skipped forward with --forceupdate) when bitcoind pruned what comes after it.
fn starting_tip(
    rpc: &impl BitcoindRpc,
    store: &Store,
    config: &Config,
) -> anyhow::Result<(u32, bitcoin::BlockHash)> {
    let tip = match store.read_blocking(|tx| tx.chain_tip())? {
        Some(tip) => tip,
        None => {
            let info = rpc.chain_info()?;
            let (height, hash) = (info.blocks, info.best_block_hash);
            // Its chainwork lets the walker compare later tips (None if bitcoind just moved on).
            let work = rpc.block_header(&hash).ok().map(|h| h.chainwork);
            store.execute_blocking(StartFrom {
                tip: Tip {
                    height,
                    hash,
                    chainwork: work,
                },
            })?;
            tracing::info!("fresh bootstrap at block {height} ({hash})");
            (height, hash)
        }
    };
    check_pruning(rpc, store, tip, config)
}

/// Serves `/metrics` when `metrics_bind` is set; returns the gauge refresher thread.
fn start_metrics(
    runtime: &tokio::runtime::Runtime,
    config: &Config,
    store: &Store,
    reachable: &Arc<AtomicBool>,
    shutdown: &Arc<Shutdown>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let Some(addr) = config.metrics_bind else {
        return Ok(None);
    };
    let _guard = runtime.enter();
    crate::metrics::install(addr)
        .with_context(|| format!("cannot serve metrics on {addr} (metrics_bind)"))?;
    tracing::info!("Prometheus metrics on http://{addr}/metrics");
    Ok(Some(crate::metrics::spawn_refresher(
        store.clone(),
        reachable.clone(),
        config.data_dir.clone(),
        shutdown.clone(),
    )?))
}

/// Loads the newest tower key, creating one on first start or when `overwrite` (old keys are kept).
fn tower_key(store: &Store, overwrite: bool) -> anyhow::Result<TowerKey> {
    let (key, origin) = store.execute_blocking(LoadOrCreateTowerKey { replace: overwrite })?;
    match origin {
        KeyOrigin::Loaded => {}
        KeyOrigin::Created => tracing::info!("tower key created"),
        KeyOrigin::Replaced => tracing::info!("tower key replaced (old keys kept)"),
    }
    Ok(key)
}

/// What the tower makes of bitcoind's `getblockchaininfo` at startup.
#[derive(Debug, PartialEq, Eq)]
enum Readiness {
    /// Serve.
    Ready,
    /// Wait and ask again (the reason goes to the log and systemd's STATUS).
    Wait(String),
    /// Refuse to start: an operator must act.
    Refuse(String),
}

/// Network must match (never waited out); initial block download (blocks behind headers) is waited out.
fn readiness(info: &crate::bitcoind::ChainInfo, config: &Config) -> Readiness {
    let expected = config.btc_network.chain_name();
    if info.chain != expected {
        return Readiness::Refuse(format!(
            "bitcoind at {} is on network '{}' but teosd is configured for '{expected}' (btc_network)",
            config.btc_rpc_url(),
            info.chain
        ));
    }
    if info.initial_block_download && info.blocks < info.headers {
        return Readiness::Wait(format!(
            "bitcoind is in initial block download: block {} of {}",
            info.blocks, info.headers
        ));
    }
    Readiness::Ready
}

/// Waits until bitcoind answers (also through -28 warm-up), is on the configured network and out of
/// initial block download. Returns false if shutdown was requested meanwhile.
fn wait_for_bitcoind(
    rpc: &impl BitcoindRpc,
    config: &Config,
    shutdown: &Shutdown,
) -> anyhow::Result<bool> {
    let mut backoff = Duration::from_millis(250);
    let mut last_reason = String::new();
    loop {
        let reason = match rpc.chain_info() {
            Ok(info) => match readiness(&info, config) {
                Readiness::Ready => return Ok(true),
                Readiness::Refuse(message) => bail!(message),
                Readiness::Wait(reason) => reason,
            },
            Err(e) => format!("waiting for bitcoind at {}: {e}", config.btc_rpc_url()),
        };
        // Every try extends systemd's start timeout: waiting may take hours (a node syncing).
        Notifier::starting(&reason);
        if reason != last_reason || backoff >= Duration::from_secs(30) {
            tracing::warn!("{reason}");
            last_reason = reason;
        }
        if shutdown.wait_timeout(backoff) {
            return Ok(false);
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// When bitcoind pruned blocks the tower has not processed yet: the first height it still has.
fn pruned_beyond(info: &crate::bitcoind::ChainInfo, tip_height: u32) -> Option<u32> {
    let prune_height = info.prune_height.filter(|_| info.pruned)?;
    (prune_height > tip_height + 1).then_some(prune_height)
}

/// Refuses to start when bitcoind pruned blocks the tower still needs, unless `force_update`, which
/// restarts the tower's chain at bitcoind's tip (breaches in the skipped blocks are missed).
fn check_pruning(
    rpc: &impl BitcoindRpc,
    store: &Store,
    tip: (u32, bitcoin::BlockHash),
    config: &Config,
) -> anyhow::Result<(u32, bitcoin::BlockHash)> {
    let info = rpc.chain_info()?;
    let Some(prune_height) = pruned_beyond(&info, tip.0) else {
        return Ok(tip);
    };
    if !config.force_update {
        bail!(
            "bitcoind pruned blocks the tower still needs: the tower last processed block {} but bitcoind \
             only keeps blocks from {prune_height}. Point teosd to a node that still has them (an unpruned \
             node, or a larger prune= setting), or restart with --forceupdate to skip the missing blocks \
             (breaches in them would go unanswered).",
            tip.0
        );
    }
    let (height, hash) = (info.blocks, info.best_block_hash);
    tracing::warn!(
        "--forceupdate: skipping blocks {}..{} that bitcoind pruned; breaches in them are not answered",
        tip.0 + 1,
        prune_height
    );
    store.execute_blocking(StartFrom {
        tip: Tip::new(height, hash),
    })?;
    Ok((height, hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitcoind::ChainInfo;
    use crate::config::{BtcAuth, BtcNetwork};
    use bitcoin::hashes::Hash;

    fn info(chain: &str, blocks: u32, headers: u32, ibd: bool) -> ChainInfo {
        ChainInfo {
            chain: chain.into(),
            blocks,
            headers,
            best_block_hash: bitcoin::BlockHash::all_zeros(),
            initial_block_download: ibd,
            pruned: false,
            prune_height: None,
        }
    }

    fn regtest_config() -> Config {
        Config::new(
            "/tmp/x".into(),
            BtcNetwork::Regtest,
            BtcAuth::UserPass("u".into(), "p".into()),
        )
    }

    #[test]
    fn wrong_network_is_refused_and_initial_block_download_waited_out() {
        let config = regtest_config();
        assert!(
            matches!(readiness(&info("main", 10, 10, false), &config), Readiness::Refuse(m) if m.contains("'main'"))
        );
        assert!(
            matches!(readiness(&info("regtest", 10, 900, true), &config), Readiness::Wait(m) if m.contains("block 10 of 900"))
        );
        // A fresh regtest chain reports IBD with nothing to download: not waited on.
        assert_eq!(
            readiness(&info("regtest", 0, 0, true), &config),
            Readiness::Ready
        );
        assert_eq!(
            readiness(&info("regtest", 10, 10, false), &config),
            Readiness::Ready
        );
    }

    #[test]
    fn pruning_beyond_the_tower_tip_is_detected() {
        let mut pruned = info("main", 1000, 1000, false);
        assert_eq!(pruned_beyond(&pruned, 500), None, "not pruned");
        pruned.pruned = true;
        pruned.prune_height = Some(501);
        assert_eq!(pruned_beyond(&pruned, 500), None, "next block still there");
        pruned.prune_height = Some(700);
        assert_eq!(pruned_beyond(&pruned, 500), Some(700));
    }
}
