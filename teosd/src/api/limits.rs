//! Resource limits of the public HTTP API: what one client, or many, may take from the tower before
//! it holds them back. The body limits per endpoint are protocol facts and live in `http.rs`
//! (PROTOCOL.md "Endpoints"); everything here is **(ours)** and configurable (`contrib/teos.toml.example`,
//! "Public API limits"; RELIABILITY.md explains the choices).
//!
//! | limit | when exceeded |
//! |---|---|
//! | [`HttpLimits::max_connections`] | the next connection waits in the kernel's accept queue until one closes |
//! | [`HttpLimits::header_timeout`] | the connection is closed (headers too slow, or idle keep-alive) |
//! | [`HttpLimits::body_timeout`] | 408 with `{"error","error_code":6}`, connection closed |
//! | [`HttpLimits::register_rate`], [`HttpLimits::add_appointment_rate`] | the request is held until its turn comes (at most [`HttpLimits::hold`]); if it cannot come in time, `/add_appointment` gets 401 / code 7 "retry later" with `Retry-After` and `/register` gets 429 with `{"error","error_code":32}` and `Retry-After` (seconds) |
//!
//! Why a rate-limited `/add_appointment` is held or dropped rather than refused: the reference client
//! (Core Lightning's watchtower-client plugin) files an appointment refused with any error code but 7
//! as invalid and never sends it again, which would leave a channel state unprotected. A request held
//! a little is served; a dropped connection is an error the client does not take as a verdict on the
//! appointment (README, "What a refusal means for a client").
//!
//! The rate limits are keyed by the peer IP address of the TCP connection (never by a header a client
//! can forge), [`ClientKey::Ip`]. Behind a reverse proxy every client shares the proxy's address, so
//! the operator raises or disables them there. Tor is the same case (every onion client arrives from
//! 127.0.0.1), so the onion service (`tor_support`) gets a listener of its own whose connections are
//! each limited on their own, [`ClientKey::Connection`]: a Tor client is held to the rate on each
//! connection it opens, and all of them to `api_max_connections` connections (`crate::tor`). The engine is the `governor` crate's keyed
//! GCRA limiter (the one `tower_governor` wraps; we call it directly so that a request can wait for
//! its turn, so that a refusal carries the protocol's JSON error body and so that only the two costly
//! endpoints are limited).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;

/// Whose requests one rate-limit bucket counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// Every connection from this peer IP address (the public listener).
    Ip(IpAddr),
    /// One connection, by a number unique in the process (the onion service's listener).
    Connection(u64),
}

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> ClientKey {
        ClientKey::Ip(ip)
    }
}

/// A per-IP request rate: `burst` requests at once, refilled at `per_minute` requests per minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained rate, requests per minute per IP address.
    pub per_minute: NonZeroU32,
    /// Requests an idle IP address may send back to back before the rate applies.
    pub burst: NonZeroU32,
}

impl RateLimit {
    /// `per_minute` requests per minute with bursts of `burst`; `None` when `per_minute` is 0 (no
    /// limit). A `burst` of 0 counts as 1.
    pub fn per_minute(per_minute: u32, burst: u32) -> Option<RateLimit> {
        Some(RateLimit {
            per_minute: NonZeroU32::new(per_minute)?,
            burst: NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN),
        })
    }

    fn quota(self) -> Quota {
        Quota::per_minute(self.per_minute).allow_burst(self.burst)
    }

    /// Time between two requests at the sustained rate (60 s / `per_minute`).
    fn interval(self) -> Duration {
        Duration::from_secs(60) / self.per_minute.get()
    }
}

/// The default of [`HttpLimits::hold`]: 10 s, as long as a client is given to send a body
/// (`api_body_timeout`'s default).
pub const DEFAULT_HOLD: Duration = Duration::from_secs(10);

/// The limits the public API server enforces (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most connections served at once (≥ 1; 0 is treated as 1).
    pub max_connections: usize,
    /// Time a client gets to send a request's headers, also the longest a keep-alive connection may
    /// sit idle between two requests.
    pub header_timeout: Duration,
    /// Time a client gets to send a request's body once its headers are in.
    pub body_timeout: Duration,
    /// Rate of `POST /register` per IP address; `None` = unlimited.
    pub register_rate: Option<RateLimit>,
    /// Rate of `POST /add_appointment` per IP address; `None` = unlimited.
    pub add_appointment_rate: Option<RateLimit>,
    /// Longest a request is held back before the server gives up on it: waiting for its turn under
    /// its per-IP rate, or for a free slot among the tower calls in progress (at most
    /// `max_connections` run at once). Not a `teos.toml` key: [`DEFAULT_HOLD`] unless set here.
    pub hold: Duration,
}

