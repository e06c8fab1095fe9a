//! The HTTP face of the JSON-RPC server: routes, authentication, stalls, and handing the body to
//! the dispatcher on a blocking thread (node calls take locks and may touch the disk). Each call
//! gets its own blocking thread, so calls on different connections run in parallel (see the
//! gate test in `server.rs`); block answers hold the node lock only to find the block.
//!
//! As Core's `HTTPReq_JSONRPC`: POST only (else 405 "JSONRPC server handles only POST requests"),
//! on `/` and `/wallet/<name>` (other paths 404); no or wrong credentials → 401 with an empty body,
//! `WWW-Authenticate: Basic realm="jsonrpc"` and `Content-Type: text/html; charset=ISO-8859-1`
//! (transcript entry 13), after a 250 ms pause for wrong credentials (Core deters brute force).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use super::RpcContext;
use super::auth::AuthOutcome;
use super::envelope::{HttpReply, handle_body};
use super::error::RpcError;

/// Core's `WWW_AUTH_HEADER_DATA`.
const WWW_AUTHENTICATE: &str = "Basic realm=\"jsonrpc\"";
/// Core's limit on an HTTP body (`MAX_SIZE`, 32 MiB).
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Core's pause before answering wrong credentials.
const WRONG_AUTH_DELAY: Duration = Duration::from_millis(250);

/// The router of one simulator instance.
pub fn router(ctx: Arc<RpcContext>) -> Router {
    Router::new()
        .route("/", any(json_rpc))
        .route("/wallet/{name}", any(json_rpc))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(ctx)
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(WWW_AUTHENTICATE),
            ),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=ISO-8859-1"),
            ),
        ],
    )
        .into_response()
}

async fn json_rpc(
    State(ctx): State<Arc<RpcContext>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "JSONRPC server handles only POST requests",
        )
            .into_response();
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    match ctx.credentials.check(authorization) {
        AuthOutcome::Authorized => {}
        AuthOutcome::Missing => return unauthorized(),
        AuthOutcome::Rejected => {
            tracing::warn!("incorrect RPC password attempt");
            tokio::time::sleep(WRONG_AUTH_DELAY).await;
            return unauthorized();
        }
    }
    while let Some(until) = ctx.faults.stalled_until() {
        tracing::debug!("RPC request held by a stall fault");
        tokio::time::sleep_until(until.into()).await;
    }
    let dispatch_ctx = ctx.clone();
    let reply = tokio::task::spawn_blocking(move || {
        handle_body(&body, |request| dispatch_ctx.execute(request))
    })
    .await
    .unwrap_or_else(|e| {
        HttpReply::error(&RpcError::internal(format!("handler failed: {e}")), None)
    });
    http_response(reply)
}

fn http_response(reply: HttpReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match reply.body {
        None => status.into_response(),
        Some(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
    }
}
