//! Prometheus metrics, served on `metrics_bind` (off by default) at `/metrics`.
//!
//! Counters and histograms are recorded where things happen (block processor, chain monitor, bitcoind
//! client, HTTP layer); gauges of stored state are refreshed from the database every few seconds by a
//! small thread, so the block path never counts rows.
//!
//! What an operator alerts on (`contrib/prometheus-alerts.yml`): [`BITCOIND_REACHABLE`] (bitcoind
//! unreachable), [`BLOCKS_BEHIND`] (tower behind), [`TIP_AGE`] (no block for an hour) and
//! [`TIP_PROCESSED_AGE`]; [`BUILD_INFO`] says what runs, and the `process_*` metrics of the
//! `metrics-process` crate (CPU seconds, resident memory, open files, threads) how it runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

use crate::shutdown::Shutdown;
use crate::storage::records::TrackerStatus;
use crate::storage::{StorageError, Store};

/// Appointments being watched (gauge).
pub const APPOINTMENTS: &str = "teosd_appointments";
/// Breaches detected: appointments whose dispute appeared on chain (counter).
pub const APPOINTMENTS_TRIGGERED: &str = "teosd_appointments_triggered_total";
/// Trackers by `status` label: in_mempool, confirmed, reorged, rejected (gauge).
pub const TRACKERS: &str = "teosd_trackers";
/// Registered users (gauge).
pub const USERS: &str = "teosd_users";
/// Height of the last block the tower processed (gauge).
pub const BEST_HEIGHT: &str = "teosd_best_height";
/// bitcoind's best height minus the tower's (gauge, blocks).
pub const BLOCKS_BEHIND: &str = "teosd_blocks_behind";
/// Time to process one connected block, seconds (histogram).
pub const BLOCK_PROCESSING: &str = "teosd_block_processing_seconds";
/// From the tower fetching a block to bitcoind accepting the penalty for a breach in it, seconds (histogram).
pub const BREACH_RESPONSE: &str = "teosd_breach_response_seconds";
/// Breaches answered from bitcoind's mempool, before their dispute was mined, by `via`: `alone`
/// (`sendrawtransaction`) or `package` (`submitpackage [dispute, penalty]`) (counter).
pub const MEMPOOL_BREACHES_ANSWERED: &str = "teosd_mempool_breaches_answered_total";
/// From the dispute seen entering bitcoind's mempool (its ZMQ `sequence` message received, or the
/// `getrawmempool` answer that first held it) to bitcoind accepting the penalty, seconds (histogram).
pub const MEMPOOL_RESPONSE: &str = "teosd_mempool_response_seconds";
/// Reconciliations of the mempool with `getrawmempool`, by `reason`: startup, gap (ZMQ messages lost
/// or bitcoind restarted) or periodic (counter).
pub const MEMPOOL_RECONCILIATIONS: &str = "teosd_mempool_reconciliations_total";
/// HTTP requests by `endpoint` and `status` (counter).
pub const HTTP_REQUESTS: &str = "teosd_http_requests_total";
/// bitcoind RPC failures by `code` (bitcoind's code, or `transport`) (counter).
pub const BITCOIND_ERRORS: &str = "teosd_bitcoind_rpc_errors_total";
/// Chain wake-ups by `source`: zmq or poll (counter).
pub const CHAIN_NOTIFICATIONS: &str = "teosd_chain_notifications_total";
/// Database files (DB + WAL) size, bytes (gauge).
pub const DB_SIZE: &str = "teosd_db_size_bytes";
/// Files in the data directory (database, WAL, TLS files, ...) size, bytes (gauge).
pub const DATA_DIR_SIZE: &str = "teosd_data_dir_bytes";
/// Late appointments whose dispute bitcoind could not return (retried; counter). Alert on increase.
pub const LATE_FAILURES: &str = "teosd_late_appointment_failures_total";
/// A block's bookkeeping step that failed a constraint and was skipped so the block still commits
/// (by `change`; counter). Alert on increase: it means a defect.
pub const BOOKKEEPING_ERRORS: &str = "teosd_bookkeeping_errors_total";
/// Slot refunds cut at u32::MAX (counter).
pub const REFUNDS_SATURATED: &str = "teosd_refunds_saturated_total";
/// 1 when bitcoind answered the tower's last call, 0 when it did not (gauge; the flag the chain
/// monitor and the Carrier keep, also `gettowerinfo.bitcoind_reachable`).
pub const BITCOIND_REACHABLE: &str = "teosd_bitcoind_reachable";
/// Seconds since the block time (header `nTime`) of the last block the tower processed (gauge;
/// absent until a block is known). Miners' clocks vary by up to hours: alert on large values only.
pub const TIP_AGE: &str = "teosd_tip_age_seconds";
/// Seconds since the tower processed its tip (gauge; after a restart, since the tip it resumed from
/// was checked against bitcoind).
pub const TIP_PROCESSED_AGE: &str = "teosd_tip_processed_age_seconds";
/// Always 1, labelled with what runs: `version` (the crate version) and `commit` (the git commit
/// built, `unknown` outside a git checkout) (gauge).
pub const BUILD_INFO: &str = "teosd_build_info";
/// 1 for this instance's role, 0 for the other, labelled `role` = `leader` (runs the chain
/// pipeline) or `standby` (a fleet instance serving the APIs while another leads) (gauge; a tower
/// alone on SQLite is always the leader). Also `gettowerinfo.role`.
pub const FLEET_ROLE: &str = "teosd_fleet_role";
/// The fencing epoch this instance leads with, 0 when standby or alone (gauge; issue 12,
/// docs/fleet.md). Also `gettowerinfo.leader_epoch`.
pub const LEADER_EPOCH: &str = "teosd_leader_epoch";
/// Block commands (scan, commit, unwind, late answer) this instance's store refused because they
/// did not carry the fleet leader's current epoch (`StorageError::Fenced`; counter; issue 12,
/// docs/fleet.md "Fencing"). Non-zero after a leader that lost leadership (paused, cut off) tried
/// to go on: each refusal is a commit that the fence kept out of the database.
pub const FENCED_COMMANDS: &str = "teosd_fenced_commands_total";

