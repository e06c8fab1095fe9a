//! `teosd migrate-db`: moves a tower between the embedded SQLite database and PostgreSQL (issue 12,
//! docs/fleet.md "Moving to PostgreSQL and back").
//!
//! The copy is written once over [`Tx`](crate::storage::Tx) ([`copy::copy`], [`copy::verify`]), so the
//! same code moves a tower in both directions.

pub mod copy;
