//! Fixtures shared by the storage tests (included with `#[path] mod support;`).
#![allow(dead_code)] // each test file uses a different subset of the fixtures

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, BlockHash, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness,
};
use rusqlite::Connection;
use secp256k1::{PublicKey, SECP256K1, SecretKey};
use teosd::storage::{
    AppointmentId, AppointmentRecord, Locator, StorageError, Store, TrackerRecord, TrackerStatus,
    Tx, UserId, UserRecord,
};

/// A fresh store in its own temp dir (kept alive by the returned guard).
pub fn open_temp() -> (tempfile::TempDir, PathBuf, Store) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("regtest").join("teos_db.sql3");
    let store = Store::open(&path).unwrap();
    (dir, path, store)
}

/// A valid user id derived from `n` (n > 0).
pub fn user(n: u32) -> UserId {
    let mut bytes = [0u8; 32];
    bytes[28..].copy_from_slice(&n.to_be_bytes());
    bytes[0] = 1;
    let sk = SecretKey::from_slice(&bytes).unwrap();
    UserId(PublicKey::from_secret_key(SECP256K1, &sk))
}

/// A locator derived from `n`.
pub fn locator(n: u32) -> Locator {
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    bytes[15] = 0xaa;
    Locator::from_slice(&bytes).unwrap()
}

pub fn user_record(slots: u32, expiry: u32) -> UserRecord {
    UserRecord {
        available_slots: slots,
        subscription_start: expiry.saturating_sub(100),
        subscription_expiry: expiry,
    }
}

/// The appointment of `user_id` for `locator`, with a small blob.
pub fn appointment(locator: Locator, user_id: UserId) -> AppointmentRecord {
    AppointmentRecord {
        uuid: AppointmentId::new(&locator, &user_id),
        locator,
        user_id,
        encrypted_blob: vec![7u8; 100],
        to_self_delay: 144,
        user_signature: "d1fakesignature".into(),
        start_block: 800_000,
        slots: 1,
    }
}

/// A distinct, valid transaction for each `n`.
pub fn tx(n: u32) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::from_consensus(n),
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array([n as u8; 32]), n),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(1_000 + u64::from(n)),
            script_pubkey: ScriptBuf::new(),
        }],
    }
}

/// A tracker for `uuid` with dispute tx(n) and penalty tx(n + 1_000_000).
pub fn tracker(
    uuid: AppointmentId,
    n: u32,
    status: TrackerStatus,
    status_height: u32,
) -> TrackerRecord {
    let dispute_tx = tx(n);
    let penalty_tx = tx(n + 1_000_000);
    TrackerRecord {
        uuid,
        dispute_txid: dispute_tx.compute_txid(),
        dispute_tx,
        penalty_txid: penalty_tx.compute_txid(),
        penalty_tx,
        dispute_height: None,
        status,
        status_height,
        to_self_delay: 42,
    }
}

pub fn block_hash(n: u32) -> BlockHash {
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&n.to_le_bytes());
    bytes[31] = 0x5b;
    BlockHash::from_byte_array(bytes)
}

/// Polls `cond` until it holds or 10 s pass; false on timeout.
pub fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// Runs `op` as one write (one op, committed).
pub fn w<T: Send + 'static>(
    store: &Store,
    op: impl FnOnce(&mut dyn Tx) -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    store.write_blocking(op)
}

/// Runs `op` on a reader.
pub fn r<T: Send + 'static>(
    store: &Store,
    op: impl FnOnce(&mut dyn Tx) -> Result<T, StorageError> + Send + 'static,
) -> T {
    store.read_blocking(op).unwrap()
}

/// SQLite only: runs `op` as one write on the writer's raw connection (tests about the file itself).
pub fn w_sqlite<T: Send + 'static>(
    store: &Store,
    op: impl FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    store.write_sqlite_blocking(op)
}

/// SQLite only: runs `op` on a raw read connection.
pub fn r_sqlite<T: Send + 'static>(
    store: &Store,
    op: impl FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
) -> T {
    store.read_sqlite_blocking(op).unwrap()
}

/// Registers users 1..=n with `expiry`.
pub fn add_users(store: &Store, n: u32, expiry: u32) {
    w(store, move |c| {
        (1..=n).try_for_each(|i| c.upsert_user(&user(i), &user_record(10, expiry)))
    })
    .unwrap();
}
