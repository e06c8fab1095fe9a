//! Appointments and the identifiers around them: locators, user ids and appointment ids.
//!
//! Source: `shared/spec/PROTOCOL.md`, sections "Identities and signatures" and "Appointments".

use std::fmt;
use std::str::FromStr;

use bitcoin::hashes::{Hash, ripemd160};
use bitcoin::secp256k1::PublicKey;
use bitcoin::{Transaction, Txid};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

use crate::constants::{APPOINTMENT_ID_LEN, LOCATOR_LEN, USER_ID_LEN};

/// Why bytes or text could not be read as one of the identifiers of this module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The text is not hex (odd length or a non-hex character).
    #[error("invalid hex: {0}")]
    InvalidHex(String),
    /// The bytes have the wrong length.
    #[error("wrong length: expected {expected} bytes, got {got}")]
    WrongLength {
        /// Required length in bytes.
        expected: usize,
        /// Length received in bytes.
        got: usize,
    },
    /// 33 bytes that are not a compressed secp256k1 point.
    #[error("not a valid compressed secp256k1 public key")]
    InvalidKey,
}

fn decode_hex(text: &str) -> Result<Vec<u8>, IdError> {
    hex::decode(text).map_err(|e| IdError::InvalidHex(e.to_string()))
}

/// The first 16 bytes of a dispute (revoked commitment) txid in **internal byte order** (the serialized
/// hash order, i.e. the RPC display hex reversed). Text and JSON form: 32 lowercase hex characters.
///
/// Source: PROTOCOL.md "Appointments"; `vectors.json` `locator`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Locator([u8; LOCATOR_LEN]);

impl Locator {
    /// The locator of a dispute transaction.
    pub fn new(dispute_txid: &Txid) -> Locator {
        let mut bytes = [0u8; LOCATOR_LEN];
        bytes.copy_from_slice(&dispute_txid.as_byte_array()[..LOCATOR_LEN]);
        Locator(bytes)
    }

    /// A locator from its 16 raw bytes; any other length is [`IdError::WrongLength`].
    pub fn from_slice(bytes: &[u8]) -> Result<Locator, IdError> {
        let array: [u8; LOCATOR_LEN] = bytes.try_into().map_err(|_| IdError::WrongLength {
            expected: LOCATOR_LEN,
            got: bytes.len(),
        })?;
        Ok(Locator(array))
    }

    /// The 16 raw bytes.
    pub fn as_bytes(&self) -> &[u8; LOCATOR_LEN] {
        &self.0
    }
}

/// Debug shows the hex text form, e.g. `Locator(33d9…)`, as logs need.
impl fmt::Debug for Locator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Locator({self})")
    }
}

impl fmt::Display for Locator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for Locator {
    type Err = IdError;

    /// Reads 32 hex characters (either case).
    fn from_str(s: &str) -> Result<Locator, IdError> {
        Locator::from_slice(&decode_hex(s)?)
    }
}

impl Serialize for Locator {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Locator {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Locator, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// What a user hands the tower: the locator to look for, the encrypted penalty, and the channel's
/// `to_self_delay` (blocks). JSON: `{"locator": hex16, "encrypted_blob": hex, "to_self_delay": u32}`.
///
/// Source: PROTOCOL.md "Appointments" and "Endpoints".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appointment {
    /// Where to look: first 16 bytes of the dispute txid (internal order).
    pub locator: Locator,
    /// ChaCha20-Poly1305 ciphertext of the penalty transaction with its 16-byte tag
    /// (see [`crate::cryptography::encrypt`]).
    #[serde(with = "crate::ser::hex_bytes")]
    pub encrypted_blob: Vec<u8>,
    /// The channel's `to_self_delay`, in blocks.
    pub to_self_delay: u32,
}

impl Appointment {
    /// The appointment a client sends for a revoked commitment: the locator of `dispute_txid`
    /// ([`Locator::new`]) and `penalty` encrypted under it ([`crate::cryptography::encrypt`]), with
    /// the channel's `to_self_delay` in blocks (PROTOCOL.md "Appointments").
    ///
    /// The tower cannot check that `penalty` spends the dispute transaction (it only sees ciphertext),
    /// so a client should.
    pub fn new(dispute_txid: &Txid, penalty: &Transaction, to_self_delay: u32) -> Appointment {
        Appointment {
            locator: Locator::new(dispute_txid),
            encrypted_blob: crate::cryptography::encrypt(penalty, dispute_txid),
            to_self_delay,
        }
    }

