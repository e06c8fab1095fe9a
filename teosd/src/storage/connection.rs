//! Opening connections: pragmas, schema migrations (refinery, from `migrations/`), read-only readers.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::error::StorageError;

mod embedded {
    // The SQL files in the workspace's `migrations/` folder (V1__initial.sql, ...), compiled in.
    refinery::embed_migrations!("../migrations");
}

/// How long a connection waits for a lock held by another connection before `SQLITE_BUSY`. In WAL mode
/// only checkpoints and WAL recovery take such locks, briefly.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Prepared statements kept per connection (`prepare_cached`); the query modules use about 50.
const STATEMENT_CACHE: usize = 128;

/// Opens (creating if needed) the read-write connection of the writer thread, sets its pragmas and
/// applies pending migrations.
///
/// Pragmas: `journal_mode=WAL` (readers run concurrently with the writer), `synchronous=FULL` (the WAL
/// is fsync'd at every COMMIT, so an acknowledged write survives power loss; with NORMAL it would only
/// survive a process crash, <https://sqlite.org/pragma.html#pragma_synchronous>), `foreign_keys=ON`
/// (cascades; off by default in SQLite).
///
/// Errors: [`StorageError::Corrupt`] if the file is not a SQLite database, [`StorageError::Migration`]
/// if a migration fails or the file holds migrations unknown to this build (written by a newer teosd).
pub(crate) fn open_writer(path: &Path) -> Result<Connection, StorageError> {
    let mut conn = Connection::open(path).map_err(classify)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(classify)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StorageError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(format!("journal_mode is {mode}, WAL could not be enabled")),
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let foreign_keys: i64 = conn.pragma_query_value(None, "foreign_keys", |row| row.get(0))?;
    if foreign_keys != 1 {
        return Err(StorageError::Migration(
            "foreign_keys could not be enabled".into(),
        ));
    }
    // refinery's defaults: abort on divergent (changed) and missing (unknown, newer) migrations.
    embedded::migrations::runner()
        .run(&mut conn)
        .map_err(|e| StorageError::Migration(e.to_string()))?;
    Ok(conn)
}

/// Opens a read-only connection to the database the writer created. Writes through it fail with
/// `SQLITE_READONLY`.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StorageError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(classify)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Highest migration version recorded in the database (refinery's `refinery_schema_history`), or
/// `None` on a database without migrations. V1 is version 1.
pub fn schema_version(conn: &Connection) -> Result<Option<u32>, StorageError> {
    let version: Option<i64> = conn.query_row(
        "SELECT MAX(version) FROM refinery_schema_history",
        [],
        |row| row.get(0),
    )?;
    version
        .map(|v| u32::try_from(v).map_err(|_| StorageError::Corrupt(format!("schema version {v}"))))
        .transpose()
}

/// Turns "not a database" and "malformed" errors into [`StorageError::Corrupt`].
fn classify(e: rusqlite::Error) -> StorageError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
            StorageError::Corrupt(e.to_string())
        }
        _ => StorageError::Sqlite(e),
    }
}
