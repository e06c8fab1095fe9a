//! Named threads whose end is reported, in the manner of electrs's `src/thread.rs`: every thread the
//! daemon starts goes through [`spawn`], so a pipeline thread that panics or fails stops the whole
//! process instead of vanishing while the HTTP API keeps accepting appointments nothing watches.
//!
//! How a thread ends, and what follows:
//!
//! | the thread's function | what happens |
//! |---|---|
//! | returns `Ok(())` | nothing (threads end normally at shutdown, prefetchers after a catch-up) |
//! | returns `Err(e)` | logged at error level with the thread's name; the tower stops, exit code 1 |
//! | panics | the same (the panic message is logged; the default panic hook prints the location) |
//!
//! "The tower stops": the first failure is recorded (see [`failure`]) and the [`Shutdown`] handed to
//! [`stop_on_failure`] is triggered, so the daemon tears down as for SIGTERM (in-flight requests,
//! current block, database close), then `daemon::run` returns the failure and `main` exits 1, which
//! systemd's `Restart=on-failure` restarts. The teardown is bounded: if the process is still alive
//! [`TEARDOWN_LIMIT`] after the failure, it exits 1 at once (SQLite's WAL keeps the database safe).
//! A failure reported before [`stop_on_failure`] is called triggers the shutdown as soon as it is.
//!
//! Using it (also for the block processor's prefetch threads):
//! ```no_run
//! let handle = teosd::thread::spawn("teosd-prefetch", move || {
//!     // ... the thread's work; return Err only for what must stop the tower ...
//!     Ok(())
//! })?; // Err only when the OS refuses a new thread
//! handle.join().ok(); // never Err: panics are caught and reported by the helper
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! **Test-only fault injection** (debug builds only; release builds do not contain it): when the
//! environment variable [`FAULT_PANIC_THREAD`] (`TEOSD_FAULT_PANIC_THREAD`) names a thread, that
//! thread panics at its first *fault point* reached once the daemon has called
//! [`arm_injected_faults`] (when the public API serves). Every thread started by [`spawn`] has a fault
//! point where it starts; threads started earlier that must be reachable have one per iteration
//! ([`fault_point`]: the storage writer per op, the metrics refresher per refresh). The end-to-end
//! tests in `teosd/tests/e2e_thread_panics.rs` use it to show the process exits.

use std::any::Any;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
#[cfg(debug_assertions)]
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::shutdown::Shutdown;

/// How long the daemon gets to tear down after a thread failed before the process exits anyway
/// (seconds: 60, as `TimeoutStopSec=` in `contrib/teosd.service`).
pub const TEARDOWN_LIMIT: Duration = Duration::from_secs(60);

/// Exit code of a process stopped by a thread failure (also `main`'s code for any failed run).
pub const FAILURE_EXIT_CODE: i32 = 1;

/// The environment variable of the test-only fault injection (see the module docs). Debug builds only.
#[cfg(debug_assertions)]
pub const FAULT_PANIC_THREAD: &str = "TEOSD_FAULT_PANIC_THREAD";

/// How a thread started by [`spawn`] failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ThreadFailure {
    /// The thread panicked; `message` is the panic payload's text.
    #[error("thread {thread} panicked: {message}")]
    Panicked { thread: String, message: String },
    /// The thread's function returned an error (`error` with its causes, `{:#}` of anyhow).
    #[error("thread {thread} failed: {error}")]
    Failed { thread: String, error: String },
}

impl ThreadFailure {
    /// The name of the thread that failed.
    pub fn thread(&self) -> &str {
        match self {
            ThreadFailure::Panicked { thread, .. } | ThreadFailure::Failed { thread, .. } => thread,
        }
    }
}

/// The process's supervisor, used by [`spawn`], [`stop_on_failure`] and [`failure`].
static SUPERVISOR: LazyLock<Arc<Supervisor>> = LazyLock::new(|| Arc::new(Supervisor::new()));

/// Starts a thread named `name` (as shown by `top -H`, gdb and panic messages) running `f`; a panic or
/// an `Err` from `f` is logged with the thread's name and stops the tower (see the module docs).
///
/// Errors: the OS cannot start a thread (as [`std::thread::Builder::spawn`]).
pub fn spawn<F>(name: &str, f: F) -> io::Result<JoinHandle<()>>
where
    F: FnOnce() -> anyhow::Result<()> + Send + 'static,
{
    SUPERVISOR.spawn(name, f)
}

