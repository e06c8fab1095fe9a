//! What teosd does on each Unix signal, as one table (in the manner of electrs's `src/signals.rs`):
//!
//! | signal | action |
//! |---|---|
//! | SIGINT, SIGTERM (first of either) | graceful shutdown ([`Shutdown::trigger`]): stop accepting requests, finish in-flight ones and the current block, close the database; exit 0 |
//! | SIGINT, SIGTERM (any later one) | exit at once with [`EXIT_AT_ONCE`] (130); SQLite's WAL keeps the database consistent |
//! | SIGHUP | reopen `log_file` ([`crate::logging::reopen`]; sent by `systemctl reload` and logrotate); never stops the tower nor counts toward the shutdown, at any stage (also while waiting for bitcoind) |
//!
//! Every action is logged. The handlers are installed first thing in `main` ([`Signals::install`]),
//! so a SIGHUP during startup does not take its default action (terminate); the signals that arrive
//! before [`Signals::watch`] starts the `signals` thread are acted on then.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::low_level::signal_name;

use crate::shutdown::Shutdown;

/// Exit code of a second SIGINT/SIGTERM (128 + SIGINT, the shell's code for an interrupted program;
/// kept from earlier teosd versions).
pub const EXIT_AT_ONCE: i32 = 130;

/// What a signal asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Stop the tower (SIGINT, SIGTERM).
    Stop,
    /// Reopen the log file (SIGHUP).
    ReopenLog,
}

/// The signals teosd handles, and what each asks for.
pub const TABLE: [(i32, Request); 3] = [
    (SIGINT, Request::Stop),
    (SIGTERM, Request::Stop),
    (SIGHUP, Request::ReopenLog),
];

/// What teosd does on one signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start the graceful shutdown.
    Shutdown,
    /// Exit at once with [`EXIT_AT_ONCE`].
    ExitAtOnce,
    /// Reopen the log file.
    ReopenLog,
}

/// Turns signals into actions: counts stop requests, SIGHUP aside.
#[derive(Debug, Default)]
pub struct Dispatcher {
    /// SIGINT/SIGTERM received so far.
    stops: u32,
}

impl Dispatcher {
    /// The action for `signal` (`None` for a signal not in [`TABLE`]).
    pub fn action(&mut self, signal: i32) -> Option<Action> {
        let (_, request) = TABLE.iter().find(|(s, _)| *s == signal)?;
        Some(match request {
            Request::ReopenLog => Action::ReopenLog,
            Request::Stop => {
                self.stops += 1;
                if self.stops == 1 {
                    Action::Shutdown
                } else {
                    Action::ExitAtOnce
                }
            }
        })
    }
}

/// The installed signal handlers, waiting for [`Signals::watch`].
pub struct Signals(signal_hook::iterator::Signals);

impl Signals {
    /// Installs the handlers of every signal in [`TABLE`]; from now on they no longer take their
    /// default action (terminate), and arrivals are kept until [`Signals::watch`].
    ///
    /// Errors: the OS refused a handler or the self-pipe.
    pub fn install() -> io::Result<Signals> {
        Ok(Signals(signal_hook::iterator::Signals::new(
            TABLE.map(|(signal, _)| signal),
        )?))
    }

    /// Starts the `signals` thread, which acts on every signal (see the module docs) for the rest of
    /// the process's life.
    ///
    /// Errors: the OS cannot start a thread.
    pub fn watch(self, shutdown: Arc<Shutdown>) -> io::Result<JoinHandle<()>> {
        let Signals(mut signals) = self;
        crate::thread::spawn("signals", move || {
            let mut dispatcher = Dispatcher::default();
            for signal in signals.forever() {
                if let Some(action) = dispatcher.action(signal) {
                    act(signal, action, &shutdown);
                }
            }
            Ok(())
        })
    }
}

/// Carries out (and logs) `action`, caused by `signal`.
fn act(signal: i32, action: Action, shutdown: &Shutdown) {
    let name = signal_name(signal).unwrap_or("signal");
    match action {
        Action::Shutdown => {
            tracing::info!(
                "{name} received: shutting down (send SIGINT or SIGTERM again to exit at once)"
            );
            shutdown.trigger();
        }
        Action::ExitAtOnce => {
            tracing::warn!("{name} received again: exiting at once (code {EXIT_AT_ONCE})");
            std::process::exit(EXIT_AT_ONCE);
        }
        Action::ReopenLog => {
            tracing::info!("{name} received: reopening the log file");
            match crate::logging::reopen() {
                Ok(Some(path)) => tracing::info!("log file {} reopened", path.display()),
                Ok(None) => tracing::info!("no log_file configured: nothing to reopen"),
                Err(e) => tracing::error!("{e}; still logging to the old file"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_stop_signal_shuts_down_and_a_second_exits_at_once() {
        for (first, second) in [(SIGTERM, SIGTERM), (SIGINT, SIGTERM), (SIGTERM, SIGINT)] {
            let mut dispatcher = Dispatcher::default();
            assert_eq!(dispatcher.action(first), Some(Action::Shutdown));
            assert_eq!(dispatcher.action(second), Some(Action::ExitAtOnce));
        }
    }

    #[test]
    fn sighup_reopens_the_log_and_never_counts_toward_the_shutdown() {
        let mut dispatcher = Dispatcher::default();
        for _ in 0..3 {
            assert_eq!(dispatcher.action(SIGHUP), Some(Action::ReopenLog));
        }
        assert_eq!(dispatcher.action(SIGTERM), Some(Action::Shutdown));
        assert_eq!(dispatcher.action(SIGHUP), Some(Action::ReopenLog));
        assert_eq!(dispatcher.action(SIGINT), Some(Action::ExitAtOnce));
    }

    #[test]
    fn signals_outside_the_table_do_nothing() {
        let mut dispatcher = Dispatcher::default();
        assert_eq!(dispatcher.action(signal_hook::consts::SIGUSR1), None);
        assert_eq!(dispatcher.action(SIGTERM), Some(Action::Shutdown));
    }
}