/// Records this instance's role ([`FLEET_ROLE`], [`LEADER_EPOCH`]).
pub fn fleet_role(role: crate::fleet::Role) {
    let leading = matches!(role, crate::fleet::Role::Leader { .. });
    metrics::gauge!(FLEET_ROLE, "role" => "leader").set(if leading { 1.0 } else { 0.0 });
    metrics::gauge!(FLEET_ROLE, "role" => "standby").set(if leading { 0.0 } else { 1.0 });
    let epoch = match role {
        crate::fleet::Role::Leader { epoch } => epoch.0 as f64,
        crate::fleet::Role::Standby => 0.0,
    };
    metrics::gauge!(LEADER_EPOCH).set(epoch);
}

/// Block time of the processed tip, seconds since the Unix epoch (0 = none yet).
static TIP_BLOCK_TIME: AtomicU64 = AtomicU64::new(0);
/// When the tip was processed, seconds since the Unix epoch (0 = none yet).
static TIP_PROCESSED_AT: AtomicU64 = AtomicU64::new(0);

/// Seconds since the Unix epoch now (0 if the clock is before it).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Records that the tower processed a tip whose block time is `block_time` (seconds since the Unix
/// epoch) now; the refresher turns it into [`TIP_AGE`] and [`TIP_PROCESSED_AGE`].
pub fn tip_processed(block_time: u32) {
    TIP_BLOCK_TIME.store(u64::from(block_time), Ordering::Relaxed);
    TIP_PROCESSED_AT.store(unix_now(), Ordering::Relaxed);
}

/// The git commit teosd was built from (`build.rs`), or `unknown`.
pub fn git_commit() -> &'static str {
    match env!("TEOSD_GIT_COMMIT") {
        "" => "unknown",
        commit => commit,
    }
}

/// How often stored-state gauges are refreshed.
const REFRESH: Duration = Duration::from_secs(5);

/// Installs the global recorder and serves `/metrics` on `addr`. Must run inside the tokio runtime
/// (the exporter's listener is spawned on it).
pub fn install(addr: SocketAddr) -> Result<(), BuildError> {
    let seconds = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Full(BLOCK_PROCESSING.into()), &seconds)?
        .set_buckets_for_metric(Matcher::Full(BREACH_RESPONSE.into()), &seconds)?
        .set_buckets_for_metric(Matcher::Full(MEMPOOL_RESPONSE.into()), &seconds)?
        .install()
}

/// Refreshes the stored-state gauges, bitcoind's reachability (`reachable`), the tip's ages, the data
/// directory's size (`data_dir`, bytes) and the process metrics every few seconds until shutdown, on the `metrics` thread ([`crate::thread::spawn`]:
/// a panic stops the tower; a failed refresh is only logged). Sets [`BUILD_INFO`] once.
pub fn spawn_refresher(
    store: Store,
    reachable: Arc<AtomicBool>,
    data_dir: std::path::PathBuf,
    shutdown: Arc<Shutdown>,
) -> std::io::Result<JoinHandle<()>> {
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "commit" => git_commit())
        .set(1.0);
    let process = metrics_process::Collector::default();
    process.describe();
    crate::thread::spawn("metrics", move || {
        loop {
            crate::thread::fault_point();
            process.collect();
            refresh_health(&reachable, unix_now());
            if let Err(e) = refresh(&store) {
                tracing::debug!("metrics refresh failed: {e}");
            }
            metrics::gauge!(DATA_DIR_SIZE).set(crate::backup::data_dir_size(&data_dir) as f64);
            if shutdown.wait_timeout(REFRESH) {
                return Ok(());
            }
        }
    })
}

