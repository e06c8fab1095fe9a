//! The JSON teos-cli prints: stable field names, the conventions of rust-teos's serde forms
//! (research/rust-teos.md §3.2): ids, locators, blobs and raw transactions as lowercase hex; txids and
//! block hashes in display order (the RPC order, byte-reversed from the wire).
//!
//! Shapes:
//! - `getallappointments`, `getappointments`: `{"appointments": [ENTRY, ...]}` where ENTRY is
//!   `{"appointment": {"locator", "encrypted_blob", "to_self_delay"}}` for a watched appointment or
//!   `{"tracker": {"dispute_txid", "penalty_txid", "penalty_rawtx"}}` for one the tower responded to;
//! - `gettowerinfo`: `{"tower_id", "n_registered_users", "n_watcher_appointments",
//!   "n_responder_trackers", "bitcoind_reachable", "addresses": [{"type": "ipv4"|"torv3", "address",
//!   "port"}], "best_block_height", "best_block_hash", "version", "uptime_secs", "data_dir_bytes",
//!   "tower_address", "onion_address", "role", "leader_epoch"}` (the last nine are null when the tower
//!   does not report them,
//!   e.g. rust-teos; `tower_address`, `tower_id@host:port`, is also null when the tower has no address
//!   to advertise; `onion_address`, `"<onion>.onion:<port>"`, is null without Tor; `role` is
//!   `"leader"` or `"standby"` (a fleet instance while another leads), `leader_epoch` the fencing
//!   epoch it leads with, 0 when standby or alone on SQLite);
//! - `getusers`: `{"user_ids": [hex, ...]}`;
//! - `getuser`: `{"user_id", "available_slots", "subscription_expiry", "appointments": [uuid hex, ...]}`;
//! - `stop`: `{"stopping": true}`.
//!
//! Lists are written item by item as pages arrive (`stream.rs`); with `--ndjson` only the items are
//! printed, one per line.

use serde_json::{Value, json};
use teos_common::appointment::UserId;
use teos_common::protos::common::teos::v2::AppointmentData;
use teos_common::protos::common::teos::v2::appointment_data::AppointmentData as Data;
use teos_common::protos::teos::v2::GetTowerInfoResponse;
use teos_common::protos::teos::v2::network_address::AddressType;

/// Hex of `bytes` reversed: a txid or block hash from the wire in display order.
pub fn display_order_hex(bytes: &[u8]) -> String {
    let mut reversed = bytes.to_vec();
    reversed.reverse();
    hex::encode(reversed)
}

/// One watched appointment or tracker.
pub fn entry(item: &AppointmentData) -> Value {
    match &item.appointment_data {
        Some(Data::Appointment(a)) => json!({ "appointment": {
            "locator": hex::encode(&a.locator),
            "encrypted_blob": hex::encode(&a.encrypted_blob),
            "to_self_delay": a.to_self_delay,
        }}),
        Some(Data::Tracker(t)) => json!({ "tracker": {
            "dispute_txid": display_order_hex(&t.dispute_txid),
            "penalty_txid": display_order_hex(&t.penalty_txid),
            "penalty_rawtx": hex::encode(&t.penalty_rawtx),
        }}),
        None => Value::Null,
    }
}

