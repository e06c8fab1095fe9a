//! THE table of configuration keys: every key teosd reads is one row here, and everything else
//! follows from the row (see [`super::spec::keys`]): the [`Config`] field, the `teos.toml` key, the
//! `TEOS_<KEY>` environment variable, the `--<key without underscores>` flag and its `--help` line,
//! the line of `--print-config` and the entry of `contrib/teos.toml.example`.
//!
//! # Adding a key
//!
//! 1. Add one row in the group it belongs to (the order of the rows is the order of the example file):
//!    ```text
//!    /// One-line summary, shown by --help.
//!    /// More lines for teos.toml.example: units, accepted values, what 0 or empty means.
//!    [Group] my_key: Type = default, "VALUE_NAME", check = checks::some_check;
//!    ```
//!    `Type` is one of `String`, `Option<String>`, `PathBuf`, `Option<PathBuf>`,
//!    `Option<SocketAddr>`, `bool`, `u16`, `u32`, `usize`, `BtcNetwork` (add a [`KeyType`] impl in
//!    `value.rs` for another). Options: `check = <fn(T, &Ctx) -> Result<T, Refusal>>` (in
//!    `checks.rs`; none = any value of the type), `secret = true` (masked in `--print-config`),
//!    `sources = Sources::FlagOnly("why")` or `Sources::NotInFile("why")`.
//! 2. Regenerate the example file:
//!    `cargo run -p teosd -- --print-example-config > contrib/teos.toml.example`
//!    (the test `example_file_is_generated_from_the_table` fails until you do).
//! 3. Use `config.my_key` where it matters. Rules that span several keys go in `resolve.rs`.
//!
//! A boolean `my_key` is then `my_key = true` in `teos.toml`, `TEOS_MY_KEY=1` and `--mykey` (or
//! `--mykey=false`).

use std::net::SocketAddr;
use std::path::PathBuf;

use ::config::Value;

use super::checks;
use super::error::{ConfigError, Origin};
use super::network::BtcNetwork;
use super::spec::{Ctx, Group, KeySpec, Opts, Setting, Sources, allowed, keys};
use super::value::{KeyType, Shown};
use crate::storage::postgres::DatabaseUrl;

