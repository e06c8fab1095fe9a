//! Queries on `chain`: the tower's last processed blocks, the tip being the highest height. On restart
//! the block processor compares these with bitcoind to find the fork point.

use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Txid, Work};
use rusqlite::{Connection, OptionalExtension, params};

use super::error::StorageError;
use super::records::{block_hash_at, decode_txids};

/// Height and hash of the last processed block, or `None` before the first block.
pub fn tip(conn: &Connection) -> Result<Option<(u32, BlockHash)>, StorageError> {
    let mut stmt =
        conn.prepare_cached("SELECT height, hash FROM chain ORDER BY height DESC LIMIT 1")?;
    let mut rows = stmt.query_and_then([], |row| Ok((row.get(0)?, block_hash_at(row, 1)?)))?;
    rows.next().transpose()
}

/// Records block `hash` at `height` (replacing a row at the same height) and prunes the rows below
/// `height - keep + 1`, so at most `keep` blocks ending at `height` remain (0 is treated as 1). Rows
/// are a record of the tower's chain, not a limit on reorgs: a fork point below them is found by
/// asking bitcoind for headers (`chain_walker`).
pub fn push(
    conn: &Connection,
    height: u32,
    hash: &BlockHash,
    keep: u32,
) -> Result<(), StorageError> {
    push_with_work(conn, height, hash, None, keep)
}

/// [`push`] with the chain's total work up to this block (`chainwork`), when known.
pub fn push_with_work(
    conn: &Connection,
    height: u32,
    hash: &BlockHash,
    chainwork: Option<Work>,
    keep: u32,
) -> Result<(), StorageError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO chain (height, hash, chainwork) VALUES (?1, ?2, ?3)
         ON CONFLICT (height) DO UPDATE SET hash = excluded.hash, txids = NULL,
             chainwork = excluded.chainwork",
    )?;
    insert.execute(params![
        height,
        hash.to_byte_array(),
        chainwork.map(|w| w.to_be_bytes())
    ])?;
    let lowest_kept = i64::from(height) - i64::from(keep.max(1)) + 1;
    let mut prune = conn.prepare_cached("DELETE FROM chain WHERE height < ?1")?;
    prune.execute([lowest_kept])?;
    Ok(())
}

/// Forgets the block at `height` and any above it (block disconnected in a reorg). Returns the number
/// of rows removed.
pub fn pop(conn: &Connection, height: u32) -> Result<usize, StorageError> {
    let mut stmt = conn.prepare_cached("DELETE FROM chain WHERE height >= ?1")?;
    Ok(stmt.execute([height])?)
}

/// Stores the txids (in block order) of the remembered block `hash` at `height`, for
/// [`txids_at`]. Returns whether that block is remembered (false, and nothing stored, if the height
/// holds another block or none).
pub fn set_txids(
    conn: &Connection,
    height: u32,
    hash: &BlockHash,
    txids: &[Txid],
) -> Result<bool, StorageError> {
    let mut bytes = Vec::with_capacity(txids.len() * 32);
    for txid in txids {
        bytes.extend_from_slice(txid.as_byte_array());
    }
    let mut stmt =
        conn.prepare_cached("UPDATE chain SET txids = ?3 WHERE height = ?1 AND hash = ?2")?;
    Ok(stmt.execute(params![height, hash.to_byte_array(), bytes])? == 1)
}

/// Forgets the txids of the remembered blocks below `height` (they left the locator cache window).
pub fn clear_txids_below(conn: &Connection, height: u32) -> Result<usize, StorageError> {
    let mut stmt = conn
        .prepare_cached("UPDATE chain SET txids = NULL WHERE height < ?1 AND txids IS NOT NULL")?;
    Ok(stmt.execute([height])?)
}

/// The txids stored with [`set_txids`] for the block at `height`, if any.
///
/// Errors: [`StorageError::Corrupt`] if the stored bytes are not a whole number of txids.
pub fn txids_at(conn: &Connection, height: u32) -> Result<Option<Vec<Txid>>, StorageError> {
    let mut stmt = conn.prepare_cached("SELECT txids FROM chain WHERE height = ?1")?;
    let bytes: Option<Option<Vec<u8>>> = stmt.query_row([height], |row| row.get(0)).optional()?;
    let Some(bytes) = bytes.flatten() else {
        return Ok(None);
    };
    decode_txids(height, &bytes).map(Some)
}

/// All remembered blocks as `(height, hash)`, highest first.
pub fn recent(conn: &Connection) -> Result<Vec<(u32, BlockHash)>, StorageError> {
    let mut stmt = conn.prepare_cached("SELECT height, hash FROM chain ORDER BY height DESC")?;
    let blocks = stmt
        .query_and_then([], |row| Ok((row.get(0)?, block_hash_at(row, 1)?)))?
        .collect::<Result<Vec<_>, StorageError>>()?;
    Ok(blocks)
}

/// The total work (`chainwork`) stored with the remembered block `hash`, if it is kept and its work
/// is known (rows written before schema V4 have none).
pub fn work_of(conn: &Connection, hash: &BlockHash) -> Result<Option<Work>, StorageError> {
    let mut stmt = conn.prepare_cached("SELECT chainwork FROM chain WHERE hash = ?1")?;
    let bytes: Option<Option<Vec<u8>>> = stmt
        .query_row([hash.to_byte_array()], |row| row.get(0))
        .optional()?;
    let Some(bytes) = bytes.flatten() else {
        return Ok(None);
    };
    let bytes = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        StorageError::Corrupt(format!("chainwork of block {hash}: {} bytes", bytes.len()))
    })?;
    Ok(Some(Work::from_be_bytes(bytes)))
}

/// Hash of the remembered block at `height`, if it is still kept.
pub fn hash_at(conn: &Connection, height: u32) -> Result<Option<BlockHash>, StorageError> {
    let mut stmt = conn.prepare_cached("SELECT hash FROM chain WHERE height = ?1")?;
    let mut rows = stmt.query_and_then([height], |row| block_hash_at(row, 0))?;
    rows.next().transpose()
}

/// Height of the remembered block `hash`, or `None` if it is not among the kept blocks (never seen,
/// pruned, or disconnected).
pub fn height_of(conn: &Connection, hash: &BlockHash) -> Result<Option<u32>, StorageError> {
    // The table holds only the last few hundred blocks: a scan is cheaper than another index.
    let mut stmt = conn.prepare_cached("SELECT height FROM chain WHERE hash = ?1")?;
    Ok(stmt
        .query_row([hash.to_byte_array()], |row| row.get(0))
        .optional()?)
}
