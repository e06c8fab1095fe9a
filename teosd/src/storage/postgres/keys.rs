//! Queries on `keys`: the tower's secret signing keys, ONE set for the whole fleet (every instance
//! signs with the newest, so all have the same tower id). PostgreSQL dialect of
//! [`storage::keys`](crate::storage::keys). Keys are stored unencrypted (32 raw bytes): restrict
//! access to the database (docs/fleet.md).

use std::time::{SystemTime, UNIX_EPOCH};

use postgres::GenericClient;
use postgres::types::Type;
use secp256k1::SecretKey;

use super::super::error::{StorageError, corrupt};
use super::rows::{bytes, count_at, get};

/// The newest tower key, or `None` if none was ever stored.
///
/// Errors: [`StorageError::Corrupt`] if the stored bytes are not a valid secret key.
pub fn latest(client: &mut impl GenericClient) -> Result<Option<SecretKey>, StorageError> {
    client
        .query_typed_opt("SELECT secret_key FROM keys ORDER BY id DESC LIMIT 1", &[])?
        .map(|row| SecretKey::from_slice(bytes(&row, 0)?).map_err(|e| corrupt("tower key", e)))
        .transpose()
}

/// Stores `key` as the newest tower key, stamped with the current unix time in seconds. Returns
/// its id.
pub fn insert(client: &mut impl GenericClient, key: &SecretKey) -> Result<i64, StorageError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let secret = key.secret_bytes();
    let row = client.query_typed_one(
        "INSERT INTO keys (secret_key, created_at) VALUES ($1, $2) RETURNING id",
        &[(&secret.as_slice(), Type::BYTEA), (&now, Type::INT8)],
    )?;
    get(&row, 0)
}

/// The newest tower key, storing `key` first if there is none. Two instances starting at once on
/// an empty database both get the SAME key: the table is locked (`SHARE ROW EXCLUSIVE`, which
/// conflicts with itself and with inserts) until the end of the transaction, so the second waits
/// for the first to commit its key and then reads it.
pub fn get_or_insert(
    client: &mut impl GenericClient,
    key: &SecretKey,
) -> Result<SecretKey, StorageError> {
    client.batch_execute("LOCK TABLE keys IN SHARE ROW EXCLUSIVE MODE")?;
    if let Some(existing) = latest(client)? {
        return Ok(existing);
    }
    insert(client, key)?;
    Ok(*key)
}

/// Number of stored tower keys.
pub fn count(client: &mut impl GenericClient) -> Result<u64, StorageError> {
    let row = client.query_typed_one("SELECT count(*) FROM keys", &[])?;
    count_at(&row, 0)
}
