//! Method parameters: arity and type checks with Bitcoin Core's messages (`RPCHelpMan` in
//! `src/rpc/util.cpp`), then typed accessors.
//!
//! - Too few or too many positional parameters: -1 with the method's usage text.
//! - A parameter of the wrong JSON type: -3 "Wrong type passed:\n{\n    \"Position 1 (height)\": \"JSON
//!   value of type string is not of expected type number\"\n}" (transcript entry 10).
//! - Named parameters (a JSON object) are mapped onto positions by name; an unknown name is -8.
//! - `null` for an optional parameter means "use the default", as in Core.

use bitcoin::hashes::sha256d;
use serde_json::Value;

use super::error::{RPC_MISC_ERROR, RPC_TYPE_ERROR, RpcError};

/// The JSON type a parameter must have (Core's `RPCArg::Type`, reduced to what is checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgType {
    /// A JSON number (`NUM`).
    Num,
    /// A JSON string (`STR`, `STR_HEX`).
    Str,
    /// A JSON boolean (`BOOL`).
    Bool,
    /// A JSON array (`ARR`).
    Arr,
    /// Not checked here: amounts (number or string) and verbosity (number or bool).
    Any,
}

impl ArgType {
    fn expected(self) -> Option<&'static str> {
        match self {
            ArgType::Num => Some("number"),
            ArgType::Str => Some("string"),
            ArgType::Bool => Some("bool"),
            ArgType::Arr => Some("array"),
            ArgType::Any => None,
        }
    }
}

/// One declared parameter.
#[derive(Clone, Copy, Debug)]
pub struct Arg {
    /// Core's name, aliases separated by `|` (e.g. `verbosity|verbose`).
    pub name: &'static str,
    /// The JSON type checked before the method runs.
    pub ty: ArgType,
    /// Whether the call fails (-1, usage text) without it.
    pub required: bool,
}

/// A required parameter.
pub const fn req(name: &'static str, ty: ArgType) -> Arg {
    Arg {
        name,
        ty,
        required: true,
    }
}

/// An optional parameter.
pub const fn opt(name: &'static str, ty: ArgType) -> Arg {
    Arg {
        name,
        ty,
        required: false,
    }
}

/// Core's name for a JSON value's type (`uvTypeName`).
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Positional parameter values after the arity and type checks (missing ones are `null`).
#[derive(Clone, Debug)]
pub struct Args {
    values: Vec<Value>,
}

impl Args {
    /// Checks `params` (array or object) against `args`; `help` is the text of the -1 error.
    pub fn bind(args: &[Arg], params: &Value, help: &str) -> Result<Args, RpcError> {
        let values = match params {
            Value::Object(named) => positional_from_named(args, named)?,
            Value::Array(values) => values.clone(),
            _ => Vec::new(),
        };
        let required = args.iter().rposition(|a| a.required).map_or(0, |i| i + 1);
        if values.len() < required || values.len() > args.len() {
            return Err(RpcError::new(RPC_MISC_ERROR, help));
        }
        check_types(args, &values)?;
        Ok(Args { values })
    }

    /// The value at `index`, `None` when missing or `null`.
    pub fn get(&self, index: usize) -> Option<&Value> {
        self.values.get(index).filter(|v| !v.is_null())
    }

    /// A string parameter (type already checked).
    pub fn str(&self, index: usize) -> Option<&str> {
        self.get(index).and_then(Value::as_str)
    }

    /// A boolean parameter, `default` when absent.
    pub fn bool_or(&self, index: usize, default: bool) -> bool {
        self.get(index).and_then(Value::as_bool).unwrap_or(default)
    }

    /// An integer parameter, `default` when absent. A non-integer number is Core's -1
    /// "JSON integer out of range".
    pub fn i64_or(&self, index: usize, default: i64) -> Result<i64, RpcError> {
        match self.get(index) {
            None => Ok(default),
            Some(value) => value
                .as_i64()
                .ok_or_else(|| RpcError::new(RPC_MISC_ERROR, "JSON integer out of range")),
        }
    }

    /// A 32-byte hash given as 64 hex characters in display order (Core's `ParseHashV`):
    /// -8 "`name` must be of length 64 (not N, for 'X')" or "`name` must be hexadecimal string (not 'X')".
    pub fn hash(&self, index: usize, name: &str) -> Result<sha256d::Hash, RpcError> {
        let text = self.str(index).unwrap_or_default();
        parse_hash(text, name)
    }
}

