//! The single writer thread and its group commit.
//!
//! Every write goes through one `rusqlite::Connection` owned by one std thread. The thread blocks for
//! the first queued op, opens a transaction (`BEGIN IMMEDIATE`), runs that op and then every op already
//! queued (up to [`GROUP_CAP`]) in the same transaction, each inside its own SAVEPOINT, then COMMITs
//! once (one fsync with `synchronous=FULL`) and only then answers the ops that succeeded. While one
//! group is being fsync'd, new ops queue up and form the next group, so N concurrent writers share
//! far fewer than N fsyncs.
//!
//! Failure rules: an op's `Err` (or panic) rolls back its savepoint only and is answered at once; a
//! failed COMMIT answers every pending op of the group with [`StorageError::CommitFailed`]; if SQLite
//! itself rolled the group transaction back (possible after `SQLITE_FULL`/`SQLITE_IOERR`), the
//! group's pending ops get [`StorageError::RolledBack`]. The thread never exits on an SQL error.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};

use rusqlite::Connection;
use tracing::{debug, warn};

use super::error::StorageError;

/// Most write ops in one group transaction (one COMMIT); bounds the latency of the first op of a group.
pub const GROUP_CAP: usize = 1024;
/// Savepoint name wrapping each op; distinctive so it does not clash with an op's own savepoints.
const SAVEPOINT: &str = "teosd_op";

/// A queued write op with its reply channel, type-erased.
pub(crate) trait Job: Send {
    /// Runs the op inside a savepoint. Answers an `Err` at once and returns `None`; on `Ok` returns the
    /// reply still to be sent once the group's COMMIT is known.
    fn run(self: Box<Self>, conn: &Connection) -> Option<Box<dyn Pending>>;
    /// Answers the op with `err` without running it.
    fn abort(self: Box<Self>, err: StorageError);
}

/// The reply of an op that succeeded, waiting for its group's COMMIT.
pub(crate) trait Pending: Send {
    /// Sends the op's value if the commit succeeded, else `E::from(err)`.
    fn finish(self: Box<Self>, commit: Result<(), &StorageError>);
}

/// A message to the writer thread.
pub(crate) enum Msg {
    /// Run a write op.
    Op(Box<dyn Job>),
    /// Finish the queued ops, checkpoint the WAL, close the connection, answer, exit.
    Close(SyncSender<Result<(), StorageError>>),
}

/// Counters the writer shares with the [`Store`](super::Store) handles (for tests and metrics).
#[derive(Default)]
pub(crate) struct Counters {
    /// Successful group COMMITs.
    pub(crate) commits: AtomicU64,
    /// Messages sent to the writer and not yet taken by it.
    pub(crate) queued: AtomicUsize,
}

/// A write op `F` returning `Result<T, E>` and the function that delivers its result.
pub(crate) struct OpJob<F, T, E> {
    pub(crate) op: F,
    pub(crate) reply: Box<dyn FnOnce(Result<T, E>) + Send>,
}

/// The value of a successful op, waiting for the group's COMMIT.
struct PendingReply<T, E> {
    value: T,
    reply: Box<dyn FnOnce(Result<T, E>) + Send>,
}

impl<F, T, E> Job for OpJob<F, T, E>
where
    F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StorageError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Option<Box<dyn Pending>> {
        let OpJob { op, reply } = *self;
        if let Err(e) = conn.execute_batch(&format!("SAVEPOINT {SAVEPOINT}")) {
            reply(Err(E::from(StorageError::Sqlite(e))));
            return None;
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| op(conn)))
            .unwrap_or_else(|panic| Err(E::from(StorageError::OpPanicked(panic_message(&panic)))));
        match outcome {
            Ok(value) => match conn.execute_batch(&format!("RELEASE {SAVEPOINT}")) {
                Ok(()) => Some(Box::new(PendingReply { value, reply })),
                Err(e) => {
                    rollback_savepoint(conn);
                    reply(Err(E::from(StorageError::Sqlite(e))));
                    None
                }
            },
            Err(e) => {
                rollback_savepoint(conn);
                reply(Err(e));
                None
            }
        }
    }

    fn abort(self: Box<Self>, err: StorageError) {
        (self.reply)(Err(E::from(err)));
    }
}

impl<T, E> Pending for PendingReply<T, E>
where
    T: Send + 'static,
    E: From<StorageError> + Send + 'static,
{
    fn finish(self: Box<Self>, commit: Result<(), &StorageError>) {
        match commit {
            Ok(()) => (self.reply)(Ok(self.value)),
            Err(err) => (self.reply)(Err(E::from(err.duplicate()))),
        }
    }
}

/// Undoes the writes of the current op. If even that fails, rolls the whole group back (the writer
/// notices through `is_autocommit` and fails the group's other ops).
fn rollback_savepoint(conn: &Connection) {
    if conn.is_autocommit() {
        return; // SQLite already ended the transaction.
    }
    let sql = format!("ROLLBACK TO {SAVEPOINT}; RELEASE {SAVEPOINT}");
    if let Err(e) = conn.execute_batch(&sql) {
        warn!(error = %e, "rolling back an op's savepoint failed; rolling back its group");
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            warn!(error = %e, "rolling back the group failed");
        }
    }
}

