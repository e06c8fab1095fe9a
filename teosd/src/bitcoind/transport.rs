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
            // bitcoind never redirects, and its RPC must not go through an HTTP(S)_PROXY from the
            // environment.
            .max_redirects(0)
            .proxy(None)
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

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use jsonrpc::Transport;

    use super::*;

    /// Serves one HTTP request on an ephemeral port with `status` and `body`; hands back the
    /// request's head and body.
    fn serve_once(
        status: &'static str,
        body: &'static str,
    ) -> (String, std::thread::JoinHandle<(String, String)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let mut request_body = vec![0u8; length];
            reader.read_exact(&mut request_body).unwrap();
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            (head, String::from_utf8(request_body).unwrap())
        });
        (url, server)
    }

    fn request() -> jsonrpc::Request<'static> {
        jsonrpc::Request {
            method: "getblockcount",
            params: None,
            id: serde_json::json!(1),
            jsonrpc: Some("2.0"),
        }
    }

    #[test]
    fn a_result_is_returned_and_the_request_carries_basic_auth() {
        let (url, server) = serve_once("200 OK", r#"{"result":101,"error":null,"id":1}"#);
        let transport = UreqTransport::new(&url, "__cookie__", "abc", Duration::from_secs(10));
        let response = transport.send_request(request()).unwrap();
        assert_eq!(response.result.unwrap().get(), "101");
        let (head, body) = server.join().unwrap();
        // base64("__cookie__:abc")
        assert!(head.contains("Basic X19jb29raWVfXzphYmM="), "{head}");
        assert!(body.contains(r#""method":"getblockcount""#), "{body}");
    }

    #[test]
    fn a_bitcoind_error_on_http_500_is_a_json_rpc_error_not_a_transport_error() {
        let (url, server) = serve_once(
            "500 Internal Server Error",
            r#"{"result":null,"error":{"code":-5,"message":"Block not found"},"id":1}"#,
        );
        let transport = UreqTransport::new(&url, "u", "p", Duration::from_secs(10));
        let response = transport.send_request(request()).unwrap();
        assert_eq!(response.error.unwrap().code, -5);
        server.join().unwrap();
    }

    #[test]
    fn http_401_with_an_empty_body_is_a_transport_error() {
        let (url, server) = serve_once("401 Unauthorized", "");
        let transport = UreqTransport::new(&url, "u", "stale", Duration::from_secs(10));
        let error = transport.send_request(request()).unwrap_err();
        assert!(matches!(error, jsonrpc::Error::Transport(_)), "{error}");
        assert!(error.to_string().contains("401"), "{error}");
        server.join().unwrap();
    }

    #[test]
    fn a_refused_connection_is_a_transport_error() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let transport = UreqTransport::new(
            &format!("http://127.0.0.1:{port}"),
            "u",
            "p",
            Duration::from_secs(10),
        );
        let error = transport.send_request(request()).unwrap_err();
        assert!(matches!(error, jsonrpc::Error::Transport(_)), "{error}");
    }
}
