//! Row types of the storage tables and their conversions to and from SQLite values.
//!
//! Encoding (see `migrations/V1__initial.sql`): ids and hashes are fixed-length BLOBs; txids and block
//! hashes are 32 bytes in internal byte order (`to_byte_array`, not the reversed RPC display order);
//! transactions are consensus-encoded BLOBs; heights and slot counts are INTEGERs in the `u32` range.

use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Transaction, Txid};
use rusqlite::Row;

use super::error::{StorageError, corrupt};

pub use teos_common::appointment::{AppointmentId, Locator, UserId};

/// One row of `users`: a user's subscription. Heights are block heights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserRecord {
    /// Appointment slots the user can still fill.
    pub available_slots: u32,
    /// Height at which the current subscription started.
    pub subscription_start: u32,
    /// Height at which the current subscription expires.
    pub subscription_expiry: u32,
}

/// One row of `appointments`: an appointment the tower watches (or answered, if it has a tracker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentRecord {
    /// Appointment id.
    pub uuid: AppointmentId,
    /// Locator of the dispute transaction this appointment answers.
    pub locator: Locator,
    /// Owner of the appointment.
    pub user_id: UserId,
    /// The encrypted penalty transaction (ChaCha20-Poly1305, PROTOCOL.md), at most 2048 bytes by the
    /// protocol; the storage does not enforce the limit.
    pub encrypted_blob: Vec<u8>,
    /// CSV delay of the channel, in blocks.
    pub to_self_delay: u32,
    /// The user's zbase32 signature of the appointment.
    pub user_signature: String,
    /// Height at which the tower accepted the appointment.
    pub start_block: u32,
    /// Slots this appointment occupies (by blob size, PROTOCOL.md).
    pub slots: u32,
}

/// Responder state of a tracker (`trackers.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackerStatus {
    /// The penalty is in the mempool since `status_height` (broadcast or rebroadcast there). Stored as 0.
    InMempool,
    /// The penalty confirmed at `status_height`. Stored as 1.
    Confirmed,
    /// The dispute or the penalty left the chain at `status_height`; the penalty must be sent again.
    /// Stored as 2.
    Reorged,
    /// bitcoind refused the penalty at `status_height` for a reason that may pass (fee too low, a
    /// losing replacement, any refusal but missing inputs); it is sent again at every block until
    /// `dispute_height + to_self_delay` (teosd's rule, ARCHITECTURE.md "Responding"). Stored as 3.
    Rejected,
}

impl TrackerStatus {
    /// The stored integer (0, 1, 2, 3).
    pub fn to_db(self) -> i64 {
        match self {
            TrackerStatus::InMempool => 0,
            TrackerStatus::Confirmed => 1,
            TrackerStatus::Reorged => 2,
            TrackerStatus::Rejected => 3,
        }
    }

    /// Parses the stored integer; anything but 0, 1, 2, 3 is [`StorageError::Corrupt`].
    pub fn from_db(value: i64) -> Result<TrackerStatus, StorageError> {
        match value {
            0 => Ok(TrackerStatus::InMempool),
            1 => Ok(TrackerStatus::Confirmed),
            2 => Ok(TrackerStatus::Reorged),
            3 => Ok(TrackerStatus::Rejected),
            other => Err(corrupt("tracker status", other)),
        }
    }
}

/// One row of `trackers`: a breach the Responder answers with a penalty transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerRecord {
    /// Id of the appointment this tracker answers (the appointment row must exist).
    pub uuid: AppointmentId,
    /// Txid of `dispute_tx`; the caller keeps the two consistent.
    pub dispute_txid: Txid,
    /// The dispute (commitment) transaction seen on chain.
    pub dispute_tx: Transaction,
    /// Txid of `penalty_tx`; the caller keeps the two consistent.
    pub penalty_txid: Txid,
    /// The decrypted penalty transaction.
    pub penalty_tx: Transaction,
    /// Height where the dispute confirmed on the tower's chain; `None` if unknown or unconfirmed.
    pub dispute_height: Option<u32>,
    /// Where the penalty stands.
    pub status: TrackerStatus,
    /// Height the status refers to (see [`TrackerStatus`]).
    pub status_height: u32,
    /// The appointment's `to_self_delay` (blocks): the penalty must confirm before
    /// `dispute_height + to_self_delay`, when the cheater's output becomes spendable.
    pub to_self_delay: u32,
}

