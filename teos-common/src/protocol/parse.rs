//! Strict parsers of the request bodies: each defect maps to the error code PROTOCOL.md ("Errors")
//! gives it, checked in this order per field:
//!
//! | defect | code |
//! |---|---|
//! | body not JSON, or not a JSON object | 6 INVALID_REQUEST_FORMAT |
//! | field absent | 1 MISSING_FIELD |
//! | wrong JSON type (number for a string, negative / fractional / > u32 `to_self_delay`, `null`) | 3 WRONG_FIELD_TYPE |
//! | empty `user_id`, `locator` or `signature` | 2 EMPTY_FIELD |
//! | bad hex (odd length, non-hex character), bad zbase32 | 5 WRONG_FIELD_FORMAT |
//! | `user_id` ≠ 33 bytes, `locator` ≠ 16 bytes | 4 WRONG_FIELD_SIZE |
//! | `user_id` not a curve point | 5 WRONG_FIELD_FORMAT |
//!
//! Unknown extra fields are ignored (as serde did in rust-teos). An empty `encrypted_blob` parses: blob
//! size and `to_self_delay` bounds are the tower's checks (codes 33/34), not the parser's. Signatures are
//! only checked to be zbase32 text; whether they recover a registered user is the tower's check (7).

use serde_json::{Map, Value};

use crate::appointment::{Appointment, Locator, UserId};
use crate::constants::{LOCATOR_LEN, USER_ID_LEN};
use crate::cryptography::zbase32;
use crate::errors::{ApiError, ErrorCode};

use super::{
    AddAppointmentRequest, GetAppointmentRequest, GetSubscriptionInfoRequest, RegisterRequest,
};

type Object = Map<String, Value>;

/// Parses a `POST /register` body `{"user_id": hex33}`. Errors: see the module table.
pub fn parse_register(body: &[u8]) -> Result<RegisterRequest, ApiError> {
    let object = parse_object(body)?;
    Ok(RegisterRequest {
        user_id: user_id_field(&object, "user_id")?,
    })
}

/// Parses a `POST /add_appointment` body
/// `{"appointment": {"locator": hex16, "encrypted_blob": hex, "to_self_delay": u32}, "signature": zb32}`.
/// `appointment` that is not an object is code 3. Errors: see the module table.
pub fn parse_add_appointment(body: &[u8]) -> Result<AddAppointmentRequest, ApiError> {
    let object = parse_object(body)?;
    let appointment = match required(&object, "appointment")? {
        Value::Object(inner) => Appointment {
            locator: locator_field(inner, "locator")?,
            encrypted_blob: hex_field(inner, "encrypted_blob")?,
            to_self_delay: u32_field(inner, "to_self_delay")?,
        },
        _ => return Err(ApiError::wrong_field_type("appointment", "an object")),
    };
    Ok(AddAppointmentRequest {
        appointment,
        signature: signature_field(&object, "signature")?,
    })
}

/// Parses a `POST /get_appointment` body `{"locator": hex16, "signature": zb32}`. Errors: see the
/// module table.
pub fn parse_get_appointment(body: &[u8]) -> Result<GetAppointmentRequest, ApiError> {
    let object = parse_object(body)?;
    Ok(GetAppointmentRequest {
        locator: locator_field(&object, "locator")?,
        signature: signature_field(&object, "signature")?,
    })
}

/// Parses a `POST /get_subscription_info` body `{"signature": zb32}`. Errors: see the module table.
pub fn parse_get_subscription_info(body: &[u8]) -> Result<GetSubscriptionInfoRequest, ApiError> {
    let object = parse_object(body)?;
    Ok(GetSubscriptionInfoRequest {
        signature: signature_field(&object, "signature")?,
    })
}

fn parse_object(body: &[u8]) -> Result<Object, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::invalid_request_format(
            "Invalid request body: expected a JSON object",
        )),
        Err(e) => Err(ApiError::invalid_request_format(format!(
            "Invalid request body: {e}"
        ))),
    }
}

