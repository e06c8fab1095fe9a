//! Queries on `trackers` (the Responder's data).
//!
//! A tracker hangs off its appointment (`trackers.uuid` references `appointments.uuid`): deleting the
//! appointment deletes the tracker, and [`delete`] deletes both.

use std::collections::HashSet;

use bitcoin::Txid;
use bitcoin::hashes::Hash;
use rusqlite::{Connection, Row, params};

use super::batch::select_in;
use super::error::StorageError;
use super::records::{
    AppointmentId, TrackerRecord, TrackerStatus, UserId, appointment_id_at, count_to_u64,
    encode_tx, transaction_at, txid_at, user_id_at,
};

/// Column list matching [`from_row`].
const COLUMNS: &str = "t.uuid, t.dispute_txid, t.dispute_tx, t.penalty_txid, t.penalty_tx, \
                       t.dispute_height, t.status, t.status_height, t.to_self_delay";

/// Maps a row selected with [`COLUMNS`].
fn from_row(row: &Row<'_>) -> Result<TrackerRecord, StorageError> {
    Ok(TrackerRecord {
        uuid: appointment_id_at(row, 0)?,
        dispute_txid: txid_at(row, 1)?,
        dispute_tx: transaction_at(row, 2)?,
        penalty_txid: txid_at(row, 3)?,
        penalty_tx: transaction_at(row, 4)?,
        dispute_height: row.get(5)?,
        status: TrackerStatus::from_db(row.get(6)?)?,
        status_height: row.get(7)?,
        to_self_delay: row.get(8)?,
    })
}

/// Runs `SELECT {COLUMNS} FROM trackers t {tail}` with `params` and collects the trackers.
fn select(
    conn: &Connection,
    tail: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<TrackerRecord>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM trackers t {tail}"))?;
    let records = stmt
        .query_and_then(params, from_row)?
        .collect::<Result<Vec<_>, StorageError>>()?;
    Ok(records)
}

/// Inserts a new tracker. Errors: `Sqlite` constraint failure if a tracker with this uuid exists or
/// the appointment does not exist.
pub fn insert(conn: &Connection, record: &TrackerRecord) -> Result<(), StorageError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO trackers (uuid, dispute_txid, dispute_tx, penalty_txid, penalty_tx,
                               dispute_height, status, status_height, to_self_delay)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    stmt.execute(params![
        record.uuid.as_bytes(),
        record.dispute_txid.to_byte_array(),
        encode_tx(&record.dispute_tx),
        record.penalty_txid.to_byte_array(),
        encode_tx(&record.penalty_tx),
        record.dispute_height,
        record.status.to_db(),
        record.status_height,
        record.to_self_delay
    ])?;
    Ok(())
}

/// The tracker of appointment `uuid`, if any.
pub fn get(conn: &Connection, uuid: &AppointmentId) -> Result<Option<TrackerRecord>, StorageError> {
    Ok(select(conn, "WHERE t.uuid = ?1", [uuid.as_bytes()])?.pop())
}

/// Sets the tracker's status and the height it refers to (see [`TrackerStatus`]). Returns whether
/// the tracker exists.
pub fn update_status(
    conn: &Connection,
    uuid: &AppointmentId,
    status: TrackerStatus,
    status_height: u32,
) -> Result<bool, StorageError> {
    let mut stmt =
        conn.prepare_cached("UPDATE trackers SET status = ?2, status_height = ?3 WHERE uuid = ?1")?;
    Ok(stmt.execute(params![uuid.as_bytes(), status.to_db(), status_height])? > 0)
}

/// Sets (or clears, with `None`) the height where the dispute confirmed. Returns whether the tracker
/// exists.
pub fn set_dispute_height(
    conn: &Connection,
    uuid: &AppointmentId,
    dispute_height: Option<u32>,
) -> Result<bool, StorageError> {
    let mut stmt =
        conn.prepare_cached("UPDATE trackers SET dispute_height = ?2 WHERE uuid = ?1")?;
    Ok(stmt.execute(params![uuid.as_bytes(), dispute_height])? > 0)
}

