//! [`PgStore`]: the pool of PostgreSQL connections and the transaction runner (one PostgreSQL
//! transaction per unit of work, retried when that is safe, waiting out an unreachable database).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use postgres::{IsolationLevel, NoTls};
use r2d2_postgres::PostgresConnectionManager;

use super::super::command::{Command, Order};
use super::super::error::StorageError;
use super::super::tx::Tx;
use super::error::{PgErrorKind, PgFailure};

mod runner;
use super::url::{DatabaseUrl, PasswordEnv};

/// The connection manager: plain TCP (no TLS yet, docs/fleet.md "Transport").
type Manager = PostgresConnectionManager<NoTls>;

/// A connection borrowed from the pool; back to the pool when dropped (closed if it broke).
pub type PgConnection = r2d2::PooledConnection<Manager>;

/// The session advisory lock held while applying migrations ("teosmig1"), so instances starting
/// together do not apply them twice.
pub const MIGRATION_LOCK_KEY: i64 = 0x7465_6f73_6d69_6731;

/// Parameters of [`PgStore`].
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Most connections open at once (r2d2's `max_size`). Each blocking caller holds one for the
    /// length of its transaction.
    pub pool_size: u32,
    /// How long one connection attempt may take (TCP connect and authentication).
    pub connect_timeout: Duration,
    /// How long a unit of work waits for an unreachable database (down, restarting, failing over)
    /// before failing with [`StorageError::Unavailable`]; also how long [`PgStore::open`] waits for
    /// the first connection.
    pub unavailable_wait: Duration,
    /// How many times a transaction that lost a serialization conflict or a deadlock (SQLSTATE
    /// 40001, 40P01) is run again before its error is returned.
    pub conflict_retries: u32,
    /// `application_name` of the sessions (shown in `pg_stat_activity`), unless the URL sets one.
    pub application_name: String,
    /// The server ends a session of this store that stays idle this long inside a transaction
    /// (`idle_in_transaction_session_timeout`), releasing its locks: an instance frozen or cut off
    /// in the middle of a transaction (holding `chain_tip` `FOR SHARE`, a user row `FOR UPDATE`)
    /// cannot block the fleet for longer. Whole seconds, at least 1.
    pub idle_in_transaction_timeout: Duration,
}

impl Default for PgOptions {
    /// 8 connections, 5 s per connection attempt, 30 s of waiting for the database, 5 conflict
    /// retries, application name `teosd`, sessions idle in a transaction ended after 60 s.
    fn default() -> PgOptions {
        PgOptions {
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            unavailable_wait: Duration::from_secs(30),
            conflict_retries: 5,
            application_name: "teosd".into(),
            idle_in_transaction_timeout: Duration::from_secs(60),
        }
    }
}

/// Whether a unit of work writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `READ WRITE`, `READ COMMITTED`: what the storage functions are written for (conditional
    /// updates and row locks, module doc of [`super`]).
    Write,
    /// `READ ONLY`, `REPEATABLE READ`: one snapshot for the whole unit, as a SQLite read
    /// transaction sees. A read-only snapshot transaction never fails on serialization.
    Read,
}

/// One PostgreSQL transaction of a unit of work, handed to the closure of [`PgStore::write_retrying`] /
/// [`PgStore::read_retrying`]. It implements [`Tx`](crate::storage::Tx) (domain code takes it as
/// `&mut dyn Tx`); the per-table functions of [`super`] take it through [`PgTx::client`].
///
/// PostgreSQL aborts a transaction at its first failed statement (every later one fails until a
/// savepoint is rolled back to), and a COMMIT of an aborted transaction silently rolls back. So
/// the [`Tx`](crate::storage::Tx) methods remember a failure, and the runner refuses to report
/// success for a transaction that had one (unless [`Tx::rollback_savepoint`] cleared it). Errors
/// of statements run directly on [`PgTx::client`] are not seen: return them from the op.
///
/// [`Tx::rollback_savepoint`]: crate::storage::Tx::rollback_savepoint
pub struct PgTx<'a> {
    txn: postgres::Transaction<'a>,
    access: Access,
    /// The failure that aborted the transaction, if any.
    aborted: Option<Aborted>,
}

