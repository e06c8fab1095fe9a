//! Reproduces every value of `tests/data/vectors.json` (a copy of the protocol spec's vectors, see
//! `tests/data/README.md`): proof that this crate speaks the wire format of The Eye of Satoshi.

use std::str::FromStr;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{PublicKey, SECP256K1, SecretKey};
use bitcoin::{Transaction, Txid};
use serde_json::Value;

use teos_common::appointment::{Appointment, AppointmentId, Locator, TowerId, UserId};
use teos_common::cryptography;
use teos_common::protocol::{GET_SUBSCRIPTION_INFO_MESSAGE, get_appointment_message};
use teos_common::receipts::{AppointmentReceipt, RegistrationReceipt};

const VECTORS: &str = include_str!("data/vectors.json");

struct Vectors(Value);

impl Vectors {
    fn load() -> Vectors {
        Vectors(serde_json::from_str(VECTORS).unwrap())
    }

    fn str(&self, key: &str) -> &str {
        self.0[key]
            .as_str()
            .unwrap_or_else(|| panic!("missing {key}"))
    }

    fn hex(&self, key: &str) -> Vec<u8> {
        hex::decode(self.str(key)).unwrap()
    }

    fn user_sk(&self) -> SecretKey {
        SecretKey::from_str(self.str("user_secret_key")).unwrap()
    }

    fn tower_sk(&self) -> SecretKey {
        SecretKey::from_str(self.str("tower_secret_key")).unwrap()
    }

    fn tower_id(&self) -> TowerId {
        self.str("tower_id").parse().unwrap()
    }

    fn user_id(&self) -> UserId {
        self.str("user_id").parse().unwrap()
    }

    fn dispute_txid(&self) -> Txid {
        Txid::from_str(self.str("dispute_txid")).unwrap()
    }

    fn penalty(&self) -> Transaction {
        bitcoin::consensus::deserialize(&self.hex("penalty_rawtx")).unwrap()
    }

    fn appointment(&self) -> Appointment {
        Appointment {
            locator: self.str("locator").parse().unwrap(),
            encrypted_blob: self.hex("encrypted_blob"),
            to_self_delay: u32::try_from(self.0["to_self_delay"].as_u64().unwrap()).unwrap(),
        }
    }
}

#[test]
fn user_and_tower_ids_derive_from_their_secret_keys() {
    let v = Vectors::load();
    let user = UserId(PublicKey::from_secret_key(SECP256K1, &v.user_sk()));
    assert_eq!(user.to_string(), v.str("user_id"));
    let tower = UserId(PublicKey::from_secret_key(SECP256K1, &v.tower_sk()));
    assert_eq!(tower.to_string(), v.str("tower_id"));
}

#[test]
fn locator_is_first_half_of_internal_order_txid() {
    let v = Vectors::load();
    let txid = v.dispute_txid();
    assert_eq!(
        hex::encode(txid.as_byte_array()),
        v.str("dispute_txid_internal_order")
    );
    let locator = Locator::new(&txid);
    assert_eq!(locator.to_string(), v.str("locator"));
    assert_eq!(locator, v.str("locator").parse().unwrap());
}

#[test]
fn blob_encrypts_to_the_exact_bytes_and_decrypts_back() {
    let v = Vectors::load();
    let txid = v.dispute_txid();
    assert_eq!(
        hex::encode(cryptography::encryption_key(&txid)),
        v.str("encryption_key_sha256_of_internal_txid")
    );
    let blob = cryptography::encrypt(&v.penalty(), &txid);
    assert_eq!(hex::encode(&blob), v.str("encrypted_blob"));
    assert_eq!(cryptography::decrypt(&blob, &txid).unwrap(), v.penalty());
}

#[test]
fn a_client_builds_the_vector_appointment_from_the_dispute_and_penalty() {
    let v = Vectors::load();
    let expected = v.appointment();
    let built = Appointment::new(&v.dispute_txid(), &v.penalty(), expected.to_self_delay);
    assert_eq!(built, expected);
}

