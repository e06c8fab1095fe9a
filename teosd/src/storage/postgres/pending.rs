//! Queries on `pending_breaches` (late appointments waiting for the Responder), PostgreSQL dialect
//! of [`storage::pending`](crate::storage::pending). Deleted with their appointment (cascade).

use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Txid};
use postgres::GenericClient;
use postgres::types::Type;

use super::super::error::StorageError;
use super::super::records::{AppointmentId, PendingBreach};
use super::rows::{appointment_id_at, big, block_hash_at, get, opt_u32_at, txid_at};

/// Records that appointment `uuid`'s dispute `dispute_txid` is in block `block_hash` at
/// `block_height`, replacing an earlier entry. Errors: `ForeignKeyViolation` if the appointment
/// does not exist.
pub fn insert(
    client: &mut impl GenericClient,
    uuid: &AppointmentId,
    dispute_txid: &Txid,
    block_hash: &BlockHash,
    block_height: u32,
) -> Result<(), StorageError> {
    client.execute_typed(
        "INSERT INTO pending_breaches (uuid, dispute_txid, block_hash, block_height)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (uuid) DO UPDATE SET dispute_txid = EXCLUDED.dispute_txid,
             block_hash = EXCLUDED.block_hash, block_height = EXCLUDED.block_height",
        &[
            (&uuid.as_bytes().as_slice(), Type::BYTEA),
            (&dispute_txid.as_byte_array().as_slice(), Type::BYTEA),
            (&block_hash.as_byte_array().as_slice(), Type::BYTEA),
            (&big(block_height), Type::INT8),
        ],
    )?;
    Ok(())
}

/// All pending breaches, in ascending uuid order.
pub fn list(client: &mut impl GenericClient) -> Result<Vec<PendingBreach>, StorageError> {
    list_after(client, None, u32::MAX)
}

/// At most `limit` pending breaches with uuid greater than `after`, in ascending uuid order.
pub fn list_after(
    client: &mut impl GenericClient,
    after: Option<&AppointmentId>,
    limit: u32,
) -> Result<Vec<PendingBreach>, StorageError> {
    let after: &[u8] = after.map_or(&[], |uuid| uuid.as_bytes().as_slice());
    client
        .query_typed(
            "SELECT uuid, dispute_txid, block_hash, block_height FROM pending_breaches
             WHERE uuid > $1 ORDER BY uuid LIMIT $2",
            &[(&after, Type::BYTEA), (&big(limit), Type::INT8)],
        )?
        .iter()
        .map(|row| {
            Ok(PendingBreach {
                uuid: appointment_id_at(row, 0)?,
                dispute_txid: txid_at(row, 1)?,
                block_hash: block_hash_at(row, 2)?,
                block_height: opt_u32_at(row, 3)?,
            })
        })
        .collect()
}

/// Deletes the pending breach of `uuid` (not the appointment). Returns whether it existed.
pub fn delete(client: &mut impl GenericClient, uuid: &AppointmentId) -> Result<bool, StorageError> {
    Ok(client.execute_typed(
        "DELETE FROM pending_breaches WHERE uuid = $1",
        &[(&uuid.as_bytes().as_slice(), Type::BYTEA)],
    )? > 0)
}

/// Whether appointment `uuid` has a pending breach.
pub fn contains(
    client: &mut impl GenericClient,
    uuid: &AppointmentId,
) -> Result<bool, StorageError> {
    let row = client.query_typed_one(
        "SELECT EXISTS (SELECT 1 FROM pending_breaches WHERE uuid = $1)",
        &[(&uuid.as_bytes().as_slice(), Type::BYTEA)],
    )?;
    get(&row, 0)
}

/// Deletes the pending breaches whose dispute is in block `block_hash`. Returns how many.
pub fn delete_by_block(
    client: &mut impl GenericClient,
    block_hash: &BlockHash,
) -> Result<usize, StorageError> {
    let n = client.execute_typed(
        "DELETE FROM pending_breaches WHERE block_hash = $1",
        &[(&block_hash.as_byte_array().as_slice(), Type::BYTEA)],
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Deletes the pending breaches whose dispute block is at `height` or above. Returns how many.
pub fn delete_from_height(
    client: &mut impl GenericClient,
    height: u32,
) -> Result<usize, StorageError> {
    let n = client.execute_typed(
        "DELETE FROM pending_breaches WHERE block_height >= $1",
        &[(&big(height), Type::INT8)],
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}
