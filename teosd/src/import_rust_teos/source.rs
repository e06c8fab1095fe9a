//! Reading a rust-teos database (`<datadir>/<network>/teos_db.sql3`, rust-teos 0.1–0.2, research/
//! rust-teos.md §5) without changing it, into teosd's row types.
//!
//! rust-teos's schema: `users(user_id, available_slots, subscription_start, subscription_expiry)`,
//! `appointments(UUID, locator, encrypted_blob, to_self_delay, user_signature, start_block, user_id)`,
//! `trackers(UUID, dispute_tx, penalty_tx, height, confirmed)`, `last_known_block(id, block_hash)`,
//! `keys(id, key)`. Its columns are declared `INT` but hold BLOBs (ids, locators, hashes in internal
//! byte order) or TEXT (the key as hex, the user's zbase32 signature). Every value is checked against
//! what teosd's schema requires; the first that does not fit stops the import ([`SourceError`]).

use std::path::{Path, PathBuf};

use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Transaction};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, Row};
use secp256k1::SecretKey;
use teos_common::appointment::compute_slots;
use teos_common::constants::ENCRYPTED_BLOB_MAX_SIZE;

use crate::storage::{AppointmentId, AppointmentRecord, Locator, UserId, UserRecord};

/// The tables a rust-teos database has; a database without one of them is not rust-teos's.
const TABLES: [&str; 5] = [
    "users",
    "appointments",
    "trackers",
    "last_known_block",
    "keys",
];

/// Why a rust-teos database cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file cannot be opened or read as SQLite.
    #[error("cannot read {path} as a SQLite database: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// A SQLite database, but not rust-teos's (a table is missing; or it is teosd's own).
    #[error("{path} is not a rust-teos database: {reason}")]
    NotRustTeos { path: PathBuf, reason: String },
    /// A row that does not fit teosd's schema.
    #[error("{table} row {row}: {reason}")]
    BadRow {
        table: &'static str,
        row: i64,
        reason: String,
    },
    /// A query failed.
    #[error("reading the rust-teos database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// A rust-teos tracker: the breach it answered and where the penalty stood.
#[derive(Debug, Clone)]
pub struct RustTracker {
    /// Its appointment.
    pub uuid: AppointmentId,
    /// The dispute (commitment) transaction seen on chain.
    pub dispute_tx: Transaction,
    /// The decrypted penalty transaction.
    pub penalty_tx: Transaction,
    /// rust-teos's `ConfirmationStatus` height: where the penalty confirmed (`confirmed`), else where it
    /// was last broadcast (blocks).
    pub height: u32,
    /// Whether the penalty confirmed at `height`.
    pub confirmed: bool,
}

/// Everything teosd takes from a rust-teos database.
#[derive(Debug, Clone)]
pub struct RustTeosData {
    /// Tower keys, oldest first; the last one is the tower's (rust-teos signs with the newest).
    pub keys: Vec<SecretKey>,
    /// Registered users.
    pub users: Vec<(UserId, UserRecord)>,
    /// Appointments, with and without trackers; `slots` computed as teosd does (by blob size).
    pub appointments: Vec<AppointmentRecord>,
    /// Trackers.
    pub trackers: Vec<RustTracker>,
    /// The last block rust-teos processed (`last_known_block`), if it processed any.
    pub last_block: Option<BlockHash>,
}

impl RustTeosData {
    /// A lower bound of the height of [`RustTeosData::last_block`]: the highest height recorded in the
    /// data (subscription starts, appointment start blocks, tracker heights), each of which was
    /// rust-teos's tip height when written. `None` if the data records none.
    pub fn highest_recorded_height(&self) -> Option<u32> {
        let users = self.users.iter().map(|(_, u)| u.subscription_start);
        let appointments = self.appointments.iter().map(|a| a.start_block);
        let trackers = self.trackers.iter().map(|t| t.height);
        users.chain(appointments).chain(trackers).max()
    }
}

/// Reads the rust-teos database at `path` without writing to it or beside it: opened read-only with
/// SQLite's `immutable=1` (no locks, no `-journal`, `-wal` or `-shm` file), so the source directory is
/// left byte for byte as it was. The caller makes sure rust-teos is stopped and left no hot journal.
///
/// Errors: [`SourceError`].
pub fn read(path: &Path) -> Result<RustTeosData, SourceError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let open_error = |source| SourceError::Open {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open_with_flags(immutable_uri(path), flags).map_err(open_error)?;
    check_tables(&conn, path).map_err(|e| match e {
        SourceError::Sqlite(source) => open_error(source),
        other => other,
    })?;
    let users = read_users(&conn)?;
    let appointments = read_appointments(&conn)?;
    let trackers = read_trackers(&conn)?;
    Ok(RustTeosData {
        keys: read_keys(&conn)?,
        users,
        appointments,
        trackers,
        last_block: read_last_block(&conn)?,
    })
}

