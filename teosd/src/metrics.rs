//! Prometheus metrics, served on `metrics_bind` (off by default) at `/metrics`.
//!
//! Counters and histograms are recorded where things happen (block processor, chain monitor, bitcoind
//! client, HTTP layer); gauges of stored state are refreshed from the database every few seconds by a
//! small thread, so the block path never counts rows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};

use crate::shutdown::Shutdown;
use crate::storage::records::TrackerStatus;
use crate::storage::{StorageError, Store, appointments, trackers, users};

/// Appointments being watched (gauge).
pub const APPOINTMENTS: &str = "teosd_appointments";
/// Breaches detected: appointments whose dispute appeared on chain (counter).
pub const APPOINTMENTS_TRIGGERED: &str = "teosd_appointments_triggered_total";
/// Trackers by `status` label: in_mempool, confirmed, reorged (gauge).
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
/// HTTP requests by `endpoint` and `status` (counter).
pub const HTTP_REQUESTS: &str = "teosd_http_requests_total";
/// bitcoind RPC failures by `code` (bitcoind's code, or `transport`) (counter).
pub const BITCOIND_ERRORS: &str = "teosd_bitcoind_rpc_errors_total";
/// Chain wake-ups by `source`: zmq or poll (counter).
pub const CHAIN_NOTIFICATIONS: &str = "teosd_chain_notifications_total";
/// Database files (DB + WAL) size, bytes (gauge).
pub const DB_SIZE: &str = "teosd_db_size_bytes";
/// Late appointments whose dispute bitcoind could not return (retried; counter). Alert on increase.
pub const LATE_FAILURES: &str = "teosd_late_appointment_failures_total";
/// A block's bookkeeping step that failed a constraint and was skipped so the block still commits
/// (by `change`; counter). Alert on increase: it means a defect.
pub const BOOKKEEPING_ERRORS: &str = "teosd_bookkeeping_errors_total";
/// Slot refunds cut at u32::MAX (counter).
pub const REFUNDS_SATURATED: &str = "teosd_refunds_saturated_total";

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
        .install()
}

/// Refreshes the stored-state gauges every few seconds until shutdown, on the `metrics` thread
/// ([`crate::thread::spawn`]: a panic stops the tower; a failed refresh is only logged).
pub fn spawn_refresher(store: Store, shutdown: Arc<Shutdown>) -> std::io::Result<JoinHandle<()>> {
    crate::thread::spawn("metrics", move || {
        loop {
            crate::thread::fault_point();
            if let Err(e) = refresh(&store) {
                tracing::debug!("metrics refresh failed: {e}");
            }
            if shutdown.wait_timeout(REFRESH) {
                return Ok(());
            }
        }
    })
}

fn refresh(store: &Store) -> Result<(), StorageError> {
    let (watched, users, in_mempool, confirmed, reorged) = store.read_blocking(|conn| {
        let count = |status| trackers::with_status(conn, status).map(|t| t.len() as f64);
        Ok::<_, StorageError>((
            appointments::count_watched(conn)? as f64,
            users::count(conn)? as f64,
            count(TrackerStatus::InMempool)?,
            count(TrackerStatus::Confirmed)?,
            count(TrackerStatus::Reorged)?,
        ))
    })?;
    metrics::gauge!(APPOINTMENTS).set(watched);
    metrics::gauge!(USERS).set(users);
    metrics::gauge!(TRACKERS, "status" => "in_mempool").set(in_mempool);
    metrics::gauge!(TRACKERS, "status" => "confirmed").set(confirmed);
    metrics::gauge!(TRACKERS, "status" => "reorged").set(reorged);
    metrics::gauge!(DB_SIZE).set(store.disk_size() as f64);
    Ok(())
}
