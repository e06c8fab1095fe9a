//! Queries on `trackers` (the Responder's data), PostgreSQL dialect of
//! [`storage::trackers`](crate::storage::trackers). A tracker hangs off its appointment: deleting
//! the appointment deletes the tracker (cascade), and [`delete`] deletes both.

use bitcoin::Txid;
use bitcoin::hashes::Hash;
use postgres::types::{ToSql, Type};
use postgres::{GenericClient, Row};

use super::super::error::StorageError;
use super::super::records::{AppointmentId, TrackerRecord, TrackerStatus, UserId, encode_tx};
use super::rows::{
    appointment_id_at, big, count_at, get as column, opt_u32_at, transaction_at, txid_at, u32_at,
    user_id_at,
};

/// Column list matching [`from_row`].
const COLUMNS: &str = "t.uuid, t.dispute_txid, t.dispute_tx, t.penalty_txid, t.penalty_tx, \
                       t.dispute_height, t.status, t.status_height, t.to_self_delay";

fn from_row(row: &Row) -> Result<TrackerRecord, StorageError> {
    let status: i16 = column(row, 6)?;
    Ok(TrackerRecord {
        uuid: appointment_id_at(row, 0)?,
        dispute_txid: txid_at(row, 1)?,
        dispute_tx: transaction_at(row, 2)?,
        penalty_txid: txid_at(row, 3)?,
        penalty_tx: transaction_at(row, 4)?,
        dispute_height: opt_u32_at(row, 5)?,
        status: TrackerStatus::from_db(i64::from(status))?,
        status_height: u32_at(row, 7)?,
        to_self_delay: u32_at(row, 8)?,
    })
}

/// The SMALLINT a status is stored as (0 to 3).
fn status_db(status: TrackerStatus) -> i16 {
    // to_db is 0..=3.
    i16::try_from(status.to_db()).unwrap_or(i16::MAX)
}

/// Runs `SELECT {COLUMNS} FROM trackers t {tail}` and collects the trackers.
fn select(
    client: &mut impl GenericClient,
    tail: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
) -> Result<Vec<TrackerRecord>, StorageError> {
    client
        .query_typed(&format!("SELECT {COLUMNS} FROM trackers t {tail}"), params)?
        .iter()
        .map(from_row)
        .collect()
}

/// Inserts a new tracker. Errors: `UniqueViolation` if the appointment has one,
/// `ForeignKeyViolation` if the appointment does not exist.
pub fn insert(client: &mut impl GenericClient, record: &TrackerRecord) -> Result<(), StorageError> {
    let dispute_tx = encode_tx(&record.dispute_tx);
    let penalty_tx = encode_tx(&record.penalty_tx);
    let dispute_height = record.dispute_height.map(big);
    client.execute_typed(
        "INSERT INTO trackers (uuid, dispute_txid, dispute_tx, penalty_txid, penalty_tx,
                               dispute_height, status, status_height, to_self_delay)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            (&record.uuid.as_bytes().as_slice(), Type::BYTEA),
            (&record.dispute_txid.as_byte_array().as_slice(), Type::BYTEA),
            (&dispute_tx.as_slice(), Type::BYTEA),
            (&record.penalty_txid.as_byte_array().as_slice(), Type::BYTEA),
            (&penalty_tx.as_slice(), Type::BYTEA),
            (&dispute_height, Type::INT8),
            (&status_db(record.status), Type::INT2),
            (&big(record.status_height), Type::INT8),
            (&big(record.to_self_delay), Type::INT8),
        ],
    )?;
    Ok(())
}

/// The tracker of appointment `uuid`, if any.
pub fn get(
    client: &mut impl GenericClient,
    uuid: &AppointmentId,
) -> Result<Option<TrackerRecord>, StorageError> {
    Ok(select(
        client,
        "WHERE t.uuid = $1",
        &[(&uuid.as_bytes().as_slice(), Type::BYTEA)],
    )?
    .pop())
}

