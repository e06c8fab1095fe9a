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
//! | [`Faults::drop_zmq_topic`] | the next N messages of one topic (e.g. `sequence`) are not sent; other topics flow |
//! | [`Faults::fail_method`] | calls of one JSON-RPC method answer a given JSON-RPC error (HTTP 500, as Core's errors) |
//! | [`Faults::stall_method`] | calls of one JSON-RPC method are held until the stall ends, then answered |
//!
//! The per-method faults act after the warm-up check and before the method runs, so a failed call
//! changes nothing in the node. [`Faults::calls`] and [`Faults::held_calls`] let a test see that a
//! client made a call, or is waiting in a stalled one, without timing anything.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::zmq_pub::Topic;

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
    /// Messages still to drop per topic name ([`Faults::drop_zmq_topic`]); topics at 0 left out.
    pub drop_zmq_topics: BTreeMap<String, u64>,
    /// Per-method faults ([`Faults::fail_method`], [`Faults::stall_method`]) and calls held now,
    /// by method name; methods without any are left out.
    pub methods: BTreeMap<String, MethodFaultStatus>,
}

/// The faults of one JSON-RPC method, in a [`FaultStatus`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MethodFaultStatus {
    /// The error calls answer ([`Faults::fail_method`]), if any.
    pub fail: Option<MethodFailure>,
    /// Milliseconds left of [`Faults::stall_method`] (0 = not stalled).
    pub stall_ms: u64,
    /// Calls held by the stall right now.
    pub held: u32,
}

/// The JSON-RPC error a failing method answers ([`Faults::fail_method`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MethodFailure {
    /// JSON-RPC error code, e.g. -5 (Core's `RPC_INVALID_ADDRESS_OR_KEY`).
    pub code: i32,
    /// The error message, e.g. "Block not found".
    pub message: String,
    /// Calls still to fail; `None` = every call until cleared.
    pub times: Option<u32>,
}

#[derive(Debug, Default)]
struct State {
    stall_until: Option<Instant>,
    warmup_until: Option<Instant>,
    zmq_drop_next: u64,
    zmq_drop_until: Option<Instant>,
    /// Topic → messages of that topic still to drop.
    zmq_drop_topic: BTreeMap<Topic, u64>,
    /// Method name → the error its calls answer.
    failures: HashMap<String, MethodFailure>,
    /// Method name → when its stall ends.
    method_stalls: HashMap<String, Instant>,
    /// Method name → calls held by its stall now (kept by [`Faults::clear`]).
    held: HashMap<String, u32>,
    /// Method name → calls received (kept by [`Faults::clear`]).
    calls: HashMap<String, u64>,
}

/// The fault switchboard (thread-safe; shared behind an `Arc`).
#[derive(Debug)]
pub struct Faults {
    state: Mutex<State>,
    /// Notified whenever a method stall is set or lifted, so held calls re-check it.
    stall_changed: Condvar,
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
            stall_changed: Condvar::new(),
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

    /// Drops the next `n` messages of ZMQ `topic` only (0 lifts it), as a lossy subscription
    /// would lose them: their per-topic sequence numbers are still used, so a subscriber that
    /// checks them sees the gap; other topics are sent as usual. E.g.
    /// `drop_zmq_topic(Topic::Sequence, 2)` hides a transaction's `A` from a mempool watcher
    /// while `hashtx`/`rawtx` still flow.
    pub fn drop_zmq_topic(&self, topic: Topic, n: u64) {
        let mut state = self.state();
        if n == 0 {
            state.zmq_drop_topic.remove(&topic);
        } else {
            state.zmq_drop_topic.insert(topic, n);
        }
    }

    /// Makes the next `times` calls of JSON-RPC `method` (`None`: every call until
    /// [`Faults::clear`] or [`Faults::clear_method`]) answer the error `code`/`message` instead
    /// of running. In JSON-RPC 1.0 the reply is HTTP 500 with
    /// `{"result":null,"error":{"code":..,"message":..},"id":..}`, as Core answers every error
    /// but -32600 (400) and -32601 (404). Use Core's own pairs to stay faithful, e.g. -5 "Block not
    /// found", -1 "Block not available (pruned data)" (`getblock` of a pruned block), -5 "No such
    /// mempool or blockchain transaction. Use gettransaction for wallet transactions.". Replaces an
    /// earlier failure of the same method.
    pub fn fail_method(&self, method: &str, code: i32, message: &str, times: Option<u32>) {
        let failure = MethodFailure {
            code,
            message: message.to_owned(),
            times,
        };
        if times == Some(0) {
            self.state().failures.remove(method);
            return;
        }
        self.state().failures.insert(method.to_owned(), failure);
    }

