//! Fixtures of the storage benches: a temp database filled with many appointments quickly.
#![allow(dead_code)] // each bench uses a different subset

use bitcoin::hashes::{Hash, sha256};
use secp256k1::{PublicKey, SECP256K1, SecretKey};
use teosd::storage::{
    AppointmentId, AppointmentRecord, Locator, StorageError, Store, UserId, UserRecord,
};

/// Rows written per write op while filling.
const FILL_BATCH: u64 = 50_000;

/// Rows of the big benches: `TEOS_BENCH_ROWS` or 1,000,000.
pub fn rows_from_env() -> u64 {
    std::env::var("TEOS_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// User `n` (a valid key derived from `n`).
pub fn user(n: u64) -> UserId {
    let digest = sha256::Hash::hash(&n.to_le_bytes()).to_byte_array();
    let sk = SecretKey::from_slice(&digest).unwrap();
    UserId(PublicKey::from_secret_key(SECP256K1, &sk))
}

/// Locator of stored appointment `n`, spread like txid prefixes.
pub fn stored_locator(n: u64) -> Locator {
    let mut data = b"stored".to_vec();
    data.extend_from_slice(&n.to_le_bytes());
    Locator::from_slice(&sha256::Hash::hash(&data).to_byte_array()[..16]).unwrap()
}

/// A locator no stored appointment has.
pub fn absent_locator(n: u64) -> Locator {
    let mut data = b"absent".to_vec();
    data.extend_from_slice(&n.to_le_bytes());
    Locator::from_slice(&sha256::Hash::hash(&data).to_byte_array()[..16]).unwrap()
}

/// The record of stored appointment `n` (user `n % users`, 250-byte blob).
pub fn stored_appointment(n: u64, user_id: UserId) -> AppointmentRecord {
    let locator = stored_locator(n);
    AppointmentRecord {
        uuid: AppointmentId::new(&locator, &user_id),
        locator,
        user_id,
        encrypted_blob: vec![0xa5; 250],
        to_self_delay: 42,
        user_signature: "d".repeat(104),
        start_block: 1_000,
        slots: 1,
    }
}

/// A store in a temp dir holding `users` users and `rows` appointments.
pub fn filled_store(users_count: u64, rows: u64) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("teos_db.sql3")).unwrap();
    let ids: Vec<UserId> = (0..users_count).map(user).collect();
    let record = UserRecord {
        available_slots: u32::MAX / 2,
        subscription_start: 1_000,
        subscription_expiry: 1_000_000,
    };
    let all = ids.clone();
    store
        .write_blocking(move |conn| -> Result<(), StorageError> {
            for id in &all {
                conn.upsert_user(id, &record)?;
            }
            Ok(())
        })
        .unwrap();
    let ids = std::sync::Arc::new(ids);
    let mut next = 0;
    while next < rows {
        let end = (next + FILL_BATCH).min(rows);
        let ids = ids.clone();
        store
            .write_blocking(move |conn| -> Result<(), StorageError> {
                for n in next..end {
                    let user_id = ids[(n % ids.len() as u64) as usize];
                    conn.upsert_appointment(&stored_appointment(n, user_id))?;
                }
                Ok(())
            })
            .unwrap();
        next = end;
    }
    (dir, store)
}
