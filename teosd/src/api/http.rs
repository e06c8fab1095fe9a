//! The public HTTP API (axum), wire-compatible with rust-teos 0.2: endpoints, body limits, JSON shapes,
//! status codes and error bodies of `shared/spec/PROTOCOL.md` ("Endpoints", "Errors").
//!
//! | request | answer |
//! |---|---|
//! | `POST /register`, `/add_appointment`, `/get_appointment`, `/get_subscription_info` | 200 + JSON, or the error's status + `{"error","error_code"}` (but see "Held back" below) |
//! | `GET /ping` (and `HEAD`) | 200, empty body |
//! | POST without `Content-Length` (chunked included) | 411 |
//! | `Content-Length` over the endpoint's limit (87/2048/178/127 bytes) | 413 |
//! | unknown path / known path with another method | 404 / 405 |
//! | body slower than the body timeout | 408 |
//!
//! **(ours)** 404, 405, 408, 411 and 413 also carry a JSON error body with code 6 (INVALID_REQUEST_FORMAT), so
//! every non-200 answer has the same shape; rust-teos sent plain text there. All bodies except ping's
//! are `Content-Type: application/json`.
//!
//! **Held back (ours).** When the tower cannot serve a well-formed request now — the per-IP rate is
//! exceeded, all tower-call slots are busy, bitcoind is unreachable, the tower is full
//! (`max_users`/`max_appointments`), storage failed — the request is not answered with a verdict a
//! client would act on wrongly:
//! - it is first held (up to [`HttpLimits::hold`]) while waiting helps: for its turn under the rate
//!   limit, for a free tower-call slot;
//! - then `/add_appointment` is answered **401 with code 7** and a message saying to retry later
//!   (over the rate, with `Retry-After`). The reference client (Core Lightning's watchtower-client
//!   plugin) files an appointment refused with any other code as invalid and never sends it again,
//!   and loses a fresh one whose connection is closed after it was sent (only connect errors count
//!   as "unreachable" there); code 7 is the one answer it keeps the appointment for: pending,
//!   re-register, retry with backoff. Codes 32 (SERVICE_UNAVAILABLE) and 255 (UNEXPECTED_ERROR) are
//!   therefore never sent by `/add_appointment`;
//! - `/register`, `/get_appointment` and `/get_subscription_info` keep their JSON answers (429 with
//!   `Retry-After` over the rate, 503 / code 32 otherwise): the plugin only shows them to its user or
//!   retries them, and nothing is lost.
//!
//! README.md ("What a refusal means for a client") has the table per refusal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

use teos_common::constants::{
    ADD_APPOINTMENT_BODY_LIMIT, GET_APPOINTMENT_BODY_LIMIT, GET_SUBSCRIPTION_INFO_BODY_LIMIT,
    REGISTER_BODY_LIMIT,
};
use teos_common::errors::{ApiError, ErrorCode};
use teos_common::protocol;

use super::TowerApi;
use super::limits::{ClientKey, ConnectionSlots, HttpLimits, PRUNE_EVERY, RateLimiters};

/// Serves the public API on `listener` with the default [`HttpLimits`] until `shutdown` completes;
/// see [`serve_with_limits`].
///
/// Errors: none in practice (accept errors are logged and retried); the `io::Result` is kept for
/// callers that treat the server as fallible.
pub async fn serve<T: TowerApi>(
    listener: TcpListener,
    tower: Arc<T>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_limits(listener, tower, HttpLimits::default(), shutdown).await
}

/// Serves the public API on `listener` (HTTP/1.1) under `limits` until `shutdown` completes, then
/// closes the listener, lets the requests in flight finish (idle keep-alive connections are closed)
/// and returns once every connection is closed.
///
/// Each accepted connection holds one of `limits.max_connections` slots; the accept loop waits for a
/// free slot before accepting (mini-redis's listener). Headers must arrive within
/// `limits.header_timeout` (hyper's `header_read_timeout`, also applied while a keep-alive connection
/// waits for its next request), bodies within `limits.body_timeout` (408). `/register` and
/// `/add_appointment` are rate limited per peer IP address: held until their turn, at most
/// `limits.hold`, then 429 (`/register`) or 401 / code 7 "retry later" (`/add_appointment`). At most
/// `limits.max_connections` tower calls run at once. See [`super::limits`] and the module doc.
///
/// Errors: none in practice (accept errors are logged and retried after 100 ms, e.g. EMFILE).
pub async fn serve_with_limits<T: TowerApi>(
    listener: TcpListener,
    tower: Arc<T>,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = ApiListener {
        listener,
        clients: ClientKeying::PeerIp,
    };
    serve_listeners(vec![listener], tower, limits, shutdown).await
}

