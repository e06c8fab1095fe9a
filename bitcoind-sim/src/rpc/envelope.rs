//! JSON-RPC envelopes as Bitcoin Core reads and writes them (`src/rpc/request.cpp`,
//! `src/httprpc.cpp`).
//!
//! - JSON-RPC 1.0 (`"jsonrpc":"1.0"` or absent): `{"result":..,"error":null,"id":..}`; an error is
//!   `{"result":null,"error":{..},"id":..}` with HTTP 500 (400 invalid request, 404 unknown method).
//! - JSON-RPC 2.0: `{"jsonrpc":"2.0","result":..,"id":..}` or `{"jsonrpc":"2.0","error":{..},"id":..}`,
//!   always HTTP 200; a request without `id` is a notification and gets HTTP 204.
//! - A batch (JSON array) is answered with an array, HTTP 200; elements never turn into HTTP errors.
//! - A body that is not JSON: HTTP 500 `{"result":null,"error":{"code":-32700,"message":"Parse error"},"id":null}`.
//!
//! Every reply body ends with a newline, like Core's. See transcript entries 9-17.

use serde::Serialize;
use serde_json::Value;

use super::error::{RPC_INVALID_REQUEST, RPC_PARSE_ERROR, RpcError};

/// Serialized JSON text. Results stay text so the key order of Core's answers survives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Json(pub String);

impl Json {
    /// Serializes `value` (struct fields keep their declaration order).
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Json {
        // Serializing our own types into a String cannot fail: no maps with non-string keys.
        Json(serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned()))
    }

    /// JSON `null`.
    pub fn null() -> Json {
        Json("null".to_owned())
    }
}

/// Which JSON-RPC dialect a request speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// 1.0/1.1 (`"jsonrpc":"1.0"` or no `jsonrpc` key): errors become HTTP errors.
    V1Legacy,
    /// 2.0: errors are returned with HTTP 200.
    V2,
}

/// One parsed request object.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// `None` when the request has no `id` key (a notification in 2.0).
    pub id: Option<Value>,
    /// The method name, e.g. `getblockcount`.
    pub method: String,
    /// A JSON array (positional) or object (named parameters); `[]` when absent.
    pub params: Value,
    /// The dialect the reply must use.
    pub version: Version,
}

impl Request {
    /// A JSON-RPC 2.0 request without `id`: executed, never answered.
    pub fn is_notification(&self) -> bool {
        self.version == Version::V2 && self.id.is_none()
    }
}

/// Parses one request object like Core's `JSONRPCRequest::parse`.
///
/// Errors carry the id read so far (Core parses the id first so later errors can echo it).
pub fn parse_request(value: &Value) -> Result<Request, (RpcError, Option<Value>)> {
    let invalid =
        |message: &str, id: Option<Value>| Err((RpcError::new(RPC_INVALID_REQUEST, message), id));
    let Some(object) = value.as_object() else {
        return invalid("Invalid Request object", Some(Value::Null));
    };
    let id = object.get("id").cloned();
    let version = match object.get("jsonrpc") {
        None | Some(Value::Null) => Version::V1Legacy,
        Some(Value::String(v)) if v == "1.0" => Version::V1Legacy,
        Some(Value::String(v)) if v == "2.0" => Version::V2,
        Some(Value::String(_)) => return invalid("JSON-RPC version not supported", id),
        Some(_) => return invalid("jsonrpc field must be a string", id),
    };
    let method = match object.get("method") {
        None | Some(Value::Null) => return invalid("Missing method", id),
        Some(Value::String(m)) => m.clone(),
        Some(_) => return invalid("Method must be a string", id),
    };
    let params = match object.get("params") {
        None | Some(Value::Null) => Value::Array(Vec::new()),
        Some(p @ (Value::Array(_) | Value::Object(_))) => p.clone(),
        Some(_) => return invalid("Params must be an array or object", id),
    };
    Ok(Request {
        id,
        method,
        params,
        version,
    })
}

