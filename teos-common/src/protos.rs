//! The admin gRPC API's generated types (feature `grpc`), compiled from `proto/` by `build.rs`
//! (ADMIN_RPC.md). Package paths mirror the protobuf packages:
//!
//! - [`common::teos::v2`]: `Appointment`, `Tracker`, `AppointmentData`, and the request/response
//!   messages shared with tower clients;
//! - [`teos::v2`]: the admin messages and `teos.v2.PrivateTowerServices`, both as a server trait
//!   ([`teos::v2::private_tower_services_server`]) and a client
//!   ([`teos::v2::private_tower_services_client`]).
//!
//! Bytes fields carry raw bytes: ids and locators as they are on the wire, txids and block hashes in
//! internal (not display) byte order. Field names and numbers are rust-teos 0.2's; additions are
//! documented in `proto/teos/v2/tower_services.proto`.

/// Protobuf package `common.*`.
pub mod common {
    /// Protobuf package `common.teos.*`.
    pub mod teos {
        /// Protobuf package `common.teos.v2`: messages shared by towers and clients.
        pub mod v2 {
            tonic::include_proto!("common.teos.v2");
        }
    }
}

/// Protobuf package `teos.*`.
pub mod teos {
    /// Protobuf package `teos.v2`: the admin API (`PrivateTowerServices`).
    pub mod v2 {
        tonic::include_proto!("teos.v2");
    }
}
