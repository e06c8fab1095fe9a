//! Queries on `appointments` (the Watcher's data).
//!
//! "Watched" appointments are those without a tracker: the Watcher still looks for their breach.
//! Appointments with a tracker belong to the Responder and are deleted through
//! [`trackers::delete`](super::trackers::delete).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::batch::select_in;
use super::error::StorageError;
use super::records::{
    AppointmentId, AppointmentRecord, Locator, UserId, appointment_id_at, count_to_u64, locator_at,
    user_id_at,
};

/// Column list matching [`from_row`].
const COLUMNS: &str = "a.uuid, a.locator, a.user_id, a.encrypted_blob, a.to_self_delay, \
                       a.user_signature, a.start_block, a.slots";

/// Maps a row selected with [`COLUMNS`].
fn from_row(row: &Row<'_>) -> Result<AppointmentRecord, StorageError> {
    Ok(AppointmentRecord {
        uuid: appointment_id_at(row, 0)?,
        locator: locator_at(row, 1)?,
        user_id: user_id_at(row, 2)?,
        encrypted_blob: row.get(3)?,
        to_self_delay: row.get(4)?,
        user_signature: row.get(5)?,
        start_block: row.get(6)?,
        slots: row.get(7)?,
    })
}

/// The appointment with id `uuid`, with or without tracker.
pub fn get(
    conn: &Connection,
    uuid: &AppointmentId,
) -> Result<Option<AppointmentRecord>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM appointments a WHERE a.uuid = ?1"
    ))?;
    let mut rows = stmt.query_and_then([uuid.as_bytes()], from_row)?;
    rows.next().transpose()
}

/// Inserts the appointment or updates every field of an existing one with the same `uuid` (an
/// appointment update, PROTOCOL.md). The update keeps its tracker and pending breach (no delete-insert).
///
/// Errors: `Sqlite` foreign-key failure if `user_id` is not a registered user.
pub fn upsert(conn: &Connection, record: &AppointmentRecord) -> Result<(), StorageError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO appointments (uuid, locator, user_id, encrypted_blob, to_self_delay,
                                   user_signature, start_block, slots)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (uuid) DO UPDATE SET locator = excluded.locator, user_id = excluded.user_id,
             encrypted_blob = excluded.encrypted_blob, to_self_delay = excluded.to_self_delay,
             user_signature = excluded.user_signature, start_block = excluded.start_block,
             slots = excluded.slots",
    )?;
    stmt.execute(params![
        record.uuid.as_bytes(),
        record.locator.as_bytes(),
        record.user_id.to_bytes(),
        record.encrypted_blob,
        record.to_self_delay,
        record.user_signature,
        record.start_block,
        record.slots
    ])?;
    Ok(())
}

/// Deletes the appointment (and, by cascade, its tracker and pending breach). Returns whether it existed.
pub fn delete(conn: &Connection, uuid: &AppointmentId) -> Result<bool, StorageError> {
    let mut stmt = conn.prepare_cached("DELETE FROM appointments WHERE uuid = ?1")?;
    Ok(stmt.execute([uuid.as_bytes()])? > 0)
}

/// All appointments (watched or not) whose locator is in `locators`: the breach-detection query run
/// for every block's txids. Repeated locators yield their appointments once; order is unspecified.
///
/// Runs as chunked `IN (...)` lookups on the `appointments_locator` index (see `batch.rs`). Measured
/// in release mode on 1,000,000 appointments with 4,000 locators (`tests/storage_bench.rs`): about
/// 6-7 ms when 10 match, about 36 ms when all 4,000 match (mostly decoding the returned user ids).
/// A temp-table join measured the same, so the simpler form is used.
pub fn find_by_locators(
    conn: &Connection,
    locators: &[Locator],
) -> Result<Vec<AppointmentRecord>, StorageError> {
    let keys: Vec<[u8; 16]> = locators.iter().map(|l| *l.as_bytes()).collect();
    select_in(
        conn,
        &format!("SELECT {COLUMNS} FROM appointments a"),
        "a.locator",
        &keys,
        from_row,
    )
}

/// The appointment of `user_id` for `locator`, if any (a user has at most one per locator when uuids
/// are derived from locator and user id).
pub fn get_by_locator_and_user(
    conn: &Connection,
    locator: &Locator,
    user_id: &UserId,
) -> Result<Option<AppointmentRecord>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM appointments a WHERE a.locator = ?1 AND a.user_id = ?2 LIMIT 1"
    ))?;
    let mut rows =
        stmt.query_and_then(params![locator.as_bytes(), user_id.to_bytes()], from_row)?;
    rows.next().transpose()
}

/// Locators of all appointments of `user_id` (with or without tracker), in byte order.
pub fn locators_of_user(conn: &Connection, user_id: &UserId) -> Result<Vec<Locator>, StorageError> {
    let mut stmt = conn
        .prepare_cached("SELECT locator FROM appointments WHERE user_id = ?1 ORDER BY locator")?;
    let locators = stmt
        .query_and_then([user_id.to_bytes()], |row| locator_at(row, 0))?
        .collect::<Result<Vec<_>, StorageError>>()?;
    Ok(locators)
}