/// Makes a thread failure trigger `shutdown` (at once if one already happened) and bounds the
/// teardown by [`TEARDOWN_LIMIT`]. Called once by `main`, before anything is started.
pub fn stop_on_failure(shutdown: Arc<Shutdown>) {
    SUPERVISOR.stop_on_failure(shutdown, Some(TEARDOWN_LIMIT));
}

/// The first thread failure of the process, if any (the daemon returns it as its error).
pub fn failure() -> Option<ThreadFailure> {
    SUPERVISOR.failure()
}

/// Records how the threads it started ended, and stops the tower on the first failure.
///
/// The process has one (behind [`spawn`]); tests make their own.
#[derive(Default)]
pub struct Supervisor {
    state: Mutex<State>,
}

/// What the supervisor knows; behind its one mutex, held only for quick reads and writes.
#[derive(Default)]
struct State {
    /// The first failure.
    failure: Option<ThreadFailure>,
    /// Triggered on failure.
    shutdown: Option<Arc<Shutdown>>,
    /// Bound on the teardown after a failure; `None` = unbounded (tests: exiting would end them).
    teardown_limit: Option<Duration>,
    /// Whether the shutdown has been triggered and the teardown bound armed for the first failure.
    acted: bool,
}

impl Supervisor {
    /// A supervisor with no failure and nothing to stop.
    pub fn new() -> Supervisor {
        Supervisor::default()
    }

