//! Refusals a client must not mistake for a verdict, end to end (the real teosd against bitcoind-sim,
//! clients from `teos_common::client`).
//!
//! The reference client (Core Lightning's watchtower-client plugin) files an appointment refused with
//! any error code but 7 as invalid and never sends it again, and loses a fresh one whose connection is
//! closed after it was sent. So when the tower cannot take a valid appointment now (over the per-IP
//! rate, full, bitcoind unreachable) it holds the request, then answers 401 / code 7 "retry later"
//! (the plugin keeps it pending, re-registers and retries); a retry succeeds once the cause is gone. Also here: a user whose
//! subscription expired renews from the current height (PROTOCOL.md "Subscriptions" plus our rule in
//! `gatekeeper::subscription_after`).

mod common;

use std::time::Duration;

use common::*;
use teos_common::appointment::{Appointment, Locator};
use teos_common::client::ClientError;
use teos_common::protocol::GetAppointmentResponse;

/// A distinct appointment that never matches a transaction (its blob is never decrypted).
fn appointment(n: u8) -> Appointment {
    Appointment {
        locator: Locator::from_slice(&[n; 16]).unwrap(),
        encrypted_blob: vec![n; 100],
        to_self_delay: 42,
    }
}

/// The call was refused with code 7 and told to retry later: the one refusal the reference client
/// keeps the appointment for.
fn assert_retry_later<T: std::fmt::Debug>(result: Result<T, ClientError>, what: &str) {
    match result {
        Err(ClientError::Api { status: 401, error }) if error.code.as_u8() == 7 => {
            assert!(
                error.message.contains("retry"),
                "{what}: code 7 without saying to retry: {}",
                error.message
            )
        }
        other => panic!("{what}: expected 401 / code 7 \"retry later\", got {other:?}"),
    }
}

fn assert_watched(user: &User, appointment: &Appointment) {
    match user.get(&appointment.locator) {
        Ok(GetAppointmentResponse::BeingWatched(stored)) => assert_eq!(&stored, appointment),
        other => panic!("not watched: {other:?}"),
    }
}

#[test]
fn an_appointment_sent_while_bitcoind_is_unreachable_is_told_to_retry_then_accepted_once_it_is_back()
 {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let user = User::new(&tower.url(), 40);
    user.register().unwrap();

    // Refused until cleared below: the test decides when bitcoind comes back.
    chain.sim().faults().refuse_rpc(Duration::from_secs(600));
    wait_until(
        "the tower seeing bitcoind unreachable",
        SOON,
        || matches!(user.info(), Err(ClientError::Api { status: 503, ref error }) if error.code.as_u8() == 32),
    );
    let sent = appointment(1);
    assert_retry_later(
        user.add(&sent),
        "add_appointment while bitcoind is unreachable",
    );
    // The reads keep their JSON answer (a client only shows it): 503 / code 32.
    assert_eq!(error_code(user.get(&sent.locator)), (503, 32));

    chain.sim().faults().clear();
    wait_until("the same appointment accepted", SOON, || {
        user.add(&sent).is_ok()
    });
    assert_watched(&user, &sent);
}

#[test]
fn an_appointment_over_max_appointments_is_told_to_retry_and_accepted_after_a_restart_with_more_room()
 {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let options = TowerOptions {
        extra: vec!["max_appointments = 1".into()],
    };
    let mut tower = TowerProcess::start(&chain, dir.path(), &options);
    let user = User::new(&tower.url(), 41);
    user.register().unwrap();
    let (first, second) = (appointment(1), appointment(2));
    user.add(&first).unwrap();
    assert_retry_later(user.add(&second), "add_appointment over max_appointments");
    assert_eq!(
        error_code(user.get(&second.locator)),
        (404, 36),
        "nothing stored"
    );
    assert_eq!(
        user.info().unwrap().available_slots,
        9999,
        "nothing charged"
    );

    // The operator raises the cap and restarts the tower: the client's retry is accepted.
    assert!(tower.stop().success());
    let config = dir.path().join("teos.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("max_appointments = 1", "max_appointments = 2"),
    )
    .unwrap();
    let tower = TowerProcess::spawn(dir.path(), tower.api_port, &[]);
    let user = User::new(&tower.url(), 41);
    user.add(&second).unwrap();
    assert_watched(&user, &first);
    assert_watched(&user, &second);
}

