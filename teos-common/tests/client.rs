//! The `client` feature against a fake tower on 127.0.0.1:0 that parses with this crate's parsers and
//! signs receipts with a known key. Run with `cargo test -p teos-common --features client`.
#![cfg(feature = "client")]

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use bitcoin::secp256k1::SecretKey;

use teos_common::appointment::{Appointment, Locator, UserId};
use teos_common::client::{ClientError, TowerClient, user_id_of};
use teos_common::cryptography::{self, get_random_keypair};
use teos_common::errors::{ApiError, ErrorCode};
use teos_common::protocol::{self, GetAppointmentResponse, get_appointment_message};
use teos_common::receipts::{AppointmentReceipt, RegistrationReceipt};

struct FakeTower {
    sk: SecretKey,
    /// The locator the fake tower knows; any other gets code 36.
    known: Locator,
}

type Reply = (StatusCode, String);

fn ok<T: serde::Serialize>(body: &T) -> Reply {
    (StatusCode::OK, serde_json::to_string(body).unwrap())
}

fn fail(err: ApiError) -> Reply {
    let status = StatusCode::from_u16(err.http_status()).unwrap();
    (status, serde_json::to_string(&err.to_response()).unwrap())
}

async fn register(State(t): State<Arc<FakeTower>>, body: Bytes) -> Reply {
    let request = match protocol::parse_register(&body) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let receipt = RegistrationReceipt {
        user_id: request.user_id,
        available_slots: 10,
        subscription_start: 100,
        subscription_expiry: 4420,
    };
    ok(&protocol::RegisterResponse {
        user_id: request.user_id,
        available_slots: 10,
        subscription_start: 100,
        subscription_expiry: 4420,
        subscription_signature: receipt.sign(&t.sk),
    })
}

async fn add_appointment(State(t): State<Arc<FakeTower>>, body: Bytes) -> Reply {
    let request = match protocol::parse_add_appointment(&body) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if cryptography::recover_pk(&request.appointment.to_signed_bytes(), &request.signature).is_err()
    {
        return fail(ApiError::invalid_signature_or_subscription("bad signature"));
    }
    let receipt = AppointmentReceipt {
        user_signature: request.signature,
        start_block: 101,
    };
    ok(&protocol::AddAppointmentResponse {
        locator: request.appointment.locator,
        start_block: 101,
        signature: receipt.sign(&t.sk),
        available_slots: 9,
        subscription_expiry: 4420,
    })
}

async fn get_appointment(State(t): State<Arc<FakeTower>>, body: Bytes) -> Reply {
    let request = match protocol::parse_get_appointment(&body) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let message = get_appointment_message(&request.locator);
    if cryptography::recover_pk(message.as_bytes(), &request.signature).is_err() {
        return fail(ApiError::invalid_signature_or_subscription("bad signature"));
    }
    if request.locator != t.known {
        return fail(ApiError::appointment_not_found());
    }
    ok(&GetAppointmentResponse::BeingWatched(Appointment {
        locator: t.known,
        encrypted_blob: vec![7; 3],
        to_self_delay: 42,
    }))
}

async fn get_subscription_info(State(t): State<Arc<FakeTower>>, body: Bytes) -> Reply {
    if let Err(e) = protocol::parse_get_subscription_info(&body) {
        return fail(e);
    }
    ok(&protocol::GetSubscriptionInfoResponse {
        available_slots: 9,
        subscription_expiry: 4420,
        locators: vec![t.known],
    })
}

async fn not_json() -> Reply {
    (StatusCode::BAD_GATEWAY, "<html>proxy error</html>".into())
}

