//! The Watcher: accepts appointments and finds the breaches they describe (PROTOCOL.md,
//! "Appointments", "Triggered appointments").
//!
//! Request side: [`inspect`] checks an appointment's fields, the [`AddAppointment`] command stores it
//! ([`store_appointment`]: slot accounting, late-appointment detection). Block side: [`find_breaches`]
//! decrypts the appointments whose locator matched a block transaction.

use std::collections::HashMap;

use bitcoin::{Transaction, Txid};
use teos_common::appointment::{Appointment, AppointmentId, Locator, UserId, compute_slots};
use teos_common::cryptography;
use teos_common::errors::{ApiError, ErrorCode};

use crate::carrier::Interrupted;
use crate::chain_view::SharedChainView;
use crate::gatekeeper::{self, Counted, storage_error};
use crate::listen::{ConnectedBlock, Decision, DisconnectedBlock, Listen};
use crate::locator_cache::CachedTx;
use crate::responder::{Breach, TrackerChange};
use crate::storage::records::{AppointmentRecord, UserRecord};
use crate::storage::{Command, Order, Tx};

/// Limits on appointment fields (PROTOCOL.md, "Appointments").
#[derive(Clone, Copy, Debug)]
pub struct AppointmentRules {
    /// Smallest accepted `to_self_delay` (blocks; `min_to_self_delay`, default 20).
    pub min_to_self_delay: u32,
    /// Largest accepted encrypted blob (bytes; `max_encrypted_blob_size`, default 2048).
    pub max_blob_size: usize,
    /// Bytes of blob one slot pays for (2048).
    pub slot_size: usize,
}

/// Checks the fields a parser cannot: empty blob (code 33), blob over the limit (34), `to_self_delay`
/// below the minimum (33).
pub fn inspect(appointment: &Appointment, rules: &AppointmentRules) -> Result<(), ApiError> {
    let len = appointment.encrypted_blob.len();
    if len == 0 {
        return Err(ApiError::new(
            ErrorCode::AppointmentFieldTooSmall,
            "encrypted_blob is empty",
        ));
    }
    if len > rules.max_blob_size {
        return Err(ApiError::new(
            ErrorCode::AppointmentFieldTooBig,
            format!(
                "encrypted_blob is too big ({len} bytes, at most {} accepted)",
                rules.max_blob_size
            ),
        ));
    }
    if appointment.to_self_delay < rules.min_to_self_delay {
        return Err(ApiError::new(
            ErrorCode::AppointmentFieldTooSmall,
            format!(
                "to_self_delay is too small ({} blocks, at least {} required)",
                appointment.to_self_delay, rules.min_to_self_delay
            ),
        ));
    }
    Ok(())
}

/// An appointment accepted by [`store_appointment`].
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The tower's height when it was accepted (the receipt's `start_block`).
    pub start_block: u32,
    /// The user after paying for it.
    pub user: UserRecord,
    /// Its dispute is already in a recent block: the Responder must answer it now.
    pub late_breach: bool,
    /// Its dispute is already in a recent block but its blob does not decrypt with that txid: it was
    /// charged for and not stored (see [`store_appointment`]).
    pub discarded: bool,
    /// It replaced the user's earlier appointment for the same locator (an update, PROTOCOL.md):
    /// the number of stored appointments did not grow.
    pub updated: bool,
}

const NOT_ENOUGH_SLOTS: &str = "Invalid signature or user does not have enough slots available";

