//! Queries on `users` (the Gatekeeper's subscriptions), PostgreSQL dialect of
//! [`storage::users`](crate::storage::users).
//!
//! Slot accounting is atomic without any lock held across statements: [`add_slots`] is ONE
//! conditional `UPDATE`, which PostgreSQL runs against the newest committed version of the row
//! (under READ COMMITTED an `UPDATE` that finds the row locked waits, then re-checks its `WHERE`
//! on the new version), so two transactions on two instances can never both spend the last slot.
//! A read-modify-write of a user row (renewing a subscription) must read it with [`get_for_update`].

use postgres::GenericClient;
use postgres::types::Type;

use super::super::error::StorageError;
use super::super::records::{UserId, UserRecord};
use super::rows::{big, count_at, u32_at, user_id_at};

const COLUMNS: &str = "available_slots, subscription_start, subscription_expiry";

fn record(row: &postgres::Row) -> Result<UserRecord, StorageError> {
    Ok(UserRecord {
        available_slots: u32_at(row, 0)?,
        subscription_start: u32_at(row, 1)?,
        subscription_expiry: u32_at(row, 2)?,
    })
}

/// The user's subscription, or `None` if the user is not registered.
pub fn get(
    client: &mut impl GenericClient,
    user_id: &UserId,
) -> Result<Option<UserRecord>, StorageError> {
    select_one(client, user_id, "")
}

/// [`get`], locking the row (`FOR UPDATE`) until the end of the transaction: another transaction's
/// change of this user waits, so a value computed from the record and written back with
/// [`upsert`] loses no concurrent change. A missing user is not locked: a concurrent first
/// registration of the same id then fails on the primary key (`UniqueViolation`, retry).
pub fn get_for_update(
    client: &mut impl GenericClient,
    user_id: &UserId,
) -> Result<Option<UserRecord>, StorageError> {
    select_one(client, user_id, " FOR UPDATE")
}

/// The user's row, the statement ending with `suffix` (a locking clause or nothing).
fn select_one(
    client: &mut impl GenericClient,
    user_id: &UserId,
    suffix: &str,
) -> Result<Option<UserRecord>, StorageError> {
    let id = user_id.to_bytes();
    client
        .query_typed_opt(
            &format!("SELECT {COLUMNS} FROM users WHERE user_id = $1{suffix}"),
            &[(&id.as_slice(), Type::BYTEA)],
        )?
        .map(|row| record(&row))
        .transpose()
}

/// Inserts the user or replaces its subscription (`ON CONFLICT DO UPDATE`: the row is updated in
/// place, its appointments stay).
pub fn upsert(
    client: &mut impl GenericClient,
    user_id: &UserId,
    record: &UserRecord,
) -> Result<(), StorageError> {
    let id = user_id.to_bytes();
    client.execute_typed(
        "INSERT INTO users (user_id, available_slots, subscription_start, subscription_expiry)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id) DO UPDATE SET available_slots = EXCLUDED.available_slots,
             subscription_start = EXCLUDED.subscription_start,
             subscription_expiry = EXCLUDED.subscription_expiry",
        &[
            (&id.as_slice(), Type::BYTEA),
            (&big(record.available_slots), Type::INT8),
            (&big(record.subscription_start), Type::INT8),
            (&big(record.subscription_expiry), Type::INT8),
        ],
    )?;
    Ok(())
}

/// Ids of all users, in ascending byte order.
pub fn list_ids(client: &mut impl GenericClient) -> Result<Vec<UserId>, StorageError> {
    list_ids_after(client, None, u32::MAX)
}

/// Up to `limit` user ids in ascending byte order, starting after `after` (from the start if
/// `None`).
pub fn list_ids_after(
    client: &mut impl GenericClient,
    after: Option<&UserId>,
    limit: u32,
) -> Result<Vec<UserId>, StorageError> {
    // The empty BYTEA sorts before every id.
    let after = after
        .map(UserId::to_bytes)
        .map(Vec::from)
        .unwrap_or_default();
    client
        .query_typed(
            "SELECT user_id FROM users WHERE user_id > $1 ORDER BY user_id LIMIT $2",
            &[(&after.as_slice(), Type::BYTEA), (&big(limit), Type::INT8)],
        )?
        .iter()
        .map(|row| user_id_at(row, 0))
        .collect()
}

/// Number of registered users (`count(*)`).
pub fn count(client: &mut impl GenericClient) -> Result<u64, StorageError> {
    let row = client.query_typed_one("SELECT count(*) FROM users", &[])?;
    count_at(&row, 0)
}

/// Number of users as kept by the `counters` shards (one small read where [`count`] scans).
pub fn stored(client: &mut impl GenericClient) -> Result<u64, StorageError> {
    super::counter(client, "users")
}

/// Removes what expired subscriptions leave behind at block `height`; returns the deleted users.
/// Same rule as SQLite's [`delete_outdated`](crate::storage::users::delete_outdated): users with
/// `subscription_expiry + expiry_delta <= height` and no tracker are deleted with their
/// appointments (cascade); those with trackers keep their row and their tracked appointments.
pub fn delete_outdated(
    client: &mut impl GenericClient,
    height: u32,
    expiry_delta: u32,
) -> Result<Vec<UserId>, StorageError> {
    let limit = i64::from(height) - i64::from(expiry_delta);
    let deleted = client
        .query_typed(
            "DELETE FROM users u WHERE u.subscription_expiry <= $1 AND NOT EXISTS (
                 SELECT 1 FROM appointments a JOIN trackers t ON t.uuid = a.uuid
                 WHERE a.user_id = u.user_id)
             RETURNING u.user_id",
            &[(&limit, Type::INT8)],
        )?
        .iter()
        .map(|row| user_id_at(row, 0))
        .collect::<Result<Vec<_>, _>>()?;
    client.execute_typed(
        "DELETE FROM appointments a WHERE a.user_id IN (
             SELECT user_id FROM users WHERE subscription_expiry <= $1)
         AND NOT EXISTS (SELECT 1 FROM trackers t WHERE t.uuid = a.uuid)",
        &[(&limit, Type::INT8)],
    )?;
    Ok(deleted)
}

/// Adds `delta` (negative to spend, positive to refund) to the user's available slots and returns
/// the new value, in ONE conditional `UPDATE` (see the module doc): concurrent calls never take
/// the balance below 0 or spend a slot twice.
///
/// Errors: [`StorageError::NotFound`] for an unknown user; [`StorageError::SlotsOutOfRange`] if the
/// result would be below 0 or above `u32::MAX` (nothing is changed then).
pub fn add_slots(
    client: &mut impl GenericClient,
    user_id: &UserId,
    delta: i64,
) -> Result<u32, StorageError> {
    let id = user_id.to_bytes();
    // A change larger than any balance is refused without asking PostgreSQL to add it (bigint
    // overflow is an error there).
    let in_reach = delta.unsigned_abs() <= u64::from(u32::MAX);
    let updated = if !in_reach {
        None
    } else {
        client.query_typed_opt(
            "UPDATE users SET available_slots = available_slots + $2
         WHERE user_id = $1 AND available_slots + $2 BETWEEN 0 AND 4294967295
         RETURNING available_slots",
            &[(&id.as_slice(), Type::BYTEA), (&delta, Type::INT8)],
        )?
    };
    if let Some(row) = updated {
        return u32_at(&row, 0);
    }
    // Refused: say why (the balance read here is only for the message).
    match get(client, user_id)? {
        None => Err(StorageError::NotFound("user")),
        Some(current) => Err(StorageError::SlotsOutOfRange {
            available: current.available_slots,
            delta,
        }),
    }
}
