//! [`Tx`]: the one interface between the tower's domain rules and a database backend.
//!
//! Every query the domain needs is one method here, named by table and action. A backend implements
//! it over one open transaction (SQLite: [`SqliteTx`](super::SqliteTx) over the writer's group
//! transaction or a read connection's snapshot; PostgreSQL: a transaction on a pooled connection).
//! Domain code (Gatekeeper, Watcher, block processor, admin API, ...) takes `&mut dyn Tx` and is
//! written once, whatever the backend.
//!
//! Rules for every method:
//! * It runs inside the caller's transaction: writes become durable only when the backend commits
//!   the transaction (for the SQLite writer: the group COMMIT, see [`Store`](super::Store)), and
//!   reads see that transaction's own writes.
//! * Heights are block heights (`u32`), slot counts are `u32`, counts are `u64`; txids and block
//!   hashes are the `bitcoin` types (internal byte order when stored).
//! * Errors are [`StorageError`]. A constraint violation (unique key, foreign key, check) answers
//!   `true` to [`StorageError::is_constraint_violation`] whatever the backend; a stored value that
//!   does not decode is [`StorageError::Corrupt`].
//! * A method called on a read-only transaction (the read pools) that writes fails with a backend
//!   error; the domain only calls reads there.
//!
//! The trait is object safe (`&mut dyn Tx`); no backend type appears in a signature.

use bitcoin::{BlockHash, Txid, Work};
use secp256k1::SecretKey;

use super::error::StorageError;
use super::records::{
    AppointmentId, AppointmentRecord, Locator, PendingBreach, TrackerRecord, TrackerStatus, UserId,
    UserRecord,
};

/// Shorthand for the result of every [`Tx`] method.
pub type TxResult<T> = Result<T, StorageError>;

/// One open database transaction, seen through the queries the tower's domain rules need. See the
/// [module documentation](self) for the rules every method follows.
pub trait Tx {
    // ---- users (Gatekeeper: subscriptions and slots) -------------------------------------------

    /// The user's subscription, or `None` if not registered. Used by registration, authorization,
    /// appointment storage, block scans (outdated users) and the admin API.
    fn user(&mut self, user_id: &UserId) -> TxResult<Option<UserRecord>>;

    /// Inserts the user or replaces its subscription, never touching its appointments (an update in
    /// place, not a delete-insert that would cascade). Used by registration and by appointment
    /// storage (the slots charged).
    fn upsert_user(&mut self, user_id: &UserId, record: &UserRecord) -> TxResult<()>;

    /// Ids of all users in ascending byte order (33 bytes each, all loaded).
    fn user_ids(&mut self) -> TxResult<Vec<UserId>>;

    /// Up to `limit` user ids in ascending byte order, strictly after `after` (from the first with
    /// `None`): the admin API's paged user listing.
    fn user_ids_after(&mut self, after: Option<&UserId>, limit: u32) -> TxResult<Vec<UserId>>;

    /// Number of registered users, counted (admin API, metrics, backups).
    fn count_users(&mut self) -> TxResult<u64>;

    /// Number of registered users as kept by the backend's counter (one row read, no scan; 0 when
    /// the counter is missing): the Gatekeeper's user cap (`check_capacity`).
    fn stored_users(&mut self) -> TxResult<u64>;

    /// Removes what expired subscriptions leave behind at block `height` and returns the ids of the
    /// deleted users. A user is outdated when `subscription_expiry + expiry_delta <= height`
    /// (`expiry_delta`: grace period in blocks, rust-teos' `EXPIRY_DELTA`). Outdated users without a
    /// tracker are deleted with all their appointments; outdated users with trackers keep their row
    /// and their appointments that have a tracker (the Responder still needs them), only their
    /// watched appointments are deleted. Used by the Gatekeeper's block decision
    /// (`Decision::RemoveOutdatedUsers`).
    fn delete_outdated_users(&mut self, height: u32, expiry_delta: u32) -> TxResult<Vec<UserId>>;