/// Sets the tracker's status and the height it refers to. Returns whether the tracker exists.
pub fn update_status(
    client: &mut impl GenericClient,
    uuid: &AppointmentId,
    status: TrackerStatus,
    status_height: u32,
) -> Result<bool, StorageError> {
    Ok(client.execute_typed(
        "UPDATE trackers SET status = $2, status_height = $3 WHERE uuid = $1",
        &[
            (&uuid.as_bytes().as_slice(), Type::BYTEA),
            (&status_db(status), Type::INT2),
            (&big(status_height), Type::INT8),
        ],
    )? > 0)
}

/// Sets (or clears) the height where the dispute confirmed. Returns whether the tracker exists.
pub fn set_dispute_height(
    client: &mut impl GenericClient,
    uuid: &AppointmentId,
    dispute_height: Option<u32>,
) -> Result<bool, StorageError> {
    Ok(client.execute_typed(
        "UPDATE trackers SET dispute_height = $2 WHERE uuid = $1",
        &[
            (&uuid.as_bytes().as_slice(), Type::BYTEA),
            (&dispute_height.map(big), Type::INT8),
        ],
    )? > 0)
}

/// Deletes the tracker AND its appointment. Returns whether the tracker existed; the appointment
/// of a missing tracker is left alone.
pub fn delete(client: &mut impl GenericClient, uuid: &AppointmentId) -> Result<bool, StorageError> {
    Ok(client.execute_typed(
        "DELETE FROM appointments WHERE uuid = $1 AND EXISTS (SELECT 1 FROM trackers WHERE uuid = $1)",
        &[(&uuid.as_bytes().as_slice(), Type::BYTEA)],
    )? > 0)
}

/// Deletes only the tracker, keeping its appointment (watched again). Returns whether it existed.
pub fn delete_tracker_only(
    client: &mut impl GenericClient,
    uuid: &AppointmentId,
) -> Result<bool, StorageError> {
    Ok(client.execute_typed(
        "DELETE FROM trackers WHERE uuid = $1",
        &[(&uuid.as_bytes().as_slice(), Type::BYTEA)],
    )? > 0)
}