#[test]
fn blob_does_not_decrypt_with_another_txid() {
    let v = Vectors::load();
    let other = v.penalty().compute_txid();
    assert_eq!(
        cryptography::decrypt(&v.hex("encrypted_blob"), &other),
        Err(cryptography::DecryptionError::TagMismatch)
    );
}

#[test]
fn add_appointment_message_digest_and_user_signature_match() {
    let v = Vectors::load();
    let appointment = v.appointment();
    let message = appointment.to_signed_bytes();
    assert_eq!(
        hex::encode(&message),
        v.str("add_appointment_signed_message")
    );
    assert_eq!(
        hex::encode(cryptography::message_digest(&message)),
        v.str("add_appointment_message_hash_sha256d")
    );
    let signature = cryptography::sign(&message, &v.user_sk());
    assert_eq!(signature, v.str("user_signature_zbase32"));
    assert_eq!(
        cryptography::recover_pk(&message, &signature).unwrap(),
        v.user_id().0
    );
}

#[test]
fn get_requests_signatures_match() {
    let v = Vectors::load();
    let locator: Locator = v.str("locator").parse().unwrap();
    let message = get_appointment_message(&locator);
    assert_eq!(message, v.str("get_appointment_message"));
    let signature = cryptography::sign(message.as_bytes(), &v.user_sk());
    assert_eq!(signature, v.str("get_appointment_signature_zbase32"));
    assert!(cryptography::verify(
        message.as_bytes(),
        &signature,
        &v.user_id().0
    ));

    assert_eq!(
        GET_SUBSCRIPTION_INFO_MESSAGE,
        v.str("get_subscription_info_message")
    );
    let signature = cryptography::sign(GET_SUBSCRIPTION_INFO_MESSAGE.as_bytes(), &v.user_sk());
    assert_eq!(signature, v.str("get_subscription_info_signature_zbase32"));
}

#[test]
fn registration_receipt_serializes_and_signs_exactly() {
    let v = Vectors::load();
    let expected = &v.0["registration_receipt"];
    let number = |key: &str| u32::try_from(expected[key].as_u64().unwrap()).unwrap();
    let receipt = RegistrationReceipt {
        user_id: v.user_id(),
        available_slots: number("available_slots"),
        subscription_start: number("subscription_start"),
        subscription_expiry: number("subscription_expiry"),
    };
    assert_eq!(
        hex::encode(receipt.to_vec()),
        expected["serialized"].as_str().unwrap()
    );
    let signature = receipt.sign(&v.tower_sk());
    assert_eq!(
        signature,
        expected["tower_signature_zbase32"].as_str().unwrap()
    );
    assert!(receipt.verify(&signature, &v.tower_id()));
    assert!(!receipt.verify(&signature, &v.user_id()));
}

#[test]
fn appointment_receipt_serializes_and_signs_exactly() {
    let v = Vectors::load();
    let expected = &v.0["appointment_receipt"];
    let receipt = AppointmentReceipt {
        user_signature: v.str("user_signature_zbase32").to_owned(),
        start_block: u32::try_from(expected["start_block"].as_u64().unwrap()).unwrap(),
    };
    assert_eq!(
        hex::encode(receipt.to_vec()),
        expected["serialized"].as_str().unwrap()
    );
    let signature = receipt.sign(&v.tower_sk());
    assert_eq!(
        signature,
        expected["tower_signature_zbase32"].as_str().unwrap()
    );
    assert!(receipt.verify(&signature, &v.tower_id()));
}

#[test]
fn appointment_id_is_ripemd160_of_locator_and_user_id() {
    let v = Vectors::load();
    let locator: Locator = v.str("locator").parse().unwrap();
    let id = AppointmentId::new(&locator, &v.user_id());
    assert_eq!(
        id.to_string(),
        v.str("uuid_ripemd160_of_locator_and_user_id")
    );
}
