//! The machinery behind the table of keys in `keys.rs`: what one row says ([`KeySpec`]), the checks
//! and sources a row may name, and the [`keys!`] macro that turns the rows into the
//! [`super::Config`] struct, the per-source `Layer` and the list [`KEYS`](super::KEYS). How a value
//! of each type is read and shown is in `value.rs`.
//!
//! Nothing in here names a key: a key is written once, as a row of `keys.rs`.

use std::path::Path;

use super::error::{ConfigError, Origin};
use super::value::Shown;

/// One configuration key as the table describes it. The flag and the environment variable are
/// derived from the name ([`KeySpec::flag`], [`KeySpec::env`]), as rust-teos named them.
#[derive(Debug)]
pub struct KeySpec {
    /// The `teos.toml` key, e.g. `api_port`.
    pub name: &'static str,
    /// What the key does, for users, from the row's `///` lines (each still starting with the space
    /// after `///`; read it with [`KeySpec::doc_lines`]): the first line is the `--help` summary,
    /// every line is written above the key in `contrib/teos.toml.example`.
    pub doc: &'static str,
    /// The part of `teos.toml.example` the key is listed in.
    pub group: Group,
    /// What the value looks like in `--help` (`PORT`, `HOST`, `SECONDS`, `BOOL`, ...).
    pub value_name: &'static str,
    /// A boolean: its flag alone means `true` and takes `--flag=false`.
    pub boolean: bool,
    /// Masked in `--print-config` and `Debug` output when set.
    pub secret: bool,
    /// Which sources may set it.
    pub sources: Sources,
    /// The built-in default, as shown in `--help`, `teos.toml.example` and `--print-config`.
    pub default: fn() -> Shown,
}

impl KeySpec {
    /// The command-line flag: `--` and the name without underscores (`api_port` → `--apiport`), the
    /// rule behind every rust-teos flag.
    pub fn flag(&self) -> String {
        format!("--{}", self.name.replace('_', ""))
    }

    /// The environment variable: `TEOS_` and the name in upper case (`api_port` → `TEOS_API_PORT`).
    pub fn env(&self) -> String {
        format!("{}{}", super::ENV_PREFIX, self.name.to_ascii_uppercase())
    }

    /// The lines of [`KeySpec::doc`] (without the space after `///`).
    pub fn doc_lines(&self) -> impl Iterator<Item = &'static str> {
        self.doc.lines().map(|l| l.strip_prefix(' ').unwrap_or(l))
    }

    /// The first line of [`KeySpec::doc`]: the `--help` summary.
    pub fn summary(&self) -> &'static str {
        self.doc_lines().next().unwrap_or("")
    }
}

/// The parts of `teos.toml.example`, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// Where the data lives.
    Paths,
    /// The public HTTP API.
    Api,
    /// The admin gRPC API.
    Admin,
    /// The connection to bitcoind.
    Bitcoind,
    /// Subscriptions and appointments.
    Subscriptions,
    /// Limits of the public API.
    Limits,
    /// Logs and metrics.
    Logging,
    /// One-shot actions.
    Actions,
    /// Keys accepted for rust-teos compatibility.
    Compat,
}

impl Group {
    /// The heading written above the group in `teos.toml.example`.
    pub fn title(self) -> &'static str {
        match self {
            Group::Paths => "Data directory",
            Group::Api => "Public HTTP API (the watchtower protocol; PROTOCOL.md)",
            Group::Admin => "Admin gRPC API (teos-cli)",
            Group::Bitcoind => "bitcoind",
            Group::Subscriptions => "Subscriptions and appointments (PROTOCOL.md)",
            Group::Limits => "Public API limits (RELIABILITY.md)",
            Group::Logging => "Logging and metrics",
            Group::Actions => "One-shot actions",
            Group::Compat => "rust-teos compatibility",
        }
    }
}

