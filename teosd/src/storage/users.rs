//! Queries on `users` (the Gatekeeper's subscriptions).
//!
//! All functions take a `&Connection`, so they run inside [`Store::write`](super::Store::write) ops
//! (writes) or [`Store::read`](super::Store::read) ops (reads).

use rusqlite::{Connection, OptionalExtension, params};

use super::error::StorageError;
use super::records::{UserId, UserRecord, count_to_u64, user_id_at};

/// The user's subscription, or `None` if the user is not registered.
pub fn get(conn: &Connection, user_id: &UserId) -> Result<Option<UserRecord>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT available_slots, subscription_start, subscription_expiry FROM users WHERE user_id = ?1",
    )?;
    let record = stmt
        .query_row([user_id.to_bytes()], |row| {
            Ok(UserRecord {
                available_slots: row.get(0)?,
                subscription_start: row.get(1)?,
                subscription_expiry: row.get(2)?,
            })
        })
        .optional()?;
    Ok(record)
}

/// Inserts the user or replaces its subscription. Never deletes the user's appointments (an `UPDATE`,
/// not SQLite's delete-then-insert `REPLACE`, which would cascade).
pub fn upsert(
    conn: &Connection,
    user_id: &UserId,
    record: &UserRecord,
) -> Result<(), StorageError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO users (user_id, available_slots, subscription_start, subscription_expiry)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (user_id) DO UPDATE SET available_slots = excluded.available_slots,
             subscription_start = excluded.subscription_start,
             subscription_expiry = excluded.subscription_expiry",
    )?;
    stmt.execute(params![
        user_id.to_bytes(),
        record.available_slots,
        record.subscription_start,
        record.subscription_expiry
    ])?;
    Ok(())
}

/// Ids of all users, in ascending byte order. Loads every id (33 bytes each); use
/// [`list_ids_after`] for paging.
pub fn list_ids(conn: &Connection) -> Result<Vec<UserId>, StorageError> {
    let mut stmt = conn.prepare_cached("SELECT user_id FROM users ORDER BY user_id")?;
    let ids = stmt
        .query_and_then([], |row| user_id_at(row, 0))?
        .collect::<Result<Vec<_>, StorageError>>()?;
    Ok(ids)
}

/// Up to `limit` user ids in ascending byte order, starting after `after` (from the start if `None`).
/// Pass the last id of a page as `after` to get the next page.
pub fn list_ids_after(
    conn: &Connection,
    after: Option<&UserId>,
    limit: u32,
) -> Result<Vec<UserId>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT user_id FROM users WHERE ?1 IS NULL OR user_id > ?1 ORDER BY user_id LIMIT ?2",
    )?;
    let ids = stmt
        .query_and_then(params![after.map(UserId::to_bytes), limit], |row| {
            user_id_at(row, 0)
        })?
        .collect::<Result<Vec<_>, StorageError>>()?;
    Ok(ids)
}

/// Number of registered users.
pub fn count(conn: &Connection) -> Result<u64, StorageError> {
    let mut stmt = conn.prepare_cached("SELECT COUNT(*) FROM users")?;
    Ok(count_to_u64(stmt.query_row([], |row| row.get(0))?))
}

/// Number of users as kept by the `counters` table (migration V2): one row lookup where [`count`]
/// scans the table. 0 if the counter row is missing.
pub fn stored(conn: &Connection) -> Result<u64, StorageError> {
    super::appointments::counter(conn, "users")
}

/// Removes what expired subscriptions leave behind at block `height` and returns the ids of the users
/// that were deleted.
///
/// A user is outdated when `subscription_expiry + expiry_delta <= height` (heights in blocks;
/// `expiry_delta` is the grace period, rust-teos' `EXPIRY_DELTA`). Outdated users with no tracker are
/// deleted with all their appointments (cascade). Outdated users that still have trackers keep their
/// user row and the appointments that have a tracker (the Responder still needs them, rust-teos
/// behaviour); only their watched appointments (no tracker) are deleted.
pub fn delete_outdated(
    conn: &Connection,
    height: u32,
    expiry_delta: u32,
) -> Result<Vec<UserId>, StorageError> {
    // `expiry <= height - delta` in 64-bit arithmetic so the index on subscription_expiry is usable.
    let limit = i64::from(height) - i64::from(expiry_delta);
    let mut delete_users = conn.prepare_cached(
        "DELETE FROM users WHERE subscription_expiry <= ?1 AND NOT EXISTS (
             SELECT 1 FROM appointments a JOIN trackers t ON t.uuid = a.uuid
             WHERE a.user_id = users.user_id)
         RETURNING user_id",
    )?;
    let deleted = delete_users
        .query_and_then([limit], |row| user_id_at(row, 0))?
        .collect::<Result<Vec<_>, StorageError>>()?;
    let mut trim = conn.prepare_cached(
        "DELETE FROM appointments WHERE user_id IN (
             SELECT user_id FROM users WHERE subscription_expiry <= ?1)
         AND NOT EXISTS (SELECT 1 FROM trackers t WHERE t.uuid = appointments.uuid)",
    )?;
    trim.execute([limit])?;
    Ok(deleted)
}

/// Adds `delta` (negative to charge, positive to refund) to the user's available slots and returns
/// the new value.
///
/// Errors: [`StorageError::NotFound`] for an unknown user; [`StorageError::SlotsOutOfRange`] if the
/// result would be below 0 or above `u32::MAX` (nothing is changed then).
pub fn add_slots(conn: &Connection, user_id: &UserId, delta: i64) -> Result<u32, StorageError> {
    let current = get(conn, user_id)?.ok_or(StorageError::NotFound("user"))?;
    let new = i64::from(current.available_slots)
        .checked_add(delta)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or(StorageError::SlotsOutOfRange {
            available: current.available_slots,
            delta,
        })?;
    let mut stmt =
        conn.prepare_cached("UPDATE users SET available_slots = ?2 WHERE user_id = ?1")?;
    stmt.execute(params![user_id.to_bytes(), new])?;
    Ok(new)
}