keys! {
    /// Data directory holding teos.toml and one database directory per network.
    /// Set with --datadir or TEOS_DATA_DIR; `~` is your home directory.
    [Paths] data_dir: PathBuf = PathBuf::from("~/.teos"), "DIR",
        check = checks::data_dir,
        sources = Sources::NotInFile(
            "the data directory holds teos.toml, so it cannot be set there; use --datadir or TEOS_DATA_DIR");
    /// PostgreSQL database, postgresql://USER@HOST:PORT/DATABASE; empty = SQLite in the data dir.
    /// Instances with the same URL share one database as a fleet (docs/fleet.md). The password is
    /// taken from the URL (postgresql://USER:PASSWORD@HOST...), else PGPASSWORD, else the password
    /// file (PGPASSFILE or ~/.pgpass, mode 0600, libpq's format); it is masked by --print-config and
    /// never logged. A malformed URL stops teosd at start. Connections are plain TCP for now: keep
    /// the database on loopback or a private network.
    [Paths] database_url: Option<DatabaseUrl> = None, "URL";
    /// Fleet (database_url set): seconds after the leader's last lease renewal (it renews every
    /// second) at which a standby takes over the chain pipeline; also how soon a leader cut off from
    /// the database stops. At least 2. docs/fleet.md.
    [Paths] leader_takeover_seconds: u16 = 10, "SECONDS", check = checks::at_least_two;

    /// Address of the public HTTP API: an IP address or a host name.
    /// Use 0.0.0.0 (or ::) to accept remote clients, and set external_address then.
    [Api] api_bind: String = "127.0.0.1".into(), "HOST", check = checks::host;
    /// Port of the public HTTP API (1-65535).
    [Api] api_port: u16 = 9814, "PORT", check = checks::port;
    /// The address users reach the public API at, as HOST or HOST:PORT; empty = api_bind.
    /// HOST is a host name, an IPv4 address or an IPv6 address in brackets ([2001:db8::1]:9814);
    /// without a port, api_port is advertised. teosd prints tower_id@HOST:PORT at start and in
    /// gettowerinfo: the line users give their client. When api_bind is a wildcard (0.0.0.0, ::)
    /// and this is empty, teosd has no address to advertise and says so.
    [Api] external_address: Option<String> = None, "HOST[:PORT]",
        check = checks::external_address;

    /// Address of the admin gRPC API (teos-cli): an IP address or a host name.
    [Admin] rpc_bind: String = "127.0.0.1".into(), "HOST", check = checks::host;
    /// Port of the admin gRPC API (1-65535).
    [Admin] rpc_port: u16 = 8814, "PORT", check = checks::port;

    /// Bitcoin network: mainnet, testnet, testnet4, signet or regtest.
    /// Also main/bitcoin and test, any case. bitcoind must be on the same network; the database
    /// lives in <datadir>/<main|test|testnet4|signet|regtest>/.
    [Bitcoind] btc_network: BtcNetwork = BtcNetwork::Mainnet, "NETWORK";
    /// bitcoind RPC user (with btc_rpc_password; excludes btc_rpc_cookie); no `:`.
    /// Credentials: set EITHER btc_rpc_user AND btc_rpc_password, OR btc_rpc_cookie (not both).
    /// An empty string means "not set".
    [Bitcoind] btc_rpc_user: String = String::new(), "USER";
    /// bitcoind RPC password; the flag shows in the process list, prefer teos.toml or TEOS_BTC_RPC_PASSWORD.
    /// Keep this file mode 600 when the password is in it. Masked by --print-config.
    [Bitcoind] btc_rpc_password: String = String::new(), "PASSWORD", secret = true;
    /// bitcoind's cookie file, e.g. ~/.bitcoin/.cookie (excludes user/password).
    /// `~` is your home directory; a relative path is relative to teosd's working directory.
    [Bitcoind] btc_rpc_cookie: Option<PathBuf> = None, "PATH", check = checks::path;
    /// Host of bitcoind's RPC server: an IP address or a host name, without scheme or port.
    [Bitcoind] btc_rpc_connect: String = "localhost".into(), "HOST", check = checks::host;
    /// Port of bitcoind's RPC server; 0 = the network's (8332, 18332, 48332, 38332, 18443).
    /// In order: mainnet, testnet, testnet4, signet, regtest.
    [Bitcoind] btc_rpc_port: u16 = 0, "PORT";
    /// bitcoind's zmqpubhashblock endpoint, e.g. tcp://127.0.0.1:28332; empty = ask bitcoind.
    /// tcp://HOST:PORT or ipc://PATH. Empty: teosd asks bitcoind (getzmqnotifications); without ZMQ
    /// it relies on polling alone.
    [Bitcoind] btc_zmq_hashblock: Option<String> = None, "ENDPOINT", check = checks::zmq_endpoint;
    /// bitcoind's zmqpubsequence endpoint, for mempool_watch; empty = ask bitcoind.
    /// tcp://HOST:PORT or ipc://PATH. Empty: teosd asks bitcoind (getzmqnotifications); without it
    /// the mempool watcher reads bitcoind's mempool every 2 s.
    [Bitcoind] btc_zmq_sequence: Option<String> = None, "ENDPOINT", check = checks::zmq_endpoint;
    /// Seconds between two polls of bitcoind's best block (at least 1).
    /// ZMQ notifications, when available, announce new blocks sooner; polling still runs to catch
    /// missed notifications.
    [Bitcoind] polling_delta: u16 = 60, "SECONDS", check = checks::positive;
    /// Answer breaches from bitcoind's mempool, before the dispute is mined (teosd::mempool_watch).
    /// Uses bitcoind's ZMQ sequence publisher when it has one (-zmqpubsequence) as a wake-up and
    /// getrawmempool as the truth; false: breaches are answered when their block is processed.
    [Bitcoind] mempool_watch: bool = true, "BOOL";

    /// Appointment slots granted per registration (at least 1).
    /// One slot holds 2048 bytes of blob (PROTOCOL.md "Subscriptions").
    [Subscriptions] subscription_slots: u32 = 10_000, "SLOTS", check = checks::positive;
    /// Blocks a registration lasts (at least 1; 4320 is about 30 days).
    [Subscriptions] subscription_duration: u32 = 4320, "BLOCKS", check = checks::positive;
    /// Blocks an expired user's data is kept before deletion (0 allowed).
    [Subscriptions] expiry_delta: u32 = 6, "BLOCKS";
    /// Smallest accepted to_self_delay of an appointment, in blocks (0 allowed).
    /// PROTOCOL.md "Appointments".
    [Subscriptions] min_to_self_delay: u16 = 20, "BLOCKS";
    /// Largest accepted encrypted_blob, in bytes (at least 1).
    [Subscriptions] max_encrypted_blob_size: usize = 2048, "BYTES", check = checks::positive;
    /// Recent blocks whose locators are kept to answer appointments for disputes already mined.
    /// 1 to 288, the blocks the tower remembers.
    [Subscriptions] locator_cache_size: u32 = 6, "BLOCKS", check = checks::kept_blocks;

    /// Most HTTP connections served at once (at least 1); further clients wait to be accepted.
    /// They wait in the kernel's accept queue (mini-redis's MAX_CONNECTIONS pattern).
    [Limits] api_max_connections: u32 = 256, "N", check = checks::positive;
    /// Seconds a client gets to send a request's headers; also the keep-alive idle limit (at least 1).
    /// Protects against slow clients holding connections (slowloris).
    [Limits] api_header_timeout: u16 = 10, "SECONDS", check = checks::positive;
    /// Seconds a client gets to send a request's body once its headers arrived (at least 1); then 408.
    [Limits] api_body_timeout: u16 = 10, "SECONDS", check = checks::positive;
    /// /register requests per minute per client IP address (0 = no limit).
    /// A request over it waits for its turn (at most 10 s), else the answer is 429.
    /// Behind a reverse proxy or a Tor hidden service every client has the proxy's address: raise these.
    [Limits] register_rate_limit: u32 = 60, "PER_MINUTE";
    /// /register requests one IP address may send at once before register_rate_limit applies (at least 1).
    [Limits] register_rate_burst: u32 = 20, "N", check = checks::positive;
    /// /add_appointment requests per minute per client IP address (0 = no limit).
    /// A request over it waits for its turn (at most 10 s), else it gets 401 / code 7 "retry later"
    /// (never another code, which the Core Lightning plugin would take as "invalid appointment").
    [Limits] add_appointment_rate_limit: u32 = 6000, "PER_MINUTE";
    /// /add_appointment requests one IP address may send at once (at least 1).
    [Limits] add_appointment_rate_burst: u32 = 1000, "N", check = checks::positive;
    /// Most registered users (0 = no cap); a new user over it gets 503 (code 32), renewals pass.
    [Limits] max_users: u32 = 1_000_000, "N";
    /// Most appointments held (0 = no cap); a new one over it gets 401 / code 7 "retry later".
    /// python-teos's MAX_APPOINTMENTS. Updates of an existing appointment pass.
    [Limits] max_appointments: u32 = 1_000_000, "N";

    /// Level of teosd's logs: off, error, warn, info, debug or trace.
    [Logging] log_level: String = "info".into(), "LEVEL", check = checks::log_level;
    /// Log format: auto, human, journald or json.
    /// auto: human on a terminal, journald when stderr is the journal (JOURNAL_STREAM set);
    /// journald: <priority> prefixes, no timestamps; json: one JSON object per line.
    [Logging] log_format: String = "auto".into(), "FORMAT", check = checks::log_format;
    /// Log to this file instead of stderr; SIGHUP reopens it (for logrotate). Empty = stderr.
    [Logging] log_file: Option<PathBuf> = None, "PATH", check = checks::path;
    /// Serve Prometheus metrics on http://IP:PORT/metrics, e.g. 127.0.0.1:9815. Empty = off.
    [Logging] metrics_bind: Option<SocketAddr> = None, "IP:PORT";
    /// Log teosd at debug level at least (rust-teos's --debug).
    [Logging] debug: bool = false, "BOOL";
    /// Log dependencies at debug level (otherwise warn; rust-teos's --depsdebug).
    [Logging] deps_debug: bool = false, "BOOL";

    /// Replace the tower key with a new one at start (changes the tower id clients know).
    /// Old keys are kept in the database.
    [Actions] overwrite_key: bool = false, "BOOL",
        sources = Sources::FlagOnly(
            "only the flag --overwritekey can set it: a true left in teos.toml or the environment \
             would replace the tower key, and so change the tower id, at every start");
    /// Start even if blocks since the last run were pruned by bitcoind, skipping them.
    [Actions] force_update: bool = false, "BOOL";

    /// rust-teos's internal gRPC address: accepted for compatibility, unused.
    /// teosd has no internal gRPC hop between its HTTP and admin APIs.
    [Compat] internal_api_bind: String = "127.0.0.1".into(), "HOST", check = checks::host;
    /// rust-teos's internal gRPC port: accepted for compatibility, unused.
    [Compat] internal_api_port: u16 = 50051, "PORT";
    /// Publish the public API as a Tor onion service through Tor's control port (`teosd::tor`).
    /// The onion service's key is kept in <datadir>/<network>/onion_v3_sk (rust-teos's file).
    [Api] tor_support: bool = false, "BOOL";
    /// Tor's control port on 127.0.0.1 (used with tor_support; as rust-teos, the host is fixed).
    [Api] tor_control_port: u16 = 9051, "PORT", check = checks::port;
    /// Port the onion service offers to clients (<onion address>:<this port>; with tor_support).
    [Api] onion_hidden_service_port: u16 = 9814, "PORT", check = checks::port;
}
