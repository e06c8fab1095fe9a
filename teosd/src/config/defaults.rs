//! Built-in defaults: the values rust-teos used (research/rust-teos.md §6.1) plus teosd's own keys.
//! `contrib/teos.toml.example` repeats them; a test keeps the two equal.

use super::network::BtcNetwork;

/// `api_bind`: address of the public HTTP API.
pub const API_BIND: &str = "127.0.0.1";
/// `api_port`: port of the public HTTP API (PROTOCOL.md "Endpoints").
pub const API_PORT: u16 = 9814;
/// `rpc_bind`: address of the admin gRPC API.
pub const RPC_BIND: &str = "127.0.0.1";
/// `rpc_port`: port of the admin gRPC API.
pub const RPC_PORT: u16 = 8814;
/// `btc_network`.
pub const BTC_NETWORK: BtcNetwork = BtcNetwork::Mainnet;
/// `btc_rpc_connect`: host of bitcoind's JSON-RPC server.
pub const BTC_RPC_CONNECT: &str = "localhost";
/// `btc_rpc_port`: 0 = the network's default ([`BtcNetwork::default_rpc_port`]).
pub const BTC_RPC_PORT: u16 = 0;
/// `subscription_slots`: slots granted per registration (PROTOCOL.md "Subscriptions").
pub const SUBSCRIPTION_SLOTS: u32 = 10_000;
/// `subscription_duration`: blocks a registration lasts (about 30 days).
pub const SUBSCRIPTION_DURATION: u32 = 4320;
/// `expiry_delta`: blocks an expired user is kept before deletion.
pub const EXPIRY_DELTA: u32 = 6;
/// `min_to_self_delay`: smallest accepted `to_self_delay`, in blocks.
pub const MIN_TO_SELF_DELAY: u16 = 20;
/// `max_encrypted_blob_size`: largest accepted `encrypted_blob`, in bytes.
pub const MAX_ENCRYPTED_BLOB_SIZE: usize = 2048;
/// `polling_delta`: seconds between two `getbestblockhash` polls.
pub const POLLING_DELTA: u16 = 60;
/// `locator_cache_size`: recent blocks whose locators are kept to answer late appointments.
pub const LOCATOR_CACHE_SIZE: u32 = 6;
/// `api_max_connections`: most HTTP connections the public API holds open at once; further clients
/// wait in the kernel's accept queue (mini-redis's `MAX_CONNECTIONS` pattern).
pub const API_MAX_CONNECTIONS: u32 = 256;
/// `api_header_timeout`: seconds a client gets to send a request's headers, also the most a
/// keep-alive connection stays idle between requests (slowloris protection).
pub const API_HEADER_TIMEOUT: u16 = 10;
/// `api_body_timeout`: seconds a client gets to send a request's body once its headers are in.
pub const API_BODY_TIMEOUT: u16 = 10;
/// `register_rate_limit`: `/register` requests per minute per client IP address (0 = no limit).
pub const REGISTER_RATE_LIMIT: u32 = 60;
/// `register_rate_burst`: `/register` requests one IP address may send at once before the rate applies.
pub const REGISTER_RATE_BURST: u32 = 20;
/// `add_appointment_rate_limit`: `/add_appointment` requests per minute per client IP address
/// (0 = no limit).
pub const ADD_APPOINTMENT_RATE_LIMIT: u32 = 6000;
/// `add_appointment_rate_burst`: `/add_appointment` requests one IP address may send at once.
pub const ADD_APPOINTMENT_RATE_BURST: u32 = 1000;
/// `max_users`: registered users the tower accepts (0 = no cap); renewals are always accepted.
pub const MAX_USERS: u32 = 1_000_000;
/// `max_appointments`: appointments the tower holds (0 = no cap; python-teos's `MAX_APPOINTMENTS`);
/// updates of an existing appointment are always accepted.
pub const MAX_APPOINTMENTS: u32 = 1_000_000;
/// `log_level`: level of teosd's own log lines.
pub const LOG_LEVEL: &str = "info";
/// `log_format`: `auto` = human-readable on a terminal, journald-style (`<priority>` prefixes, no
/// timestamps) when stderr goes to the journal (`JOURNAL_STREAM` set), human otherwise.
pub const LOG_FORMAT: &str = "auto";
/// `internal_api_bind` (accepted for compatibility, unused).
pub const INTERNAL_API_BIND: &str = "127.0.0.1";
/// `internal_api_port` (accepted for compatibility, unused).
pub const INTERNAL_API_PORT: u16 = 50051;
/// `tor_control_port`: Tor's default `ControlPort`.
pub const TOR_CONTROL_PORT: u16 = 9051;
/// `onion_hidden_service_port`: the port clients dial at the onion address (rust-teos's default).
pub const ONION_HIDDEN_SERVICE_PORT: u16 = 9814;
/// `--datadir` / `TEOS_DATA_DIR`; `~` is the user's home.
pub const DATA_DIR: &str = "~/.teos";
/// Name of the configuration file inside the data directory.
pub const CONFIG_FILE_NAME: &str = "teos.toml";
/// Name of the SQLite database inside the network directory.
pub const DB_FILE_NAME: &str = "teos_db.sql3";