    /// Holds every call of JSON-RPC `method` arriving in the next `duration` (and those already
    /// held) until the stall ends or is lifted ([`Faults::clear`], [`Faults::clear_method`]), then
    /// answers it normally. Other methods are not held. A client waiting in such a call shows in
    /// [`Faults::held_calls`].
    pub fn stall_method(&self, method: &str, duration: Duration) {
        self.state()
            .method_stalls
            .insert(method.to_owned(), Instant::now() + duration);
        self.stall_changed.notify_all();
    }

    /// Lifts the faults of one method ([`Faults::fail_method`], [`Faults::stall_method`]); held
    /// calls are answered now.
    pub fn clear_method(&self, method: &str) {
        let mut state = self.state();
        state.failures.remove(method);
        state.method_stalls.remove(method);
        drop(state);
        self.stall_changed.notify_all();
    }

    /// Calls of `method` held by [`Faults::stall_method`] right now.
    pub fn held_calls(&self, method: &str) -> u32 {
        self.state().held.get(method).copied().unwrap_or(0)
    }

    /// Calls of JSON-RPC `method` received (past authentication, each element of a batch
    /// counted) since this switchboard was made, across restarts.
    pub fn calls(&self, method: &str) -> u64 {
        self.state().calls.get(method).copied().unwrap_or(0)
    }

    /// Lifts every fault now (the call counters stay).
    pub fn clear(&self) {
        let mut state = self.state();
        let held = std::mem::take(&mut state.held);
        let calls = std::mem::take(&mut state.calls);
        *state = State {
            held,
            calls,
            ..State::default()
        };
        drop(state);
        self.stall_changed.notify_all();
        self.refuse.send_replace(None);
    }

    /// What is active and for how long.
    pub fn status(&self) -> FaultStatus {
        let now = Instant::now();
        let remaining = |until: Option<Instant>| {
            until.map_or(0, |u| u.saturating_duration_since(now).as_millis() as u64)
        };
        let state = self.state();
        let mut methods: BTreeMap<String, MethodFaultStatus> = BTreeMap::new();
        for (method, failure) in &state.failures {
            methods.entry(method.clone()).or_default().fail = Some(failure.clone());
        }
        for (method, until) in &state.method_stalls {
            let ms = remaining(Some(*until));
            if ms > 0 {
                methods.entry(method.clone()).or_default().stall_ms = ms;
            }
        }
        for (method, held) in &state.held {
            if *held > 0 {
                methods.entry(method.clone()).or_default().held = *held;
            }
        }
        FaultStatus {
            stall_rpc_ms: remaining(state.stall_until),
            refuse_rpc_ms: remaining(*self.refuse.borrow()),
            warmup_ms: remaining(state.warmup_until),
            drop_zmq_next: state.zmq_drop_next,
            drop_zmq_ms: remaining(state.zmq_drop_until),
            drop_zmq_topics: state
                .zmq_drop_topic
                .iter()
                .map(|(t, n)| (t.name().to_owned(), *n))
                .collect(),
            methods,
        }
    }

