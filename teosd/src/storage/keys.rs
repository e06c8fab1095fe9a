//! Queries on `keys`: the tower's secret signing keys. The newest key (highest id) signs; older keys
//! are kept. Keys are stored unencrypted (32 raw bytes); the database file is created with mode 0600.

use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};
use secp256k1::SecretKey;

use super::error::{StorageError, corrupt};
use super::records::count_to_u64;

/// The newest tower key, or `None` if none was ever stored. Errors: [`StorageError::Corrupt`] if the
/// stored bytes are not a valid secp256k1 secret key.
pub fn latest(conn: &Connection) -> Result<Option<SecretKey>, StorageError> {
    let mut stmt = conn.prepare_cached("SELECT secret_key FROM keys ORDER BY id DESC LIMIT 1")?;
    let mut rows = stmt.query_and_then([], |row| {
        let bytes: Vec<u8> = row.get(0)?;
        SecretKey::from_slice(&bytes).map_err(|e| corrupt("tower key", e))
    })?;
    rows.next().transpose()
}

/// Stores `key` as the newest tower key, stamped with the current unix time in seconds. Returns its id.
pub fn insert(conn: &Connection, key: &SecretKey) -> Result<i64, StorageError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let mut stmt =
        conn.prepare_cached("INSERT INTO keys (secret_key, created_at) VALUES (?1, ?2)")?;
    stmt.execute(params![key.secret_bytes(), now])?;
    Ok(conn.last_insert_rowid())
}

/// Number of stored tower keys.
pub fn count(conn: &Connection) -> Result<u64, StorageError> {
    let mut stmt = conn.prepare_cached("SELECT COUNT(*) FROM keys")?;
    Ok(count_to_u64(stmt.query_row([], |row| row.get(0))?))
}
