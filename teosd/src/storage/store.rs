//! [`Store`]: the handle every component uses to reach the database, whatever the backend.
//!
//! The Store dispatches to one backend ([`Backend`]): the embedded SQLite database (`sqlite.rs`: one
//! writer thread with group commit, two read pools), or PostgreSQL shared by a fleet
//! ([`super::postgres::PgStore`]: a pool, each command its own transaction ordered on the
//! `chain_tip` row, block commands fenced by the leader's epoch). Both have the same entry points:
//! run a [`Command`] durably (`execute`), run an ad-hoc op over a [`Tx`] (`write`), run a read op
//! on a snapshot (`read`), close. Domain code does not change: it only sees [`Command`] and [`Tx`].

use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;

use super::command::Command;
use super::error::StorageError;
use super::postgres::{DatabaseUrl, PgOptions, PgStore};
use super::sqlite::SqliteDb;
use super::sqlite_tx::SqliteTx;
use super::tx::Tx;

/// Handle to the tower database. Cheap to clone (an `Arc` inside); `Send + Sync`. The database
/// closes when [`close`](Store::close) is called or the last clone is dropped (dropping the last
/// clone blocks like `close` until the queued writes are committed).
///
/// Writes are typed [`Command`]s ([`execute`](Store::execute)); tests and one-off tools may also
/// run ad-hoc ops over a [`Tx`] ([`write`](Store::write)). Reads are ops over a [`Tx`] on a
/// committed snapshot ([`read`](Store::read)). Methods ending in `_sqlite` hand out a raw SQLite
/// connection, for code about the SQLite file itself.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

/// The database behind a [`Store`]. A new backend is a new variant: each method of [`Store`]
/// matches on it, so the compiler lists every place it must answer.
#[derive(Clone)]
enum Backend {
    /// The embedded SQLite database (the default): see `sqlite.rs`.
    Sqlite(Arc<SqliteDb>),
    /// PostgreSQL (`database_url`), possibly shared by a fleet: see [`super::postgres`].
    Postgres(PgStore),
}

/// What `_sqlite` methods answer on PostgreSQL.
const NOT_SQLITE: StorageError =
    StorageError::Unsupported("a raw SQLite connection (the tower's database is PostgreSQL)");

impl Store {
    /// Opens or creates the SQLite database at `path` (the caller passes
    /// `<datadir>/<network>/teos_db.sql3`; missing parent directories are created, a new file gets
    /// mode 0600 because it holds the tower's secret key), applies pending migrations from
    /// `migrations/sqlite/`, sets the pragmas (WAL, `synchronous=FULL`, `foreign_keys=ON`), starts
    /// the writer thread and opens 4 + 2 read connections (shared and reserved pools).
    ///
    /// Errors: [`StorageError::Io`] (directory or file creation), [`StorageError::Corrupt`] (not a
    /// SQLite file), [`StorageError::Migration`] (migration failed, or the file comes from a newer
    /// teosd), [`StorageError::Sqlite`] (anything else).
    pub fn open(path: &Path) -> Result<Store, StorageError> {
        Ok(Store {
            backend: Backend::Sqlite(Arc::new(SqliteDb::open(path)?)),
        })
    }

    /// Connects to the PostgreSQL database at `url` (`database_url`), waiting up to
    /// `options.unavailable_wait` for it, and applies the migrations of `migrations/postgresql/`
    /// ([`PgStore::open`]). Blocks: call it before the async runtime starts or on a plain thread.
    ///
    /// Block commands ([`Order::Block`](super::Order::Block)) are refused until
    /// [`set_fence`](Store::set_fence) gives the epoch this instance leads with.
    ///
    /// Errors: [`StorageError::Unavailable`] (no connection within the wait; the message names the
    /// URL with its password masked), [`StorageError::Migration`].
    pub fn open_postgres(url: &DatabaseUrl, options: PgOptions) -> Result<Store, StorageError> {
        Ok(Store {
            backend: Backend::Postgres(PgStore::open(url, options)?),
        })
    }