/// How a listener's connections are told apart by the rate limits ([`super::limits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientKeying {
    /// By peer IP address: every connection from one address shares its limits (the public listener).
    PeerIp,
    /// Each connection has limits of its own: for the onion service's loopback listener, where every
    /// Tor client has the address 127.0.0.1 (`crate::tor`).
    PerConnection,
}

/// A listener of the public API and how its clients are keyed.
pub struct ApiListener {
    /// The bound socket.
    pub listener: TcpListener,
    /// Whose requests one rate-limit bucket counts.
    pub clients: ClientKeying,
}

/// [`serve_with_limits`] on several listeners at once (the public one and the onion service's): one
/// router, one set of `limits.max_connections` connection and tower-call slots for all of them.
///
/// Errors: none in practice, as [`serve_with_limits`].
pub async fn serve_listeners<T: TowerApi>(
    listeners: Vec<ApiListener>,
    tower: Arc<T>,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    for listener in &listeners {
        if let Ok(addr) = listener.listener.local_addr() {
            tracing::info!(%addr, clients = ?listener.clients, ?limits, "public API listening");
        }
    }
    let server = Arc::new(Server {
        router: router_with(tower, &limits),
        rates: RateLimiters::new(&limits),
        limits,
        connections: std::sync::atomic::AtomicU64::new(0),
    });
    let slots = ConnectionSlots::new(limits.max_connections);
    // Dropping `stop` (when this function leaves the loop) tells every connection to shut down.
    let (stop, stopped) = tokio::sync::watch::channel(());
    let pruner = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PRUNE_EVERY);
            loop {
                every.tick().await;
                server.rates.prune();
            }
        })
    };
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listeners, &slots) => accepted,
        };
        let Some((stream, peer, keying, permit)) = accepted else {
            continue;
        };
        let client = server.client_key(peer, keying);
        let (server, stopped) = (server.clone(), stopped.clone());
        tokio::spawn(async move {
            server.connection(stream, peer, client, stopped).await;
            drop(permit);
        });
    }
    drop(listeners);
    drop(stop);
    pruner.abort();
    slots.wait_all_closed().await;
    tracing::info!("public API stopped");
    Ok(())
}