    /// Adds `delta` slots (negative to charge, positive to refund) to the user and returns the new
    /// count. Errors: [`StorageError::NotFound`] for an unknown user,
    /// [`StorageError::SlotsOutOfRange`] if the result leaves `0..=u32::MAX` (nothing changed). Used
    /// by the Responder's refund when a tracker completes.
    fn add_slots(&mut self, user_id: &UserId, delta: i64) -> TxResult<u32>;

    // ---- appointments (Watcher) ----------------------------------------------------------------

    /// The appointment with id `uuid`, with or without tracker.
    fn appointment(&mut self, uuid: &AppointmentId) -> TxResult<Option<AppointmentRecord>>;

    /// Inserts the appointment or updates every field of the one with the same `uuid` (an
    /// appointment update, PROTOCOL.md), keeping its tracker and pending breach. Errors: a
    /// constraint violation if the user is not registered. Used by `add_appointment`.
    fn upsert_appointment(&mut self, record: &AppointmentRecord) -> TxResult<()>;

    /// Deletes the appointment with its tracker and pending breach. Returns whether it existed.
    /// Used when the Responder drops an appointment (invalid penalty, dispute gone for good).
    fn delete_appointment(&mut self, uuid: &AppointmentId) -> TxResult<bool>;

    /// Every appointment (watched or not) whose locator is in `locators`, each once, in no
    /// particular order: the breach-detection query of a block scan (up to a block's ~4,000
    /// locators) and of the mempool watcher.
    fn appointments_by_locators(
        &mut self,
        locators: &[Locator],
    ) -> TxResult<Vec<AppointmentRecord>>;

    /// The appointment of `user_id` for `locator`, if any.
    fn appointment_of_user(
        &mut self,
        locator: &Locator,
        user_id: &UserId,
    ) -> TxResult<Option<AppointmentRecord>>;

    /// Locators of all the user's appointments (with or without tracker), in byte order: the
    /// `get_subscription_info` answer.
    fn locators_of_user(&mut self, user_id: &UserId) -> TxResult<Vec<Locator>>;

    /// Ids of all the user's appointments (with or without tracker), in byte order (admin API).
    fn appointment_ids_of_user(&mut self, user_id: &UserId) -> TxResult<Vec<AppointmentId>>;

    /// One page of the user's appointment ids for the admin API's paged `get_user`: at most `limit`
    /// ids whose position is after the cursor `after` (`None` = from the first), in insertion order,
    /// each with its cursor (an opaque, increasing `i64`; an update keeps its cursor).
    fn appointment_ids_of_user_page(
        &mut self,
        user_id: &UserId,
        after: Option<i64>,
        limit: u32,
    ) -> TxResult<Vec<(i64, AppointmentId)>>;

    /// Number of appointments, with or without tracker, counted (backups, tests).
    fn count_appointments(&mut self) -> TxResult<u64>;

    /// Number of appointments as kept by the backend's counter (one row read, no scan): the
    /// appointment cap (`check_capacity`, 0 when the counter is missing) and the block commit's
    /// check of the watched-locators index (`WatchedLocators::needs_rebuild`).
    fn stored_appointments(&mut self) -> TxResult<u64>;

    /// Number of watched appointments (without tracker): admin `get_tower_info`, metrics.
    fn count_watched_appointments(&mut self) -> TxResult<u64>;

    /// Up to `limit` watched appointments (no tracker) in ascending uuid order, strictly after
    /// `after` (admin API's paged listing).
    fn watched_appointments_after(
        &mut self,
        after: Option<&AppointmentId>,
        limit: u32,
    ) -> TxResult<Vec<AppointmentRecord>>;

    /// All appointments (any user, with or without tracker) with this locator, by uuid (admin API).
    fn appointments_with_locator(&mut self, locator: &Locator) -> TxResult<Vec<AppointmentRecord>>;

