//! The kit's one error type.

use std::time::Duration;

/// Why a step of the kit failed. Tests usually turn it into a panic; teos-bench and the demo report
/// it.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    /// A condition did not hold within its deadline ([`crate::wait_for`]).
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// teosd exited (or closed its log) before doing what was waited for.
    #[error("teosd exited before {what} ({status}); see its log above")]
    Exited {
        /// What was waited for.
        what: String,
        /// Its exit status, or "log closed" when only its stderr ended.
        status: String,
    },
    /// The teosd child process is no longer there to act on (already stopped or killed).
    #[error("teosd is not running")]
    NotRunning,
    /// File system or process trouble (temp dirs, config files, spawning, signals).
    #[error("{what}: {source}")]
    Io {
        /// The step that failed.
        what: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// bitcoind-sim could not start, restart, accept a transaction or build one.
    #[error("bitcoind-sim: {0}")]
    Sim(String),
    /// A call to the admin gRPC API failed (connection, TLS, or the tower's answer).
    #[error("admin API: {0}")]
    Admin(String),
}

impl KitError {
    /// A [`KitError::Io`] naming the failed step.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> KitError {
        KitError::Io {
            what: what.into(),
            source,
        }
    }

    /// A [`KitError::Sim`] from any displayable simulator error.
    pub fn sim(e: impl std::fmt::Display) -> KitError {
        KitError::Sim(e.to_string())
    }
}