/// Room for the envelope around a result: keys, `"jsonrpc":"2.0"`, `"error":null`, the closing
/// brace and the newline [`HttpReply`] adds (bytes; the id is counted apart).
const ENVELOPE_BYTES: usize = 64;

/// A reply object in `version`'s dialect, keys in Core's order (`JSONRPCReplyObj`).
///
/// The string is allocated once, with room for the trailing newline, so a big result (a whole
/// block's hex) is copied exactly once.
pub fn reply_object(
    version: Version,
    id: Option<&Value>,
    outcome: Result<&Json, &RpcError>,
) -> String {
    let id = id.map(Value::to_string);
    let result_len = outcome.map_or(0, |result| result.0.len());
    let mut out =
        String::with_capacity(result_len + id.as_ref().map_or(0, String::len) + ENVELOPE_BYTES);
    out.push('{');
    if version == Version::V2 {
        out.push_str("\"jsonrpc\":\"2.0\",");
    }
    match (outcome, version) {
        (Ok(result), Version::V2) => push_field(&mut out, "result", &result.0),
        (Ok(result), Version::V1Legacy) => {
            push_field(&mut out, "result", &result.0);
            push_field(&mut out, "error", "null");
        }
        (Err(error), Version::V2) => push_field(&mut out, "error", &error.to_json()),
        (Err(error), Version::V1Legacy) => {
            push_field(&mut out, "result", "null");
            push_field(&mut out, "error", &error.to_json());
        }
    }
    if let Some(id) = id {
        push_field(&mut out, "id", &id);
    }
    if out.ends_with(',') {
        out.pop();
    }
    out.push('}');
    out
}

fn push_field(out: &mut String, key: &str, json: &str) {
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
    out.push_str(json);
    out.push(',');
}

/// What the HTTP layer sends back for one POST body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpReply {
    /// 200, 204, 400, 404 or 500.
    pub status: u16,
    /// JSON text ending with a newline; `None` for 204 No Content.
    pub body: Option<String>,
}

impl HttpReply {
    fn json(status: u16, mut body: String) -> HttpReply {
        body.push('\n');
        HttpReply {
            status,
            body: Some(body),
        }
    }

    fn no_content() -> HttpReply {
        HttpReply {
            status: 204,
            body: None,
        }
    }

    /// A 1.0-style error reply with the status of `error` (Core's `JSONErrorReply`).
    pub fn error(error: &RpcError, id: Option<&Value>) -> HttpReply {
        let body = reply_object(Version::V1Legacy, id, Err(error));
        HttpReply::json(error.http_status(), body)
    }
}

/// Handles one POST body: parses it, runs every request through `exec`, and builds the reply
/// with Core's status codes. `exec` is called once per request, in order.
pub fn handle_body(
    body: &[u8],
    mut exec: impl FnMut(&Request) -> Result<Json, RpcError>,
) -> HttpReply {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(_) => return HttpReply::error(&RpcError::parse_error(), Some(&Value::Null)),
    };
    match value {
        Value::Object(_) => handle_single(&value, exec),
        Value::Array(items) => handle_batch(&items, &mut exec),
        _ => HttpReply::error(
            &RpcError::new(RPC_PARSE_ERROR, "Top-level object parse error"),
            Some(&Value::Null),
        ),
    }
}

fn handle_single(
    value: &Value,
    mut exec: impl FnMut(&Request) -> Result<Json, RpcError>,
) -> HttpReply {
    let request = match parse_request(value) {
        Ok(request) => request,
        Err((error, id)) => return HttpReply::error(&error, id.as_ref()),
    };
    let outcome = exec(&request);
    if request.is_notification() {
        return HttpReply::no_content();
    }
    match (&outcome, request.version) {
        (Err(error), Version::V1Legacy) => HttpReply::error(error, request.id.as_ref()),
        _ => HttpReply::json(
            200,
            reply_object(request.version, request.id.as_ref(), outcome.as_ref()),
        ),
    }
}