/// Stores (or updates) `user_id`'s appointment and charges its slots, atomically. Runs inside a storage
/// write (the [`AddAppointment`] command), strictly ordered with block scans (see `chain_view`).
///
/// A late appointment (its locator is in the locator cache: the dispute is already in a recent block)
/// is decrypted here with the dispute's txid (PROTOCOL.md "Triggered appointments"). If it decrypts,
/// it is stored with a pending breach that the block processor answers. If it does not, it is charged
/// for and NOT stored, and the request still gets its receipt, as rust-teos does: an appointment that
/// triggers and cannot be decrypted is deleted with no refund (PROTOCOL.md "Subscriptions"), and the
/// block pipeline never sees it.
///
/// Errors: unknown user, expired subscription or not enough slots → code 7; the appointment already
/// triggered (a tracker or a pending breach exists for its uuid) → code 35; storage failure → 32.
pub fn store_appointment(
    tx: &mut dyn Tx,
    view: &SharedChainView,
    user_id: &UserId,
    appointment: &Appointment,
    user_signature: &str,
    rules: &AppointmentRules,
) -> Result<Accepted, ApiError> {
    let (height, cached) = if tx.shared() {
        // A fleet (docs/fleet.md "Ordering"): the command holds `chain_tip` FOR SHARE, so this is
        // the tip committed by the leader's last block commit, and a block scanned after it but not
        // committed yet is already in `recent_locators` (its scan committed before this began).
        let height = gatekeeper::committed_height(tx)?;
        let cached = tx
            .recent_dispute(&appointment.locator)
            .map_err(storage_error)?
            .map(|(txid, block_hash, height)| CachedTx {
                txid,
                block_hash,
                height,
            });
        (height, cached)
    } else {
        let view = view.lock();
        (view.tip_height, view.cache.get(&appointment.locator))
    };
    let mut user = gatekeeper::authorize(tx, user_id, height, NOT_ENOUGH_SLOTS)?;
    let uuid = AppointmentId::new(&appointment.locator, user_id);
    let triggered = tx.tracker(&uuid).map_err(storage_error)?.is_some()
        || tx.has_pending_breach(&uuid).map_err(storage_error)?;
    if triggered {
        return Err(ApiError::new(
            ErrorCode::AppointmentAlreadyTriggered,
            "The provided appointment has already been triggered",
        ));
    }
    let slots = compute_slots(appointment.encrypted_blob.len(), rules.slot_size);
    let old = tx.appointment(&uuid).map_err(storage_error)?;
    let updated = old.is_some();
    let old_slots = old.map_or(0, |a| a.slots);
    let available = i64::from(user.available_slots) + i64::from(old_slots) - i64::from(slots);
    user.available_slots = u32::try_from(available).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidSignatureOrSubscriptionError,
            NOT_ENOUGH_SLOTS,
        )
    })?;
    let record = AppointmentRecord {
        uuid,
        locator: appointment.locator,
        user_id: *user_id,
        encrypted_blob: appointment.encrypted_blob.clone(),
        to_self_delay: appointment.to_self_delay,
        user_signature: user_signature.to_owned(),
        start_block: height,
        slots,
    };
    if let Some(cached) = cached
        && let Err(e) = cryptography::decrypt(&appointment.encrypted_blob, &cached.txid)
    {
        tx.upsert_user(user_id, &user).map_err(storage_error)?;
        tracing::info!(%uuid, dispute = %cached.txid, "late appointment does not decrypt with its dispute's txid ({e}); charged, not stored");
        return Ok(Accepted {
            start_block: height,
            user,
            late_breach: false,
            discarded: true,
            updated,
        });
    }
    tx.upsert_appointment(&record).map_err(storage_error)?;
    // Same write as the insert, so no block scan runs between the two (see watched_locators).
    view.lock().watched.insert(&appointment.locator);
    tx.upsert_user(user_id, &user).map_err(storage_error)?;
    if let Some(cached) = cached {
        tx.upsert_pending_breach(&uuid, &cached.txid, &cached.block_hash, cached.height)
            .map_err(storage_error)?;
        tracing::info!(%uuid, dispute = %cached.txid, "late appointment: its dispute is already on chain");
    }
    Ok(Accepted {
        start_block: height,
        user,
        late_breach: cached.is_some(),
        discarded: false,
        updated,
    })
}

