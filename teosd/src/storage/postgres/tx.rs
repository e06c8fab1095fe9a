//! [`Tx`] for [`PgTx`]: the domain's queries on a PostgreSQL transaction, delegating to the
//! per-table modules of this backend.
//!
//! Two behaviours differ from SQLite's by necessity, both documented on the methods:
//! * [`Tx::user`] in a WRITE unit of work locks the row (`FOR UPDATE`): the domain charges slots
//!   and renews subscriptions by reading the user and writing it back ([`Tx::upsert_user`]), and
//!   on a shared database that read-modify-write must hold the row so a concurrent request on
//!   another instance waits instead of being overwritten. SQLite has one writer, so no lock is
//!   needed there.
//! * A statement that fails (e.g. a constraint violation) aborts the whole PostgreSQL transaction:
//!   every later statement fails until [`Tx::rollback_savepoint`]. SQLite undoes only the failed
//!   statement. Domain code that goes on after a failed write must therefore wrap it in a
//!   savepoint, as the block commit does.

use bitcoin::{BlockHash, Txid, Work};
use secp256k1::SecretKey;

use super::super::error::StorageError;
use super::super::records::{
    AppointmentId, AppointmentRecord, Locator, PendingBreach, TrackerRecord, TrackerStatus, UserId,
    UserRecord,
};
use super::super::tx::{Tx, TxResult};
use super::pool::{Access, PgTx};
use super::{appointments, chain, keys, pending, trackers, users};

impl PgTx<'_> {
    /// Locks the fleet's ordering row `FOR SHARE` and returns the committed tip: call it first in
    /// an appointment insert ([`chain::lock_tip_shared`]).
    ///
    /// Errors: [`StorageError::Corrupt`] if the row is missing; database errors.
    pub fn lock_chain_tip_shared(&mut self) -> TxResult<Option<(u32, BlockHash)>> {
        let result = chain::lock_tip_shared(self.client());
        self.track(result)
    }

    /// Locks the fleet's ordering row `FOR UPDATE` and returns the committed tip: call it first in
    /// a block commit ([`chain::lock_tip_exclusive`]).
    ///
    /// Errors: as [`PgTx::lock_chain_tip_shared`].
    pub fn lock_chain_tip_exclusive(&mut self) -> TxResult<Option<(u32, BlockHash)>> {
        let result = chain::lock_tip_exclusive(self.client());
        self.track(result)
    }

    /// The newest tower key, storing `key` first if there is none, safely against other instances
    /// starting at once ([`keys::get_or_insert`]).
    ///
    /// Errors: database errors; [`StorageError::Corrupt`] for an invalid stored key.
    pub fn tower_key_or_insert(&mut self, key: &SecretKey) -> TxResult<SecretKey> {
        let result = keys::get_or_insert(self.client(), key);
        self.track(result)
    }

    /// Runs `sql` (a savepoint statement) on the transaction.
    fn savepoint_statement(&mut self, sql: &str) -> TxResult<()> {
        let result = self.client().batch_execute(sql).map_err(StorageError::from);
        self.track(result)
    }
}

/// Refuses a savepoint name that is not a plain SQL identifier (it is spliced into the statement).
fn identifier(name: &str) -> TxResult<&str> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(name)
    } else {
        Err(StorageError::Corrupt(format!(
            "savepoint name {name:?} is not an SQL identifier"
        )))
    }
}

