//! The Gatekeeper: users, subscriptions and slots (PROTOCOL.md, "Subscriptions").
//!
//! The request-side rules run inside storage commands ([`Register`] here, `watcher::AddAppointment`),
//! so slot accounting is atomic with the write it pays for, whatever the backend.

use teos_common::appointment::UserId;
use teos_common::errors::{ApiError, ErrorCode};

use crate::carrier::Interrupted;
use crate::chain_view::SharedChainView;
use crate::config::Config;
use crate::listen::{ConnectedBlock, Decision, DisconnectedBlock, Listen};
use crate::storage::records::UserRecord;
use crate::storage::{Command, Order, StorageError, Tx};

/// Subscription terms handed to every registration.
#[derive(Clone, Copy, Debug)]
pub struct SubscriptionParams {
    /// Slots granted per registration (`subscription_slots`, default 10000).
    pub slots: u32,
    /// Blocks a registration lasts (`subscription_duration`, default 4320).
    pub duration: u32,
    /// Blocks after expiry before the user's data is deleted (`expiry_delta`, default 6).
    pub expiry_delta: u32,
}

/// Command: registers `user_id`, or renews its subscription, at the tower's height when the command
/// runs (read from the chain view on the writer, so it is the height of the last committed block);
/// see [`subscription_after`] for the arithmetic. A new user beyond `max_users` is refused
/// ([`check_capacity`]) and nothing is stored.
///
/// Errors: code 65 when the slots would overflow `u32`; the tower full of users → 32; storage → 32.
#[derive(Clone)]
pub struct Register {
    /// The user registering (its public key).
    pub user_id: UserId,
    /// The chain view, for the height the subscription starts at.
    pub view: SharedChainView,
    /// Subscription terms.
    pub params: SubscriptionParams,
    /// Most registered users (`max_users`, 0 = no cap).
    pub max_users: u32,
}

impl Command for Register {
    type Output = UserRecord;
    type Error = ApiError;
    const NAME: &'static str = "register";
    const ORDER: Order = Order::Free;

    fn run(self, tx: &mut dyn Tx) -> Result<UserRecord, ApiError> {
        let height = if tx.shared() {
            committed_height(tx)?
        } else {
            self.view.height()
        };
        let old = tx.user(&self.user_id).map_err(storage_error)?;
        let user = subscription_after(old.as_ref(), height, &self.params)?;
        tx.upsert_user(&self.user_id, &user)
            .map_err(storage_error)?;
        if old.is_none() {
            check_capacity(tx, Counted::Users, self.max_users)?;
        }
        Ok(user)
    }
}

/// A fleet (shared database): the tip the leader last committed, in blocks. Before the first leader
/// bootstrapped the chain there is none, and the request is refused with code 32 (answered "retry
/// later", code 7, on `add_appointment`): a subscription needs a start block, and a dispute mined
/// before the bootstrap block would never be scanned for an appointment accepted then.
///
/// Errors: code 32 without a committed tip; storage errors.
pub fn committed_height(tx: &mut dyn Tx) -> Result<u32, ApiError> {
    match tx.chain_tip().map_err(storage_error)? {
        Some((height, _)) => Ok(height),
        None => Err(ApiError::new(
            ErrorCode::ServiceUnavailable,
            "The tower is starting (no chain state yet), retry later",
        )),
    }
}

/// The subscription a registration at `height` (blocks) gives, from the user's current one (`None`
/// for an unknown user).
///
/// - New user: `params.slots` slots, start = `height`, expiry = `height + duration` (PROTOCOL.md
///   "Subscriptions").
/// - Renewal of a live subscription (`height < old expiry`): slots are added, the expiry is extended by
///   `duration` from the old expiry and the start is unchanged (PROTOCOL.md; rust-teos #81).
/// - Renewal of an expired subscription (`height >= old expiry`) **(ours)**: slots are added as for any
///   renewal, but the new period is counted from `height`: start = `height`, expiry =
///   `height + duration`. A user is only still stored after expiry during the `expiry_delta` grace
///   window or when a tracker keeps it past outdating; extending from the old expiry there could sign
///   a receipt for a subscription that is already over. rust-teos would have deleted such a user and
///   registered it afresh with the same start and expiry.
///
/// Heights saturate at `u32::MAX`. Errors: code 65 (REGISTRATION_RESOURCE_EXHAUSTED) when the slots
/// would overflow `u32`.
pub fn subscription_after(
    old: Option<&UserRecord>,
    height: u32,
    params: &SubscriptionParams,
) -> Result<UserRecord, ApiError> {
    let fresh = |available_slots| UserRecord {
        available_slots,
        subscription_start: height,
        subscription_expiry: height.saturating_add(params.duration),
    };
    let Some(old) = old else {
        return Ok(fresh(params.slots));
    };
    let available_slots = old
        .available_slots
        .checked_add(params.slots)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::RegistrationResourceExhausted,
                "Subscription maximum slots count reached",
            )
        })?;
    if height >= old.subscription_expiry {
        return Ok(fresh(available_slots));
    }
    Ok(UserRecord {
        available_slots,
        subscription_start: old.subscription_start,
        subscription_expiry: old.subscription_expiry.saturating_add(params.duration),
    })
}