impl Default for HttpLimits {
    /// The defaults of `teos.toml` (the key table, `config/keys.rs`).
    fn default() -> HttpLimits {
        HttpLimits::from_config(&Config::default())
    }
}

impl HttpLimits {
    /// The limits set by `config` (`api_max_connections`, `api_header_timeout`, `api_body_timeout`,
    /// `register_rate_*`, `add_appointment_rate_*`; seconds for the timeouts).
    pub fn from_config(config: &Config) -> HttpLimits {
        HttpLimits {
            max_connections: config.api_max_connections as usize,
            header_timeout: Duration::from_secs(config.api_header_timeout.into()),
            body_timeout: Duration::from_secs(config.api_body_timeout.into()),
            register_rate: RateLimit::per_minute(
                config.register_rate_limit,
                config.register_rate_burst,
            ),
            add_appointment_rate: RateLimit::per_minute(
                config.add_appointment_rate_limit,
                config.add_appointment_rate_burst,
            ),
            hold: DEFAULT_HOLD,
        }
    }
}

/// The cap on open connections: a connection is served only while it holds a permit.
#[derive(Clone)]
pub(crate) struct ConnectionSlots {
    semaphore: Arc<Semaphore>,
    size: u32,
}

impl ConnectionSlots {
    pub(crate) fn new(max: usize) -> ConnectionSlots {
        let size = u32::try_from(max.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
        ConnectionSlots {
            semaphore: Arc::new(Semaphore::new(size as usize)),
            size,
        }
    }

    /// Waits for a free slot; the connection keeps the permit until it closes.
    pub(crate) async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.semaphore.clone().acquire_owned().await.ok()
    }

    /// Waits until every connection has closed (all permits are back).
    pub(crate) async fn wait_all_closed(&self) {
        // The semaphore is never closed, so this only waits; the permits are dropped at once.
        let _all = self.semaphore.acquire_many(self.size).await;
    }
}

/// The per-IP limiters of the two rate-limited endpoints, and the requests each address has waiting
/// for its turn.
pub(crate) struct RateLimiters {
    register: Option<Limiter>,
    add_appointment: Option<Limiter>,
    clock: DefaultClock,
}

/// One endpoint's limiter.
struct Limiter {
    /// Its rate (for the time between two turns).
    rate: RateLimit,
    /// The GCRA state per client.
    cells: DefaultKeyedRateLimiter<ClientKey>,
    /// Requests per IP address waiting for a turn right now (an address is removed at 0). Only held
    /// for a map update, never across an await or together with another lock.
    waiting: Mutex<HashMap<ClientKey, u32>>,
}

/// How often the limiters forget IP addresses whose bucket is full again (bounds their memory).
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(60);

impl RateLimiters {
    pub(crate) fn new(limits: &HttpLimits) -> RateLimiters {
        let keyed = |rate: Option<RateLimit>| {
            rate.map(|rate| Limiter {
                rate,
                cells: DefaultKeyedRateLimiter::keyed(rate.quota()),
                waiting: Mutex::new(HashMap::new()),
            })
        };
        RateLimiters {
            register: keyed(limits.register_rate),
            add_appointment: keyed(limits.add_appointment_rate),
            clock: DefaultClock::default(),
        }
    }

    fn limiter(&self, path: &str) -> Option<&Limiter> {
        match path {
            "/register" => self.register.as_ref(),
            "/add_appointment" => self.add_appointment.as_ref(),
            _ => None,
        }
    }

    /// Counts a request to `path` from `ip` (a [`ClientKey`]) now. `Err(wait)`: over the rate, its
    /// turn is `wait` away. Paths other than `/register` and `/add_appointment` are never limited.
    pub(crate) fn check(&self, path: &str, ip: ClientKey) -> Result<(), Duration> {
        match self.limiter(path) {
            Some(limiter) => limiter
                .cells
                .check_key(&ip)
                .map_err(|not_until| not_until.wait_time_from(self.clock.now())),
            None => Ok(()),
        }
    }