/// Core's `ParseHashV` on a string: 64 hex characters, display (reversed) byte order.
pub fn parse_hash(text: &str, name: &str) -> Result<sha256d::Hash, RpcError> {
    if text.len() != 64 {
        return Err(RpcError::invalid_parameter(format!(
            "{name} must be of length 64 (not {}, for '{text}')",
            text.len()
        )));
    }
    text.parse::<sha256d::Hash>().map_err(|_| {
        RpcError::invalid_parameter(format!("{name} must be hexadecimal string (not '{text}')"))
    })
}

fn positional_from_named(
    args: &[Arg],
    named: &serde_json::Map<String, Value>,
) -> Result<Vec<Value>, RpcError> {
    let mut values = vec![Value::Null; args.len()];
    for (key, value) in named {
        let position = args
            .iter()
            .position(|a| a.name.split('|').any(|alias| alias == key))
            .ok_or_else(|| RpcError::invalid_parameter(format!("Unknown named parameter {key}")))?;
        values[position] = value.clone();
    }
    while values.last().is_some_and(Value::is_null) {
        values.pop();
    }
    Ok(values)
}

fn check_types(args: &[Arg], values: &[Value]) -> Result<(), RpcError> {
    let mut mismatches = Vec::new();
    for (position, (arg, value)) in args.iter().zip(values).enumerate() {
        if !arg.required && value.is_null() {
            continue;
        }
        let Some(expected) = arg.ty.expected() else {
            continue;
        };
        let actual = type_name(value);
        if actual != expected {
            mismatches.push((
                format!("Position {} ({})", position + 1, arg.name),
                format!("JSON value of type {actual} is not of expected type {expected}"),
            ));
        }
    }
    if mismatches.is_empty() {
        return Ok(());
    }
    // Core writes the mismatches as a JSON object indented by 4 spaces (`UniValue::write(4)`).
    let body: Vec<String> = mismatches
        .iter()
        .map(|(k, v)| {
            format!(
                "    {}: {}",
                Value::String(k.clone()),
                Value::String(v.clone())
            )
        })
        .collect();
    Err(RpcError::new(
        RPC_TYPE_ERROR,
        format!("Wrong type passed:\n{{\n{}\n}}", body.join(",\n")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HEIGHT: &[Arg] = &[req("height", ArgType::Num)];

    #[test]
    fn string_for_number_is_core_type_error_text() {
        let err = Args::bind(HEIGHT, &json!(["notanumber"]), "getblockhash height").unwrap_err();
        assert_eq!(err.code, -3);
        assert_eq!(
            err.message,
            "Wrong type passed:\n{\n    \"Position 1 (height)\": \"JSON value of type string is not of expected type number\"\n}"
        );
    }

    #[test]
    fn missing_required_parameter_is_misc_error_with_help() {
        let err = Args::bind(HEIGHT, &json!([]), "getblockhash height").unwrap_err();
        assert_eq!(err.code, -1);
        assert!(err.message.starts_with("getblockhash height"));
        let err = Args::bind(HEIGHT, &json!([1, 2]), "getblockhash height").unwrap_err();
        assert_eq!(err.code, -1);
    }

    #[test]
    fn named_parameters_map_onto_positions_including_aliases() {
        let args = [
            req("txid", ArgType::Str),
            opt("verbosity|verbose", ArgType::Any),
        ];
        let bound = Args::bind(&args, &json!({"verbose": true, "txid": "ab"}), "").unwrap();
        assert_eq!(bound.str(0), Some("ab"));
        assert_eq!(bound.get(1), Some(&json!(true)));
        let err = Args::bind(&args, &json!({"nope": 1}), "").unwrap_err();
        assert_eq!(err.code, -8);
    }

    #[test]
    fn null_optional_parameter_means_default() {
        let args = [
            req("blockhash", ArgType::Str),
            opt("verbose", ArgType::Bool),
        ];
        let bound = Args::bind(&args, &json!(["x", null]), "").unwrap();
        assert!(bound.bool_or(1, true));
    }

    #[test]
    fn hash_parameter_checks_length_then_hex() {
        let err = parse_hash("abc", "blockhash").unwrap_err();
        assert_eq!(
            err.message,
            "blockhash must be of length 64 (not 3, for 'abc')"
        );
        let err = parse_hash(&"z".repeat(64), "blockhash").unwrap_err();
        assert!(
            err.message
                .starts_with("blockhash must be hexadecimal string")
        );
        let genesis = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";
        assert_eq!(parse_hash(genesis, "h").unwrap().to_string(), genesis);
    }
}
