//! teosd's configuration: built-in defaults, then `<datadir>/teos.toml`, then `TEOS_*` environment
//! variables, then command-line flags, each later source overriding the earlier ones key by key.
//!
//! The keys and flags are rust-teos's (research/rust-teos.md §6.1), so an existing `teos.toml` and
//! command line keep working; teosd adds `btc_zmq_hashblock`, `max_encrypted_blob_size`,
//! `locator_cache_size`, `log_level`, testnet4, and flags for `polling_delta` and `log_level`.
//! Unlike rust-teos, teosd never falls back to defaults when a source is broken: a file that does not
//! parse, an unknown key or `TEOS_*` variable, or a bad value stops startup with a [`ConfigError`]
//! naming the key and where the value came from. The rules are listed in `config/resolve.rs` and
//! `contrib/README.md`.
//!
//! Layout (as rust-teos): `<data_dir>/teos.toml`, `<data_dir>/<chain name>/teos_db.sql3`.

mod cli;
pub mod defaults;
mod error;
mod layer;
mod network;
mod render;
mod resolve;

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::Parser;

pub use error::{ConfigError, Origin};
pub use layer::{ENV_DATA_DIR, ENV_PREFIX, KEYS};
pub use network::{BtcNetwork, UnknownNetwork};

/// The effective, checked configuration. Build it with [`Config::load`] (or [`Config::load_from`]); a
/// `Config` from those always satisfies the rules in the module doc (exactly one credential kind,
/// non-zero ports, `btc_rpc_port` resolved). Tests may also start from [`Config::new`] and edit fields.
///
/// `Debug` masks the password.
#[derive(Clone, PartialEq)]
pub struct Config {
    /// Address the public HTTP API listens on (IP literal, IPv6 without brackets, or host name).
    pub api_bind: String,
    /// Port of the public HTTP API (1..=65535).
    pub api_port: u16,
    /// Address the admin gRPC API listens on.
    pub rpc_bind: String,
    /// Port of the admin gRPC API (1..=65535).
    pub rpc_port: u16,
    /// The Bitcoin network; bitcoind must report the same `chain`.
    pub btc_network: BtcNetwork,
    /// bitcoind RPC user; empty when [`Config::btc_rpc_cookie`] is set.
    pub btc_rpc_user: String,
    /// bitcoind RPC password; empty when [`Config::btc_rpc_cookie`] is set. Never logged.
    pub btc_rpc_password: String,
    /// bitcoind's cookie file (`~` expanded; a relative path is relative to the working directory).
    /// `None` = user/password.
    pub btc_rpc_cookie: Option<PathBuf>,
    /// Host of bitcoind's RPC server (no scheme, no port).
    pub btc_rpc_connect: String,
    /// Port of bitcoind's RPC server, never 0 (0 in the sources = the network default).
    pub btc_rpc_port: u16,
    /// bitcoind's `zmqpubhashblock` endpoint (`tcp://HOST:PORT` or `ipc://PATH`); `None` = ask
    /// bitcoind with `getzmqnotifications`, and poll only if it publishes none.
    pub btc_zmq_hashblock: Option<String>,
    /// Answer breaches from bitcoind's mempool, before the dispute is mined (`mempool_watch`,
    /// default true; `crate::mempool_watch`). Off: breaches are answered when their block is.
    pub mempool_watch: bool,
    /// Slots granted per registration (PROTOCOL.md "Subscriptions"), ≥ 1.
    pub subscription_slots: u32,
    /// Blocks one registration lasts, ≥ 1.
    pub subscription_duration: u32,
    /// Blocks an expired user is kept before its data is deleted.
    pub expiry_delta: u32,
    /// Smallest accepted appointment `to_self_delay`, in blocks (PROTOCOL.md "Appointments").
    pub min_to_self_delay: u16,
    /// Largest accepted `encrypted_blob`, in bytes, ≥ 1.
    pub max_encrypted_blob_size: usize,
    /// Seconds between two polls of bitcoind's best block, ≥ 1.
    pub polling_delta: u16,
    /// Recent blocks whose locators are kept to answer appointments for already-mined disputes, ≥ 1.
    pub locator_cache_size: u32,
    /// Most connections the public API serves at once (≥ 1); more wait to be accepted.
    pub api_max_connections: u32,
    /// Seconds a client gets to send a request's headers; also the idle limit of a keep-alive
    /// connection (≥ 1).
    pub api_header_timeout: u16,
    /// Seconds a client gets to send a request's body after its headers (≥ 1); then 408.
    pub api_body_timeout: u16,
    /// `/register` requests per minute per client IP (0 = unlimited); over it: 429.
    pub register_rate_limit: u32,
    /// `/register` requests an IP may send at once before [`Config::register_rate_limit`] applies (≥ 1).
    pub register_rate_burst: u32,
    /// `/add_appointment` requests per minute per client IP (0 = unlimited); over it: 429.
    pub add_appointment_rate_limit: u32,
    /// `/add_appointment` requests an IP may send at once (≥ 1).
    pub add_appointment_rate_burst: u32,
    /// Registered users the tower accepts (0 = no cap); a new user over it gets 503 / code 32.
    pub max_users: u32,
    /// Appointments the tower holds (0 = no cap); a new appointment over it gets 503 / code 32.
    pub max_appointments: u32,
    /// Log teosd at debug level at least.
    pub debug: bool,
    /// Log dependencies at debug level (otherwise warn).
    pub deps_debug: bool,
    /// teosd's log level: "off", "error", "warn", "info", "debug" or "trace" (lowercase).
    pub log_level: String,
    /// Log line format: `auto`, `human`, `journald` or `json` (JSON lines).
    pub log_format: String,
    /// Log to this file instead of stderr (reopened on SIGHUP, for logrotate); `None` = stderr.
    pub log_file: Option<PathBuf>,
    /// Address (`IP:port`) of the Prometheus `/metrics` endpoint; `None` (the default) = off.
    pub metrics_bind: Option<std::net::SocketAddr>,
    /// Replace the tower key with a new one at startup (changes the tower id).
    pub overwrite_key: bool,
    /// Start even if blocks since the last run were pruned, skipping them (research/rust-teos.md §1.4).
    pub force_update: bool,
    /// Data directory (`~` expanded); holds `teos.toml` and one directory per network.
    pub data_dir: PathBuf,
    /// `--print-config` was given: print [`Config::masked`] and exit.
    pub print_config: bool,
    /// rust-teos's internal gRPC address: accepted for compatibility, unused.
    pub internal_api_bind: String,
    /// rust-teos's internal gRPC port: accepted for compatibility, unused.
    pub internal_api_port: u16,
    /// rust-teos's Tor control port: accepted for compatibility, unused (Tor is not implemented).
    pub tor_control_port: u16,
    /// rust-teos's onion service port: accepted for compatibility, unused (Tor is not implemented).
    pub onion_hidden_service_port: u16,
}

