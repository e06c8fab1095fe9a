//! Appointment blob decryption with an arbitrary blob and dispute txid: no panic (a blob that does not
//! authenticate or does not hold a transaction is an error), and what decrypts re-encrypts to the blob.
#![no_main]

use bitcoin::Txid;
use bitcoin::hashes::Hash;
use libfuzzer_sys::fuzz_target;
use teos_common::cryptography;

fuzz_target!(|data: &[u8]| {
    if data.len() < 32 {
        return;
    }
    let (txid, blob) = data.split_at(32);
    let txid = Txid::from_slice(txid).unwrap();
    if let Ok(penalty) = cryptography::decrypt(blob, &txid) {
        assert_eq!(cryptography::encrypt(&penalty, &txid), blob);
    }
});
