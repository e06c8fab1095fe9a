//! `teosd backup <DEST_FILE>`.

use std::ffi::OsString;
use std::process::ExitCode;

/// `teosd backup --help`.
pub const HELP: &str = "";

/// The subcommand's entry point (see [`crate::subcommand`]).
pub fn main(_operands: Vec<OsString>, _teosd_args: Vec<OsString>) -> ExitCode {
    ExitCode::from(2)
}