/// Waits for a connection slot, then for a connection on any of `listeners`. `None` after an accept
/// error (logged; the caller retries, after a pause so that EMFILE does not spin).
async fn accept(
    listeners: &[ApiListener],
    slots: &ConnectionSlots,
) -> Option<(TcpStream, SocketAddr, ClientKeying, OwnedSemaphorePermit)> {
    let permit = slots.acquire().await?;
    let (accepted, keying) = std::future::poll_fn(|context| {
        for listener in listeners {
            if let std::task::Poll::Ready(accepted) = listener.listener.poll_accept(context) {
                return std::task::Poll::Ready((accepted, listener.clients));
            }
        }
        std::task::Poll::Pending
    })
    .await;
    match accepted {
        Ok((stream, peer)) => Some((stream, peer, keying, permit)),
        Err(error) => {
            tracing::warn!(%error, "cannot accept a connection");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}

/// What every connection task shares.
struct Server {
    /// The endpoints (axum), with the tower and its call slots as state.
    router: Router,
    /// Per-client rate limiters of `/register` and `/add_appointment`, checked before routing.
    rates: RateLimiters,
    /// Timeouts and the hold, read by every connection.
    limits: HttpLimits,
    /// Connections accepted so far: the number of the next [`ClientKey::Connection`].
    connections: std::sync::atomic::AtomicU64,
}

impl Server {
    /// The rate-limit key of a new connection from `peer` on a listener keyed by `keying`.
    fn client_key(&self, peer: SocketAddr, keying: ClientKeying) -> ClientKey {
        match keying {
            ClientKeying::PeerIp => ClientKey::Ip(peer.ip()),
            ClientKeying::PerConnection => ClientKey::Connection(
                self.connections
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ),
        }
    }

    /// Serves one connection until the client closes it, a timeout fires, or shutdown starts (then
    /// the request in flight is finished first).
    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        client: ClientKey,
        mut stopped: tokio::sync::watch::Receiver<()>,
    ) {
        let server = self.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let server = server.clone();
            async move { Ok::<_, std::convert::Infallible>(server.request(request, peer, client).await) }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            .max_buf_size(MAX_BUF_SIZE);
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let mut connection = std::pin::pin!(connection);
        let mut stopping = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                    return;
                }
                _ = stopped.changed(), if !stopping => {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }

    /// Rate limit, then the router with the body deadline.
    async fn request(
        &self,
        request: hyper::Request<Incoming>,
        peer: SocketAddr,
        client: ClientKey,
    ) -> Response {
        let endpoint = endpoint_label(request.uri().path());
        let response = self.route(request, peer, client).await;
        let status = response.status().as_u16().to_string();
        metrics::counter!(
            crate::metrics::HTTP_REQUESTS,
            "endpoint" => endpoint,
            "status" => status
        )
        .increment(1);
        response
    }

    async fn route(
        &self,
        request: hyper::Request<Incoming>,
        peer: SocketAddr,
        client: ClientKey,
    ) -> Response {
        if request.method() == Method::POST {
            let path = request.uri().path();
            if let Err(wait) = self.rates.wait_turn(path, client, self.limits.hold).await {
                tracing::debug!(%peer, path, "rate limited");
                if path == "/add_appointment" {
                    return retry_later(wait);
                }
                return too_many_requests(wait);
            }
        }
        let mut request = request.map(Body::new);
        request
            .extensions_mut()
            .insert(BodyDeadline(self.limits.body_timeout));
        match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// The `endpoint` label of the request metric: the protocol's paths, anything else as `other` (so a
/// scanner cannot grow the label set).
fn endpoint_label(path: &str) -> &'static str {
    match path {
        "/register" => "register",
        "/add_appointment" => "add_appointment",
        "/get_appointment" => "get_appointment",
        "/get_subscription_info" => "get_subscription_info",
        "/ping" => "ping",
        _ => "other",
    }
}

/// Largest buffer hyper keeps for one connection's unparsed bytes (headers included). hyper's minimum
/// is 8 KiB; the largest valid request is ~2.3 KiB.
const MAX_BUF_SIZE: usize = 16 * 1024;

/// The time a handler gets to read its body, put in each request's extensions by the server.
#[derive(Clone, Copy)]
struct BodyDeadline(Duration);

/// 401 with code 7 and `Retry-After` (whole seconds, rounded up): what `/add_appointment` answers over
/// the rate (see the module doc, "Held back").
fn retry_later(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = error_response(&ApiError::new(
        ErrorCode::InvalidSignatureOrSubscriptionError,
        format!("Too many requests from this address; retry in {seconds} s"),
    ));
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// 429 with `Retry-After` (whole seconds, rounded up) and code 32: the client is told to come back.
/// Only `/register` gets it (`/add_appointment` gets [`retry_later`], see the module doc).
fn too_many_requests(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = json_response(
        StatusCode::TOO_MANY_REQUESTS,
        &ApiError::new(
            ErrorCode::ServiceUnavailable,
            format!("Too many requests from this address; retry in {seconds} s"),
        )
        .to_response(),
    );
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The routes of the public API over `tower` (what [`serve`] serves; exposed for tests and embedding),
/// with the default [`HttpLimits`]' tower-call slots and hold.
pub fn router<T: TowerApi>(tower: Arc<T>) -> Router {
    router_with(tower, &HttpLimits::default())
}

/// The routes over `tower` with at most `limits.max_connections` tower calls in progress at once,
/// each request waiting at most `limits.hold` for a slot.
fn router_with<T: TowerApi>(tower: Arc<T>, limits: &HttpLimits) -> Router {
    let state = ApiState {
        tower,
        calls: Arc::new(Semaphore::new(
            limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
        )),
        hold: limits.hold,
    };
    Router::new()
        .route("/register", post(register::<T>))
        .route("/add_appointment", post(add_appointment::<T>))
        .route("/get_appointment", post(get_appointment::<T>))
        .route("/get_subscription_info", post(get_subscription_info::<T>))
        .route("/ping", get(ping))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// What the endpoint handlers share.
struct ApiState<T> {
    /// The tower core the calls go to.
    tower: Arc<T>,
    /// Slots of tower calls in progress. A call runs in its own task and keeps its slot until it
    /// returns, also after its client went away, so work the clients left behind is bounded too.
    calls: Arc<Semaphore>,
    /// Longest a request waits for a slot ([`HttpLimits::hold`]).
    hold: Duration,
}

impl<T> Clone for ApiState<T> {
    fn clone(&self) -> Self {
        ApiState {
            tower: self.tower.clone(),
            calls: self.calls.clone(),
            hold: self.hold,
        }
    }
}

async fn register<T: TowerApi>(State(state): State<ApiState<T>>, request: Request) -> Response {
    let endpoint = Endpoint {
        name: "register",
        limit: REGISTER_BODY_LIMIT,
        parse: protocol::parse_register,
        unavailable: Unavailable::Answer,
    };
    endpoint
        .handle(
            state,
            request,
            |t, r| async move { t.register(r.user_id).await },
        )
        .await
}

async fn add_appointment<T: TowerApi>(
    State(state): State<ApiState<T>>,
    request: Request,
) -> Response {
    let endpoint = Endpoint {
        name: "add_appointment",
        limit: ADD_APPOINTMENT_BODY_LIMIT,
        parse: protocol::parse_add_appointment,
        unavailable: Unavailable::RetryLater,
    };
    endpoint
        .handle(state, request, |t, r| async move {
            t.add_appointment(r.appointment, r.signature).await
        })
        .await
}

async fn get_appointment<T: TowerApi>(
    State(state): State<ApiState<T>>,
    request: Request,
) -> Response {
    let endpoint = Endpoint {
        name: "get_appointment",
        limit: GET_APPOINTMENT_BODY_LIMIT,
        parse: protocol::parse_get_appointment,
        unavailable: Unavailable::Answer,
    };
    endpoint
        .handle(state, request, |t, r| async move {
            t.get_appointment(r.locator, r.signature).await
        })
        .await
}

async fn get_subscription_info<T: TowerApi>(
    State(state): State<ApiState<T>>,
    request: Request,
) -> Response {
    let endpoint = Endpoint {
        name: "get_subscription_info",
        limit: GET_SUBSCRIPTION_INFO_BODY_LIMIT,
        parse: protocol::parse_get_subscription_info,
        unavailable: Unavailable::Answer,
    };
    endpoint
        .handle(state, request, |t, r| async move {
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

/// What an endpoint answers when the tower cannot serve a well-formed request (code 32, or 255 for a
/// failure inside the tower); see the module doc, "Held back".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unavailable {
    /// The JSON error (503 / code 32, 500 / code 255).
    Answer,
    /// 401 / code 7 with the reason and "retry later" (the one refusal the reference client keeps
    /// the appointment for).
    RetryLater,
}

/// One POST endpoint: its name (for logs), its body limit in bytes, its strict parser, and what it
/// does when the tower cannot serve.
struct Endpoint<Req> {
    name: &'static str,
    limit: usize,
    parse: fn(&[u8]) -> Result<Req, ApiError>,
    unavailable: Unavailable,
}

impl<Req: Send + 'static> Endpoint<Req> {
    /// Reads and parses the body, waits (at most the hold) for a tower-call slot, runs `call` on the
    /// tower in its own task, and writes the answer.
    async fn handle<T, Resp, F, Fut>(
        self,
        state: ApiState<T>,
        request: Request,
        call: F,
    ) -> Response
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
        let slot = tokio::time::timeout(state.hold, state.calls.clone().acquire_owned()).await;
        let Ok(Ok(slot)) = slot else {
            tracing::warn!(
                endpoint = self.name,
                "every tower-call slot stayed busy for the hold"
            );
            return self.error(&ApiError::new(
                ErrorCode::ServiceUnavailable,
                "Service currently unavailable",
            ));
        };
        // Its own task: the call completes even if the client goes away (the handler future is dropped
        // then), and a panic in the tower becomes an error instead of a dropped server. The task keeps
        // the slot until the call returns.
        let task = call(state.tower, parsed);
        let joined = tokio::spawn(async move {
            let result = task.await;
            drop(slot);
            result
        })
        .await;
        match joined {
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

    /// The answer for `error`: its JSON body, or — for an endpoint that answers "retry later" when the
    /// tower cannot serve, and a code saying so (32, 255) — 401 / code 7 with the reason.
    fn error(&self, error: &ApiError) -> Response {
        let cannot_serve = matches!(
            error.code,
            ErrorCode::ServiceUnavailable | ErrorCode::UnexpectedError
        );
        if cannot_serve && self.unavailable == Unavailable::RetryLater {
            tracing::debug!(
                endpoint = self.name,
                error = %error,
                "tower cannot serve: answering retry later (code 7)"
            );
            return error_response(&ApiError::new(
                ErrorCode::InvalidSignatureOrSubscriptionError,
                format!(
                    "{}; the tower cannot take it now, retry later",
                    error.message
                ),
            ));
        }
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
    // Without a deadline (the router used on its own, as in tests) the body is read without one.
    let deadline = request.extensions().get::<BodyDeadline>().map(|d| d.0);
    let read = axum::body::to_bytes(request.into_body(), limit);
    let read = match deadline {
        Some(deadline) => match tokio::time::timeout(deadline, read).await {
            Ok(read) => read,
            Err(_) => {
                let mut response = plain_error(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!(
                        "The request body did not arrive within {} s",
                        deadline.as_secs()
                    ),
                );
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return Err(response);
            }
        },
        None => read.await,
    };
    match read {
        Ok(bytes) => Ok(bytes.to_vec()),
        Err(error) => Err(error_response(&ApiError::invalid_request_format(format!(
            "Cannot read the request body: {error}"
        )))),
    }
}

/// A 404/405/408/411/413 answer: `status` with a JSON body carrying code 6 (see the module docs).
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
