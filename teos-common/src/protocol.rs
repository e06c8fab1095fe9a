//! The JSON bodies of the public HTTP API, with the field names of `shared/spec/PROTOCOL.md`
//! ("Endpoints"), and strict request parsers that give the exact error codes of the spec.
//!
//! Requests derive `Serialize` (for clients) and `Deserialize`; a tower should read them with the
//! `parse_*` functions instead, which map each defect to its [`crate::errors::ErrorCode`].

mod parse;

use bitcoin::{Transaction, Txid};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use crate::appointment::{Appointment, Locator, UserId};

pub use crate::errors::ErrorResponse;
pub use parse::{
    parse_add_appointment, parse_get_appointment, parse_get_subscription_info, parse_register,
};

/// The UTF-8 text a user signs to ask for the appointment at `locator`:
/// `"get appointment <locator as 32 lowercase hex>"` (PROTOCOL.md "Identities and signatures").
pub fn get_appointment_message(locator: &Locator) -> String {
    format!("get appointment {locator}")
}

/// The UTF-8 text a user signs to ask for their subscription (PROTOCOL.md "Identities and signatures").
pub const GET_SUBSCRIPTION_INFO_MESSAGE: &str = "get subscription info";

/// `POST /register` request: `{"user_id": hex33}`. Carries no signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// The key being registered (or topped up).
    pub user_id: UserId,
}

/// `POST /register` 200 response: the user's subscription after this registration and the tower's
/// signature of the matching [`crate::receipts::RegistrationReceipt`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// The registered user.
    pub user_id: UserId,
    /// Slots available in total.
    pub available_slots: u32,
    /// Height (blocks) at which the subscription started.
    pub subscription_start: u32,
    /// Height (blocks) at which the subscription expires.
    pub subscription_expiry: u32,
    /// zbase32 tower signature of the registration receipt.
    pub subscription_signature: String,
}

/// `POST /add_appointment` request: `{"appointment": {...}, "signature": zb32}`, where `signature` is the
/// user's signature of [`Appointment::to_signed_bytes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddAppointmentRequest {
    /// The appointment to watch.
    pub appointment: Appointment,
    /// The user's zbase32 signature of the appointment.
    pub signature: String,
}

/// `POST /add_appointment` 200 response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddAppointmentResponse {
    /// The accepted appointment's locator.
    pub locator: Locator,
    /// The tower's best height (blocks) when it accepted the appointment.
    pub start_block: u32,
    /// zbase32 tower signature of the [`crate::receipts::AppointmentReceipt`].
    pub signature: String,
    /// Slots the user has left.
    pub available_slots: u32,
    /// Height (blocks) at which the user's subscription expires.
    pub subscription_expiry: u32,
}

/// `POST /get_appointment` request: `{"locator": hex16, "signature": zb32}`, the signature being over
/// [`get_appointment_message`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetAppointmentRequest {
    /// The locator asked about.
    pub locator: Locator,
    /// The user's zbase32 signature of `"get appointment <locator>"`.
    pub signature: String,
}

/// What the tower did with a triggered appointment: the dispute it saw and the penalty it sent.
/// JSON: `{"dispute_txid", "penalty_txid"}` in RPC display order, `"penalty_rawtx"` consensus hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerData {
    /// The dispute (revoked commitment) txid.
    pub dispute_txid: Txid,
    /// The penalty txid.
    pub penalty_txid: Txid,
    /// The penalty transaction the tower broadcast.
    #[serde(with = "crate::ser::consensus_hex")]
    pub penalty_rawtx: Transaction,
}

/// `POST /get_appointment` 200 response. JSON:
/// `{"appointment": {locator, encrypted_blob, to_self_delay}, "status": "being_watched"}` or
/// `{"appointment": {dispute_txid, penalty_txid, penalty_rawtx}, "status": "dispute_responded"}`
/// (rust-teos writes `appointment` first; both orders deserialize).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "status", content = "appointment", rename_all = "snake_case")]
pub enum GetAppointmentResponse {
    /// The appointment is still being watched.
    BeingWatched(Appointment),
    /// The dispute appeared and the tower is tracking its penalty.
    DisputeResponded(TrackerData),
}

impl Serialize for GetAppointmentResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("GetAppointmentResponse", 2)?;
        match self {
            GetAppointmentResponse::BeingWatched(appointment) => {
                st.serialize_field("appointment", appointment)?;
                st.serialize_field("status", "being_watched")?;
            }
            GetAppointmentResponse::DisputeResponded(tracker) => {
                st.serialize_field("appointment", tracker)?;
                st.serialize_field("status", "dispute_responded")?;
            }
        }
        st.end()
    }
}

/// `POST /get_subscription_info` request: `{"signature": zb32}` over
/// [`GET_SUBSCRIPTION_INFO_MESSAGE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetSubscriptionInfoRequest {
    /// The user's zbase32 signature of `"get subscription info"`.
    pub signature: String,
}

/// `POST /get_subscription_info` 200 response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetSubscriptionInfoResponse {
    /// Slots the user has left.
    pub available_slots: u32,
    /// Height (blocks) at which the subscription expires.
    pub subscription_expiry: u32,
    /// Locators of the user's appointments (watched and triggered).
    pub locators: Vec<Locator>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    fn tracker() -> TrackerData {
        let tx = Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![bitcoin::TxIn::default()],
            output: vec![],
        };
        let mut dispute = [0u8; 32];
        dispute[0] = 0xaa;
        TrackerData {
            dispute_txid: Txid::from_byte_array(dispute),
            penalty_txid: tx.compute_txid(),
            penalty_rawtx: tx,
        }
    }

    #[test]
    fn get_appointment_response_has_appointment_and_status_keys() {
        let watched = GetAppointmentResponse::BeingWatched(Appointment {
            locator: Locator::from_slice(&[2u8; 16]).unwrap(),
            encrypted_blob: vec![1],
            to_self_delay: 20,
        });
        let json = serde_json::to_string(&watched).unwrap();
        assert_eq!(
            json,
            r#"{"appointment":{"locator":"02020202020202020202020202020202","encrypted_blob":"01","to_self_delay":20},"status":"being_watched"}"#
        );
        assert_eq!(
            serde_json::from_str::<GetAppointmentResponse>(&json).unwrap(),
            watched
        );

        let responded = GetAppointmentResponse::DisputeResponded(tracker());
        let value = serde_json::to_value(&responded).unwrap();
        assert_eq!(value["status"], "dispute_responded");
        // Display order: the internal first byte 0xaa is the last display byte.
        assert!(
            value["appointment"]["dispute_txid"]
                .as_str()
                .unwrap()
                .ends_with("aa")
        );
        let TrackerData { penalty_rawtx, .. } = tracker();
        assert_eq!(
            value["appointment"]["penalty_rawtx"],
            bitcoin::consensus::encode::serialize_hex(&penalty_rawtx)
        );
        assert_eq!(
            serde_json::from_value::<GetAppointmentResponse>(value).unwrap(),
            responded
        );
    }

    #[test]
    fn get_appointment_response_rejects_unknown_status() {
        let json = r#"{"appointment":{},"status":"not_found"}"#;
        assert!(serde_json::from_str::<GetAppointmentResponse>(json).is_err());
    }

    #[test]
    fn get_appointment_message_uses_lowercase_hex() {
        let locator: Locator = "33D984BF580D0AB4CE348217461AC1A1".parse().unwrap();
        assert_eq!(
            get_appointment_message(&locator),
            "get appointment 33d984bf580d0ab4ce348217461ac1a1"
        );
    }
}
