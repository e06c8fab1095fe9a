//! The `teosd` command line: rust-teos's flag names (research/rust-teos.md §6.1) plus teosd's own.
//!
//! Every flag is read as text and parsed exactly like the matching `TEOS_*` variable, so a bad value
//! gets the same error wherever it comes from. Boolean flags take an optional `=true`/`=false`, so
//! `--debug=false` can override `debug = true` in the file.

use clap::Parser;

use super::defaults as d;
use super::error::ConfigError;
use super::layer::Layer;

/// Text appended to `--help`.
const AFTER_HELP: &str = "\
Configuration sources, later ones winning: built-in defaults, <datadir>/teos.toml, TEOS_* environment \
variables (TEOS_<KEY> sets the teos.toml key <key>, e.g. TEOS_API_PORT=9000, TEOS_BTC_RPC_USER=alice), \
then these flags. Keys without a flag (subscription_slots, subscription_duration, expiry_delta, \
min_to_self_delay, max_encrypted_blob_size, locator_cache_size, the api_* limits, the *_rate_* limits, \
max_users, max_appointments, internal_api_bind, internal_api_port) \
are set in the file or the environment. An unknown key, an unknown TEOS_* variable or a bad value stops \
startup. See contrib/teos.toml.example.";

/// The parsed command line; `None` = flag not given.
#[derive(Parser, Debug)]
#[command(name = "teosd", version, about = "The Eye of Satoshi watchtower daemon", after_help = AFTER_HELP)]
pub(crate) struct Cli {
    #[arg(long = "datadir", value_name = "DIR",
        help = format!("Data directory holding teos.toml and the per-network database (env TEOS_DATA_DIR) [default: {}]", d::DATA_DIR))]
    pub(crate) data_dir: Option<String>,

    #[arg(long = "apibind", value_name = "HOST",
        help = format!("Address of the public HTTP API [default: {}]", d::API_BIND))]
    api_bind: Option<String>,
    #[arg(long = "apiport", value_name = "PORT",
        help = format!("Port of the public HTTP API [default: {}]", d::API_PORT))]
    api_port: Option<String>,
    #[arg(long = "rpcbind", value_name = "HOST",
        help = format!("Address of the admin gRPC API [default: {}]", d::RPC_BIND))]
    rpc_bind: Option<String>,
    #[arg(long = "rpcport", value_name = "PORT",
        help = format!("Port of the admin gRPC API [default: {}]", d::RPC_PORT))]
    rpc_port: Option<String>,

    #[arg(long = "btcnetwork", value_name = "NETWORK",
        help = format!("Bitcoin network: mainnet, testnet, testnet4, signet or regtest [default: {}]", d::BTC_NETWORK))]
    btc_network: Option<String>,
    #[arg(
        long = "btcrpcuser",
        value_name = "USER",
        help = "bitcoind RPC user (with --btcrpcpassword; excludes --btcrpccookie) [default: none]"
    )]
    btc_rpc_user: Option<String>,
    #[arg(
        long = "btcrpcpassword",
        value_name = "PASSWORD",
        help = "bitcoind RPC password; visible to other local users in the process list, prefer teos.toml or TEOS_BTC_RPC_PASSWORD [default: none]"
    )]
    btc_rpc_password: Option<String>,
    #[arg(
        long = "btcrpccookie",
        value_name = "PATH",
        help = "bitcoind RPC cookie file, e.g. ~/.bitcoin/.cookie (excludes user/password) [default: none]"
    )]
    btc_rpc_cookie: Option<String>,
    #[arg(long = "btcrpcconnect", value_name = "HOST",
        help = format!("Host of bitcoind's RPC server [default: {}]", d::BTC_RPC_CONNECT))]
    btc_rpc_connect: Option<String>,
    #[arg(long = "btcrpcport", value_name = "PORT",
        help = format!("Port of bitcoind's RPC server; 0 = the network's (8332, 18332, 48332, 38332, 18443) [default: {}]", d::BTC_RPC_PORT))]
    btc_rpc_port: Option<String>,
    #[arg(
        long = "btczmqhashblock",
        value_name = "ENDPOINT",
        help = "bitcoind's zmqpubhashblock endpoint, e.g. tcp://127.0.0.1:28332; empty = ask bitcoind (getzmqnotifications) [default: empty]"
    )]
    btc_zmq_hashblock: Option<String>,
    #[arg(long = "pollingdelta", value_name = "SECONDS",
        help = format!("Seconds between two polls of bitcoind's best block [default: {}]", d::POLLING_DELTA))]
    polling_delta: Option<String>,

    #[arg(long = "logformat", value_name = "FORMAT",
        help = format!("Log format: auto, human, journald or json [default: {}]", d::LOG_FORMAT))]
    log_format: Option<String>,
    #[arg(
        long = "logfile",
        value_name = "PATH",
        help = "Log to this file instead of stderr; SIGHUP reopens it [default: stderr]"
    )]
    log_file: Option<String>,
    #[arg(
        long = "metricsbind",
        value_name = "IP:PORT",
        help = "Serve Prometheus metrics on http://IP:PORT/metrics [default: off]"
    )]
    metrics_bind: Option<String>,
    #[arg(long = "loglevel", value_name = "LEVEL",
        help = format!("Level of teosd's logs: error, warn, info, debug, trace or off [default: {}]", d::LOG_LEVEL))]
    log_level: Option<String>,
    #[arg(long = "debug", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true",
        help = "Log teosd at debug level at least [default: false]")]
    debug: Option<String>,
    #[arg(long = "depsdebug", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true",
        help = "Log dependencies at debug level (otherwise warn) [default: false]")]
    deps_debug: Option<String>,
    #[arg(long = "overwritekey", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true",
        help = "Replace the tower key with a new one (changes the tower id) [default: false]")]
    overwrite_key: Option<String>,
    #[arg(long = "forceupdate", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true",
        help = "Start even if blocks since the last run were pruned, skipping them [default: false]")]
    force_update: Option<String>,

    #[arg(long = "torsupport", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true",
        help = "Publish the public API as a Tor onion service (needs Tor's control port) [default: false]")]
    tor_support: Option<String>,
    #[arg(long = "torcontrolport", value_name = "PORT",
        help = format!("Tor control port on 127.0.0.1 (with --torsupport) [default: {}]", d::TOR_CONTROL_PORT))]
    tor_control_port: Option<String>,
    #[arg(long = "onionhiddenserviceport", value_name = "PORT",
        help = format!("Port of the onion service (with --torsupport) [default: {}]", d::ONION_HIDDEN_SERVICE_PORT))]
    onion_hidden_service_port: Option<String>,

    #[arg(
        long = "print-config",
        help = "Print the effective configuration (password masked) and exit"
    )]
    pub(crate) print_config: bool,
}

