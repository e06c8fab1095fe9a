//! The Eye of Satoshi tower protocol, shared by the tower (teosd) and its clients.
//!
//! Everything here is an interface fact of `shared/spec/PROTOCOL.md` and reproduces the values of
//! `shared/spec/vectors.json`:
//! - [`appointment`]: locators, appointments, user/tower ids, appointment ids, slot arithmetic;
//! - [`cryptography`]: blob encryption (ChaCha20-Poly1305) and Lightning `signmessage` signatures;
//! - [`receipts`]: the registration and appointment receipts the tower signs;
//! - [`errors`]: the API error codes and their HTTP statuses;
//! - [`protocol`]: the JSON bodies of the HTTP API and strict request parsers;
//! - [`constants`]: protocol constants and defaults;
//! - `client` (feature `client`): an async HTTP client of the protocol.
//! - `protos` (feature `grpc`): the admin gRPC API's generated messages, server and client.

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
