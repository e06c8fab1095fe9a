//! The public HTTP API (axum), wire-compatible with rust-teos 0.2: endpoints, body limits, JSON shapes,
//! status codes and error bodies of `shared/spec/PROTOCOL.md` ("Endpoints", "Errors").
//!
//! | request | answer |
//! |---|---|
//! | `POST /register`, `/add_appointment`, `/get_appointment`, `/get_subscription_info` | 200 + JSON, or the error's status + `{"error","error_code"}` |
//! | `GET /ping` (and `HEAD`) | 200, empty body |
//! | POST without `Content-Length` (chunked included) | 411 |
//! | `Content-Length` over the endpoint's limit (87/2048/178/127 bytes) | 413 |
//! | unknown path / known path with another method | 404 / 405 |
//!
//! **(ours)** 404, 405, 411 and 413 also carry a JSON error body with code 6 (INVALID_REQUEST_FORMAT), so
//! every non-200 answer has the same shape; rust-teos sent plain text there. All bodies except ping's
//! are `Content-Type: application/json`.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::net::TcpListener;

use teos_common::constants::{
    ADD_APPOINTMENT_BODY_LIMIT, GET_APPOINTMENT_BODY_LIMIT, GET_SUBSCRIPTION_INFO_BODY_LIMIT,
    REGISTER_BODY_LIMIT,
};
use teos_common::errors::{ApiError, ErrorCode};
use teos_common::protocol;

use super::TowerApi;

/// Serves the public API on `listener` until `shutdown` completes, then stops accepting connections and
/// returns once the requests in flight are answered (axum graceful shutdown; idle keep-alive
/// connections are closed).
///
/// Errors: none in practice — accept errors are retried by axum; the `io::Result` is axum's signature.
pub async fn serve<T: TowerApi>(
    listener: TcpListener,
    tower: Arc<T>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "public API listening");
    }
    axum::serve(listener, router(tower))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("public API stopped");
    Ok(())
}

/// The routes of the public API over `tower` (what [`serve`] serves; exposed for tests and embedding).
pub fn router<T: TowerApi>(tower: Arc<T>) -> Router {
    Router::new()
        .route("/register", post(register::<T>))
        .route("/add_appointment", post(add_appointment::<T>))
        .route("/get_appointment", post(get_appointment::<T>))
        .route("/get_subscription_info", post(get_subscription_info::<T>))
        .route("/ping", get(ping))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(tower)
}

async fn register<T: TowerApi>(State(tower): State<Arc<T>>, request: Request) -> Response {
    let endpoint = Endpoint {
        name: "register",
        limit: REGISTER_BODY_LIMIT,
        parse: protocol::parse_register,
    };
    endpoint
        .handle(
            tower,
            request,
            |t, r| async move { t.register(r.user_id).await },
        )
        .await
}

async fn add_appointment<T: TowerApi>(State(tower): State<Arc<T>>, request: Request) -> Response {
    let endpoint = Endpoint {
        name: "add_appointment",
        limit: ADD_APPOINTMENT_BODY_LIMIT,
        parse: protocol::parse_add_appointment,
    };
    endpoint
        .handle(tower, request, |t, r| async move {
            t.add_appointment(r.appointment, r.signature).await
        })
        .await
}

async fn get_appointment<T: TowerApi>(State(tower): State<Arc<T>>, request: Request) -> Response {
    let endpoint = Endpoint {
        name: "get_appointment",
        limit: GET_APPOINTMENT_BODY_LIMIT,
        parse: protocol::parse_get_appointment,
    };
    endpoint
        .handle(tower, request, |t, r| async move {
            t.get_appointment(r.locator, r.signature).await
        })
        .await
}

async fn get_subscription_info<T: TowerApi>(
    State(tower): State<Arc<T>>,
    request: Request,
) -> Response {
    let endpoint = Endpoint {
        name: "get_subscription_info",
        limit: GET_SUBSCRIPTION_INFO_BODY_LIMIT,
        parse: protocol::parse_get_subscription_info,
    };
    endpoint
        .handle(tower, request, |t, r| async move {
            t.get_subscription_info(r.signature).await
        })
        .await
}