/// The user's record if registered and not expired at `height`.
///
/// Unknown user → code 7 with `unknown_message` (each endpoint words it like rust-teos);
/// expired (`height >= subscription_expiry`) → code 7 "Your subscription expired at <expiry>".
pub fn authorize(
    tx: &mut dyn Tx,
    user_id: &UserId,
    height: u32,
    unknown_message: &str,
) -> Result<UserRecord, ApiError> {
    let user = tx.user(user_id).map_err(storage_error)?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidSignatureOrSubscriptionError,
            unknown_message,
        )
    })?;
    if height >= user.subscription_expiry {
        return Err(ApiError::new(
            ErrorCode::InvalidSignatureOrSubscriptionError,
            format!("Your subscription expired at {}", user.subscription_expiry),
        ));
    }
    Ok(user)
}

/// The Gatekeeper's block side (see [`Listen`]): users expire with the chain.
pub struct Gatekeeper {
    /// Blocks after expiry before a user's data is deleted (`expiry_delta`).
    pub expiry_delta: u32,
}

impl Listen for Gatekeeper {
    type Found = ();

    /// Users outdated at this height are removed with their appointments, except what a tracker not
    /// yet irrevocably resolved still needs (`Tx::delete_outdated_users`).
    fn block_connected(
        &self,
        block: &ConnectedBlock<'_>,
        _: Self::Found,
    ) -> Result<Vec<Decision>, Interrupted> {
        Ok(vec![Decision::RemoveOutdatedUsers {
            height: block.height,
            expiry_delta: self.expiry_delta,
        }])
    }

    /// Nothing: a removed user stays removed (its data is gone), as in rust-teos.
    fn block_disconnected(&self, _: &DisconnectedBlock, _: Self::Found) -> Vec<Decision> {
        Vec::new()
    }
}

/// Maps a storage failure to code 32 (SERVICE_UNAVAILABLE), nothing stored (no receipt): 503 JSON,
/// or for `add_appointment` 401 / code 7 "retry later" (`api::http`, "Held back").
pub fn storage_error(e: impl Into<StorageError>) -> ApiError {
    let e: StorageError = e.into();
    tracing::error!("storage error: {e}");
    ApiError::new(
        ErrorCode::ServiceUnavailable,
        "Service currently unavailable",
    )
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        storage_error(e)
    }
}

// ---- Capacity: caps on users and appointments (RELIABILITY.md, "Limits") -------------------------

/// How many users and appointments the tower holds at most **(ours)**; 0 = no cap. python-teos
/// capped appointments at 1,000,000 (`MAX_APPOINTMENTS`); rust-teos had no cap.
///
/// Only growth is refused: renewing an existing subscription or updating an existing appointment
/// always passes. A refusal is code 32 (SERVICE_UNAVAILABLE): the request was well-formed and
/// authentic, the tower cannot take it now, and a client should try later or use another tower. A new
/// user gets it as 503 JSON (as python-teos answered "rejected" with 503 when full); a new appointment
/// gets 401 / code 7 "retry later", because the reference client files an appointment refused with
/// any other code as invalid and never resends it (`api::http`, "Held back").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Most registered users (`max_users`).
    pub max_users: u32,
    /// Most stored appointments, watched or triggered (`max_appointments`).
    pub max_appointments: u32,
}

impl Default for Capacity {
    /// The `teos.toml` defaults: 1,000,000 of each.
    fn default() -> Capacity {
        Capacity::from_config(&Config::default())
    }
}

