//! zbase32 (the signatures' text form): decoding arbitrary text never panics, `is_valid` agrees with
//! `decode`, and encoding arbitrary bytes decodes back to them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use teos_common::cryptography::zbase32;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let decoded = zbase32::decode(&text);
    assert_eq!(decoded.is_ok(), zbase32::is_valid(&text));
    if let Ok(bytes) = decoded {
        assert_eq!(bytes.len(), text.chars().count() * 5 / 8);
    }
    let encoded = zbase32::encode(data);
    assert!(zbase32::is_valid(&encoded));
    assert_eq!(zbase32::decode(&encoded).unwrap(), data);
});