    /// Waits for the turn of a request to `path` from `ip`, at most `hold`. `Err(wait)` (the time to
    /// the next turn) when its turn cannot come within `hold`: then the request is refused at once,
    /// without waiting, if the requests `ip` already has waiting fill `hold` at the sustained rate
    /// (the n-th waiter expects n turns), else after `hold`. So an address holds at most about
    /// `hold × rate` requests, and only as long as they can still be served.
    pub(crate) async fn wait_turn(
        &self,
        path: &str,
        ip: ClientKey,
        hold: Duration,
    ) -> Result<(), Duration> {
        let Some(limiter) = self.limiter(path) else {
            return Ok(());
        };
        let mut wait = match self.check(path, ip) {
            Ok(()) => return Ok(()),
            Err(wait) => wait,
        };
        let Some(_waiter) = Waiter::join(limiter, ip, hold) else {
            return Err(wait);
        };
        let deadline = tokio::time::Instant::now() + hold;
        loop {
            if tokio::time::Instant::now() + wait > deadline {
                return Err(wait);
            }
            tokio::time::sleep(wait).await;
            // Several waiters of one address may wake for the same turn: one gets it, the others
            // learn the time of the next one.
            wait = match self.check(path, ip) {
                Ok(()) => return Ok(()),
                Err(wait) => wait,
            };
        }
    }

    /// Drops the state of addresses that are back to a full bucket.
    pub(crate) fn prune(&self) {
        for limiter in [&self.register, &self.add_appointment]
            .into_iter()
            .flatten()
        {
            limiter.cells.retain_recent();
            limiter.cells.shrink_to_fit();
        }
    }

    /// Requests `ip` has waiting for a turn on `path` (for tests).
    #[cfg(test)]
    fn waiting(&self, path: &str, ip: ClientKey) -> u32 {
        self.limiter(path).map_or(0, |l| {
            *l.waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&ip)
                .unwrap_or(&0)
        })
    }
}

/// One request waiting for its turn: counted in its limiter's `waiting` map until dropped (also
/// when the client goes away and the request's future is dropped).
struct Waiter<'a> {
    limiter: &'a Limiter,
    ip: ClientKey,
}

impl<'a> Waiter<'a> {
    /// Joins the queue of `ip`, unless the requests already waiting there fill `hold` (`None`).
    fn join(limiter: &'a Limiter, ip: ClientKey, hold: Duration) -> Option<Waiter<'a>> {
        let mut waiting = lock(&limiter.waiting);
        let ahead = waiting.get(&ip).copied().unwrap_or(0);
        if limiter
            .rate
            .interval()
            .saturating_mul(ahead.saturating_add(1))
            > hold
        {
            return None;
        }
        waiting.insert(ip, ahead + 1);
        Some(Waiter { limiter, ip })
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut waiting = lock(&self.limiter.waiting);
        if let Some(count) = waiting.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                waiting.remove(&self.ip);
            }
        }
    }
}

