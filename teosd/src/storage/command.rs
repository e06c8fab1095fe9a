//! [`Command`]: a typed write, the unit the storage writer executes.
//!
//! Every write the daemon makes is a command: a value holding its inputs (a named type in its
//! domain's module: `gatekeeper::Register`, `watcher::AddAppointment`,
//! `block_processor::ScanBlock` / `CommitBlock` / `UnwindBlocks`, `chain_walker::StartFrom`,
//! `tower::CreateTowerKey`, ...) whose [`run`](Command::run) is the domain rule, written once over
//! `&mut dyn Tx`. The backend decides how to execute it; the rule does not change:
//!
//! * SQLite ([`Store::execute`](super::Store::execute)): on the single writer thread, in submission
//!   order, inside the current group transaction and its own savepoint; the answer comes after the
//!   group's COMMIT. So appointment inserts and block scans/commits are totally ordered (the
//!   ordering rule of `chain_view`), and a receipt is only signed for a durable appointment.
//! * A backend with several writers (PostgreSQL, issue 12) runs each command in its own database
//!   transaction and must give the same order between the commands that say so through
//!   [`Command::ORDER`] (e.g. by locking a chain-tip row shared for appointments and exclusive for
//!   block scans and commits).
//!
//! Reads are not commands: they are ops over `&mut dyn Tx` run on a read snapshot
//! ([`Store::read`](super::Store::read)). They have no ordering or durability to keep, each is a
//! short composition of [`Tx`] queries next to the code that shows its answer, and a backend runs
//! them on any connection of its read pool; a type per admin or API read would add names without
//! adding a property.

use super::error::StorageError;
use super::tx::Tx;

/// How a command must be ordered against the block pipeline's commands when a backend runs writes
/// concurrently. The SQLite writer runs every command in submission order, which satisfies all of
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// No ordering against blocks beyond the transaction's own isolation (registration, tower key).
    Free,
    /// Must see either the state before a block's scan or after that block's commit, never run
    /// between them: appointment inserts (`chain_view`, "ordering rule"). Shared among themselves.
    WithBlocks,
    /// A block's scan, commit or unwind: exclusive against [`Order::WithBlocks`] commands and each
    /// other.
    Block,
}

/// A typed write: its inputs, and the rule that applies them in one transaction.
///
/// `run` must not start or end transactions itself (use [`Tx::savepoint`] for partial rollback);
/// an `Err` rolls back everything it wrote (its savepoint on SQLite) and is returned to the caller
/// at once; an `Ok` value reaches the caller only once the writes are durable.
pub trait Command: Send + 'static {
    /// What the caller gets back once the command is durable.
    type Output: Send + 'static;
    /// The caller's error; storage failures (commit failed, store closed) convert into it.
    type Error: From<StorageError> + Send + 'static;
    /// Name of the command, for logs and metrics labels (`snake_case`).
    const NAME: &'static str;
    /// How it is ordered against block commands (see [`Order`]).
    const ORDER: Order;
    /// The domain rule: applies the command through `tx`.
    fn run(self, tx: &mut dyn Tx) -> Result<Self::Output, Self::Error>;
}
