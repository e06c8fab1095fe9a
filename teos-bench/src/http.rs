//! A minimal HTTP/1.1 client: one keep-alive connection, one request at a time (hyper's `conn::http1`).
//!
//! The load generator opens one [`HttpConn`] per simulated connection so that "16 connections" means
//! exactly 16 TCP connections, with no pool in between. Bodies are prepared bytes, so the client does
//! no JSON work while it is being timed.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::BenchError;

/// One keep-alive HTTP/1.1 connection to the tower.
pub struct HttpConn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
    /// `Authorization` header value sent with every request, if any.
    authorization: Option<String>,
}

/// A response: the status code and the whole body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status (200 for an accepted request, PROTOCOL.md "Errors" for the others).
    pub status: u16,
    /// The body bytes (JSON for every endpoint but `/ping`).
    pub body: Bytes,
}

impl HttpConn {
    /// Connects to `addr` (TCP_NODELAY on) and performs the HTTP/1.1 handshake; the connection task
    /// runs on the current tokio runtime. Errors: [`BenchError::Http`] when the tower is not listening.
    pub async fn connect(addr: SocketAddr) -> Result<HttpConn, BenchError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| BenchError::Http(format!("connect {addr}: {e}")))?;
        stream
            .set_nodelay(true)
            .map_err(|e| BenchError::Http(format!("TCP_NODELAY: {e}")))?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| BenchError::Http(format!("handshake with {addr}: {e}")))?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the tower closes the connection; the next request
            // on this connection then reports the error.
            let _ = connection.await;
        });
        Ok(HttpConn {
            sender,
            host: addr.to_string(),
            authorization: None,
        })
    }

    /// Sends `Authorization: Basic base64(user:password)` with every request (bitcoind's JSON-RPC).
    pub fn with_basic_auth(mut self, user: &str, password: &str) -> HttpConn {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.authorization = Some(format!("Basic {token}"));
        self
    }

    /// `POST path` with a JSON `body` (Content-Length set, as teosd requires: PROTOCOL.md
    /// "Endpoints"). Returns the answer whatever its status. Errors: [`BenchError::Http`] when the
    /// connection failed or closed.
    pub async fn post_json(&mut self, path: &str, body: Bytes) -> Result<Answer, BenchError> {
        self.sender
            .ready()
            .await
            .map_err(|e| BenchError::Http(format!("connection lost: {e}")))?;
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(HOST, &self.host)
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_LENGTH, body.len());
        if let Some(value) = &self.authorization {
            request = request.header(AUTHORIZATION, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| BenchError::Http(format!("request for {path}: {e}")))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| BenchError::Http(format!("POST {path}: {e}")))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| BenchError::Http(format!("reading the answer to {path}: {e}")))?
            .to_bytes();
        Ok(Answer { status, body })
    }

    /// Like [`post_json`](Self::post_json) but a non-200 answer is [`BenchError::Refused`].
    pub async fn post_ok(&mut self, path: &str, body: Bytes) -> Result<Bytes, BenchError> {
        let answer = self.post_json(path, body).await?;
        if answer.status != 200 {
            return Err(BenchError::Refused {
                what: path.to_owned(),
                status: answer.status,
                body: String::from_utf8_lossy(&answer.body).into_owned(),
            });
        }
        Ok(answer.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-connection server answering every request with `200 {"ok":true}` after checking the
    /// request carried a Content-Length.
    async fn tiny_server() -> (SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while seen.len() < 2 {
                let n = socket.read(&mut chunk).await.unwrap();
                assert!(n > 0, "client closed early");
                buf.extend_from_slice(&chunk[..n]);
                // Requests here are small; one read holds head and body once the body arrived.
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let head = &text[..head_end];
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    if buf.len() >= head_end + 4 + length {
                        seen.push(text[..head_end + 4 + length].to_owned());
                        buf.drain(..head_end + 4 + length);
                        let body = br#"{"ok":true}"#;
                        let reply =
                            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                        socket.write_all(reply.as_bytes()).await.unwrap();
                        socket.write_all(body).await.unwrap();
                    }
                }
            }
            seen
        });
        (addr, handle)
    }

    #[tokio::test]
    async fn two_posts_share_one_connection_and_carry_content_length() {
        let (addr, server) = tiny_server().await;
        let mut conn = HttpConn::connect(addr).await.unwrap();
        for _ in 0..2 {
            let body = conn
                .post_ok("/add_appointment", Bytes::from_static(b"{\"a\":1}"))
                .await
                .unwrap();
            assert_eq!(&body[..], br#"{"ok":true}"#);
        }
        let seen = server.await.unwrap();
        assert_eq!(seen.len(), 2, "both requests arrived on the one connection");
        for request in seen {
            assert!(request.starts_with("POST /add_appointment HTTP/1.1\r\n"));
            assert!(request.contains("content-length: 7\r\n"));
            assert!(request.ends_with("{\"a\":1}"));
        }
    }

    #[tokio::test]
    async fn connecting_to_a_closed_port_is_an_http_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        // The listener is dropped here, so nothing listens on `port` any more.
        let result = HttpConn::connect(port).await;
        assert!(matches!(result, Err(BenchError::Http(_))));
    }
}
