//! Opening connections: pragmas, schema migrations (refinery, from `migrations/sqlite/`), read-only readers.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::error::StorageError;

mod embedded {
    // The SQL files in the workspace's `migrations/sqlite/` folder (V1__initial.sql, ...), compiled in.
    refinery::embed_migrations!("../migrations/sqlite");
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
pub fn open_writer(path: &Path) -> Result<Connection, StorageError> {
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

#[cfg(test)]
mod tests {
    //! Upgrades in place: a database written by the previous schema keeps everything.

    use super::*;

    /// A database at schema V3 (what teosd wrote before V4) holding a user, two appointments, a tracker
    /// of each status V3 knew, a pending breach and remembered blocks with txids.
    fn v3_database(path: &Path) {
        let mut conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        embedded::migrations::runner()
            .set_target(refinery::Target::Version(3))
            .run(&mut conn)
            .unwrap();
        let user = [2u8; 33];
        conn.execute(
            "INSERT INTO users VALUES (?1, 9998, 100, 4420)",
            [user.as_slice()],
        )
        .unwrap();
        for (n, delay) in [(1u8, 42), (2, 144), (3, 20)] {
            conn.execute(
                "INSERT INTO appointments VALUES (?1, ?2, ?3, x'00', ?4, 'sig', 100, 1)",
                rusqlite::params![
                    [n; 20].as_slice(),
                    [n; 16].as_slice(),
                    user.as_slice(),
                    delay
                ],
            )
            .unwrap();
        }
        for (n, status) in [(1u8, 0), (2, 2)] {
            conn.execute(
                "INSERT INTO trackers VALUES (?1, ?2, x'01', ?3, x'02', 105, ?4, 106)",
                rusqlite::params![
                    [n; 20].as_slice(),
                    [n; 32].as_slice(),
                    [n + 100; 32].as_slice(),
                    status
                ],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO pending_breaches VALUES (?1, ?2, ?3)",
            rusqlite::params![
                [3u8; 20].as_slice(),
                [3u8; 32].as_slice(),
                [9u8; 32].as_slice()
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO chain VALUES (107, ?1, ?2)",
            rusqlite::params![[9u8; 32].as_slice(), [7u8; 64].as_slice()],
        )
        .unwrap();
    }

    #[test]
    fn a_v3_database_is_upgraded_in_place_keeping_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("teos.db");
        v3_database(&path);

        let conn = open_writer(&path).unwrap();
        assert!(schema_version(&conn).unwrap() >= Some(4));
        let count = |table: &str| -> i64 {
            conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(count("users"), 1);
        assert_eq!(count("appointments"), 3);
        assert_eq!(count("trackers"), 2);
        assert_eq!(count("pending_breaches"), 1);
        assert_eq!(count("chain"), 1);
        // Trackers keep their fields and get their appointment's to_self_delay.
        let trackers: Vec<(Vec<u8>, i64, i64, i64, i64)> = conn
            .prepare("SELECT uuid, status, status_height, dispute_height, to_self_delay FROM trackers ORDER BY uuid")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            trackers,
            vec![
                (vec![1; 20], 0, 106, 105, 42),
                (vec![2; 20], 2, 106, 105, 144)
            ]
        );
        // New columns are empty for old rows; the old txids are kept.
        let (work, txids): (Option<Vec<u8>>, Option<Vec<u8>>) = conn
            .query_row("SELECT chainwork, txids FROM chain", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((work, txids), (None, Some(vec![7; 64])));
        let height: Option<i64> = conn
            .query_row("SELECT block_height FROM pending_breaches", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(height, None);
        // The rebuilt table still cascades from appointments, and accepts the new status.
        conn.execute(
            "UPDATE trackers SET status = 3 WHERE uuid = ?1",
            [[1u8; 20].as_slice()],
        )
        .unwrap();
        conn.execute(
            "DELETE FROM appointments WHERE uuid = ?1",
            [[1u8; 20].as_slice()],
        )
        .unwrap();
        assert_eq!(count("trackers"), 1);
        // Counters kept by V2's triggers still count.
        let appointments: i64 = conn
            .query_row(
                "SELECT value FROM counters WHERE name = 'appointments'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(appointments, 2);
    }
}
