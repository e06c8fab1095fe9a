//! The mempool watcher's record of the breaches it answered while their dispute is unconfirmed.
//!
//! Held in memory only, owned by the mempool watcher (its only writer) and read by `get_appointment`
//! (`tower`). Nothing of the block path reads it: the appointment stays in storage, watched, so a
//! record lost with a restart of teosd costs nothing but the time until the startup reconciliation
//! finds the dispute in the mempool again and re-creates it (bitcoind then answers the penalty as
//! already in its mempool).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bitcoin::{Transaction, Txid};
use teos_common::appointment::AppointmentId;

/// A breach answered from the mempool: bitcoind accepted the penalty while the dispute was unconfirmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MempoolResponse {
    /// The dispute (revoked commitment) seen in bitcoind's mempool.
    pub dispute_txid: Txid,
    /// The penalty's txid.
    pub penalty_txid: Txid,
    /// The penalty, as decrypted from the appointment.
    pub penalty_tx: Transaction,
    /// When bitcoind accepted the penalty.
    pub accepted_at: SystemTime,
    /// Whether it took `submitpackage [dispute, penalty]` (bitcoind refused the penalty alone).
    pub via_package: bool,
}

/// The records, by appointment (see the module docs). Cloning shares them.
#[derive(Clone, Default)]
pub struct MempoolResponses(Arc<Mutex<HashMap<AppointmentId, MempoolResponse>>>);

impl MempoolResponses {
    /// No record.
    pub fn new() -> MempoolResponses {
        MempoolResponses::default()
    }

    /// The one lock; never held across I/O or another lock.
    fn lock(&self) -> MutexGuard<'_, HashMap<AppointmentId, MempoolResponse>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record of appointment `uuid`, if its breach was answered from the mempool.
    pub fn get(&self, uuid: &AppointmentId) -> Option<MempoolResponse> {
        self.lock().get(uuid).cloned()
    }

    /// Whether appointment `uuid` has a record.
    pub fn contains(&self, uuid: &AppointmentId) -> bool {
        self.lock().contains_key(uuid)
    }

    /// Records (or replaces) the answer to appointment `uuid`'s breach.
    pub(crate) fn insert(&self, uuid: AppointmentId, response: MempoolResponse) {
        self.lock().insert(uuid, response);
    }

    /// Drops every record `drop` says, returning their appointments.
    pub(crate) fn remove_where(
        &self,
        mut drop: impl FnMut(&MempoolResponse) -> bool,
    ) -> Vec<AppointmentId> {
        let mut records = self.lock();
        let gone: Vec<AppointmentId> = records
            .iter()
            .filter(|(_, r)| drop(r))
            .map(|(uuid, _)| *uuid)
            .collect();
        for uuid in &gone {
            records.remove(uuid);
        }
        gone
    }

    /// The dispute txids of every record (a copy, so the caller holds no lock).
    pub(crate) fn disputes(&self) -> Vec<Txid> {
        self.lock().values().map(|r| r.dispute_txid).collect()
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no breach is answered from the mempool at the moment.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
