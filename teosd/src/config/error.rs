//! Why a configuration was refused, and where each value came from.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from. Every error about a value names its key and its origin so
/// the user knows which file line, variable or flag to fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default (nothing set it).
    Default,
    /// A key in this `teos.toml`.
    File(PathBuf),
    /// This `TEOS_*` environment variable (its exact name).
    Env(String),
    /// This command-line flag (e.g. `--apiport`).
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("(built-in default)"),
            Origin::File(path) => write!(f, "in {}", path.display()),
            Origin::Env(name) => write!(f, "in environment variable {name}"),
            Origin::Flag(flag) => write!(f, "from flag {flag}"),
        }
    }
}

/// Something in the configuration sources that teosd ignored instead of refusing to start; the daemon
/// logs each once at startup (`event = "config_warning"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigWarning {
    /// A `TEOS_*` environment variable that names no `teos.toml` key. Not an error: container
    /// platforms set variables such as `TEOS_PORT` for a container named `teos` (Kubernetes service
    /// links, Docker links).
    UnknownEnv {
        /// The variable's exact name.
        name: String,
    },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigWarning::UnknownEnv { name } => write!(
                f,
                "ignoring environment variable {name}: it names no teos.toml key (TEOS_API_PORT \
                 sets api_port; see teosd --help)"
            ),
        }
    }
}

/// A configuration that teosd refuses to start with. teosd never falls back to defaults when a source
/// is broken (rust-teos did, silently, on a TOML syntax error: research/rust-teos.md §10 item 8).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The command line did not parse, or `--help` / `--version` was asked for. Print it with
    /// [`clap::Error::exit`], which writes help to stdout and exits 0, and real errors to stderr with 2.
    #[error("{0}")]
    Cli(#[from] clap::Error),
    /// A path setting starts with `~` but the `HOME` environment variable is unset or empty.
    #[error("cannot expand `~` in {key} {origin}: HOME is not set")]
    NoHome {
        /// The setting holding the path (`data_dir`, `btc_rpc_cookie`, `log_file`).
        key: &'static str,
        /// Where the path came from.
        origin: Origin,
    },
    /// `teos.toml` exists but could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `teos.toml` is not valid TOML; `reason` carries the parser's line and column.
    #[error("config file {} is not valid TOML: {reason}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// `teos.toml` holds a key teosd does not know (a typo would otherwise be ignored).
    #[error("unknown key `{key}` {origin}")]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The file.
        origin: Origin,
    },
    /// A value of the wrong type or out of range.
    #[error("invalid {key} {origin}: {reason}")]
    Invalid {
        /// The `teos.toml` key the value is for (also for env vars and flags).
        key: String,
        /// Where the value came from.
        origin: Origin,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// A required value is missing, given what else is set.
    #[error("missing {key}: {reason}")]
    Missing {
        /// The key that must be set.
        key: &'static str,
        /// Why it is required.
        reason: String,
    },
    /// Two settings that exclude each other are both set.
    #[error("{key} {origin} conflicts with {other} {other_origin}: {reason}")]
    Conflict {
        /// The first key.
        key: &'static str,
        /// Where it was set.
        origin: Origin,
        /// The second key.
        other: &'static str,
        /// Where that was set.
        other_origin: Origin,
        /// The rule broken.
        reason: &'static str,
    },
}

impl ConfigError {
    /// Builds an [`ConfigError::Invalid`].
    pub(crate) fn invalid(key: &str, origin: &Origin, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_string(),
            origin: origin.clone(),
            reason: reason.into(),
        }
    }
}
