//! The SQLite backend: the database file, its writer thread with group commit (`writer.rs`) and its
//! read pools (`readers.rs`). [`Store`](super::Store) dispatches to it; domain code reaches it only
//! through [`Tx`](super::Tx) ([`SqliteTx`](super::SqliteTx) over its connections).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, ThreadId};

use rusqlite::Connection;
use tracing::warn;

use super::checkpointer::Checkpointer;
use super::connection::open_writer;
use super::error::StorageError;
use super::readers::ReadPool;
use super::writer::{Counters, Job, Msg, OpJob, Writer};

/// Number of read-only connections of the shared pool ([`Store::read`](super::Store::read): public
/// and admin API).
const READERS: usize = 4;

/// Number of read-only connections reserved for [`Store::read_blocking`](super::Store::read_blocking)
/// (the block processor, the metrics thread, startup): two, so the block processor never waits
/// behind a public-API read, and at most behind one metrics count.
const RESERVED_READERS: usize = 2;

/// The SQLite backend of a [`Store`](super::Store): one writer thread with group commit
/// (`writer.rs`) and two pools of read-only connections (`readers.rs`), on one database file.
pub(crate) struct SqliteDb {
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
    /// Commits and queue depth, shared with the writer thread.
    counters: Arc<Counters>,
    /// Connections of [`Store::read`](super::Store::read) (async callers: the public and admin APIs).
    readers: ReadPool,
    /// One permit per connection of `readers`: async reads wait here, without taking a blocking
    /// thread, until a connection is theirs. Closed by `close`.
    read_slots: Arc<tokio::sync::Semaphore>,
    /// Connections of [`Store::read_blocking`](super::Store::read_blocking), never taken by async reads.
    reserved: ReadPool,
    /// Checkpoints the WAL off the writer thread (`checkpointer.rs`); stopped before the writer's
    /// final checkpoint at close.
    checkpointer: Mutex<Checkpointer>,
}

impl SqliteDb {
    /// Opens or creates the database at `path`; see [`Store::open`](super::Store::open).
    pub(crate) fn open(path: &Path) -> Result<SqliteDb, StorageError> {
        create_file(path)?;
        let conn = open_writer(path)?;
        // Checkpoints run on the checkpointer's thread, not inside the writer's COMMITs.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpointer = Checkpointer::start(path)?;
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
        Ok(SqliteDb {
            path: path.to_path_buf(),
            tx,
            closed: AtomicBool::new(false),
            writer_thread: handle.thread().id(),
            writer: Mutex::new(Some(handle)),
            counters,
            readers,
            read_slots: Arc::new(tokio::sync::Semaphore::new(READERS)),
            reserved,
            checkpointer: Mutex::new(checkpointer),
        })
    }

    /// Runs `op` on the writer (see [`Store::write`](super::Store::write)); awaits its group's
    /// COMMIT.
    pub(crate) async fn write<T, E, F>(&self, what: &'static str, op: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let reply = Box::new(move |result| {
            let _ = tx.send(result); // the caller may have stopped waiting
        });
        self.submit(what, Box::new(OpJob { op, reply }))?;
        rx.await
            .unwrap_or_else(|_| Err(E::from(StorageError::Closed)))
    }

    /// Runs `op` on the writer, blocking the calling thread until its group's COMMIT.
    pub(crate) fn write_blocking<T, E, F>(&self, what: &'static str, op: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let reply = Box::new(move |result| {
            let _ = tx.send(result);
        });
        self.submit(what, Box::new(OpJob { op, reply }))?;
        rx.recv()
            .unwrap_or_else(|_| Err(E::from(StorageError::Closed)))
    }

    /// Runs `op` on the shared read pool (see [`Store::read`](super::Store::read)).
    pub(crate) async fn read<T, E, F>(self: &Arc<Self>, op: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        let slot = self
            .read_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| E::from(StorageError::Closed))?;
        let db = self.clone();
        let read = tokio::task::spawn_blocking(move || {
            let result = db.readers.run(op);
            drop(slot);
            result
        });
        match read.await {
            Ok(result) => result,
            Err(join) => Err(E::from(StorageError::OpPanicked(join.to_string()))),
        }
    }

    /// Runs `op` on the reserved read pool, on the calling thread.
    pub(crate) fn read_blocking<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E>,
        E: From<StorageError>,
    {
        self.reserved.run(op)
    }

    /// Size in bytes of the database file plus its WAL; missing files count as 0.
    pub(crate) fn disk_size(&self) -> u64 {
        let mut wal = OsString::from(self.path.as_os_str());
        wal.push("-wal");
        [self.path.as_os_str(), wal.as_os_str()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Successful group COMMITs since open.
    pub(crate) fn commit_count(&self) -> u64 {
        self.counters.commits.load(Ordering::Relaxed)
    }

    /// Write ops queued and not yet taken by the writer thread.
    pub(crate) fn queued_ops(&self) -> usize {
        self.counters.queued.load(Ordering::Relaxed)
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a job for the writer thread; `what` names the caller in
    /// [`StorageError::OnWriterThread`].
    fn submit(&self, what: &'static str, job: Box<dyn Job>) -> Result<(), StorageError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        if thread::current().id() == self.writer_thread {
            return Err(StorageError::OnWriterThread(what));
        }
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(Msg::Op(job)).is_err() {
            // The writer thread has exited (closed): the job is dropped unanswered.
            self.counters.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(StorageError::Closed);
        }
        Ok(())
    }

    /// See [`Store::close`](super::Store::close).
    pub(crate) fn close(&self) -> Result<(), StorageError> {
        if thread::current().id() == self.writer_thread {
            return Err(StorageError::OnWriterThread("Store::close"));
        }
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let Some(handle) = writer.take() else {
            return Ok(());
        };
        self.closed.store(true, Ordering::Release);
        self.checkpointer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stop();
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

impl Drop for SqliteDb {
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
