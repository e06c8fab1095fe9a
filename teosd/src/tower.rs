//! The tower as the public API sees it: the four protocol calls, answered by Gatekeeper and Watcher
//! against storage (PROTOCOL.md, "Endpoints"). HTTP handlers call these methods directly.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use secp256k1::SecretKey;
use teos_common::appointment::{Appointment, AppointmentId, Locator, TowerId, UserId};
use teos_common::cryptography;
use teos_common::errors::{ApiError, ErrorCode};
use teos_common::protocol::{
    AddAppointmentResponse, GET_SUBSCRIPTION_INFO_MESSAGE, GetAppointmentResponse,
    GetSubscriptionInfoResponse, RegisterResponse, TrackerData, get_appointment_message,
};
use teos_common::receipts::{AppointmentReceipt, RegistrationReceipt};

use crate::api::TowerApi;
use crate::chain_view::SharedChainView;
use crate::gatekeeper::{self, Capacity, Register, SubscriptionParams, storage_error};
use crate::mempool_watch::MempoolResponses;
use crate::shutdown::Wakeup;
use crate::storage::{Command, Order, StorageError, Store, Tx};
use crate::watcher::{self, AddAppointment, AppointmentRules};

/// The tower's signing identity. The secret key is never logged (no `Debug`).
pub struct TowerKey {
    secret: SecretKey,
    id: TowerId,
}

impl TowerKey {
    pub fn new(secret: SecretKey) -> TowerKey {
        let id = UserId(secret.public_key(secp256k1::SECP256K1));
        TowerKey { secret, id }
    }
    /// The tower id (its compressed public key).
    pub fn id(&self) -> TowerId {
        self.id
    }
    /// Signs `msg` the Lightning `signmessage` way (zbase32).
    pub fn sign(&self, msg: &[u8]) -> String {
        cryptography::sign(msg, &self.secret)
    }
    pub(crate) fn secret(&self) -> &SecretKey {
        &self.secret
    }
}

/// Command: the tower key to sign with: the newest stored one, or a fresh random key stored as the
/// newest when none exists or `replace` is set (`--overwritekey`; older keys are kept, rust-teos
/// behaviour). Read and insert in one transaction, so the key that is returned is the stored one.
///
/// Errors: storage errors; [`StorageError::Corrupt`] if the stored key is not a valid secret key.
#[derive(Clone, Copy, Debug)]
pub struct LoadOrCreateTowerKey {
    /// Store a new key even if one exists.
    pub replace: bool,
}

/// What [`LoadOrCreateTowerKey`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The newest stored key was loaded.
    Loaded,
    /// No key was stored: a new one was created.
    Created,
    /// A new key replaced the newest one (`replace`).
    Replaced,
}

impl Command for LoadOrCreateTowerKey {
    type Output = (TowerKey, KeyOrigin);
    type Error = StorageError;
    const NAME: &'static str = "load_or_create_tower_key";
    const ORDER: Order = Order::Free;

    fn run(self, tx: &mut dyn Tx) -> Result<(TowerKey, KeyOrigin), StorageError> {
        // A fleet: one key for every instance, even when they start together on an empty database.
        tx.lock_tower_keys()?;
        let existing = tx.latest_tower_key()?;
        let origin = match existing {
            Some(secret) if !self.replace => return Ok((TowerKey::new(secret), KeyOrigin::Loaded)),
            Some(_) => KeyOrigin::Replaced,
            None => KeyOrigin::Created,
        };
        let secret = SecretKey::new(&mut secp256k1::rand::thread_rng());
        tx.insert_tower_key(&secret)?;
        Ok((TowerKey::new(secret), origin))
    }
}

/// The public side of the tower.
pub struct Tower {
    store: Store,
    view: SharedChainView,
    key: TowerKey,
    subscription: SubscriptionParams,
    rules: AppointmentRules,
    reachable: Arc<AtomicBool>,
    wakeup: Arc<Wakeup>,
    /// Caps on users and appointments ([`Capacity::default`] unless [`Tower::with_capacity`]).
    capacity: Capacity,
    /// Breaches the mempool watcher answered before their dispute was mined (none unless
    /// [`Tower::with_mempool_responses`]): `get_appointment` answers them `dispute_responded`.
    mempool: MempoolResponses,
}

