//! Filling a tower database before teosd starts: users and appointments written directly through
//! `teosd::storage` (the same upserts the tower runs), in large transactions instead of one HTTP
//! request per appointment. The rows look like what the HTTP path stores; only the user signatures
//! are placeholders (teosd never re-verifies a stored signature).

use std::path::Path;
use std::time::{Duration, Instant};

use bitcoin::hashes::{Hash, sha256};
use teos_common::appointment::{AppointmentId, Locator};
use teosd::storage::{AppointmentRecord, Store, UserRecord, appointments, users};

use crate::clients::{BenchUser, TO_SELF_DELAY};
use crate::error::BenchError;

/// Rows written per write op (one transaction, one fsync).
const BATCH: u64 = 50_000;
/// Page cache of the prefill connection, as SQLite's `cache_size` (negative = KiB): 512 MiB.
const PREFILL_CACHE_KIB: i64 = -524_288;
/// A zbase32 signature is 104 characters; stored as text like a real one.
pub const PLACEHOLDER_SIGNATURE: &str = "d7prefilledsignatureprefilledsignatureprefilledsignatureprefilledsignatureprefilledsignatureprefilledsig";

/// What to write.
#[derive(Clone, Debug)]
pub struct PrefillSpec {
    /// Users `BenchUser::new(0..users)`, each with `slots` available and a subscription from
    /// `start` to `start + 1_000_000` blocks (never expiring during a run).
    pub users: u64,
    /// Appointments, spread over the users round-robin, with uniformly random-looking locators.
    pub appointments: u64,
    /// Encrypted blob size of each appointment (bytes).
    pub blob_size: usize,
    /// Subscription start and appointment `start_block` (the chain height at prefill).
    pub start: u32,
}

/// The locator of prefilled appointment `n`: the first 16 bytes of `sha256("prefill" || n)`, spread
/// like the prefixes of real txids, and never the locator of a block transaction.
pub fn prefill_locator(n: u64) -> Locator {
    let mut data = b"prefill".to_vec();
    data.extend_from_slice(&n.to_le_bytes());
    let digest = sha256::Hash::hash(&data).to_byte_array();
    // 16 of 32 bytes always make a locator.
    Locator::from_slice(&digest[..16]).unwrap_or_else(|_| unreachable!())
}

/// Writes `spec` into the database at `db_path` (created with teosd's schema if missing) and returns
/// how long it took. The database must not be open in a running teosd.
pub fn prefill(db_path: &Path, spec: &PrefillSpec) -> Result<Duration, BenchError> {
    if spec.users == 0 && spec.appointments > 0 {
        return Err(BenchError::Check(
            "appointments need at least one user".into(),
        ));
    }
    let started = Instant::now();
    let store = Store::open(db_path)?;
    let bench_users: Vec<BenchUser> = (0..spec.users).map(BenchUser::new).collect();
    let record = UserRecord {
        available_slots: 1_000_000,
        subscription_start: spec.start,
        subscription_expiry: spec.start.saturating_add(1_000_000),
    };
    let ids: Vec<_> = bench_users.iter().map(|u| u.id).collect();
    store.write_sqlite_blocking(move |conn| -> Result<(), BenchError> {
        // A big page cache for this connection only (the prefill's own Store): index pages stay in
        // memory instead of being spilled and re-read between batches.
        conn.pragma_update(None, "cache_size", PREFILL_CACHE_KIB)
            .map_err(teosd::storage::StorageError::from)?;
        for id in &ids {
            users::upsert(conn, id, &record)?;
        }
        Ok(())
    })?;
    let ids: std::sync::Arc<Vec<_>> =
        std::sync::Arc::new(bench_users.iter().map(|u| u.id).collect());
    let blob = vec![0xa5u8; spec.blob_size];
    let mut next = 0u64;
    while next < spec.appointments {
        let end = (next + BATCH).min(spec.appointments);
        let (ids, blob, start) = (ids.clone(), blob.clone(), spec.start);
        store.write_sqlite_blocking(move |conn| -> Result<(), BenchError> {
            for n in next..end {
                let user_id = ids[(n % ids.len() as u64) as usize];
                let locator = prefill_locator(n);
                appointments::upsert(
                    conn,
                    &AppointmentRecord {
                        uuid: AppointmentId::new(&locator, &user_id),
                        locator,
                        user_id,
                        encrypted_blob: blob.clone(),
                        to_self_delay: TO_SELF_DELAY,
                        user_signature: PLACEHOLDER_SIGNATURE.to_owned(),
                        start_block: start,
                        slots: 1,
                    },
                )?;
            }
            Ok(())
        })?;
        next = end;
    }
    store.close()?;
    Ok(started.elapsed())
}

/// Number of appointments in the database at `db_path` (opened after teosd stopped).
pub fn count_appointments(db_path: &Path) -> Result<u64, BenchError> {
    let store = Store::open(db_path)?;
    let count = store.read_sqlite_blocking(appointments::count)?;
    store.close()?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefilled_rows_are_counted_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("regtest").join("teos_db.sql3");
        let spec = PrefillSpec {
            users: 3,
            appointments: 50_001,
            blob_size: 10,
            start: 100,
        };
        prefill(&db, &spec).unwrap();
        assert_eq!(count_appointments(&db).unwrap(), 50_001);
    }

    #[test]
    fn prefill_locators_differ() {
        assert_ne!(prefill_locator(1), prefill_locator(2));
    }
}
