//! Queries on `chain` (the tower's last processed blocks) and `chain_tip` (the fleet's ordering
//! row), PostgreSQL dialect of [`storage::chain`](crate::storage::chain).
//!
//! `chain_tip` holds a copy of `chain`'s highest row, kept by a trigger on every statement that
//! changes `chain` (migration V2). Its row lock orders appointment inserts against block commits
//! (docs/fleet.md, "Ordering of appointment inserts and block commits"): an insert calls
//! [`lock_tip_shared`] first, a block commit [`lock_tip_exclusive`] first.

use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Txid, Work};
use postgres::types::Type;
use postgres::{GenericClient, Row};

use super::super::error::StorageError;
use super::super::records::decode_txids;
use super::rows::{big, block_hash_at, get, u32_at};

fn height_and_hash(row: &Row) -> Result<(u32, BlockHash), StorageError> {
    Ok((u32_at(row, 0)?, block_hash_at(row, 1)?))
}

/// The committed tip from `chain_tip`, locked `mode` until the end of the transaction.
fn lock_tip(
    client: &mut impl GenericClient,
    mode: &str,
) -> Result<Option<(u32, BlockHash)>, StorageError> {
    let row = client
        .query_typed_opt(
            &format!("SELECT height, hash FROM chain_tip WHERE id = 1 FOR {mode}"),
            &[],
        )?
        .ok_or_else(|| StorageError::Corrupt("the chain_tip row is missing".into()))?;
    let height: Option<i64> = get(&row, 0)?;
    match height {
        None => Ok(None),
        Some(_) => height_and_hash(&row).map(Some),
    }
}

/// Locks the ordering row `FOR SHARE` until the end of the transaction and returns the committed
/// tip (`None` before the first block). For appointment inserts: they do not wait for each other,
/// but wait for a block commit in flight, and a block commit waits for them; so each insert is
/// wholly before or wholly after each block commit.
///
/// Errors: [`StorageError::Corrupt`] if the row is missing (migrations not applied).
pub fn lock_tip_shared(
    client: &mut impl GenericClient,
) -> Result<Option<(u32, BlockHash)>, StorageError> {
    lock_tip(client, "SHARE")
}

/// Locks the ordering row `FOR UPDATE` until the end of the transaction and returns the committed
/// tip. For block commits (and anything else that changes `chain`), before anything else: it waits
/// for the appointment inserts in flight and makes new ones wait for this commit.
///
/// Errors: as [`lock_tip_shared`].
pub fn lock_tip_exclusive(
    client: &mut impl GenericClient,
) -> Result<Option<(u32, BlockHash)>, StorageError> {
    lock_tip(client, "UPDATE")
}

/// Height and hash of the last processed block, or `None` before the first block.
pub fn tip(client: &mut impl GenericClient) -> Result<Option<(u32, BlockHash)>, StorageError> {
    client
        .query_typed_opt(
            "SELECT height, hash FROM chain ORDER BY height DESC LIMIT 1",
            &[],
        )?
        .map(|row| height_and_hash(&row))
        .transpose()
}

/// Records block `hash` at `height` (replacing a row at the same height) and prunes to the last
/// `keep` blocks (0 is treated as 1).
pub fn push(
    client: &mut impl GenericClient,
    height: u32,
    hash: &BlockHash,
    keep: u32,
) -> Result<(), StorageError> {
    push_with_work(client, height, hash, None, keep)
}

/// [`push`] with the chain's total work up to this block, when known.
pub fn push_with_work(
    client: &mut impl GenericClient,
    height: u32,
    hash: &BlockHash,
    chainwork: Option<Work>,
    keep: u32,
) -> Result<(), StorageError> {
    let work = chainwork.map(|w| w.to_be_bytes());
    let work: Option<&[u8]> = work.as_ref().map(|w| w.as_slice());
    client.execute_typed(
        "INSERT INTO chain (height, hash, chainwork) VALUES ($1, $2, $3)
         ON CONFLICT (height) DO UPDATE SET hash = EXCLUDED.hash, txids = NULL,
             chainwork = EXCLUDED.chainwork",
        &[
            (&big(height), Type::INT8),
            (&hash.as_byte_array().as_slice(), Type::BYTEA),
            (&work, Type::BYTEA),
        ],
    )?;
    let lowest_kept = i64::from(height) - i64::from(keep.max(1)) + 1;
    client.execute_typed(
        "DELETE FROM chain WHERE height < $1",
        &[(&lowest_kept, Type::INT8)],
    )?;
    Ok(())
}

