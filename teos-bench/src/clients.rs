//! Simulated tower users: deterministic keys and pre-signed request bodies.
//!
//! Signing happens before the clock starts (a recoverable ECDSA signature costs tens of
//! microseconds, as much as the tower's own work), so the load generator only sends bytes.

use bitcoin::hashes::{Hash, sha256};
use bytes::Bytes;
use rand::{Rng, RngCore, SeedableRng};
use secp256k1::SecretKey;
use teos_common::appointment::{Appointment, Locator, UserId};
use teos_common::cryptography;
use teos_common::protocol::{AddAppointmentRequest, RegisterRequest};

use crate::error::BenchError;

/// `to_self_delay` of every generated appointment (blocks; above teosd's default minimum of 20).
pub const TO_SELF_DELAY: u32 = 42;

/// A user of the tower: its secret key and id (the compressed public key, PROTOCOL.md "Users").
#[derive(Clone, Debug)]
pub struct BenchUser {
    /// Signs the user's requests.
    pub sk: SecretKey,
    /// `user_id` on the wire.
    pub id: UserId,
}

impl BenchUser {
    /// User number `n`: the key is `sha256("teos-bench user" || n)`, so a run can find the keys of
    /// users another step created (e.g. the prefill).
    pub fn new(n: u64) -> BenchUser {
        let mut data = b"teos-bench user".to_vec();
        data.extend_from_slice(&n.to_le_bytes());
        let mut digest = sha256::Hash::hash(&data).to_byte_array();
        let sk = loop {
            // A SHA-256 output is a valid key except with negligible probability; rehash if not.
            match SecretKey::from_slice(&digest) {
                Ok(sk) => break sk,
                Err(_) => digest = sha256::Hash::hash(&digest).to_byte_array(),
            }
        };
        let id = UserId(sk.public_key(secp256k1::SECP256K1));
        BenchUser { sk, id }
    }

    /// The JSON body of `POST /register` for this user.
    pub fn register_body(&self) -> Result<Bytes, BenchError> {
        to_body(&RegisterRequest { user_id: self.id })
    }

    /// The JSON body of `POST /add_appointment`: `appointment` signed by this user.
    pub fn add_appointment_body(&self, appointment: &Appointment) -> Result<Bytes, BenchError> {
        let signature = cryptography::sign(&appointment.to_signed_bytes(), &self.sk);
        to_body(&AddAppointmentRequest {
            appointment: appointment.clone(),
            signature,
        })
    }
}

fn to_body<T: serde::Serialize>(value: &T) -> Result<Bytes, BenchError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| BenchError::Check(format!("serializing a request: {e}")))
}

/// An appointment with a random locator and a random `blob_size`-byte blob. The tower does not
/// decrypt blobs when it accepts them, so random bytes cost it the same as a real penalty.
pub fn random_appointment(rng: &mut impl RngCore, blob_size: usize) -> Appointment {
    let mut locator = [0u8; 16];
    rng.fill_bytes(&mut locator);
    let mut blob = vec![0u8; blob_size];
    rng.fill_bytes(&mut blob);
    Appointment {
        // 16 bytes always make a locator.
        locator: Locator::from_slice(&locator).unwrap_or_else(|_| unreachable!()),
        encrypted_blob: blob,
        to_self_delay: TO_SELF_DELAY,
    }
}

/// `count` signed `add_appointment` bodies, appointment `i` belonging to `users[i % users.len()]`,
/// built on `threads` threads (deterministic for a given `seed`).
pub fn presign(
    users: &[BenchUser],
    count: usize,
    blob_size: usize,
    seed: u64,
    threads: usize,
) -> Result<Vec<Bytes>, BenchError> {
    if users.is_empty() {
        return Err(BenchError::Check("no users to sign appointments".into()));
    }
    let threads = threads.max(1);
    let per = count.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = (t * per).min(count);
                let end = ((t + 1) * per).min(count);
                scope.spawn(move || {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ ((t as u64) << 32));
                    (start..end)
                        .map(|i| {
                            let appointment = random_appointment(&mut rng, blob_size);
                            users[i % users.len()].add_appointment_body(&appointment)
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut bodies = Vec::with_capacity(count);
        for h in handles {
            let part = h
                .join()
                .map_err(|_| BenchError::Check("a signing thread panicked".into()))??;
            bodies.extend(part);
        }
        Ok(bodies)
    })
}

/// A random `u64` for seeding, when the caller gives none.
pub fn random_seed() -> u64 {
    rand::thread_rng().r#gen()
}

#[cfg(test)]
mod tests {
    use super::*;
    use teos_common::protocol::parse_add_appointment;

    #[test]
    fn the_same_number_gives_the_same_user() {
        assert_eq!(BenchUser::new(7).id, BenchUser::new(7).id);
        assert_ne!(BenchUser::new(7).id, BenchUser::new(8).id);
    }

    #[test]
    fn presigned_bodies_parse_and_recover_to_their_user() {
        let users = vec![BenchUser::new(1), BenchUser::new(2)];
        let bodies = presign(&users, 5, 300, 9, 2).unwrap();
        assert_eq!(bodies.len(), 5);
        for (i, body) in bodies.iter().enumerate() {
            let request = parse_add_appointment(body).unwrap();
            assert_eq!(request.appointment.encrypted_blob.len(), 300);
            let signer = cryptography::recover_pk(
                &request.appointment.to_signed_bytes(),
                &request.signature,
            )
            .unwrap();
            assert_eq!(UserId(signer), users[i % 2].id);
        }
    }
}
