//! teosd's configuration: built-in defaults, then `<datadir>/teos.toml`, then `TEOS_*` environment
//! variables, then command-line flags, each later source overriding the earlier ones key by key.
//!
//! Every key is one row of the table in `config/keys.rs` (name, type, default, value name, check,
//! documentation); the [`Config`] field, the `teos.toml` parser, the `TEOS_<KEY>` variable, the flag
//! and its `--help` line, `--print-config` and `contrib/teos.toml.example` all follow from the row
//! (electrs's `config_specification.toml` idea, done with a declarative macro over clap, toml and the
//! `config` crate). **To add a key, add a row: see the module doc of `config/keys.rs`.**
//!
//! The keys and flags are rust-teos's (research/rust-teos.md §6.1), so an existing `teos.toml` and
//! command line keep working; teosd adds keys of its own (`btc_zmq_hashblock`, `external_address`,
//! the limits, ...), testnet4, and a flag for every key. Unlike rust-teos, teosd never falls back to
//! defaults when a source is broken: a file that does not parse, an unknown key in it, or a bad value
//! anywhere stops startup with a [`ConfigError`] naming the key and where the value came from. An
//! unknown `TEOS_*` variable is only a [`ConfigWarning`] (container platforms set `TEOS_PORT` and the
//! like). `overwrite_key` is a flag only: left `true` in a file it would change the tower id at every
//! start.
//!
//! Layout (as rust-teos): `<data_dir>/teos.toml`, `<data_dir>/<chain name>/teos_db.sql3`.

mod address;
mod checks;
mod cli;
mod error;
mod keys;
mod layer;
mod network;
mod render;
mod resolve;
mod spec;
mod value;

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

pub use address::Advertised;
pub use error::{ConfigError, ConfigWarning, Origin};
pub use keys::{Config, KEYS};
pub use layer::ENV_PREFIX;
pub use network::{BtcNetwork, UnknownNetwork};
pub use render::example;
pub use spec::{Group, KeySpec, Sources};
pub use value::Shown;

/// Name of the configuration file inside the data directory.
pub const CONFIG_FILE_NAME: &str = "teos.toml";
/// Name of the SQLite database inside the network directory.
pub const DB_FILE_NAME: &str = "teos_db.sql3";

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
        Config {
            data_dir,
            btc_network,
            btc_rpc_port: btc_network.default_rpc_port(),
            btc_rpc_user,
            btc_rpc_password,
            btc_rpc_cookie,
            ..Config::default()
        }
    }

    /// Parses `std::env::args_os()`, the process environment and `<datadir>/teos.toml`.
    ///
    /// Environment variables that are not valid UTF-8 are ignored, except a `TEOS_*` one: an error
    /// when it names a key, a warning like any unknown `TEOS_*` variable otherwise. Errors: see
    /// [`Config::load_from`].
    pub fn load() -> Result<Config, ConfigError> {
        let mut env = Vec::new();
        for (name, value) in std::env::vars_os() {
            match (name.into_string(), value.into_string()) {
                (Ok(name), Ok(value)) => env.push((name, value)),
                (Ok(name), Err(_)) if name.starts_with(ENV_PREFIX) => {
                    let key = name[ENV_PREFIX.len()..].to_lowercase();
                    if KEYS.iter().any(|spec| spec.name == key) {
                        return Err(ConfigError::invalid(
                            &key,
                            &Origin::Env(name.clone()),
                            "not valid UTF-8",
                        ));
                    }
                    // Names no key: its value does not matter, the name gets its warning.
                    env.push((name, String::new()));
                }
                _ => {}
            }
        }
        Config::load_from(std::env::args_os(), env)
    }

    /// Testable form of [`Config::load`]: `args` is the command line with the program name first,
    /// `env` the environment (`HOME` expands `~`; `TEOS_*` variables set keys, `TEOS_DATA_DIR` the
    /// data directory when `--datadir` is absent). Reads `<datadir>/teos.toml` if it exists; creates
    /// nothing. Unknown `TEOS_*` variables end up in [`Config::warnings`].
    ///
    /// Errors: [`ConfigError::Cli`] for a bad command line or `--help`/`--version`;
    /// [`ConfigError::ReadFile`], [`ConfigError::Syntax`], [`ConfigError::UnknownKey`] for the file;
    /// [`ConfigError::Invalid`], [`ConfigError::Missing`], [`ConfigError::Conflict`],
    /// [`ConfigError::NoHome`] for values. Every error names the key
    /// and the value's origin.
    pub fn load_from(
        args: impl IntoIterator<Item = OsString>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let matches = cli::parse(args)?;
        let env: Vec<(String, String)> = env.into_iter().collect();
        let home = env
            .iter()
            .find(|(name, _)| name == "HOME")
            .map(|(_, value)| PathBuf::from(value));
        let (env_layer, warnings) = layer::env_layer(&env)?;
        let early = env_layer.overlay(cli::flag_layer(&matches)?);
        let data_dir = resolve::data_dir(&early, home.as_deref())?;
        let file = file_layer(&data_dir.join(CONFIG_FILE_NAME))?;
        let mut config = resolve::resolve(&file.overlay(early), home.as_deref())?;
        config.print_config = matches.get_flag(cli::PRINT_CONFIG);
        config.warnings = warnings;
        Ok(config)
    }

    /// The data directory `args` and `env` name, resolved as [`Config::load_from`] does (`--datadir`,
    /// else `TEOS_DATA_DIR`, else `~/.teos`; `~` is `HOME`), without reading `teos.toml` and without
    /// requiring bitcoind credentials: subcommands need it before they know which `teos.toml` to read.
    ///
    /// Errors: [`ConfigError::Cli`] for a bad command line; [`ConfigError::Invalid`] or
    /// [`ConfigError::NoHome`] for the data directory's value.
    pub fn data_dir_from(
        args: impl IntoIterator<Item = OsString>,
        env: &[(String, String)],
    ) -> Result<PathBuf, ConfigError> {
        let matches = cli::parse(args)?;
        let home = env
            .iter()
            .find(|(name, _)| name == "HOME")
            .map(|(_, value)| PathBuf::from(value));
        let (env_layer, _) = layer::env_layer(env)?;
        let early = env_layer.overlay(cli::flag_layer(&matches)?);
        resolve::data_dir(&early, home.as_deref())
    }

    /// Whether `args` asks for `--print-example-config`, which needs no credentials and reads no
    /// file: `main` prints [`example`] before loading anything.
    pub fn wants_example(args: impl IntoIterator<Item = OsString>) -> bool {
        cli::parse(args).is_ok_and(|m| m.get_flag(cli::PRINT_EXAMPLE_CONFIG))
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
        self.network_dir().join(DB_FILE_NAME)
    }

    /// `<data_dir>/teos.toml`.
    pub fn config_file(&self) -> PathBuf {
        self.data_dir.join(CONFIG_FILE_NAME)
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

/// Reads and parses `path`; a missing file is an empty layer (all defaults), any other read error
/// stops startup.
fn file_layer(path: &Path) -> Result<keys::Layer, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => layer::file_layer(path, &text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(keys::Layer::default()),
        Err(source) => Err(ConfigError::ReadFile {
            path: path.to_path_buf(),
            source,
        }),
    }
}
