//! The Eye of Satoshi watchtower protocol, shared by the tower (teosd) and its clients.
//!
//! Lightning users hand a tower *appointments*: a penalty transaction encrypted under the txid of a
//! revoked commitment, filed under a *locator* (the first half of that txid). If the commitment ever
//! appears on chain, the tower decrypts the penalty and broadcasts it. This crate is the protocol as
//! a library, wire-compatible with rust-teos 0.2 and Core Lightning's `watchtower-client` plugin:
//!
//! - [`appointment`]: locators, appointments, user/tower ids, appointment ids, slot arithmetic;
//! - [`cryptography`]: blob encryption (ChaCha20-Poly1305) and Lightning `signmessage` signatures;
//! - [`receipts`]: the registration and appointment receipts the tower signs;
//! - [`errors`]: the API error codes and their HTTP statuses;
//! - [`protocol`]: the JSON bodies of the HTTP API and strict request parsers;
//! - [`constants`]: protocol constants and defaults;
//! - `client` (feature `client`): an async HTTP client of a tower;
//! - `protos` (feature `grpc`): the admin gRPC API's generated messages, server and client
//!   (compiled from the crate's `proto/` directory; no system `protoc` needed).
//!
//! The rules come from the protocol specification of the teosd project (`PROTOCOL.md`, "Identities
//! and signatures", "Appointments", "Receipts", "Endpoints", "Errors"). `tests/vectors.rs` reproduces
//! the specification's deterministic vectors (`tests/data/vectors.json`): every derivation below
//! yields byte-for-byte the values other implementations produce.
//!
//! # Building an appointment
//!
//! ```
//! use bitcoin::{Transaction, Txid};
//! use teos_common::appointment::{Appointment, Locator};
//! use teos_common::cryptography;
//!
//! # fn example(dispute_txid: Txid, penalty: Transaction) {
//! // `dispute_txid` is the revoked commitment's txid, `penalty` the transaction spending it.
//! let appointment = Appointment::new(&dispute_txid, &penalty, 144);
//! assert_eq!(appointment.locator, Locator::new(&dispute_txid));
//! // Only the commitment's txid decrypts the blob: the tower learns nothing until the breach.
//! let decrypted = cryptography::decrypt(&appointment.encrypted_blob, &dispute_txid).unwrap();
//! assert_eq!(decrypted, penalty);
//! # }
//! ```
//!
//! # A client session (feature `client`)
//!
//! Register, send an appointment, and read it back, checking the tower's signed receipts against the
//! tower id the operator published (teosd prints its address as `tower_id@host:port`):
//!
//! ```no_run
//! # #[cfg(feature = "client")]
//! # async fn session(
//! #     dispute_txid: bitcoin::Txid,
//! #     penalty: bitcoin::Transaction,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use teos_common::appointment::{Appointment, TowerId};
//! use teos_common::client::{TowerClient, user_id_of};
//! use teos_common::cryptography::get_random_keypair;
//! use teos_common::protocol::GetAppointmentResponse;
//!
//! let tower_id: TowerId = "02fcc947ae8831879d073eef32a5197784b451a9f4ec4241326abb73f133e796cc".parse()?;
//! let tower = TowerClient::new("http://127.0.0.1:9814").with_tower_id(tower_id);
//!
//! // Keep the key: it is the user's identity at the tower.
//! let (user_sk, _) = get_random_keypair();
//! let subscription = tower.register(&user_id_of(&user_sk)).await?;
//! println!("{} slots until block {}", subscription.available_slots, subscription.subscription_expiry);
//!
//! let appointment = Appointment::new(&dispute_txid, &penalty, 144);
//! // Fails with `ClientError::InvalidTowerSignature` if the receipt is not signed by `tower_id`.
//! let receipt = tower.add_appointment(&appointment, &user_sk).await?;
//! println!("watched from block {}", receipt.start_block);
//!
//! match tower.get_appointment(&appointment.locator, &user_sk).await? {
//!     GetAppointmentResponse::BeingWatched(watched) => assert_eq!(watched, appointment),
//!     GetAppointmentResponse::DisputeResponded(tracker) => {
//!         println!("penalty {} sent", tracker.penalty_txid)
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Errors are typed per module (`thiserror`): [`appointment::IdError`],
//! [`cryptography::DecryptionError`], [`errors::ApiError`], and `client::ClientError`.
#![deny(missing_docs)]

pub mod appointment;
#[cfg(feature = "client")]
pub mod client;
pub mod constants;
pub mod cryptography;
pub mod errors;
pub mod protocol;
#[cfg(feature = "grpc")]
pub mod protos;
pub mod receipts;
pub mod ser;