/// Ids of all appointments of `user_id` (with or without tracker), in byte order.
pub fn ids_of_user(
    conn: &Connection,
    user_id: &UserId,
) -> Result<Vec<AppointmentId>, StorageError> {
    let mut stmt =
        conn.prepare_cached("SELECT uuid FROM appointments WHERE user_id = ?1 ORDER BY uuid")?;
    let ids = stmt
        .query_and_then([user_id.to_bytes()], |row| appointment_id_at(row, 0))?
        .collect::<Result<Vec<_>, StorageError>>()?;
    Ok(ids)
}

/// One page of the user's appointment ids, for the admin API's `get_user_paged`: at most `limit`
/// ids whose row id is above `after` (`None` = from the first), in row-id order, each with its row
/// id (the next page's cursor).
///
/// Row-id order, not uuid order: the `appointments_user` index holds `(user_id, rowid)`, so a page
/// is one index range scan whatever the user's number of appointments (uuid order would sort all
/// of them for every page). An update keeps its row id.
pub fn ids_of_user_page(
    conn: &Connection,
    user_id: &UserId,
    after: Option<i64>,
    limit: u32,
) -> Result<Vec<(i64, AppointmentId)>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT rowid, uuid FROM appointments
         WHERE user_id = ?1 AND rowid > ?2 ORDER BY rowid LIMIT ?3",
    )?;
    let ids = stmt
        .query_and_then(
            params![user_id.to_bytes(), after.unwrap_or(i64::MIN), limit],
            |row| Ok((row.get(0)?, appointment_id_at(row, 1)?)),
        )?
        .collect::<Result<Vec<_>, StorageError>>()?;
    Ok(ids)
}

/// Number of appointments, with or without tracker.
pub fn count(conn: &Connection) -> Result<u64, StorageError> {
    let mut stmt = conn.prepare_cached("SELECT COUNT(*) FROM appointments")?;
    Ok(count_to_u64(stmt.query_row([], |row| row.get(0))?))
}

/// Number of appointments as kept by the `counters` table (migration V2): one row lookup where
/// [`count`] scans an index. 0 if the counter row is missing.
pub fn stored(conn: &Connection) -> Result<u64, StorageError> {
    counter(conn, "appointments")
}

/// The value of the `counters` row `name` (kept exact by triggers, migration V2), 0 if missing.
pub(crate) fn counter(conn: &Connection, name: &str) -> Result<u64, StorageError> {
    let mut stmt = conn.prepare_cached("SELECT value FROM counters WHERE name = ?1")?;
    let value: Option<i64> = stmt.query_row([name], |row| row.get(0)).optional()?;
    Ok(count_to_u64(value.unwrap_or(0)))
}

/// Number of watched appointments (no tracker). Every tracker references exactly one appointment
/// (primary key + foreign key), so this is `count(appointments) - count(trackers)`: two index counts
/// instead of an anti-join over all appointments.
pub fn count_watched(conn: &Connection) -> Result<u64, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT (SELECT COUNT(*) FROM appointments) - (SELECT COUNT(*) FROM trackers)",
    )?;
    Ok(count_to_u64(stmt.query_row([], |row| row.get(0))?))
}

/// Up to `limit` watched appointments (no tracker) in ascending uuid order, starting after `after`
/// (from the start if `None`). For the admin API's paged listing.
pub fn list_watched(
    conn: &Connection,
    after: Option<&AppointmentId>,
    limit: u32,
) -> Result<Vec<AppointmentRecord>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM appointments a
         WHERE (?1 IS NULL OR a.uuid > ?1)
           AND NOT EXISTS (SELECT 1 FROM trackers t WHERE t.uuid = a.uuid)
         ORDER BY a.uuid LIMIT ?2"
    ))?;
    let records = stmt
        .query_and_then(params![after.map(AppointmentId::as_bytes), limit], from_row)?
        .collect::<Result<Vec<_>, StorageError>>()?;
    Ok(records)
}

/// All appointments (any user, with or without tracker) with this locator. For the admin API.
pub fn by_locator(
    conn: &Connection,
    locator: &Locator,
) -> Result<Vec<AppointmentRecord>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM appointments a WHERE a.locator = ?1 ORDER BY a.uuid"
    ))?;
    let records = stmt
        .query_and_then([locator.as_bytes()], from_row)?
        .collect::<Result<Vec<_>, StorageError>>()?;
    Ok(records)
}

/// Calls `each` with the locator of every appointment (`SELECT locator FROM appointments`, a scan of
/// the locator index: ~0.2 s per million appointments), without collecting them.
///
/// Errors: storage errors, or a stored locator that is not 16 bytes ([`StorageError::Corrupt`]).
pub fn for_each_locator(
    conn: &Connection,
    each: &mut dyn FnMut(Locator),
) -> Result<(), StorageError> {
    let mut stmt = conn.prepare("SELECT locator FROM appointments")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let bytes = row
            .get_ref(0)?
            .as_blob()
            .map_err(|e| StorageError::Corrupt(format!("stored locator: {e}")))?;
        let locator = Locator::from_slice(bytes).map_err(|e| {
            StorageError::Corrupt(format!("stored locator of {} bytes: {e}", bytes.len()))
        })?;
        each(locator);
    }
    Ok(())
}
