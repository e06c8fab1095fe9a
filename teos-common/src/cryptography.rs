//! The cryptography of the protocol: appointment blob encryption and Lightning `signmessage` signatures.
//!
//! Source: `shared/spec/PROTOCOL.md`, sections "Identities and signatures" and "Appointments".

pub mod zbase32;

use bitcoin::hashes::{Hash, sha256, sha256d};
use bitcoin::secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use bitcoin::secp256k1::{Message, PublicKey, SECP256K1, SecretKey};
use bitcoin::{Transaction, Txid, consensus};
use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit};

/// Prefix of every Lightning signed message (as in Core Lightning / LND / LDK `signmessage`).
pub const LN_MESSAGE_PREFIX: &[u8] = b"Lightning Signed Message:";

/// Length of a serialized recoverable signature: header byte ‖ r(32) ‖ s(32).
const SIGNATURE_LEN: usize = 65;
/// The header byte is `31 + recovery id` (compressed-key flag of the Bitcoin message format).
const HEADER_BASE: u8 = 31;
/// The fixed ChaCha20-Poly1305 nonce: 12 zero bytes (safe because every key encrypts one message).
const NONCE: [u8; 12] = [0u8; 12];

/// Why an encrypted blob could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptionError {
    /// The Poly1305 tag does not match: wrong txid (key) or a tampered blob.
    #[error("cannot decrypt the blob: authentication tag mismatch")]
    TagMismatch,
    /// The plaintext is not exactly one consensus-serialized transaction.
    #[error("the decrypted blob is not a transaction: {0}")]
    NotATransaction(String),
}

/// Why a signature could not be read or did not recover a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The text is not zbase32.
    #[error("signature is not zbase32: {0}")]
    NotZbase32(#[from] zbase32::Zbase32Error),
    /// The decoded signature is not 65 bytes.
    #[error("signature must be 65 bytes, got {0}")]
    WrongLength(usize),
    /// The header byte is not 31..=34.
    #[error("invalid signature header byte {0}")]
    InvalidHeader(u8),
    /// r/s are out of range or no key recovers from them.
    #[error("signature does not recover a public key")]
    Unrecoverable,
}

/// The symmetric key of a dispute: SHA256 of the txid in internal byte order, 32 bytes
/// (`vectors.json` `encryption_key_sha256_of_internal_txid`).
pub fn encryption_key(dispute_txid: &Txid) -> [u8; 32] {
    sha256::Hash::hash(dispute_txid.as_byte_array()).to_byte_array()
}

/// Encrypts a penalty transaction for the tower: ChaCha20-Poly1305 (IETF) of its consensus
/// serialization, key = [`encryption_key`], nonce = 12 zero bytes, 16-byte tag appended. The result is
/// `serialized length + 16` bytes.
pub fn encrypt(penalty: &Transaction, dispute_txid: &Txid) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new(&encryption_key(dispute_txid).into());
    let plaintext = consensus::serialize(penalty);
    // Encrypting in memory fails only for messages over 256 GiB, beyond any transaction.
    cipher
        .encrypt(&NONCE.into(), plaintext.as_slice())
        .unwrap_or_default()
}

/// Opens a blob made by [`encrypt`] with the txid of the dispute that appeared on chain.
///
/// Errors: [`DecryptionError::TagMismatch`] when the key (txid) is not the one the blob was made for or
/// the blob was altered; [`DecryptionError::NotATransaction`] when the plaintext is not exactly one
/// transaction.
pub fn decrypt(blob: &[u8], dispute_txid: &Txid) -> Result<Transaction, DecryptionError> {
    let cipher = ChaCha20Poly1305::new(&encryption_key(dispute_txid).into());
    let plaintext = cipher
        .decrypt(&NONCE.into(), blob)
        .map_err(|_| DecryptionError::TagMismatch)?;
    consensus::deserialize(&plaintext).map_err(|e| DecryptionError::NotATransaction(e.to_string()))
}

/// The digest a Lightning signature signs: `SHA256(SHA256("Lightning Signed Message:" ‖ msg))`
/// (`vectors.json` `add_appointment_message_hash_sha256d`).
pub fn message_digest(msg: &[u8]) -> [u8; 32] {
    let mut data = Vec::with_capacity(LN_MESSAGE_PREFIX.len() + msg.len());
    data.extend_from_slice(LN_MESSAGE_PREFIX);
    data.extend_from_slice(msg);
    sha256d::Hash::hash(&data).to_byte_array()
}

/// Signs `msg` like Lightning `signmessage`: recoverable ECDSA (deterministic, RFC 6979) over
/// [`message_digest`], serialized as `31 + recovery id ‖ r ‖ s` (65 bytes) and zbase32-encoded
/// (104 characters).
pub fn sign(msg: &[u8], sk: &SecretKey) -> String {
    let digest = Message::from_digest(message_digest(msg));
    let (recovery_id, compact) = SECP256K1
        .sign_ecdsa_recoverable(&digest, sk)
        .serialize_compact();
    let mut bytes = Vec::with_capacity(SIGNATURE_LEN);
    // A recovery id is 0..=3, so the header stays within 31..=34.
    bytes.push(HEADER_BASE + recovery_id.to_i32() as u8);
    bytes.extend_from_slice(&compact);
    zbase32::encode(&bytes)
}