/// Starts the fake tower and returns its base URL and id.
async fn start_fake_tower() -> (String, UserId) {
    let (sk, pk) = get_random_keypair();
    let tower = Arc::new(FakeTower {
        sk,
        known: Locator::from_slice(&[9u8; 16]).unwrap(),
    });
    let app = Router::new()
        .route("/register", post(register))
        .route("/add_appointment", post(add_appointment))
        .route("/get_appointment", post(get_appointment))
        .route("/get_subscription_info", post(get_subscription_info))
        .route("/ping", get(|| async {}))
        .route("/broken/get_subscription_info", post(not_json))
        .with_state(tower);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/"), UserId(pk))
}

#[tokio::test]
async fn register_verifies_the_receipt_against_the_tower_id() {
    let (url, tower_id) = start_fake_tower().await;
    let (user_sk, _) = get_random_keypair();
    let user = user_id_of(&user_sk);

    let client = TowerClient::new(url.clone()).with_tower_id(tower_id);
    let response = client.register(&user).await.unwrap();
    assert_eq!(response.user_id, user);
    assert_eq!(response.available_slots, 10);

    let (_, impostor) = get_random_keypair();
    let wrong = TowerClient::new(url).with_tower_id(UserId(impostor));
    assert!(matches!(
        wrong.register(&user).await,
        Err(ClientError::InvalidTowerSignature(_))
    ));
}

#[tokio::test]
async fn add_appointment_signs_the_request_and_checks_the_receipt() {
    let (url, tower_id) = start_fake_tower().await;
    let (user_sk, _) = get_random_keypair();
    let appointment = Appointment {
        locator: Locator::from_slice(&[1u8; 16]).unwrap(),
        encrypted_blob: vec![1, 2, 3],
        to_self_delay: 42,
    };
    let client = TowerClient::new(url.clone()).with_tower_id(tower_id);
    let response = client
        .add_appointment(&appointment, &user_sk)
        .await
        .unwrap();
    assert_eq!(response.locator, appointment.locator);
    assert_eq!(response.start_block, 101);

    let (_, impostor) = get_random_keypair();
    let wrong = TowerClient::new(url).with_tower_id(UserId(impostor));
    assert!(matches!(
        wrong.add_appointment(&appointment, &user_sk).await,
        Err(ClientError::InvalidTowerSignature(_))
    ));
}

#[tokio::test]
async fn get_requests_decode_answers_and_api_errors() {
    let (url, _) = start_fake_tower().await;
    let (user_sk, _) = get_random_keypair();
    let client = TowerClient::new(url);
    let known = Locator::from_slice(&[9u8; 16]).unwrap();

    match client.get_appointment(&known, &user_sk).await.unwrap() {
        GetAppointmentResponse::BeingWatched(a) => assert_eq!(a.to_self_delay, 42),
        other => panic!("unexpected {other:?}"),
    }
    let unknown = Locator::from_slice(&[8u8; 16]).unwrap();
    match client.get_appointment(&unknown, &user_sk).await {
        Err(ClientError::Api { status, error }) => {
            assert_eq!(status, 404);
            assert_eq!(error.code, ErrorCode::AppointmentNotFound);
            assert_eq!(error.message, "Appointment not found");
        }
        other => panic!("unexpected {other:?}"),
    }

    let info = client.get_subscription_info(&user_sk).await.unwrap();
    assert_eq!(info.locators, vec![known]);
    client.ping().await.unwrap();
}

#[tokio::test]
async fn transport_and_decode_failures_are_reported_as_such() {
    let (url, _) = start_fake_tower().await;
    let (user_sk, _) = get_random_keypair();

    // A base URL under which the endpoint answers a non-JSON error body (like a proxy's error page).
    let broken = TowerClient::new(format!("{url}broken"));
    match broken.get_subscription_info(&user_sk).await {
        Err(ClientError::Decode(detail)) => assert!(detail.contains("502"), "{detail}"),
        other => panic!("unexpected {other:?}"),
    }

    // A port nobody listens on: bind, learn the port, close.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let closed = TowerClient::new(format!("http://127.0.0.1:{port}"));
    assert!(matches!(
        closed.ping().await,
        Err(ClientError::Transport(_))
    ));
}