/// Locks a waiting map; nothing that can panic runs under it, but a poisoned map is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;

    fn ip(text: &str) -> ClientKey {
        ClientKey::Ip(text.parse().unwrap())
    }

    #[test]
    fn each_connection_key_gets_its_own_bucket_apart_from_the_ip_of_the_same_peer() {
        let limits = HttpLimits {
            register_rate: RateLimit::per_minute(1, 1),
            ..HttpLimits::default()
        };
        let limiters = RateLimiters::new(&limits);
        let loopback = ip("127.0.0.1");
        assert!(limiters.check("/register", loopback).is_ok());
        assert!(limiters.check("/register", loopback).is_err());
        for n in 0..3 {
            let one = ClientKey::Connection(n);
            assert!(limiters.check("/register", one).is_ok(), "connection {n}");
            assert!(limiters.check("/register", one).is_err(), "connection {n}");
        }
    }

    #[test]
    fn a_zero_rate_means_no_limit_and_a_zero_burst_counts_as_one() {
        assert_eq!(RateLimit::per_minute(0, 5), None);
        let rate = RateLimit::per_minute(60, 0).unwrap();
        assert_eq!(rate.burst.get(), 1);
    }

    #[test]
    fn each_ip_gets_its_own_burst_and_other_paths_are_never_limited() {
        let limits = HttpLimits {
            register_rate: RateLimit::per_minute(1, 2),
            add_appointment_rate: None,
            ..HttpLimits::default()
        };
        let limiters = RateLimiters::new(&limits);
        let a = ip("10.0.0.1");
        let b = ip("10.0.0.2");
        assert!(limiters.check("/register", a).is_ok());
        assert!(limiters.check("/register", a).is_ok());
        let wait = limiters.check("/register", a).unwrap_err();
        assert!(
            wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        assert!(
            limiters.check("/register", b).is_ok(),
            "another address has its own bucket"
        );
        for _ in 0..100 {
            assert!(limiters.check("/add_appointment", a).is_ok());
            assert!(limiters.check("/get_appointment", a).is_ok());
        }
    }

    #[test]
    fn pruning_keeps_addresses_whose_bucket_is_not_full() {
        let limits = HttpLimits {
            register_rate: RateLimit::per_minute(1, 1),
            ..HttpLimits::default()
        };
        let limiters = RateLimiters::new(&limits);
        let a = ip("10.0.0.1");
        assert!(limiters.check("/register", a).is_ok());
        limiters.prune();
        assert!(
            limiters.check("/register", a).is_err(),
            "state kept by prune"
        );
    }

    /// Polls `future` once: `Some(output)` if it completed without waiting for anything.
    fn poll_once<F: std::future::Future>(future: F) -> Option<F::Output> {
        let mut future = std::pin::pin!(future);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut context) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        }
    }

    #[tokio::test]
    async fn a_request_over_the_rate_is_held_until_its_turn_then_served() {
        // 6000 per minute: a turn every 10 ms; a burst of 1.
        let limits = HttpLimits {
            add_appointment_rate: RateLimit::per_minute(6000, 1),
            ..HttpLimits::default()
        };
        let limiters = RateLimiters::new(&limits);
        let a = ip("10.0.0.1");
        let hold = Duration::from_secs(10);
        assert_eq!(
            limiters.wait_turn("/add_appointment", a, hold).await,
            Ok(())
        );
        for _ in 0..5 {
            assert!(
                poll_once(limiters.wait_turn("/add_appointment", a, hold)).is_none(),
                "over the rate: held, not answered at once"
            );
            assert_eq!(
                limiters.wait_turn("/add_appointment", a, hold).await,
                Ok(())
            );
        }
        assert_eq!(
            limiters.waiting("/add_appointment", a),
            0,
            "no waiter left behind"
        );
    }

    #[tokio::test]
    async fn a_turn_further_than_the_hold_is_refused_at_once() {
        // One per minute: the next turn is a minute away, beyond a 10 s hold.
        let limits = HttpLimits {
            add_appointment_rate: RateLimit::per_minute(1, 1),
            ..HttpLimits::default()
        };
        let limiters = RateLimiters::new(&limits);
        let a = ip("10.0.0.1");
        let hold = Duration::from_secs(10);
        assert_eq!(
            limiters.wait_turn("/add_appointment", a, hold).await,
            Ok(())
        );
        let refused = poll_once(limiters.wait_turn("/add_appointment", a, hold))
            .expect("refused without waiting");
        let wait = refused.unwrap_err();
        assert!(wait > hold && wait <= Duration::from_secs(60), "{wait:?}");
        assert_eq!(limiters.waiting("/add_appointment", a), 0);
    }

    #[tokio::test]
    async fn an_address_holds_no_more_requests_than_its_hold_can_serve() {
        // A turn per second, hold 2.5 s: two requests may wait, the third is refused at once.
        let limits = HttpLimits {
            register_rate: RateLimit::per_minute(60, 1),
            ..HttpLimits::default()
        };
        let limiters = Arc::new(RateLimiters::new(&limits));
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let hold = Duration::from_millis(2500);
        assert!(limiters.check("/register", a).is_ok());
        let mut first = Box::pin(limiters.wait_turn("/register", a, hold));
        let mut second = Box::pin(limiters.wait_turn("/register", a, hold));
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(first.as_mut().poll(&mut context).is_pending());
        assert!(second.as_mut().poll(&mut context).is_pending());
        assert_eq!(limiters.waiting("/register", a), 2);
        let third = poll_once(limiters.wait_turn("/register", a, hold)).expect("answered at once");
        assert!(
            third.is_err(),
            "a third waiter could not be served within the hold"
        );
        assert_eq!(
            poll_once(limiters.wait_turn("/register", b, hold)),
            Some(Ok(())),
            "another address has its own bucket"
        );
        drop((first, second));
        assert_eq!(
            limiters.waiting("/register", a),
            0,
            "dropped waiters leave the queue"
        );
    }
}
