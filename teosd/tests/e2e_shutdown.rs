//! Graceful shutdown: SIGTERM in the middle of a burst of add_appointment loses nothing acknowledged.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use teos_common::appointment::{Appointment, Locator};
use teos_common::protocol::GetAppointmentResponse;

/// A cheap, distinct appointment (its blob need not decrypt: it is never triggered here).
fn fake_appointment(user: u8, n: u32) -> Appointment {
    let mut locator = [0u8; 16];
    locator[0] = user;
    locator[12..].copy_from_slice(&n.to_be_bytes());
    Appointment {
        locator: Locator::from_slice(&locator).unwrap(),
        encrypted_blob: vec![user; 200],
        to_self_delay: 42,
    }
}

#[test]
fn sigterm_during_a_burst_keeps_every_acknowledged_appointment() {
    let chain = Chain::start(1);
    let dir = tempfile::tempdir().unwrap();
    let mut tower = TowerProcess::start(&chain, dir.path(), &TowerOptions::default());
    let url = tower.url();

    let acknowledged: Arc<Mutex<Vec<(u8, Appointment)>>> = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (1..=8u8)
        .map(|seed| {
            let (url, acknowledged, sent) = (url.clone(), acknowledged.clone(), sent.clone());
            std::thread::spawn(move || {
                let user = User::new(&url, seed);
                user.register().unwrap();
                for n in 0..100_000u32 {
                    let appointment = fake_appointment(seed, n);
                    sent.fetch_add(1, Ordering::SeqCst);
                    match user.add(&appointment) {
                        Ok(_) => acknowledged.lock().unwrap().push((seed, appointment)),
                        Err(_) => return, // the tower stopped accepting: end of the burst
                    }
                }
            })
        })
        .collect();

    wait_until("a burst under way", SOON, || {
        acknowledged.lock().unwrap().len() >= 200
    });
    common::signal(tower.pid(), "TERM");
    let status = tower.stop_after_signal(Duration::from_secs(60));
    // Exit code 0 after SIGTERM: the graceful teardown ran to its end (a second signal exits 130,
    // a failed teardown 1).
    assert!(status.success(), "teosd exited with {status} after SIGTERM");
    for client in clients {
        client.join().unwrap();
    }

    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 200);
    let tower = TowerProcess::spawn(&tower.datadir.clone(), tower.api_port, &[]);
    let users: Vec<User> = (1..=8u8)
        .map(|seed| User::new(&tower.url(), seed))
        .collect();
    for (seed, appointment) in &acknowledged {
        match users[usize::from(*seed) - 1].get(&appointment.locator) {
            Ok(GetAppointmentResponse::BeingWatched(stored)) => assert_eq!(&stored, appointment),
            other => panic!("acknowledged appointment lost after restart: {other:?}"),
        }
    }
    eprintln!(
        "{} appointments acknowledged out of {} sent; all present after restart",
        acknowledged.len(),
        sent.load(Ordering::SeqCst)
    );
}
