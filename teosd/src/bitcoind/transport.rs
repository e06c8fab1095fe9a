//! The HTTP transport under `bitcoincore-rpc`: JSON-RPC over keep-alive HTTP/1.1 with `ureq`.
//!
//! The `minreq` transport that `jsonrpc` ships opens a connection per call and reads answers one byte
//! at a time, which made a 4,000-transaction `getblock` (1.8 MB of hex) cost ~30 ms instead of ~18 ms
//! (BENCHMARKS.md, "Catch-up"). This transport keeps connections alive in a pool (so the block
//! prefetcher and the block processor each hold their own), reads the whole body at once, and parses it
//! with `serde_json::from_slice`.
//!
//! Error mapping follows jsonrpc's own transports: an answer that is not a JSON-RPC response (HTTP 401
//! with an empty body after a cookie change, a proxy's error page, a truncated body) is a
//! `jsonrpc::Error::Transport`, which `BitcoindClient` treats as "bitcoind unreachable, retry";
//! bitcoind's own errors (HTTP 500/404 with a JSON-RPC error object) are parsed as responses.

use std::fmt;
use std::time::Duration;

use base64::Engine;

/// Largest answer read from bitcoind, in bytes: a 4 MWU block is at most 4 MB, 8 MB as hex, plus the
/// JSON envelope. Anything bigger is a broken or hostile peer.
pub const MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

/// Why a call did not produce a JSON-RPC response.
#[derive(Debug, thiserror::Error)]
enum TransportError {
    #[error("HTTP request to bitcoind failed: {0}")]
    Http(#[from] ureq::Error),
    #[error("bitcoind answered HTTP {status} without a JSON-RPC body ({detail})")]
    Status { status: u16, detail: String },
    #[error("cannot encode the request: {0}")]
    Encode(serde_json::Error),
}

impl From<TransportError> for jsonrpc::Error {
    fn from(e: TransportError) -> Self {
        jsonrpc::Error::Transport(Box::new(e))
    }
}

/// A `jsonrpc::Transport` posting to one bitcoind URL with basic authentication.
pub struct UreqTransport {
    agent: ureq::Agent,
    url: String,
    authorization: String,
}

impl UreqTransport {
    /// A transport for `url` (e.g. `http://127.0.0.1:18443`), authenticating as `user:password`, with
    /// `timeout` bounding each whole call (connect, send, receive the full answer).
    pub fn new(url: &str, user: &str, password: &str, timeout: Duration) -> UreqTransport {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_idle_connections_per_host(4)
            .build();
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        UreqTransport {
            agent: config.into(),
            url: url.to_owned(),
            authorization: format!("Basic {credentials}"),
        }
    }

    fn post<R: serde::de::DeserializeOwned>(
        &self,
        body: &impl serde::Serialize,
    ) -> Result<R, TransportError> {
        let body = serde_json::to_vec(body).map_err(TransportError::Encode)?;
        let mut response = self
            .agent
            .post(&self.url)
            .header("Authorization", &self.authorization)
            .header("Content-Type", "application/json")
            .send(&body[..])?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()?;
        serde_json::from_slice(&bytes).map_err(|e| TransportError::Status {
            status,
            detail: if bytes.is_empty() {
                "empty body".to_owned()
            } else {
                e.to_string()
            },
        })
    }
}

impl jsonrpc::Transport for UreqTransport {
    fn send_request(&self, request: jsonrpc::Request) -> Result<jsonrpc::Response, jsonrpc::Error> {
        Ok(self.post(&request)?)
    }

    fn send_batch(
        &self,
        requests: &[jsonrpc::Request],
    ) -> Result<Vec<jsonrpc::Response>, jsonrpc::Error> {
        Ok(self.post(&requests)?)
    }

    fn fmt_target(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.url)
    }
}
