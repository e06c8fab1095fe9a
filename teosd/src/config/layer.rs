//! The configuration sources `teos.toml` and the `TEOS_*` environment as [`Layer`]s (one optional,
//! typed setting per key of the table, remembering its origin), parsed by the `config` crate. The
//! flags are in `cli.rs`; the overlay that stacks the layers is generated with [`Layer`].
//!
//! Every value is type-checked in the source it comes from, so a bad value in `teos.toml` stops
//! startup even when an environment variable or a flag overrides it.

use std::collections::HashMap;
use std::path::Path;

use ::config::{Environment, File, FileFormat, Source, Value};

use super::ConfigWarning;
use super::error::{ConfigError, Origin};
use super::keys::Layer;

/// Prefix of the environment variables that set `teos.toml` keys: `TEOS_API_PORT` sets `api_port`.
pub const ENV_PREFIX: &str = "TEOS_";

/// Parses the text of `path` (a `teos.toml`) into a layer.
///
/// Errors: [`ConfigError::Syntax`] (not TOML), [`ConfigError::UnknownKey`] (including tables),
/// [`ConfigError::Invalid`] (a value of the wrong type or range, or a key the file may not set such
/// as `data_dir`); all name the file.
pub(crate) fn file_layer(path: &Path, text: &str) -> Result<Layer, ConfigError> {
    let map = File::from_str(text, FileFormat::Toml)
        .collect()
        .map_err(|err| ConfigError::Syntax {
            path: path.to_path_buf(),
            reason: match err {
                ::config::ConfigError::FileParse { cause, .. } => cause.to_string(),
                other => other.to_string(),
            },
        })?;
    let origin = Origin::File(path.to_path_buf());
    let mut entries: Vec<(String, Value)> = map.into_iter().collect();
    // Report the first bad key in a stable order.
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut layer = Layer::default();
    for (key, value) in entries {
        if !layer.set(&key, value, &origin)? {
            return Err(ConfigError::UnknownKey { key, origin });
        }
    }
    Ok(layer)
}

/// Builds the layer of the `TEOS_*` variables among `env`, through `config::Environment` with prefix
/// `TEOS` and no nesting separator, so `TEOS_BTC_RPC_USER` maps to `btc_rpc_user`. Variables whose
/// name does not start with exactly `TEOS_` are ignored. A `TEOS_*` variable that names no key is a
/// [`ConfigWarning::UnknownEnv`], not an error: container platforms set variables such as
/// `TEOS_PORT` for every container named `teos`.
///
/// Errors: [`ConfigError::Invalid`] for a bad value or two variables that differ only in case; both
/// give the variable's name.
pub(crate) fn env_layer(
    env: &[(String, String)],
) -> Result<(Layer, Vec<ConfigWarning>), ConfigError> {
    let mut names: HashMap<String, String> = HashMap::new();
    let mut source = ::config::Map::new();
    for (name, value) in env {
        if !name.starts_with(ENV_PREFIX) {
            continue;
        }
        let key = name[ENV_PREFIX.len()..].to_lowercase();
        if let Some(other) = names.insert(key.clone(), name.clone()) {
            let reason = format!("also set by {other}; set it once");
            return Err(ConfigError::invalid(
                &key,
                &Origin::Env(name.clone()),
                reason,
            ));
        }
        source.insert(name.clone(), value.clone());
    }
    let map = Environment::default()
        .prefix("TEOS")
        .prefix_separator("_")
        .source(Some(source))
        .collect()
        .map_err(|err| ConfigError::invalid("environment", &Origin::Default, err.to_string()))?;
    let mut entries: Vec<(String, Value)> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut layer = Layer::default();
    let mut warnings = Vec::new();
    for (key, value) in entries {
        let name = names.get(&key).cloned().unwrap_or_else(|| key.clone());
        if !layer.set(&key, value, &Origin::Env(name.clone()))? {
            warnings.push(ConfigWarning::UnknownEnv { name });
        }
    }
    Ok((layer, warnings))
}
