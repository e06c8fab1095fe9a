//! Error codes of the public tower API and the error type every endpoint returns.
//!
//! The numeric codes and their HTTP statuses are the table "Errors" of `shared/spec/PROTOCOL.md`; they are
//! the codes rust-teos 0.2 sends, so existing clients (the Core Lightning `watchtower-client` plugin)
//! understand them. The only deliberate difference: [`ErrorCode::UnexpectedError`] maps to HTTP 500
//! where rust-teos answered 400.

use serde::{Deserialize, Serialize};

/// An error code of the public API, sent as `error_code` (a `u8`) in every error body.
///
/// Source: `shared/spec/PROTOCOL.md`, section "Errors".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorCode {
    /// 1: a required JSON field is absent. HTTP 400.
    MissingField = 1,
    /// 2: a string field (`user_id`, `locator`, `signature`) is the empty string. HTTP 400.
    EmptyField = 2,
    /// 3: a field has the wrong JSON type (a number for a string, a negative `to_self_delay`…). HTTP 400.
    WrongFieldType = 3,
    /// 4: a hex field decodes to the wrong number of bytes (`user_id` ≠ 33, `locator` ≠ 16). HTTP 400.
    WrongFieldSize = 4,
    /// 5: a field is malformed: bad hex, a key that is not a curve point, bad zbase32. HTTP 400.
    WrongFieldFormat = 5,
    /// 6: the body is not JSON, not an object, or has the wrong shape. HTTP 400.
    InvalidRequestFormat = 6,
    /// 7: the signature does not recover a registered user, the subscription expired, or the user
    /// lacks slots. HTTP 401.
    InvalidSignatureOrSubscriptionError = 7,
    /// 32: the tower cannot serve now (bitcoind unreachable, still syncing). HTTP 503.
    ServiceUnavailable = 32,
    /// 33: an appointment field is too small (empty blob, `to_self_delay` below the minimum). HTTP 400.
    AppointmentFieldTooSmall = 33,
    /// 34: an appointment field is too big (blob over `max_encrypted_blob_size`). HTTP 400.
    AppointmentFieldTooBig = 34,
    /// 35: the appointment was already triggered and is now a tracker. HTTP 400.
    AppointmentAlreadyTriggered = 35,
    /// 36: no appointment for this locator and user. HTTP 404.
    AppointmentNotFound = 36,
    /// 65: registering again would overflow the slot counter (`u32`). HTTP 400.
    RegistrationResourceExhausted = 65,
    /// 255: any other failure inside the tower. HTTP 500 **(ours; rust-teos used 400)**.
    UnexpectedError = 255,
}

impl ErrorCode {
    /// Every code, in numeric order (for tests and exhaustive tables).
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::MissingField,
        ErrorCode::EmptyField,
        ErrorCode::WrongFieldType,
        ErrorCode::WrongFieldSize,
        ErrorCode::WrongFieldFormat,
        ErrorCode::InvalidRequestFormat,
        ErrorCode::InvalidSignatureOrSubscriptionError,
        ErrorCode::ServiceUnavailable,
        ErrorCode::AppointmentFieldTooSmall,
        ErrorCode::AppointmentFieldTooBig,
        ErrorCode::AppointmentAlreadyTriggered,
        ErrorCode::AppointmentNotFound,
        ErrorCode::RegistrationResourceExhausted,
        ErrorCode::UnexpectedError,
    ];

    /// The wire value sent as `error_code`.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The code for a wire value, or `None` for a value PROTOCOL.md does not define.
    pub fn from_u8(value: u8) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_u8() == value)
    }

    /// The HTTP status the tower answers with (PROTOCOL.md "Errors"): 401 for 7, 503 for 32, 404 for 36,
    /// 500 for 255, 400 for every other code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidSignatureOrSubscriptionError => 401,
            ErrorCode::ServiceUnavailable => 503,
            ErrorCode::AppointmentNotFound => 404,
            ErrorCode::UnexpectedError => 500,
            _ => 400,
        }
    }
}

/// An error answered by the tower: a code and a human message (the `error` field of the body).
///
/// `Display` is the message alone. Convert to the wire body with [`ApiError::to_response`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// What went wrong, as a code the client can act on.
    pub code: ErrorCode,
    /// A human-readable explanation (rust-teos wording where it had one).
    pub message: String,
}

/// The JSON error body `{"error": "<message>", "error_code": <u8>}` (PROTOCOL.md "Errors").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The human message.
    pub error: String,
    /// The numeric [`ErrorCode`].
    pub error_code: u8,
}

impl ApiError {
    /// An error with any code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// Code 1: "missing field `<field>`" (rust-teos wording).
    pub fn missing_field(field: &str) -> ApiError {
        ApiError::new(ErrorCode::MissingField, format!("missing field `{field}`"))
    }

    /// Code 2: "`<field>` field is empty" (rust-teos wording).
    pub fn empty_field(field: &str) -> ApiError {
        ApiError::new(ErrorCode::EmptyField, format!("`{field}` field is empty"))
    }

