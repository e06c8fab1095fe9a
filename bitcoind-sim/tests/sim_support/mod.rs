//! Helpers shared by the simulator's black-box tests: a minimal blocking HTTP/1.1 client (so
//! tests control every header and byte of the body), JSON-RPC calls with the cookie, and waits
//! on a condition with a deadline.

#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

pub mod big_block;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine;
use bitcoind_sim::{SimConfig, Simulator};
use serde_json::{Value, json};

/// An HTTP response as received.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// Sends one request on a fresh connection (`Connection: close`) and reads the whole answer.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(user_password) = auth {
        let encoded = base64::engine::general_purpose::STANDARD.encode(user_password);
        request.push_str(&format!("Authorization: Basic {encoded}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(parse_response(&raw))
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .expect("status")
        .parse()
        .expect("numeric status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

/// `__cookie__:<hex>` as currently on disk.
pub fn cookie(sim: &Simulator) -> String {
    std::fs::read_to_string(sim.cookie_path()).expect("cookie file")
}

/// POSTs a JSON-RPC body to `/` with the cookie.
pub fn post(sim: &Simulator, body: &str) -> HttpResponse {
    http(sim.rpc_port(), "POST", "/", Some(&cookie(sim)), body).expect("RPC request")
}

/// A JSON-RPC 1.0 call: `Ok(result)` or `Err((http status, error object))`.
pub fn call(sim: &Simulator, method: &str, params: Value) -> Result<Value, (u16, Value)> {
    let body = json!({"jsonrpc": "1.0", "id": "t", "method": method, "params": params}).to_string();
    let response = post(sim, &body);
    let reply = response.json();
    if reply["error"].is_null() {
        Ok(reply["result"].clone())
    } else {
        Err((response.status, reply["error"].clone()))
    }
}

/// Whether a call succeeds now; connection errors (a refused or closing port) count as failure.
pub fn answers(sim: &Simulator, method: &str) -> bool {
    let body = json!({"jsonrpc": "1.0", "id": "t", "method": method, "params": []}).to_string();
    let Ok(cookie) = std::fs::read_to_string(sim.cookie_path()) else {
        return false;
    };
    http(sim.rpc_port(), "POST", "/", Some(&cookie), &body).is_ok_and(|r| r.status == 200)
}

/// [`call`] that must succeed.
pub fn ok(sim: &Simulator, method: &str, params: Value) -> Value {
    call(sim, method, params).unwrap_or_else(|e| panic!("{method} failed: {e:?}"))
}

/// [`call`] that must fail; returns (http status, code, message).
pub fn err(sim: &Simulator, method: &str, params: Value) -> (u16, i64, String) {
    match call(sim, method, params) {
        Ok(v) => panic!("{method} unexpectedly succeeded: {v}"),
        Err((status, e)) => (
            status,
            e["code"].as_i64().expect("code"),
            e["message"].as_str().expect("message").to_owned(),
        ),
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A simulator in a fresh temporary directory (kept alive with it).
pub fn start(configure: impl FnOnce(&mut SimConfig)) -> (Simulator, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = SimConfig::new(dir.path());
    configure(&mut config);
    (Simulator::start(config).expect("simulator starts"), dir)
}