fn required<'a>(object: &'a Object, field: &str) -> Result<&'a Value, ApiError> {
    object
        .get(field)
        .ok_or_else(|| ApiError::missing_field(field))
}

/// A string field, possibly empty.
fn string_field<'a>(object: &'a Object, field: &str) -> Result<&'a str, ApiError> {
    required(object, field)?
        .as_str()
        .ok_or_else(|| ApiError::wrong_field_type(field, "a string"))
}

/// A string field that must not be empty (code 2).
fn non_empty_field<'a>(object: &'a Object, field: &str) -> Result<&'a str, ApiError> {
    let text = string_field(object, field)?;
    if text.is_empty() {
        return Err(ApiError::empty_field(field));
    }
    Ok(text)
}

fn hex_field(object: &Object, field: &str) -> Result<Vec<u8>, ApiError> {
    decode_hex(string_field(object, field)?, field)
}

fn decode_hex(text: &str, field: &str) -> Result<Vec<u8>, ApiError> {
    hex::decode(text).map_err(|e| ApiError::wrong_field_format(field, &e.to_string()))
}

fn locator_field(object: &Object, field: &str) -> Result<Locator, ApiError> {
    let bytes = decode_hex(non_empty_field(object, field)?, field)?;
    Locator::from_slice(&bytes)
        .map_err(|_| ApiError::wrong_field_size(field, LOCATOR_LEN, bytes.len()))
}

fn user_id_field(object: &Object, field: &str) -> Result<UserId, ApiError> {
    let bytes = decode_hex(non_empty_field(object, field)?, field)?;
    if bytes.len() != USER_ID_LEN {
        return Err(ApiError::wrong_field_size(field, USER_ID_LEN, bytes.len()));
    }
    UserId::from_slice(&bytes).map_err(|_| {
        ApiError::new(
            ErrorCode::WrongFieldFormat,
            "Provided public key does not match expected format (33-byte compressed key)",
        )
    })
}

fn u32_field(object: &Object, field: &str) -> Result<u32, ApiError> {
    required(object, field)?
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| ApiError::wrong_field_type(field, "an integer between 0 and 4294967295"))
}

