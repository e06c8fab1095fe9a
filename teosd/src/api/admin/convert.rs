//! Storage rows → `common.teos.v2` messages (ADMIN_RPC.md).
//!
//! Bytes fields carry raw values: locators and blobs as stored, txids in internal byte order (as
//! rust-teos's `Tracker`), the penalty as its consensus serialization.

use bitcoin::hashes::Hash;
use teos_common::protos::common::teos::v2::{
    self as common, appointment_data::AppointmentData as Data,
};

use crate::storage::{AppointmentRecord, TrackerRecord};

/// A watched appointment as `AppointmentData.appointment`.
pub fn watched(record: AppointmentRecord) -> common::AppointmentData {
    common::AppointmentData {
        appointment_data: Some(Data::Appointment(common::Appointment {
            locator: record.locator.as_bytes().to_vec(),
            encrypted_blob: record.encrypted_blob,
            to_self_delay: record.to_self_delay,
        })),
    }
}

/// A tracker as `AppointmentData.tracker`.
pub fn tracker(record: &TrackerRecord) -> common::AppointmentData {
    common::AppointmentData {
        appointment_data: Some(Data::Tracker(common::Tracker {
            dispute_txid: record.dispute_txid.to_byte_array().to_vec(),
            penalty_txid: record.penalty_txid.to_byte_array().to_vec(),
            penalty_rawtx: bitcoin::consensus::serialize(&record.penalty_tx),
        })),
    }
}

/// A count for a `uint32` field: saturates at `u32::MAX` rather than wrapping.
pub fn count32(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}