impl Capacity {
    /// `max_users` and `max_appointments` of `config`.
    pub fn from_config(config: &Config) -> Capacity {
        Capacity {
            max_users: config.max_users,
            max_appointments: config.max_appointments,
        }
    }
}

/// What [`check_capacity`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// Rows of `users`.
    Users,
    /// Rows of `appointments`.
    Appointments,
}

/// Refuses a write op that made `what` grow past `cap` (0 = no cap). Call it inside the write op,
/// after inserting a new row: the op's `Err` rolls its savepoint back, so nothing of the refused request
/// is stored. Counts come from the backend's counters ([`Tx::stored_users`], [`Tx::stored_appointments`]).
///
/// Errors: over the cap → code 32 with a message saying the tower is full; storage → 32.
pub fn check_capacity(tx: &mut dyn Tx, what: Counted, cap: u32) -> Result<(), ApiError> {
    if cap == 0 {
        return Ok(());
    }
    let (name, message) = match what {
        Counted::Users => (
            "users",
            "Registration rejected: the tower is not accepting new users (user limit reached)",
        ),
        Counted::Appointments => (
            "appointments",
            "Appointment rejected: the tower is full (appointment limit reached)",
        ),
    };
    let count = match what {
        Counted::Users => tx.stored_users(),
        Counted::Appointments => tx.stored_appointments(),
    }
    .map_err(storage_error)?;
    if count > u64::from(cap) {
        tracing::warn!(what = name, count, cap, "capacity reached: request refused");
        return Err(ApiError::new(ErrorCode::ServiceUnavailable, message));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: SubscriptionParams = SubscriptionParams {
        slots: 100,
        duration: 50,
        expiry_delta: 6,
    };

    fn record(slots: u32, start: u32, expiry: u32) -> UserRecord {
        UserRecord {
            available_slots: slots,
            subscription_start: start,
            subscription_expiry: expiry,
        }
    }

    #[test]
    fn a_new_user_starts_at_the_current_height() {
        assert_eq!(
            subscription_after(None, 1000, &PARAMS).unwrap(),
            record(100, 1000, 1050)
        );
    }

    #[test]
    fn a_live_subscription_is_extended_from_its_old_expiry_with_the_start_kept() {
        let old = record(30, 900, 1010);
        assert_eq!(
            subscription_after(Some(&old), 1000, &PARAMS).unwrap(),
            record(130, 900, 1060)
        );
        // One block before expiry is still live.
        assert_eq!(
            subscription_after(Some(&old), 1009, &PARAMS).unwrap(),
            record(130, 900, 1060)
        );
    }

    #[test]
    fn an_expired_subscription_is_renewed_from_the_current_height() {
        // Expired exactly at this height (height >= expiry is expired, PROTOCOL.md).
        let old = record(30, 900, 1000);
        assert_eq!(
            subscription_after(Some(&old), 1000, &PARAMS).unwrap(),
            record(130, 1000, 1050)
        );
        // Kept long past outdating by a tracker: old expiry + duration (1050) is already over at 2000.
        let renewed = subscription_after(Some(&old), 2000, &PARAMS).unwrap();
        assert_eq!(renewed, record(130, 2000, 2050));
        assert!(renewed.subscription_expiry > 2000, "not expired at once");
    }

    #[test]
    fn slot_overflow_is_code_65_for_live_and_expired_subscriptions() {
        for expiry in [900, 1100] {
            let old = record(u32::MAX - 99, 800, expiry);
            let error = subscription_after(Some(&old), 1000, &PARAMS).unwrap_err();
            assert_eq!(error.code, ErrorCode::RegistrationResourceExhausted);
        }
        let old = record(u32::MAX - 100, 800, 900);
        assert_eq!(
            subscription_after(Some(&old), 1000, &PARAMS)
                .unwrap()
                .available_slots,
            u32::MAX
        );
    }

    #[test]
    fn heights_saturate_instead_of_wrapping() {
        let old = record(1, 0, u32::MAX - 10);
        assert_eq!(
            subscription_after(Some(&old), 5, &PARAMS)
                .unwrap()
                .subscription_expiry,
            u32::MAX
        );
        assert_eq!(
            subscription_after(None, u32::MAX - 1, &PARAMS)
                .unwrap()
                .subscription_expiry,
            u32::MAX
        );
    }
}
