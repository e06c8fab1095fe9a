//! Every error row of PROTOCOL.md ("Errors"), provoked over HTTP against the real tower.
//!
//! Code 255 (UNEXPECTED_ERROR) has no path in the tower by design; the HTTP layer's mapping of an internal
//! failure to 500/255 is provoked over HTTP in `http_api.rs` with a tower that panics.

mod common;

use std::time::Duration;

use common::*;
use teos_common::appointment::Appointment;
use teos_common::client::ClientError;

/// POSTs a raw body; returns (HTTP status, error_code).
fn post(tower: &TowerProcess, path: &str, body: &str) -> (u16, u8) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let response = reqwest::Client::new()
            .post(format!("{}/{path}", tower.url()))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let json: serde_json::Value = response.json().await.unwrap();
        assert!(
            json["error"].as_str().is_some_and(|m| !m.is_empty()),
            "human message in {json}"
        );
        (status, json["error_code"].as_u64().unwrap() as u8)
    })
}

#[test]
fn malformed_requests_get_codes_1_to_6_and_change_nothing() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let user_id = "03b513fa949c462e4553dc7283f8535c56c77d222e74d5d8e93682aec802be6ec5";

    assert_eq!(post(&tower, "register", "{}"), (400, 1), "MISSING_FIELD");
    assert_eq!(
        post(&tower, "register", r#"{"user_id": ""}"#),
        (400, 2),
        "EMPTY_FIELD"
    );
    assert_eq!(
        post(&tower, "register", r#"{"user_id": 42}"#),
        (400, 3),
        "WRONG_FIELD_TYPE"
    );
    assert_eq!(
        post(
            &tower,
            "register",
            &format!(r#"{{"user_id": "{}"}}"#, &user_id[..64])
        ),
        (400, 4),
        "WRONG_FIELD_SIZE"
    );
    assert_eq!(
        post(
            &tower,
            "register",
            &format!(r#"{{"user_id": "zz{}"}}"#, &user_id[2..])
        ),
        (400, 5),
        "WRONG_FIELD_FORMAT (hex)"
    );
    let not_a_point = format!("02{}", "ff".repeat(32));
    assert_eq!(
        post(
            &tower,
            "register",
            &format!(r#"{{"user_id": "{not_a_point}"}}"#)
        ),
        (400, 5),
        "WRONG_FIELD_FORMAT (curve)"
    );
    assert_eq!(
        post(&tower, "register", "not json"),
        (400, 6),
        "INVALID_REQUEST_FORMAT"
    );
    assert_eq!(
        post(
            &tower,
            "get_appointment",
            r#"{"locator": "00", "signature": "%%%"}"#
        ),
        (400, 4)
    );
    assert_eq!(
        post(&tower, "get_subscription_info", r#"{"signature": "!!"}"#),
        (400, 5),
        "bad zbase32"
    );

    // Nothing was registered by any of it.
    let user = User::new(&tower.url(), 9);
    assert_eq!(error_code(user.info()), (401, 7));
}

#[test]
fn subscription_errors_get_code_7() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let options = TowerOptions {
        extra: vec!["subscription_duration = 2".into()],
    };
    let tower = TowerProcess::start(&chain, dir.path(), &options);
    let user = User::new(&tower.url(), 10);
    let (commitment, penalty) = chain.breach();
    let appointment = appointment_for(&commitment, &penalty);

    // Unknown user: every signed call is refused.
    assert_eq!(error_code(user.add(&appointment)), (401, 7));
    assert_eq!(error_code(user.get(&appointment.locator)), (401, 7));
    assert_eq!(error_code(user.info()), (401, 7));

    // A registered user whose subscription expires.
    user.register().unwrap();
    user.add(&appointment).unwrap();
    chain.mine(2);
    tower.wait_for_tip(&chain);
    match user.add(&appointment) {
        Err(ClientError::Api { status: 401, error }) => {
            assert_eq!(error.code.as_u8(), 7);
            assert!(error.message.contains("expired"), "{}", error.message);
        }
        other => panic!("expected an expired subscription, got {other:?}"),
    }
    assert_eq!(error_code(user.info()), (401, 7));
}

#[test]
fn not_enough_slots_gets_code_7_and_slot_overflow_gets_65() {
    let chain = Chain::start(2);
    let dir = tempfile::tempdir().unwrap();
    let options = TowerOptions {
        extra: vec!["subscription_slots = 4294967295".into()],
    };
    let tower = TowerProcess::start(&chain, dir.path(), &options);
    let user = User::new(&tower.url(), 11);
    assert_eq!(user.register().unwrap().available_slots, u32::MAX);
    assert_eq!(
        error_code(user.register()),
        (400, 65),
        "REGISTRATION_RESOURCE_EXHAUSTED"
    );

    let dir2 = tempfile::tempdir().unwrap();
    let options = TowerOptions {
        extra: vec!["subscription_slots = 1".into()],
    };
    let tower2 = TowerProcess::start(&chain, dir2.path(), &options);
    let user = User::new(&tower2.url(), 12);
    user.register().unwrap();
    let (c1, p1) = chain.breach();
    let (c2, p2) = chain.breach();
    user.add(&appointment_for(&c1, &p1)).unwrap();
    assert_eq!(
        error_code(user.add(&appointment_for(&c2, &p2))),
        (401, 7),
        "no slot left"
    );
    // Updating the appointment already paid for needs no new slot.
    user.add(&appointment_for(&c1, &p1)).unwrap();
    drop(tower);
}

#[test]
fn appointment_field_errors_get_codes_33_and_34() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let options = TowerOptions {
        extra: vec!["max_encrypted_blob_size = 300".into()],
    };
    let tower = TowerProcess::start(&chain, dir.path(), &options);
    let user = User::new(&tower.url(), 13);
    let slots = user.register().unwrap().available_slots;
    let (commitment, penalty) = chain.breach();
    let good = appointment_for(&commitment, &penalty);

    let empty = Appointment {
        encrypted_blob: vec![],
        ..good.clone()
    };
    assert_eq!(
        error_code(user.add(&empty)),
        (400, 33),
        "empty blob refused"
    );
    let short_delay = Appointment {
        to_self_delay: 19,
        ..good.clone()
    };
    assert_eq!(
        error_code(user.add(&short_delay)),
        (400, 33),
        "to_self_delay below 20"
    );
    let big = Appointment {
        encrypted_blob: vec![7; 301],
        ..good.clone()
    };
    assert_eq!(
        error_code(user.add(&big)),
        (400, 34),
        "blob over max_encrypted_blob_size"
    );
    let info = user.info().unwrap();
    assert_eq!(
        (info.available_slots, info.locators.len()),
        (slots, 0),
        "nothing stored or charged"
    );
    user.add(&good).unwrap();
}

#[test]
fn triggered_and_unknown_appointments_get_codes_35_and_36() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let user = User::new(&tower.url(), 14);
    user.register().unwrap();
    let (commitment, penalty) = chain.breach();
    let appointment = appointment_for(&commitment, &penalty);
    assert_eq!(
        error_code(user.get(&appointment.locator)),
        (404, 36),
        "APPOINTMENT_NOT_FOUND"
    );

    user.add(&appointment).unwrap();
    chain.broadcast(&commitment);
    chain.mine(1);
    wait_until("the penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty.compute_txid())
    });
    wait_until("the tracker", SOON, || user.add(&appointment).is_err());
    assert_eq!(
        error_code(user.add(&appointment)),
        (400, 35),
        "APPOINTMENT_ALREADY_TRIGGERED"
    );
}

#[test]
fn bitcoind_unreachable_gets_code_32_then_service_resumes() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let user = User::new(&tower.url(), 15);
    user.register().unwrap();

    chain.sim().faults().refuse_rpc(Duration::from_secs(3));
    wait_until(
        "503 / code 32",
        SOON,
        || matches!(user.info(), Err(ClientError::Api { status: 503, ref error }) if error.code.as_u8() == 32),
    );
    assert_eq!(error_code(user.register()), (503, 32));
    wait_until("service back", SOON, || user.info().is_ok());
}