impl Tower {
    pub fn new(
        store: Store,
        view: SharedChainView,
        key: TowerKey,
        subscription: SubscriptionParams,
        rules: AppointmentRules,
        reachable: Arc<AtomicBool>,
        wakeup: Arc<Wakeup>,
    ) -> Tower {
        Tower {
            store,
            view,
            key,
            subscription,
            rules,
            reachable,
            wakeup,
            capacity: Capacity::default(),
            mempool: MempoolResponses::new(),
        }
    }

    /// This tower answering `get_appointment` from `responses` too (the mempool watcher's records).
    pub fn with_mempool_responses(mut self, responses: MempoolResponses) -> Tower {
        self.mempool = responses;
        self
    }

    /// This tower with the caps on users and appointments set to `capacity` (`max_users`,
    /// `max_appointments`; see [`Capacity`]).
    pub fn with_capacity(mut self, capacity: Capacity) -> Tower {
        self.capacity = capacity;
        self
    }

    /// The tower id.
    pub fn id(&self) -> TowerId {
        self.key.id()
    }

    /// Refuses service while bitcoind is unreachable: code 32. The HTTP layer answers it as 503 JSON,
    /// except for `add_appointment`, which gets 401 / code 7 "retry later" so that no client files the
    /// appointment as invalid (`api::http`, "Held back"); the client's retry succeeds once
    /// bitcoind is back.
    fn check_available(&self) -> Result<(), ApiError> {
        if self.reachable.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::ServiceUnavailable,
                "Service currently unavailable",
            ))
        }
    }

    /// Recovers the signer of `msg`; an unrecoverable signature is an authentication failure (code 7).
    fn recover(msg: &[u8], signature: &str, failure: &str) -> Result<UserId, ApiError> {
        cryptography::recover_pk(msg, signature)
            .map(UserId)
            .map_err(|_| ApiError::new(ErrorCode::InvalidSignatureOrSubscriptionError, failure))
    }
}

const USER_NOT_AUTHENTICATED: &str = "User cannot be authenticated";
const USER_NOT_FOUND: &str = "User not found. Have you registered?";
const INVALID_SIGNATURE: &str = "Invalid signature or user does not have enough slots available";

impl TowerApi for Tower {
    async fn register(&self, user_id: UserId) -> Result<RegisterResponse, ApiError> {
        self.check_available()?;
        let user = self
            .store
            .execute(Register {
                user_id,
                view: self.view.clone(),
                params: self.subscription,
                max_users: self.capacity.max_users,
            })
            .await?;
        let receipt = RegistrationReceipt {
            user_id,
            available_slots: user.available_slots,
            subscription_start: user.subscription_start,
            subscription_expiry: user.subscription_expiry,
        };
        tracing::info!(%user_id, slots = user.available_slots, expiry = user.subscription_expiry, "user registered");
        Ok(RegisterResponse {
            user_id,
            available_slots: user.available_slots,
            subscription_start: user.subscription_start,
            subscription_expiry: user.subscription_expiry,
            subscription_signature: receipt.sign(self.key.secret()),
        })
    }

    async fn add_appointment(
        &self,
        appointment: Appointment,
        signature: String,
    ) -> Result<AddAppointmentResponse, ApiError> {
        self.check_available()?;
        watcher::inspect(&appointment, &self.rules)?;
        let user_id = Self::recover(
            &appointment.to_signed_bytes(),
            &signature,
            INVALID_SIGNATURE,
        )?;
        let locator = appointment.locator;
        let accepted = self
            .store
            .execute(AddAppointment {
                view: self.view.clone(),
                user_id,
                appointment,
                user_signature: signature.clone(),
                rules: self.rules,
                max_appointments: self.capacity.max_appointments,
            })
            .await?;
        if accepted.late_breach {
            self.wakeup.wake();
        }
        let receipt = AppointmentReceipt {
            user_signature: signature,
            start_block: accepted.start_block,
        };
        tracing::debug!(%locator, %user_id, "appointment accepted");
        Ok(AddAppointmentResponse {
            locator,
            start_block: accepted.start_block,
            signature: receipt.sign(self.key.secret()),
            available_slots: accepted.user.available_slots,
            subscription_expiry: accepted.user.subscription_expiry,
        })
    }

