//! The SQLite backend's checkpointer: moves WAL frames into the database file on a thread of its own,
//! so the writer thread spends its time on commands only.
//!
//! SQLite's default checkpoints run inside the COMMIT that crosses `wal_autocheckpoint` (1,000 pages),
//! on the writer: every page modified since is copied to the database file while the group waits
//! (BENCHMARKS.md "add_appointment throughput": the larger the WAL allowed, the less writer CPU per
//! appointment, but the longer the stall of the COMMIT that checkpoints). Here the writer runs with
//! `wal_autocheckpoint = 0` and this thread runs `PRAGMA wal_checkpoint(PASSIVE)` every
//! [`CHECKPOINT_EVERY`] on its own connection: PASSIVE never waits for the writer or the readers and
//! never makes them wait (it copies what no reader still needs), and a page modified by many commits
//! within the interval is copied once. The writer starts the WAL over once a checkpoint has copied
//! all of it. Durability is unchanged: a COMMIT is durable in the WAL (`synchronous=FULL`); the
//! checkpoint only moves committed pages.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tracing::{debug, warn};

use super::error::StorageError;
use crate::shutdown::Shutdown;

/// How often the WAL is checkpointed.
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// The running checkpointer thread (`teosd-db-checkpoint`).
pub(crate) struct Checkpointer {
    stop: Arc<Shutdown>,
    handle: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens its own connection to the database at `path` and starts the thread.
    ///
    /// Errors: the connection cannot be opened; the OS cannot start a thread.
    pub(crate) fn start(path: &Path) -> Result<Checkpointer, StorageError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let stop = Arc::new(Shutdown::new());
        let flag = stop.clone();
        let handle = crate::thread::spawn("teosd-db-checkpoint", move || {
            while !flag.wait_timeout(CHECKPOINT_EVERY) {
                checkpoint(&conn);
            }
            Ok(())
        })?;
        Ok(Checkpointer {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the thread and waits for it (before the writer's final checkpoint at close).
    pub(crate) fn stop(&mut self) {
        self.stop.trigger();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One PASSIVE checkpoint; a failure is logged (the next one tries again; the WAL only grows
/// meanwhile).
fn checkpoint(conn: &Connection) {
    // (busy, pages in the WAL, pages checkpointed)
    let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
        ))
    });
    match result {
        Ok((_, wal, copied)) => debug!(wal, copied, "WAL checkpoint"),
        Err(e) => warn!(error = %e, "WAL checkpoint failed"),
    }
}
