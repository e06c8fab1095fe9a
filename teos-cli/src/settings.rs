//! Where the tower's admin API is and which TLS files prove who we are.
//!
//! Sources, first found wins: `--rpcbind`/`--rpcport` (or `TEOS_RPC_BIND`/`TEOS_RPC_PORT`), then
//! `rpc_bind`/`rpc_port` in `<datadir>/teos.toml` (the tower's own config file; other keys are
//! ignored), then `localhost:8814` (rust-teos's defaults). The data directory is `--datadir` (or
//! `TEOS_DATA_DIR`), else `~/.teos`.

use std::path::{Path, PathBuf};

use teos_common::constants::DEFAULT_RPC_PORT;

use crate::args::Cli;
use crate::error::CliError;

/// Host used when neither the command line nor teos.toml names one (rust-teos's CLI default).
const DEFAULT_RPC_BIND: &str = "localhost";
/// The tower's config file inside the data directory.
const CONFIG_FILE: &str = "teos.toml";

/// The resolved connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The data directory (holds teos.toml and the TLS files).
    pub data_dir: PathBuf,
    /// Host or IP of the admin API.
    pub rpc_bind: String,
    /// Port of the admin API.
    pub rpc_port: u16,
}

impl Settings {
    /// Resolves the settings from the command line and `<datadir>/teos.toml` (a missing file is fine,
    /// an unreadable or malformed one is [`CliError::Setup`]).
    pub fn resolve(cli: &Cli) -> Result<Settings, CliError> {
        let data_dir = cli.data_dir.clone().unwrap_or_else(default_data_dir);
        let file = read_config(&data_dir.join(CONFIG_FILE))?;
        Ok(Settings {
            rpc_bind: cli
                .rpc_bind
                .clone()
                .or(file.rpc_bind)
                .unwrap_or_else(|| DEFAULT_RPC_BIND.to_owned()),
            rpc_port: cli.rpc_port.or(file.rpc_port).unwrap_or(DEFAULT_RPC_PORT),
            data_dir,
        })
    }

    /// `https://<rpc_bind>:<rpc_port>`, with an IPv6 literal in brackets.
    pub fn url(&self) -> String {
        let host = &self.rpc_bind;
        if host.contains(':') && !host.starts_with('[') {
            format!("https://[{host}]:{}", self.rpc_port)
        } else {
            format!("https://{host}:{}", self.rpc_port)
        }
    }
}

/// `~/.teos` (`$HOME/.teos`), or `.teos` if HOME is unset.
fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".teos")
}

/// The two keys teos-cli reads from teos.toml.
#[derive(Debug, Default)]
struct FileSettings {
    rpc_bind: Option<String>,
    rpc_port: Option<u16>,
}

fn read_config(path: &Path) -> Result<FileSettings, CliError> {
    let setup = |reason: String| CliError::Setup {
        path: path.to_path_buf(),
        reason,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileSettings::default()),
        Err(e) => return Err(setup(e.to_string())),
    };
    let table: toml::Table = toml::from_str(&text).map_err(|e| setup(e.to_string()))?;
    let rpc_bind = match table.get("rpc_bind") {
        None => None,
        Some(toml::Value::String(host)) if !host.is_empty() => Some(host.clone()),
        Some(other) => return Err(setup(format!("rpc_bind must be a host name, got {other}"))),
    };
    let rpc_port = match table.get("rpc_port") {
        None => None,
        Some(toml::Value::Integer(port)) => Some(
            u16::try_from(*port)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| setup(format!("rpc_port must be 1..=65535, got {port}")))?,
        ),
        Some(other) => return Err(setup(format!("rpc_port must be a number, got {other}"))),
    };
    Ok(FileSettings { rpc_bind, rpc_port })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn flags_win_over_teos_toml_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let datadir = dir.path().to_str().unwrap();
        let bare = cli(&["teos-cli", "--datadir", datadir, "stop"]);
        assert_eq!(
            Settings::resolve(&bare).unwrap().url(),
            "https://localhost:8814"
        );

        std::fs::write(
            dir.path().join("teos.toml"),
            "rpc_bind = \"10.1.2.3\"\nrpc_port = 9999\nbtc_network = \"regtest\"\n",
        )
        .unwrap();
        assert_eq!(
            Settings::resolve(&bare).unwrap().url(),
            "https://10.1.2.3:9999"
        );

        let flagged = cli(&[
            "teos-cli",
            "--datadir",
            datadir,
            "--rpcbind",
            "::1",
            "--rpcport",
            "7",
            "stop",
        ]);
        assert_eq!(
            Settings::resolve(&flagged).unwrap().url(),
            "https://[::1]:7"
        );
    }

    #[test]
    fn a_malformed_teos_toml_is_a_setup_error() {
        let dir = tempfile::tempdir().unwrap();
        let datadir = dir.path().to_str().unwrap();
        for content in [
            "rpc_port = ",
            "rpc_port = 70000",
            "rpc_port = \"x\"",
            "rpc_bind = 1",
        ] {
            std::fs::write(dir.path().join("teos.toml"), content).unwrap();
            let result = Settings::resolve(&cli(&["teos-cli", "--datadir", datadir, "stop"]));
            assert!(
                matches!(result, Err(CliError::Setup { .. })),
                "{content}: {result:?}"
            );
        }
    }
}
