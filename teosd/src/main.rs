//! `teosd`: The Eye of Satoshi watchtower daemon.

use std::process::ExitCode;
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use teosd::config::{Config, ConfigError};
use teosd::shutdown::Shutdown;

fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(config) => config,
        // --help and --version print to stdout and exit 0; bad flags exit 2 with clap's message.
        Err(ConfigError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("teosd: {e}");
            return ExitCode::from(2);
        }
    };
    if config.print_config {
        println!("{}", config.masked());
        return ExitCode::SUCCESS;
    }
    if let Err(e) = teosd::logging::init(&config) {
        eprintln!("teosd: cannot open the log file: {e}");
        return ExitCode::from(2);
    }

    let shutdown = Arc::new(Shutdown::new());
    // A thread that panics or fails stops the tower, which then exits 1 (see teosd::thread).
    teosd::thread::stop_on_failure(shutdown.clone());
    if let Err(e) = watch_signals(shutdown.clone()) {
        tracing::error!("cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    match teosd::daemon::run(config, shutdown) {
        Ok(()) => {
            tracing::info!("teosd stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGINT/SIGTERM start a graceful shutdown; a second one exits at once. SIGHUP reopens the log file.
fn watch_signals(shutdown: Arc<Shutdown>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    teosd::thread::spawn("signals", move || {
        let mut received = 0;
        for signal in signals.forever() {
            received += 1;
            if received == 1 {
                tracing::info!(
                    "signal {signal} received, shutting down (send it again to exit at once)"
                );
                shutdown.trigger();
            } else {
                tracing::warn!("second signal {signal}: exiting now");
                std::process::exit(130);
            }
        }
        Ok(())
    })?;
    Ok(())
}
