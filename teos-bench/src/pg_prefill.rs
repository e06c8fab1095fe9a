//! Filling a fleet's PostgreSQL database before its towers start: the same users and appointments as
//! the SQLite prefill ([`crate::prefill`]), bulk-loaded with binary `COPY … FROM STDIN` into the
//! tables of `migrations/postgresql/`, in transactions of [`BATCH`] rows.
//!
//! teosd must have started once on the database before (it creates the schema, the tower key and
//! the chain state; see [`crate::pg::init_and_prefill`]) and must not run meanwhile. The row counters
//! the caps use (`counters`) are kept by the schema's own statement triggers, which `COPY` fires.
//! After the load the two tables are vacuumed and analyzed, as autovacuum would do on a tower that
//! grew to that size, so the planner knows their sizes.

use std::time::{Duration, Instant};

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::{Client, NoTls};
use teos_common::appointment::{AppointmentId, UserId};

use crate::clients::{BenchUser, TO_SELF_DELAY};
use crate::error::BenchError;
use crate::prefill::{PLACEHOLDER_SIGNATURE, PrefillSpec, prefill_locator};

/// Rows per transaction.
pub const BATCH: u64 = 100_000;

/// Bulk-loads `spec` into the teosd database at `url` (see the module docs); returns how long it
/// took.
///
/// Errors: [`BenchError::Postgres`] (connecting, the schema missing: teosd never ran on it, a row
/// already there), [`BenchError::Check`] (appointments without users).
pub fn prefill_pg(url: &str, spec: &PrefillSpec) -> Result<Duration, BenchError> {
    if spec.users == 0 && spec.appointments > 0 {
        return Err(BenchError::Check(
            "appointments need at least one user".into(),
        ));
    }
    let started = Instant::now();
    let mut client = Client::connect(url, NoTls)?;
    // Not waiting for the WAL flush of each batch: a failed prefill is simply run again.
    client.batch_execute("SET synchronous_commit = off")?;
    let users: Vec<UserId> = (0..spec.users).map(|n| BenchUser::new(n).id).collect();
    let ids: Vec<Vec<u8>> = users.iter().map(|id| id.to_bytes().to_vec()).collect();
    let start = i64::from(spec.start);
    let expiry = i64::from(spec.start.saturating_add(1_000_000));

    let mut tx = client.transaction()?;
    let sink = tx.copy_in(
        "COPY users (user_id, available_slots, subscription_start, subscription_expiry) \
         FROM STDIN (FORMAT binary)",
    )?;
    let mut writer =
        BinaryCopyInWriter::new(sink, &[Type::BYTEA, Type::INT8, Type::INT8, Type::INT8]);
    for id in &ids {
        writer.write(&[id, &1_000_000i64, &start, &expiry])?;
    }
    writer.finish()?;
    tx.commit()?;

    let blob = vec![0xa5u8; spec.blob_size];
    let delay = i64::from(TO_SELF_DELAY);
    let mut next = 0u64;
    while next < spec.appointments {
        let end = (next + BATCH).min(spec.appointments);
        let mut tx = client.transaction()?;
        let sink = tx.copy_in(
            "COPY appointments (uuid, locator, user_id, encrypted_blob, to_self_delay, \
             user_signature, start_block, slots) FROM STDIN (FORMAT binary)",
        )?;
        let mut writer = BinaryCopyInWriter::new(
            sink,
            &[
                Type::BYTEA,
                Type::BYTEA,
                Type::BYTEA,
                Type::BYTEA,
                Type::INT8,
                Type::TEXT,
                Type::INT8,
                Type::INT8,
            ],
        );
        for n in next..end {
            let user = (n % spec.users) as usize;
            let locator = prefill_locator(n);
            let uuid = AppointmentId::new(&locator, &users[user]);
            writer.write(&[
                &uuid.as_bytes().as_slice(),
                &locator.as_bytes().as_slice(),
                &ids[user],
                &blob,
                &delay,
                &PLACEHOLDER_SIGNATURE,
                &start,
                &1i64,
            ])?;
        }
        writer.finish()?;
        tx.commit()?;
        next = end;
    }
    // One statement per call: several in one string would run in one implicit transaction, where
    // VACUUM is refused.
    client.batch_execute("VACUUM (ANALYZE) users")?;
    client.batch_execute("VACUUM (ANALYZE) appointments")?;
    Ok(started.elapsed())
}

/// `(users, appointments)` rows in the teosd database at `url`.
///
/// Errors: [`BenchError::Postgres`].
pub fn count_rows(url: &str) -> Result<(u64, u64), BenchError> {
    let mut client = Client::connect(url, NoTls)?;
    let row = client.query_one(
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM appointments)",
        &[],
    )?;
    let users: i64 = row.get(0);
    let appointments: i64 = row.get(1);
    Ok((users.max(0) as u64, appointments.max(0) as u64))
}