/// [`BITCOIND_REACHABLE`], and the tip's ages at `now` (seconds since the Unix epoch) once a tip is known.
fn refresh_health(reachable: &AtomicBool, now: u64) {
    metrics::gauge!(BITCOIND_REACHABLE).set(if reachable.load(Ordering::SeqCst) {
        1.0
    } else {
        0.0
    });
    let block_time = TIP_BLOCK_TIME.load(Ordering::Relaxed);
    let processed_at = TIP_PROCESSED_AT.load(Ordering::Relaxed);
    if processed_at > 0 {
        metrics::gauge!(TIP_AGE).set(now.saturating_sub(block_time) as f64);
        metrics::gauge!(TIP_PROCESSED_AGE).set(now.saturating_sub(processed_at) as f64);
    }
}

fn refresh(store: &Store) -> Result<(), StorageError> {
    let counts = stored_counts(store)?;
    metrics::gauge!(APPOINTMENTS).set(counts.watched as f64);
    metrics::gauge!(USERS).set(counts.users as f64);
    metrics::gauge!(TRACKERS, "status" => "in_mempool").set(counts.in_mempool as f64);
    metrics::gauge!(TRACKERS, "status" => "confirmed").set(counts.confirmed as f64);
    metrics::gauge!(TRACKERS, "status" => "reorged").set(counts.reorged as f64);
    metrics::gauge!(TRACKERS, "status" => "rejected").set(counts.rejected as f64);
    metrics::gauge!(DB_SIZE).set(store.disk_size() as f64);
    Ok(())
}

/// The row counts behind the stored-state gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StoredCounts {
    watched: u64,
    users: u64,
    in_mempool: u64,
    confirmed: u64,
    reorged: u64,
    rejected: u64,
}

/// Counts rows with `COUNT(*)` queries on indexes (one read transaction on a reserved reader): no row
/// is loaded or decoded, so a refresh costs the same whatever the trackers hold.
fn stored_counts(store: &Store) -> Result<StoredCounts, StorageError> {
    store.read_blocking(|tx| {
        Ok(StoredCounts {
            watched: tx.count_watched_appointments()?,
            users: tx.count_users()?,
            in_mempool: tx.count_trackers_with_status(TrackerStatus::InMempool)?,
            confirmed: tx.count_trackers_with_status(TrackerStatus::Confirmed)?,
            reorged: tx.count_trackers_with_status(TrackerStatus::Reorged)?,
            rejected: tx.count_trackers_with_status(TrackerStatus::Rejected)?,
        })
    })
}

#[cfg(test)]
mod tests {
    use teos_common::appointment::{Locator, UserId};

    use super::*;
    use crate::storage::records::{AppointmentId, AppointmentRecord, TrackerRecord, UserRecord};

    fn transaction(n: u8) -> bitcoin::Transaction {
        bitcoin::Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::from_consensus(u32::from(n)),
            input: vec![bitcoin::TxIn::default()],
            output: vec![],
        }
    }

    #[test]
    fn counts_come_from_count_queries_without_decoding_trackers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("teos_db.sql3")).unwrap();
        let user = UserId(
            secp256k1::SecretKey::from_slice(&[7; 32])
                .unwrap()
                .public_key(secp256k1::SECP256K1),
        );
        store
            .write_blocking(move |tx| -> Result<(), StorageError> {
                let record = UserRecord {
                    available_slots: 10,
                    subscription_start: 1,
                    subscription_expiry: 100,
                };
                tx.upsert_user(&user, &record)?;
                for n in 0..5u8 {
                    let locator = Locator::from_slice(&[n; 16]).unwrap();
                    let uuid = AppointmentId::new(&locator, &user);
                    tx.upsert_appointment(&AppointmentRecord {
                        uuid,
                        locator,
                        encrypted_blob: vec![n; 10],
                        to_self_delay: 42,
                        user_id: user,
                        user_signature: "sig".into(),
                        start_block: 1,
                        slots: 1,
                    })?;
                    if n == 0 {
                        continue; // one watched appointment
                    }
                    let (dispute, penalty) = (transaction(n), transaction(n + 100));
                    tx.insert_tracker(&TrackerRecord {
                        uuid,
                        dispute_txid: dispute.compute_txid(),
                        dispute_tx: dispute,
                        penalty_txid: penalty.compute_txid(),
                        penalty_tx: penalty,
                        dispute_height: Some(5),
                        status: match n {
                            1 | 2 => TrackerStatus::InMempool,
                            3 => TrackerStatus::Confirmed,
                            _ => TrackerStatus::Reorged,
                        },
                        status_height: 5,
                        to_self_delay: 42,
                    })?;
                }
                Ok(())
            })
            .unwrap();
        // Transactions that do not decode: counting must not need them.
        store
            .write_sqlite_blocking(|conn| -> Result<(), StorageError> {
                conn.execute(
                    "UPDATE trackers SET penalty_tx = x'00', dispute_tx = x'00'",
                    [],
                )?;
                Ok(())
            })
            .unwrap();
        assert_eq!(
            stored_counts(&store).unwrap(),
            StoredCounts {
                watched: 1,
                users: 1,
                in_mempool: 2,
                confirmed: 1,
                reorged: 1,
                rejected: 0,
            }
        );
    }
}