/// Command: stores `user_id`'s appointment (or its update) and charges its slots
/// ([`store_appointment`]), refusing a new appointment beyond `max_appointments`
/// ([`gatekeeper::check_capacity`]; an update always passes). Ordered with block scans and commits
/// ([`Order::WithBlocks`], the rule of `chain_view`): it sees the tip and locator cache of the last
/// committed block, and the next block's scan sees it.
///
/// Errors: those of [`store_appointment`]; the tower full → code 32.
#[derive(Clone)]
pub struct AddAppointment {
    /// The chain view: tip height, locator cache and watched-locators index.
    pub view: SharedChainView,
    /// The appointment's owner (recovered from its signature).
    pub user_id: UserId,
    /// The appointment, already inspected ([`inspect`]).
    pub appointment: Appointment,
    /// The user's signature of the appointment (zbase32), stored with it.
    pub user_signature: String,
    /// Limits on appointment fields (slot size).
    pub rules: AppointmentRules,
    /// Most stored appointments (`max_appointments`, 0 = no cap).
    pub max_appointments: u32,
}

impl Command for AddAppointment {
    type Output = Accepted;
    type Error = ApiError;
    const NAME: &'static str = "add_appointment";
    const ORDER: Order = Order::WithBlocks;

    fn run(self, tx: &mut dyn Tx) -> Result<Accepted, ApiError> {
        let accepted = store_appointment(
            tx,
            &self.view,
            &self.user_id,
            &self.appointment,
            &self.user_signature,
            &self.rules,
        )?;
        if !accepted.updated {
            gatekeeper::check_capacity(tx, Counted::Appointments, self.max_appointments)?;
        }
        Ok(accepted)
    }
}

/// The Watcher's block side (see [`Listen`]): decrypts the appointments a block triggers.
pub struct Watcher;

impl Listen for Watcher {
    /// The stored appointments whose locator matched a transaction of the block (outdated users and
    /// appointments already answered left out).
    type Found = Vec<AppointmentRecord>;

    /// A [`Decision::Breach`] for each appointment that decrypts, a [`TrackerChange::Invalid`] for
    /// each that does not.
    fn block_connected(
        &self,
        block: &ConnectedBlock<'_>,
        found: Self::Found,
    ) -> Result<Vec<Decision>, Interrupted> {
        let (breaches, invalid) = find_breaches(found, block.txs, block.height);
        Ok(breaches
            .into_iter()
            .map(Decision::Breach)
            .chain(invalid.into_iter().map(Decision::Tracker))
            .collect())
    }

    /// Late appointments whose dispute was in the block are watched again.
    fn block_disconnected(&self, block: &DisconnectedBlock, _: Self::Found) -> Vec<Decision> {
        vec![Decision::ForgetLate {
            from_height: block.height,
            hash: block.hash,
        }]
    }
}

/// Decrypts every appointment that matched a transaction of a block.
///
/// `txs` maps each locator of the block to its transaction. Returns the breaches to answer and the
/// [`TrackerChange::Invalid`]s of blobs that do not decrypt to a transaction (deleted, no refund:
/// PROTOCOL.md "Subscriptions").
pub fn find_breaches(
    matches: Vec<AppointmentRecord>,
    txs: &HashMap<Locator, (Txid, &Transaction)>,
    height: u32,
) -> (Vec<Breach>, Vec<TrackerChange>) {
    let mut breaches = Vec::new();
    let mut invalid = Vec::new();
    for appointment in matches {
        let Some((txid, dispute_tx)) = txs.get(&appointment.locator) else {
            continue;
        };
        match cryptography::decrypt(&appointment.encrypted_blob, txid) {
            Ok(penalty_tx) => {
                tracing::info!(uuid = %appointment.uuid, dispute = %txid, height, "breach detected");
                breaches.push(Breach {
                    uuid: appointment.uuid,
                    user_id: appointment.user_id,
                    dispute_tx: (*dispute_tx).clone(),
                    penalty_tx,
                    dispute_height: height,
                    to_self_delay: appointment.to_self_delay,
                })
            }
            Err(e) => invalid.push(TrackerChange::Invalid {
                uuid: appointment.uuid,
                encrypted_blob: appointment.encrypted_blob,
                reason: format!("breach detected but the blob does not decrypt: {e}"),
            }),
        }
    }
    (breaches, invalid)
}

