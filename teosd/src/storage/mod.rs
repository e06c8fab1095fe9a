//! Storage: the tower's database behind one interface.
//!
//! * [`Tx`] (`tx.rs`) is that interface: one method per query the domain rules need (users, slots,
//!   appointments, trackers, pending breaches, chain, tower keys, savepoints), over one open
//!   transaction, object safe (`&mut dyn Tx`), with no backend type in its signatures. Domain code
//!   (Gatekeeper, Watcher, block processor, admin API, metrics, bootstrap) takes `&mut dyn Tx` and is
//!   written once for every backend.
//! * Writes are typed [`Command`]s (`command.rs`): a struct of inputs in its domain's module whose
//!   [`run`](Command::run) is the rule over `&mut dyn Tx`, with an [`Order`] against the block
//!   pipeline's commands. [`Store::execute`] answers once the command is durable. Reads are ops over
//!   `&mut dyn Tx` on a committed snapshot ([`Store::read`], [`Store::read_blocking`]); tests and
//!   one-off tools may also run ad-hoc write ops ([`Store::write`]).
//! * [`Store`] (`store.rs`) is the handle; it dispatches to a private `enum Backend`. A second backend
//!   (PostgreSQL, issue 12) plugs in there as a sibling variant implementing the same entry points
//!   (execute a command, run an ad-hoc write, read on a snapshot, close), with its own [`Tx`]
//!   implementation; domain code does not change. The SQLite backend (`sqlite.rs`, the default):
//!   one writer thread with group commit (`writer.rs`) running commands in submission order, two
//!   pools of read-only connections (`readers.rs`), schema migrations from the workspace's
//!   `migrations/sqlite/` folder applied on open with refinery (`connection.rs`).
//! * [`SqliteTx`] implements [`Tx`] by delegating to the per-table query functions over
//!   `&rusqlite::Connection`, one module per table: [`users`], [`appointments`], [`trackers`],
//!   [`pending`], [`chain`], [`keys`]. These modules are the SQLite dialect; only SQLite-only code
//!   (the online backup of the file, tests about the file, the benchmark prefill) reaches them or a
//!   raw connection directly, through the `*_sqlite` methods of [`Store`].
//! * Errors are [`StorageError`]; constraint violations are recognised with
//!   [`StorageError::is_constraint_violation`] whatever the backend.
//! * Row types and the id types live in [`records`].
//!
//! ```no_run
//! # async fn demo(store: teosd::storage::Store, id: teosd::storage::UserId) -> Result<(), teosd::storage::StorageError> {
//! use teosd::storage::{Command, Order, StorageError, Tx, UserId, UserRecord};
//!
//! /// Gives a user a subscription (a made-up rule, for the example).
//! struct Grant { user: UserId, record: UserRecord }
//!
//! impl Command for Grant {
//!     type Output = ();
//!     type Error = StorageError;
//!     const NAME: &'static str = "grant";
//!     const ORDER: Order = Order::Free;
//!     fn run(self, tx: &mut dyn Tx) -> Result<(), StorageError> {
//!         tx.upsert_user(&self.user, &self.record)
//!     }
//! }
//!
//! let record = UserRecord { available_slots: 100, subscription_start: 800_000, subscription_expiry: 804_320 };
//! store.execute(Grant { user: id, record }).await?; // durable once this returns
//! let back = store.read(move |tx| tx.user(&id)).await?;
//! assert_eq!(back, Some(record));
//! # Ok(()) }
//! ```

pub mod appointments;
mod batch;
pub mod chain;
mod checkpointer;
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
