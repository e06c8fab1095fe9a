//! Storage: the tower's database behind one interface.
//!
//! * [`Tx`] (`tx.rs`) is that interface: one method per query the domain rules need (users, slots,
//!   appointments, trackers, pending breaches, chain, tower keys, savepoints), over one open
//!   transaction, object safe (`&mut dyn Tx`), with no backend type in its signatures. Domain code
//!   (Gatekeeper, Watcher, block processor, admin API, metrics, bootstrap) takes `&mut dyn Tx` and is
//!   written once for every backend.
//! * [`Store`] owns the database: for SQLite (the default and, for now, the only backend wired in)
//!   one writer thread with group commit (`writer.rs`), two pools of read-only connections
//!   (`readers.rs`), schema migrations from the workspace's `migrations/sqlite/` folder applied on
//!   open with refinery (`connection.rs`). [`Store::write`] runs an op over `&mut dyn Tx` on the
//!   writer (many ops share one atomic, durable COMMIT), [`Store::read`] on a read snapshot.
//! * [`SqliteTx`] implements [`Tx`] by delegating to the per-table query functions over
//!   `&rusqlite::Connection`, one module per table: [`users`], [`appointments`], [`trackers`],
//!   [`pending`], [`chain`], [`keys`]. These modules are the SQLite dialect; only SQLite-only code
//!   (online backup, the rust-teos import, tests about the file) reaches them or a raw connection
//!   directly, through the `*_sqlite` methods of [`Store`].
//! * Errors are [`StorageError`]; constraint violations are recognised with
//!   [`StorageError::is_constraint_violation`] whatever the backend.
//! * Row types and the id types live in [`records`].
//!
//! ```no_run
//! # async fn demo(store: teosd::storage::Store, id: teosd::storage::UserId) -> Result<(), teosd::storage::StorageError> {
//! use teosd::storage::{StorageError, UserRecord};
//! let record = UserRecord { available_slots: 100, subscription_start: 800_000, subscription_expiry: 804_320 };
//! store.write(move |tx| tx.upsert_user(&id, &record)).await?; // durable once this returns
//! let back = store.read(move |tx| tx.user(&id)).await?;
//! assert_eq!(back, Some(record));
//! # Ok(()) }
//! ```

pub mod appointments;
mod batch;
pub mod chain;
mod command;
mod connection;
mod error;
pub mod keys;
pub mod pending;
pub mod postgres;
mod readers;
pub mod records;
mod sqlite;
mod sqlite_tx;
mod store;
pub mod trackers;
pub mod tx;
pub mod users;
mod writer;

pub use command::{Command, Order};
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
