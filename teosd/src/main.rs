//! `teosd`: The Eye of Satoshi watchtower daemon.

use std::process::ExitCode;
use std::sync::Arc;

use teosd::config::{Config, ConfigError, ConfigWarning};
use teosd::shutdown::Shutdown;
use teosd::signals::Signals;

fn main() -> ExitCode {
    // `teosd <subcommand> ...` (import-rust-teos, backup) runs instead of the tower, with the default
    // signal dispositions (Ctrl-C stops it at once).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = teosd::subcommand::dispatch(&args) {
        return code;
    }
    // First of all: until its handler is installed, a SIGHUP (logrotate, `systemctl reload`) would
    // terminate the process. Signals arriving before the `signals` thread starts are acted on then.
    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("teosd: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    if Config::wants_example(std::env::args_os()) {
        print!("{}", teosd::config::example());
        return ExitCode::SUCCESS;
    }
    let config = match Config::load() {
        Ok(config) => config,
        // --help lists the subcommands after the options.
        Err(ConfigError::Cli(e)) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            let _ = e.print();
            println!("\n{}", teosd::subcommand::help_section());
            return ExitCode::SUCCESS;
        }
        // --version prints to stdout and exits 0; bad flags exit 2 with clap's message.
        Err(ConfigError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("teosd: {e}");
            return ExitCode::from(2);
        }
    };
    if config.print_config {
        for warning in &config.warnings {
            eprintln!("teosd: warning: {warning}");
        }
        println!("{}", config.masked());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = teosd::logging::init(&config) {
        eprintln!("teosd: cannot open the log file: {e}");
        return ExitCode::from(2);
    }
    // Once each, now that there is a log to write them to.
    for warning in &config.warnings {
        match warning {
            ConfigWarning::UnknownEnv { name } => {
                tracing::warn!(event = "config_warning", variable = %name, "{warning}");
            }
        }
    }

    let shutdown = Arc::new(Shutdown::new());
    // A thread that panics or fails stops the tower, which then exits 1 (see teosd::thread).
    teosd::thread::stop_on_failure(shutdown.clone());
    if let Err(e) = signals.watch(shutdown.clone()) {
        tracing::error!("cannot start the signals thread: {e}");
        return ExitCode::FAILURE;
    }
    match teosd::daemon::run(config, shutdown) {
        Ok(()) => {
            tracing::info!("teosd stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE // 1, as teosd::thread::FAILURE_EXIT_CODE
        }
    }
}
