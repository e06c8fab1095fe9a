//! `teosd <subcommand> ...`: one-shot operations on a data directory that run instead of the tower
//! (`import-rust-teos`, `backup`, `migrate-db`: the [`SUBCOMMANDS`] table).
//!
//! `main` calls [`dispatch`] before anything else (before the signal handlers, so Ctrl-C stops a
//! subcommand at once). A subcommand takes its own operands and teosd's usual options (`--datadir`,
//! `--btcnetwork`, the bitcoind ones, ...), which are resolved exactly as for the daemon
//! ([`Config::load_from`]: defaults, `teos.toml`, `TEOS_*`, flags), so the data directory and network a
//! subcommand acts on are the ones `teosd` would use with the same options.
//!
//! Exit codes: 0 done; 1 failed while working (I/O, bitcoind unreachable); 2 refused (bad arguments or
//! configuration, or inputs that do not allow it; nothing was written).

use std::ffi::OsString;
use std::process::ExitCode;

use crate::config::{Config, ConfigError, ENV_PREFIX};

/// One subcommand: its name on the command line, a one-line summary (for `teosd --help`), the usage of
/// its operands, and what runs it.
pub struct Subcommand {
    /// The word after `teosd`.
    pub name: &'static str,
    /// One line for `teosd --help`.
    pub summary: &'static str,
    /// Its operands, e.g. `<RUST_TEOS_DATADIR>`.
    pub operands: &'static str,
    /// Flags that are operands, not teosd options (`--to`, `--from` of `migrate-db`).
    pub operand_flags: &'static [&'static str],
    /// Longer help (`teosd <name> --help`).
    pub help: &'static str,
    /// Runs it with its operands (in order) and teosd's options (program name first), returning the
    /// exit code.
    pub run: fn(operands: Vec<OsString>, teosd_args: Vec<OsString>) -> ExitCode,
}

/// Every subcommand, in the order `teosd --help` lists them.
pub const SUBCOMMANDS: &[Subcommand] = &[
    Subcommand {
        name: "import-rust-teos",
        summary: "Import a stopped rust-teos tower (key, users, appointments, trackers, TLS files) into --datadir",
        operands: "<RUST_TEOS_DATADIR>",
        operand_flags: &[],
        help: crate::import_rust_teos::HELP,
        run: crate::import_rust_teos::main,
    },
    Subcommand {
        name: "backup",
        summary: "Copy the tower's database to a file, consistently, while the tower runs",
        operands: "<DEST_FILE>",
        operand_flags: &[],
        help: crate::backup::HELP,
        run: crate::backup::main,
    },
    Subcommand {
        name: "migrate-db",
        summary: "Copy the tower between its embedded database and PostgreSQL (--to URL, or back with --from URL), checked",
        operands: "<--to|--from> <DATABASE_URL>",
        operand_flags: &["--to", "--from"],
        help: crate::migrate_db::HELP,
        run: crate::migrate_db::main,
    },
];

/// If `args` (program name first) name a subcommand, runs it and returns its exit code; `None` when
/// they do not (the daemon runs).
pub fn dispatch(args: &[OsString]) -> Option<ExitCode> {
    let name = args.get(1)?.to_str()?;
    let sub = SUBCOMMANDS.iter().find(|s| s.name == name)?;
    let rest = &args[2..];
    if rest.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", usage(sub));
        return Some(ExitCode::SUCCESS);
    }
    let wanted = sub.operands.split_whitespace().count();
    let Some((operands, options)) = split_operands(rest, wanted, sub.operand_flags) else {
        eprintln!(
            "teosd {}: expected {}\n\n{}",
            sub.name,
            sub.operands,
            usage(sub)
        );
        return Some(ExitCode::from(2));
    };
    let mut teosd_args = vec![args[0].clone()];
    teosd_args.extend(options);
    Some((sub.run)(operands, teosd_args))
}

/// The text `teosd --help` appends: the subcommands and their summaries.
pub fn help_section() -> String {
    let mut text = String::from("Subcommands (teosd <SUBCOMMAND> --help for each):\n");
    for sub in SUBCOMMANDS {
        text.push_str(&format!(
            "  teosd {} {} [OPTIONS]\n      {}\n",
            sub.name, sub.operands, sub.summary
        ));
    }
    text
}