/// The tower info object.
pub fn tower_info(info: &GetTowerInfoResponse) -> Value {
    let addresses: Vec<Value> = info
        .addresses
        .iter()
        .map(|a| {
            let kind = match AddressType::try_from(a.address_type) {
                Ok(AddressType::IpV4) => "ipv4",
                Ok(AddressType::TorV3) => "torv3",
                Err(_) => "unknown",
            };
            json!({ "type": kind, "address": a.address, "port": a.port })
        })
        .collect();
    let reported = !info.best_block_hash.is_empty();
    json!({
        "tower_id": hex::encode(&info.tower_id),
        "n_registered_users": info.n_registered_users,
        "n_watcher_appointments": info.n_watcher_appointments,
        "n_responder_trackers": info.n_responder_trackers,
        "bitcoind_reachable": info.bitcoind_reachable,
        "addresses": addresses,
        "best_block_height": reported.then_some(info.best_block_height),
        "best_block_hash": reported.then(|| display_order_hex(&info.best_block_hash)),
        "version": (!info.version.is_empty()).then_some(&info.version),
        "uptime_secs": reported.then_some(info.uptime_secs),
        "data_dir_bytes": reported.then_some(info.data_dir_bytes),
        "tower_address": (!info.tower_address.is_empty()).then_some(&info.tower_address),
        "onion_address": (!info.onion_address.is_empty()).then_some(&info.onion_address),
        "role": (!info.role.is_empty()).then_some(&info.role),
        "leader_epoch": (!info.role.is_empty()).then_some(info.leader_epoch),
    })
}

/// The fields of `getuser` other than its `appointments` list (written item by item).
pub fn user_fields(
    user_id: &UserId,
    available_slots: u32,
    subscription_expiry: u32,
) -> serde_json::Map<String, Value> {
    let mut fields = serde_json::Map::new();
    fields.insert("user_id".into(), json!(user_id.to_string()));
    fields.insert("available_slots".into(), json!(available_slots));
    fields.insert("subscription_expiry".into(), json!(subscription_expiry));
    fields
}

/// The answer to `stop`.
pub fn stopping() -> Value {
    json!({ "stopping": true })
}

#[cfg(test)]
mod tests {
    use super::*;
    use teos_common::protos::common::teos::v2::{Appointment, Tracker};

    #[test]
    fn txids_are_printed_in_display_order_and_blobs_as_is() {
        let tracker = AppointmentData {
            appointment_data: Some(Data::Tracker(Tracker {
                dispute_txid: vec![1, 2, 3],
                penalty_txid: vec![0xaa, 0xbb],
                penalty_rawtx: vec![1, 2],
            })),
        };
        let watched = AppointmentData {
            appointment_data: Some(Data::Appointment(Appointment {
                locator: vec![0x0f; 16],
                encrypted_blob: vec![1, 2],
                to_self_delay: 42,
            })),
        };
        let out: Vec<Value> = [watched, tracker].iter().map(entry).collect();
        assert_eq!(
            json!({ "appointments": out }),
            json!({ "appointments": [
                { "appointment": {
                    "locator": "0f".repeat(16), "encrypted_blob": "0102", "to_self_delay": 42 } },
                { "tracker": {
                    "dispute_txid": "030201", "penalty_txid": "bbaa", "penalty_rawtx": "0102" } },
            ]})
        );
    }

    #[test]
    fn tower_info_without_our_additions_prints_nulls() {
        let info = GetTowerInfoResponse {
            tower_id: vec![2; 33],
            ..Default::default()
        };
        let out = tower_info(&info);
        assert_eq!(out["best_block_hash"], Value::Null);
        assert_eq!(out["version"], Value::Null);
        assert_eq!(out["tower_address"], Value::Null);
        assert_eq!(out["onion_address"], Value::Null);
        assert_eq!(out["tower_id"], json!("02".repeat(33)));
    }

    #[test]
    fn tower_info_prints_the_tower_address() {
        let info = GetTowerInfoResponse {
            tower_id: vec![2; 33],
            tower_address: "02ab@tower.example.com:9814".into(),
            ..Default::default()
        };
        assert_eq!(
            tower_info(&info)["tower_address"],
            json!("02ab@tower.example.com:9814")
        );
    }

    #[test]
    fn tower_info_prints_the_onion_address_when_reported() {
        let onion = format!("{}.onion:9814", "a".repeat(56));
        let info = GetTowerInfoResponse {
            onion_address: onion.clone(),
            ..Default::default()
        };
        assert_eq!(tower_info(&info)["onion_address"], json!(onion));
    }
}