    /// [`spawn`] reporting to this supervisor.
    pub fn spawn<F>(self: &Arc<Self>, name: &str, f: F) -> io::Result<JoinHandle<()>>
    where
        F: FnOnce() -> anyhow::Result<()> + Send + 'static,
    {
        let supervisor = self.clone();
        let thread = name.to_owned();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    fault_point();
                    f()
                }));
                let failure = match outcome {
                    Ok(Ok(())) => return,
                    Ok(Err(error)) => ThreadFailure::Failed {
                        thread,
                        error: format!("{error:#}"),
                    },
                    Err(panic) => ThreadFailure::Panicked {
                        thread,
                        message: panic_message(panic.as_ref()),
                    },
                };
                supervisor.report(failure);
            })
    }

    /// Triggers `shutdown` on the first failure (at once if it already happened); with
    /// `teardown_limit`, the process exits with [`FAILURE_EXIT_CODE`] that long after the failure
    /// if it is still running.
    pub fn stop_on_failure(&self, shutdown: Arc<Shutdown>, teardown_limit: Option<Duration>) {
        {
            let mut state = self.lock();
            state.shutdown = Some(shutdown);
            state.teardown_limit = teardown_limit;
        }
        self.act();
    }

    /// The first failure reported, if any.
    pub fn failure(&self) -> Option<ThreadFailure> {
        self.lock().failure.clone()
    }

    /// Logs `failure`, records it if it is the first, and stops the tower.
    fn report(&self, failure: ThreadFailure) {
        tracing::error!(thread = failure.thread(), "{failure}; stopping the tower");
        self.lock().failure.get_or_insert(failure);
        self.act();
    }

    /// Once there is a failure and a shutdown to trigger: triggers it and arms the teardown bound.
    fn act(&self) {
        let (shutdown, limit) = {
            let mut state = self.lock();
            if state.acted || state.failure.is_none() {
                return;
            }
            let Some(shutdown) = state.shutdown.clone() else {
                return;
            };
            state.acted = true;
            (shutdown, state.teardown_limit)
        };
        shutdown.trigger();
        if let Some(limit) = limit {
            exit_after(limit);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few plain fields, consistent after any panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Exits the process with [`FAILURE_EXIT_CODE`] after `limit`, unless it ended before.
///
/// A plain std thread, not [`spawn`]: it is the supervisor's own, and has nothing to report.
fn exit_after(limit: Duration) {
    let started = std::thread::Builder::new()
        .name("teardown-limit".into())
        .spawn(move || {
            std::thread::sleep(limit);
            tracing::error!("the tower did not stop within {limit:?} of a thread failure; exiting");
            std::process::exit(FAILURE_EXIT_CODE);
        });
    if let Err(e) = started {
        tracing::warn!("cannot bound the teardown ({e}); waiting for it");
    }
}

/// Whether injected faults fire (set by [`arm_injected_faults`]).
#[cfg(debug_assertions)]
static FAULTS_ARMED: AtomicBool = AtomicBool::new(false);

/// Test-only fault injection (see the module docs): from now on, the thread named by
/// [`FAULT_PANIC_THREAD`] panics at its next [`fault_point`]. The daemon calls it once the public API
/// serves. Does nothing in release builds.
pub fn arm_injected_faults() {
    #[cfg(debug_assertions)]
    FAULTS_ARMED.store(true, Ordering::SeqCst);
}

/// Test-only fault injection (see the module docs): in debug builds, panics when injected faults are
/// armed and [`FAULT_PANIC_THREAD`] names the calling thread. Does nothing in release builds.
#[inline]
pub fn fault_point() {
    #[cfg(debug_assertions)]
    {
        static INJECTED: LazyLock<Option<String>> =
            LazyLock::new(|| std::env::var(FAULT_PANIC_THREAD).ok());
        inject_fault(
            std::thread::current().name(),
            FAULTS_ARMED.load(Ordering::SeqCst),
            INJECTED.as_deref(),
        );
    }
}

/// Panics when `armed` and `injected` (the value of [`FAULT_PANIC_THREAD`]) names `thread`.
#[cfg(debug_assertions)]
fn inject_fault(thread: Option<&str>, armed: bool, injected: Option<&str>) {
    if armed && thread.is_some() && injected == thread {
        panic!(
            "injected fault: {FAULT_PANIC_THREAD}={}",
            injected.unwrap_or_default()
        );
    }
}

/// The text of a panic payload (`panic!` gives a `&str` or a `String`).
fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supervisor() -> Arc<Supervisor> {
        Arc::new(Supervisor::new())
    }

    #[test]
    fn a_thread_that_returns_ok_is_no_failure() {
        let supervisor = supervisor();
        let shutdown = Arc::new(Shutdown::new());
        supervisor.stop_on_failure(shutdown.clone(), None);
        let handle = supervisor.spawn("fine", || Ok(())).unwrap();
        assert_eq!(handle.thread().name(), Some("fine"));
        handle.join().unwrap();
        assert_eq!(supervisor.failure(), None);
        assert!(!shutdown.is_triggered());
    }

    #[test]
    fn a_panic_is_reported_with_the_thread_name_and_triggers_shutdown() {
        let supervisor = supervisor();
        let shutdown = Arc::new(Shutdown::new());
        supervisor.stop_on_failure(shutdown.clone(), None);
        let handle = supervisor
            .spawn("block-processor", || panic!("boom {}", 42))
            .unwrap();
        handle.join().expect("the helper catches the panic");
        assert_eq!(
            supervisor.failure(),
            Some(ThreadFailure::Panicked {
                thread: "block-processor".into(),
                message: "boom 42".into()
            })
        );
        assert!(shutdown.is_triggered());
    }

    #[test]
    fn an_error_is_reported_with_its_causes() {
        let supervisor = supervisor();
        let shutdown = Arc::new(Shutdown::new());
        supervisor.stop_on_failure(shutdown.clone(), None);
        supervisor
            .spawn("metrics", || {
                Err(anyhow::anyhow!("disk gone").context("refreshing gauges"))
            })
            .unwrap()
            .join()
            .unwrap();
        let failure = supervisor.failure().unwrap();
        assert_eq!(failure.thread(), "metrics");
        assert_eq!(
            failure.to_string(),
            "thread metrics failed: refreshing gauges: disk gone"
        );
        assert!(shutdown.is_triggered());
    }

    #[test]
    fn a_failure_before_stop_on_failure_triggers_shutdown_when_it_is_called() {
        let supervisor = supervisor();
        supervisor
            .spawn("early", || panic!("too soon"))
            .unwrap()
            .join()
            .unwrap();
        let shutdown = Arc::new(Shutdown::new());
        supervisor.stop_on_failure(shutdown.clone(), None);
        assert!(shutdown.is_triggered());
    }

    #[test]
    fn the_first_failure_is_kept() {
        let supervisor = supervisor();
        for name in ["first", "second"] {
            supervisor
                .spawn(name, || anyhow::bail!("failed"))
                .unwrap()
                .join()
                .unwrap();
        }
        assert_eq!(supervisor.failure().unwrap().thread(), "first");
    }

    #[cfg(debug_assertions)]
    #[test]
    fn the_fault_injection_panics_only_the_named_thread_once_armed() {
        inject_fault(Some("metrics"), true, None);
        inject_fault(Some("metrics"), true, Some("block-processor"));
        inject_fault(Some("metrics"), false, Some("metrics"));
        inject_fault(None, true, Some(""));
        let panicked = catch_unwind(|| inject_fault(Some("metrics"), true, Some("metrics")));
        assert!(panicked.is_err());
    }
}
