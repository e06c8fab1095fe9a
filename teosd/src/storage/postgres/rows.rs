//! Column decoders and parameter encodings of the PostgreSQL tables (`migrations/postgresql/V2`),
//! the counterparts of `records.rs` for SQLite: fixed-length BYTEA ids and hashes, consensus-encoded
//! transactions, u32 heights and counts stored as BIGINT. A stored value that does not decode is
//! [`StorageError::Corrupt`].

use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Transaction, Txid};
use postgres::Row;
use postgres::types::FromSql;

use super::super::error::{StorageError, corrupt};
use super::super::records::{AppointmentId, Locator, UserId};

/// Column `idx`, decoded as `T` (a type mismatch or NULL where none is allowed is `Corrupt`).
pub(crate) fn get<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T, StorageError> {
    row.try_get(idx)
        .map_err(|e| corrupt(&format!("column {idx}"), e))
}

/// Column `idx` as a BYTEA.
pub(crate) fn bytes(row: &Row, idx: usize) -> Result<&[u8], StorageError> {
    get(row, idx)
}

/// Column `idx` as a BIGINT in the u32 range.
pub(crate) fn u32_at(row: &Row, idx: usize) -> Result<u32, StorageError> {
    let value: i64 = get(row, idx)?;
    u32::try_from(value).map_err(|_| corrupt("u32 column", value))
}

/// Column `idx` as a nullable BIGINT in the u32 range.
pub(crate) fn opt_u32_at(row: &Row, idx: usize) -> Result<Option<u32>, StorageError> {
    let value: Option<i64> = get(row, idx)?;
    value
        .map(|v| u32::try_from(v).map_err(|_| corrupt("u32 column", v)))
        .transpose()
}

/// Column `idx` as a count (`count(*)`, a sum of counter shards): negative reads as 0.
pub(crate) fn count_at(row: &Row, idx: usize) -> Result<u64, StorageError> {
    let value: i64 = get(row, idx)?;
    Ok(u64::try_from(value).unwrap_or(0))
}

/// Column `idx` as a BYTEA of exactly `N` bytes.
pub(crate) fn fixed<const N: usize>(row: &Row, idx: usize) -> Result<[u8; N], StorageError> {
    let b = bytes(row, idx)?;
    <[u8; N]>::try_from(b).map_err(|_| {
        corrupt(
            "blob length",
            format!("expected {N} bytes, got {}", b.len()),
        )
    })
}

/// Column `idx` as a 33-byte user id (a compressed public key, validated).
pub(crate) fn user_id_at(row: &Row, idx: usize) -> Result<UserId, StorageError> {
    UserId::from_slice(bytes(row, idx)?).map_err(|e| corrupt("user id", e))
}

/// Column `idx` as a 20-byte appointment id.
pub(crate) fn appointment_id_at(row: &Row, idx: usize) -> Result<AppointmentId, StorageError> {
    AppointmentId::from_slice(bytes(row, idx)?).map_err(|e| corrupt("appointment id", e))
}

/// Column `idx` as a 16-byte locator.
pub(crate) fn locator_at(row: &Row, idx: usize) -> Result<Locator, StorageError> {
    Locator::from_slice(bytes(row, idx)?).map_err(|e| corrupt("locator", e))
}

/// Column `idx` as a 32-byte txid in internal byte order.
pub(crate) fn txid_at(row: &Row, idx: usize) -> Result<Txid, StorageError> {
    Ok(Txid::from_byte_array(fixed(row, idx)?))
}

/// Column `idx` as a 32-byte block hash in internal byte order.
pub(crate) fn block_hash_at(row: &Row, idx: usize) -> Result<BlockHash, StorageError> {
    Ok(BlockHash::from_byte_array(fixed(row, idx)?))
}

/// Column `idx` as a consensus-encoded transaction.
pub(crate) fn transaction_at(row: &Row, idx: usize) -> Result<Transaction, StorageError> {
    bitcoin::consensus::deserialize(bytes(row, idx)?).map_err(|e| corrupt("transaction", e))
}

/// A u32 as the BIGINT it is stored as.
pub(crate) fn big(value: u32) -> i64 {
    i64::from(value)
}