/// The distinct txids as BYTEA values, for `= ANY($1)`.
fn keys(txids: &[Txid]) -> Vec<&[u8]> {
    let mut keys: Vec<&[u8]> = txids.iter().map(|t| t.as_byte_array().as_slice()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Trackers whose penalty txid is in `txids`, each once, order unspecified.
pub fn by_penalty_txids(
    client: &mut impl GenericClient,
    txids: &[Txid],
) -> Result<Vec<TrackerRecord>, StorageError> {
    if txids.is_empty() {
        return Ok(Vec::new());
    }
    let keys = keys(txids);
    select(
        client,
        "WHERE t.penalty_txid = ANY($1)",
        &[(&keys, Type::BYTEA_ARRAY)],
    )
}

/// Trackers whose dispute txid is in `txids`, each once, order unspecified.
pub fn by_dispute_txids(
    client: &mut impl GenericClient,
    txids: &[Txid],
) -> Result<Vec<TrackerRecord>, StorageError> {
    if txids.is_empty() {
        return Ok(Vec::new());
    }
    let keys = keys(txids);
    select(
        client,
        "WHERE t.dispute_txid = ANY($1)",
        &[(&keys, Type::BYTEA_ARRAY)],
    )
}

/// Trackers whose dispute or penalty txid is in `txids` (a block's transactions), each once, in no
/// particular order: one statement, which PostgreSQL answers from the two txid indexes (or, with
/// few trackers, a scan of them).
pub fn by_dispute_or_penalty_txids(
    client: &mut impl GenericClient,
    txids: &[Txid],
) -> Result<Vec<TrackerRecord>, StorageError> {
    if txids.is_empty() {
        return Ok(Vec::new());
    }
    let keys = keys(txids);
    select(
        client,
        "WHERE t.dispute_txid = ANY($1) OR t.penalty_txid = ANY($1)",
        &[(&keys, Type::BYTEA_ARRAY)],
    )
}

/// All trackers with `status`, by ascending `status_height` then uuid.
pub fn with_status(
    client: &mut impl GenericClient,
    status: TrackerStatus,
) -> Result<Vec<TrackerRecord>, StorageError> {
    select(
        client,
        "WHERE t.status = $1 ORDER BY t.status_height, t.uuid",
        &[(&status_db(status), Type::INT2)],
    )
}

/// Trackers in the mempool since `height` or earlier, by ascending `status_height`.
pub fn in_mempool_since_at_most(
    client: &mut impl GenericClient,
    height: u32,
) -> Result<Vec<TrackerRecord>, StorageError> {
    select(
        client,
        "WHERE t.status = 0 AND t.status_height <= $1 ORDER BY t.status_height, t.uuid",
        &[(&big(height), Type::INT8)],
    )
}

/// Trackers whose penalty confirmed at `height` or earlier, by ascending `status_height`.
pub fn confirmed_at_most(
    client: &mut impl GenericClient,
    height: u32,
) -> Result<Vec<TrackerRecord>, StorageError> {
    select(
        client,
        "WHERE t.status = 1 AND t.status_height <= $1 ORDER BY t.status_height, t.uuid",
        &[(&big(height), Type::INT8)],
    )
}

/// Trackers whose dispute confirmed at exactly `height`.
pub fn dispute_confirmed_at(
    client: &mut impl GenericClient,
    height: u32,
) -> Result<Vec<TrackerRecord>, StorageError> {
    select(
        client,
        "WHERE t.dispute_height = $1 ORDER BY t.uuid",
        &[(&big(height), Type::INT8)],
    )
}

/// Trackers whose penalty confirmed at exactly `height`.
pub fn penalty_confirmed_at(
    client: &mut impl GenericClient,
    height: u32,
) -> Result<Vec<TrackerRecord>, StorageError> {
    select(
        client,
        "WHERE t.status = 1 AND t.status_height = $1 ORDER BY t.uuid",
        &[(&big(height), Type::INT8)],
    )
}

/// Number of trackers.
pub fn count(client: &mut impl GenericClient) -> Result<u64, StorageError> {
    let row = client.query_typed_one("SELECT count(*) FROM trackers", &[])?;
    count_at(&row, 0)
}

/// Up to `limit` trackers in ascending uuid order, starting after `after`.
pub fn list(
    client: &mut impl GenericClient,
    after: Option<&AppointmentId>,
    limit: u32,
) -> Result<Vec<TrackerRecord>, StorageError> {
    let after: &[u8] = after.map_or(&[], |uuid| uuid.as_bytes().as_slice());
    select(
        client,
        "WHERE t.uuid > $1 ORDER BY t.uuid LIMIT $2",
        &[(&after, Type::BYTEA), (&big(limit), Type::INT8)],
    )
}

/// Distinct ids of the users owning at least one tracker, in byte order.
pub fn users_with_trackers(client: &mut impl GenericClient) -> Result<Vec<UserId>, StorageError> {
    client
        .query_typed(
            "SELECT DISTINCT a.user_id FROM trackers t JOIN appointments a ON a.uuid = t.uuid
             ORDER BY a.user_id",
            &[],
        )?
        .iter()
        .map(|row| user_id_at(row, 0))
        .collect()
}

/// Number of trackers with `status` (on the `trackers_status` index).
pub fn count_with_status(
    client: &mut impl GenericClient,
    status: TrackerStatus,
) -> Result<u64, StorageError> {
    let row = client.query_typed_one(
        "SELECT count(*) FROM trackers WHERE status = $1",
        &[(&status_db(status), Type::INT2)],
    )?;
    count_at(&row, 0)
}