fn signature_field(object: &Object, field: &str) -> Result<String, ApiError> {
    let text = non_empty_field(object, field)?;
    if !zbase32::is_valid(text) {
        return Err(ApiError::wrong_field_format(field, "not zbase32"));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER_ID: &str = "03b513fa949c462e4553dc7283f8535c56c77d222e74d5d8e93682aec802be6ec5";
    const LOCATOR: &str = "33d984bf580d0ab4ce348217461ac1a1";
    const SIG: &str = "rnqsg6mxmdj455bn7zruujsdh4onsa4uwh4j7y4jr9uyf1xaoap9gkx738s7n4a34k6qtws6xkyaazei1xajzcyhim87j86qste7kbif";

    fn code<T: std::fmt::Debug>(result: Result<T, ApiError>) -> u8 {
        result.unwrap_err().code.as_u8()
    }

    fn add(appointment: &str, signature: &str) -> Vec<u8> {
        format!(r#"{{"appointment":{appointment},"signature":{signature}}}"#).into_bytes()
    }

    fn appt(locator: &str, blob: &str, delay: &str) -> String {
        format!(r#"{{"locator":{locator},"encrypted_blob":{blob},"to_self_delay":{delay}}}"#)
    }

    #[test]
    fn register_accepts_a_valid_body_and_ignores_extra_fields() {
        let body = format!(r#"{{"user_id":"{USER_ID}","extra":1}}"#);
        let request = parse_register(body.as_bytes()).unwrap();
        assert_eq!(request.user_id.to_string(), USER_ID);
    }

    #[test]
    fn register_maps_every_defect_to_its_code() {
        assert_eq!(code(parse_register(b"")), 6);
        assert_eq!(code(parse_register(b"not json")), 6);
        assert_eq!(code(parse_register(b"\"a string\"")), 6);
        assert_eq!(code(parse_register(b"[1,2]")), 6);
        assert_eq!(code(parse_register(b"{} trailing")), 6);
        assert_eq!(code(parse_register(b"{}")), 1);
        assert_eq!(code(parse_register(br#"{"user_id":""}"#)), 2);
        assert_eq!(code(parse_register(br#"{"user_id":12}"#)), 3);
        assert_eq!(code(parse_register(br#"{"user_id":null}"#)), 3);
        assert_eq!(code(parse_register(br#"{"user_id":"0203"}"#)), 4);
        assert_eq!(code(parse_register(br#"{"user_id":"020"}"#)), 5);
        assert_eq!(code(parse_register(br#"{"user_id":"zz"}"#)), 5);
        let not_a_point = format!(r#"{{"user_id":"02{}"}}"#, "ff".repeat(32));
        let err = parse_register(not_a_point.as_bytes()).unwrap_err();
        assert_eq!(err.code, ErrorCode::WrongFieldFormat);
        assert!(err.message.contains("33-byte compressed key"));
    }

    #[test]
    fn error_messages_name_the_field() {
        assert_eq!(
            parse_register(b"{}").unwrap_err().message,
            "missing field `user_id`"
        );
        assert_eq!(
            parse_register(br#"{"user_id":""}"#).unwrap_err().message,
            "`user_id` field is empty"
        );
        assert_eq!(
            parse_register(br#"{"user_id":"0203"}"#)
                .unwrap_err()
                .message,
            "Wrong `user_id` field size. Expected 33, received 2"
        );
    }

    #[test]
    fn add_appointment_accepts_valid_and_empty_blobs() {
        let body = add(
            &appt(&format!("\"{LOCATOR}\""), "\"abCD\"", "42"),
            &format!("\"{SIG}\""),
        );
        let request = parse_add_appointment(&body).unwrap();
        assert_eq!(request.appointment.locator.to_string(), LOCATOR);
        assert_eq!(request.appointment.encrypted_blob, vec![0xab, 0xcd]);
        assert_eq!(request.appointment.to_self_delay, 42);
        assert_eq!(request.signature, SIG);

        let empty = add(
            &appt(&format!("\"{LOCATOR}\""), "\"\"", "0"),
            &format!("\"{SIG}\""),
        );
        let request = parse_add_appointment(&empty).unwrap();
        assert!(request.appointment.encrypted_blob.is_empty());
        assert_eq!(request.appointment.to_self_delay, 0);
    }

    #[test]
    fn add_appointment_maps_every_defect_to_its_code() {
        let loc = format!("\"{LOCATOR}\"");
        let sig = format!("\"{SIG}\"");
        let ok_appt = appt(&loc, "\"00\"", "42");
        let cases: Vec<(Vec<u8>, u8)> = vec![
            (b"[]".to_vec(), 6),
            (format!(r#"{{"signature":{sig}}}"#).into_bytes(), 1),
            (format!(r#"{{"appointment":{ok_appt}}}"#).into_bytes(), 1),
            (add("5", &sig), 3),
            (add("\"x\"", &sig), 3),
            (add(r#"{"encrypted_blob":"00","to_self_delay":1}"#, &sig), 1),
            (
                add(&format!(r#"{{"locator":{loc},"to_self_delay":1}}"#), &sig),
                1,
            ),
            (
                add(
                    &format!(r#"{{"locator":{loc},"encrypted_blob":"00"}}"#),
                    &sig,
                ),
                1,
            ),
            (add(&appt("\"\"", "\"00\"", "42"), &sig), 2),
            (add(&appt("7", "\"00\"", "42"), &sig), 3),
            (add(&appt("\"33d9\"", "\"00\"", "42"), &sig), 4),
            (
                add(&appt(&format!("\"{LOCATOR}00\""), "\"00\"", "42"), &sig),
                4,
            ),
            (add(&appt("\"33d\"", "\"00\"", "42"), &sig), 5),
            (add(&appt("\"gg\"", "\"00\"", "42"), &sig), 5),
            (add(&appt(&loc, "[0]", "42"), &sig), 3),
            (add(&appt(&loc, "\"0\"", "42"), &sig), 5),
            (add(&appt(&loc, "\"0x00\"", "42"), &sig), 5),
            (add(&appt(&loc, "\"00\"", "-1"), &sig), 3),
            (add(&appt(&loc, "\"00\"", "4294967296"), &sig), 3),
            (add(&appt(&loc, "\"00\"", "1.5"), &sig), 3),
            (add(&appt(&loc, "\"00\"", "\"42\""), &sig), 3),
            (add(&ok_appt, "\"\""), 2),
            (add(&ok_appt, "1"), 3),
            (add(&ok_appt, "\"not-zbase32!\""), 5),
            (add(&ok_appt, "\"YBND\""), 5),
        ];
        for (body, expected) in cases {
            let text = String::from_utf8(body.clone()).unwrap();
            assert_eq!(code(parse_add_appointment(&body)), expected, "body {text}");
        }
        let max = add(&appt(&loc, "\"00\"", "4294967295"), &sig);
        assert_eq!(
            parse_add_appointment(&max)
                .unwrap()
                .appointment
                .to_self_delay,
            u32::MAX
        );
    }

    #[test]
    fn get_appointment_maps_every_defect_to_its_code() {
        let body = format!(r#"{{"locator":"{LOCATOR}","signature":"{SIG}"}}"#);
        let request = parse_get_appointment(body.as_bytes()).unwrap();
        assert_eq!(request.locator.to_string(), LOCATOR);
        assert_eq!(request.signature, SIG);

        let cases: Vec<(String, u8)> = vec![
            ("1".into(), 6),
            (format!(r#"{{"signature":"{SIG}"}}"#), 1),
            (format!(r#"{{"locator":"{LOCATOR}"}}"#), 1),
            (format!(r#"{{"locator":"","signature":"{SIG}"}}"#), 2),
            (format!(r#"{{"locator":"{LOCATOR}","signature":""}}"#), 2),
            (format!(r#"{{"locator":true,"signature":"{SIG}"}}"#), 3),
            (format!(r#"{{"locator":"{LOCATOR}","signature":[]}}"#), 3),
            (format!(r#"{{"locator":"abcd","signature":"{SIG}"}}"#), 4),
            (format!(r#"{{"locator":"abc","signature":"{SIG}"}}"#), 5),
            (format!(r#"{{"locator":"{LOCATOR}","signature":"0"}}"#), 5),
        ];
        for (body, expected) in cases {
            assert_eq!(
                code(parse_get_appointment(body.as_bytes())),
                expected,
                "body {body}"
            );
        }
    }

    #[test]
    fn get_subscription_info_maps_every_defect_to_its_code() {
        let body = format!(r#"{{"signature":"{SIG}"}}"#);
        assert_eq!(
            parse_get_subscription_info(body.as_bytes())
                .unwrap()
                .signature,
            SIG
        );
        assert_eq!(code(parse_get_subscription_info(b"{")), 6);
        assert_eq!(code(parse_get_subscription_info(b"null")), 6);
        assert_eq!(code(parse_get_subscription_info(b"{}")), 1);
        assert_eq!(code(parse_get_subscription_info(br#"{"signature":""}"#)), 2);
        assert_eq!(code(parse_get_subscription_info(br#"{"signature":5}"#)), 3);
        assert_eq!(
            code(parse_get_subscription_info(br#"{"signature":"l"}"#)),
            5
        );
    }

    #[test]
    fn non_utf8_bodies_are_invalid_request_format() {
        assert_eq!(code(parse_register(&[0xff, 0xfe, 0x7b])), 6);
    }
}
