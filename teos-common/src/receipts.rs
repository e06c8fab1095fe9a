//! Receipts: what the tower signs with its key so a user can later prove what the tower promised.
//!
//! Source: `shared/spec/PROTOCOL.md`, section "Receipts"; `vectors.json` `registration_receipt` and
//! `appointment_receipt`. Signatures use the Lightning scheme of [`crate::cryptography::sign`].

use bitcoin::secp256k1::SecretKey;
use serde::{Deserialize, Serialize};

use crate::appointment::{TowerId, UserId};
use crate::cryptography;

/// The tower's promise on registration: `available_slots` slots until block `subscription_expiry`.
///
/// Serialized for signing as `user_id(33) ‖ available_slots ‖ subscription_start ‖ subscription_expiry`,
/// each number a big-endian `u32` (45 bytes). The signature travels as `subscription_signature`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationReceipt {
    /// The registered user.
    pub user_id: UserId,
    /// Slots the user has in total after this registration.
    pub available_slots: u32,
    /// Height (blocks) at which the subscription started.
    pub subscription_start: u32,
    /// Height (blocks) at which the subscription expires.
    pub subscription_expiry: u32,
}

impl RegistrationReceipt {
    /// The 45 signed bytes (see the type's documentation).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(45);
        out.extend_from_slice(&self.user_id.to_bytes());
        out.extend_from_slice(&self.available_slots.to_be_bytes());
        out.extend_from_slice(&self.subscription_start.to_be_bytes());
        out.extend_from_slice(&self.subscription_expiry.to_be_bytes());
        out
    }

    /// The tower's zbase32 signature of [`Self::to_vec`] with its secret key.
    pub fn sign(&self, tower_sk: &SecretKey) -> String {
        cryptography::sign(&self.to_vec(), tower_sk)
    }

    /// Whether `signature` is `tower_id`'s signature of this receipt.
    pub fn verify(&self, signature: &str, tower_id: &TowerId) -> bool {
        cryptography::verify(&self.to_vec(), signature, &tower_id.0)
    }
}

/// The tower's promise to watch an appointment from block `start_block` on.
///
/// Serialized for signing as the user's signature of the appointment **as its zbase32 UTF-8 text**
/// followed by `start_block` as a big-endian `u32`. The signature travels as `signature` in the
/// add_appointment response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentReceipt {
    /// The user's zbase32 signature of the appointment (see
    /// [`crate::appointment::Appointment::to_signed_bytes`]).
    pub user_signature: String,
    /// The tower's best height (blocks) when it accepted the appointment.
    pub start_block: u32,
}

impl AppointmentReceipt {
    /// The signed bytes (see the type's documentation).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.user_signature.len() + 4);
        out.extend_from_slice(self.user_signature.as_bytes());
        out.extend_from_slice(&self.start_block.to_be_bytes());
        out
    }

    /// The tower's zbase32 signature of [`Self::to_vec`] with its secret key.
    pub fn sign(&self, tower_sk: &SecretKey) -> String {
        cryptography::sign(&self.to_vec(), tower_sk)
    }

    /// Whether `signature` is `tower_id`'s signature of this receipt.
    pub fn verify(&self, signature: &str, tower_id: &TowerId) -> bool {
        cryptography::verify(&self.to_vec(), signature, &tower_id.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cryptography::get_random_keypair;

    #[test]
    fn receipts_verify_only_for_the_signing_tower_and_same_content() {
        let (tower_sk, tower_pk) = get_random_keypair();
        let (_, other_pk) = get_random_keypair();
        let receipt = RegistrationReceipt {
            user_id: UserId(other_pk),
            available_slots: 10,
            subscription_start: 1,
            subscription_expiry: 2,
        };
        let sig = receipt.sign(&tower_sk);
        assert!(receipt.verify(&sig, &UserId(tower_pk)));
        assert!(!receipt.verify(&sig, &UserId(other_pk)));
        let changed = RegistrationReceipt {
            available_slots: 11,
            ..receipt
        };
        assert!(!changed.verify(&sig, &UserId(tower_pk)));

        let receipt = AppointmentReceipt {
            user_signature: "abc".into(),
            start_block: 7,
        };
        let sig = receipt.sign(&tower_sk);
        assert!(receipt.verify(&sig, &UserId(tower_pk)));
        let later = AppointmentReceipt {
            start_block: 8,
            ..receipt
        };
        assert!(!later.verify(&sig, &UserId(tower_pk)));
    }
}