/// Why a transaction was aborted, as far as the runner needs to know.
#[derive(Clone, Debug)]
pub(crate) struct Aborted {
    /// Whether running the op again may succeed.
    class: RetryClass,
    /// The error, for the message if the op does not return it.
    error: String,
}

/// Whether a failed transaction may be run again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RetryClass {
    /// Serialization failure or deadlock: again at once (a few times).
    Conflict,
    /// The connection broke (nothing committed): again once the database is back.
    Unreachable,
    /// Anything else: never.
    Never,
}

impl<'a> PgTx<'a> {
    /// The transaction, for the query functions (`users::get(tx.client(), ..)`).
    pub fn client(&mut self) -> &mut postgres::Transaction<'a> {
        &mut self.txn
    }

    /// Whether this unit of work may write.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Notes a failed statement (called by the [`Tx`](crate::storage::Tx) methods on their
    /// result): any database error aborts the transaction; the storage layer's own refusals
    /// (`NotFound`, `SlotsOutOfRange`, a value that does not decode) do not.
    pub(crate) fn track<T>(&mut self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if let Err(e) = &result {
            let class = match e {
                StorageError::Postgres(f) => match f.kind {
                    PgErrorKind::Retryable => Some(RetryClass::Conflict),
                    PgErrorKind::Unavailable => Some(RetryClass::Unreachable),
                    _ => Some(RetryClass::Never),
                },
                StorageError::Constraint(_) => Some(RetryClass::Never),
                _ => None,
            };
            if let Some(class) = class {
                self.aborted = Some(Aborted {
                    class,
                    error: e.to_string(),
                });
            }
        }
        result
    }

    /// Forgets a noted failure (the savepoint before it was rolled back to).
    pub(crate) fn clear_abort(&mut self) {
        self.aborted = None;
    }
}

/// Handle to a PostgreSQL database used as the tower's storage: a pool of connections (r2d2) and a
/// runner that executes each unit of work as one transaction. Cheap to clone; `Send + Sync`.
///
/// Every method but the `_async` ones BLOCKS the calling thread (the synchronous `postgres` client
/// drives its own small runtime and panics on a tokio worker thread): call them from a dedicated
/// thread, or use [`PgStore::write_async`] / [`PgStore::read_async`], which run them on tokio's
/// blocking pool.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: r2d2::Pool<Manager>,
    /// Set by [`PgStore::close`]: new units of work are refused.
    closed: AtomicBool,
    /// The URL, password masked, for messages.
    shown: String,
    options: PgOptions,
    /// The epoch block commands are fenced with ([`PgStore::set_fence`]); [`NO_FENCE`] = none.
    fence: AtomicI64,
}

/// [`Inner::fence`] when this instance leads nothing: block commands are refused.
const NO_FENCE: i64 = i64::MIN;

impl PgStore {
    /// Connects to `url` (password from the URL, `PGPASSWORD` or the password file: see
    /// [`DatabaseUrl`]), waiting up to `options.unavailable_wait` for the database, applies the
    /// migrations of `migrations/postgresql/` under an advisory lock, and builds the pool.
    ///
    /// Blocks. Errors: [`StorageError::Unavailable`] (no connection within the wait: server down,
    /// wrong host, wrong password; the message names the URL with its password masked),
    /// [`StorageError::Migration`].
    pub fn open(url: &DatabaseUrl, options: PgOptions) -> Result<PgStore, StorageError> {
        let (mut config, warnings) = url.client_config(&PasswordEnv::from_process());
        for warning in warnings {
            tracing::warn!(event = "postgres_password_file_ignored", "{warning}");
        }
        if config.get_application_name().is_none() {
            config.application_name(&options.application_name);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        // See a dead server or a cut network in seconds, not after the kernel's defaults (two
        // hours of idle for keepalives, ~15 minutes of retransmissions for data in flight).
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(1))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(15));
        // The server's side of the same: it notices a dead client in seconds (its own keepalives,
        // default two hours), and ends a session stuck inside a transaction, so the locks of a
        // frozen or partitioned instance are released. Added to the URL's own `options`.
        let session = format!(
            "-c idle_in_transaction_session_timeout={}s -c tcp_keepalives_idle=5 \
             -c tcp_keepalives_interval=1 -c tcp_keepalives_count=3",
            options.idle_in_transaction_timeout.as_secs().max(1)
        );
        let combined = match config.get_options() {
            Some(theirs) if !theirs.trim().is_empty() => format!("{theirs} {session}"),
            _ => session,
        };
        config.options(combined);
        let config = postgres::Config::from(config);
        let shown = url.masked();

