//! One configuration source (`teos.toml`, the `TEOS_*` environment, the flags) as typed, optional
//! settings that remember their origin, and the overlay that stacks the sources.
//!
//! Every value is type-checked in the source it comes from, so a bad value in `teos.toml` stops
//! startup even when an environment variable or a flag overrides it.

use std::collections::HashMap;
use std::path::Path;

use ::config::{Environment, File, FileFormat, Source, Value, ValueKind};

use super::error::{ConfigError, Origin};
use super::network::BtcNetwork;

/// Prefix of the environment variables that set `teos.toml` keys: `TEOS_API_PORT` sets `api_port`.
pub const ENV_PREFIX: &str = "TEOS_";
/// The environment variable that sets the data directory (like `--datadir`; not a `teos.toml` key).
pub const ENV_DATA_DIR: &str = "TEOS_DATA_DIR";

/// One value and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Setting<T> {
    pub(crate) value: T,
    pub(crate) origin: Origin,
}

/// Declares [`Layer`] (one optional [`Setting`] per `teos.toml` key) and [`KEYS`] from a single list,
/// so the set of accepted keys cannot drift between the parser, the overlay and the docs.
macro_rules! layer {
    ($($key:ident: $ty:ty,)*) => {
        /// Every `teos.toml` key, in the order of `contrib/teos.toml.example`.
        pub const KEYS: &[&str] = &[$(stringify!($key),)*];

        /// The settings one source provides; `None` = the source does not set the key.
        #[derive(Default)]
        pub(crate) struct Layer {
            $(pub(crate) $key: Option<Setting<$ty>>,)*
        }

        impl Layer {
            /// Converts `value` to the key's type and stores it. Unknown key: `Ok(false)`.
            fn set(&mut self, key: &str, value: Value, origin: &Origin) -> Result<bool, ConfigError> {
                match key {
                    $(stringify!($key) => {
                        let value = <$ty as FromValue>::from_value(value)
                            .map_err(|reason| ConfigError::invalid(key, origin, reason))?;
                        self.$key = Some(Setting { value, origin: origin.clone() });
                    })*
                    _ => return Ok(false),
                }
                Ok(true)
            }

            /// This layer with every key `top` sets replaced by `top`'s value.
            pub(crate) fn overlay(self, top: Layer) -> Layer {
                Layer { $($key: top.$key.or(self.$key),)* }
            }
        }
    };
}

layer! {
    api_bind: String,
    api_port: u16,
    rpc_bind: String,
    rpc_port: u16,
    btc_network: BtcNetwork,
    btc_rpc_user: String,
    btc_rpc_password: String,
    btc_rpc_cookie: String,
    btc_rpc_connect: String,
    btc_rpc_port: u16,
    btc_zmq_hashblock: String,
    polling_delta: u16,
    mempool_watch: bool,
    subscription_slots: u32,
    subscription_duration: u32,
    expiry_delta: u32,
    min_to_self_delay: u16,
    max_encrypted_blob_size: usize,
    locator_cache_size: u32,
    api_max_connections: u32,
    api_header_timeout: u16,
    api_body_timeout: u16,
    register_rate_limit: u32,
    register_rate_burst: u32,
    add_appointment_rate_limit: u32,
    add_appointment_rate_burst: u32,
    max_users: u32,
    max_appointments: u32,
    log_level: String,
    log_format: String,
    log_file: String,
    metrics_bind: String,
    debug: bool,
    deps_debug: bool,
    overwrite_key: bool,
    force_update: bool,
    internal_api_bind: String,
    internal_api_port: u16,
    tor_support: bool,
    tor_control_port: u16,
    onion_hidden_service_port: u16,
}

impl Layer {
    /// Sets `key` from a command-line flag's text (same parsing as an environment variable).
    pub(crate) fn set_flag(
        &mut self,
        key: &'static str,
        flag: &'static str,
        text: String,
    ) -> Result<(), ConfigError> {
        let origin = Origin::Flag(flag);
        let value = Value::new(None, ValueKind::String(text));
        match self.set(key, value, &origin)? {
            true => Ok(()),
            false => Err(ConfigError::UnknownKey {
                key: key.to_string(),
                origin,
            }),
        }
    }
}

/// Parses the text of `path` (a `teos.toml`) into a layer.
///
/// Errors: [`ConfigError::Syntax`] (not TOML), [`ConfigError::UnknownKey`] (including tables and
/// `data_dir`), [`ConfigError::Invalid`] (a value of the wrong type or range); all name the file.
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
        if key == "data_dir" {
            return Err(ConfigError::invalid(
                &key,
                &origin,
                "the data directory holds teos.toml, so it cannot be set there; use --datadir or TEOS_DATA_DIR",
            ));
        }
        if !layer.set(&key, value, &origin)? {
            return Err(ConfigError::UnknownKey { key, origin });
        }
    }
    Ok(layer)
}

