//! Queries on `appointments` (the Watcher's data), PostgreSQL dialect of
//! [`storage::appointments`](crate::storage::appointments). "Watched" appointments are those
//! without a tracker.

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::Type;
use postgres::{GenericClient, Row};

use super::super::error::StorageError;
use super::super::records::{AppointmentId, AppointmentRecord, Locator, UserId};
use super::rows::{
    appointment_id_at, big, count_at, get as column, locator_at, u32_at, user_id_at,
};

/// Column list matching [`from_row`].
const COLUMNS: &str = "a.uuid, a.locator, a.user_id, a.encrypted_blob, a.to_self_delay, \
                       a.user_signature, a.start_block, a.slots";

fn from_row(row: &Row) -> Result<AppointmentRecord, StorageError> {
    Ok(AppointmentRecord {
        uuid: appointment_id_at(row, 0)?,
        locator: locator_at(row, 1)?,
        user_id: user_id_at(row, 2)?,
        encrypted_blob: column(row, 3)?,
        to_self_delay: u32_at(row, 4)?,
        user_signature: column(row, 5)?,
        start_block: u32_at(row, 6)?,
        slots: u32_at(row, 7)?,
    })
}

fn collect(rows: Vec<Row>) -> Result<Vec<AppointmentRecord>, StorageError> {
    rows.iter().map(from_row).collect()
}

/// The appointment with id `uuid`, with or without tracker.
pub fn get(
    client: &mut impl GenericClient,
    uuid: &AppointmentId,
) -> Result<Option<AppointmentRecord>, StorageError> {
    client
        .query_typed_opt(
            &format!("SELECT {COLUMNS} FROM appointments a WHERE a.uuid = $1"),
            &[(&uuid.as_bytes().as_slice(), Type::BYTEA)],
        )?
        .map(|row| from_row(&row))
        .transpose()
}

/// Inserts the appointment or updates every field of an existing one with the same `uuid` (in
/// place: its tracker, pending breach and `seq` stay).
///
/// Errors: `ForeignKeyViolation` if `user_id` is not a registered user.
pub fn upsert(
    client: &mut impl GenericClient,
    record: &AppointmentRecord,
) -> Result<(), StorageError> {
    let user = record.user_id.to_bytes();
    client.execute_typed(
        "INSERT INTO appointments (uuid, locator, user_id, encrypted_blob, to_self_delay,
                                   user_signature, start_block, slots)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (uuid) DO UPDATE SET locator = EXCLUDED.locator, user_id = EXCLUDED.user_id,
             encrypted_blob = EXCLUDED.encrypted_blob, to_self_delay = EXCLUDED.to_self_delay,
             user_signature = EXCLUDED.user_signature, start_block = EXCLUDED.start_block,
             slots = EXCLUDED.slots",
        &[
            (&record.uuid.as_bytes().as_slice(), Type::BYTEA),
            (&record.locator.as_bytes().as_slice(), Type::BYTEA),
            (&user.as_slice(), Type::BYTEA),
            (&record.encrypted_blob.as_slice(), Type::BYTEA),
            (&big(record.to_self_delay), Type::INT8),
            (&record.user_signature.as_str(), Type::TEXT),
            (&big(record.start_block), Type::INT8),
            (&big(record.slots), Type::INT8),
        ],
    )?;
    Ok(())
}

/// Deletes the appointment (and, by cascade, its tracker and pending breach). Returns whether it
/// existed.
pub fn delete(client: &mut impl GenericClient, uuid: &AppointmentId) -> Result<bool, StorageError> {
    Ok(client.execute_typed(
        "DELETE FROM appointments WHERE uuid = $1",
        &[(&uuid.as_bytes().as_slice(), Type::BYTEA)],
    )? > 0)
}

/// All appointments whose locator is in `locators` (a block's breach scan), each once, in no
/// particular order: one `locator = ANY($1)` statement on the `appointments_locator` index.
pub fn find_by_locators(
    client: &mut impl GenericClient,
    locators: &[Locator],
) -> Result<Vec<AppointmentRecord>, StorageError> {
    if locators.is_empty() {
        return Ok(Vec::new());
    }
    let mut keys: Vec<&[u8]> = locators.iter().map(|l| l.as_bytes().as_slice()).collect();
    keys.sort_unstable();
    keys.dedup();
    collect(client.query_typed(
        &format!("SELECT {COLUMNS} FROM appointments a WHERE a.locator = ANY($1)"),
        &[(&keys, Type::BYTEA_ARRAY)],
    )?)
}

/// The appointment of `user_id` for `locator`, if any.
pub fn get_by_locator_and_user(
    client: &mut impl GenericClient,
    locator: &Locator,
    user_id: &UserId,
) -> Result<Option<AppointmentRecord>, StorageError> {
    let user = user_id.to_bytes();
    client
        .query_typed_opt(
            &format!(
                "SELECT {COLUMNS} FROM appointments a WHERE a.locator = $1 AND a.user_id = $2 \
                 LIMIT 1"
            ),
            &[
                (&locator.as_bytes().as_slice(), Type::BYTEA),
                (&user.as_slice(), Type::BYTEA),
            ],
        )?
        .map(|row| from_row(&row))
        .transpose()
}