/// One row of `pending_breaches`: a late appointment whose dispute was already on chain when it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingBreach {
    /// Id of the appointment.
    pub uuid: AppointmentId,
    /// Txid of the dispute transaction found on chain.
    pub dispute_txid: Txid,
    /// Hash of the block holding the dispute.
    pub block_hash: BlockHash,
    /// Height of that block; `None` for rows written before schema V4.
    pub block_height: Option<u32>,
}

/// Reads column `idx` as a BLOB of exactly `N` bytes; another length is [`StorageError::Corrupt`].
pub(crate) fn fixed_blob<const N: usize>(
    row: &Row<'_>,
    idx: usize,
) -> Result<[u8; N], StorageError> {
    let bytes: Vec<u8> = row.get(idx)?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
        corrupt(
            "blob length",
            format!("expected {N} bytes, got {}", bytes.len()),
        )
    })
}

/// Reads column `idx` as a 16-byte locator.
pub(crate) fn locator_at(row: &Row<'_>, idx: usize) -> Result<Locator, StorageError> {
    let bytes: Vec<u8> = row.get(idx)?;
    Locator::from_slice(&bytes).map_err(|e| corrupt("locator", e))
}

/// Reads column `idx` as a 33-byte user id (a compressed public key, validated).
pub(crate) fn user_id_at(row: &Row<'_>, idx: usize) -> Result<UserId, StorageError> {
    let bytes: Vec<u8> = row.get(idx)?;
    UserId::from_slice(&bytes).map_err(|e| corrupt("user id", e))
}

/// Reads column `idx` as a 20-byte appointment id.
pub(crate) fn appointment_id_at(row: &Row<'_>, idx: usize) -> Result<AppointmentId, StorageError> {
    let bytes: Vec<u8> = row.get(idx)?;
    AppointmentId::from_slice(&bytes).map_err(|e| corrupt("appointment id", e))
}

/// Reads column `idx` as a 32-byte txid in internal byte order.
pub(crate) fn txid_at(row: &Row<'_>, idx: usize) -> Result<Txid, StorageError> {
    Ok(Txid::from_byte_array(fixed_blob(row, idx)?))
}

/// Reads column `idx` as a 32-byte block hash in internal byte order.
pub(crate) fn block_hash_at(row: &Row<'_>, idx: usize) -> Result<BlockHash, StorageError> {
    Ok(BlockHash::from_byte_array(fixed_blob(row, idx)?))
}

/// Reads column `idx` as a consensus-encoded transaction.
pub(crate) fn transaction_at(row: &Row<'_>, idx: usize) -> Result<Transaction, StorageError> {
    let bytes: Vec<u8> = row.get(idx)?;
    bitcoin::consensus::deserialize(&bytes).map_err(|e| corrupt("transaction", e))
}

/// Consensus-encodes a transaction for storage.
pub(crate) fn encode_tx(tx: &Transaction) -> Vec<u8> {
    bitcoin::consensus::serialize(tx)
}

/// Clamps a SQLite `COUNT(*)` (never negative) into `u64`.
pub(crate) fn count_to_u64(count: i64) -> u64 {
    u64::try_from(count).unwrap_or(0)
}

/// The txids of block `height` stored as one value, 32 bytes each in block order (`chain.txids`, both
/// backends).
///
/// Errors: [`StorageError::Corrupt`] if the length is not a whole number of txids.
pub(crate) fn decode_txids(height: u32, bytes: &[u8]) -> Result<Vec<Txid>, StorageError> {
    if !bytes.len().is_multiple_of(32) {
        return Err(StorageError::Corrupt(format!(
            "txids of block {height}: {} bytes, not a multiple of 32",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|chunk| {
            let mut txid = [0u8; 32];
            txid.copy_from_slice(chunk);
            Txid::from_byte_array(txid)
        })
        .collect())
}
