//! JSON-RPC error objects with Bitcoin Core's numeric codes.
//!
//! The codes are those of Core's `src/rpc/protocol.h` (`RPCErrorCode`); the messages the
//! simulator uses are copied from the transcripts in `../shared/spec/bitcoind/rpc.json` or from
//! Core's behaviour where the transcripts have no example.

use std::fmt;

/// -1: `RPC_MISC_ERROR`, e.g. a wrong number of parameters (the message is the method's usage).
pub const RPC_MISC_ERROR: i32 = -1;
/// -3: `RPC_TYPE_ERROR`, a parameter of the wrong JSON type.
pub const RPC_TYPE_ERROR: i32 = -3;
/// -5: `RPC_INVALID_ADDRESS_OR_KEY`, also used for unknown blocks and transactions.
pub const RPC_INVALID_ADDRESS_OR_KEY: i32 = -5;
/// -8: `RPC_INVALID_PARAMETER`.
pub const RPC_INVALID_PARAMETER: i32 = -8;
/// -22: `RPC_DESERIALIZATION_ERROR`, a transaction or block that does not decode.
pub const RPC_DESERIALIZATION_ERROR: i32 = -22;
/// -25: `RPC_VERIFY_ERROR`.
pub const RPC_VERIFY_ERROR: i32 = -25;
/// -28: `RPC_IN_WARMUP`, every call while the node is starting.
pub const RPC_IN_WARMUP: i32 = -28;
/// -32600: `RPC_INVALID_REQUEST` (HTTP 400 in JSON-RPC 1.0).
pub const RPC_INVALID_REQUEST: i32 = -32600;
/// -32601: `RPC_METHOD_NOT_FOUND` (HTTP 404 in JSON-RPC 1.0).
pub const RPC_METHOD_NOT_FOUND: i32 = -32601;
/// -32603: `RPC_INTERNAL_ERROR`.
pub const RPC_INTERNAL_ERROR: i32 = -32603;
/// -32700: `RPC_PARSE_ERROR`, a body that is not JSON.
pub const RPC_PARSE_ERROR: i32 = -32700;

/// One JSON-RPC error object: `{"code": code, "message": message}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcError {
    /// Core's `RPCErrorCode` (negative).
    pub code: i32,
    /// Human-readable message, as Core words it.
    pub message: String,
}

impl RpcError {
    /// An error with any code and message.
    pub fn new(code: i32, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }

    /// -32601 "Method not found" (transcript entry 9).
    pub fn method_not_found() -> RpcError {
        RpcError::new(RPC_METHOD_NOT_FOUND, "Method not found")
    }

    /// -32700 "Parse error" (transcript entry 17).
    pub fn parse_error() -> RpcError {
        RpcError::new(RPC_PARSE_ERROR, "Parse error")
    }

    /// -8 with `message`.
    pub fn invalid_parameter(message: impl Into<String>) -> RpcError {
        RpcError::new(RPC_INVALID_PARAMETER, message)
    }

    /// -5 with `message` (unknown block, transaction or address).
    pub fn not_found(message: impl Into<String>) -> RpcError {
        RpcError::new(RPC_INVALID_ADDRESS_OR_KEY, message)
    }

    /// -5 "Block not found" (transcript entry 12).
    pub fn block_not_found() -> RpcError {
        RpcError::not_found("Block not found")
    }

    /// -32603 for failures of the simulator itself (never of the caller's input).
    pub fn internal(message: impl Into<String>) -> RpcError {
        RpcError::new(RPC_INTERNAL_ERROR, message)
    }

    /// The HTTP status Core gives this error in a JSON-RPC 1.0 reply (`JSONErrorReply`):
    /// 400 for an invalid request, 404 for an unknown method, 500 otherwise.
    pub fn http_status(&self) -> u16 {
        match self.code {
            RPC_INVALID_REQUEST => 400,
            RPC_METHOD_NOT_FOUND => 404,
            _ => 500,
        }
    }

    /// The error object as JSON text, keys in Core's order.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"code\":{},\"message\":{}}}",
            self.code,
            serde_json::Value::String(self.message.clone())
        )
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}