/// Recovers the public key that signed `msg` with the zbase32 signature `sig` (as made by [`sign`]).
///
/// Errors: see [`SignatureError`]. Any valid signature recovers *some* key; compare it with the
/// expected one (or use [`verify`]).
pub fn recover_pk(msg: &[u8], sig: &str) -> Result<PublicKey, SignatureError> {
    let bytes = zbase32::decode(sig)?;
    if bytes.len() != SIGNATURE_LEN {
        return Err(SignatureError::WrongLength(bytes.len()));
    }
    let header = bytes[0];
    let recovery_id = header
        .checked_sub(HEADER_BASE)
        .and_then(|id| RecoveryId::from_i32(i32::from(id)).ok())
        .ok_or(SignatureError::InvalidHeader(header))?;
    let signature = RecoverableSignature::from_compact(&bytes[1..], recovery_id)
        .map_err(|_| SignatureError::Unrecoverable)?;
    let digest = Message::from_digest(message_digest(msg));
    SECP256K1
        .recover_ecdsa(&digest, &signature)
        .map_err(|_| SignatureError::Unrecoverable)
}

/// Whether `sig` is a signature of `msg` by `pk` (the recovered key equals `pk`).
pub fn verify(msg: &[u8], sig: &str, pk: &PublicKey) -> bool {
    recover_pk(msg, sig).is_ok_and(|recovered| recovered == *pk)
}

/// A fresh random secp256k1 key pair from the operating system's RNG (for new users, tests and a new
/// tower key).
pub fn get_random_keypair() -> (SecretKey, PublicKey) {
    SECP256K1.generate_keypair(&mut bitcoin::secp256k1::rand::thread_rng())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::absolute::LockTime;
    use bitcoin::transaction::Version;

    fn sample_tx() -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![],
            output: vec![bitcoin::TxOut {
                value: bitcoin::Amount::from_sat(1000),
                script_pubkey: bitcoin::ScriptBuf::new(),
            }],
        }
    }

    fn txid(byte: u8) -> Txid {
        Txid::from_byte_array([byte; 32])
    }

    #[test]
    fn decrypting_with_the_wrong_txid_fails_with_tag_mismatch() {
        let blob = encrypt(&sample_tx(), &txid(1));
        assert_eq!(decrypt(&blob, &txid(1)), Ok(sample_tx()));
        assert_eq!(decrypt(&blob, &txid(2)), Err(DecryptionError::TagMismatch));
    }

    #[test]
    fn a_tampered_or_truncated_blob_fails() {
        let mut blob = encrypt(&sample_tx(), &txid(1));
        blob[0] ^= 1;
        assert_eq!(decrypt(&blob, &txid(1)), Err(DecryptionError::TagMismatch));
        assert_eq!(decrypt(&[], &txid(1)), Err(DecryptionError::TagMismatch));
    }

    #[test]
    fn an_authentic_blob_that_is_not_a_transaction_fails() {
        let cipher = ChaCha20Poly1305::new(&encryption_key(&txid(3)).into());
        let blob = cipher.encrypt(&NONCE.into(), &b"not a tx"[..]).unwrap();
        assert!(matches!(
            decrypt(&blob, &txid(3)),
            Err(DecryptionError::NotATransaction(_))
        ));
    }

    #[test]
    fn signatures_recover_the_signer_and_fail_for_others() {
        let (sk, pk) = get_random_keypair();
        let (_, other) = get_random_keypair();
        let sig = sign(b"msg", &sk);
        assert_eq!(sig.len(), 104);
        assert_eq!(recover_pk(b"msg", &sig), Ok(pk));
        assert!(verify(b"msg", &sig, &pk));
        assert!(!verify(b"msg", &sig, &other));
        assert!(!verify(b"other msg", &sig, &pk));
    }

    #[test]
    fn malformed_signatures_are_rejected() {
        let (sk, _) = get_random_keypair();
        let sig = sign(b"msg", &sk);
        assert!(matches!(
            recover_pk(b"msg", "not zbase32!"),
            Err(SignatureError::NotZbase32(_))
        ));
        assert_eq!(
            recover_pk(b"msg", &sig[..100]),
            Err(SignatureError::WrongLength(62))
        );
        let mut bytes = zbase32::decode(&sig).unwrap();
        bytes[0] = 0;
        assert_eq!(
            recover_pk(b"msg", &zbase32::encode(&bytes)),
            Err(SignatureError::InvalidHeader(0))
        );
        let zero = zbase32::encode(&[&[31u8][..], &[0u8; 64][..]].concat());
        assert_eq!(
            recover_pk(b"msg", &zero),
            Err(SignatureError::Unrecoverable)
        );
    }
}
