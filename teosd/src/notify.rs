//! systemd readiness and watchdog (the sd_notify protocol), used when `NOTIFY_SOCKET` is set.
//!
//! - `READY=1` once the tower serves its API (after catching up with bitcoind);
//! - `STATUS=...` lines while waiting for bitcoind or catching up ("catching up: block X of Y");
//! - before `READY=1`, each of those startup lines comes with `EXTEND_TIMEOUT_USEC` ([`Notifier::starting`]):
//!   waiting for bitcoind (unreachable, warming up with -28, in initial block download) or a long
//!   catch-up may take hours, far beyond the unit's `TimeoutStartSec`, but a start that stops sending
//!   them (hung) still times out [`START_EXTENSION`] after the last one;
//! - `WATCHDOG=1` only while the block-processing pipeline is alive: the block processor beats a
//!   [`Heartbeat`] each loop iteration and while it waits for bitcoind; a watchdog thread pings systemd only
//!   if the last beat is recent, so a hung pipeline gets the service restarted (`WatchdogSec=`);
//! - `STOPPING=1` when teardown starts.
//!
//! Without `NOTIFY_SOCKET` every call is a no-op.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::shutdown::Shutdown;

/// How far each startup notice pushes systemd's start timeout (`EXTEND_TIMEOUT_USEC`, counted from
/// the notice): more than the longest gap between two notices while starting, one bitcoind call
/// (30 s, `daemon::RPC_TIMEOUT`) plus the wait before the next try (at most 30 s), or one block of a
/// catch-up.
pub const START_EXTENSION: Duration = Duration::from_secs(90);

/// How often a catch-up at startup sends its [`Notifier::starting`] notice (seconds between two).
pub const STARTING_NOTICE_EVERY: Duration = Duration::from_secs(10);

/// Sends sd_notify messages; errors are logged, never fatal.
#[derive(Clone, Copy, Debug, Default)]
pub struct Notifier;

impl Notifier {
    fn send(state: NotifyState<'_>) {
        if let Err(e) = sd_notify::notify(&[state]) {
            tracing::debug!("sd_notify failed: {e}");
        }
    }

    /// `READY=1`.
    pub fn ready() {
        Self::send(NotifyState::Ready);
    }

    /// `STATUS=<text>`: a one-line state shown by `systemctl status`.
    pub fn status(text: &str) {
        Self::send(NotifyState::Status(text));
    }

    /// `EXTEND_TIMEOUT_USEC=<`[`START_EXTENSION`]`>` and `STATUS=<text>` in one message: startup goes
    /// on (waiting for bitcoind, catching up), so systemd should not time it out yet. Only meaningful
    /// before [`Notifier::ready`] (systemd applies it to the start timeout).
    pub fn starting(text: &str) {
        let usec = u32::try_from(START_EXTENSION.as_micros()).unwrap_or(u32::MAX);
        if let Err(e) = sd_notify::notify(&[
            NotifyState::ExtendTimeoutUsec(usec),
            NotifyState::Status(text),
        ]) {
            tracing::debug!("sd_notify failed: {e}");
        }
    }

    /// `STOPPING=1`.
    pub fn stopping() {
        Self::send(NotifyState::Stopping);
    }
}

/// Proof of life of the block-processing pipeline: milliseconds since `start` of the last beat.
pub struct Heartbeat {
    start: Instant,
    last_ms: AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat::new()
    }
}

impl Heartbeat {
    pub fn new() -> Heartbeat {
        Heartbeat {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    /// Records that the pipeline is alive now.
    pub fn beat(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`), if any.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

/// Pings `WATCHDOG=1` every `interval / 2` while `heartbeat` is younger than `interval`, until
/// shutdown, on the `watchdog` thread ([`crate::thread::spawn`]). Returns `None` when systemd asked
/// for no watchdog.
///
/// Errors: the OS cannot start a thread.
pub fn spawn_watchdog(
    heartbeat: Arc<Heartbeat>,
    shutdown: Arc<Shutdown>,
) -> std::io::Result<Option<JoinHandle<()>>> {
    let Some(interval) = watchdog_interval() else {
        return Ok(None);
    };
    let period = (interval / 2).max(Duration::from_millis(50));
    crate::thread::spawn("watchdog", move || {
        while !shutdown.wait_timeout(period) {
            if heartbeat.age() < interval {
                Notifier::send(NotifyState::Watchdog);
            } else {
                tracing::error!(
                    "block processing has not made progress for {:?}; withholding the systemd watchdog ping",
                    heartbeat.age()
                );
            }
        }
        Ok(())
    })
    .map(Some)
}
