//! The one error type of the benchmark scenarios.

/// Why a scenario could not run to the end. Every variant says which step failed; a benchmark that
/// stops with an error reports no figure.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// File system or process trouble (temp dirs, spawning teosd, reading `/proc`).
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// An HTTP exchange with the tower failed below the protocol (connect, send, read).
    #[error("HTTP: {0}")]
    Http(String),
    /// The tower answered a request with something other than the expected 200 body.
    #[error("tower answered {status} to {what}: {body}")]
    Refused {
        what: String,
        status: u16,
        body: String,
    },
    /// The tower database (prefill, durability check).
    #[error("storage: {0}")]
    Storage(#[from] teosd::storage::StorageError),
    /// A PostgreSQL server of a fleet run (creating its database, the bulk prefill, counting rows).
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] postgres::Error),
    /// bitcoind-sim could not start, mine or build a transaction.
    #[error("bitcoind-sim: {0}")]
    Sim(String),
    /// teos-testkit: starting bitcoind-sim or teosd, waiting for something in time, reading teosd's
    /// events.
    #[error(transparent)]
    Kit(#[from] teos_testkit::KitError),
    /// teosd exited while the scenario still needed it.
    #[error("teosd exited unexpectedly ({0}); see its log above")]
    TowerExited(String),
    /// A measured fact contradicts what the scenario relies on (e.g. a lost receipt).
    #[error("{0}")]
    Check(String),
}

impl From<bitcoind_sim::fillers::FillerError> for BenchError {
    fn from(e: bitcoind_sim::fillers::FillerError) -> Self {
        BenchError::Sim(e.to_string())
    }
}

impl BenchError {
    /// An [`BenchError::Io`] naming the failed step.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> BenchError {
        BenchError::Io {
            what: what.into(),
            source,
        }
    }

    /// A [`BenchError::Sim`] from any displayable simulator error.
    pub fn sim(e: impl std::fmt::Display) -> BenchError {
        BenchError::Sim(e.to_string())
    }
}
