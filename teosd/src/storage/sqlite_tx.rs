//! [`SqliteTx`]: the SQLite implementation of [`Tx`], delegating to the per-table query modules
//! ([`users`], [`appointments`], [`trackers`], [`pending`], [`chain`], [`keys`]: the SQLite dialect).

use bitcoin::{BlockHash, Txid, Work};
use rusqlite::Connection;
use secp256k1::SecretKey;

use super::records::{
    AppointmentId, AppointmentRecord, Locator, PendingBreach, TrackerRecord, TrackerStatus, UserId,
    UserRecord,
};
use super::tx::{Tx, TxResult};
use super::{appointments, chain, keys, pending, trackers, users};

/// A [`Tx`] over a SQLite connection that is inside a transaction: the writer's group transaction
/// (each op in its own savepoint) or a read connection's snapshot. Borrowing, so making one per op
/// costs nothing.
pub struct SqliteTx<'c> {
    conn: &'c Connection,
}

impl<'c> SqliteTx<'c> {
    /// Wraps `conn`; the caller owns the transaction around it.
    pub fn new(conn: &'c Connection) -> SqliteTx<'c> {
        SqliteTx { conn }
    }

    /// The connection underneath: for SQLite-only code (schema checks, tests that inspect the file),
    /// never for domain rules.
    pub fn sqlite_connection(&self) -> &'c Connection {
        self.conn
    }
}