/// `GET /ping`: 200 with an empty body (rust-teos PR #200).
async fn ping() -> StatusCode {
    StatusCode::OK
}

async fn not_found() -> Response {
    plain_error(StatusCode::NOT_FOUND, "Not found")
}

/// 405 with an `Allow` header naming the one method each path takes.
async fn method_not_allowed(request: Request) -> Response {
    let allow = if request.uri().path() == "/ping" {
        "GET, HEAD"
    } else {
        "POST"
    };
    let mut response = plain_error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// One POST endpoint: its name (for logs), its body limit in bytes and its strict parser.
struct Endpoint<Req> {
    name: &'static str,
    limit: usize,
    parse: fn(&[u8]) -> Result<Req, ApiError>,
}

impl<Req: Send + 'static> Endpoint<Req> {
    /// Reads and parses the body, runs `call` on the tower in its own task, and writes the answer.
    async fn handle<T, Resp, F, Fut>(self, tower: Arc<T>, request: Request, call: F) -> Response
    where
        T: TowerApi,
        Resp: Serialize + Send + 'static,
        F: FnOnce(Arc<T>, Req) -> Fut,
        Fut: Future<Output = Result<Resp, ApiError>> + Send + 'static,
    {
        let body = match read_body(request, self.limit).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        let parsed = match (self.parse)(&body) {
            Ok(parsed) => parsed,
            Err(error) => return self.error(&error),
        };
        // Its own task: the call completes even if the client goes away (the handler future is dropped
        // then), and a panic in the tower becomes a 500 instead of a dropped connection.
        match tokio::spawn(call(tower, parsed)).await {
            Ok(Ok(response)) => {
                tracing::debug!(endpoint = self.name, "request succeeded");
                json_response(StatusCode::OK, &response)
            }
            Ok(Err(error)) => self.error(&error),
            Err(join_error) => {
                tracing::error!(endpoint = self.name, %join_error, "tower task failed");
                self.error(&ApiError::unexpected("Unexpected error"))
            }
        }
    }

    fn error(&self, error: &ApiError) -> Response {
        tracing::debug!(
            endpoint = self.name,
            error_code = error.code.as_u8(),
            error = %error,
            "request refused"
        );
        error_response(error)
    }
}

/// The body of a request whose `Content-Length` is at most `limit` bytes. A missing `Content-Length`
/// (including chunked transfer encoding) is answered 411, one over the limit 413 — before any of the
/// body is read (PROTOCOL.md "Endpoints").
async fn read_body(request: Request, limit: usize) -> Result<Vec<u8>, Response> {
    let Some(length) = request.headers().get(header::CONTENT_LENGTH) else {
        return Err(plain_error(
            StatusCode::LENGTH_REQUIRED,
            "A Content-Length header is required",
        ));
    };
    // hyper has already refused a Content-Length that is not a number; stay total anyway.
    let length = length
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    match length {
        Some(length) if length <= limit as u64 => {}
        Some(_) => {
            return Err(plain_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("Request body too large (limit {limit} bytes)"),
            ));
        }
        None => {
            return Err(error_response(&ApiError::invalid_request_format(
                "Invalid Content-Length header",
            )));
        }
    }
    match axum::body::to_bytes(request.into_body(), limit).await {
        Ok(bytes) => Ok(bytes.to_vec()),
        Err(error) => Err(error_response(&ApiError::invalid_request_format(format!(
            "Cannot read the request body: {error}"
        )))),
    }
}

/// A 404/405/411/413 answer: `status` with a JSON body carrying code 6 (see the module docs).
fn plain_error(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        &ApiError::new(ErrorCode::InvalidRequestFormat, message).to_response(),
    )
}

/// An error answer: the status of its code (PROTOCOL.md "Errors") and `{"error","error_code"}`.
fn error_response(error: &ApiError) -> Response {
    let status =
        StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &error.to_response())
}

fn json_response<B: Serialize>(status: StatusCode, body: &B) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            Body::from(bytes),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot serialize a response");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"error":"Unexpected error","error_code":255}"#,
            )
                .into_response()
        }
    }
}