/// How teosd authenticates to bitcoind's JSON-RPC server.
#[derive(Clone, PartialEq, Eq)]
pub enum BtcAuth {
    /// `rpcuser`/`rpcpassword` (or an `rpcauth` entry): user, password.
    UserPass(String, String),
    /// The cookie file bitcoind writes at each start (`<bitcoind datadir>/<chain dir>/.cookie`).
    Cookie(PathBuf),
}

impl fmt::Debug for BtcAuth {
    /// Masks the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BtcAuth::UserPass(user, _) => {
                f.debug_tuple("UserPass").field(user).field(&"***").finish()
            }
            BtcAuth::Cookie(path) => f.debug_tuple("Cookie").field(path).finish(),
        }
    }
}

impl Config {
    /// The defaults (those of `contrib/teos.toml.example`) with the given data directory, network and
    /// credentials; `btc_rpc_port` is the network's default. For tests and embedding; no check is run.
    pub fn new(data_dir: PathBuf, btc_network: BtcNetwork, auth: BtcAuth) -> Config {
        let (btc_rpc_user, btc_rpc_password, btc_rpc_cookie) = match auth {
            BtcAuth::UserPass(user, password) => (user, password, None),
            BtcAuth::Cookie(path) => (String::new(), String::new(), Some(path)),
        };
        use defaults as d;
        Config {
            api_bind: d::API_BIND.into(),
            api_port: d::API_PORT,
            rpc_bind: d::RPC_BIND.into(),
            rpc_port: d::RPC_PORT,
            btc_network,
            btc_rpc_user,
            btc_rpc_password,
            btc_rpc_cookie,
            btc_rpc_connect: d::BTC_RPC_CONNECT.into(),
            btc_rpc_port: btc_network.default_rpc_port(),
            btc_zmq_hashblock: None,
            subscription_slots: d::SUBSCRIPTION_SLOTS,
            subscription_duration: d::SUBSCRIPTION_DURATION,
            expiry_delta: d::EXPIRY_DELTA,
            min_to_self_delay: d::MIN_TO_SELF_DELAY,
            max_encrypted_blob_size: d::MAX_ENCRYPTED_BLOB_SIZE,
            polling_delta: d::POLLING_DELTA,
            mempool_watch: true,
            locator_cache_size: d::LOCATOR_CACHE_SIZE,
            api_max_connections: d::API_MAX_CONNECTIONS,
            api_header_timeout: d::API_HEADER_TIMEOUT,
            api_body_timeout: d::API_BODY_TIMEOUT,
            register_rate_limit: d::REGISTER_RATE_LIMIT,
            register_rate_burst: d::REGISTER_RATE_BURST,
            add_appointment_rate_limit: d::ADD_APPOINTMENT_RATE_LIMIT,
            add_appointment_rate_burst: d::ADD_APPOINTMENT_RATE_BURST,
            max_users: d::MAX_USERS,
            max_appointments: d::MAX_APPOINTMENTS,
            debug: false,
            deps_debug: false,
            log_level: d::LOG_LEVEL.into(),
            log_format: d::LOG_FORMAT.into(),
            log_file: None,
            metrics_bind: None,
            overwrite_key: false,
            force_update: false,
            data_dir,
            print_config: false,
            internal_api_bind: d::INTERNAL_API_BIND.into(),
            internal_api_port: d::INTERNAL_API_PORT,
            tor_control_port: d::TOR_CONTROL_PORT,
            onion_hidden_service_port: d::ONION_HIDDEN_SERVICE_PORT,
        }
    }

