//! The storage error type, shared by the [`Store`](super::Store) and the query functions.

use rusqlite::ffi;

/// Everything that can go wrong in the storage layer.
///
/// The caller's own op error type `E` must implement `From<StorageError>` so that failures of the
/// storage machinery itself (the group commit failed, the store is closed, ...) reach it.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A SQLite call failed (constraint violation, disk full, I/O error, ...).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The op itself succeeded, but the COMMIT of its group failed (e.g. `SQLITE_FULL`): none of the
    /// group's writes are durable. The writer keeps running; a later write can succeed.
    #[error("group commit failed: {0}")]
    CommitFailed(rusqlite::Error),
    /// SQLite rolled the whole group transaction back after an error inside an op of the same group
    /// (it may do so after `SQLITE_FULL`, `SQLITE_IOERR`, `SQLITE_NOMEM`; see
    /// <https://sqlite.org/lang_transaction.html>, "Response To Errors Within A Transaction"), or an op
    /// ended the transaction itself. This op's writes were lost.
    #[error("the group transaction was rolled back by an error in the same group")]
    RolledBack,
    /// Applying the schema migrations failed, or the file holds migrations this build does not know
    /// (a newer teosd wrote it).
    #[error("schema migration: {0}")]
    Migration(String),
    /// The store was closed ([`Store::close`](super::Store::close)) before the op ran.
    #[error("the store is closed")]
    Closed,
    /// A stored value cannot be decoded (wrong length, invalid transaction or key), or the file is not
    /// a SQLite database.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The op panicked (its savepoint was rolled back and the writer kept running), or the writer
    /// thread itself died (seen by [`Store::close`](super::Store::close)).
    #[error("storage op panicked: {0}")]
    OpPanicked(String),
    /// The call would deadlock: it was made from inside a write op (on the writer thread).
    #[error("{0} called from inside a write op")]
    OnWriterThread(&'static str),
    /// [`Tx::add_slots`](super::Tx::add_slots) would move `available` below 0 or above `u32::MAX`.
    #[error("slot change {delta} out of range for {available} available slots")]
    SlotsOutOfRange {
        /// Slots the user has now.
        available: u32,
        /// Requested change.
        delta: i64,
    },
    /// The row the function must modify does not exist (e.g. `add_slots` on an unknown user).
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// A backend other than SQLite refused a write for a constraint (unique key, foreign key, check):
    /// each backend maps its native error here (SQLite's stay [`StorageError::Sqlite`]); the text is
    /// the backend's message. See [`StorageError::is_constraint_violation`].
    #[error("constraint violation: {0}")]
    Constraint(String),
    /// Creating the data directory or reading file metadata failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A PostgreSQL call failed; [`PgFailure::kind`](super::postgres::PgFailure) says how
    /// (constraint violation, lost connection, ...).
    #[error("postgresql: {0}")]
    Postgres(super::postgres::PgFailure),
    /// The database could not be reached within the backend's wait (PostgreSQL down, restarting or
    /// unreachable): nothing was committed. Retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A block command was refused because this instance does not lead the fleet with the epoch it
    /// holds (`None`: it holds none, so it runs no chain pipeline): another instance took leadership
    /// (docs/fleet.md "Fencing"). Nothing was committed.
    #[error(
        "not the fleet's leader: epoch {ours:?} holds no leadership (the database says {current})"
    )]
    Fenced {
        /// The epoch this instance's pipeline runs with, if any.
        ours: Option<i64>,
        /// `fleet_leader.epoch` in the database.
        current: i64,
    },
    /// The operation exists only on another backend (raw SQLite connections on PostgreSQL).
    #[error("not available on this database backend: {0}")]
    Unsupported(&'static str),
}

impl StorageError {
    /// True when the underlying SQLite error is `SQLITE_FULL` (disk or `max_page_count` full), in an op
    /// or in the group commit.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StorageError::Sqlite(e) | StorageError::CommitFailed(e) => {
                e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
            }
            StorageError::Postgres(e) => e.kind == super::postgres::PgErrorKind::DiskFull,
            _ => false,
        }
    }

    /// True when a write was refused for a constraint (unique key, foreign key, check), whatever the
    /// backend: SQLite's `SQLITE_CONSTRAINT` result codes, or [`StorageError::Constraint`] from another
    /// backend. Never true for a failed COMMIT.
    pub fn is_constraint_violation(&self) -> bool {
        match self {
            StorageError::Sqlite(e) => {
                e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
            }
            StorageError::Constraint(_) => true,
            _ => false,
        }
    }

    /// A copy of this error for handing the same failure to every op of a group (`rusqlite::Error`
    /// is not `Clone`; non-SQLite variants of it are carried as their message).
    pub(crate) fn duplicate(&self) -> StorageError {
        match self {
            StorageError::Sqlite(e) => StorageError::Sqlite(clone_sqlite(e)),
            StorageError::CommitFailed(e) => StorageError::CommitFailed(clone_sqlite(e)),
            StorageError::RolledBack => StorageError::RolledBack,
            StorageError::Migration(m) => StorageError::Migration(m.clone()),
            StorageError::Closed => StorageError::Closed,
            StorageError::Corrupt(m) => StorageError::Corrupt(m.clone()),
            StorageError::OpPanicked(m) => StorageError::OpPanicked(m.clone()),
            StorageError::OnWriterThread(m) => StorageError::OnWriterThread(m),
            StorageError::SlotsOutOfRange { available, delta } => StorageError::SlotsOutOfRange {
                available: *available,
                delta: *delta,
            },
            StorageError::NotFound(m) => StorageError::NotFound(m),
            StorageError::Constraint(m) => StorageError::Constraint(m.clone()),
            StorageError::Io(e) => StorageError::Io(std::io::Error::new(e.kind(), e.to_string())),
            StorageError::Postgres(e) => StorageError::Postgres(e.clone()),
            StorageError::Unavailable(m) => StorageError::Unavailable(m.clone()),
            StorageError::Fenced { ours, current } => StorageError::Fenced {
                ours: *ours,
                current: *current,
            },
            StorageError::Unsupported(m) => StorageError::Unsupported(m),
        }
    }
}

/// Copies a rusqlite error, keeping the SQLite result code when there is one.
fn clone_sqlite(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, msg) => {
            rusqlite::Error::SqliteFailure(*code, msg.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

/// Builds the error for a stored value that does not decode (used by the row mappers).
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("{what}: {detail}"))
}