#[test]
fn appointments_over_the_rate_are_held_and_served_and_beyond_the_hold_told_to_retry_with_code_7() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    // 600 per minute after a burst of 2: a turn every 100 ms, well within the 10 s hold.
    let options = TowerOptions {
        extra: vec![
            "add_appointment_rate_limit = 600".into(),
            "add_appointment_rate_burst = 2".into(),
        ],
    };
    let tower = TowerProcess::start(&chain, dir.path(), &options);
    let user = User::new(&tower.url(), 42);
    user.register().unwrap();
    let sent: Vec<Appointment> = (1..=6).map(appointment).collect();
    for appointment in &sent {
        // Back to back: the ones over the rate wait for their turn and are accepted.
        user.add(appointment).unwrap();
    }
    for appointment in &sent {
        assert_watched(&user, appointment);
    }
    drop(tower);

    // One per minute: the next turn is beyond the hold, so the request is told to retry at once.
    let dir = tempfile::tempdir().unwrap();
    let options = TowerOptions {
        extra: vec![
            "add_appointment_rate_limit = 1".into(),
            "add_appointment_rate_burst = 1".into(),
        ],
    };
    let tower = TowerProcess::start(&chain, dir.path(), &options);
    let user = User::new(&tower.url(), 43);
    user.register().unwrap();
    user.add(&appointment(1)).unwrap();
    assert_retry_later(user.add(&appointment(2)), "add_appointment beyond the hold");
    assert_eq!(error_code(user.get(&appointment(2).locator)), (404, 36));
}

/// The tower's height, read through the API: the start of a fresh registration is the tower's height
/// (PROTOCOL.md "Subscriptions"). Each call registers a new user (`probe` seeds).
fn tower_height(tower: &TowerProcess, probe: &mut u8) -> u32 {
    *probe += 1;
    User::new(&tower.url(), *probe)
        .register()
        .unwrap()
        .subscription_start
}

#[test]
fn a_user_whose_subscription_expired_renews_from_the_current_height_and_can_add_again() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    // Subscriptions last 2 blocks; users are kept 6 blocks after expiry.
    let options = TowerOptions {
        extra: vec![
            "subscription_duration = 2".into(),
            "expiry_delta = 6".into(),
            "register_rate_limit = 0".into(),
        ],
    };
    let tower = TowerProcess::start(&chain, dir.path(), &options);
    let user = User::new(&tower.url(), 44);
    let first = user.register().unwrap();
    let start = first.subscription_start;
    assert_eq!(first.subscription_expiry, start + 2);

    // 5 blocks later the subscription is 3 blocks over (old expiry + duration is already past), and
    // the user is still kept (outdated only at expiry + 6).
    chain.mine(5);
    let height = start + 5;
    let mut probe = 100;
    wait_until("the tower at the new height", SOON, || {
        tower_height(&tower, &mut probe) == height
    });
    assert_eq!(error_code(user.add(&appointment(1))), (401, 7), "expired");

    let renewed = user.register().unwrap();
    assert!(
        renewed.subscription_expiry > height,
        "renewal gave a subscription already expired at {height}: {renewed:?}"
    );
    assert_eq!(
        (renewed.subscription_start, renewed.subscription_expiry),
        (height, height + 2)
    );
    assert_eq!(
        renewed.available_slots, 20000,
        "slots are added as for any renewal"
    );
    user.add(&appointment(1)).unwrap();
    assert_watched(&user, &appointment(1));
}