    /// Parses `std::env::args_os()`, the process environment and `<datadir>/teos.toml`.
    ///
    /// Environment variables that are not valid UTF-8 are ignored, except a `TEOS_*` one, which is an
    /// error. Errors: see [`Config::load_from`].
    pub fn load() -> Result<Config, ConfigError> {
        let mut env = Vec::new();
        for (name, value) in std::env::vars_os() {
            match (name.into_string(), value.into_string()) {
                (Ok(name), Ok(value)) => env.push((name, value)),
                (Ok(name), Err(_)) if name.starts_with(ENV_PREFIX) => {
                    return Err(ConfigError::invalid(
                        &name[ENV_PREFIX.len()..].to_lowercase(),
                        &Origin::Env(name.clone()),
                        "not valid UTF-8",
                    ));
                }
                _ => {}
            }
        }
        Config::load_from(std::env::args_os(), env)
    }

    /// Testable form of [`Config::load`]: `args` is the command line with the program name first,
    /// `env` the environment (`HOME` expands `~`; `TEOS_*` variables set keys; `TEOS_DATA_DIR` sets the
    /// data directory when `--datadir` is absent). Reads `<datadir>/teos.toml` if it exists; creates
    /// nothing.
    ///
    /// Errors: [`ConfigError::Cli`] for a bad command line or `--help`/`--version`;
    /// [`ConfigError::ReadFile`], [`ConfigError::Syntax`], [`ConfigError::UnknownKey`] for the file;
    /// [`ConfigError::UnknownEnv`] for a `TEOS_*` variable naming no key; [`ConfigError::Invalid`],
    /// [`ConfigError::Missing`], [`ConfigError::Conflict`], [`ConfigError::Unsupported`],
    /// [`ConfigError::NoHome`] for values. Every error names the key and the value's origin.
    pub fn load_from(
        args: impl IntoIterator<Item = OsString>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut cli = cli::Cli::try_parse_from(args)?;
        let env: Vec<(String, String)> = env.into_iter().collect();
        let home = env
            .iter()
            .find(|(name, _)| name == "HOME")
            .map(|(_, value)| PathBuf::from(value));
        let data_dir = data_dir(cli.data_dir.take(), &env, home.as_deref())?;
        let file = file_layer(&data_dir.join(defaults::CONFIG_FILE_NAME))?;
        let env_layer = layer::env_layer(&env)?;
        let flag_layer = cli.take_layer()?;
        let merged = file.overlay(env_layer).overlay(flag_layer);
        resolve::resolve(merged, data_dir, home.as_deref(), cli.print_config)
    }