/// The text of a panic payload.
fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) rx: Receiver<Msg>,
    pub(crate) counters: Arc<Counters>,
}

impl Writer {
    /// The thread body: runs groups until a `Close` message arrives or every sender is gone, then
    /// rejects late ops and closes the connection.
    pub(crate) fn run(self) {
        let mut close_reply = None;
        while let Ok(msg) = self.rx.recv() {
            self.counters.queued.fetch_sub(1, Ordering::Relaxed);
            match msg {
                Msg::Close(reply) => {
                    close_reply = Some(reply);
                    break;
                }
                Msg::Op(job) => {
                    crate::thread::fault_point(); // test-only fault injection (debug builds)
                    if let Some(reply) = self.run_group(job) {
                        close_reply = Some(reply);
                        break;
                    }
                }
            }
        }
        // Ops sent after the close began: they were never accepted.
        while let Ok(msg) = self.rx.try_recv() {
            self.counters.queued.fetch_sub(1, Ordering::Relaxed);
            match msg {
                Msg::Op(job) => job.abort(StorageError::Closed),
                Msg::Close(reply) => {
                    let _ = reply.send(Ok(()));
                }
            }
        }
        let Writer { conn, .. } = self;
        let result = shutdown(conn);
        if let Some(reply) = close_reply {
            // The closer may have given up waiting; nothing else to tell.
            let _ = reply.send(result);
        } else if let Err(e) = result {
            warn!(error = %e, "closing the database failed");
        }
    }

    /// Runs `first` and the ops queued behind it as one transaction. Returns the reply channel of a
    /// `Close` message met while batching (the group is committed first).
    fn run_group(&self, first: Box<dyn Job>) -> Option<SyncSender<Result<(), StorageError>>> {
        if !self.conn.is_autocommit() {
            // A ROLLBACK after an earlier failure failed too; try again before starting over.
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                warn!(error = %e, "rollback of a leftover transaction failed");
            }
        }
        if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            warn!(error = %e, "BEGIN failed; failing the op");
            first.abort(StorageError::Sqlite(e));
            return None;
        }
        let mut pending: Vec<Box<dyn Pending>> = Vec::new();
        let mut ops = 0usize;
        let mut next = Some(first);
        let mut close = None;
        while let Some(job) = next.take() {
            ops += 1;
            if let Some(p) = job.run(&self.conn) {
                pending.push(p);
            }
            if self.conn.is_autocommit() {
                warn!("the group transaction was rolled back inside an op");
                finish_all(pending, Err(&StorageError::RolledBack));
                return None;
            }
            if ops >= GROUP_CAP {
                break;
            }
            match self.rx.try_recv() {
                Ok(Msg::Op(job)) => {
                    self.counters.queued.fetch_sub(1, Ordering::Relaxed);
                    next = Some(job);
                }
                Ok(Msg::Close(reply)) => {
                    self.counters.queued.fetch_sub(1, Ordering::Relaxed);
                    close = Some(reply);
                }
                Err(_) => {}
            }
        }
        self.commit(pending, ops);
        close
    }

    /// COMMITs the group and answers its pending ops.
    fn commit(&self, pending: Vec<Box<dyn Pending>>, ops: usize) {
        match self.conn.execute_batch("COMMIT") {
            Ok(()) => {
                self.counters.commits.fetch_add(1, Ordering::Relaxed);
                debug!(ops, "group committed");
                finish_all(pending, Ok(()));
            }
            Err(e) => {
                warn!(error = %e, ops, "group commit failed");
                if !self.conn.is_autocommit()
                    && let Err(e) = self.conn.execute_batch("ROLLBACK")
                {
                    warn!(error = %e, "rollback after failed commit failed");
                }
                finish_all(pending, Err(&StorageError::CommitFailed(e)));
            }
        }
    }
}

/// Answers every pending op with the commit outcome, in submission order.
fn finish_all(pending: Vec<Box<dyn Pending>>, commit: Result<(), &StorageError>) {
    for p in pending {
        p.finish(commit);
    }
}

/// Checkpoints the WAL into the database file, truncating it, and closes the connection.
fn shutdown(conn: Connection) -> Result<(), StorageError> {
    // Returns (busy, wal pages, checkpointed pages); busy=1 when a reader still holds an old snapshot,
    // in which case SQLite finishes the checkpoint when the last connection closes.
    let checkpoint: Result<i64, rusqlite::Error> =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0));
    if let Err(e) = &checkpoint {
        warn!(error = %e, "WAL checkpoint at close failed");
    }
    conn.close().map_err(|(_, e)| StorageError::Sqlite(e))?;
    checkpoint.map(|_| ()).map_err(StorageError::Sqlite)
}