impl Tx for SqliteTx<'_> {
    fn user(&mut self, user_id: &UserId) -> TxResult<Option<UserRecord>> {
        users::get(self.conn, user_id)
    }
    fn upsert_user(&mut self, user_id: &UserId, record: &UserRecord) -> TxResult<()> {
        users::upsert(self.conn, user_id, record)
    }
    fn user_ids(&mut self) -> TxResult<Vec<UserId>> {
        users::list_ids(self.conn)
    }
    fn user_ids_after(&mut self, after: Option<&UserId>, limit: u32) -> TxResult<Vec<UserId>> {
        users::list_ids_after(self.conn, after, limit)
    }
    fn count_users(&mut self) -> TxResult<u64> {
        users::count(self.conn)
    }
    fn stored_users(&mut self) -> TxResult<u64> {
        users::stored(self.conn)
    }
    fn delete_outdated_users(&mut self, height: u32, expiry_delta: u32) -> TxResult<Vec<UserId>> {
        users::delete_outdated(self.conn, height, expiry_delta)
    }
    fn add_slots(&mut self, user_id: &UserId, delta: i64) -> TxResult<u32> {
        users::add_slots(self.conn, user_id, delta)
    }

    fn appointment(&mut self, uuid: &AppointmentId) -> TxResult<Option<AppointmentRecord>> {
        appointments::get(self.conn, uuid)
    }
    fn upsert_appointment(&mut self, record: &AppointmentRecord) -> TxResult<()> {
        appointments::upsert(self.conn, record)
    }
    fn delete_appointment(&mut self, uuid: &AppointmentId) -> TxResult<bool> {
        appointments::delete(self.conn, uuid)
    }
    fn appointments_by_locators(
        &mut self,
        locators: &[Locator],
    ) -> TxResult<Vec<AppointmentRecord>> {
        appointments::find_by_locators(self.conn, locators)
    }
    fn appointment_of_user(
        &mut self,
        locator: &Locator,
        user_id: &UserId,
    ) -> TxResult<Option<AppointmentRecord>> {
        appointments::get_by_locator_and_user(self.conn, locator, user_id)
    }
    fn locators_of_user(&mut self, user_id: &UserId) -> TxResult<Vec<Locator>> {
        appointments::locators_of_user(self.conn, user_id)
    }
    fn appointment_ids_of_user(&mut self, user_id: &UserId) -> TxResult<Vec<AppointmentId>> {
        appointments::ids_of_user(self.conn, user_id)
    }
    fn appointment_ids_of_user_page(
        &mut self,
        user_id: &UserId,
        after: Option<i64>,
        limit: u32,
    ) -> TxResult<Vec<(i64, AppointmentId)>> {
        appointments::ids_of_user_page(self.conn, user_id, after, limit)
    }
    fn count_appointments(&mut self) -> TxResult<u64> {
        appointments::count(self.conn)
    }
    fn stored_appointments(&mut self) -> TxResult<u64> {
        appointments::stored(self.conn)
    }
    fn count_watched_appointments(&mut self) -> TxResult<u64> {
        appointments::count_watched(self.conn)
    }
    fn watched_appointments_after(
        &mut self,
        after: Option<&AppointmentId>,
        limit: u32,
    ) -> TxResult<Vec<AppointmentRecord>> {
        appointments::list_watched(self.conn, after, limit)
    }
    fn appointments_with_locator(&mut self, locator: &Locator) -> TxResult<Vec<AppointmentRecord>> {
        appointments::by_locator(self.conn, locator)
    }
    fn for_each_locator(&mut self, each: &mut dyn FnMut(Locator)) -> TxResult<()> {
        appointments::for_each_locator(self.conn, each)
    }

    fn insert_tracker(&mut self, record: &TrackerRecord) -> TxResult<()> {
        trackers::insert(self.conn, record)
    }
    fn tracker(&mut self, uuid: &AppointmentId) -> TxResult<Option<TrackerRecord>> {
        trackers::get(self.conn, uuid)
    }
    fn set_tracker_status(
        &mut self,
        uuid: &AppointmentId,
        status: TrackerStatus,
        status_height: u32,
    ) -> TxResult<bool> {
        trackers::update_status(self.conn, uuid, status, status_height)
    }
    fn set_dispute_height(&mut self, uuid: &AppointmentId, height: Option<u32>) -> TxResult<bool> {
        trackers::set_dispute_height(self.conn, uuid, height)
    }
    fn delete_tracker_and_appointment(&mut self, uuid: &AppointmentId) -> TxResult<bool> {
        trackers::delete(self.conn, uuid)
    }
    fn delete_tracker_only(&mut self, uuid: &AppointmentId) -> TxResult<bool> {
        trackers::delete_tracker_only(self.conn, uuid)
    }
    fn trackers_by_penalty_txids(&mut self, txids: &[Txid]) -> TxResult<Vec<TrackerRecord>> {
        trackers::by_penalty_txids(self.conn, txids)
    }
    fn trackers_by_dispute_txids(&mut self, txids: &[Txid]) -> TxResult<Vec<TrackerRecord>> {
        trackers::by_dispute_txids(self.conn, txids)
    }
    fn trackers_by_dispute_or_penalty_txids(
        &mut self,
        txids: &[Txid],
    ) -> TxResult<Vec<TrackerRecord>> {
        trackers::by_dispute_or_penalty_txids(self.conn, txids)
    }
    fn trackers_with_status(&mut self, status: TrackerStatus) -> TxResult<Vec<TrackerRecord>> {
        trackers::with_status(self.conn, status)
    }
    fn trackers_in_mempool_since_at_most(&mut self, height: u32) -> TxResult<Vec<TrackerRecord>> {
        trackers::in_mempool_since_at_most(self.conn, height)
    }
    fn trackers_confirmed_at_most(&mut self, height: u32) -> TxResult<Vec<TrackerRecord>> {
        trackers::confirmed_at_most(self.conn, height)
    }
    fn trackers_with_dispute_at(&mut self, height: u32) -> TxResult<Vec<TrackerRecord>> {
        trackers::dispute_confirmed_at(self.conn, height)
    }
    fn trackers_with_penalty_at(&mut self, height: u32) -> TxResult<Vec<TrackerRecord>> {
        trackers::penalty_confirmed_at(self.conn, height)
    }
    fn count_trackers(&mut self) -> TxResult<u64> {
        trackers::count(self.conn)
    }
    fn count_trackers_with_status(&mut self, status: TrackerStatus) -> TxResult<u64> {
        trackers::count_with_status(self.conn, status)
    }
    fn trackers_after(
        &mut self,
        after: Option<&AppointmentId>,
        limit: u32,
    ) -> TxResult<Vec<TrackerRecord>> {
        trackers::list(self.conn, after, limit)
    }
    fn users_with_trackers(&mut self) -> TxResult<Vec<UserId>> {
        trackers::users_with_trackers(self.conn)
    }

    fn upsert_pending_breach(
        &mut self,
        uuid: &AppointmentId,
        dispute_txid: &Txid,
        block_hash: &BlockHash,
        block_height: u32,
    ) -> TxResult<()> {
        pending::insert(self.conn, uuid, dispute_txid, block_hash, block_height)
    }
    fn pending_breaches_after(
        &mut self,
        after: Option<&AppointmentId>,
        limit: u32,
    ) -> TxResult<Vec<PendingBreach>> {
        pending::list_after(self.conn, after, limit)
    }
    fn delete_pending_breach(&mut self, uuid: &AppointmentId) -> TxResult<bool> {
        pending::delete(self.conn, uuid)
    }
    fn has_pending_breach(&mut self, uuid: &AppointmentId) -> TxResult<bool> {
        pending::contains(self.conn, uuid)
    }
    fn delete_pending_breaches_of_block(&mut self, block_hash: &BlockHash) -> TxResult<usize> {
        pending::delete_by_block(self.conn, block_hash)
    }
    fn delete_pending_breaches_from(&mut self, height: u32) -> TxResult<usize> {
        pending::delete_from_height(self.conn, height)
    }

    fn chain_tip(&mut self) -> TxResult<Option<(u32, BlockHash)>> {
        chain::tip(self.conn)
    }
    fn push_block(
        &mut self,
        height: u32,
        hash: &BlockHash,
        chainwork: Option<Work>,
        keep: u32,
    ) -> TxResult<()> {
        chain::push_with_work(self.conn, height, hash, chainwork, keep)
    }
    fn pop_blocks(&mut self, height: u32) -> TxResult<usize> {
        chain::pop(self.conn, height)
    }
    fn set_block_txids(&mut self, height: u32, hash: &BlockHash, txids: &[Txid]) -> TxResult<bool> {
        chain::set_txids(self.conn, height, hash, txids)
    }
    fn clear_block_txids_below(&mut self, height: u32) -> TxResult<usize> {
        chain::clear_txids_below(self.conn, height)
    }
    fn block_txids(&mut self, height: u32) -> TxResult<Option<Vec<Txid>>> {
        chain::txids_at(self.conn, height)
    }
    fn recent_blocks(&mut self) -> TxResult<Vec<(u32, BlockHash)>> {
        chain::recent(self.conn)
    }
    fn block_work(&mut self, hash: &BlockHash) -> TxResult<Option<Work>> {
        chain::work_of(self.conn, hash)
    }
    fn block_hash_at(&mut self, height: u32) -> TxResult<Option<BlockHash>> {
        chain::hash_at(self.conn, height)
    }
    fn block_height(&mut self, hash: &BlockHash) -> TxResult<Option<u32>> {
        chain::height_of(self.conn, hash)
    }

    fn latest_tower_key(&mut self) -> TxResult<Option<SecretKey>> {
        keys::latest(self.conn)
    }
    fn insert_tower_key(&mut self, key: &SecretKey) -> TxResult<i64> {
        keys::insert(self.conn, key)
    }
    fn count_tower_keys(&mut self) -> TxResult<u64> {
        keys::count(self.conn)
    }

    fn savepoint(&mut self, name: &'static str) -> TxResult<()> {
        self.conn.execute_batch(&format!("SAVEPOINT {name}"))?;
        Ok(())
    }
    fn release_savepoint(&mut self, name: &'static str) -> TxResult<()> {
        self.conn.execute_batch(&format!("RELEASE {name}"))?;
        Ok(())
    }
    fn rollback_savepoint(&mut self, name: &'static str) -> TxResult<()> {
        self.conn
            .execute_batch(&format!("ROLLBACK TO {name}; RELEASE {name}"))?;
        Ok(())
    }
}
