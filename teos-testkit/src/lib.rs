//! teos-testkit: the one harness of the workspace's black-box runs — teosd's end-to-end tests,
//! teos-bench and the demo.
//!
//! In the manner of mini-redis's `tests/server.rs`, everything runs for real over loopback:
//! * [`Chain`]: bitcoind-sim in this process (JSON-RPC and ZMQ on ephemeral ports) with a funded
//!   test wallet that makes Lightning-like breaches;
//! * [`TowerProcess`]: the real `teosd` binary as a child process (the caller passes its path, so
//!   the kit does not depend on teosd). The kit learns that teosd is ready, where its APIs listen
//!   and its tower id from its structured log events (`event = "ready"`, `event =
//!   "admin_listening"`, JSON lines), and reads its state through its APIs ([`Admin`], [`User`]),
//!   never by matching the wording of a log message;
//! * [`User`]: a protocol client, and [`appointment_for`] a breach;
//! * [`PgCluster`]: a throwaway PostgreSQL cluster (initdb in a temp dir) for the fleet tests;
//! * [`wait_for`] / [`wait_until`]: the one deadline loop. Nothing sleeps to synchronize.
//!
//! Errors are [`KitError`]; tests turn them into panics, teos-bench and the demo report them.
#![deny(missing_docs)]

mod admin;
mod chain;
mod error;
mod logs;
pub mod postgres;
mod tower;
mod user;
mod wait;

pub use admin::Admin;
pub use chain::{BREACH_TO_SELF_DELAY, BREACH_VALUE, Chain, ChainConfig};
pub use error::KitError;
pub use logs::{Fields, LogEvent, LogLine};
pub use postgres::{PgCluster, PgTarget};
pub use tower::{ConfigPorts, Launch, Ready, TowerConfig, TowerProcess, send_signal};
pub use user::{User, api_error, appointment_for};
pub use wait::{SOON, free_port, wait_for, wait_until};