fn usage(sub: &Subcommand) -> String {
    format!(
        "Usage: teosd {} {} [OPTIONS]\n\n{}\n\nOPTIONS are teosd's own (--datadir, --btcnetwork, the bitcoind ones; \
         see teosd --help), read with teos.toml and TEOS_* variables as when the tower runs.\n\n\
         Exit codes: 0 done, 1 failed while working, 2 refused (nothing written).",
        sub.name, sub.operands, sub.help
    )
}

/// Splits a subcommand's arguments into its `wanted` operands and teosd's options. The operands come
/// either first (`teosd backup FILE --datadir D`) or last (`teosd backup --datadir D FILE`): options
/// may take a value in the next argument, so operands are never looked for in between.
fn split_operands(
    args: &[OsString],
    wanted: usize,
    flags: &[&str],
) -> Option<(Vec<OsString>, Vec<OsString>)> {
    if args.len() < wanted {
        return None;
    }
    let is_operand = |a: &OsString| {
        let a = a.to_string_lossy();
        !a.starts_with('-') || flags.contains(&a.as_ref())
    };
    if args[..wanted].iter().all(is_operand) {
        return Some((args[..wanted].to_vec(), args[wanted..].to_vec()));
    }
    let split = args.len() - wanted;
    if args[split..].iter().all(is_operand) {
        return Some((args[split..].to_vec(), args[..split].to_vec()));
    }
    None
}

/// The process environment as [`Config::load_from`] takes it (UTF-8 pairs; a non-UTF-8 `TEOS_*`
/// value is reported by the config as for the daemon).
pub fn environment() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(
            |(name, value)| match (name.into_string(), value.into_string()) {
                (Ok(name), Ok(value)) => Some((name, value)),
                (Ok(name), Err(_)) if name.starts_with(ENV_PREFIX) => {
                    Some((name, "\u{fffd}".into()))
                }
                _ => None,
            },
        )
        .collect()
}

/// Resolves teosd's configuration from a subcommand's options, printing the error (exit code 2) as
/// the daemon would.
pub fn load_config(
    teosd_args: Vec<OsString>,
    env: Vec<(String, String)>,
) -> Result<Config, ExitCode> {
    match Config::load_from(teosd_args, env) {
        Ok(config) => Ok(config),
        Err(ConfigError::Cli(e)) => {
            let _ = e.print();
            Err(ExitCode::from(2))
        }
        Err(e) => {
            eprintln!("teosd: {e}");
            Err(ExitCode::from(2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn operands_are_taken_first_or_last_never_in_between() {
        assert_eq!(
            split_operands(&os(&["SRC", "--datadir", "D"]), 1, &[]),
            Some((os(&["SRC"]), os(&["--datadir", "D"])))
        );
        assert_eq!(
            split_operands(&os(&["--datadir", "D", "SRC"]), 1, &[]),
            Some((os(&["SRC"]), os(&["--datadir", "D"])))
        );
        assert_eq!(
            split_operands(&os(&["SRC"]), 1, &[]),
            Some((os(&["SRC"]), vec![]))
        );
        assert_eq!(split_operands(&os(&[]), 1, &[]), None);
        assert_eq!(split_operands(&os(&["--debug"]), 1, &[]), None);
        // Flags that are operands (migrate-db's --to / --from), before or after teosd's options.
        let flags = &["--to", "--from"];
        assert_eq!(
            split_operands(&os(&["--to", "URL", "--datadir", "D"]), 2, flags),
            Some((os(&["--to", "URL"]), os(&["--datadir", "D"])))
        );
        assert_eq!(
            split_operands(&os(&["--datadir", "D", "--from", "URL"]), 2, flags),
            Some((os(&["--from", "URL"]), os(&["--datadir", "D"])))
        );
    }

    #[test]
    fn every_subcommand_is_dispatched_by_name_and_listed_in_the_help() {
        let help = help_section();
        for sub in SUBCOMMANDS {
            assert!(help.contains(sub.name));
        }
        assert!(dispatch(&os(&["teosd", "--datadir", "x"])).is_none());
        assert!(dispatch(&os(&["teosd"])).is_none());
    }
}