#[cfg(test)]
mod tests {
    //! The Watcher's request side (inspection, storage with slot accounting, late appointments) and its
    //! block side (decrypting what a block triggered).

    use bitcoin::BlockHash;
    use bitcoin::hashes::Hash;

    use super::*;
    use crate::storage::Store;
    use crate::test_fixtures::{tx, user};

    const RULES: AppointmentRules = AppointmentRules {
        min_to_self_delay: 20,
        max_blob_size: 2048,
        slot_size: 2048,
    };

    /// An appointment for dispute tx(n) whose blob decrypts to penalty tx(n + 1000) (or garbage).
    fn appointment(n: u32, decryptable: bool) -> Appointment {
        let txid = tx(n).compute_txid();
        Appointment {
            locator: Locator::new(&txid),
            encrypted_blob: if decryptable {
                cryptography::encrypt(&tx(n + 1000), &txid)
            } else {
                vec![7; 100]
            },
            to_self_delay: 42,
        }
    }

    struct World {
        store: Store,
        view: SharedChainView,
        _dir: tempfile::TempDir,
    }

    impl World {
        /// A store with one user holding 10 slots, a view at height 100.
        fn new() -> World {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("teos.db")).unwrap();
            store
                .write_blocking(|conn| {
                    conn.upsert_user(
                        &user(),
                        &UserRecord {
                            available_slots: 10,
                            subscription_start: 100,
                            subscription_expiry: 200,
                        },
                    )
                })
                .unwrap();
            World {
                store,
                view: SharedChainView::new(100, BlockHash::all_zeros(), 6),
                _dir: dir,
            }
        }

        fn store(&self, appointment: &Appointment) -> Result<Accepted, ApiError> {
            self.store.execute_blocking(AddAppointment {
                view: self.view.clone(),
                user_id: user(),
                appointment: appointment.clone(),
                user_signature: "sig".into(),
                rules: RULES,
                max_appointments: 0,
            })
        }

        fn stored(&self, appointment: &Appointment) -> Option<AppointmentRecord> {
            let uuid = AppointmentId::new(&appointment.locator, &user());
            self.store
                .read_blocking(move |conn| conn.appointment(&uuid))
                .unwrap()
        }