    /// Calls `each` with the locator of every stored appointment, in no particular order, without
    /// collecting them (a million appointments: one pass over the locator index). Loads the
    /// watched-locators index (`WatchedLocators::load`). Errors: [`StorageError::Corrupt`] for a
    /// stored locator that is not 16 bytes.
    fn for_each_locator(&mut self, each: &mut dyn FnMut(Locator)) -> TxResult<()>;

    // ---- trackers (Responder) ------------------------------------------------------------------

    /// Inserts a new tracker. Errors: a constraint violation if one exists for this uuid or the
    /// appointment does not exist.
    fn insert_tracker(&mut self, record: &TrackerRecord) -> TxResult<()>;

    /// The tracker of appointment `uuid`, if any.
    fn tracker(&mut self, uuid: &AppointmentId) -> TxResult<Option<TrackerRecord>>;

    /// Sets the tracker's status and the height it refers to (see [`TrackerStatus`]). Returns
    /// whether the tracker exists.
    fn set_tracker_status(
        &mut self,
        uuid: &AppointmentId,
        status: TrackerStatus,
        status_height: u32,
    ) -> TxResult<bool>;

    /// Sets (or clears, with `None`) the height where the tracker's dispute confirmed. Returns
    /// whether the tracker exists.
    fn set_dispute_height(&mut self, uuid: &AppointmentId, height: Option<u32>) -> TxResult<bool>;

    /// Deletes the tracker AND its appointment (the breach is irrevocably resolved). Returns whether
    /// the tracker existed; the appointment of a missing tracker is left alone.
    fn delete_tracker_and_appointment(&mut self, uuid: &AppointmentId) -> TxResult<bool>;

    /// Deletes only the tracker, keeping the appointment (it goes back to being watched). Returns
    /// whether the tracker existed.
    fn delete_tracker_only(&mut self, uuid: &AppointmentId) -> TxResult<bool>;

    /// Trackers whose penalty txid is in `txids`, each once, in no particular order.
    fn trackers_by_penalty_txids(&mut self, txids: &[Txid]) -> TxResult<Vec<TrackerRecord>>;

    /// Trackers whose dispute txid is in `txids`, each once, in no particular order.
    fn trackers_by_dispute_txids(&mut self, txids: &[Txid]) -> TxResult<Vec<TrackerRecord>>;

    /// Trackers whose dispute or penalty txid is in `txids` (a block's transactions), each once, in
    /// no particular order: the trackers a connected block concerns.
    fn trackers_by_dispute_or_penalty_txids(
        &mut self,
        txids: &[Txid],
    ) -> TxResult<Vec<TrackerRecord>>;

    /// All trackers with `status`, by ascending `status_height` then uuid (block scan: reorged and
    /// rejected penalties are sent again at every block).
    fn trackers_with_status(&mut self, status: TrackerStatus) -> TxResult<Vec<TrackerRecord>>;

    /// Trackers in the mempool since `height` or earlier (rebroadcast candidates), by ascending
    /// `status_height` then uuid.
    fn trackers_in_mempool_since_at_most(&mut self, height: u32) -> TxResult<Vec<TrackerRecord>>;

    /// Trackers whose penalty confirmed at `height` or earlier (completion candidates), by
    /// ascending `status_height` then uuid.
    fn trackers_confirmed_at_most(&mut self, height: u32) -> TxResult<Vec<TrackerRecord>>;

    /// Trackers whose dispute confirmed at exactly `height`, by uuid (block disconnected).
    fn trackers_with_dispute_at(&mut self, height: u32) -> TxResult<Vec<TrackerRecord>>;

    /// Trackers whose penalty confirmed at exactly `height`, by uuid (block disconnected).
    fn trackers_with_penalty_at(&mut self, height: u32) -> TxResult<Vec<TrackerRecord>>;

    /// Number of trackers.
    fn count_trackers(&mut self) -> TxResult<u64>;

    /// Number of trackers with `status`, without reading the rows (metrics).
    fn count_trackers_with_status(&mut self, status: TrackerStatus) -> TxResult<u64>;

