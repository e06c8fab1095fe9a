//! Fixtures shared by teosd's unit tests (compiled only for tests).

use bitcoin::absolute::LockTime;
use bitcoin::transaction::Version;
use bitcoin::{Amount, ScriptBuf, Transaction, TxOut};
use teos_common::appointment::UserId;

/// A distinct, deterministic transaction for each `n` (no inputs; `n` is its lock time and its one
/// output's value in satoshis), so `tx(n).compute_txid()` gives a different dispute txid per `n`.
pub(crate) fn tx(n: u32) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::from_consensus(n),
        input: Vec::new(),
        output: vec![TxOut {
            value: Amount::from_sat(u64::from(n)),
            script_pubkey: ScriptBuf::new(),
        }],
    }
}

/// A fixed user id (the public key of secret key `[5; 32]`).
pub(crate) fn user() -> UserId {
    let sk = secp256k1::SecretKey::from_slice(&[5; 32]).expect("a valid secret key");
    UserId(sk.public_key(secp256k1::SECP256K1))
}
