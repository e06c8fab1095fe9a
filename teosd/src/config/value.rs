//! The types a key of the table (`keys.rs`) can have: how a value is read from a source
//! ([`KeyType::from_value`]: a TOML value, or the text of a variable or a flag) and shown back as
//! `teos.toml` text ([`Shown`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use ::config::{Value, ValueKind};

use super::network::BtcNetwork;
use crate::storage::postgres::DatabaseUrl;

/// A value as written in `teos.toml`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shown {
    /// A string (also paths and addresses; empty = not set).
    Text(String),
    /// An integer.
    Number(u64),
    /// A boolean.
    Flag(bool),
}

impl Shown {
    /// TOML syntax: strings quoted and escaped (a JSON string is a valid TOML basic string).
    pub fn toml(&self) -> String {
        match self {
            Shown::Text(text) => serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into()),
            Shown::Number(n) => n.to_string(),
            Shown::Flag(b) => b.to_string(),
        }
    }

    /// `--help` syntax: text unquoted, the empty string as `none`.
    pub fn help(&self) -> String {
        match self {
            Shown::Text(text) if text.is_empty() => "none".into(),
            Shown::Text(text) => text.clone(),
            Shown::Number(n) => n.to_string(),
            Shown::Flag(b) => b.to_string(),
        }
    }
}

/// A type a key can have: read from a raw `config::Value` (a TOML value, or the text of a variable
/// or a flag) and shown back as `teos.toml` text. Errors are the reason only; the caller adds the key
/// and origin.
pub(crate) trait KeyType: Sized + Clone + PartialEq {
    /// Booleans get flags that work alone (`--debug`) or with a value (`--debug=false`).
    const BOOLEAN: bool = false;
    /// Reads the value.
    fn from_value(value: Value) -> Result<Self, String>;
    /// The value as `teos.toml` writes it; [`Shown::Text`]`("")` for an unset optional.
    fn show(&self) -> Shown;
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

impl KeyType for String {
    /// Only TOML strings (quoted) and variable/flag text; `api_bind = 127` is refused.
    fn from_value(value: Value) -> Result<Self, String> {
        match value.kind {
            ValueKind::String(s) => Ok(s),
            other => Err(format!("expected a string, found {}", kind_name(&other))),
        }
    }
    fn show(&self) -> Shown {
        Shown::Text(self.clone())
    }
}

impl KeyType for Option<String> {
    /// A string; empty (or blank) = `None`.
    fn from_value(value: Value) -> Result<Self, String> {
        let text = String::from_value(value)?;
        Ok(Some(text).filter(|t| !t.trim().is_empty()))
    }
    fn show(&self) -> Shown {
        Shown::Text(self.clone().unwrap_or_default())
    }
}

impl KeyType for PathBuf {
    /// A string taken as a path (`~` is expanded by the key's check).
    fn from_value(value: Value) -> Result<Self, String> {
        String::from_value(value).map(PathBuf::from)
    }
    fn show(&self) -> Shown {
        Shown::Text(self.display().to_string())
    }
}

impl KeyType for Option<PathBuf> {
    /// A path; empty (or blank) = `None`.
    fn from_value(value: Value) -> Result<Self, String> {
        Ok(Option::<String>::from_value(value)?.map(|t| PathBuf::from(t.trim())))
    }
    fn show(&self) -> Shown {
        Shown::Text(
            self.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        )
    }
}

impl KeyType for Option<SocketAddr> {
    /// `IP:PORT` (IPv6 in brackets); empty = `None`.
    fn from_value(value: Value) -> Result<Self, String> {
        match Option::<String>::from_value(value)? {
            None => Ok(None),
            Some(text) => text.trim().parse().map(Some).map_err(|_| {
                format!("expected IP:PORT (e.g. 127.0.0.1:9815) or empty for none, found {text:?}")
            }),
        }
    }
    fn show(&self) -> Shown {
        Shown::Text(self.map(|a| a.to_string()).unwrap_or_default())
    }
}

impl KeyType for bool {
    const BOOLEAN: bool = true;
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
    fn show(&self) -> Shown {
        Shown::Flag(*self)
    }
}

impl KeyType for BtcNetwork {
    fn from_value(value: Value) -> Result<Self, String> {
        let text = String::from_value(value)?;
        text.trim()
            .parse()
            .map_err(|err: super::network::UnknownNetwork| err.to_string())
    }
    fn show(&self) -> Shown {
        Shown::Text(self.config_name().to_string())
    }
}

impl KeyType for Option<DatabaseUrl> {
    /// A `postgresql://` URL ([`DatabaseUrl::parse`]); empty = `None`. A malformed URL is refused
    /// with a reason that never contains the password.
    fn from_value(value: Value) -> Result<Self, String> {
        match Option::<String>::from_value(value)? {
            None => Ok(None),
            Some(text) => DatabaseUrl::parse(&text)
                .map(Some)
                .map_err(|e| e.to_string()),
        }
    }
    /// The URL with its password masked: `--print-config` and `Debug` never show it.
    fn show(&self) -> Shown {
        Shown::Text(self.as_ref().map(DatabaseUrl::masked).unwrap_or_default())
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
macro_rules! key_type_int {
    ($($ty:ty),*) => {$(
        impl KeyType for $ty {
            fn from_value(value: Value) -> Result<Self, String> {
                let max = u64::try_from(<$ty>::MAX).unwrap_or(u64::MAX);
                let n = integer(value, max)?;
                <$ty>::try_from(n).map_err(|_| format!("{n} is out of range"))
            }
            fn show(&self) -> Shown {
                Shown::Number(u64::try_from(*self).unwrap_or(u64::MAX))
            }
        }
    )*};
}

key_type_int!(u16, u32, usize);

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

    #[test]
    fn database_urls_are_parsed_and_shown_without_their_password() {
        let url =
            Option::<DatabaseUrl>::from_value(text(" postgresql://teos:hunter2@db:5433/teos "))
                .unwrap()
                .unwrap();
        assert_eq!(url.user(), "teos");
        assert_eq!(
            Some(url).show(),
            Shown::Text("postgresql://teos:********@db:5433/teos".into())
        );
        assert_eq!(Option::<DatabaseUrl>::from_value(text("")), Ok(None));
        let err =
            Option::<DatabaseUrl>::from_value(text("postgresql://:hunter2@db/teos")).unwrap_err();
        assert!(err.contains("no user") && !err.contains("hunter2"), "{err}");
        let err = Option::<DatabaseUrl>::from_value(text("db.example:5432")).unwrap_err();
        assert!(err.contains("postgresql://"), "{err}");
    }

    #[test]
    fn optionals_take_empty_text_as_unset() {
        assert_eq!(Option::<String>::from_value(text(" ")), Ok(None));
        assert_eq!(Option::<PathBuf>::from_value(text("")), Ok(None));
        assert_eq!(Option::<SocketAddr>::from_value(text("")), Ok(None));
        assert!(
            Option::<SocketAddr>::from_value(text("localhost:1"))
                .unwrap_err()
                .contains("IP:PORT")
        );
    }
}
