//! teos-bench: a load generator and end-to-end benchmarks of teosd (issue 7).
//!
//! * `load` ([`load`]): users register, then pre-signed `add_appointment` requests go over N
//!   keep-alive HTTP connections; throughput and latency percentiles (HdrHistogram), and a durability
//!   check (SIGKILL, then every receipt must be a row).
//! * `chain` ([`chain_scenario`]): bitcoind-sim in this process, the real teosd binary, a database
//!   prefilled with many appointments; breach-to-broadcast latency on big blocks, teosd's block
//!   processing time, RSS, catch-up after downtime, restart time.
//! * `mempool` ([`mempool_scenario`]): the same with teosd's mempool watcher: a dispute accepted into
//!   the mempool → its penalty accepted (before any block), and teosd's CPU while the mempool
//!   receives unrelated transactions at a steady rate.
//! * `takeover` ([`takeover`]): a fleet of teosd instances on one PostgreSQL database; the leader
//!   killed with SIGKILL, the time until a standby has taken over and processed a new block.
//!
//! `load` and `chain` run the tower on SQLite by default and on PostgreSQL with `--postgres` /
//! `--database-url` ([`pg`], prefill: [`pg_prefill`]); `load --instances N` spreads the connections
//! over N instances of a fleet.
//!
//! Figures are printed as text and, with `--markdown`, as rows of the `BENCHMARKS.md` table
//! ([`targets`]).

pub mod chain;
pub mod chain_scenario;
pub mod clients;
pub mod error;
pub mod events;
pub mod fsync_probe;
pub mod http;
pub mod load;
pub mod mempool_scenario;
pub mod pg;
pub mod pg_prefill;
pub mod prefill;
pub mod rpc_probe;
pub mod stats;
pub mod takeover;
pub mod targets;
pub mod tower;
