//! A small pool of read-only connections. With WAL, readers see the last committed state and run
//! concurrently with the writer (<https://sqlite.org/wal.html>, "Concurrency"). [`Store`](super::Store)
//! keeps two: a shared one for async reads (gated by a semaphore, so callers wait without a thread)
//! and a reserved one for `read_blocking` (the block processor), which async reads never take.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};

use rusqlite::Connection;
use tracing::warn;

use super::connection::open_reader;
use super::error::StorageError;

/// The pool's connections.
struct PoolState {
    /// Connections not in use.
    idle: Vec<Connection>,
    /// Connections that exist (idle + leased).
    total: usize,
    /// Set by [`ReadPool::close`]: no new leases, returned connections are dropped.
    closed: bool,
}

/// Read-only connections shared by all readers; a read waits when all are leased.
pub(crate) struct ReadPool {
    path: PathBuf,
    size: usize,
    state: Mutex<PoolState>,
    returned: Condvar,
}

impl ReadPool {
    /// Opens `size` read-only connections to `path` (the writer must have created the database).
    pub(crate) fn open(path: PathBuf, size: usize) -> Result<ReadPool, StorageError> {
        let idle = (0..size)
            .map(|_| open_reader(&path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ReadPool {
            path,
            size,
            state: Mutex::new(PoolState {
                total: idle.len(),
                idle,
                closed: false,
            }),
            returned: Condvar::new(),
        })
    }

    /// Runs `op` on a leased connection inside a read transaction, so every query of the op sees the
    /// same committed snapshot.
    pub(crate) fn run<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E>,
        E: From<StorageError>,
    {
        let lease = Lease {
            pool: self,
            conn: Some(self.take()?),
        };
        let conn = lease.conn()?;
        conn.execute_batch("BEGIN DEFERRED")
            .map_err(|e| E::from(StorageError::Sqlite(e)))?;
        op(conn)
        // `lease` ends the read transaction and returns the connection when dropped.
    }

    /// Drops the idle connections and refuses new leases; leased ones are dropped when returned.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.total -= state.idle.len();
        state.idle.clear();
        self.returned.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // No code that can panic runs under this lock; recover the state if it ever happens.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for an idle connection, reopening one if connections were lost.
    fn take(&self) -> Result<Connection, StorageError> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return Err(StorageError::Closed);
            }
            if let Some(conn) = state.idle.pop() {
                return Ok(conn);
            }
            if state.total < self.size {
                state.total += 1;
                drop(state);
                let opened = open_reader(&self.path);
                if opened.is_err() {
                    self.lock().total -= 1;
                }
                return opened;
            }
            state = self
                .returned
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Takes back a connection; one whose transaction cannot be ended is dropped (and reopened on
    /// demand by [`take`](Self::take)).
    fn give_back(&self, conn: Connection) {
        let healthy = conn.is_autocommit() || {
            match conn.execute_batch("ROLLBACK") {
                Ok(()) => true,
                Err(e) => {
                    warn!(error = %e, "ending a read transaction failed; dropping the connection");
                    false
                }
            }
        };
        let mut state = self.lock();
        if healthy && !state.closed {
            state.idle.push(conn);
        } else {
            state.total -= 1;
        }
        self.returned.notify_one();
    }
}

/// A leased connection, returned to the pool on drop (also when the op panics).
struct Lease<'a> {
    pool: &'a ReadPool,
    conn: Option<Connection>,
}

impl Lease<'_> {
    fn conn<E: From<StorageError>>(&self) -> Result<&Connection, E> {
        self.conn
            .as_ref()
            .ok_or_else(|| E::from(StorageError::Closed))
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.give_back(conn);
        }
    }
}
