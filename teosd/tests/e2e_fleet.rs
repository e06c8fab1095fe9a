//! A fleet of teosd instances on one PostgreSQL database (issue 12): every instance serves the
//! APIs, exactly one leads the chain pipeline, and together they answer as one tower.
//!
//! Without PostgreSQL installed these tests print SKIPPED, unless TEOS_TEST_REQUIRE_POSTGRES is
//! set (CI), when they fail.

mod common;
mod fleet_support;

use common::*;
use fleet_support::*;
use teos_common::appointment::{Appointment, Locator};
use teos_common::protocol::GetAppointmentResponse;

/// A watched appointment of its own locator.
fn watched(n: u32) -> Appointment {
    let mut locator = [7u8; 16];
    locator[..4].copy_from_slice(&n.to_be_bytes());
    Appointment {
        locator: Locator::from_slice(&locator).unwrap(),
        encrypted_blob: vec![1; 100],
        to_self_delay: 42,
    }
}

#[test]
fn a_fleet_of_three_answers_as_one_tower() {
    let chain = Chain::start(2);
    let Some(fleet) = Fleet::start("a_fleet_of_three_answers_as_one_tower", &chain, 3, &[]) else {
        return;
    };
    let leader = fleet.wait_for_one_leader(&[0, 1, 2]);
    // One tower key for the whole fleet.
    let tower_id = fleet.tower(0).tower_id();
    for i in 1..3 {
        assert_eq!(
            fleet.tower(i).tower_id(),
            tower_id,
            "instance {i}'s tower id"
        );
    }
    let (_, epoch) = fleet.role(leader).unwrap();
    assert!(epoch >= 1, "a leader's epoch");
    for i in (0..3).filter(|&i| i != leader) {
        assert_eq!(fleet.role(i).unwrap(), ("standby".to_owned(), 0));
    }

    // A user registered on one instance, appointments sent to the others, receipts signed with the
    // fleet's key.
    let users: Vec<User> = (0..3)
        .map(|i| User::new(&fleet.tower(i).url(), 21).verifying(tower_id))
        .collect();
    users[0].register().unwrap();
    for n in 0..30 {
        users[(n % 3) as usize].add(&watched(n)).unwrap();
    }
    let (commitment, penalty) = chain.breach();
    let breach = appointment_for(&commitment, &penalty);
    users[2].add(&breach).unwrap();
    // Every instance sees every appointment.
    for user in &users {
        for n in [0, 1, 2, 29] {
            assert!(matches!(
                user.get(&watched(n).locator),
                Ok(GetAppointmentResponse::BeingWatched(_))
            ));
        }
    }
    // The breach is answered by the leader, whichever instance took the appointment.
    chain.broadcast(&commitment);
    chain.mine(1);
    wait_for_penalty(&chain, &penalty.compute_txid(), &users[0], &breach.locator);
    for user in &users {
        wait_for_state(user, &breach.locator, "dispute_responded");
    }
    // Standbys follow the leader's tip.
    let tip = chain.tip();
    for i in 0..3 {
        let admin = AdminView::connect(fleet.tower(i));
        wait_until("the instance at the leader's tip", SOON, || {
            admin.info().is_some_and(|info| info.hash == tip.1)
        });
    }
}

#[test]
fn slots_are_spent_once_under_concurrent_requests_on_different_instances() {
    let chain = Chain::start(0);
    let Some(fleet) = Fleet::start(
        "slots_are_spent_once_under_concurrent_requests_on_different_instances",
        &chain,
        2,
        &["subscription_slots = 40"],
    ) else {
        return;
    };
    fleet.wait_for_one_leader(&[0, 1]);
    let tower_id = fleet.tower(0).tower_id();
    User::new(&fleet.tower(0).url(), 31).register().unwrap();
    // 8 clients (4 per instance) race to store 80 new appointments for 40 slots.
    let accepted = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|s| {
        for c in 0..8u32 {
            let url = fleet.tower((c % 2) as usize).url();
            let accepted = &accepted;
            s.spawn(move || {
                let user = User::new(&url, 31).verifying(tower_id);
                for k in 0..10 {
                    if user.add(&watched(1000 + c * 10 + k)).is_ok() {
                        accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let accepted = accepted.into_inner();
    let user = User::new(&fleet.tower(1).url(), 31);
    let info = user.info().unwrap();
    assert_eq!(accepted, 40, "exactly the slots bought were spent");
    assert_eq!(info.available_slots, 0);
    assert_eq!(
        info.locators.len(),
        40,
        "no appointment counted twice or lost"
    );
}

#[test]
fn the_leader_answers_from_the_mempool_a_breach_whose_appointment_a_standby_took() {
    let chain = Chain::start(1);
    let Some(fleet) = Fleet::start(
        "the_leader_answers_from_the_mempool_a_breach_whose_appointment_a_standby_took",
        &chain,
        2,
        &["mempool_watch = true"],
    ) else {
        return;
    };
    let leader = fleet.wait_for_one_leader(&[0, 1]);
    let standby = 1 - leader;
    let user = User::new(&fleet.tower(standby).url(), 41);
    user.register().unwrap();
    let (commitment, penalty) = chain.breach();
    let breach = appointment_for(&commitment, &penalty);
    user.add(&breach).unwrap();
    let height = chain.height();
    chain.broadcast(&commitment);
    wait_until("the penalty in the mempool", SOON, || {
        chain.in_mempool(&penalty.compute_txid())
    });
    assert_eq!(chain.height(), height, "answered before any block");
}

#[test]
fn a_new_fleet_answers_a_late_appointment_for_a_dispute_in_its_bootstrap_block() {
    let chain = Chain::start(1);
    // The dispute is in bitcoind's tip when the fleet starts: the first leader bootstraps there
    // without scanning it.
    let (commitment, penalty) = chain.breach();
    chain.broadcast(&commitment);
    chain.mine(1);
    let Some(fleet) = Fleet::start(
        "a_new_fleet_answers_a_late_appointment_for_a_dispute_in_its_bootstrap_block",
        &chain,
        2,
        &[],
    ) else {
        return;
    };
    let leader = fleet.wait_for_one_leader(&[0, 1]);
    let standby = 1 - leader;
    let user = User::new(&fleet.tower(standby).url(), 51);
    user.register().unwrap();
    let breach = appointment_for(&commitment, &penalty);
    user.add(&breach).unwrap();
    wait_for_penalty(&chain, &penalty.compute_txid(), &user, &breach.locator);
    wait_for_state(&user, &breach.locator, "dispute_responded");
}
