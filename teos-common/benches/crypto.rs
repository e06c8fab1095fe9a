//! Hot paths of the protocol's cryptography (issue 7): blob decryption on a breach, signature
//! recovery on every request, receipt signing on every accepted appointment/registration.
//!
//! `cargo bench -p teos-common --bench crypto`

use std::hint::black_box;

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, WPubkeyHash, Witness,
};
use criterion::{Criterion, criterion_group, criterion_main};
use secp256k1::SecretKey;
use teos_common::appointment::{Appointment, Locator, UserId};
use teos_common::cryptography;
use teos_common::receipts::{AppointmentReceipt, RegistrationReceipt};

/// A penalty shaped like a BOLT3 `to_local` revocation sweep: one input whose witness is
/// `<sig> 1 <to_local script>`, one P2WPKH output (about 190 bytes serialized).
fn penalty() -> Transaction {
    let signature = vec![0x30u8; 72];
    let script = vec![0x63u8; 79];
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: Txid::from_byte_array([7; 32]),
                vout: 0,
            },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[signature, vec![1], script]),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(990_000),
            script_pubkey: ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([9; 20])),
        }],
    }
}

fn key(byte: u8) -> SecretKey {
    SecretKey::from_slice(&[byte; 32]).unwrap()
}

fn crypto(c: &mut Criterion) {
    let dispute = Txid::from_byte_array([3; 32]);
    let blob = cryptography::encrypt(&penalty(), &dispute);
    c.bench_function("decrypt penalty blob (breach)", |b| {
        b.iter(|| cryptography::decrypt(black_box(&blob), black_box(&dispute)).unwrap())
    });

    let user = key(1);
    let appointment = Appointment {
        locator: Locator::new(&dispute),
        encrypted_blob: blob.clone(),
        to_self_delay: 42,
    };
    let message = appointment.to_signed_bytes();
    let user_signature = cryptography::sign(&message, &user);
    c.bench_function("recover user id from appointment signature", |b| {
        b.iter(|| {
            cryptography::recover_pk(black_box(&message), black_box(&user_signature)).unwrap()
        })
    });

    let tower = key(2);
    let receipt = AppointmentReceipt {
        user_signature: user_signature.clone(),
        start_block: 800_000,
    };
    c.bench_function("sign appointment receipt", |b| {
        b.iter(|| black_box(&receipt).sign(&tower))
    });
    let registration = RegistrationReceipt {
        user_id: UserId(user.public_key(secp256k1::SECP256K1)),
        available_slots: 10_000,
        subscription_start: 800_000,
        subscription_expiry: 804_320,
    };
    c.bench_function("sign registration receipt", |b| {
        b.iter(|| black_box(&registration).sign(&tower))
    });
    c.bench_function("appointment id from locator and user id", |b| {
        let user_id = registration.user_id;
        b.iter(|| {
            teos_common::appointment::AppointmentId::new(black_box(&appointment.locator), &user_id)
        })
    });
}

criterion_group!(benches, crypto);
criterion_main!(benches);
