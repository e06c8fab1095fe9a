//! The Gatekeeper: users, subscriptions and slots (PROTOCOL.md, "Subscriptions").
//!
//! Every function here runs inside a storage op, so slot accounting is atomic with the appointment
//! write it pays for.

use rusqlite::Connection;
use teos_common::appointment::UserId;
use teos_common::errors::{ApiError, ErrorCode};

use crate::storage::records::UserRecord;
use crate::storage::{StorageError, users};

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

/// Registers `user_id` at `height`, or renews an existing subscription.
///
/// New user: `slots` slots, start = `height`, expiry = `height + duration`. Existing user: slots are
/// added (u32 overflow → code 65) and the expiry extended by `duration` from the old expiry; the start
/// is unchanged (PROTOCOL.md; rust-teos #81).
pub fn register(
    conn: &Connection,
    user_id: &UserId,
    height: u32,
    params: &SubscriptionParams,
) -> Result<UserRecord, ApiError> {
    let user = match users::get(conn, user_id).map_err(storage_error)? {
        None => UserRecord {
            available_slots: params.slots,
            subscription_start: height,
            subscription_expiry: height.saturating_add(params.duration),
        },
        Some(old) => UserRecord {
            available_slots: old
                .available_slots
                .checked_add(params.slots)
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::RegistrationResourceExhausted,
                        "Subscription maximum slots count reached",
                    )
                })?,
            subscription_start: old.subscription_start,
            subscription_expiry: old.subscription_expiry.saturating_add(params.duration),
        },
    };
    users::upsert(conn, user_id, &user).map_err(storage_error)?;
    Ok(user)
}

/// The user's record if registered and not expired at `height`.
///
/// Unknown user → code 7 with `unknown_message` (each endpoint words it like rust-teos);
/// expired (`height >= subscription_expiry`) → code 7 "Your subscription expired at <expiry>".
pub fn authorize(
    conn: &Connection,
    user_id: &UserId,
    height: u32,
    unknown_message: &str,
) -> Result<UserRecord, ApiError> {
    let user = users::get(conn, user_id)
        .map_err(storage_error)?
        .ok_or_else(|| {
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

/// Deletes users outdated at `height` (`expiry + expiry_delta <= height`) with their appointments,
/// except what is still needed for a tracker whose penalty is not irrevocably resolved.
pub fn remove_outdated(
    conn: &Connection,
    height: u32,
    params: &SubscriptionParams,
) -> Result<Vec<UserId>, StorageError> {
    users::delete_outdated(conn, height, params.expiry_delta)
}

/// Maps a storage failure to the answer a client gets: 503 / code 32, nothing stored (no receipt).
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