    /// The message a user signs to send this appointment:
    /// `locator(16) ‖ encrypted_blob ‖ to_self_delay (u32 big-endian)` (PROTOCOL.md "Identities and
    /// signatures"; `vectors.json` `add_appointment_signed_message`).
    pub fn to_signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LOCATOR_LEN + self.encrypted_blob.len() + 4);
        out.extend_from_slice(self.locator.as_bytes());
        out.extend_from_slice(&self.encrypted_blob);
        out.extend_from_slice(&self.to_self_delay.to_be_bytes());
        out
    }
}

/// A user's identity: a compressed secp256k1 public key (33 bytes; text and JSON form: 66 lowercase hex
/// characters). The tower's identity has the same shape, see [`TowerId`].
///
/// Source: PROTOCOL.md "Identities and signatures".
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub PublicKey);

/// The tower's identity (its public key), same encoding as [`UserId`].
pub type TowerId = UserId;

impl UserId {
    /// Reads 33 bytes of a compressed key: other lengths give [`IdError::WrongLength`] (an uncompressed
    /// 65-byte key is refused too), bytes that are not a curve point give [`IdError::InvalidKey`].
    pub fn from_slice(bytes: &[u8]) -> Result<UserId, IdError> {
        if bytes.len() != USER_ID_LEN {
            return Err(IdError::WrongLength {
                expected: USER_ID_LEN,
                got: bytes.len(),
            });
        }
        PublicKey::from_slice(bytes)
            .map(UserId)
            .map_err(|_| IdError::InvalidKey)
    }

    /// The 33-byte compressed serialization.
    pub fn to_bytes(&self) -> [u8; USER_ID_LEN] {
        self.0.serialize()
    }
}

impl From<PublicKey> for UserId {
    fn from(pk: PublicKey) -> UserId {
        UserId(pk)
    }
}

/// Debug shows the hex text form, e.g. `UserId(33d9…)`, as logs need.
impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({self})")
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.to_bytes()))
    }
}

impl FromStr for UserId {
    type Err = IdError;

    /// Reads 66 hex characters (either case) of a compressed key.
    fn from_str(s: &str) -> Result<UserId, IdError> {
        UserId::from_slice(&decode_hex(s)?)
    }
}

impl Serialize for UserId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<UserId, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// Identifier of one user's appointment for one locator: `RIPEMD160(locator(16) ‖ user_id(33))`, 20 bytes
/// (rust-teos calls it the uuid). Text and JSON form: 40 lowercase hex characters.
///
/// Source: PROTOCOL.md "Appointments"; `vectors.json` `uuid_ripemd160_of_locator_and_user_id`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppointmentId([u8; APPOINTMENT_ID_LEN]);

impl AppointmentId {
    /// The id of `user_id`'s appointment for `locator`.
    pub fn new(locator: &Locator, user_id: &UserId) -> AppointmentId {
        let mut data = Vec::with_capacity(LOCATOR_LEN + USER_ID_LEN);
        data.extend_from_slice(locator.as_bytes());
        data.extend_from_slice(&user_id.to_bytes());
        AppointmentId(ripemd160::Hash::hash(&data).to_byte_array())
    }

    /// An id from its 20 raw bytes (e.g. read back from storage); any other length is
    /// [`IdError::WrongLength`].
    pub fn from_slice(bytes: &[u8]) -> Result<AppointmentId, IdError> {
        let array: [u8; APPOINTMENT_ID_LEN] =
            bytes.try_into().map_err(|_| IdError::WrongLength {
                expected: APPOINTMENT_ID_LEN,
                got: bytes.len(),
            })?;
        Ok(AppointmentId(array))
    }

