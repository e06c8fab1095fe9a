//! `teos-cli`: command-line admin client of a teosd watchtower (or a rust-teos tower): calls
//! `teos.v2.PrivateTowerServices` over mutual TLS and prints the answer as JSON (ADMIN_RPC.md).
//!
//! Exit codes and settings are listed in `teos-cli --help` (see `args.rs`, `error.rs`).

mod args;
mod connect;
mod error;
mod output;
mod settings;
mod stream;

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use serde_json::{Map, Value};
use teos_common::appointment::UserId;
use teos_common::protos::teos::v2::{
    GetAllAppointmentsRequest, GetAppointmentsRequest, GetUserPagedRequest, GetUserRequest,
    GetUsersRequest,
};

use args::{Cli, Command};
use connect::{AdminClient, CONNECT_HINT};
use error::{CliError, EXIT_BAD_ARGUMENTS, chain};
use settings::Settings;
use stream::{Format, ListWriter};

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
    let format = if cli.ndjson {
        Format::Ndjson
    } else {
        Format::Json
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match runtime.block_on(run(&cli, &mut out, format)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (e.g. `| head`): nothing left to say to anyone.
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            // Whatever part of a listing was written stays before the error.
            let _ = out.flush();
            fail(&e)
        }
    }
}

/// Prints the error on stderr and turns it into its exit code.
fn fail(error: &CliError) -> ExitCode {
    eprintln!("teos-cli: {error}");
    ExitCode::from(error.exit_code())
}

/// Connects and runs one command, writing its answer to `out` as it arrives (stream.rs).
async fn run(cli: &Cli, out: &mut impl Write, format: Format) -> Result<(), CliError> {
    let settings = Settings::resolve(cli)?;
    let mut client = connect::connect(&settings).await?;
    let url = settings.url();
    let fail = |status: tonic::Status| call_error(status, &url);
    match &cli.command {
        Command::GetAllAppointments => {
            let mut list = ListWriter::begin(out, format, "appointments", Map::new())?;
            all_appointments(&mut client, &mut list)
                .await?
                .map_err(fail)?;
            list.finish()?;
        }
        Command::GetAppointments { locator } => {
            let request = GetAppointmentsRequest {
                locator: locator.as_bytes().to_vec(),
            };
            let response = client.get_appointments(request).await.map_err(fail)?;
            let mut list = ListWriter::begin(out, format, "appointments", Map::new())?;
            for item in &response.into_inner().appointments {
                list.item(&output::entry(item))?;
            }
            list.finish()?;
        }
        Command::GetTowerInfo => {
            let response = client.get_tower_info(()).await.map_err(fail)?;
            stream::write_value(out, format, &output::tower_info(&response.into_inner()))?;
        }
        Command::GetUsers => {
            let mut list = ListWriter::begin(out, format, "user_ids", Map::new())?;
            all_users(&mut client, &mut list).await?.map_err(fail)?;
            list.finish()?;
        }
        Command::GetUser { user_id } => {
            user(&mut client, user_id, out, format)
                .await?
                .map_err(fail)?;
        }
        Command::Stop => {
            client.stop(()).await.map_err(fail)?;
            stream::write_value(out, format, &output::stopping())?;
        }
        Command::Completions { .. } => {
            return Err(CliError::Unexpected(
                "completions are printed before connecting".into(),
            ));
        }
    }
    Ok(())
}

/// Every appointment, page by page, each page written as it arrives (a tower without paging answers
/// everything in the first page, with no next cursor). The outer error is the output's, the inner
/// one the tower's.
async fn all_appointments<W: Write>(
    client: &mut AdminClient,
    list: &mut ListWriter<W>,
) -> Result<Result<(), tonic::Status>, CliError> {
    let mut cursor = Vec::new();
    loop {
        let request = GetAllAppointmentsRequest {
            limit: PAGE,
            cursor: cursor.clone(),
        };
        let page = match client.get_all_appointments(request).await {
            Ok(page) => page.into_inner(),
            Err(status) => return Ok(Err(status)),
        };
        for item in &page.appointments {
            list.item(&output::entry(item))?;
        }
        list.flush()?;
        if page.next_cursor.is_empty() {
            return Ok(Ok(()));
        }
        cursor = match next_cursor(cursor, page.next_cursor) {
            Ok(next) => next,
            Err(status) => return Ok(Err(status)),
        };
    }
}

/// Every user id, page by page, written as each page arrives.
async fn all_users<W: Write>(
    client: &mut AdminClient,
    list: &mut ListWriter<W>,
) -> Result<Result<(), tonic::Status>, CliError> {
    let mut cursor = Vec::new();
    loop {
        let request = GetUsersRequest {
            limit: PAGE,
            cursor: cursor.clone(),
        };
        let page = match client.get_users(request).await {
            Ok(page) => page.into_inner(),
            Err(status) => return Ok(Err(status)),
        };
        for id in &page.user_ids {
            list.item(&Value::String(hex::encode(id)))?;
        }
        list.flush()?;
        if page.next_cursor.is_empty() {
            return Ok(Ok(()));
        }
        cursor = match next_cursor(cursor, page.next_cursor) {
            Ok(next) => next,
            Err(status) => return Ok(Err(status)),
        };
    }
}

/// A user's subscription and appointment uuids: through `get_user_paged`, page by page, or through
/// `get_user` (everything at once) from a tower without it (rust-teos, older teosd).
async fn user(
    client: &mut AdminClient,
    user_id: &UserId,
    out: &mut impl Write,
    format: Format,
) -> Result<Result<(), tonic::Status>, CliError> {
    let request = |cursor: Vec<u8>| GetUserPagedRequest {
        user_id: user_id.to_bytes().to_vec(),
        limit: PAGE,
        cursor,
    };
    let mut page = match client.get_user_paged(request(Vec::new())).await {
        Ok(page) => page.into_inner(),
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            return whole_user(client, user_id, out, format).await;
        }
        Err(status) => return Ok(Err(status)),
    };
    // The subscription as read with the first page.
    let fields = output::user_fields(user_id, page.available_slots, page.subscription_expiry);
    let mut list = ListWriter::begin(out, format, "appointments", fields)?;
    let mut cursor = Vec::new();
    loop {
        for uuid in &page.appointments {
            list.item(&Value::String(hex::encode(uuid)))?;
        }
        list.flush()?;
        if page.next_cursor.is_empty() {
            list.finish()?;
            return Ok(Ok(()));
        }
        cursor = match next_cursor(cursor, page.next_cursor) {
            Ok(next) => next,
            Err(status) => return Ok(Err(status)),
        };
        page = match client.get_user_paged(request(cursor.clone())).await {
            Ok(page) => page.into_inner(),
            Err(status) => return Ok(Err(status)),
        };
    }
}

/// `get_user` in one call (rust-teos's API).
async fn whole_user(
    client: &mut AdminClient,
    user_id: &UserId,
    out: &mut impl Write,
    format: Format,
) -> Result<Result<(), tonic::Status>, CliError> {
    let request = GetUserRequest {
        user_id: user_id.to_bytes().to_vec(),
    };
    let whole = match client.get_user(request).await {
        Ok(whole) => whole.into_inner(),
        Err(status) => return Ok(Err(status)),
    };
    let fields = output::user_fields(user_id, whole.available_slots, whole.subscription_expiry);
    let mut list = ListWriter::begin(out, format, "appointments", fields)?;
    for uuid in &whole.appointments {
        list.item(&Value::String(hex::encode(uuid)))?;
    }
    list.finish()?;
    Ok(Ok(()))
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
