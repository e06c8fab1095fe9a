//! Resource limits of the public HTTP API: what one client, or many, may take from the tower before
//! it says no. The body limits per endpoint are protocol facts and live in `http.rs`
//! (PROTOCOL.md "Endpoints"); everything here is **(ours)** and configurable (`contrib/teos.toml.example`,
//! "Public API limits"; RELIABILITY.md explains the choices).
//!
//! | limit | when exceeded |
//! |---|---|
//! | [`HttpLimits::max_connections`] | the next connection waits in the kernel's accept queue until one closes |
//! | [`HttpLimits::header_timeout`] | the connection is closed (headers too slow, or idle keep-alive) |
//! | [`HttpLimits::body_timeout`] | 408 with `{"error","error_code":6}`, connection closed |
//! | [`HttpLimits::register_rate`], [`HttpLimits::add_appointment_rate`] | 429 with `{"error","error_code":32}` and `Retry-After` (seconds) |
//!
//! The rate limits are keyed by the peer IP address of the TCP connection (never by a header a client
//! can forge). Behind a reverse proxy or a Tor hidden service every client shares the proxy's
//! address, so the operator raises or disables them there. The engine is the `governor` crate's keyed
//! GCRA limiter (the one `tower_governor` wraps; we call it directly so that a refusal carries the
//! protocol's JSON error body and so that only the two costly endpoints are limited).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;
use crate::config::defaults as d;

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
}

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
}

impl Default for HttpLimits {
    /// The defaults of `teos.toml` (`config::defaults`).
    fn default() -> HttpLimits {
        HttpLimits {
            max_connections: d::API_MAX_CONNECTIONS as usize,
            header_timeout: Duration::from_secs(d::API_HEADER_TIMEOUT.into()),
            body_timeout: Duration::from_secs(d::API_BODY_TIMEOUT.into()),
            register_rate: RateLimit::per_minute(d::REGISTER_RATE_LIMIT, d::REGISTER_RATE_BURST),
            add_appointment_rate: RateLimit::per_minute(
                d::ADD_APPOINTMENT_RATE_LIMIT,
                d::ADD_APPOINTMENT_RATE_BURST,
            ),
        }
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

/// The per-IP limiters of the two rate-limited endpoints.
pub(crate) struct RateLimiters {
    register: Option<DefaultKeyedRateLimiter<IpAddr>>,
    add_appointment: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

/// How often the limiters forget IP addresses whose bucket is full again (bounds their memory).
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(60);

impl RateLimiters {
    pub(crate) fn new(limits: &HttpLimits) -> RateLimiters {
        let keyed =
            |rate: Option<RateLimit>| rate.map(|r| DefaultKeyedRateLimiter::keyed(r.quota()));
        RateLimiters {
            register: keyed(limits.register_rate),
            add_appointment: keyed(limits.add_appointment_rate),
            clock: DefaultClock::default(),
        }
    }

    /// Counts a request to `path` from `ip`. `Err(wait)`: refused, retry after `wait`. Paths other
    /// than `/register` and `/add_appointment` are never limited.
    pub(crate) fn check(&self, path: &str, ip: IpAddr) -> Result<(), Duration> {
        let limiter = match path {
            "/register" => &self.register,
            "/add_appointment" => &self.add_appointment,
            _ => return Ok(()),
        };
        match limiter {
            Some(limiter) => limiter
                .check_key(&ip)
                .map_err(|not_until| not_until.wait_time_from(self.clock.now())),
            None => Ok(()),
        }
    }

    /// Drops the state of addresses that are back to a full bucket.
    pub(crate) fn prune(&self) {
        for limiter in [&self.register, &self.add_appointment]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
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
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(limiters.check("/register", a).is_ok());
        limiters.prune();
        assert!(
            limiters.check("/register", a).is_err(),
            "state kept by prune"
        );
    }
}
