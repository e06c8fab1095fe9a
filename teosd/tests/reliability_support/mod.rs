//! In-process harness of the reliability suites: a real [`Tower`] (real SQLite store, real key, no
//! bitcoind) behind the real public API server on 127.0.0.1:0, on its own tokio runtime, so that plain
//! `#[test]` functions and proptest cases can drive it over real TCP.
//!
//! It stays here rather than in teos-testkit because it is built from teosd's library (the kit runs
//! the teosd binary and does not depend on teosd); like the kit, it listens on port 0 and reads the
//! bound address back, and never waits on log output.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use bitcoin::BlockHash;
use bitcoin::hashes::Hash;
use secp256k1::SecretKey;
use teos_common::appointment::{Appointment, Locator, UserId};
use teos_common::cryptography;
use teosd::api::http::serve_with_limits;
use teosd::api::limits::HttpLimits;
use teosd::chain_view::SharedChainView;
use teosd::gatekeeper::{Capacity, SubscriptionParams};
use teosd::shutdown::Wakeup;
use teosd::storage::{StorageError, Store};
use teosd::tower::{Tower, TowerKey};
use teosd::watcher::AppointmentRules;
use tokio::sync::oneshot;

/// The tower's height in these tests (no chain moves).
pub const HEIGHT: u32 = 500;

/// A running in-process tower.
pub struct LocalTower {
    pub rt: tokio::runtime::Runtime,
    pub addr: SocketAddr,
    pub store: Store,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl LocalTower {
    /// Starts a tower with these limits and caps (10 slots per registration, min to_self_delay 20).
    pub fn start(limits: HttpLimits, capacity: Capacity) -> LocalTower {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let store = Store::open(&dir.path().join("teos_db.sql3")).unwrap();
        let view = SharedChainView::new(HEIGHT, BlockHash::all_zeros(), 6);
        let key = TowerKey::new(SecretKey::from_slice(&[0x42; 32]).unwrap());
        let tower = Tower::new(
            store.clone(),
            view,
            key,
            SubscriptionParams {
                slots: 10,
                duration: 1000,
                expiry_delta: 6,
            },
            AppointmentRules {
                min_to_self_delay: 20,
                max_blob_size: 2048,
                slot_size: 2048,
            },
            Arc::new(AtomicBool::new(true)),
            Arc::new(Wakeup::new()),
        )
        .with_capacity(capacity);
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = rt.spawn(serve_with_limits(
            listener,
            Arc::new(tower),
            limits,
            async move {
                let _ = stopped.await;
            },
        ));
        LocalTower {
            rt,
            addr,
            store,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs `body` verbatim; returns the status and the JSON answer (`Null` if not JSON).
    pub fn post(&self, path: &str, body: impl Into<Vec<u8>>) -> (u16, serde_json::Value) {
        let (status, _, json) = self.post_full(path, body);
        (status, json)
    }

    /// As [`LocalTower::post`], with the response headers.
    pub fn post_full(
        &self,
        path: &str,
        body: impl Into<Vec<u8>>,
    ) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
        let (url, body) = (self.url(path), body.into());
        self.rt.block_on(async move {
            let response = tokio::time::timeout(
                Duration::from_secs(20),
                reqwest::Client::new().post(url).body(body).send(),
            )
            .await
            .expect("no answer within 20 s")
            .expect("request failed");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let bytes = response.bytes().await.unwrap();
            let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            (status, headers, json)
        })
    }

    /// POSTs `body` verbatim on a fresh connection: `Some((status, json))` for an answer, `None` when
    /// the server closed the connection without one (how the tower holds back an appointment it
    /// cannot take now).
    pub fn post_or_closed(
        &self,
        path: &str,
        body: impl Into<Vec<u8>>,
    ) -> Option<(u16, serde_json::Value)> {
        let (url, body) = (self.url(path), body.into());
        self.rt.block_on(async move {
            let sent = tokio::time::timeout(
                Duration::from_secs(30),
                reqwest::Client::new().post(url).body(body).send(),
            )
            .await
            .expect("neither an answer nor a close within 30 s");
            let response = match sent {
                Ok(response) => response,
                Err(error) => {
                    assert!(!error.is_connect(), "could not even connect: {error}");
                    return None;
                }
            };
            let status = response.status().as_u16();
            let bytes = response.bytes().await.ok()?;
            let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            Some((status, json))
        })
    }

    /// (users, appointments) stored, counted with COUNT(*).
    pub fn counts(&self) -> (u64, u64) {
        self.store
            .read_blocking(|conn| -> Result<_, StorageError> {
                Ok((conn.count_users()?, conn.count_appointments()?))
            })
            .unwrap()
    }

    /// (users, appointments) as the V2 counters table holds them.
    pub fn counters(&self) -> (u64, u64) {
        self.store
            .read_blocking(|tx| -> Result<_, StorageError> {
                Ok((tx.stored_users()?, tx.stored_appointments()?))
            })
            .unwrap()
    }
}

impl Drop for LocalTower {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(20), task).await });
        }
    }
}

/// A user key from a seed (never 0).
pub fn user_key(seed: u32) -> (SecretKey, UserId) {
    let mut bytes = [0x11u8; 32];
    bytes[28..].copy_from_slice(&seed.max(1).to_be_bytes());
    let sk = SecretKey::from_slice(&bytes).unwrap();
    (sk, UserId(sk.public_key(secp256k1::SECP256K1)))
}

/// `{"user_id": ...}`.
pub fn register_body(user: &UserId) -> String {
    format!(r#"{{"user_id":"{user}"}}"#)
}

/// A distinct appointment (its blob is never decrypted here).
pub fn appointment(n: u32, blob_len: usize) -> Appointment {
    let mut locator = [0xabu8; 16];
    locator[12..].copy_from_slice(&n.to_be_bytes());
    Appointment {
        locator: Locator::from_slice(&locator).unwrap(),
        encrypted_blob: vec![0x5a; blob_len],
        to_self_delay: 42,
    }
}

/// The JSON body of a signed add_appointment request.
pub fn add_body(appointment: &Appointment, sk: &SecretKey) -> String {
    let signature = cryptography::sign(&appointment.to_signed_bytes(), sk);
    serde_json::json!({
        "appointment": {
            "locator": appointment.locator.to_string(),
            "encrypted_blob": hex::encode(&appointment.encrypted_blob),
            "to_self_delay": appointment.to_self_delay,
        },
        "signature": signature,
    })
    .to_string()
}

/// Limits with no rate limit and generous timeouts, for tests that are about something else.
pub fn relaxed_limits() -> HttpLimits {
    HttpLimits {
        max_connections: 64,
        header_timeout: Duration::from_secs(30),
        body_timeout: Duration::from_secs(30),
        register_rate: None,
        add_appointment_rate: None,
        hold: Duration::from_secs(10),
    }
}

/// The error code of a JSON error answer.
pub fn code(json: &serde_json::Value) -> Option<u64> {
    json.get("error_code").and_then(|c| c.as_u64())
}