        fn pending(&self) -> Vec<crate::storage::records::PendingBreach> {
            self.store
                .read_blocking(|tx| tx.pending_breaches_after(None, u32::MAX))
                .unwrap()
        }
    }

    #[test]
    fn inspection_refuses_empty_and_oversized_blobs_and_short_delays() {
        let mut a = appointment(1, true);
        assert!(inspect(&a, &RULES).is_ok());
        a.encrypted_blob.clear();
        assert_eq!(
            inspect(&a, &RULES).unwrap_err().code,
            ErrorCode::AppointmentFieldTooSmall
        );
        a.encrypted_blob = vec![0; 2049];
        assert_eq!(
            inspect(&a, &RULES).unwrap_err().code,
            ErrorCode::AppointmentFieldTooBig
        );
        let mut a = appointment(1, true);
        a.to_self_delay = 19;
        assert_eq!(
            inspect(&a, &RULES).unwrap_err().code,
            ErrorCode::AppointmentFieldTooSmall
        );
    }

    #[test]
    fn an_appointment_is_stored_and_charged_and_an_update_is_charged_the_difference() {
        let world = World::new();
        let a = appointment(1, true);
        let accepted = world.store(&a).unwrap();
        assert_eq!(
            (accepted.start_block, accepted.user.available_slots),
            (100, 9)
        );
        assert!(!accepted.late_breach && !accepted.discarded);
        assert!(world.stored(&a).is_some());
        // Same locator, a blob two slots long: one more slot.
        let mut bigger = a.clone();
        bigger.encrypted_blob = vec![1; 2049];
        assert_eq!(world.store(&bigger).unwrap().user.available_slots, 8);
        assert_eq!(world.stored(&a).unwrap().encrypted_blob, vec![1; 2049]);
    }

    #[test]
    fn an_appointment_without_slots_or_of_an_unknown_user_is_refused_with_code_7() {
        let world = World::new();
        for n in 0..10 {
            world.store(&appointment(n, true)).unwrap();
        }
        let refused = world.store(&appointment(10, true)).unwrap_err();
        assert_eq!(refused.code, ErrorCode::InvalidSignatureOrSubscriptionError);
        assert!(world.stored(&appointment(10, true)).is_none());
    }

    #[test]
    fn a_late_appointment_that_decrypts_is_stored_with_a_pending_breach_at_its_block() {
        let world = World::new();
        let block = BlockHash::from_byte_array([9; 32]);
        world
            .view
            .lock()
            .cache
            .connect_block(block, 98, &[tx(1).compute_txid()]);
        let a = appointment(1, true);
        let accepted = world.store(&a).unwrap();
        assert!(accepted.late_breach);
        assert!(world.stored(&a).is_some());
        let pending = world.pending();
        assert_eq!(pending.len(), 1);
        assert_eq!(
            (pending[0].block_hash, pending[0].block_height),
            (block, Some(98))
        );
        // Sent again while the breach is pending: already triggered.
        assert_eq!(
            world.store(&a).unwrap_err().code,
            ErrorCode::AppointmentAlreadyTriggered
        );
    }

    #[test]
    fn a_late_appointment_that_does_not_decrypt_is_charged_and_not_stored() {
        let world = World::new();
        world.view.lock().cache.connect_block(
            BlockHash::from_byte_array([9; 32]),
            98,
            &[tx(1).compute_txid()],
        );
        let a = appointment(1, false);
        let accepted = world.store(&a).unwrap();
        assert!(accepted.discarded && !accepted.late_breach);
        assert_eq!(accepted.user.available_slots, 9);
        assert!(world.stored(&a).is_none());
        assert!(world.pending().is_empty());
        let charged = world
            .store
            .read_blocking(|conn| conn.user(&user()))
            .unwrap()
            .unwrap();
        assert_eq!(charged.available_slots, 9);
    }

    #[test]
    fn a_triggered_appointment_decrypts_to_a_breach_or_is_invalid() {
        let (good, bad) = (appointment(1, true), appointment(2, false));
        let record = |a: &Appointment| AppointmentRecord {
            uuid: AppointmentId::new(&a.locator, &user()),
            locator: a.locator,
            user_id: user(),
            encrypted_blob: a.encrypted_blob.clone(),
            to_self_delay: 42,
            user_signature: "sig".into(),
            start_block: 100,
            slots: 1,
        };
        let (d1, d2) = (tx(1), tx(2));
        let txs: HashMap<Locator, (Txid, &Transaction)> = [
            (good.locator, (d1.compute_txid(), &d1)),
            (bad.locator, (d2.compute_txid(), &d2)),
        ]
        .into_iter()
        .collect();
        let (breaches, invalid) = find_breaches(vec![record(&good), record(&bad)], &txs, 105);
        assert_eq!(breaches.len(), 1);
        assert_eq!(breaches[0].penalty_tx, tx(1001));
        assert_eq!(
            (breaches[0].dispute_height, breaches[0].to_self_delay),
            (105, 42)
        );
        assert!(matches!(
            &invalid[..],
            [TrackerChange::Invalid { encrypted_blob, .. }] if *encrypted_blob == bad.encrypted_blob
        ));
    }
}
