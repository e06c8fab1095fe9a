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
use crate::gatekeeper::{self, Capacity, Counted, SubscriptionParams, storage_error};
use crate::mempool_watch::MempoolResponses;
use crate::shutdown::Wakeup;
use crate::storage::Store;
use crate::watcher::{self, AppointmentRules};

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
        let (view, params) = (self.view.clone(), self.subscription);
        let max_users = self.capacity.max_users;
        let user = self
            .store
            .write(move |tx| {
                let new = tx.user(&user_id).map_err(storage_error)?.is_none();
                let user = gatekeeper::register(tx, &user_id, view.height(), &params)?;
                if new {
                    gatekeeper::check_capacity(tx, Counted::Users, max_users)?;
                }
                Ok::<_, ApiError>(user)
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
        let (view, rules, locator) = (self.view.clone(), self.rules, appointment.locator);
        let user_signature = signature.clone();
        let max_appointments = self.capacity.max_appointments;
        let uuid = AppointmentId::new(&locator, &user_id);
        let accepted = self
            .store
            .write(move |tx| {
                let new = tx.appointment(&uuid).map_err(storage_error)?.is_none();
                let accepted = watcher::store_appointment(
                    tx,
                    &view,
                    &user_id,
                    &appointment,
                    &user_signature,
                    &rules,
                )?;
                if new {
                    gatekeeper::check_capacity(tx, Counted::Appointments, max_appointments)?;
                }
                Ok::<_, ApiError>(accepted)
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