    /// The credentials to give bitcoind: the cookie if [`Config::btc_rpc_cookie`] is set, else
    /// user/password.
    pub fn btc_auth(&self) -> BtcAuth {
        match &self.btc_rpc_cookie {
            Some(path) => BtcAuth::Cookie(path.clone()),
            None => BtcAuth::UserPass(self.btc_rpc_user.clone(), self.btc_rpc_password.clone()),
        }
    }

    /// `<data_dir>/<chain name>` (e.g. `~/.teos/main`, `~/.teos/regtest`), as rust-teos.
    pub fn network_dir(&self) -> PathBuf {
        self.data_dir.join(self.btc_network.chain_name())
    }

    /// `<network_dir>/teos_db.sql3`.
    pub fn db_path(&self) -> PathBuf {
        self.network_dir().join(defaults::DB_FILE_NAME)
    }

    /// `<data_dir>/teos.toml`.
    pub fn config_file(&self) -> PathBuf {
        self.data_dir.join(defaults::CONFIG_FILE_NAME)
    }

    /// bitcoind's RPC URL, `http://<btc_rpc_connect>:<btc_rpc_port>` (IPv6 in brackets).
    pub fn btc_rpc_url(&self) -> String {
        format!(
            "http://{}",
            join_host_port(&self.btc_rpc_connect, self.btc_rpc_port)
        )
    }

    /// `<api_bind>:<api_port>` for binding the public API (IPv6 in brackets; host names resolve).
    pub fn api_address(&self) -> String {
        join_host_port(&self.api_bind, self.api_port)
    }

    /// `<rpc_bind>:<rpc_port>` for binding the admin API (IPv6 in brackets; host names resolve).
    pub fn rpc_address(&self) -> String {
        join_host_port(&self.rpc_bind, self.rpc_port)
    }

    /// A `tracing_subscriber::EnvFilter` directive: teosd's crates (`teosd`, `teos_common`) at
    /// `log_level`, raised to `debug` by `debug`; other crates at `warn` (or `log_level` if quieter),
    /// or `debug` with `deps_debug` (rust-teos's `--debug`/`--depsdebug`, research/rust-teos.md §1.4).
    pub fn log_filter(&self) -> String {
        const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
        let rank = |level: &str| LEVELS.iter().position(|l| *l == level).unwrap_or(3);
        let own = match self.debug {
            true => rank(&self.log_level).max(4),
            false => rank(&self.log_level),
        };
        let deps = match self.deps_debug {
            true => 4,
            false => own.min(2),
        };
        format!(
            "{},teosd={},teos_common={}",
            LEVELS[deps], LEVELS[own], LEVELS[own]
        )
    }
}

/// `host:port`, with brackets around an IPv6 literal.
fn join_host_port(host: &str, port: u16) -> String {
    match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    }
}

/// The data directory: `--datadir`, else `TEOS_DATA_DIR`, else `~/.teos`; `~` expanded.
fn data_dir(
    flag: Option<String>,
    env: &[(String, String)],
    home: Option<&Path>,
) -> Result<PathBuf, ConfigError> {
    let from_env = env.iter().find(|(name, _)| name == ENV_DATA_DIR);
    let (text, origin) = match (flag, from_env) {
        (Some(text), _) => (text, Origin::Flag("--datadir")),
        (None, Some((name, text))) => (text.clone(), Origin::Env(name.clone())),
        (None, None) => (defaults::DATA_DIR.to_string(), Origin::Default),
    };
    if text.is_empty() {
        return Err(ConfigError::invalid(
            "data_dir",
            &origin,
            "must not be empty",
        ));
    }
    resolve::expand_tilde("data_dir", &origin, &text, home)
}

/// Reads and parses `path`; a missing file is an empty layer (all defaults), any other read error
/// stops startup.
fn file_layer(path: &Path) -> Result<layer::Layer, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => layer::file_layer(path, &text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(layer::Layer::default()),
        Err(source) => Err(ConfigError::ReadFile {
            path: path.to_path_buf(),
            source,
        }),
    }
}
