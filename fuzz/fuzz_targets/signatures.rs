//! Lightning-style signature recovery (`cryptography::recover_pk`) on an arbitrary message and
//! signature text: no panic, and a recovered key verifies the signature it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use teos_common::cryptography;

fuzz_target!(|data: &[u8]| {
    // First byte: where the message ends and the signature text starts.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(rest.len());
    let (message, signature) = rest.split_at(split);
    let signature = String::from_utf8_lossy(signature);
    if let Ok(key) = cryptography::recover_pk(message, &signature) {
        assert!(cryptography::verify(message, &signature, &key));
    }
});
