//! [`Store`]: the handle every component uses to reach the database.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, ThreadId};

use rusqlite::Connection;
use tracing::warn;

use super::connection::open_writer;
use super::error::StorageError;
use super::readers::ReadPool;
use super::sqlite_tx::SqliteTx;
use super::tx::Tx;
use super::writer::{Counters, Job, Msg, OpJob, Writer};

/// Number of read-only connections of the shared pool ([`Store::read`]: public and admin API).
const READERS: usize = 4;

/// Number of read-only connections reserved for [`Store::read_blocking`] (the block processor, the
/// metrics thread, startup): two, so the block processor never waits behind a public-API read, and
/// at most behind one metrics count.
const RESERVED_READERS: usize = 2;

/// Handle to the tower database: one writer thread with group commit plus two pools of read-only
/// connections (a shared one for async readers, a reserved one for the pipeline threads). Cheap to clone (an `Arc` inside); `Send + Sync`. The database closes when
/// [`close`](Store::close) is called or the last clone is dropped (dropping the last clone blocks
/// like `close` until the queued ops are committed).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// State shared by all clones of a [`Store`].
struct Inner {
    /// The database file (the WAL is `<path>-wal`).
    path: PathBuf,
    /// Queue to the writer thread; unbounded (callers are bounded by their own concurrency limits).
    tx: Sender<Msg>,
    /// Set once `close` starts: new ops are refused without queueing.
    closed: AtomicBool,
    /// The writer thread, taken by the first `close`; the lock also serialises concurrent closes.
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Id of the writer thread, to refuse calls that would wait for the writer from inside it.
    writer_thread: ThreadId,
    counters: Arc<Counters>,
    /// Connections of [`Store::read`] (async callers: the public and admin APIs).
    readers: ReadPool,
    /// One permit per connection of `readers`: async reads wait here, without taking a blocking
    /// thread, until a connection is theirs. Closed by `close`.
    read_slots: Arc<tokio::sync::Semaphore>,
    /// Connections of [`Store::read_blocking`], never taken by async reads.
    reserved: ReadPool,
}

