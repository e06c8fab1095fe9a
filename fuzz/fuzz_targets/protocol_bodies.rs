//! Every request body parser of the public API (`teos_common::protocol::parse_*`) on arbitrary bytes:
//! no panic, every refusal carries a 4xx code of PROTOCOL.md "Errors" (1–6), and an accepted body
//! re-serialized by the client types parses to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use teos_common::errors::ApiError;
use teos_common::protocol;

fn refusal_is_a_request_error(error: &ApiError) {
    let code = error.code.as_u8();
    assert!((1..=6).contains(&code), "parser answered code {code}: {error}");
    assert!((400..500).contains(&error.http_status()));
}

fuzz_target!(|body: &[u8]| {
    match protocol::parse_register(body) {
        Ok(request) => {
            let again = format!(r#"{{"user_id":"{}"}}"#, request.user_id);
            assert_eq!(protocol::parse_register(again.as_bytes()).unwrap().user_id, request.user_id);
        }
        Err(e) => refusal_is_a_request_error(&e),
    }
    match protocol::parse_add_appointment(body) {
        Ok(request) => {
            let a = &request.appointment;
            let again = format!(
                r#"{{"appointment":{{"locator":"{}","encrypted_blob":"{}","to_self_delay":{}}},"signature":"{}"}}"#,
                a.locator,
                to_hex(&a.encrypted_blob),
                a.to_self_delay,
                request.signature
            );
            let parsed = protocol::parse_add_appointment(again.as_bytes()).unwrap();
            assert_eq!(&parsed.appointment, a);
            assert_eq!(parsed.signature, request.signature);
        }
        Err(e) => refusal_is_a_request_error(&e),
    }
    if let Err(e) = protocol::parse_get_appointment(body) {
        refusal_is_a_request_error(&e);
    }
    if let Err(e) = protocol::parse_get_subscription_info(body) {
        refusal_is_a_request_error(&e);
    }
});

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
