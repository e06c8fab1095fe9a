//! The one deadline loop of the kit: poll a condition until it holds or a deadline passes.
//!
//! Nothing in the kit (or in the tests, bench and demo built on it) sleeps to synchronize; every
//! wait names what it waits for and gives up after a bounded time.

use std::time::{Duration, Instant};

use crate::KitError;

/// Default deadline for anything the tower should do "at once" (answer a breach, follow a block).
/// Generous because several test binaries share a small machine.
pub const SOON: Duration = Duration::from_secs(30);

/// How often a condition is polled.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Polls `poll` every 10 ms until it returns `Ok(Some(value))` (then returns the value), returns an
/// error (then returns that error at once), or `timeout` passes.
///
/// Errors: [`KitError::Timeout`] naming `what`; whatever `poll` returned.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut poll: impl FnMut() -> Result<Option<T>, KitError>,
) -> Result<T, KitError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = poll()? {
            return Ok(value);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(KitError::Timeout {
                what: what.to_owned(),
                after: timeout,
            });
        }
        std::thread::sleep(left.min(POLL_EVERY));
    }
}

/// [`wait_for`] a boolean condition.
///
/// Errors: [`KitError::Timeout`] naming `what`.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> bool,
) -> Result<(), KitError> {
    wait_for(what, timeout, || Ok(condition().then_some(())))
}

/// A free TCP port on 127.0.0.1: bound, then released for someone else to take.
///
/// Only for the few places where a fixed port is unavoidable (a config file that refuses port 0,
/// a port known to have no listener); anything the kit starts itself listens on port 0 and reports
/// the port it got.
///
/// Errors: [`KitError::Io`] if no port can be bound.
pub fn free_port() -> Result<u16, KitError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| KitError::io("finding a free port", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_that_holds_returns_its_value() {
        let mut calls = 0;
        let value = wait_for("the third call", SOON, || {
            calls += 1;
            Ok((calls == 3).then_some(calls))
        })
        .unwrap();
        assert_eq!(value, 3);
    }

    #[test]
    fn a_condition_that_never_holds_times_out_naming_it() {
        let err = wait_until("never", Duration::from_millis(30), || false).unwrap_err();
        assert!(
            matches!(&err, KitError::Timeout { what, .. } if what == "never"),
            "{err}"
        );
    }

    #[test]
    fn an_error_ends_the_wait_at_once() {
        let err = wait_for::<()>("an error", SOON, || Err(KitError::NotRunning)).unwrap_err();
        assert!(matches!(err, KitError::NotRunning));
    }
}
