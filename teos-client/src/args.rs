//! Command line of `teos-client`.

use std::path::PathBuf;

use bitcoin::{Transaction, Txid};
use clap::{Parser, Subcommand};
use teos_common::appointment::Locator;

use crate::tower::TowerAddress;

/// Text after the options in `--help`: the key file, the output, and the exit codes (kept in sync
/// with error.rs by the `exit_codes_in_help_match_the_constants` test).
const AFTER_HELP: &str = "Tower: --tower tower_id@host:port (or TEOS_CLIENT_TOWER), the address the tower's operator \
publishes (teosd prints it at start). The port defaults to 9814. Every receipt the tower signs \
(register, add-appointment) is verified against tower_id.

Key: the user key (your identity at the tower) is read from --key-file, default \
~/.teos-client/user.key. `register` creates it on first use with mode 0600; like ssh, every command \
refuses a key file that its group or others may access.

Output: JSON on stdout, as the tower answered it (PROTOCOL.md field names; txids in display order). \
Errors: a message on stderr.

Exit codes:
  0  success
  1  unexpected error
  2  bad arguments (malformed tower address, txid, transaction or locator; a penalty not spending the dispute)
  3  cannot reach the tower (not running, wrong address, timeout)
  4  refused by the tower (it answered with an error code, e.g. 7 unknown user or expired, 36 not found)
  5  key file error (missing, unreadable, malformed, or readable by others)
  6  untrusted answer (a receipt not signed by the given tower id, or an off-protocol answer)";

/// Command-line client for users of a watchtower (The Eye of Satoshi protocol: teosd, rust-teos).
#[derive(Debug, Parser)]
#[command(name = "teos-client", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// The tower: tower_id@host:port (required)
    #[arg(
        long,
        value_name = "ID@HOST:PORT",
        env = "TEOS_CLIENT_TOWER",
        global = true
    )]
    pub tower: Option<TowerAddress>,
    /// The user key file [default: ~/.teos-client/user.key]
    #[arg(
        long = "key-file",
        value_name = "PATH",
        env = "TEOS_CLIENT_KEY_FILE",
        global = true
    )]
    pub key_file: Option<PathBuf>,
    /// Give up on a call after this many seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 30, global = true,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The protocol's four calls.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Registers with the tower (creating the user key on first use), or tops up the subscription
    Register,
    /// Sends an appointment: the penalty transaction, encrypted under the dispute txid, filed under
    /// its locator
    AddAppointment {
        /// Txid of the revoked commitment (the dispute), as bitcoind displays it (64 hex characters)
        #[arg(long = "dispute-txid", value_name = "TXID")]
        dispute_txid: Txid,
        /// The penalty transaction spending the dispute, consensus-serialized, in hex
        #[arg(long = "penalty-tx", value_name = "HEX", value_parser = parse_transaction)]
        penalty_tx: Transaction,
        /// The channel's to_self_delay, in blocks (the tower refuses values below its
        /// min_to_self_delay, 20 by default)
        #[arg(long = "to-self-delay", value_name = "BLOCKS", default_value_t = 144)]
        to_self_delay: u32,
    },
    /// What the tower holds for a locator: the appointment being watched, or the penalty it sent
    GetAppointment {
        /// The locator (32 hex characters), or the dispute txid it comes from (64, display order)
        #[arg(value_name = "LOCATOR|TXID", value_parser = parse_locator)]
        locator: Locator,
    },
    /// The subscription: slots left, expiry height, and the locators of the user's appointments
    GetSubscriptionInfo,
}

/// A consensus-serialized transaction in hex.
fn parse_transaction(text: &str) -> Result<Transaction, String> {
    bitcoin::consensus::encode::deserialize_hex(text.trim())
        .map_err(|e| format!("not a transaction in consensus hex: {e}"))
}

/// A locator, or the locator of a dispute txid.
fn parse_locator(text: &str) -> Result<Locator, String> {
    if text.len() == 64 {
        let txid: Txid = text
            .parse()
            .map_err(|e| format!("not a txid (64 hex characters): {e}"))?;
        return Ok(Locator::new(&txid));
    }
    text.parse().map_err(|e| {
        format!("not a locator (32 hex characters) nor a txid (64 hex characters): {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{
        EXIT_BAD_ARGUMENTS, EXIT_CANNOT_CONNECT, EXIT_KEY, EXIT_REFUSED, EXIT_UNEXPECTED,
        EXIT_UNTRUSTED,
    };
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exit_codes_in_help_match_the_constants() {
        for (code, what) in [
            (EXIT_UNEXPECTED, "unexpected error"),
            (EXIT_BAD_ARGUMENTS, "bad arguments"),
            (EXIT_CANNOT_CONNECT, "cannot reach the tower"),
            (EXIT_REFUSED, "refused by the tower"),
            (EXIT_KEY, "key file error"),
            (EXIT_UNTRUSTED, "untrusted answer"),
        ] {
            assert!(
                AFTER_HELP.contains(&format!("  {code}  {what}")),
                "{code} {what}"
            );
        }
    }

    #[test]
    fn a_locator_can_be_given_as_its_dispute_txid() {
        let txid = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b";
        let from_txid = parse_locator(txid).unwrap();
        assert_eq!(from_txid, Locator::new(&txid.parse().unwrap()));
        assert_eq!(parse_locator(&from_txid.to_string()).unwrap(), from_txid);
        assert!(parse_locator("abcd").is_err());
        assert!(parse_locator(&"zz".repeat(16)).is_err());
    }

    #[test]
    fn malformed_arguments_are_refused_while_parsing() {
        let tower = format!("--tower=02{}@127.0.0.1:9814", "fc".repeat(32));
        for args in [
            &["teos-client", "--tower", "nope", "register"][..],
            &["teos-client", &tower, "get-appointment", "00"][..],
            &[
                "teos-client",
                &tower,
                "add-appointment",
                "--dispute-txid",
                "00",
                "--penalty-tx",
                "00",
            ][..],
        ] {
            let error = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(error.exit_code(), i32::from(EXIT_BAD_ARGUMENTS), "{args:?}");
        }
    }
}
