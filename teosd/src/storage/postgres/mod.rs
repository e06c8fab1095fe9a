//! The PostgreSQL storage backend (issue 12, docs/fleet.md): the tower's tables in a PostgreSQL
//! database shared by every instance of a fleet.
//!
//! # Schema and dialect
//!
//! `migrations/postgresql/` (V1 fleet leadership, V2 storage), applied on open with refinery under
//! the advisory lock [`MIGRATION_LOCK_KEY`] (instances starting together apply them once). The
//! tables are those of the SQLite schema with the same meaning, one module per table as on the
//! SQLite side: [`users`], [`appointments`], [`trackers`], [`pending`], [`chain`], [`keys`],
//! returning the same record types (`storage::records`). Differences of dialect:
//!
//! * u32 values (heights, slots, delays) are `BIGINT` with a range `CHECK` (`INTEGER` is signed
//!   32-bit); ids, hashes, keys and transactions are `BYTEA` with length `CHECK`s.
//! * Many-key lookups (a block's locators or txids) are ONE statement, `col = ANY($1)` with a
//!   `BYTEA[]` parameter, instead of SQLite's chunked `IN (?, ...)` lists.
//! * `appointments.seq` (an identity column) replaces SQLite's rowid as the paging cursor.
//! * Statements are sent with their parameter types (`query_typed`): one round trip each, no
//!   prepare round trip.
//! * The `counters` of users and appointments are sharded (16 rows per count, one per
//!   `pg_backend_pid() % 16`) so concurrent inserts do not all queue on one row lock.
//! * `chain_tip`: the one-row ordering table of the fleet (see [`chain`]).
//!
//! # Pool and threads
//!
//! [`PgStore`] holds an r2d2 pool of connections of the synchronous `postgres` client (which runs
//! tokio-postgres on a private current-thread runtime, so it must never be called on a tokio worker
//! thread: [`PgStore`]'s methods block, and its `_async` methods run them on tokio's blocking
//! pool; they have the storage `Store`'s shapes: `write`/`read` async, `write_blocking`/
//! `read_blocking`, over `&mut dyn Tx`). A checked-out connection is tested first (an empty query), so connections killed by a
//! server restart are replaced, not handed out. Each unit of work is one PostgreSQL transaction
//! ([`PgStore::write_retrying`]); a transaction PostgreSQL rolled back whole (serialization failure,
//! deadlock: SQLSTATE 40001, 40P01) is run again a few times, and one that lost its connection
//! before COMMIT is run again until the database is back or `unavailable_wait` has passed (then
//! [`StorageError::Unavailable`]). A connection lost DURING COMMIT is never retried: the outcome is
//! unknown ([`PgErrorKind::CommitUnknown`]); the caller answers with an error, and a client that
//! retries hits idempotent upserts. Connections use TCP keepalives and `tcp_user_timeout` so a dead
//! server or a cut network is noticed in seconds.
//!
//! # Isolation and slot accounting
//!
//! Writes run at READ COMMITTED, PostgreSQL's default: each statement sees what was committed
//! before it started, and an `UPDATE` or `SELECT ... FOR UPDATE` that meets a row locked by another
//! transaction waits for it, then re-evaluates its `WHERE` on the row's newest version. Slot
//! accounting relies on exactly that, so it is atomic across instances without SERIALIZABLE (and
//! its retries):
//!
//! * spending is ONE conditional statement ([`users::add_slots`]):
//!   `UPDATE users SET available_slots = available_slots - n WHERE user_id = u AND
//!   available_slots >= n` (in the form `available_slots + delta BETWEEN 0 AND u32::MAX`). Two
//!   instances spending the last slot at once: the second waits for the first's row lock, re-checks
//!   the balance after its commit, finds it short and updates nothing. A read-then-write would let
//!   both read the old balance and both spend it.
//! * any read-modify-write of a user row (renewing a subscription: new slots = old + granted)
//!   reads it with [`users::get_for_update`], which holds the row lock until COMMIT, so a
//!   concurrent renewal or spend waits instead of being overwritten.
//!
//! Reads ([`PgStore::read_retrying`]) run READ ONLY at REPEATABLE READ: one snapshot for the whole unit, as
//! a SQLite read transaction.
//!
//! # Durability: `synchronous_commit`
//!
//! [`PgStore::write_retrying`] returns only after PostgreSQL acknowledged the COMMIT, and a receipt is sent
//! only after that. With the server's default `synchronous_commit = on` the acknowledgement comes
//! after the commit's WAL is flushed to the primary's disk, so an acknowledged appointment survives
//! a crash of the primary. With `synchronous_standby_names` set (a synchronous standby), `on` also
//! waits for the standby to have flushed it (`remote_write`: written, not flushed; `remote_apply`:
//! applied, so visible to reads on the standby), so it survives the loss of the primary's host and
//! a failover to that standby. `off` or `local` would acknowledge commits that a crash or a
//! failover can lose: do not use them for a tower (docs/fleet.md). teosd does not change the
//! setting; the test clusters run with it off for speed.
//!
//! # Not yet
//!
//! TLS to PostgreSQL (connections are plain TCP, `NoTls`: keep the database on loopback or a
//! private network), and a prepared-statement cache (each statement is parsed and planned by the
//! server every time).