/// Builds the layer of the `TEOS_*` variables among `env` (`TEOS_DATA_DIR` excepted), through
/// `config::Environment` with prefix `TEOS` and no nesting separator, so `TEOS_BTC_RPC_USER` maps to
/// `btc_rpc_user`. Variables whose name does not start with exactly `TEOS_` are ignored.
///
/// Errors: [`ConfigError::UnknownEnv`] for a `TEOS_*` variable that names no key,
/// [`ConfigError::Invalid`] for a bad value or two variables that differ only in case; both give the
/// variable's name.
pub(crate) fn env_layer(env: &[(String, String)]) -> Result<Layer, ConfigError> {
    let mut names: HashMap<String, String> = HashMap::new();
    let mut source = ::config::Map::new();
    for (name, value) in env {
        if !name.starts_with(ENV_PREFIX) || name == ENV_DATA_DIR {
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
    for (key, value) in entries {
        let name = names.get(&key).cloned().unwrap_or_else(|| key.clone());
        if !layer.set(&key, value, &Origin::Env(name.clone()))? {
            return Err(ConfigError::UnknownEnv { name });
        }
    }
    Ok(layer)
}

/// Conversion of a raw `config::Value` (a TOML value, or the text of a variable or a flag) to a key's
/// type. The error is the reason only; the caller adds the key and origin.
trait FromValue: Sized {
    fn from_value(value: Value) -> Result<Self, String>;
}

/// A short name of a value's type for "expected X, found Y" messages.
fn kind_name(kind: &ValueKind) -> &'static str {
    match kind {
        ValueKind::Nil => "nothing",
        ValueKind::Boolean(_) => "a boolean",
        ValueKind::I64(_) | ValueKind::I128(_) | ValueKind::U64(_) | ValueKind::U128(_) => {
            "an integer"
        }
        ValueKind::Float(_) => "a float",
        ValueKind::String(_) => "a string",
        ValueKind::Table(_) => "a table",
        ValueKind::Array(_) => "an array",
    }
}

impl FromValue for String {
    /// Only TOML strings (quoted) and variable/flag text; `api_bind = 127` is refused.
    fn from_value(value: Value) -> Result<Self, String> {
        match value.kind {
            ValueKind::String(s) => Ok(s),
            other => Err(format!("expected a string, found {}", kind_name(&other))),
        }
    }
}

impl FromValue for bool {
    /// TOML `true`/`false`, or the text `true`, `false`, `1`, `0` (any ASCII case).
    fn from_value(value: Value) -> Result<Self, String> {
        match value.kind {
            ValueKind::Boolean(b) => Ok(b),
            ValueKind::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(format!("expected true or false, found {s:?}")),
            },
            other => Err(format!(
                "expected true or false, found {}",
                kind_name(&other)
            )),
        }
    }
}

impl FromValue for BtcNetwork {
    fn from_value(value: Value) -> Result<Self, String> {
        let text = String::from_value(value)?;
        text.trim()
            .parse()
            .map_err(|err: super::network::UnknownNetwork| err.to_string())
    }
}

/// Reads a non-negative integer no larger than `max` from a TOML integer or decimal text.
fn integer(value: Value, max: u64) -> Result<u64, String> {
    let range = || format!("expected an integer from 0 to {max}");
    let n: i128 = match value.kind {
        ValueKind::I64(n) => n.into(),
        ValueKind::U64(n) => n.into(),
        ValueKind::I128(n) => n,
        ValueKind::U128(n) => i128::try_from(n).unwrap_or(i128::MAX),
        ValueKind::String(s) => s
            .trim()
            .parse::<i128>()
            .map_err(|_| format!("{}, found {s:?}", range()))?,
        other => return Err(format!("{}, found {}", range(), kind_name(&other))),
    };
    match u64::try_from(n) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!("{}, found {n}", range())),
    }
}

/// Integer keys: the type's range is the accepted range.
macro_rules! from_value_int {
    ($($ty:ty),*) => {$(
        impl FromValue for $ty {
            fn from_value(value: Value) -> Result<Self, String> {
                let max = u64::try_from(<$ty>::MAX).unwrap_or(u64::MAX);
                let n = integer(value, max)?;
                <$ty>::try_from(n).map_err(|_| format!("{n} is out of range"))
            }
        }
    )*};
}

from_value_int!(u16, u32, usize);

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::new(None, ValueKind::String(s.to_string()))
    }

    #[test]
    fn integers_accept_toml_numbers_and_decimal_text_within_range() {
        assert_eq!(
            u16::from_value(Value::new(None, ValueKind::I64(9814))),
            Ok(9814)
        );
        assert_eq!(u16::from_value(text(" 65535 ")), Ok(65535));
        assert!(
            u16::from_value(text("65536"))
                .unwrap_err()
                .contains("0 to 65535")
        );
        assert!(u32::from_value(Value::new(None, ValueKind::I64(-1))).is_err());
        assert!(
            u32::from_value(text("ten"))
                .unwrap_err()
                .contains("\"ten\"")
        );
        assert!(u32::from_value(Value::new(None, ValueKind::Float(1.5))).is_err());
    }

    #[test]
    fn strings_refuse_unquoted_toml_numbers() {
        let err = String::from_value(Value::new(None, ValueKind::I64(1))).unwrap_err();
        assert_eq!(err, "expected a string, found an integer");
    }

    #[test]
    fn booleans_accept_true_false_one_zero() {
        assert_eq!(bool::from_value(text("TRUE")), Ok(true));
        assert_eq!(bool::from_value(text("0")), Ok(false));
        assert!(bool::from_value(text("yes")).is_err());
    }
}