    /// Up to `limit` trackers in ascending uuid order, strictly after `after` (admin listing).
    fn trackers_after(
        &mut self,
        after: Option<&AppointmentId>,
        limit: u32,
    ) -> TxResult<Vec<TrackerRecord>>;

    /// Distinct ids of the users owning at least one tracker, in byte order.
    fn users_with_trackers(&mut self) -> TxResult<Vec<UserId>>;

    // ---- pending breaches (late appointments) --------------------------------------------------

    /// Records that appointment `uuid`'s dispute `dispute_txid` is in block `block_hash` at
    /// `block_height`, replacing an earlier entry for the appointment. Errors: a constraint
    /// violation if the appointment does not exist. Used by `add_appointment` for a late appointment.
    fn upsert_pending_breach(
        &mut self,
        uuid: &AppointmentId,
        dispute_txid: &Txid,
        block_hash: &BlockHash,
        block_height: u32,
    ) -> TxResult<()>;

    /// At most `limit` pending breaches with a uuid strictly after `after` (all with `None` and
    /// `u32::MAX`), in ascending uuid order: the block processor answers them in batches.
    fn pending_breaches_after(
        &mut self,
        after: Option<&AppointmentId>,
        limit: u32,
    ) -> TxResult<Vec<PendingBreach>>;

    /// Deletes the pending breach of `uuid` (not the appointment). Returns whether it existed.
    fn delete_pending_breach(&mut self, uuid: &AppointmentId) -> TxResult<bool>;

    /// Whether appointment `uuid` has a pending breach.
    fn has_pending_breach(&mut self, uuid: &AppointmentId) -> TxResult<bool>;

    /// Deletes the pending breaches whose dispute is in block `block_hash` (disconnected). Returns
    /// how many.
    fn delete_pending_breaches_of_block(&mut self, block_hash: &BlockHash) -> TxResult<usize>;

    /// Deletes the pending breaches whose dispute block is at `height` or above (disconnected).
    /// Returns how many.
    fn delete_pending_breaches_from(&mut self, height: u32) -> TxResult<usize>;

    // ---- chain (the tower's last processed blocks; the tip is the highest) ---------------------

    /// Height and hash of the last processed block, or `None` before the first.
    fn chain_tip(&mut self) -> TxResult<Option<(u32, BlockHash)>>;

    /// Records block `hash` at `height` with its total work when known (replacing the block at that
    /// height and forgetting its txids), then forgets the blocks below `height - keep + 1` (`keep`
    /// 0 counts as 1). Used by every block commit and by bootstrap.
    fn push_block(
        &mut self,
        height: u32,
        hash: &BlockHash,
        chainwork: Option<Work>,
        keep: u32,
    ) -> TxResult<()>;

    /// Forgets the block at `height` and every block above (disconnected). Returns how many.
    fn pop_blocks(&mut self, height: u32) -> TxResult<usize>;

    /// Stores the txids (block order) of the remembered block `hash` at `height`. Returns whether
    /// that block is remembered (false, nothing stored, otherwise).
    fn set_block_txids(&mut self, height: u32, hash: &BlockHash, txids: &[Txid]) -> TxResult<bool>;

    /// Forgets the txids of the remembered blocks below `height`. Returns how many blocks lost them.
    fn clear_block_txids_below(&mut self, height: u32) -> TxResult<usize>;

    /// The txids stored for the block at `height`, if any. Errors: [`StorageError::Corrupt`] if the
    /// stored value is not a whole number of txids.
    fn block_txids(&mut self, height: u32) -> TxResult<Option<Vec<Txid>>>;

    /// All remembered blocks as `(height, hash)`, highest first.
    fn recent_blocks(&mut self) -> TxResult<Vec<(u32, BlockHash)>>;

    /// Total work stored with the remembered block `hash`, if kept and known.
    fn block_work(&mut self, hash: &BlockHash) -> TxResult<Option<Work>>;