    /// Code 3: `` "invalid type for `<field>`: expected <expected>" ``.
    pub fn wrong_field_type(field: &str, expected: &str) -> ApiError {
        ApiError::new(
            ErrorCode::WrongFieldType,
            format!("invalid type for `{field}`: expected {expected}"),
        )
    }

    /// Code 4: `` "Wrong `<field>` field size. Expected <expected>, received <received>" `` (rust-teos wording;
    /// sizes in bytes).
    pub fn wrong_field_size(field: &str, expected: usize, received: usize) -> ApiError {
        ApiError::new(
            ErrorCode::WrongFieldSize,
            format!("Wrong `{field}` field size. Expected {expected}, received {received}"),
        )
    }

    /// Code 5: a malformed field; `detail` says how.
    pub fn wrong_field_format(field: &str, detail: &str) -> ApiError {
        ApiError::new(
            ErrorCode::WrongFieldFormat,
            format!("wrong format for `{field}`: {detail}"),
        )
    }

    /// Code 6: the body cannot be read as the expected JSON object.
    pub fn invalid_request_format(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidRequestFormat, detail)
    }

    /// Code 7 with the given message, e.g. "User not found. Have you registered?".
    pub fn invalid_signature_or_subscription(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidSignatureOrSubscriptionError, message)
    }

    /// Code 7: `"Your subscription expired at <height>"` (rust-teos wording; height in blocks).
    pub fn subscription_expired(expiry: u32) -> ApiError {
        ApiError::invalid_signature_or_subscription(format!(
            "Your subscription expired at {expiry}"
        ))
    }

    /// Code 32: "Service currently unavailable" (rust-teos wording).
    pub fn service_unavailable() -> ApiError {
        ApiError::new(
            ErrorCode::ServiceUnavailable,
            "Service currently unavailable",
        )
    }

    /// Code 33 with the given message (empty blob, `to_self_delay` too small).
    pub fn appointment_field_too_small(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::AppointmentFieldTooSmall, message)
    }

    /// Code 34 with the given message (blob too big).
    pub fn appointment_field_too_big(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::AppointmentFieldTooBig, message)
    }

    /// Code 35: "The provided appointment has already been triggered" (rust-teos wording).
    pub fn appointment_already_triggered() -> ApiError {
        ApiError::new(
            ErrorCode::AppointmentAlreadyTriggered,
            "The provided appointment has already been triggered",
        )
    }

    /// Code 36: "Appointment not found" (rust-teos wording).
    pub fn appointment_not_found() -> ApiError {
        ApiError::new(ErrorCode::AppointmentNotFound, "Appointment not found")
    }

    /// Code 65: "Subscription maximum slots count reached" (rust-teos wording).
    pub fn registration_resource_exhausted() -> ApiError {
        ApiError::new(
            ErrorCode::RegistrationResourceExhausted,
            "Subscription maximum slots count reached",
        )
    }

    /// Code 255 with the given message.
    pub fn unexpected(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::UnexpectedError, message)
    }

    /// The HTTP status for this error, from [`ErrorCode::http_status`].
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }

    /// The JSON body sent for this error.
    pub fn to_response(&self) -> ErrorResponse {
        ErrorResponse {
            error: self.message.clone(),
            error_code: self.code.as_u8(),
        }
    }

    /// Reads an error body back (for clients). An `error_code` PROTOCOL.md does not define becomes
    /// [`ErrorCode::UnexpectedError`], keeping the message.
    pub fn from_response(response: ErrorResponse) -> ApiError {
        let code = ErrorCode::from_u8(response.error_code).unwrap_or(ErrorCode::UnexpectedError);
        ApiError::new(code, response.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_protocol_values_and_statuses() {
        let table: Vec<(u8, u16)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.as_u8(), c.http_status()))
            .collect();
        assert_eq!(
            table,
            vec![
                (1, 400),
                (2, 400),
                (3, 400),
                (4, 400),
                (5, 400),
                (6, 400),
                (7, 401),
                (32, 503),
                (33, 400),
                (34, 400),
                (35, 400),
                (36, 404),
                (65, 400),
                (255, 500)
            ]
        );
    }

    #[test]
    fn from_u8_inverts_as_u8_and_rejects_unknown_values() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_u8(code.as_u8()), Some(code));
        }
        assert_eq!(ErrorCode::from_u8(0), None);
        assert_eq!(ErrorCode::from_u8(8), None);
    }

    #[test]
    fn error_body_round_trips_through_json() {
        let err = ApiError::appointment_not_found();
        let json = serde_json::to_string(&err.to_response()).unwrap();
        assert_eq!(json, r#"{"error":"Appointment not found","error_code":36}"#);
        let back: ErrorResponse = serde_json::from_str(&json).unwrap();
        assert_eq!(ApiError::from_response(back), err);
        assert_eq!(err.to_string(), "Appointment not found");
    }
}
