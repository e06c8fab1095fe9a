//! PostgreSQL errors, classified by SQLSTATE (PostgreSQL docs, Appendix A "PostgreSQL Error
//! Codes") into what the storage layer and its callers act on.

use std::error::Error as _;

use tokio_postgres::error::SqlState;

use super::super::error::StorageError;

/// What kind of failure a PostgreSQL error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PgErrorKind {
    /// 23505: a row with this key exists (SQLite's `SQLITE_CONSTRAINT_PRIMARYKEY` / `_UNIQUE`).
    UniqueViolation,
    /// 23503: the referenced row does not exist, e.g. an appointment of an unknown user (SQLite's
    /// `SQLITE_CONSTRAINT_FOREIGNKEY`).
    ForeignKeyViolation,
    /// 23514 / 23502: a CHECK (length, u32 range, status) or NOT NULL failed (SQLite's
    /// `SQLITE_CONSTRAINT_CHECK` / `_NOTNULL`).
    CheckViolation,
    /// 40001 / 40P01: the transaction lost a serialization conflict or a deadlock and was rolled back
    /// whole; running it again is safe (the transaction runner does, a few times).
    Retryable,
    /// The connection broke or the server is shutting down, starting, refusing connections (class
    /// 08, 57P01-57P03, 53300). Nothing of the transaction was committed, unless
    /// [`PgErrorKind::CommitUnknown`]. (A write refused by a read-only transaction or a standby,
    /// 25006, is [`PgErrorKind::Other`]: it cannot pass by waiting on the same connection.)
    Unavailable,
    /// The connection broke while a COMMIT was in flight: the transaction may or may not have
    /// committed. Never retried blindly.
    CommitUnknown,
    /// 53100: the server's disk is full.
    DiskFull,
    /// 57014: a statement timeout or a cancel.
    Canceled,
    /// Anything else (a bug in a query, a value that does not decode, ...).
    Other,
}

/// A classified PostgreSQL error: its kind, SQLSTATE and message (cloneable, unlike
/// `postgres::Error`, so a failure can be handed to several waiters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PgFailure {
    /// What the storage layer makes of it.
    pub kind: PgErrorKind,
    /// The five-character SQLSTATE, when the server sent one.
    pub code: Option<String>,
    /// The error's text (the server's message and detail, or the client's reason). Never holds a
    /// password: neither PostgreSQL's messages nor the client's include one.
    pub message: String,
}

impl PgFailure {
    /// A failure of `kind` with `message` and no SQLSTATE (the client's own errors).
    pub fn new(kind: PgErrorKind, message: impl Into<String>) -> PgFailure {
        PgFailure {
            kind,
            code: None,
            message: message.into(),
        }
    }
}

/// Classifies a client error (see [`PgErrorKind`]).
pub fn classify(e: &postgres::Error) -> PgErrorKind {
    if let Some(code) = e.code() {
        return kind_of(code);
    }
    if e.is_closed() {
        return PgErrorKind::Unavailable;
    }
    // An I/O error anywhere in the chain (reset, refused, timed out) is a lost connection.
    let mut source = e.source();
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return PgErrorKind::Unavailable;
        }
        source = s.source();
    }
    PgErrorKind::Other
}

/// The kind of a SQLSTATE.
fn kind_of(code: &SqlState) -> PgErrorKind {
    let text = code.code();
    if *code == SqlState::UNIQUE_VIOLATION {
        PgErrorKind::UniqueViolation
    } else if *code == SqlState::FOREIGN_KEY_VIOLATION {
        PgErrorKind::ForeignKeyViolation
    } else if *code == SqlState::CHECK_VIOLATION || *code == SqlState::NOT_NULL_VIOLATION {
        PgErrorKind::CheckViolation
    } else if *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
    {
        PgErrorKind::Retryable
    } else if text.starts_with("08")
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::TOO_MANY_CONNECTIONS
    {
        PgErrorKind::Unavailable
    } else if *code == SqlState::DISK_FULL {
        PgErrorKind::DiskFull
    } else if *code == SqlState::QUERY_CANCELED {
        PgErrorKind::Canceled
    } else {
        PgErrorKind::Other
    }
}

impl From<postgres::Error> for PgFailure {
    fn from(e: postgres::Error) -> PgFailure {
        PgFailure {
            kind: classify(&e),
            code: e.code().map(|c| c.code().to_string()),
            message: describe(&e),
        }
    }
}

impl From<postgres::Error> for StorageError {
    /// Constraint violations become [`StorageError::Constraint`] (so
    /// [`StorageError::is_constraint_violation`] answers as for SQLite's); every other error is
    /// [`StorageError::Postgres`].
    fn from(e: postgres::Error) -> StorageError {
        into_storage(PgFailure::from(e))
    }
}

/// The [`StorageError`] of a classified failure: constraint violations are
/// [`StorageError::Constraint`], the rest [`StorageError::Postgres`].
pub(crate) fn into_storage(failure: PgFailure) -> StorageError {
    match failure.kind {
        PgErrorKind::UniqueViolation
        | PgErrorKind::ForeignKeyViolation
        | PgErrorKind::CheckViolation => StorageError::Constraint(failure.message),
        _ => StorageError::Postgres(failure),
    }
}

/// The error's text with its sources (tokio-postgres' `Display` of a server error is only
/// "db error"; the server's message is its source).
fn describe(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_the_kinds_the_storage_layer_acts_on() {
        for (code, kind) in [
            ("23505", PgErrorKind::UniqueViolation),
            ("23503", PgErrorKind::ForeignKeyViolation),
            ("23514", PgErrorKind::CheckViolation),
            ("23502", PgErrorKind::CheckViolation),
            ("40001", PgErrorKind::Retryable),
            ("40P01", PgErrorKind::Retryable),
            ("08006", PgErrorKind::Unavailable),
            ("57P01", PgErrorKind::Unavailable),
            ("57P03", PgErrorKind::Unavailable),
            ("25006", PgErrorKind::Other),
            ("53100", PgErrorKind::DiskFull),
            ("57014", PgErrorKind::Canceled),
            ("42P01", PgErrorKind::Other),
        ] {
            assert_eq!(kind_of(&SqlState::from_code(code)), kind, "{code}");
        }
    }
}