    /// Whether the database is PostgreSQL (a fleet's), not the embedded SQLite file.
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// The fencing epoch block commands are checked against (docs/fleet.md "Fencing"): `Some` while
    /// this instance's chain pipeline runs as the fleet's leader with that epoch, `None` otherwise
    /// (block commands refused with [`StorageError::Fenced`]). Nothing to fence on SQLite (one
    /// instance): ignored there.
    pub fn set_fence(&self, epoch: Option<i64>) {
        if let Backend::Postgres(pg) = &self.backend {
            pg.set_fence(epoch);
        }
    }

    /// Executes `command` and returns its output once its writes are durable.
    ///
    /// On SQLite: on the writer thread, strictly in submission order with every other write, inside
    /// the current group transaction and its own SAVEPOINT. An `Err` from the command (or a panic,
    /// as [`StorageError::OpPanicked`]) rolls back only its savepoint and is returned at once. `Ok`
    /// is returned only after the group's COMMIT succeeded (fsync'd); if the COMMIT fails, every
    /// command of the group gets `StorageError::CommitFailed` (or [`StorageError::RolledBack`]).
    /// Dropping the returned future does not cancel a command already queued.
    ///
    /// Errors before running: [`StorageError::Closed`]; [`StorageError::OnWriterThread`] (with the
    /// command's name) when called from inside a write.
    pub async fn execute<C: Command>(&self, command: C) -> Result<C::Output, C::Error> {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.write(C::NAME, move |conn| command.run(&mut SqliteTx::new(conn)))
                    .await
            }
            Backend::Postgres(pg) => pg.execute(command).await,
        }
    }

    /// [`execute`](Store::execute) for callers on plain threads (the block processor, startup):
    /// blocks the calling thread until the command is durable. Must not be called from an async
    /// worker thread (it would block it).
    pub fn execute_blocking<C: Command>(&self, command: C) -> Result<C::Output, C::Error> {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.write_blocking(C::NAME, move |conn| command.run(&mut SqliteTx::new(conn)))
            }
            Backend::Postgres(pg) => pg.execute_blocking(command),
        }
    }

    /// Runs an ad-hoc write op over a [`Tx`], with the durability and ordering of
    /// [`execute`](Store::execute). For tests and one-off tools (the rust-teos import); the daemon's
    /// writes are [`Command`]s.
    pub async fn write<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.write("Store::write", move |conn| op(&mut SqliteTx::new(conn)))
                    .await
            }
            Backend::Postgres(pg) => pg.write(op).await,
        }
    }

    /// [`write`](Store::write) for callers on plain threads: blocks until the op is durable.
    pub fn write_blocking<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(db) => db.write_blocking("Store::write_blocking", move |conn| {
                op(&mut SqliteTx::new(conn))
            }),
            Backend::Postgres(pg) => pg.write_blocking(op),
        }
    }

    /// Runs `op` on a read snapshot: all its queries see the same committed state; writes fail.
    ///
    /// On SQLite: a connection of the shared read pool, on tokio's blocking pool (`spawn_blocking`).
    /// At most 4 such reads run at once; further callers wait (first come, first served) without
    /// occupying a blocking thread, so a flood of reads costs memory per waiting caller, not threads,
    /// and never delays [`read_blocking`](Store::read_blocking). A panic in `op` becomes
    /// [`StorageError::OpPanicked`]. Must be called within a tokio runtime.
    ///
    /// Errors: [`StorageError::Closed`] once [`close`](Store::close) started; `op`'s own errors.
    pub async fn read<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(db) => db.read(move |conn| op(&mut SqliteTx::new(conn))).await,
            Backend::Postgres(pg) => pg.read(op).await,
        }
    }

    /// Runs `op` on the calling thread (blocking) on a read snapshot, for the block processor and
    /// other plain threads (metrics, startup). On SQLite one of the 2 reserved read connections:
    /// async readers ([`read`](Store::read)) never take them, so however busy the public API is,
    /// this waits at most for another reserved-pool read. Must not be called from an async worker
    /// thread. A panic in `op` propagates to the caller. Called from inside a write it works but sees
    /// the last committed state, not the writes of the current group: read through the write's own
    /// [`Tx`] there instead.
    pub fn read_blocking<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(db) => db.read_blocking(move |conn| op(&mut SqliteTx::new(conn))),
            Backend::Postgres(pg) => pg.read_blocking(op),
        }
    }

    /// SQLite only: [`write`](Store::write) with the writer's raw connection, for code about the
    /// SQLite file itself (tests of the per-table query modules, schema experiments in tests,
    /// benchmark prefill). `op` must not run transaction statements (BEGIN/COMMIT/ROLLBACK).
    pub async fn write_sqlite<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(db) => db.write("Store::write_sqlite", op).await,
            Backend::Postgres(_) => Err(E::from(NOT_SQLITE)),
        }
    }

    /// SQLite only: [`write_blocking`](Store::write_blocking) with the writer's raw connection.
    pub fn write_sqlite_blocking<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(db) => db.write_blocking("Store::write_sqlite_blocking", op),
            Backend::Postgres(_) => Err(E::from(NOT_SQLITE)),
        }
    }

    /// SQLite only: [`read`](Store::read) with a raw read connection.
    pub async fn read_sqlite<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(db) => db.read(op).await,
            Backend::Postgres(_) => Err(E::from(NOT_SQLITE)),
        }
    }

    /// SQLite only: [`read_blocking`](Store::read_blocking) with a raw reserved read connection.
    pub fn read_sqlite_blocking<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(db) => db.read_blocking(op),
            Backend::Postgres(_) => Err(E::from(NOT_SQLITE)),
        }
    }

    /// Stops accepting writes, runs and commits the ones already queued, closes all connections (on
    /// SQLite: checkpoints the WAL into the database file and joins the writer thread). Idempotent:
    /// later calls return `Ok(())`. Writes submitted afterwards fail with [`StorageError::Closed`].
    ///
    /// Errors: the final checkpoint/close failed ([`StorageError::Sqlite`]), the writer thread had
    /// died ([`StorageError::OpPanicked`]), or the call was made from inside a write
    /// ([`StorageError::OnWriterThread`]).
    pub fn close(&self) -> Result<(), StorageError> {
        match &self.backend {
            Backend::Sqlite(db) => db.close(),
            Backend::Postgres(pg) => pg.close(),
        }
    }

    /// Size in bytes of the database file plus its WAL (`<path>-wal`), for metrics. Missing files
    /// count as 0. On PostgreSQL 0: the database is not in the data dir (its server reports its
    /// size, `pg_database_size`).
    pub fn disk_size(&self) -> u64 {
        match &self.backend {
            Backend::Sqlite(db) => db.disk_size(),
            Backend::Postgres(_) => 0,
        }
    }

    /// Number of group COMMITs that succeeded since [`open`](Store::open) (for tests and metrics:
    /// writes / commits = average group size).
    pub fn commit_count(&self) -> u64 {
        match &self.backend {
            Backend::Sqlite(db) => db.commit_count(),
            Backend::Postgres(_) => 0,
        }
    }

    /// Number of writes queued and not yet taken by the writer (queue depth, for tests and metrics).
    pub fn queued_ops(&self) -> usize {
        match &self.backend {
            Backend::Sqlite(db) => db.queued_ops(),
            Backend::Postgres(_) => 0,
        }
    }

    /// The database file this store was opened on (an empty path on PostgreSQL: no file here).
    pub fn path(&self) -> &Path {
        match &self.backend {
            Backend::Sqlite(db) => db.path(),
            Backend::Postgres(_) => Path::new(""),
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Sqlite(db) => f.debug_struct("Store").field("path", &db.path()).finish(),
            Backend::Postgres(pg) => f.debug_struct("Store").field("url", &pg.url()).finish(),
        }
    }
}
