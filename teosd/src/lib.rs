//! teosd: The Eye of Satoshi watchtower daemon, as a library (the binary is a thin `main`).
//!
//! See ARCHITECTURE.md at the workspace root for how these modules map to the tower's data flow.

pub mod api;
pub mod backup;
pub mod bitcoind;
pub mod block_processor;
pub mod carrier;
pub mod chain_monitor;
pub mod chain_view;
pub mod chain_walker;
pub mod config;
pub mod daemon;
pub mod fleet;
pub mod gatekeeper;
pub mod import_rust_teos;
pub mod listen;
pub mod locator_cache;
pub mod logging;
pub mod mempool_watch;
pub mod metrics;
pub mod migrate_db;
pub mod notify;
pub mod responder;
pub mod shutdown;
pub mod signals;
pub mod storage;
pub mod subcommand;
#[cfg(test)]
mod test_fixtures;
pub mod thread;
pub mod tls;
pub mod tor;
pub mod tower;
pub mod watched_locators;
pub mod watcher;