/// `file:<path>?immutable=1`, the path percent-encoded as SQLite's URI filenames require.
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                uri.push(char::from(*byte))
            }
            other => uri.push_str(&format!("%{other:02X}")),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

fn check_tables(conn: &Connection, path: &Path) -> Result<(), SourceError> {
    let not_rust_teos = |reason: String| SourceError::NotRustTeos {
        path: path.to_path_buf(),
        reason,
    };
    let mut stmt = conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")?;
    let names = stmt
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    if names.iter().any(|n| n == "refinery_schema_history") {
        return Err(not_rust_teos(
            "it is a teosd database (it has teosd's schema history)".into(),
        ));
    }
    let missing: Vec<&str> = TABLES
        .into_iter()
        .filter(|t| !names.iter().any(|n| n == t))
        .collect();
    if !missing.is_empty() {
        return Err(not_rust_teos(format!(
            "table(s) {} missing",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// A BLOB column of exactly `N` bytes (rust-teos stores ids and hashes in `INT` columns as BLOBs).
fn blob<const N: usize>(row: &Row<'_>, idx: usize, what: &str) -> Result<[u8; N], String> {
    let bytes = bytes(row, idx, what)?;
    <[u8; N]>::try_from(bytes.as_slice())
        .map_err(|_| format!("{what}: {} bytes, expected {N}", bytes.len()))
}

fn bytes(row: &Row<'_>, idx: usize, what: &str) -> Result<Vec<u8>, String> {
    match row.get_ref(idx).map_err(|e| format!("{what}: {e}"))? {
        ValueRef::Blob(b) => Ok(b.to_vec()),
        other => Err(format!(
            "{what}: a {:?}, expected a BLOB",
            other.data_type()
        )),
    }
}

/// An INTEGER column in the `u32` range (heights, slots, delays).
fn int_u32(row: &Row<'_>, idx: usize, what: &str) -> Result<u32, String> {
    match row.get_ref(idx).map_err(|e| format!("{what}: {e}"))? {
        ValueRef::Integer(i) => u32::try_from(i).map_err(|_| format!("{what}: {i} out of range")),
        other => Err(format!(
            "{what}: a {:?}, expected an INTEGER",
            other.data_type()
        )),
    }
}

fn text(row: &Row<'_>, idx: usize, what: &str) -> Result<String, String> {
    match row.get_ref(idx).map_err(|e| format!("{what}: {e}"))? {
        ValueRef::Text(t) => {
            String::from_utf8(t.to_vec()).map_err(|_| format!("{what}: not UTF-8"))
        }
        other => Err(format!("{what}: a {:?}, expected TEXT", other.data_type())),
    }
}

fn user_id(row: &Row<'_>, idx: usize) -> Result<UserId, String> {
    let bytes: [u8; 33] = blob(row, idx, "user_id")?;
    UserId::from_slice(&bytes).map_err(|e| format!("user_id: {e}"))
}

fn appointment_id(row: &Row<'_>, idx: usize) -> Result<AppointmentId, String> {
    let bytes: [u8; 20] = blob(row, idx, "UUID")?;
    AppointmentId::from_slice(&bytes).map_err(|e| format!("UUID: {e}"))
}

fn transaction(row: &Row<'_>, idx: usize, what: &str) -> Result<Transaction, String> {
    bitcoin::consensus::deserialize(&bytes(row, idx, what)?).map_err(|e| format!("{what}: {e}"))
}

/// Runs `sql` (its first column the rowid) and maps each row with `map`, naming the table and rowid
/// of the first row that does not fit.
fn rows<T>(
    conn: &Connection,
    table: &'static str,
    sql: &str,
    map: impl Fn(&Row<'_>) -> Result<T, String>,
) -> Result<Vec<T>, SourceError> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let rowid: i64 = row.get(0)?;
        out.push(map(row).map_err(|reason| SourceError::BadRow {
            table,
            row: rowid,
            reason,
        })?);
    }
    Ok(out)
}

fn read_keys(conn: &Connection) -> Result<Vec<SecretKey>, SourceError> {
    // rust-teos signs with the key whose id is the table's AUTOINCREMENT sequence: the newest.
    rows(
        conn,
        "keys",
        "SELECT id, key FROM keys ORDER BY id",
        |row| {
            let hex = match row.get_ref(1).map_err(|e| e.to_string())? {
                ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                ValueRef::Blob(b) if b.len() == 32 => return secret(b),
                other => return Err(format!("key: a {:?}", other.data_type())),
            };
            let bytes = hex::decode(hex.trim()).map_err(|e| format!("key: not hex ({e})"))?;
            secret(&bytes)
        },
    )
}

fn secret(bytes: &[u8]) -> Result<SecretKey, String> {
    SecretKey::from_slice(bytes).map_err(|e| format!("key: {e}"))
}

fn read_users(conn: &Connection) -> Result<Vec<(UserId, UserRecord)>, SourceError> {
    let sql = "SELECT rowid, user_id, available_slots, subscription_start, subscription_expiry \
               FROM users ORDER BY user_id";
    rows(conn, "users", sql, |row| {
        Ok((
            user_id(row, 1)?,
            UserRecord {
                available_slots: int_u32(row, 2, "available_slots")?,
                subscription_start: int_u32(row, 3, "subscription_start")?,
                subscription_expiry: int_u32(row, 4, "subscription_expiry")?,
            },
        ))
    })
}

fn read_appointments(conn: &Connection) -> Result<Vec<AppointmentRecord>, SourceError> {
    let sql = "SELECT a.rowid, a.UUID, a.locator, a.user_id, a.encrypted_blob, a.to_self_delay, \
               a.user_signature, a.start_block, u.user_id IS NOT NULL \
               FROM appointments a LEFT JOIN users u ON u.user_id = a.user_id ORDER BY a.UUID";
    rows(conn, "appointments", sql, |row| {
        let uuid = appointment_id(row, 1)?;
        let locator = Locator::from_slice(&blob::<16>(row, 2, "locator")?)
            .map_err(|e| format!("locator: {e}"))?;
        let user_id = user_id(row, 3)?;
        if uuid != AppointmentId::new(&locator, &user_id) {
            return Err("UUID is not RIPEMD160(locator || user_id)".into());
        }
        if !row.get::<_, bool>(8).map_err(|e| e.to_string())? {
            return Err("its user is not registered".into());
        }
        let encrypted_blob = bytes(row, 4, "encrypted_blob")?;
        Ok(AppointmentRecord {
            uuid,
            locator,
            user_id,
            slots: compute_slots(encrypted_blob.len(), ENCRYPTED_BLOB_MAX_SIZE),
            encrypted_blob,
            to_self_delay: int_u32(row, 5, "to_self_delay")?,
            user_signature: text(row, 6, "user_signature")?,
            start_block: int_u32(row, 7, "start_block")?,
        })
    })
}

fn read_trackers(conn: &Connection) -> Result<Vec<RustTracker>, SourceError> {
    let sql = "SELECT t.rowid, t.UUID, t.dispute_tx, t.penalty_tx, t.height, t.confirmed, \
               a.UUID IS NOT NULL \
               FROM trackers t LEFT JOIN appointments a ON a.UUID = t.UUID ORDER BY t.UUID";
    rows(conn, "trackers", sql, |row| {
        if !row.get::<_, bool>(6).map_err(|e| e.to_string())? {
            return Err("its appointment is not stored".into());
        }
        let confirmed = match row.get_ref(5).map_err(|e| e.to_string())? {
            ValueRef::Integer(0) => false,
            ValueRef::Integer(1) => true,
            other => return Err(format!("confirmed: {other:?}, expected 0 or 1")),
        };
        Ok(RustTracker {
            uuid: appointment_id(row, 1)?,
            dispute_tx: transaction(row, 2, "dispute_tx")?,
            penalty_tx: transaction(row, 3, "penalty_tx")?,
            height: int_u32(row, 4, "height")?,
            confirmed,
        })
    })
}

fn read_last_block(conn: &Connection) -> Result<Option<BlockHash>, SourceError> {
    // A single row (id 0), replaced after every poll of bitcoind.
    let sql = "SELECT rowid, block_hash FROM last_known_block ORDER BY id DESC LIMIT 1";
    let hashes = rows(conn, "last_known_block", sql, |row| {
        Ok(BlockHash::from_byte_array(blob(row, 1, "block_hash")?))
    })?;
    Ok(hashes.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_percent_encoded_in_the_uri() {
        assert_eq!(
            immutable_uri(Path::new("/tmp/a b/x?y#z%.sql3")),
            "file:/tmp/a%20b/x%3Fy%23z%25.sql3?immutable=1"
        );
    }
}
