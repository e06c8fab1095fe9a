//! The `teosd` command line, built with clap's builder API from the key table: one flag per key
//! (`--` and the key without underscores, rust-teos's names: research/rust-teos.md §6.1), plus
//! `--print-config` and `--print-example-config`.
//!
//! Every flag is read as text and parsed exactly like the matching `TEOS_*` variable, so a bad value
//! gets the same error wherever it comes from. Boolean flags take an optional `=true`/`=false`, so
//! `--debug=false` can override `debug = true` in the file.

use std::ffi::OsString;

use clap::{Arg, ArgAction, ArgMatches, Command};

use super::KEYS;
use super::error::{ConfigError, Origin};
use super::keys::Layer;

/// `--print-config`: print the effective configuration and exit.
pub const PRINT_CONFIG: &str = "print-config";
/// `--print-example-config`: print `contrib/teos.toml.example` and exit.
pub const PRINT_EXAMPLE_CONFIG: &str = "print-example-config";

/// Text appended to `--help`.
const AFTER_HELP: &str = "\
Configuration sources, later ones winning: built-in defaults, <datadir>/teos.toml, TEOS_* environment \
variables, then these flags. Every flag is also a teos.toml key (the flag's words joined by \
underscores: --apiport is api_port) and a variable TEOS_<KEY> (TEOS_API_PORT, TEOS_BTC_RPC_USER), \
except --datadir (not in the file) and --overwritekey (flag only). An unknown key or a bad value \
stops startup; an unknown TEOS_* variable is logged as a warning. `teosd --print-example-config` \
prints every key with its default and documentation (contrib/teos.toml.example).";

/// The command: every key of the table as a flag, with its summary and default in `--help`.
pub(crate) fn command() -> Command {
    let mut command = Command::new("teosd")
        .version(env!("CARGO_PKG_VERSION"))
        .about("The Eye of Satoshi watchtower daemon")
        .after_help(AFTER_HELP)
        // One line per flag whatever the terminal: "--flag <VALUE>  summary [default: x]".
        .term_width(0);
    for spec in KEYS {
        let help = format!("{} [default: {}]", spec.summary(), (spec.default)().help());
        let mut arg = Arg::new(spec.name)
            .long(spec.flag()[2..].to_string())
            .value_name(spec.value_name)
            .help(help)
            .action(ArgAction::Set);
        if spec.boolean {
            arg = arg
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true");
        }
        command = command.arg(arg);
    }
    command
        .arg(
            Arg::new(PRINT_CONFIG)
                .long(PRINT_CONFIG)
                .action(ArgAction::SetTrue)
                .help("Print the effective configuration (secrets masked) and exit"),
        )
        .arg(
            Arg::new(PRINT_EXAMPLE_CONFIG)
                .long(PRINT_EXAMPLE_CONFIG)
                .action(ArgAction::SetTrue)
                .help("Print every key with its default and documentation (contrib/teos.toml.example) and exit"),
        )
}

/// Parses `args` (program name first).
///
/// Errors: [`ConfigError::Cli`] for a bad command line or `--help`/`--version`.
pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<ArgMatches, ConfigError> {
    Ok(command().try_get_matches_from(args)?)
}

/// The layer of the keys given as flags.
///
/// Errors: [`ConfigError::Invalid`] naming the key and the flag.
pub(crate) fn flag_layer(matches: &ArgMatches) -> Result<Layer, ConfigError> {
    let mut layer = Layer::default();
    for spec in KEYS {
        if let Some(text) = matches.get_one::<String>(spec.name) {
            let value = ::config::Value::new(None, ::config::ValueKind::String(text.clone()));
            layer.set(spec.name, value, &Origin::Flag(spec.flag()))?;
        }
    }
    Ok(layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_a_flag_that_sets_it_and_names_it_in_errors() {
        for spec in KEYS {
            let value = if spec.boolean { "maybe" } else { "x" };
            let arg = format!("{}={value}", spec.flag());
            let matches = parse(["teosd".into(), arg.into()]).unwrap();
            match flag_layer(&matches) {
                // Strings accept "x"; the key's check comes later.
                Ok(_) => {}
                Err(err) => {
                    let err = err.to_string();
                    assert!(
                        err.contains(spec.name) && err.contains(&spec.flag()),
                        "{err}"
                    );
                }
            }
        }
    }

    #[test]
    fn command_is_well_formed() {
        command().debug_assert();
    }
}