fn handle_batch(
    items: &[Value],
    exec: &mut impl FnMut(&Request) -> Result<Json, RpcError>,
) -> HttpReply {
    let mut replies = Vec::with_capacity(items.len());
    for item in items {
        match parse_request(item) {
            Ok(request) => {
                let outcome = exec(&request);
                if !request.is_notification() {
                    replies.push(reply_object(
                        request.version,
                        request.id.as_ref(),
                        outcome.as_ref(),
                    ));
                }
            }
            Err((error, id)) => {
                replies.push(reply_object(Version::V1Legacy, id.as_ref(), Err(&error)))
            }
        }
    }
    // Core answers an all-notification (non-empty) batch with 204 and an empty batch with `[]`.
    if replies.is_empty() && !items.is_empty() {
        return HttpReply::no_content();
    }
    HttpReply::json(200, format!("[{}]", replies.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::error::RPC_METHOD_NOT_FOUND;

    fn exec(request: &Request) -> Result<Json, RpcError> {
        match request.method.as_str() {
            "getblockcount" => Ok(Json("0".into())),
            _ => Err(RpcError::method_not_found()),
        }
    }

    #[test]
    fn body_that_is_not_json_gets_core_parse_error_text() {
        let reply = handle_body(b"this is not json", exec);
        assert_eq!(reply.status, 500);
        assert_eq!(
            reply.body.as_deref(),
            Some(
                "{\"result\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error\"},\"id\":null}\n"
            )
        );
    }

    #[test]
    fn legacy_unknown_method_is_404_with_result_null() {
        let body = br#"{"jsonrpc":"1.0","id":"t","method":"nosuchmethod","params":[]}"#;
        let reply = handle_body(body, exec);
        assert_eq!(reply.status, 404);
        let v: Value = serde_json::from_str(reply.body.as_deref().unwrap()).unwrap();
        assert_eq!(v["result"], Value::Null);
        assert_eq!(v["error"]["code"], RPC_METHOD_NOT_FOUND);
        assert_eq!(v["id"], "t");
    }

    #[test]
    fn v2_success_has_no_error_key_and_v2_error_has_no_result_key() {
        let ok = handle_body(
            br#"{"jsonrpc":"2.0","id":3,"method":"getblockcount"}"#,
            exec,
        );
        assert_eq!(ok.status, 200);
        assert_eq!(
            ok.body.as_deref(),
            Some("{\"jsonrpc\":\"2.0\",\"result\":0,\"id\":3}\n")
        );
        let err = handle_body(br#"{"jsonrpc":"2.0","id":4,"method":"nope"}"#, exec);
        assert_eq!(err.status, 200);
        assert_eq!(
            err.body.as_deref(),
            Some(
                "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32601,\"message\":\"Method not found\"},\"id\":4}\n"
            )
        );
    }

    #[test]
    fn batch_answers_each_element_with_http_200() {
        let body = br#"[{"jsonrpc":"1.0","id":1,"method":"getblockcount"},{"jsonrpc":"1.0","id":2,"method":"nope"}]"#;
        let reply = handle_body(body, exec);
        assert_eq!(reply.status, 200);
        let v: Value = serde_json::from_str(reply.body.as_deref().unwrap()).unwrap();
        assert_eq!(v[0]["result"], 0);
        assert_eq!(v[0]["error"], Value::Null);
        assert_eq!(v[1]["error"]["code"], RPC_METHOD_NOT_FOUND);
        assert_eq!(v[1]["id"], 2);
    }

    #[test]
    fn v2_notification_gets_no_content() {
        let reply = handle_body(br#"{"jsonrpc":"2.0","method":"getblockcount"}"#, exec);
        assert_eq!(
            reply,
            HttpReply {
                status: 204,
                body: None
            }
        );
    }

    #[test]
    fn request_with_non_string_method_is_invalid_request_400() {
        let reply = handle_body(br#"{"id":1,"method":5}"#, exec);
        assert_eq!(reply.status, 400);
        assert!(reply.body.unwrap().contains("Method must be a string"));
    }
}
