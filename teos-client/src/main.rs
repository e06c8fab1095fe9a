//! `teos-client`: a command-line client for users of a watchtower speaking The Eye of Satoshi
//! protocol (teosd, rust-teos), built on `teos_common::client`.
//!
//! `register`, `add-appointment`, `get-appointment`, `get-subscription-info` (PROTOCOL.md
//! "Endpoints"), with the user key kept in an owner-only file (`key.rs`), the tower given as
//! `tower_id@host:port` (`tower.rs`) and every signed receipt verified against that tower id. Exit
//! codes are listed in `teos-client --help` (`args.rs`, `error.rs`).

mod args;
mod error;
mod key;
mod tower;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bitcoin::{Transaction, Txid};
use clap::Parser;
use serde_json::Value;
use teos_common::appointment::Appointment;
use teos_common::client::{TowerClient, user_id_of};

use args::{Cli, Command};
use error::{EXIT_BAD_ARGUMENTS, Error};
use tower::TowerAddress;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version go to stdout with 0; usage errors to stderr with EXIT_BAD_ARGUMENTS.
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_BAD_ARGUMENTS)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&Error::Unexpected(format!("cannot start: {e}"))),
    };
    let printed = runtime.block_on(run(&cli)).and_then(|value| {
        serde_json::to_string_pretty(&value).map_err(|e| Error::Unexpected(e.to_string()))
    });
    match printed {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// Prints the error on stderr and turns it into its exit code.
fn fail(error: &Error) -> ExitCode {
    eprintln!("teos-client: {error}");
    ExitCode::from(error.exit_code())
}

/// Runs one command, returning the JSON to print.
async fn run(cli: &Cli) -> Result<Value, Error> {
    let tower = cli.tower.as_ref().ok_or_else(|| {
        Error::BadArguments(
            "which tower? pass --tower tower_id@host:port (or set TEOS_CLIENT_TOWER)".into(),
        )
    })?;
    if let Command::AddAppointment {
        dispute_txid,
        penalty_tx,
        ..
    } = &cli.command
    {
        // Before the key and the network: a wrong pair is the user's mistake, not the tower's.
        check_penalty_spends(dispute_txid, penalty_tx)?;
    }
    let key_path = key_path(cli)?;
    let user_sk = match cli.command {
        Command::Register => {
            let (key, created) = key::load_or_create(&key_path)?;
            if created {
                eprintln!(
                    "teos-client: created a new user key in {} (keep it: it is your identity at \
                     the tower)",
                    key_path.display()
                );
            }
            key
        }
        _ => key::load(&key_path)?,
    };
    let client = client(tower, cli.timeout)?;
    let url = tower.url();
    let id = tower.id.to_string();
    let fail = |e| Error::from_client(e, &url, &id);
    match &cli.command {
        Command::Register => to_json(client.register(&user_id_of(&user_sk)).await.map_err(fail)?),
        Command::AddAppointment {
            dispute_txid,
            penalty_tx,
            to_self_delay,
        } => {
            let appointment = Appointment::new(dispute_txid, penalty_tx, *to_self_delay);
            to_json(
                client
                    .add_appointment(&appointment, &user_sk)
                    .await
                    .map_err(fail)?,
            )
        }
        Command::GetAppointment { locator } => to_json(
            client
                .get_appointment(locator, &user_sk)
                .await
                .map_err(fail)?,
        ),
        Command::GetSubscriptionInfo => {
            to_json(client.get_subscription_info(&user_sk).await.map_err(fail)?)
        }
    }
}

/// The key file: `--key-file`, else `~/.teos-client/user.key`.
fn key_path(cli: &Cli) -> Result<PathBuf, Error> {
    match &cli.key_file {
        Some(path) => Ok(path.clone()),
        None => key::default_path()
            .ok_or_else(|| Error::BadArguments("HOME is not set: pass --key-file PATH".into())),
    }
}

/// A client of `tower` that verifies receipts against its id, with a `timeout` in seconds per call.
fn client(tower: &TowerAddress, timeout: u64) -> Result<TowerClient, Error> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout))
        .build()
        .map_err(|e| Error::Unexpected(format!("cannot build the HTTP client: {e}")))?;
    Ok(TowerClient::with_http_client(tower.url(), http).with_tower_id(tower.id))
}

/// A penalty must spend an output of the dispute transaction: the tower only sees ciphertext, so it
/// would store (and charge for) a penalty that can never be mined.
fn check_penalty_spends(dispute_txid: &Txid, penalty: &Transaction) -> Result<(), Error> {
    if penalty
        .input
        .iter()
        .any(|input| input.previous_output.txid == *dispute_txid)
    {
        Ok(())
    } else {
        Err(Error::BadArguments(format!(
            "the penalty transaction {} spends no output of the dispute transaction {dispute_txid}",
            penalty.compute_txid()
        )))
    }
}

fn to_json<T: serde::Serialize>(answer: T) -> Result<Value, Error> {
    serde_json::to_value(answer).map_err(|e| Error::Unexpected(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> Result<Value, Error> {
        let cli = Cli::try_parse_from(args).expect("parses");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(run(&cli))
    }

    #[test]
    fn a_missing_tower_is_a_bad_argument_found_before_any_file_or_call() {
        if std::env::var_os("TEOS_CLIENT_TOWER").is_some() {
            return; // the environment names a tower: nothing to check here
        }
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("user.key");
        let key = key.to_str().unwrap();
        let error = run_args(&["teos-client", "--key-file", key, "register"]).unwrap_err();
        assert_eq!(error.exit_code(), EXIT_BAD_ARGUMENTS, "{error}");
        assert!(error.to_string().contains("--tower"), "{error}");
        assert!(!dir.path().join("user.key").exists(), "no key created");
    }
}