/// Which sources may set a key (the default is always there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sources {
    /// `teos.toml`, the environment and the flag.
    All,
    /// The environment and the flag, never the file (the text says why, e.g. `data_dir`: the file
    /// lives in the data directory). Any value in the file is refused.
    NotInFile(&'static str),
    /// Only the flag: a value other than the default in the file or the environment is refused with
    /// the text (e.g. `overwrite_key`: a `true` left there would act at every start).
    FlagOnly(&'static str),
}

/// What the checks of a key may need besides the value.
pub(crate) struct Ctx<'a> {
    /// `$HOME`, which a leading `~` in a path stands for.
    pub(crate) home: Option<&'a Path>,
}

/// Why a check refused a value; the caller adds the key and the origin.
pub(crate) enum Refusal {
    /// Wrong shape or out of range: what is wrong and what is accepted.
    Invalid(String),
    /// A path starts with `~` and there is no `HOME`.
    NoHome,
}

impl Refusal {
    /// The error naming `key` and `origin`.
    pub(crate) fn into_error(self, key: &'static str, origin: Origin) -> ConfigError {
        match self {
            Refusal::Invalid(reason) => ConfigError::invalid(key, &origin, reason),
            Refusal::NoHome => ConfigError::NoHome { key, origin },
        }
    }
}

/// A check of one key's value: the value as the [`super::Config`] keeps it (normalized, e.g.
/// lowercased or `~` expanded), or why it is refused.
pub(crate) type Check<T> = fn(T, &Ctx) -> Result<T, Refusal>;

/// The optional parts of a row: `check = ...`, `secret = true`, `sources = ...`.
pub(crate) struct Opts<T: 'static> {
    /// Applied to the final value (after the sources are stacked); defaults to accepting any value
    /// of the type.
    pub(crate) check: Check<T>,
    /// See [`KeySpec::secret`].
    pub(crate) secret: bool,
    /// See [`KeySpec::sources`].
    pub(crate) sources: Sources,
}

impl<T> Opts<T> {
    /// A row without options.
    pub(crate) const NONE: Opts<T> = Opts {
        check: |value, _| Ok(value),
        secret: false,
        sources: Sources::All,
    };
}

/// One value and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Setting<T> {
    pub(crate) value: T,
    pub(crate) origin: Origin,
}

