//! Storage: the tower's SQLite database (rusqlite, bundled SQLite).
//!
//! * [`Store`] owns the database: one writer thread with group commit (`writer.rs`), a pool of
//!   read-only connections (`readers.rs`), schema migrations from the workspace's `migrations/sqlite/`
//!   folder applied on open with refinery (`connection.rs`).
//! * Query functions are plain functions over `&rusqlite::Connection`, one module per table:
//!   [`users`], [`appointments`], [`trackers`], [`pending`], [`chain`], [`keys`]. Call them inside
//!   [`Store::write`] ops (which may combine many of them in one atomic, durable unit, e.g. all the
//!   changes of one block) or [`Store::read`] ops.
//! * Row types and the id types live in [`records`].
//!
//! ```no_run
//! # async fn demo(store: teosd::storage::Store, id: teosd::storage::UserId) -> Result<(), teosd::storage::StorageError> {
//! use teosd::storage::{StorageError, UserRecord, users};
//! let record = UserRecord { available_slots: 100, subscription_start: 800_000, subscription_expiry: 804_320 };
//! store.write(move |conn| users::upsert(conn, &id, &record)).await?; // durable once this returns
//! let back = store.read(move |conn| users::get(conn, &id)).await?;
//! assert_eq!(back, Some(record));
//! # Ok(()) }
//! ```

pub mod appointments;
mod batch;
pub mod chain;
mod connection;
mod error;
pub mod keys;
pub mod pending;
pub mod postgres;
mod readers;
pub mod records;
mod sqlite_tx;
mod store;
pub mod trackers;
pub mod tx;
pub mod users;
mod writer;

/// Opens (creating and migrating) a SQLite database for writing, outside a [`Store`]: for offline
/// tools (`teosd migrate-db`) that own the file while the tower is stopped.
pub use connection::open_writer as open_sqlite;
pub use connection::schema_version;
pub use error::StorageError;
pub use records::{
    AppointmentId, AppointmentRecord, Locator, PendingBreach, TrackerRecord, TrackerStatus, UserId,
    UserRecord,
};
pub use sqlite_tx::SqliteTx;
pub use store::Store;
pub use tx::{Tx, TxResult};
pub use writer::GROUP_CAP;