mod error;
mod pool;
mod rows;
mod tx;
mod url;

pub mod appointments;
pub mod chain;
pub mod keys;
pub mod pending;
pub mod trackers;
pub mod users;

pub use error::{PgErrorKind, PgFailure, classify};
pub use pool::{Access, MIGRATION_LOCK_KEY, PgConnection, PgOptions, PgStore, PgTx};
pub use url::{DatabaseUrl, DatabaseUrlError, PasswordEnv};

use postgres::GenericClient;
use postgres::types::Type;

use super::error::StorageError;

mod embedded {
    // The same folder as `fleet::migrate` (refinery's history is shared: one schema).
    refinery::embed_migrations!("../migrations/postgresql");
}

/// Applies the PostgreSQL migrations (`migrations/postgresql/`) to the database `client` is
/// connected to, holding the session advisory lock [`MIGRATION_LOCK_KEY`] meanwhile so that
/// instances starting together apply them one after the other (the second finds them applied).
/// Idempotent; refuses a database whose applied migrations differ from this build's or include
/// newer ones (refinery's defaults).
///
/// Errors: [`StorageError::Migration`]; [`StorageError::Postgres`] if the lock cannot be taken.
pub fn migrate(client: &mut postgres::Client) -> Result<(), StorageError> {
    client.query_typed(
        "SELECT pg_advisory_lock($1)",
        &[(&MIGRATION_LOCK_KEY, Type::INT8)],
    )?;
    let result = embedded::migrations::runner()
        .run(client)
        .map(|_| ())
        .map_err(|e| StorageError::Migration(e.to_string()));
    // Unlock even after a failure (closing the session would too).
    let unlocked = client.query_typed(
        "SELECT pg_advisory_unlock($1)",
        &[(&MIGRATION_LOCK_KEY, Type::INT8)],
    );
    result?;
    unlocked?;
    Ok(())
}

/// Highest migration version recorded in the database (refinery's history), or `None` before
/// any.
///
/// Errors: [`StorageError::Postgres`] (e.g. no history table).
pub fn schema_version(client: &mut impl GenericClient) -> Result<Option<u32>, StorageError> {
    let row = client.query_typed_one("SELECT max(version) FROM refinery_schema_history", &[])?;
    let version: Option<i32> = rows::get(&row, 0)?;
    version
        .map(|v| u32::try_from(v).map_err(|_| StorageError::Corrupt(format!("schema version {v}"))))
        .transpose()
}

/// The value of counter `name` (`users`, `appointments`): the sum of its shards.
fn counter(client: &mut impl GenericClient, name: &str) -> Result<u64, StorageError> {
    let row = client.query_typed_one(
        "SELECT coalesce(sum(value), 0)::bigint FROM counters WHERE name = $1",
        &[(&name, Type::TEXT)],
    )?;
    rows::count_at(&row, 0)
}
