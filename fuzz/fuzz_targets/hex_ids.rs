//! The hex identifiers of the protocol (locator, user id, appointment id) parsed from arbitrary text:
//! no panic, and whatever parses prints back to the same lowercase hex.
#![no_main]

use libfuzzer_sys::fuzz_target;
use teos_common::appointment::{AppointmentId, Locator, UserId};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(locator) = text.parse::<Locator>() {
        assert_eq!(locator.to_string(), text.to_ascii_lowercase());
    }
    if let Ok(user) = text.parse::<UserId>() {
        assert_eq!(user.to_string(), text.to_ascii_lowercase());
    }
    if let Ok(id) = text.parse::<AppointmentId>() {
        assert_eq!(id.to_string(), text.to_ascii_lowercase());
    }
});
