//! Injected failures: the ways a real bitcoind misbehaves that a tower must survive.
//!
//! One [`Faults`] value is shared by the RPC server, the ZMQ publisher and the control endpoint
//! and survives restarts of the simulator. Every fault is bounded in time (or, for ZMQ drops, in
//! count) and can be lifted early with [`Faults::clear`].
//!
//! | fault | effect, as a client sees it |
//! |---|---|
//! | [`Faults::stall_rpc`] | requests are accepted but held until the stall ends, then answered |
//! | [`Faults::refuse_rpc`] | the RPC listener and open connections are closed: connections are refused |
//! | [`Faults::warmup`] | every call answers -28 "Loading block index…" (Core's `RPC_IN_WARMUP`) |
//! | [`Faults::drop_zmq`] | ZMQ messages are not sent (their sequence numbers are still used, so gaps show) |

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

/// The -28 message Core gives in its first startup phase.
pub const WARMUP_MESSAGE: &str = "Loading block index…";

/// How many ZMQ messages to drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZmqDrop {
    /// The next N messages (each a 3-frame message of any topic).
    Next(u64),
    /// Every message published during this long, from now.
    For(Duration),
}

/// A snapshot of the active faults (remaining milliseconds; 0 = inactive), for the control endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FaultStatus {
    /// Milliseconds left of [`Faults::stall_rpc`].
    pub stall_rpc_ms: u64,
    /// Milliseconds left of [`Faults::refuse_rpc`].
    pub refuse_rpc_ms: u64,
    /// Milliseconds left of [`Faults::warmup`] (not the configured startup warm-up).
    pub warmup_ms: u64,
    /// ZMQ messages still to drop ([`ZmqDrop::Next`]).
    pub drop_zmq_next: u64,
    /// Milliseconds left of [`ZmqDrop::For`].
    pub drop_zmq_ms: u64,
}

#[derive(Debug, Default)]
struct State {
    stall_until: Option<Instant>,
    warmup_until: Option<Instant>,
    zmq_drop_next: u64,
    zmq_drop_until: Option<Instant>,
}

/// The fault switchboard (thread-safe; shared behind an `Arc`).
#[derive(Debug)]
pub struct Faults {
    state: Mutex<State>,
    /// When the RPC listener may accept again; `None` = not refusing. A watch channel so the
    /// server closes its listener the moment a refusal starts.
    refuse: watch::Sender<Option<Instant>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::new()
    }
}

impl Faults {
    /// No fault active.
    pub fn new() -> Faults {
        Faults {
            state: Mutex::new(State::default()),
            refuse: watch::channel(None).0,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The guarded data is plain timestamps; a panic elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds every RPC request that arrives in the next `duration`, then answers it.
    pub fn stall_rpc(&self, duration: Duration) {
        self.state().stall_until = Some(Instant::now() + duration);
    }

    /// Closes the RPC listener and open connections for `duration` (connections are refused),
    /// then listens again on the same port.
    pub fn refuse_rpc(&self, duration: Duration) {
        self.refuse.send_replace(Some(Instant::now() + duration));
    }

    /// Answers every RPC call with -28 [`WARMUP_MESSAGE`] for `duration`.
    pub fn warmup(&self, duration: Duration) {
        self.state().warmup_until = Some(Instant::now() + duration);
    }

    /// Drops ZMQ messages (see [`ZmqDrop`]).
    pub fn drop_zmq(&self, drop: ZmqDrop) {
        let mut state = self.state();
        match drop {
            ZmqDrop::Next(n) => state.zmq_drop_next = n,
            ZmqDrop::For(duration) => state.zmq_drop_until = Some(Instant::now() + duration),
        }
    }

    /// Lifts every fault now.
    pub fn clear(&self) {
        *self.state() = State::default();
        self.refuse.send_replace(None);
    }

    /// What is active and for how long.
    pub fn status(&self) -> FaultStatus {
        let now = Instant::now();
        let remaining = |until: Option<Instant>| {
            until.map_or(0, |u| u.saturating_duration_since(now).as_millis() as u64)
        };
        let state = self.state();
        FaultStatus {
            stall_rpc_ms: remaining(state.stall_until),
            refuse_rpc_ms: remaining(*self.refuse.borrow()),
            warmup_ms: remaining(state.warmup_until),
            drop_zmq_next: state.zmq_drop_next,
            drop_zmq_ms: remaining(state.zmq_drop_until),
        }
    }

    /// When a request arriving now may be answered, if a stall is active.
    pub(crate) fn stalled_until(&self) -> Option<Instant> {
        self.state().stall_until.filter(|u| *u > Instant::now())
    }

    /// Whether calls must answer -28 now.
    pub(crate) fn in_warmup(&self) -> bool {
        self.state()
            .warmup_until
            .is_some_and(|u| u > Instant::now())
    }

    /// Called once per ZMQ message: `true` if this one must be dropped (consumes one of `Next(n)`).
    pub(crate) fn take_zmq_drop(&self) -> bool {
        let mut state = self.state();
        if state.zmq_drop_next > 0 {
            state.zmq_drop_next -= 1;
            return true;
        }
        state.zmq_drop_until.is_some_and(|u| u > Instant::now())
    }

    /// A receiver that changes whenever a refusal starts or is lifted.
    pub(crate) fn watch_refuse(&self) -> watch::Receiver<Option<Instant>> {
        self.refuse.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_next_counts_down_then_stops() {
        let faults = Faults::new();
        faults.drop_zmq(ZmqDrop::Next(2));
        assert!(faults.take_zmq_drop());
        assert!(faults.take_zmq_drop());
        assert!(!faults.take_zmq_drop());
    }

    #[test]
    fn clear_lifts_everything() {
        let faults = Faults::new();
        faults.stall_rpc(Duration::from_secs(60));
        faults.warmup(Duration::from_secs(60));
        faults.refuse_rpc(Duration::from_secs(60));
        faults.drop_zmq(ZmqDrop::For(Duration::from_secs(60)));
        assert!(faults.stalled_until().is_some());
        assert!(faults.in_warmup());
        assert!(faults.status().refuse_rpc_ms > 0);
        faults.clear();
        assert_eq!(faults.status(), FaultStatus::default());
        assert!(!faults.take_zmq_drop());
    }

    #[test]
    fn elapsed_faults_are_inactive() {
        let faults = Faults::new();
        faults.stall_rpc(Duration::ZERO);
        faults.warmup(Duration::ZERO);
        assert!(faults.stalled_until().is_none());
        assert!(!faults.in_warmup());
    }
}