/// Locators of all appointments of `user_id`, in byte order.
pub fn locators_of_user(
    client: &mut impl GenericClient,
    user_id: &UserId,
) -> Result<Vec<Locator>, StorageError> {
    let user = user_id.to_bytes();
    client
        .query_typed(
            "SELECT locator FROM appointments WHERE user_id = $1 ORDER BY locator",
            &[(&user.as_slice(), Type::BYTEA)],
        )?
        .iter()
        .map(|row| locator_at(row, 0))
        .collect()
}

/// Ids of all appointments of `user_id`, in byte order.
pub fn ids_of_user(
    client: &mut impl GenericClient,
    user_id: &UserId,
) -> Result<Vec<AppointmentId>, StorageError> {
    let user = user_id.to_bytes();
    client
        .query_typed(
            "SELECT uuid FROM appointments WHERE user_id = $1 ORDER BY uuid",
            &[(&user.as_slice(), Type::BYTEA)],
        )?
        .iter()
        .map(|row| appointment_id_at(row, 0))
        .collect()
}

/// One page of the user's appointment ids: at most `limit` whose `seq` is above `after` (`None` =
/// from the first), in `seq` (insertion) order, each with its `seq` (the next page's cursor). The
/// counterpart of SQLite's row-id pages: one range scan of the `(user_id, seq)` index.
pub fn ids_of_user_page(
    client: &mut impl GenericClient,
    user_id: &UserId,
    after: Option<i64>,
    limit: u32,
) -> Result<Vec<(i64, AppointmentId)>, StorageError> {
    let user = user_id.to_bytes();
    client
        .query_typed(
            "SELECT seq, uuid FROM appointments WHERE user_id = $1 AND seq > $2 ORDER BY seq \
             LIMIT $3",
            &[
                (&user.as_slice(), Type::BYTEA),
                (&after.unwrap_or(i64::MIN), Type::INT8),
                (&big(limit), Type::INT8),
            ],
        )?
        .iter()
        .map(|row| Ok((column(row, 0)?, appointment_id_at(row, 1)?)))
        .collect()
}

/// Number of appointments, with or without tracker (`count(*)`).
pub fn count(client: &mut impl GenericClient) -> Result<u64, StorageError> {
    let row = client.query_typed_one("SELECT count(*) FROM appointments", &[])?;
    count_at(&row, 0)
}

/// Number of appointments as kept by the `counters` shards.
pub fn stored(client: &mut impl GenericClient) -> Result<u64, StorageError> {
    super::counter(client, "appointments")
}

/// Number of watched appointments (no tracker): `count(appointments) - count(trackers)`.
pub fn count_watched(client: &mut impl GenericClient) -> Result<u64, StorageError> {
    let row = client.query_typed_one(
        "SELECT (SELECT count(*) FROM appointments) - (SELECT count(*) FROM trackers)",
        &[],
    )?;
    count_at(&row, 0)
}

/// Up to `limit` watched appointments in ascending uuid order, starting after `after`.
pub fn list_watched(
    client: &mut impl GenericClient,
    after: Option<&AppointmentId>,
    limit: u32,
) -> Result<Vec<AppointmentRecord>, StorageError> {
    let after: &[u8] = after.map_or(&[], |uuid| uuid.as_bytes().as_slice());
    collect(client.query_typed(
        &format!(
            "SELECT {COLUMNS} FROM appointments a
             WHERE a.uuid > $1 AND NOT EXISTS (SELECT 1 FROM trackers t WHERE t.uuid = a.uuid)
             ORDER BY a.uuid LIMIT $2"
        ),
        &[(&after, Type::BYTEA), (&big(limit), Type::INT8)],
    )?)
}

/// All appointments (any user, with or without tracker) with this locator, by uuid.
pub fn by_locator(
    client: &mut impl GenericClient,
    locator: &Locator,
) -> Result<Vec<AppointmentRecord>, StorageError> {
    collect(client.query_typed(
        &format!("SELECT {COLUMNS} FROM appointments a WHERE a.locator = $1 ORDER BY a.uuid"),
        &[(&locator.as_bytes().as_slice(), Type::BYTEA)],
    )?)
}

/// Calls `each` with the locator of every appointment, streaming the rows (`query_typed_raw`)
/// instead of collecting them.
///
/// Errors: storage errors, or a stored locator that is not 16 bytes ([`StorageError::Corrupt`]).
pub fn for_each_locator(
    client: &mut impl GenericClient,
    each: &mut dyn FnMut(Locator),
) -> Result<(), StorageError> {
    let mut rows = client.query_typed_raw(
        "SELECT locator FROM appointments",
        std::iter::empty::<(&(dyn postgres::types::ToSql + Sync), Type)>(),
    )?;
    while let Some(row) = rows.next()? {
        each(locator_at(&row, 0)?);
    }
    Ok(())
}
