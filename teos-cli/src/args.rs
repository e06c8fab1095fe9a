//! Command line of `teos-cli` (rust-teos spelling: lowercase commands without separators,
//! ADMIN_RPC.md "teos-cli commands").

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use teos_common::appointment::{Locator, UserId};

/// Text after the options in `--help`: where settings come from, and the exit codes (kept in sync
/// with error.rs by the `exit_codes_in_help_match_the_constants` test).
const AFTER_HELP: &str = "Settings: --rpcbind/--rpcport, else TEOS_RPC_BIND/TEOS_RPC_PORT, else rpc_bind/rpc_port in \
<datadir>/teos.toml, else localhost:8814. The TLS files ca.pem, client.pem and client-key.pem are read \
from <datadir> (teosd writes them there on first start).

Output: JSON on stdout (ids, locators, blobs and raw transactions in hex; txids and block hashes in \
display order), or NDJSON with --ndjson. Lists are fetched 1000 items per call and written as they \
arrive, so memory stays flat however many the tower holds; if a call fails midway, what was written \
stays on stdout, unfinished, and the exit code tells the error. Errors: a message on stderr.

Exit codes:
  0  success
  1  unexpected error
  2  bad arguments (malformed locator or user id, unknown command or option)
  3  cannot connect to the tower (not running, wrong address, TLS handshake or certificate refused)
  4  refused by the tower (it answered with an error, e.g. user not found)
  5  local setup error (unreadable teos.toml or TLS files)";

/// Command-line admin client of a teosd watchtower.
#[derive(Debug, Parser)]
#[command(name = "teos-cli", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Data directory of the tower: holds teos.toml and the TLS files [default: ~/.teos]
    #[arg(
        long = "datadir",
        value_name = "DIR",
        env = "TEOS_DATA_DIR",
        global = true
    )]
    pub data_dir: Option<PathBuf>,
    /// Address of the tower's admin API [default: rpc_bind of teos.toml, else localhost]
    #[arg(
        long = "rpcbind",
        value_name = "HOST",
        env = "TEOS_RPC_BIND",
        global = true
    )]
    pub rpc_bind: Option<String>,
    /// Port of the tower's admin API [default: rpc_port of teos.toml, else 8814]
    #[arg(long = "rpcport", value_name = "PORT", env = "TEOS_RPC_PORT", global = true,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub rpc_port: Option<u16>,
    /// Print lists as NDJSON: one compact JSON value per line, the list's items only (appointment
    /// entries, user ids, uuids)
    #[arg(long, global = true)]
    pub ndjson: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The admin calls, plus shell completions.
#[derive(Debug, Subcommand)]
#[command(rename_all = "lowercase")]
pub enum Command {
    /// Every appointment the tower holds: watched ones, then those it responded to (trackers)
    GetAllAppointments,
    /// The appointments (of any user) filed under a locator
    GetAppointments {
        /// The locator: 32 hex characters (16 bytes)
        #[arg(value_parser = parse_locator)]
        locator: Locator,
    },
    /// The tower's id, counts, bitcoind reachability, addresses, tip, version and uptime
    GetTowerInfo,
    /// The ids of all registered users
    GetUsers,
    /// A user's subscription and the ids (uuids) of its appointments
    GetUser {
        /// The user id: a compressed public key, 66 hex characters (33 bytes)
        #[arg(value_parser = parse_user_id)]
        user_id: UserId,
    },
    /// Stops the tower gracefully (as SIGTERM)
    Stop,
    /// Prints a shell completion script on stdout
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

fn parse_locator(text: &str) -> Result<Locator, String> {
    text.parse()
        .map_err(|e| format!("not a locator (32 hex characters): {e}"))
}

fn parse_user_id(text: &str) -> Result<UserId, String> {
    text.parse()
        .map_err(|e| format!("not a user id (66 hex characters, a compressed public key): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{EXIT_BAD_ARGUMENTS, EXIT_CANNOT_CONNECT, EXIT_REFUSED, EXIT_SETUP};
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn commands_are_spelled_as_rust_teos() {
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        for name in [
            "getallappointments",
            "getappointments",
            "gettowerinfo",
            "getusers",
            "getuser",
            "stop",
            "completions",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
        }
    }

    #[test]
    fn malformed_ids_are_rejected_while_parsing() {
        for args in [
            &["teos-cli", "getappointments", "00"][..],
            &[
                "teos-cli",
                "getappointments",
                "zz000000000000000000000000000000",
            ][..],
            &["teos-cli", "getuser", "02abcd"][..],
            &["teos-cli", "getuser", &"07".repeat(33)][..],
        ] {
            let error = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(error.exit_code(), i32::from(EXIT_BAD_ARGUMENTS), "{args:?}");
        }
        let ok = Cli::try_parse_from(["teos-cli", "getappointments", &"ab".repeat(16)]);
        assert!(ok.is_ok());
    }

    #[test]
    fn exit_codes_in_help_match_the_constants() {
        for (code, what) in [
            (EXIT_BAD_ARGUMENTS, "bad arguments"),
            (EXIT_CANNOT_CONNECT, "cannot connect"),
            (EXIT_REFUSED, "refused by the tower"),
            (EXIT_SETUP, "local setup error"),
        ] {
            assert!(
                AFTER_HELP.contains(&format!("  {code}  {what}")),
                "{code} {what}"
            );
        }
    }
}