impl Cli {
    /// Moves the given flags into a [`Layer`] (everything except `--datadir` and `--print-config`).
    ///
    /// Errors: [`ConfigError::Invalid`] naming the key and the flag.
    pub(crate) fn take_layer(&mut self) -> Result<Layer, ConfigError> {
        let flags = [
            ("api_bind", "--apibind", self.api_bind.take()),
            ("api_port", "--apiport", self.api_port.take()),
            ("rpc_bind", "--rpcbind", self.rpc_bind.take()),
            ("rpc_port", "--rpcport", self.rpc_port.take()),
            ("btc_network", "--btcnetwork", self.btc_network.take()),
            ("btc_rpc_user", "--btcrpcuser", self.btc_rpc_user.take()),
            (
                "btc_rpc_password",
                "--btcrpcpassword",
                self.btc_rpc_password.take(),
            ),
            (
                "btc_rpc_cookie",
                "--btcrpccookie",
                self.btc_rpc_cookie.take(),
            ),
            (
                "btc_rpc_connect",
                "--btcrpcconnect",
                self.btc_rpc_connect.take(),
            ),
            ("btc_rpc_port", "--btcrpcport", self.btc_rpc_port.take()),
            (
                "btc_zmq_hashblock",
                "--btczmqhashblock",
                self.btc_zmq_hashblock.take(),
            ),
            ("polling_delta", "--pollingdelta", self.polling_delta.take()),
            ("log_level", "--loglevel", self.log_level.take()),
            ("log_format", "--logformat", self.log_format.take()),
            ("log_file", "--logfile", self.log_file.take()),
            ("metrics_bind", "--metricsbind", self.metrics_bind.take()),
            ("debug", "--debug", self.debug.take()),
            ("deps_debug", "--depsdebug", self.deps_debug.take()),
            ("overwrite_key", "--overwritekey", self.overwrite_key.take()),
            ("force_update", "--forceupdate", self.force_update.take()),
            ("tor_support", "--torsupport", self.tor_support.take()),
            (
                "tor_control_port",
                "--torcontrolport",
                self.tor_control_port.take(),
            ),
            (
                "onion_hidden_service_port",
                "--onionhiddenserviceport",
                self.onion_hidden_service_port.take(),
            ),
        ];
        let mut layer = Layer::default();
        for (key, flag, text) in flags {
            if let Some(text) = text {
                layer.set_flag(key, flag, text)?;
            }
        }
        Ok(layer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flag_names_used_in_errors_match_the_clap_definitions() {
        let command = Cli::command();
        let mut cli = Cli::try_parse_from(["teosd"]).unwrap();
        // The flag table lists the key and the flag; check each pair against clap's own definition.
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "data_dir" | "print_config" | "help" | "version") {
                continue;
            }
            let long = arg.get_long().unwrap();
            let mut parsed =
                Cli::try_parse_from(["teosd".to_string(), format!("--{long}=x")]).unwrap();
            let err = match parsed.take_layer() {
                Ok(layer) => {
                    // Strings accept "x"; make sure the flag landed on the key with the same id.
                    assert!(layer_has(&layer, id), "--{long} did not set {id}");
                    continue;
                }
                Err(err) => err.to_string(),
            };
            assert!(
                err.contains(id) && err.contains(&format!("--{long}")),
                "{err}"
            );
        }
        assert!(cli.take_layer().is_ok());
    }

    fn layer_has(layer: &Layer, key: &str) -> bool {
        match key {
            "api_bind" => layer.api_bind.is_some(),
            "rpc_bind" => layer.rpc_bind.is_some(),
            "btc_rpc_user" => layer.btc_rpc_user.is_some(),
            "btc_rpc_password" => layer.btc_rpc_password.is_some(),
            "btc_rpc_cookie" => layer.btc_rpc_cookie.is_some(),
            "btc_rpc_connect" => layer.btc_rpc_connect.is_some(),
            "btc_zmq_hashblock" => layer.btc_zmq_hashblock.is_some(),
            "log_level" => layer.log_level.is_some(),
            "log_format" => layer.log_format.is_some(),
            "log_file" => layer.log_file.is_some(),
            "metrics_bind" => layer.metrics_bind.is_some(),
            _ => false,
        }
    }
}
