//! What can go wrong in `teos-cli`, and the exit code of each kind (listed in `--help`).

use std::path::PathBuf;

/// Unexpected failure (a bug, or something none of the other codes describe).
pub const EXIT_UNEXPECTED: u8 = 1;
/// Bad command line: unknown command or option, malformed locator or user id (clap's own code).
pub const EXIT_BAD_ARGUMENTS: u8 = 2;
/// The tower could not be reached: nothing listening, wrong address, TLS handshake failed (including
/// a client certificate the tower does not accept), connection lost during the call.
pub const EXIT_CANNOT_CONNECT: u8 = 3;
/// The tower answered the call with an error status (`NotFound`, `InvalidArgument`, ...).
pub const EXIT_REFUSED: u8 = 4;
/// Local setup: `teos.toml` or a TLS file is unreadable or malformed.
pub const EXIT_SETUP: u8 = 5;

/// A failed `teos-cli` run. `Display` is the message printed on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A local file could not be read or parsed.
    #[error("{path}: {reason}")]
    Setup {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The tower could not be reached or the connection failed.
    #[error("cannot connect to the tower at {url}: {reason}{hint}")]
    CannotConnect {
        /// The admin API's URL.
        url: String,
        /// The error chain.
        reason: String,
        /// Advice about the likely cause, starting with a separator, or empty.
        hint: &'static str,
    },
    /// The tower answered with an error status.
    #[error("the tower refused the request: {message} ({code:?})")]
    Refused {
        /// The gRPC status code.
        code: tonic::Code,
        /// The tower's message.
        message: String,
    },
    /// Writing the answer to stdout failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// Anything else.
    #[error("{0}")]
    Unexpected(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Setup { .. } => EXIT_SETUP,
            CliError::CannotConnect { .. } => EXIT_CANNOT_CONNECT,
            CliError::Refused { .. } => EXIT_REFUSED,
            CliError::Output(_) | CliError::Unexpected(_) => EXIT_UNEXPECTED,
        }
    }
}

/// `error` and its sources, joined with ": " (tonic's own `Display` is often just "transport error").
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}