    /// The 20 raw bytes.
    pub fn as_bytes(&self) -> &[u8; APPOINTMENT_ID_LEN] {
        &self.0
    }
}

/// Debug shows the hex text form, e.g. `AppointmentId(33d9…)`, as logs need.
impl fmt::Debug for AppointmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppointmentId({self})")
    }
}

impl fmt::Display for AppointmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for AppointmentId {
    type Err = IdError;

    /// Reads 40 hex characters (either case).
    fn from_str(s: &str) -> Result<AppointmentId, IdError> {
        AppointmentId::from_slice(&decode_hex(s)?)
    }
}

impl Serialize for AppointmentId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for AppointmentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AppointmentId, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// Slots an encrypted blob of `blob_len` bytes costs: `ceil(blob_len / slot_size)`, saturating at
/// `u32::MAX`. An empty blob costs 0 (the tower refuses it before charging, PROTOCOL.md "Appointments").
/// `slot_size` is in bytes and normally [`crate::constants::ENCRYPTED_BLOB_MAX_SIZE`]; a `slot_size` of
/// 0 is treated as 1.
pub fn compute_slots(blob_len: usize, slot_size: usize) -> u32 {
    let slots = blob_len.div_ceil(slot_size.max(1));
    u32::try_from(slots).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_slots_rounds_up() {
        assert_eq!(compute_slots(0, 2048), 0);
        assert_eq!(compute_slots(1, 2048), 1);
        assert_eq!(compute_slots(2048, 2048), 1);
        assert_eq!(compute_slots(2049, 2048), 2);
        assert_eq!(compute_slots(10, 0), 10);
    }

    #[test]
    fn locator_text_form_round_trips_and_rejects_bad_input() {
        let text = "33d984bf580d0ab4ce348217461ac1a1";
        let loc: Locator = text.parse().unwrap();
        assert_eq!(loc.to_string(), text);
        assert_eq!(
            "33D984BF580D0AB4CE348217461AC1A1".parse::<Locator>(),
            Ok(loc)
        );
        assert!(matches!(
            "33d9".parse::<Locator>(),
            Err(IdError::WrongLength {
                expected: 16,
                got: 2
            })
        ));
        assert!(matches!(
            "zz".parse::<Locator>(),
            Err(IdError::InvalidHex(_))
        ));
        assert_eq!(serde_json::to_string(&loc).unwrap(), format!("\"{text}\""));
    }

    #[test]
    fn debug_shows_the_hex_form() {
        let loc = Locator::from_slice(&[0xab; 16]).unwrap();
        assert_eq!(format!("{loc:?}"), format!("Locator({})", "ab".repeat(16)));
    }

    #[test]
    fn user_id_refuses_uncompressed_keys_and_non_points() {
        let uncompressed = [4u8; 65];
        assert!(matches!(
            UserId::from_slice(&uncompressed),
            Err(IdError::WrongLength { expected: 33, .. })
        ));
        let mut not_a_point = [0xffu8; 33];
        not_a_point[0] = 2;
        assert_eq!(UserId::from_slice(&not_a_point), Err(IdError::InvalidKey));
    }

    #[test]
    fn appointment_json_uses_hex_blob() {
        let appointment = Appointment {
            locator: Locator::from_slice(&[1u8; 16]).unwrap(),
            encrypted_blob: vec![0xab, 0xcd],
            to_self_delay: 42,
        };
        let json = serde_json::to_string(&appointment).unwrap();
        assert_eq!(
            json,
            r#"{"locator":"01010101010101010101010101010101","encrypted_blob":"abcd","to_self_delay":42}"#
        );
        let back: Appointment = serde_json::from_str(&json).unwrap();
        assert_eq!(back, appointment);
    }
}
