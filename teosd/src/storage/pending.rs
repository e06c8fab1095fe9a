//! Queries on `pending_breaches`: late appointments whose dispute was already on chain when they were
//! accepted, waiting for the Responder. A pending breach is deleted with its appointment (cascade).

use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Txid};
use rusqlite::{Connection, params};

use super::error::StorageError;
use super::records::{AppointmentId, PendingBreach, appointment_id_at, block_hash_at, txid_at};

/// Records that appointment `uuid`'s dispute `dispute_txid` is in block `block_hash` at
/// `block_height`. Replaces an earlier entry for the same appointment. Errors: `Sqlite` foreign-key
/// failure if the appointment does not exist.
pub fn insert(
    conn: &Connection,
    uuid: &AppointmentId,
    dispute_txid: &Txid,
    block_hash: &BlockHash,
    block_height: u32,
) -> Result<(), StorageError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO pending_breaches (uuid, dispute_txid, block_hash, block_height)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (uuid) DO UPDATE SET dispute_txid = excluded.dispute_txid,
             block_hash = excluded.block_hash, block_height = excluded.block_height",
    )?;
    stmt.execute(params![
        uuid.as_bytes(),
        dispute_txid.to_byte_array(),
        block_hash.to_byte_array(),
        block_height
    ])?;
    Ok(())
}

/// All pending breaches, in ascending uuid order.
pub fn list(conn: &Connection) -> Result<Vec<PendingBreach>, StorageError> {
    list_after(conn, None, u32::MAX)
}

/// At most `limit` pending breaches whose uuid is greater than `after` (all with `None`), in ascending
/// uuid order: the block processor answers them in bounded batches.
pub fn list_after(
    conn: &Connection,
    after: Option<&AppointmentId>,
    limit: u32,
) -> Result<Vec<PendingBreach>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT uuid, dispute_txid, block_hash, block_height FROM pending_breaches
         WHERE uuid > ?1 ORDER BY uuid LIMIT ?2",
    )?;
    let after: &[u8] = after.map_or(&[], |uuid| uuid.as_bytes());
    let records = stmt
        .query_and_then(params![after, limit], |row| {
            Ok(PendingBreach {
                uuid: appointment_id_at(row, 0)?,
                dispute_txid: txid_at(row, 1)?,
                block_hash: block_hash_at(row, 2)?,
                block_height: row.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, StorageError>>()?;
    Ok(records)
}

/// Deletes the pending breach of `uuid` (not the appointment). Returns whether it existed.
pub fn delete(conn: &Connection, uuid: &AppointmentId) -> Result<bool, StorageError> {
    let mut stmt = conn.prepare_cached("DELETE FROM pending_breaches WHERE uuid = ?1")?;
    Ok(stmt.execute([uuid.as_bytes()])? > 0)
}

/// Whether appointment `uuid` has a pending breach.
pub fn contains(conn: &Connection, uuid: &AppointmentId) -> Result<bool, StorageError> {
    let mut stmt =
        conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM pending_breaches WHERE uuid = ?1)")?;
    Ok(stmt.query_row([uuid.as_bytes()], |row| row.get(0))?)
}

/// Deletes the pending breaches whose dispute is in block `block_hash` (the block was disconnected;
/// the appointments go back to being watched). Returns how many were deleted.
pub fn delete_by_block(conn: &Connection, block_hash: &BlockHash) -> Result<usize, StorageError> {
    let mut stmt = conn.prepare_cached("DELETE FROM pending_breaches WHERE block_hash = ?1")?;
    Ok(stmt.execute([block_hash.to_byte_array()])?)
}

/// Deletes the pending breaches whose dispute block is at `height` or above (those blocks were
/// disconnected; the appointments go back to being watched). Returns how many were deleted.
pub fn delete_from_height(conn: &Connection, height: u32) -> Result<usize, StorageError> {
    let mut stmt = conn.prepare_cached("DELETE FROM pending_breaches WHERE block_height >= ?1")?;
    Ok(stmt.execute([height])?)
}