    async fn get_appointment(
        &self,
        locator: Locator,
        signature: String,
    ) -> Result<GetAppointmentResponse, ApiError> {
        self.check_available()?;
        let message = get_appointment_message(&locator);
        let user_id = Self::recover(message.as_bytes(), &signature, USER_NOT_AUTHENTICATED)?;
        let height = self.view.height();
        let uuid = AppointmentId::new(&locator, &user_id);
        let found = self
            .store
            .read(move |tx| {
                gatekeeper::authorize(tx, &user_id, height, USER_NOT_AUTHENTICATED)?;
                if let Some(t) = tx.tracker(&uuid).map_err(storage_error)? {
                    return Ok(GetAppointmentResponse::DisputeResponded(TrackerData {
                        dispute_txid: t.dispute_txid,
                        penalty_txid: t.penalty_txid,
                        penalty_rawtx: t.penalty_tx,
                    }));
                }
                match tx.appointment(&uuid).map_err(storage_error)? {
                    Some(a) => Ok(GetAppointmentResponse::BeingWatched(Appointment {
                        locator: a.locator,
                        encrypted_blob: a.encrypted_blob,
                        to_self_delay: a.to_self_delay,
                    })),
                    None => Err(ApiError::new(
                        ErrorCode::AppointmentNotFound,
                        "Appointment not found",
                    )),
                }
            })
            .await?;
        // A watched appointment whose penalty bitcoind accepted while the dispute is unconfirmed (read
        // after the storage op, so no two locks are held at once).
        if matches!(found, GetAppointmentResponse::BeingWatched(_))
            && let Some(r) = self.mempool.get(&uuid)
        {
            return Ok(GetAppointmentResponse::DisputeResponded(TrackerData {
                dispute_txid: r.dispute_txid,
                penalty_txid: r.penalty_txid,
                penalty_rawtx: r.penalty_tx,
            }));
        }
        Ok(found)
    }

    async fn get_subscription_info(
        &self,
        signature: String,
    ) -> Result<GetSubscriptionInfoResponse, ApiError> {
        self.check_available()?;
        let user_id = Self::recover(
            GET_SUBSCRIPTION_INFO_MESSAGE.as_bytes(),
            &signature,
            USER_NOT_FOUND,
        )?;
        let height = self.view.height();
        self.store
            .read(move |tx| {
                let user = gatekeeper::authorize(tx, &user_id, height, USER_NOT_FOUND)?;
                let locators = tx.locators_of_user(&user_id).map_err(storage_error)?;
                Ok(GetSubscriptionInfoResponse {
                    available_slots: user.available_slots,
                    subscription_expiry: user.subscription_expiry,
                    locators,
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(store: &Store, replace: bool) -> (TowerId, KeyOrigin) {
        let (key, origin) = store
            .execute_blocking(LoadOrCreateTowerKey { replace })
            .unwrap();
        (key.id(), origin)
    }

    #[test]
    fn the_tower_key_is_created_once_then_loaded_and_replaced_only_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("teos.db")).unwrap();
        let (first, origin) = run(&store, false);
        assert_eq!(origin, KeyOrigin::Created);
        assert_eq!(run(&store, false), (first, KeyOrigin::Loaded));
        let (second, origin) = run(&store, true);
        assert_eq!(origin, KeyOrigin::Replaced);
        assert_ne!(second, first);
        assert_eq!(run(&store, false), (second, KeyOrigin::Loaded));
        let keys = store.read_blocking(|tx| tx.count_tower_keys()).unwrap();
        assert_eq!(keys, 2, "the replaced key is kept");
    }
}