/// Deletes the tracker AND its appointment (the Responder is done with the breach). Returns whether
/// the tracker existed; the appointment of a missing tracker is left alone.
pub fn delete(conn: &Connection, uuid: &AppointmentId) -> Result<bool, StorageError> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM appointments WHERE uuid = ?1 AND EXISTS (SELECT 1 FROM trackers WHERE uuid = ?1)",
    )?;
    Ok(stmt.execute([uuid.as_bytes()])? > 0)
}

/// Deletes only the tracker of `uuid`, keeping its appointment (the appointment goes back to being
/// watched, e.g. its dispute left the chain for good). Returns whether the tracker existed.
pub fn delete_tracker_only(conn: &Connection, uuid: &AppointmentId) -> Result<bool, StorageError> {
    let mut stmt = conn.prepare_cached("DELETE FROM trackers WHERE uuid = ?1")?;
    Ok(stmt.execute([uuid.as_bytes()])? > 0)
}

/// Trackers whose penalty txid is in `txids` (matching a block's txids to confirm penalties).
/// Order unspecified; repeated txids yield their trackers once.
pub fn by_penalty_txids(
    conn: &Connection,
    txids: &[Txid],
) -> Result<Vec<TrackerRecord>, StorageError> {
    let keys: Vec<[u8; 32]> = txids.iter().map(|t| t.to_byte_array()).collect();
    select_in(
        conn,
        &format!("SELECT {COLUMNS} FROM trackers t"),
        "t.penalty_txid",
        &keys,
        from_row,
    )
}

/// Trackers whose dispute txid is in `txids` (matching a block's txids to confirm disputes).
/// Order unspecified; repeated txids yield their trackers once.
pub fn by_dispute_txids(
    conn: &Connection,
    txids: &[Txid],
) -> Result<Vec<TrackerRecord>, StorageError> {
    let keys: Vec<[u8; 32]> = txids.iter().map(|t| t.to_byte_array()).collect();
    select_in(
        conn,
        &format!("SELECT {COLUMNS} FROM trackers t"),
        "t.dispute_txid",
        &keys,
        from_row,
    )
}

/// Trackers whose dispute or penalty txid is in `txids` (a block's transactions), each once, in no
/// particular order.
///
/// Costs O(min(trackers, txids)): when the tower tracks fewer breaches than the block has
/// transactions (the usual case: a handful of trackers against 4,000 transactions), it reads the
/// trackers' txids and matches them in memory instead of probing both txid indexes once per
/// transaction (~2 ms for a 4,000-transaction block, BENCHMARKS.md); otherwise it probes.
pub fn by_dispute_or_penalty_txids(
    conn: &Connection,
    txids: &[Txid],
) -> Result<Vec<TrackerRecord>, StorageError> {
    let limit = i64::try_from(txids.len()).unwrap_or(i64::MAX);
    let mut stmt =
        conn.prepare_cached("SELECT uuid, dispute_txid, penalty_txid FROM trackers LIMIT ?1")?;
    let all = stmt
        .query_and_then([limit], |row| -> Result<_, StorageError> {
            Ok((
                appointment_id_at(row, 0)?,
                txid_at(row, 1)?,
                txid_at(row, 2)?,
            ))
        })?
        .collect::<Result<Vec<_>, StorageError>>()?;
    if all.len() < txids.len() {
        // Every tracker was read: match in memory.
        let block: HashSet<&Txid> = txids.iter().collect();
        let mut found = Vec::new();
        for (uuid, dispute, penalty) in all {
            if (block.contains(&dispute) || block.contains(&penalty))
                && let Some(tracker) = get(conn, &uuid)?
            {
                found.push(tracker);
            }
        }
        return Ok(found);
    }
    let mut found = by_penalty_txids(conn, txids)?;
    let seen: HashSet<AppointmentId> = found.iter().map(|t| t.uuid).collect();
    found.extend(
        by_dispute_txids(conn, txids)?
            .into_iter()
            .filter(|t| !seen.contains(&t.uuid)),
    );
    Ok(found)
}