impl Tx for PgTx<'_> {
    /// In a write unit of work the row is locked `FOR UPDATE` until COMMIT (module doc).
    fn user(&mut self, user_id: &UserId) -> TxResult<Option<UserRecord>> {
        let result = match self.access() {
            Access::Write => users::get_for_update(self.client(), user_id),
            Access::Read => users::get(self.client(), user_id),
        };
        self.track(result)
    }
    fn upsert_user(&mut self, user_id: &UserId, record: &UserRecord) -> TxResult<()> {
        let result = users::upsert(self.client(), user_id, record);
        self.track(result)
    }
    fn user_ids(&mut self) -> TxResult<Vec<UserId>> {
        let result = users::list_ids(self.client());
        self.track(result)
    }
    fn user_ids_after(&mut self, after: Option<&UserId>, limit: u32) -> TxResult<Vec<UserId>> {
        let result = users::list_ids_after(self.client(), after, limit);
        self.track(result)
    }
    fn count_users(&mut self) -> TxResult<u64> {
        let result = users::count(self.client());
        self.track(result)
    }
    fn stored_users(&mut self) -> TxResult<u64> {
        let result = users::stored(self.client());
        self.track(result)
    }
    fn delete_outdated_users(&mut self, height: u32, expiry_delta: u32) -> TxResult<Vec<UserId>> {
        let result = users::delete_outdated(self.client(), height, expiry_delta);
        self.track(result)
    }
    /// One conditional `UPDATE` ([`users::add_slots`]): atomic across instances.
    fn add_slots(&mut self, user_id: &UserId, delta: i64) -> TxResult<u32> {
        let result = users::add_slots(self.client(), user_id, delta);
        self.track(result)
    }

    fn appointment(&mut self, uuid: &AppointmentId) -> TxResult<Option<AppointmentRecord>> {
        let result = appointments::get(self.client(), uuid);
        self.track(result)
    }
    fn upsert_appointment(&mut self, record: &AppointmentRecord) -> TxResult<()> {
        let result = appointments::upsert(self.client(), record);
        self.track(result)
    }
    fn delete_appointment(&mut self, uuid: &AppointmentId) -> TxResult<bool> {
        let result = appointments::delete(self.client(), uuid);
        self.track(result)
    }
    fn appointments_by_locators(
        &mut self,
        locators: &[Locator],
    ) -> TxResult<Vec<AppointmentRecord>> {
        let result = appointments::find_by_locators(self.client(), locators);
        self.track(result)
    }
    fn appointment_of_user(
        &mut self,
        locator: &Locator,
        user_id: &UserId,
    ) -> TxResult<Option<AppointmentRecord>> {
        let result = appointments::get_by_locator_and_user(self.client(), locator, user_id);
        self.track(result)
    }
    fn locators_of_user(&mut self, user_id: &UserId) -> TxResult<Vec<Locator>> {
        let result = appointments::locators_of_user(self.client(), user_id);
        self.track(result)
    }
    fn appointment_ids_of_user(&mut self, user_id: &UserId) -> TxResult<Vec<AppointmentId>> {
        let result = appointments::ids_of_user(self.client(), user_id);
        self.track(result)
    }
    fn appointment_ids_of_user_page(
        &mut self,
        user_id: &UserId,
        after: Option<i64>,
        limit: u32,
    ) -> TxResult<Vec<(i64, AppointmentId)>> {
        let result = appointments::ids_of_user_page(self.client(), user_id, after, limit);
        self.track(result)
    }
    fn count_appointments(&mut self) -> TxResult<u64> {
        let result = appointments::count(self.client());
        self.track(result)
    }
    fn stored_appointments(&mut self) -> TxResult<u64> {
        let result = appointments::stored(self.client());
        self.track(result)
    }
    fn count_watched_appointments(&mut self) -> TxResult<u64> {
        let result = appointments::count_watched(self.client());
        self.track(result)
    }
    fn watched_appointments_after(
        &mut self,
        after: Option<&AppointmentId>,
        limit: u32,
    ) -> TxResult<Vec<AppointmentRecord>> {
        let result = appointments::list_watched(self.client(), after, limit);
        self.track(result)
    }
    fn appointments_with_locator(&mut self, locator: &Locator) -> TxResult<Vec<AppointmentRecord>> {
        let result = appointments::by_locator(self.client(), locator);
        self.track(result)
    }
    fn for_each_locator(&mut self, each: &mut dyn FnMut(Locator)) -> TxResult<()> {
        let result = appointments::for_each_locator(self.client(), each);
        self.track(result)
    }

    fn insert_tracker(&mut self, record: &TrackerRecord) -> TxResult<()> {
        let result = trackers::insert(self.client(), record);
        self.track(result)
    }
    fn tracker(&mut self, uuid: &AppointmentId) -> TxResult<Option<TrackerRecord>> {
        let result = trackers::get(self.client(), uuid);
        self.track(result)
    }
    fn set_tracker_status(
        &mut self,
        uuid: &AppointmentId,
        status: TrackerStatus,
        status_height: u32,
    ) -> TxResult<bool> {
        let result = trackers::update_status(self.client(), uuid, status, status_height);
        self.track(result)
    }
    fn set_dispute_height(&mut self, uuid: &AppointmentId, height: Option<u32>) -> TxResult<bool> {
        let result = trackers::set_dispute_height(self.client(), uuid, height);
        self.track(result)
    }
    fn delete_tracker_and_appointment(&mut self, uuid: &AppointmentId) -> TxResult<bool> {
        let result = trackers::delete(self.client(), uuid);
        self.track(result)
    }
    fn delete_tracker_only(&mut self, uuid: &AppointmentId) -> TxResult<bool> {
        let result = trackers::delete_tracker_only(self.client(), uuid);
        self.track(result)
    }
    fn trackers_by_penalty_txids(&mut self, txids: &[Txid]) -> TxResult<Vec<TrackerRecord>> {
        let result = trackers::by_penalty_txids(self.client(), txids);
        self.track(result)
    }
    fn trackers_by_dispute_txids(&mut self, txids: &[Txid]) -> TxResult<Vec<TrackerRecord>> {
        let result = trackers::by_dispute_txids(self.client(), txids);
        self.track(result)
    }
    fn trackers_by_dispute_or_penalty_txids(
        &mut self,
        txids: &[Txid],
    ) -> TxResult<Vec<TrackerRecord>> {
        let result = trackers::by_dispute_or_penalty_txids(self.client(), txids);
        self.track(result)
    }
    fn trackers_with_status(&mut self, status: TrackerStatus) -> TxResult<Vec<TrackerRecord>> {
        let result = trackers::with_status(self.client(), status);
        self.track(result)
    }
    fn trackers_in_mempool_since_at_most(&mut self, height: u32) -> TxResult<Vec<TrackerRecord>> {
        let result = trackers::in_mempool_since_at_most(self.client(), height);
        self.track(result)
    }
    fn trackers_confirmed_at_most(&mut self, height: u32) -> TxResult<Vec<TrackerRecord>> {
        let result = trackers::confirmed_at_most(self.client(), height);
        self.track(result)
    }
    fn trackers_with_dispute_at(&mut self, height: u32) -> TxResult<Vec<TrackerRecord>> {
        let result = trackers::dispute_confirmed_at(self.client(), height);
        self.track(result)
    }
    fn trackers_with_penalty_at(&mut self, height: u32) -> TxResult<Vec<TrackerRecord>> {
        let result = trackers::penalty_confirmed_at(self.client(), height);
        self.track(result)
    }
    fn count_trackers(&mut self) -> TxResult<u64> {
        let result = trackers::count(self.client());
        self.track(result)
    }
    fn count_trackers_with_status(&mut self, status: TrackerStatus) -> TxResult<u64> {
        let result = trackers::count_with_status(self.client(), status);
        self.track(result)
    }
    fn trackers_after(
        &mut self,
        after: Option<&AppointmentId>,
        limit: u32,
    ) -> TxResult<Vec<TrackerRecord>> {
        let result = trackers::list(self.client(), after, limit);
        self.track(result)
    }
    fn users_with_trackers(&mut self) -> TxResult<Vec<UserId>> {
        let result = trackers::users_with_trackers(self.client());
        self.track(result)
    }

    fn upsert_pending_breach(
        &mut self,
        uuid: &AppointmentId,
        dispute_txid: &Txid,
        block_hash: &BlockHash,
        block_height: u32,
    ) -> TxResult<()> {
        let result = pending::insert(self.client(), uuid, dispute_txid, block_hash, block_height);
        self.track(result)
    }
    fn pending_breaches_after(
        &mut self,
        after: Option<&AppointmentId>,
        limit: u32,
    ) -> TxResult<Vec<PendingBreach>> {
        let result = pending::list_after(self.client(), after, limit);
        self.track(result)
    }
    fn delete_pending_breach(&mut self, uuid: &AppointmentId) -> TxResult<bool> {
        let result = pending::delete(self.client(), uuid);
        self.track(result)
    }
    fn has_pending_breach(&mut self, uuid: &AppointmentId) -> TxResult<bool> {
        let result = pending::contains(self.client(), uuid);
        self.track(result)
    }
    fn delete_pending_breaches_of_block(&mut self, block_hash: &BlockHash) -> TxResult<usize> {
        let result = pending::delete_by_block(self.client(), block_hash);
        self.track(result)
    }
    fn delete_pending_breaches_from(&mut self, height: u32) -> TxResult<usize> {
        let result = pending::delete_from_height(self.client(), height);
        self.track(result)
    }

    fn chain_tip(&mut self) -> TxResult<Option<(u32, BlockHash)>> {
        let result = chain::tip(self.client());
        self.track(result)
    }
    fn push_block(
        &mut self,
        height: u32,
        hash: &BlockHash,
        chainwork: Option<Work>,
        keep: u32,
    ) -> TxResult<()> {
        let result = chain::push_with_work(self.client(), height, hash, chainwork, keep);
        self.track(result)
    }
    fn pop_blocks(&mut self, height: u32) -> TxResult<usize> {
        let result = chain::pop(self.client(), height);
        self.track(result)
    }
    fn set_block_txids(&mut self, height: u32, hash: &BlockHash, txids: &[Txid]) -> TxResult<bool> {
        let result = chain::set_txids(self.client(), height, hash, txids);
        self.track(result)
    }
    fn clear_block_txids_below(&mut self, height: u32) -> TxResult<usize> {
        let result = chain::clear_txids_below(self.client(), height);
        self.track(result)
    }
    fn block_txids(&mut self, height: u32) -> TxResult<Option<Vec<Txid>>> {
        let result = chain::txids_at(self.client(), height);
        self.track(result)
    }
    fn recent_blocks(&mut self) -> TxResult<Vec<(u32, BlockHash)>> {
        let result = chain::recent(self.client());
        self.track(result)
    }
    fn block_work(&mut self, hash: &BlockHash) -> TxResult<Option<Work>> {
        let result = chain::work_of(self.client(), hash);
        self.track(result)
    }
    fn block_hash_at(&mut self, height: u32) -> TxResult<Option<BlockHash>> {
        let result = chain::hash_at(self.client(), height);
        self.track(result)
    }
    fn block_height(&mut self, hash: &BlockHash) -> TxResult<Option<u32>> {
        let result = chain::height_of(self.client(), hash);
        self.track(result)
    }

    fn latest_tower_key(&mut self) -> TxResult<Option<SecretKey>> {
        let result = keys::latest(self.client());
        self.track(result)
    }
    fn insert_tower_key(&mut self, key: &SecretKey) -> TxResult<i64> {
        let result = keys::insert(self.client(), key);
        self.track(result)
    }
    fn count_tower_keys(&mut self) -> TxResult<u64> {
        let result = keys::count(self.client());
        self.track(result)
    }

    fn savepoint(&mut self, name: &'static str) -> TxResult<()> {
        let sql = format!("SAVEPOINT {}", identifier(name)?);
        self.savepoint_statement(&sql)
    }
    fn release_savepoint(&mut self, name: &'static str) -> TxResult<()> {
        let sql = format!("RELEASE SAVEPOINT {}", identifier(name)?);
        self.savepoint_statement(&sql)
    }
    /// `ROLLBACK TO SAVEPOINT` then `RELEASE` (PostgreSQL keeps a rolled-back-to savepoint
    /// open); this also clears the aborted state a failed statement left.
    fn rollback_savepoint(&mut self, name: &'static str) -> TxResult<()> {
        let name = identifier(name)?;
        let sql = format!("ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}");
        self.savepoint_statement(&sql)?;
        // The statements that failed after the savepoint are undone with it.
        self.clear_abort();
        Ok(())
    }

    fn shared(&self) -> bool {
        true
    }
    fn lock_tower_keys(&mut self) -> TxResult<()> {
        let result = self
            .client()
            .batch_execute("LOCK TABLE keys IN SHARE ROW EXCLUSIVE MODE")
            .map_err(StorageError::from);
        self.track(result)
    }
    fn recent_dispute(&mut self, locator: &Locator) -> TxResult<Option<(Txid, BlockHash, u32)>> {
        let result = chain::recent_dispute(self.client(), locator.as_bytes());
        self.track(result)
    }
    fn remember_block_locators(
        &mut self,
        hash: &BlockHash,
        height: u32,
        txids: &[Txid],
        window: u32,
    ) -> TxResult<()> {
        let result = chain::remember_locators(self.client(), hash, height, txids, window);
        self.track(result)
    }
    fn forget_block_locators(&mut self, hash: &BlockHash) -> TxResult<()> {
        let result = chain::forget_locators(self.client(), hash);
        self.track(result)
    }
}