        migrate_with_wait(&config, &shown, options.unavailable_wait)?;

        let pool = r2d2::Pool::builder()
            .max_size(options.pool_size.max(1))
            .min_idle(Some(1))
            // No test query at checkout (a round trip per unit of work): a connection the server
            // closed fails at BEGIN, before the op runs, and the runner retries on another.
            .test_on_check_out(false)
            .connection_timeout(options.unavailable_wait.max(Duration::from_millis(100)))
            .error_handler(Box::new(LogConnectErrors::default()))
            .build_unchecked(PostgresConnectionManager::new(config, NoTls));
        Ok(PgStore {
            inner: Arc::new(Inner {
                pool,
                closed: AtomicBool::new(false),
                shown,
                options,
                fence: AtomicI64::new(NO_FENCE),
            }),
        })
    }

    /// Runs `op` in one READ COMMITTED read-write transaction and commits it; returns `op`'s value
    /// once PostgreSQL has committed (durable as `synchronous_commit` says: module doc of
    /// [`super`]). Blocks.
    ///
    /// `op` may run more than once, so it must act only through the transaction: it is run again,
    /// in a new transaction, when PostgreSQL rolled the previous one back whole: a serialization
    /// failure or deadlock (SQLSTATE 40001, 40P01; up to `conflict_retries` times), or a lost
    /// connection before COMMIT (until `unavailable_wait` has passed). Otherwise an `Err` from `op`
    /// rolls back and is returned as is.
    ///
    /// Errors: `op`'s; [`StorageError::Unavailable`] (the database stayed unreachable for
    /// `unavailable_wait`; nothing committed); [`StorageError::Postgres`] with
    /// [`PgErrorKind::CommitUnknown`] (the connection broke during COMMIT: it may have committed;
    /// never retried), or another PostgreSQL error (a statement failed and `op` went on without
    /// returning it: rolled back).
    pub fn write_retrying<T, E, F>(&self, mut op: F) -> Result<T, E>
    where
        F: FnMut(&mut PgTx<'_>) -> Result<T, E>,
        E: From<StorageError>,
    {
        self.run(Access::Write, true, &mut op)
    }

    /// Runs `op` in one READ ONLY, REPEATABLE READ transaction (one snapshot). Blocks. Retried like
    /// [`PgStore::write_retrying`].
    ///
    /// Errors: as [`PgStore::write_retrying`].
    pub fn read_retrying<T, E, F>(&self, mut op: F) -> Result<T, E>
    where
        F: FnMut(&mut PgTx<'_>) -> Result<T, E>,
        E: From<StorageError>,
    {
        self.run(Access::Read, true, &mut op)
    }

    /// [`PgStore::write_retrying`] for an op that can run only once (`FnOnce`, as the storage [`Store`]'s
    /// ops are): waiting for the database and retrying happen only before `op` starts; once it ran,
    /// any failure is returned.
    ///
    /// [`Store`]: crate::storage::Store
    ///
    /// Errors: as [`PgStore::write_retrying`].
    pub fn write_once<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&mut PgTx<'_>) -> Result<T, E>,
        E: From<StorageError>,
    {
        let mut op = Some(op);
        self.run(
            Access::Write,
            false,
            &mut |tx: &mut PgTx<'_>| match op.take() {
                Some(op) => op(tx),
                None => Err(E::from(StorageError::OpPanicked("op run twice".into()))),
            },
        )
    }

    /// [`PgStore::read_retrying`] for an op that can run only once (see [`PgStore::write_once`]).
    ///
    /// Errors: as [`PgStore::write_retrying`].
    pub fn read_once<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&mut PgTx<'_>) -> Result<T, E>,
        E: From<StorageError>,
    {
        let mut op = Some(op);
        self.run(
            Access::Read,
            false,
            &mut |tx: &mut PgTx<'_>| match op.take() {
                Some(op) => op(tx),
                None => Err(E::from(StorageError::OpPanicked("op run twice".into()))),
            },
        )
    }

    /// The storage [`Store`]'s `execute` for this backend: runs `command` in its own READ
    /// COMMITTED transaction on tokio's blocking pool, ordered by [`Command::ORDER`] on the
    /// `chain_tip` row (`WithBlocks`: `FOR SHARE`, `Block`: `FOR UPDATE`, `Free`: none) before
    /// [`Command::run`], and answers once PostgreSQL committed. Must be called within a tokio runtime.
    ///
    /// [`Store`]: crate::storage::Store
    ///
    /// Errors: the command's; as [`PgStore::write_once`]; [`StorageError::OpPanicked`] if it
    /// panicked.
    pub async fn execute<C: Command>(&self, command: C) -> Result<C::Output, C::Error> {
        let store = self.clone();
        join(tokio::task::spawn_blocking(move || store.execute_blocking(command)).await)
    }

    /// [`PgStore::execute`] on the calling thread (a plain thread: the block processor, startup).
    /// Blocks; never call it on an async worker.
    ///
    /// Errors: as [`PgStore::execute`].
    pub fn execute_blocking<C: Command>(&self, command: C) -> Result<C::Output, C::Error> {
        self.write_once(move |tx: &mut PgTx<'_>| {
            match C::ORDER {
                Order::Free => {}
                Order::WithBlocks => {
                    tx.lock_chain_tip_shared()?;
                }
                Order::Block => {
                    tx.lock_chain_tip_exclusive()?;
                    self.check_fence(tx)?;
                }
            }
            command.run(tx)
        })
    }

    /// The storage [`Store`]'s write, for this backend: `op` on the domain's `&mut dyn Tx`, run
    /// once ([`PgStore::write_once`]) on tokio's blocking pool (never on an async worker). Must be
    /// called within a tokio runtime.
    ///
    /// [`Store`]: crate::storage::Store
    ///
    /// Errors: as [`PgStore::write_retrying`]; [`StorageError::OpPanicked`] if `op` panicked.
    pub async fn write<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        let store = self.clone();
        join(tokio::task::spawn_blocking(move || store.write_blocking(op)).await)
    }

    /// The storage [`Store`]'s read for this backend: [`PgStore::read_once`] on tokio's blocking
    /// pool. Must be called within a tokio runtime.
    ///
    /// [`Store`]: crate::storage::Store
    ///
    /// Errors: as [`PgStore::write_retrying`]; [`StorageError::OpPanicked`] if `op` panicked.
    pub async fn read<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        let store = self.clone();
        join(tokio::task::spawn_blocking(move || store.read_blocking(op)).await)
    }

    /// [`PgStore::write_once`] with the domain's `&mut dyn Tx`, on the calling thread (a plain
    /// thread: the block processor). Blocks; never call it on an async worker.
    ///
    /// Errors: as [`PgStore::write_retrying`].
    pub fn write_blocking<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E>,
        E: From<StorageError>,
    {
        self.write_once(move |tx: &mut PgTx<'_>| op(tx))
    }

    /// [`PgStore::read_once`] with the domain's `&mut dyn Tx`, on the calling thread. Blocks.
    ///
    /// Errors: as [`PgStore::write_retrying`].
    pub fn read_blocking<T, E, F>(&self, op: F) -> Result<T, E>
    where
        F: FnOnce(&mut dyn Tx) -> Result<T, E>,
        E: From<StorageError>,
    {
        self.read_once(move |tx: &mut PgTx<'_>| op(tx))
    }

    /// A connection of the pool, for work the runner does not fit (tests, bulk copies). Waits up
    /// to `unavailable_wait`. Blocks.
    ///
    /// Errors: [`StorageError::Unavailable`].
    pub fn connection(&self) -> Result<PgConnection, StorageError> {
        self.inner.pool.get().map_err(|e| self.unavailable(&e))
    }

    /// Refuses new units of work from now on ([`StorageError::Closed`]); those running finish.
    /// The connections close when the last clone of the store is dropped. Idempotent; never
    /// fails (the `Result` matches the SQLite store's `close`).
    pub fn close(&self) -> Result<(), StorageError> {
        self.inner.closed.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Sets the epoch block commands are fenced with: `Some(epoch)` while this instance's chain
    /// pipeline runs as the fleet's leader with that epoch (`fleet::Role::Leader`), `None` when it
    /// does not lead (every block command is then refused).
    pub fn set_fence(&self, epoch: Option<i64>) {
        self.inner
            .fence
            .store(epoch.unwrap_or(NO_FENCE), Ordering::SeqCst);
    }

    /// The fencing check of a block command, after `chain_tip` is locked: `fleet_leader.epoch`
    /// read `FOR SHARE` must be this instance's. `FOR SHARE` conflicts with a new leader's
    /// `UPDATE ... SET epoch = epoch + 1`, so either this transaction commits before the new epoch
    /// exists, or it sees the new epoch and is refused (docs/fleet.md "Fencing").
    ///
    /// Errors: [`StorageError::Fenced`]; database errors.
    fn check_fence(&self, tx: &mut PgTx<'_>) -> Result<(), StorageError> {
        let ours = self.inner.fence.load(Ordering::SeqCst);
        let row = tx
            .client()
            .query_opt("SELECT epoch FROM fleet_leader WHERE id = 1 FOR SHARE", &[]);
        let current: i64 = match row {
            Ok(Some(row)) => row.get(0),
            Ok(None) => 0,
            Err(e) => return tx.track(Err(StorageError::from(e))),
        };
        if ours == NO_FENCE || ours != current {
            metrics::counter!(crate::metrics::FENCED_COMMANDS).increment(1);
            return Err(StorageError::Fenced {
                ours: (ours != NO_FENCE).then_some(ours),
                current,
            });
        }
        Ok(())
    }

    /// The URL this store uses, password masked.
    pub fn url(&self) -> &str {
        &self.inner.shown
    }

    /// Connections open now (idle or in use), and idle ones.
    pub fn connections(&self) -> (u32, u32) {
        let state = self.inner.pool.state();
        (state.connections, state.idle_connections)
    }

    fn unavailable(&self, detail: &dyn std::fmt::Display) -> StorageError {
        StorageError::Unavailable(format!("PostgreSQL at {}: {detail}", self.inner.shown))
    }
}

/// The result of a blocking task, its panic as [`StorageError::OpPanicked`].
fn join<T, E: From<StorageError>>(
    result: Result<Result<T, E>, tokio::task::JoinError>,
) -> Result<T, E> {
    result.unwrap_or_else(|e| Err(E::from(StorageError::OpPanicked(e.to_string()))))
}

/// Applies the migrations on a dedicated connection (closed after, which also frees the lock),
/// retrying the connection until `wait` has passed.
fn migrate_with_wait(
    config: &postgres::Config,
    shown: &str,
    wait: Duration,
) -> Result<(), StorageError> {
    let deadline = Instant::now() + wait;
    let mut backoff = Duration::from_millis(100);
    let mut client = loop {
        match config.connect(NoTls) {
            Ok(client) => break client,
            Err(e) => {
                let failure = PgFailure::from(e);
                let now = Instant::now();
                if failure.kind != PgErrorKind::Unavailable || now >= deadline {
                    return Err(StorageError::Unavailable(format!(
                        "PostgreSQL at {shown}: {}",
                        failure.message
                    )));
                }
                tracing::warn!(event = "postgres_connect_failed", url = shown, error = %failure.message);
                std::thread::sleep(backoff.min(deadline - now));
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    };
    super::migrate(&mut client)
}

/// r2d2's error handler: connection failures are logged through `tracing` at most every 10 s
/// (r2d2 retries in the background while the database is down; each op reports its own failure).
#[derive(Debug, Default)]
struct LogConnectErrors {
    last: AtomicU64,
}

impl r2d2::HandleError<postgres::Error> for LogConnectErrors {
    fn handle_error(&self, error: postgres::Error) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let last = self.last.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let failure = PgFailure::from(error);
            tracing::warn!(event = "postgres_connect_failed", error = %failure.message);
        }
    }
}