/// All trackers with `status`, by ascending `status_height` then uuid.
pub fn with_status(
    conn: &Connection,
    status: TrackerStatus,
) -> Result<Vec<TrackerRecord>, StorageError> {
    select(
        conn,
        "WHERE t.status = ?1 ORDER BY t.status_height, t.uuid",
        [status.to_db()],
    )
}

/// Trackers whose penalty is in the mempool since `height` or earlier (candidates for rebroadcast),
/// by ascending `status_height`.
pub fn in_mempool_since_at_most(
    conn: &Connection,
    height: u32,
) -> Result<Vec<TrackerRecord>, StorageError> {
    select(
        conn,
        "WHERE t.status = 0 AND t.status_height <= ?1 ORDER BY t.status_height, t.uuid",
        [height],
    )
}

/// Trackers whose penalty confirmed at `height` or earlier (candidates for completion once
/// irrevocably resolved), by ascending `status_height`.
pub fn confirmed_at_most(
    conn: &Connection,
    height: u32,
) -> Result<Vec<TrackerRecord>, StorageError> {
    select(
        conn,
        "WHERE t.status = 1 AND t.status_height <= ?1 ORDER BY t.status_height, t.uuid",
        [height],
    )
}

/// Trackers whose dispute confirmed at exactly `height` (to react when that block is disconnected).
pub fn dispute_confirmed_at(
    conn: &Connection,
    height: u32,
) -> Result<Vec<TrackerRecord>, StorageError> {
    select(
        conn,
        "WHERE t.dispute_height = ?1 ORDER BY t.uuid",
        [height],
    )
}

/// Trackers whose penalty confirmed at exactly `height` (to react when that block is disconnected).
pub fn penalty_confirmed_at(
    conn: &Connection,
    height: u32,
) -> Result<Vec<TrackerRecord>, StorageError> {
    select(
        conn,
        "WHERE t.status = 1 AND t.status_height = ?1 ORDER BY t.uuid",
        [height],
    )
}

/// Number of trackers.
pub fn count(conn: &Connection) -> Result<u64, StorageError> {
    let mut stmt = conn.prepare_cached("SELECT COUNT(*) FROM trackers")?;
    Ok(count_to_u64(stmt.query_row([], |row| row.get(0))?))
}

/// Up to `limit` trackers in ascending uuid order, starting after `after` (from the start if `None`).
/// For the admin API's paged listing.
pub fn list(
    conn: &Connection,
    after: Option<&AppointmentId>,
    limit: u32,
) -> Result<Vec<TrackerRecord>, StorageError> {
    select(
        conn,
        "WHERE ?1 IS NULL OR t.uuid > ?1 ORDER BY t.uuid LIMIT ?2",
        params![after.map(AppointmentId::as_bytes), limit],
    )
}

/// Distinct ids of the users owning at least one tracker, in byte order.
pub fn users_with_trackers(conn: &Connection) -> Result<Vec<UserId>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT a.user_id FROM trackers t JOIN appointments a ON a.uuid = t.uuid
         ORDER BY a.user_id",
    )?;
    let ids = stmt
        .query_and_then([], |row| user_id_at(row, 0))?
        .collect::<Result<Vec<_>, StorageError>>()?;
    Ok(ids)
}

/// Number of trackers with `status`, counted on the `trackers_status` index without reading a row
/// (for metrics: [`with_status`] would decode every transaction).
pub fn count_with_status(conn: &Connection, status: TrackerStatus) -> Result<u64, StorageError> {
    let mut stmt = conn.prepare_cached("SELECT COUNT(*) FROM trackers WHERE status = ?1")?;
    Ok(count_to_u64(
        stmt.query_row([status.to_db()], |row| row.get(0))?,
    ))
}