impl Store {
    /// Opens or creates the database at `path` (the caller passes `<datadir>/<network>/teos_db.sql3`;
    /// missing parent directories are created, a new file gets mode 0600 because it holds the tower's
    /// secret key), applies pending migrations from `migrations/`, sets the pragmas (WAL,
    /// `synchronous=FULL`, `foreign_keys=ON`), starts the writer thread and opens 4 + 2 read
    /// connections (shared and reserved pools).
    ///
    /// Errors: [`StorageError::Io`] (directory or file creation), [`StorageError::Corrupt`] (not a
    /// SQLite file), [`StorageError::Migration`] (migration failed, or the file comes from a newer
    /// teosd), [`StorageError::Sqlite`] (anything else).
    pub fn open(path: &Path) -> Result<Store, StorageError> {
        create_file(path)?;
        let conn = open_writer(path)?;
        let readers = ReadPool::open(path.to_path_buf(), READERS)?;
        let reserved = ReadPool::open(path.to_path_buf(), RESERVED_READERS)?;
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let writer = Writer {
            conn,
            rx,
            counters: counters.clone(),
        };
        // A panic of the writer outside an op (ops' panics are caught) stops the tower.
        let handle = crate::thread::spawn("teosd-db-writer", move || {
            writer.run();
            Ok(())
        })?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                tx,
                closed: AtomicBool::new(false),
                writer_thread: handle.thread().id(),
                writer: Mutex::new(Some(handle)),
                counters,
                readers,
                read_slots: Arc::new(tokio::sync::Semaphore::new(READERS)),
                reserved,
            }),
        })
    }

    /// Runs `op` on the writer thread inside the current group transaction, wrapped in a SAVEPOINT.
    ///
    /// `Err` from `op` (or a panic, as [`StorageError::OpPanicked`]) rolls back only this op's
    /// savepoint and is returned at once. `Ok` is returned only after the group's COMMIT succeeded, so
    /// the writes are durable (fsync'd). If the COMMIT fails, every op of the group gets
    /// `E::from(StorageError::CommitFailed(..))` (or [`StorageError::RolledBack`]). Ops run strictly in
    /// submission order. Dropping the returned future does not cancel an op already queued.
    ///
    /// Errors before running: [`StorageError::Closed`], [`StorageError::OnWriterThread`].
    pub async fn write<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        self.write_sqlite(move |conn| op(&mut SqliteTx::new(conn)))
            .await
    }

    /// [`write`](Store::write) for callers on plain threads (the block processor): blocks the calling
    /// thread until the op's group committed. Must not be called from an async worker thread (it would
    /// block it); from inside a write op it returns [`StorageError::OnWriterThread`].
    pub fn write_blocking<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        self.write_sqlite_blocking(move |conn| op(&mut SqliteTx::new(conn)))
    }

    /// Runs `op` on a connection of the shared read pool on tokio's blocking pool (`spawn_blocking`),
    /// inside a read transaction: all its queries see the same committed snapshot. Writes fail. At
    /// most 4 such reads run at once; further callers wait (first come, first served) without
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
        self.read_sqlite(move |conn| op(&mut SqliteTx::new(conn)))
            .await
    }

    /// Runs `op` on the calling thread (blocking) on one of the 2 reserved read connections, inside a
    /// read transaction, for the block processor and other plain threads (metrics, startup): async
    /// readers ([`read`](Store::read)) never take these connections, so however busy the public API
    /// is, this waits at most for another reserved-pool read. Must not be called from an async
    /// worker thread. A panic in `op` propagates to the caller; the connection goes back to the pool.
    /// Called from inside a write op it works but sees the last committed state, not the writes of
    /// the current group: read through the op's own [`Tx`] there instead.
    pub fn read_blocking<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        self.read_sqlite_blocking(move |conn| op(&mut SqliteTx::new(conn)))
    }

    /// SQLite only: [`write`](Store::write) with the writer's raw connection, for code that is about
    /// the SQLite file itself (tests of the per-table query modules, schema experiments in tests).
    /// Domain rules go through [`write`](Store::write). `op` must not run transaction statements
    /// (BEGIN/COMMIT/ROLLBACK) itself.
    pub async fn write_sqlite<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let reply = Box::new(move |result| {
            let _ = tx.send(result); // the caller may have stopped waiting
        });
        self.inner.submit(Box::new(OpJob { op, reply }))?;
        rx.await
            .unwrap_or_else(|_| Err(E::from(StorageError::Closed)))
    }

    /// SQLite only: [`write_blocking`](Store::write_blocking) with the writer's raw connection (see
    /// [`write_sqlite`](Store::write_sqlite)).
    pub fn write_sqlite_blocking<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let reply = Box::new(move |result| {
            let _ = tx.send(result);
        });
        self.inner.submit(Box::new(OpJob { op, reply }))?;
        rx.recv()
            .unwrap_or_else(|_| Err(E::from(StorageError::Closed)))
    }

    /// SQLite only: [`read`](Store::read) with a raw read connection (see
    /// [`write_sqlite`](Store::write_sqlite)).
    pub async fn read_sqlite<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        let slot = self
            .inner
            .read_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| E::from(StorageError::Closed))?;
        let inner = self.inner.clone();
        let read = tokio::task::spawn_blocking(move || {
            let result = inner.readers.run(op);
            drop(slot);
            result
        });
        match read.await {
            Ok(result) => result,
            Err(join) => Err(E::from(StorageError::OpPanicked(join.to_string()))),
        }
    }

    /// SQLite only: [`read_blocking`](Store::read_blocking) with a raw reserved read connection (see
    /// [`write_sqlite`](Store::write_sqlite)).
    pub fn read_sqlite_blocking<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        self.inner.reserved.run(op)
    }

    /// Stops accepting ops, runs and commits the ones already queued, checkpoints the WAL into the
    /// database file, closes all connections and joins the writer thread. Idempotent: later calls
    /// return `Ok(())`. Ops submitted afterwards fail with [`StorageError::Closed`].
    ///
    /// Errors: the final checkpoint/close failed ([`StorageError::Sqlite`]), the writer thread had
    /// died ([`StorageError::OpPanicked`]), or the call was made from inside a write op
    /// ([`StorageError::OnWriterThread`]).
    pub fn close(&self) -> Result<(), StorageError> {
        self.inner.close()
    }

    /// Size in bytes of the database file plus its WAL (`<path>-wal`), for metrics. Missing files count
    /// as 0.
    pub fn disk_size(&self) -> u64 {
        let mut wal = OsString::from(self.inner.path.as_os_str());
        wal.push("-wal");
        [self.inner.path.as_os_str(), wal.as_os_str()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Number of group COMMITs that succeeded since [`open`](Store::open) (for tests and metrics:
    /// ops written / commits = average group size).
    pub fn commit_count(&self) -> u64 {
        self.inner.counters.commits.load(Ordering::Relaxed)
    }

    /// Number of write ops queued and not yet taken by the writer thread (queue depth, for tests
    /// and metrics).
    pub fn queued_ops(&self) -> usize {
        self.inner.counters.queued.load(Ordering::Relaxed)
    }

    /// The database file this store was opened on.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Inner {
    /// Queues a job for the writer thread.
    fn submit(&self, job: Box<dyn Job>) -> Result<(), StorageError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        if thread::current().id() == self.writer_thread {
            return Err(StorageError::OnWriterThread("Store::write"));
        }
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Msg::Op(job)).is_err() {
            // The writer thread has exited (closed): the job is dropped unanswered.
            self.counters.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(StorageError::Closed);
        }
        Ok(())
    }

    /// See [`Store::close`].
    fn close(&self) -> Result<(), StorageError> {
        if thread::current().id() == self.writer_thread {
            return Err(StorageError::OnWriterThread("Store::close"));
        }
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let Some(handle) = writer.take() else {
            return Ok(());
        };
        self.closed.store(true, Ordering::Release);
        self.read_slots.close();
        self.readers.close();
        self.reserved.close();
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        let result = match self.tx.send(Msg::Close(reply_tx)) {
            Ok(()) => reply_rx.recv().unwrap_or_else(|_| {
                Err(StorageError::OpPanicked("the writer thread exited".into()))
            }),
            Err(_) => Err(StorageError::OpPanicked("the writer thread exited".into())),
        };
        if handle.join().is_err() {
            return Err(StorageError::OpPanicked(
                "the writer thread panicked".into(),
            ));
        }
        result
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // On the writer thread (the last handle was captured by an op) the writer cannot be joined;
        // it exits by itself once it sees that every sender is gone.
        if thread::current().id() == self.writer_thread {
            return;
        }
        if let Err(e) = self.close() {
            warn!(error = %e, "closing the database on drop failed");
        }
    }
}

/// Creates the parent directories and, for a new database, an empty file with mode 0600 (SQLite gives
/// its `-wal`/`-shm` files the same mode). An empty file is a valid empty SQLite database.
fn create_file(path: &Path) -> Result<(), StorageError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e.into()),
    }
}