    /// Hash of the remembered block at `height`, if kept.
    fn block_hash_at(&mut self, height: u32) -> TxResult<Option<BlockHash>>;

    /// Height of the remembered block `hash`, if kept.
    fn block_height(&mut self, hash: &BlockHash) -> TxResult<Option<u32>>;

    // ---- keys (the tower's signing key) --------------------------------------------------------

    /// The newest tower key, if any. Errors: [`StorageError::Corrupt`] if the stored bytes are not
    /// a valid secp256k1 secret key.
    fn latest_tower_key(&mut self) -> TxResult<Option<SecretKey>>;

    /// Stores `key` as the newest tower key, stamped with the current unix time (seconds). Returns
    /// its id (increasing).
    fn insert_tower_key(&mut self, key: &SecretKey) -> TxResult<i64>;

    /// Number of stored tower keys.
    fn count_tower_keys(&mut self) -> TxResult<u64>;

    // ---- savepoints ----------------------------------------------------------------------------

    /// Opens a savepoint called `name` (an SQL identifier) inside the transaction. Used by the block
    /// commit so that one bookkeeping change that violates a constraint is undone alone
    /// (`block_processor::storage_ops::apply_changes`).
    fn savepoint(&mut self, name: &'static str) -> TxResult<()>;

    /// Keeps the writes since savepoint `name` and ends it.
    fn release_savepoint(&mut self, name: &'static str) -> TxResult<()>;

    /// Undoes the writes since savepoint `name` and ends it.
    fn rollback_savepoint(&mut self, name: &'static str) -> TxResult<()>;

    // ---- a database shared by a fleet (issue 12) -----------------------------------------------

    /// Whether other teosd instances write to this database at the same time (PostgreSQL: a
    /// fleet). Then this process's chain view is not what orders appointment inserts against block
    /// scans: the domain reads the committed tip ([`Tx::chain_tip`]) and the transactions of recently
    /// scanned blocks ([`Tx::recent_dispute`]) from the database, and a block scan looks up every
    /// locator of the block in the database (other instances' appointments are not in this
    /// process's watched-locators index). `false` on SQLite: one writer, in order, and the chain
    /// view in its memory (`chain_view`).
    fn shared(&self) -> bool {
        false
    }

    /// On a shared database, the transaction with `locator` among the blocks recently scanned by
    /// the leader (the last `locator_cache_size`), as `(txid, block hash, height)`; the highest block
    /// if several. `None` on SQLite, where the chain view's locator cache answers. Used by
    /// `add_appointment` (late appointments).
    fn recent_dispute(&mut self, locator: &Locator) -> TxResult<Option<(Txid, BlockHash, u32)>> {
        let _ = locator;
        Ok(None)
    }

    /// On a shared database, records the transactions of block `hash` at `height` for
    /// [`Tx::recent_dispute`] and forgets the blocks at or below `height - window` (`window`:
    /// `locator_cache_size`, blocks). Nothing on SQLite (the chain view's cache). Used by the block
    /// scan.
    fn remember_block_locators(
        &mut self,
        hash: &BlockHash,
        height: u32,
        txids: &[Txid],
        window: u32,
    ) -> TxResult<()> {
        let _ = (hash, height, txids, window);
        Ok(())
    }

    /// On a shared database, serializes tower-key creation until the end of the transaction, so
    /// instances starting together on an empty database all end up with the same key (the second
    /// waits for the first's commit, then reads its key). Nothing on SQLite (one writer). Used by
    /// `LoadOrCreateTowerKey` before it reads the newest key.
    fn lock_tower_keys(&mut self) -> TxResult<()> {
        Ok(())
    }

    /// On a shared database, forgets the transactions of block `hash` (disconnected). Nothing on
    /// SQLite. Used when blocks are unwound.
    fn forget_block_locators(&mut self, hash: &BlockHash) -> TxResult<()> {
        let _ = hash;
        Ok(())
    }
}