/// Forgets the block at `height` and any above it. Returns the number of rows removed.
pub fn pop(client: &mut impl GenericClient, height: u32) -> Result<usize, StorageError> {
    let n = client.execute_typed(
        "DELETE FROM chain WHERE height >= $1",
        &[(&big(height), Type::INT8)],
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Stores the txids (in block order) of the remembered block `hash` at `height`. Returns whether
/// that block is remembered (false, and nothing stored, otherwise).
pub fn set_txids(
    client: &mut impl GenericClient,
    height: u32,
    hash: &BlockHash,
    txids: &[Txid],
) -> Result<bool, StorageError> {
    let mut bytes = Vec::with_capacity(txids.len() * 32);
    for txid in txids {
        bytes.extend_from_slice(txid.as_byte_array());
    }
    Ok(client.execute_typed(
        "UPDATE chain SET txids = $3 WHERE height = $1 AND hash = $2",
        &[
            (&big(height), Type::INT8),
            (&hash.as_byte_array().as_slice(), Type::BYTEA),
            (&bytes.as_slice(), Type::BYTEA),
        ],
    )? == 1)
}

/// Forgets the txids of the remembered blocks below `height`.
pub fn clear_txids_below(
    client: &mut impl GenericClient,
    height: u32,
) -> Result<usize, StorageError> {
    let n = client.execute_typed(
        "UPDATE chain SET txids = NULL WHERE height < $1 AND txids IS NOT NULL",
        &[(&big(height), Type::INT8)],
    )?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// The txids stored with [`set_txids`] for the block at `height`, if any.
///
/// Errors: [`StorageError::Corrupt`] if the stored bytes are not a whole number of txids.
pub fn txids_at(
    client: &mut impl GenericClient,
    height: u32,
) -> Result<Option<Vec<Txid>>, StorageError> {
    let Some(row) = client.query_typed_opt(
        "SELECT txids FROM chain WHERE height = $1",
        &[(&big(height), Type::INT8)],
    )?
    else {
        return Ok(None);
    };
    let Some(bytes) = get::<Option<&[u8]>>(&row, 0)? else {
        return Ok(None);
    };
    decode_txids(height, bytes).map(Some)
}

/// All remembered blocks as `(height, hash)`, highest first.
pub fn recent(client: &mut impl GenericClient) -> Result<Vec<(u32, BlockHash)>, StorageError> {
    client
        .query_typed("SELECT height, hash FROM chain ORDER BY height DESC", &[])?
        .iter()
        .map(height_and_hash)
        .collect()
}

/// The total work stored with the remembered block `hash`, if kept and known.
pub fn work_of(
    client: &mut impl GenericClient,
    hash: &BlockHash,
) -> Result<Option<Work>, StorageError> {
    let Some(row) = client.query_typed_opt(
        "SELECT chainwork FROM chain WHERE hash = $1",
        &[(&hash.as_byte_array().as_slice(), Type::BYTEA)],
    )?
    else {
        return Ok(None);
    };
    let Some(bytes) = get::<Option<&[u8]>>(&row, 0)? else {
        return Ok(None);
    };
    let bytes = <[u8; 32]>::try_from(bytes).map_err(|_| {
        StorageError::Corrupt(format!("chainwork of block {hash}: {} bytes", bytes.len()))
    })?;
    Ok(Some(Work::from_be_bytes(bytes)))
}

/// Hash of the remembered block at `height`, if still kept.
pub fn hash_at(
    client: &mut impl GenericClient,
    height: u32,
) -> Result<Option<BlockHash>, StorageError> {
    client
        .query_typed_opt(
            "SELECT hash FROM chain WHERE height = $1",
            &[(&big(height), Type::INT8)],
        )?
        .map(|row| block_hash_at(&row, 0))
        .transpose()
}

/// Height of the remembered block `hash`, or `None` if it is not among the kept blocks.
pub fn height_of(
    client: &mut impl GenericClient,
    hash: &BlockHash,
) -> Result<Option<u32>, StorageError> {
    client
        .query_typed_opt(
            "SELECT height FROM chain WHERE hash = $1",
            &[(&hash.as_byte_array().as_slice(), Type::BYTEA)],
        )?
        .map(|row| u32_at(&row, 0))
        .transpose()
}

/// Records the transactions of block `hash` at `height` in `recent_locators` (the fleet's locator
/// cache, migration V3) in one statement, and forgets the blocks at or below `height - window`
/// (`window`: `locator_cache_size`, blocks).
pub fn remember_locators(
    client: &mut impl GenericClient,
    hash: &BlockHash,
    height: u32,
    txids: &[Txid],
    window: u32,
) -> Result<(), StorageError> {
    let mut locators: Vec<&[u8]> = Vec::with_capacity(txids.len());
    let mut ids: Vec<&[u8]> = Vec::with_capacity(txids.len());
    for txid in txids {
        locators.push(&txid.as_byte_array()[..16]);
        ids.push(txid.as_byte_array().as_slice());
    }
    client.execute_typed(
        "INSERT INTO recent_locators (locator, txid, block_hash, height)
         SELECT l, t, $3, $4 FROM unnest($1::bytea[], $2::bytea[]) AS u(l, t)
         ON CONFLICT (block_hash, locator) DO NOTHING",
        &[
            (&locators, Type::BYTEA_ARRAY),
            (&ids, Type::BYTEA_ARRAY),
            (&hash.as_byte_array().as_slice(), Type::BYTEA),
            (&big(height), Type::INT8),
        ],
    )?;
    let below = i64::from(height) - i64::from(window.max(1));
    client.execute_typed(
        "DELETE FROM recent_locators WHERE height <= $1",
        &[(&below, Type::INT8)],
    )?;
    Ok(())
}

/// Forgets the transactions of block `hash` (it left the chain).
pub fn forget_locators(
    client: &mut impl GenericClient,
    hash: &BlockHash,
) -> Result<(), StorageError> {
    client.execute_typed(
        "DELETE FROM recent_locators WHERE block_hash = $1",
        &[(&hash.as_byte_array().as_slice(), Type::BYTEA)],
    )?;
    Ok(())
}

/// The transaction of a recently scanned block whose locator is `locator` (the highest block if
/// several), as `(txid, block hash, height)`.
pub fn recent_dispute(
    client: &mut impl GenericClient,
    locator: &[u8; 16],
) -> Result<Option<(Txid, BlockHash, u32)>, StorageError> {
    let row = client.query_typed_opt(
        "SELECT txid, block_hash, height FROM recent_locators WHERE locator = $1
         ORDER BY height DESC LIMIT 1",
        &[(&locator.as_slice(), Type::BYTEA)],
    )?;
    row.map(|row| {
        Ok((
            super::rows::txid_at(&row, 0)?,
            block_hash_at(&row, 1)?,
            u32_at(&row, 2)?,
        ))
    })
    .transpose()
}