    /// Called once per JSON-RPC call of `method`, on the thread that will run it: counts the
    /// call, holds it while the method is stalled, then returns the error it must answer, if the
    /// method is failing (consuming one of its `times`). Blocks; never call it on an async worker.
    pub(crate) fn before_method(&self, method: &str) -> Result<(), MethodFailure> {
        let mut state = self.state();
        *state.calls.entry(method.to_owned()).or_default() += 1;
        let mut holding = false;
        loop {
            let now = Instant::now();
            let Some(until) = state
                .method_stalls
                .get(method)
                .copied()
                .filter(|u| *u > now)
            else {
                break;
            };
            if !holding {
                holding = true;
                *state.held.entry(method.to_owned()).or_default() += 1;
            }
            state = self
                .stall_changed
                .wait_timeout(state, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if holding && let Some(held) = state.held.get_mut(method) {
            *held = held.saturating_sub(1);
        }
        let Some(failure) = state.failures.get_mut(method) else {
            return Ok(());
        };
        let answer = failure.clone();
        match &mut failure.times {
            None => {}
            Some(1) => {
                state.failures.remove(method);
            }
            Some(n) => *n -= 1,
        }
        Err(answer)
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

    /// Called once per ZMQ message of `topic`: `true` if this one must be dropped (consumes one
    /// of [`Faults::drop_zmq_topic`]'s count for the topic, else one of `Next(n)`).
    pub(crate) fn take_zmq_drop(&self, topic: Topic) -> bool {
        let mut state = self.state();
        if let Some(left) = state.zmq_drop_topic.get_mut(&topic) {
            *left -= 1;
            if *left == 0 {
                state.zmq_drop_topic.remove(&topic);
            }
            return true;
        }
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
        assert!(faults.take_zmq_drop(Topic::HashTx));
        assert!(faults.take_zmq_drop(Topic::Sequence));
        assert!(!faults.take_zmq_drop(Topic::HashTx));
    }

    #[test]
    fn topic_drop_counts_down_for_that_topic_only() {
        let faults = Faults::new();
        faults.drop_zmq_topic(Topic::Sequence, 2);
        assert!(!faults.take_zmq_drop(Topic::HashTx));
        assert_eq!(faults.status().drop_zmq_topics.get("sequence"), Some(&2));
        assert!(faults.take_zmq_drop(Topic::Sequence));
        assert!(!faults.take_zmq_drop(Topic::RawTx));
        assert!(faults.take_zmq_drop(Topic::Sequence));
        assert!(!faults.take_zmq_drop(Topic::Sequence));
        assert!(faults.status().drop_zmq_topics.is_empty());
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
        assert!(!faults.take_zmq_drop(Topic::HashBlock));
    }

    #[test]
    fn method_failure_counts_down_and_only_hits_its_method() {
        let faults = Faults::new();
        faults.fail_method("getblock", -5, "Block not found", Some(2));
        assert!(faults.before_method("getblockhash").is_ok());
        let failure = faults.before_method("getblock").unwrap_err();
        assert_eq!(
            (failure.code, failure.message.as_str()),
            (-5, "Block not found")
        );
        assert_eq!(
            faults.status().methods["getblock"]
                .fail
                .as_ref()
                .unwrap()
                .times,
            Some(1)
        );
        assert!(faults.before_method("getblock").is_err());
        assert!(faults.before_method("getblock").is_ok());
        assert_eq!(faults.calls("getblock"), 3);
        assert_eq!(faults.calls("getblockhash"), 1);
        assert!(faults.status().methods.is_empty());
    }

    #[test]
    fn method_failure_without_a_count_lasts_until_cleared_and_counters_survive() {
        let faults = Faults::new();
        faults.fail_method(
            "sendrawtransaction",
            -26,
            "mempool min fee not met, 1 < 2",
            None,
        );
        for _ in 0..5 {
            assert!(faults.before_method("sendrawtransaction").is_err());
        }
        faults.clear();
        assert!(faults.before_method("sendrawtransaction").is_ok());
        assert_eq!(faults.calls("sendrawtransaction"), 6);
    }

    #[test]
    fn method_stall_holds_until_lifted_and_is_visible_meanwhile() {
        let faults = std::sync::Arc::new(Faults::new());
        faults.stall_method("sendrawtransaction", Duration::from_secs(600));
        let held = faults.clone();
        let call = std::thread::spawn(move || held.before_method("sendrawtransaction"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while faults.held_calls("sendrawtransaction") == 0 {
            assert!(Instant::now() < deadline, "the call was never held");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(faults.before_method("getblockcount").is_ok());
        assert_eq!(faults.status().methods["sendrawtransaction"].held, 1);
        faults.clear_method("sendrawtransaction");
        assert!(call.join().unwrap().is_ok());
        assert_eq!(faults.held_calls("sendrawtransaction"), 0);
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