/// Turns the rows of `keys.rs` into everything that is written per key: the [`super::Config`]
/// struct (one field per row, documented by the row), its `Default`, the list
/// [`KEYS`](super::KEYS), the per-source `Layer` with its parser and overlay, the per-key checks
/// and the values `--print-config` shows.
///
/// A row: `/// doc lines`, then `[Group] name: Type = default, "VALUE_NAME"` and optionally
/// `, check = fn`, `, secret = true`, `, sources = Sources::...`, then `;`.
macro_rules! keys {
    ($(
        $(#[doc = $doc:literal])+
        [$group:ident] $key:ident: $ty:ty = $default:expr, $value_name:literal
            $(, $opt:ident = $val:expr)* ;
    )*) => {
        /// The effective, checked configuration: one field per row of the table in
        /// `config/keys.rs`. Build it with [`Config::load`] (or [`Config::load_from`]); a `Config`
        /// from those passed every check of the table and the rules across keys in
        /// `config/resolve.rs` (exactly one credential kind, `btc_rpc_port` resolved). Tests may also
        /// start from [`Config::new`] or [`Config::default`] and edit fields.
        ///
        /// `Debug` masks the secrets.
        #[derive(Clone, PartialEq)]
        pub struct Config {
            $( $(#[doc = $doc])+ pub $key: $ty, )*
            /// `--print-config` was given: print [`Config::masked`] and exit.
            pub print_config: bool,
            /// What the sources held that teosd ignored (an unknown `TEOS_*` variable); the daemon
            /// logs each once at startup.
            pub warnings: Vec<super::ConfigWarning>,
        }

        impl Default for Config {
            /// Every key at its built-in default, unchecked: no credentials, `~` not expanded.
            fn default() -> Config {
                Config {
                    $( $key: $default, )*
                    print_config: false,
                    warnings: Vec::new(),
                }
            }
        }

        /// Every key, in the order of `contrib/teos.toml.example`.
        pub const KEYS: &[KeySpec] = &[$(
            KeySpec {
                name: stringify!($key),
                doc: concat!($($doc, "\n"),+),
                group: Group::$group,
                value_name: $value_name,
                boolean: <$ty as KeyType>::BOOLEAN,
                secret: Opts::<$ty> { $($opt: $val,)* ..Opts::NONE }.secret,
                sources: Opts::<$ty> { $($opt: $val,)* ..Opts::NONE }.sources,
                default: || <$ty as KeyType>::show(&{ let d: $ty = $default; d }),
            },
        )*];

        /// The settings one source provides; `None` = the source does not set the key.
        #[derive(Default)]
        pub(crate) struct Layer {
            $( pub(crate) $key: Option<Setting<$ty>>, )*
        }

        impl Layer {
            /// Converts `value` to the key's type and stores it, refusing a source the key may not
            /// come from. Unknown key: `Ok(false)`.
            pub(crate) fn set(
                &mut self,
                key: &str,
                value: Value,
                origin: &Origin,
            ) -> Result<bool, ConfigError> {
                match key {
                    $(stringify!($key) => {
                        let value = <$ty as KeyType>::from_value(value)
                            .map_err(|reason| ConfigError::invalid(key, origin, reason))?;
                        let opts = Opts::<$ty> { $($opt: $val,)* ..Opts::NONE };
                        allowed(key, opts.sources, origin, || { let d: $ty = $default; value == d })?;
                        self.$key = Some(Setting { value, origin: origin.clone() });
                    })*
                    _ => return Ok(false),
                }
                Ok(true)
            }

            /// This layer with every key `top` sets replaced by `top`'s value.
            pub(crate) fn overlay(self, top: Layer) -> Layer {
                Layer { $( $key: top.$key.or(self.$key), )* }
            }

            /// Every key's value (the default where no source set it) through the key's check, in
            /// table order; the first refusal is the error.
            pub(crate) fn checked(&self, ctx: &Ctx) -> Result<Config, ConfigError> {
                Ok(Config {
                    $( $key: {
                        let opts = Opts::<$ty> { $($opt: $val,)* ..Opts::NONE };
                        let (value, origin) = match &self.$key {
                            Some(setting) => (setting.value.clone(), setting.origin.clone()),
                            None => ({ let d: $ty = $default; d }, Origin::Default),
                        };
                        (opts.check)(value, ctx)
                            .map_err(|refusal| refusal.into_error(stringify!($key), origin))?
                    }, )*
                    print_config: false,
                    warnings: Vec::new(),
                })
            }
        }

        impl Config {
            /// Every key with its value, in [`KEYS`] order (secrets not masked: see `render.rs`).
            pub(crate) fn values(&self) -> Vec<Shown> {
                vec![$( <$ty as KeyType>::show(&self.$key), )*]
            }
        }
    };
}

pub(crate) use keys;

/// Refuses a value from a source `sources` excludes (`is_default` for [`Sources::FlagOnly`]).
pub(crate) fn allowed(
    key: &str,
    sources: Sources,
    origin: &Origin,
    is_default: impl Fn() -> bool,
) -> Result<(), ConfigError> {
    let refused = match (sources, origin) {
        (Sources::NotInFile(why), Origin::File(_)) => Some(why),
        (Sources::FlagOnly(why), Origin::File(_) | Origin::Env(_)) if !is_default() => Some(why),
        _ => None,
    };
    match refused {
        Some(why) => Err(ConfigError::invalid(key, origin, why)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn flag_and_env_names_follow_rust_teos() {
        let spec = super::super::KEYS
            .iter()
            .find(|k| k.name == "onion_hidden_service_port")
            .unwrap();
        assert_eq!(spec.flag(), "--onionhiddenserviceport");
        assert_eq!(spec.env(), "TEOS_ONION_HIDDEN_SERVICE_PORT");
    }
}
