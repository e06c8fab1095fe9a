//! What can go wrong in `teos-client`, and the exit code of each kind (listed in `--help`).

use std::path::PathBuf;

use teos_common::client::ClientError;

/// Unexpected failure (a bug, or something none of the other codes describe).
pub const EXIT_UNEXPECTED: u8 = 1;
/// Bad command line: unknown command or option, malformed tower address, txid, transaction or
/// locator, or a penalty that does not spend the dispute transaction (clap's own code for usage).
pub const EXIT_BAD_ARGUMENTS: u8 = 2;
/// The tower could not be reached: nothing listening, wrong address, timeout, connection lost.
pub const EXIT_CANNOT_CONNECT: u8 = 3;
/// The tower answered with a protocol error (`{"error", "error_code"}`, PROTOCOL.md "Errors"): e.g.
/// unknown user or expired subscription (code 7), appointment not found (36).
pub const EXIT_REFUSED: u8 = 4;
/// The user key file is missing (for a command other than `register`), unreadable, malformed, or
/// readable by others.
pub const EXIT_KEY: u8 = 5;
/// The tower's answer cannot be trusted: a receipt is not signed by the tower id given with
/// `--tower`, or the answer is not what the protocol says.
pub const EXIT_UNTRUSTED: u8 = 6;

/// A failed `teos-client` run. `Display` is the message printed on stderr.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An argument is malformed or inconsistent (found after clap's own checks).
    #[error("{0}")]
    BadArguments(String),
    /// The user key file.
    #[error("key file {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The tower could not be reached.
    #[error("cannot reach the tower at {url}: {reason}")]
    CannotConnect {
        /// The tower's base URL.
        url: String,
        /// The error chain.
        reason: String,
    },
    /// The tower answered with a protocol error.
    #[error("the tower refused the request: {message} (HTTP {status}, error code {code})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Protocol error code (PROTOCOL.md "Errors").
        code: u8,
        /// The tower's message.
        message: String,
    },
    /// A receipt did not verify, or the answer is malformed.
    #[error("{0}")]
    Untrusted(String),
    /// Anything else.
    #[error("{0}")]
    Unexpected(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::BadArguments(_) => EXIT_BAD_ARGUMENTS,
            Error::Key { .. } => EXIT_KEY,
            Error::CannotConnect { .. } => EXIT_CANNOT_CONNECT,
            Error::Refused { .. } => EXIT_REFUSED,
            Error::Untrusted(_) => EXIT_UNTRUSTED,
            Error::Unexpected(_) => EXIT_UNEXPECTED,
        }
    }

    /// A failed call to the tower at `url` whose id is `tower_id`.
    pub fn from_client(error: ClientError, url: &str, tower_id: &str) -> Error {
        match error {
            ClientError::Api { status, error } => Error::Refused {
                status,
                code: error.code.as_u8(),
                message: error.message,
            },
            ClientError::Transport(e) => Error::CannotConnect {
                url: url.to_owned(),
                reason: chain(&e),
            },
            ClientError::InvalidTowerSignature(what) => Error::Untrusted(format!(
                "the {what} from {url} is not signed by tower {tower_id}: this is another tower, or \
                 it misbehaves (check the tower id you were given)"
            )),
            ClientError::Decode(detail) => Error::Untrusted(format!(
                "the tower at {url} answered off-protocol: {detail}"
            )),
        }
    }
}

/// `error` and its sources, joined with ": " (reqwest's own `Display` is often just "error sending
/// request").
fn chain(error: &dyn std::error::Error) -> String {
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
