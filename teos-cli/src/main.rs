//! `teos-cli`: command-line admin client of a teosd watchtower (or a rust-teos tower): calls
//! `teos.v2.PrivateTowerServices` over mutual TLS and prints the answer as JSON (ADMIN_RPC.md).
//!
//! Exit codes and settings are listed in `teos-cli --help` (see `args.rs`, `error.rs`).

mod args;
mod connect;
mod error;
mod output;
mod settings;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use serde_json::Value;
use teos_common::protos::common::teos::v2::AppointmentData;
use teos_common::protos::teos::v2::{
    GetAllAppointmentsRequest, GetAppointmentsRequest, GetUserRequest, GetUsersRequest,
};

use args::{Cli, Command};
use connect::{AdminClient, CONNECT_HINT};
use error::{CliError, EXIT_BAD_ARGUMENTS, chain};
use settings::Settings;

/// Items asked for per page when listing (the tower caps pages; a tower without paging sends all).
const PAGE: u32 = 1000;

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
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "teos-cli",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&CliError::Unexpected(format!("cannot start: {e}"))),
    };
    match runtime.block_on(run(&cli)) {
        Ok(value) => match serde_json::to_string_pretty(&value) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&CliError::Unexpected(e.to_string())),
        },
        Err(e) => fail(&e),
    }
}

/// Prints the error on stderr and turns it into its exit code.
fn fail(error: &CliError) -> ExitCode {
    eprintln!("teos-cli: {error}");
    ExitCode::from(error.exit_code())
}

/// Connects and runs one command, returning the JSON to print.
async fn run(cli: &Cli) -> Result<Value, CliError> {
    let settings = Settings::resolve(cli)?;
    let mut client = connect::connect(&settings).await?;
    let url = settings.url();
    let fail = |status: tonic::Status| call_error(status, &url);
    match &cli.command {
        Command::GetAllAppointments => {
            let items = all_appointments(&mut client).await.map_err(fail)?;
            Ok(output::appointments(&items))
        }
        Command::GetAppointments { locator } => {
            let request = GetAppointmentsRequest {
                locator: locator.as_bytes().to_vec(),
            };
            let response = client.get_appointments(request).await.map_err(fail)?;
            Ok(output::appointments(&response.into_inner().appointments))
        }
        Command::GetTowerInfo => {
            let response = client.get_tower_info(()).await.map_err(fail)?;
            Ok(output::tower_info(&response.into_inner()))
        }
        Command::GetUsers => {
            let ids = all_users(&mut client).await.map_err(fail)?;
            Ok(output::users(&ids))
        }
        Command::GetUser { user_id } => {
            let request = GetUserRequest {
                user_id: user_id.to_bytes().to_vec(),
            };
            let response = client.get_user(request).await.map_err(fail)?;
            Ok(output::user(user_id, &response.into_inner()))
        }
        Command::Stop => {
            client.stop(()).await.map_err(fail)?;
            Ok(output::stopping())
        }
        Command::Completions { .. } => Err(CliError::Unexpected(
            "completions are printed before connecting".into(),
        )),
    }
}

/// Every appointment, page by page (a tower without paging answers everything in the first page,
/// with no next cursor).
async fn all_appointments(client: &mut AdminClient) -> Result<Vec<AppointmentData>, tonic::Status> {
    let mut items = Vec::new();
    let mut cursor = Vec::new();
    loop {
        let request = GetAllAppointmentsRequest {
            limit: PAGE,
            cursor: cursor.clone(),
        };
        let page = client.get_all_appointments(request).await?.into_inner();
        items.extend(page.appointments);
        if page.next_cursor.is_empty() {
            return Ok(items);
        }
        cursor = next_cursor(cursor, page.next_cursor)?;
    }
}

/// Every user id, page by page.
async fn all_users(client: &mut AdminClient) -> Result<Vec<Vec<u8>>, tonic::Status> {
    let mut ids = Vec::new();
    let mut cursor = Vec::new();
    loop {
        let request = GetUsersRequest {
            limit: PAGE,
            cursor: cursor.clone(),
        };
        let page = client.get_users(request).await?.into_inner();
        ids.extend(page.user_ids);
        if page.next_cursor.is_empty() {
            return Ok(ids);
        }
        cursor = next_cursor(cursor, page.next_cursor)?;
    }
}

/// The cursor of the next page; a tower that hands back the cursor it was given would loop forever.
fn next_cursor(previous: Vec<u8>, next: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
    if next == previous {
        return Err(tonic::Status::internal(
            "the tower repeated a paging cursor",
        ));
    }
    Ok(next)
}

/// A failed call: statuses made on this side (they carry the transport error as their source: the
/// connection failed or the tower refused our certificate) are "cannot connect"; statuses the tower
/// sent are "refused".
fn call_error(status: tonic::Status, url: &str) -> CliError {
    match std::error::Error::source(&status) {
        Some(source) => CliError::CannotConnect {
            url: url.to_owned(),
            reason: format!("{}: {}", status.message(), chain(source)),
            hint: CONNECT_HINT,
        },
        None => CliError::Refused {
            code: status.code(),
            message: status.message().to_owned(),
        },
    }
}
