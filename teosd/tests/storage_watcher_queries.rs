//! The [`Tx`](teosd::storage::Tx) queries on `users` and `appointments`, and the cascades of
//! deletions, run through `Store::write_blocking` / `read_blocking`.

#[path = "storage_support.rs"]
mod support;

use support::*;
use teosd::storage::{AppointmentId, StorageError, TrackerStatus};

// ---- users ----

#[test]
fn user_upsert_get_replace_and_count() {
    let (_dir, _path, store) = open_temp();
    assert_eq!(r(&store, |c| c.user(&user(1))), None);
    add_users(&store, 2, 1000);
    assert_eq!(r(&store, |c| c.user(&user(1))), Some(user_record(10, 1000)));
    w(&store, |c| c.upsert_user(&user(1), &user_record(99, 5000))).unwrap();
    assert_eq!(r(&store, |c| c.user(&user(1))), Some(user_record(99, 5000)));
    assert_eq!(r(&store, |tx| tx.count_users()), 2);
}

#[test]
fn user_upsert_keeps_the_users_appointments() {
    let (_dir, _path, store) = open_temp();
    add_users(&store, 1, 1000);
    w(&store, |c| {
        c.upsert_appointment(&appointment(locator(1), user(1)))
    })
    .unwrap();
    w(&store, |c| c.upsert_user(&user(1), &user_record(1, 2000))).unwrap();
    assert_eq!(r(&store, |tx| tx.count_appointments()), 1);
}

#[test]
fn user_ids_list_whole_and_in_pages_in_byte_order() {
    let (_dir, _path, store) = open_temp();
    add_users(&store, 25, 1000);
    let all = r(&store, |tx| tx.user_ids());
    assert_eq!(all.len(), 25);
    let mut sorted = all.clone();
    sorted.sort_by_key(|u| u.to_bytes());
    assert_eq!(all, sorted);

    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = r(&store, move |c| c.user_ids_after(after.as_ref(), 10));
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        after = page.last().copied();
        paged.extend(page);
    }
    assert_eq!(paged, all);
}

#[test]
fn add_slots_refunds_charges_and_refuses_out_of_range() {
    let (_dir, _path, store) = open_temp();
    add_users(&store, 1, 1000); // 10 slots
    assert_eq!(w(&store, |c| c.add_slots(&user(1), 5)).unwrap(), 15);
    assert_eq!(w(&store, |c| c.add_slots(&user(1), -15)).unwrap(), 0);
    assert!(matches!(
        w(&store, |c| c.add_slots(&user(1), -1)),
        Err(StorageError::SlotsOutOfRange {
            available: 0,
            delta: -1
        })
    ));
    w(&store, |c| {
        c.upsert_user(&user(1), &user_record(u32::MAX, 1000))
    })
    .unwrap();
    assert!(matches!(
        w(&store, |c| c.add_slots(&user(1), 1)),
        Err(StorageError::SlotsOutOfRange { .. })
    ));
    assert_eq!(
        r(&store, |c| c.user(&user(1))).unwrap().available_slots,
        u32::MAX
    );
    assert!(matches!(
        w(&store, |c| c.add_slots(&user(2), 1)),
        Err(StorageError::NotFound(_))
    ));
}

#[test]
fn delete_outdated_removes_expired_users_but_keeps_those_with_trackers() {
    let (_dir, _path, store) = open_temp();
    // user 1: expired, watched appointment only -> deleted with it.
    // user 2: expired, one tracked and one watched appointment -> kept, loses the watched one.
    // user 3: expires exactly at the limit (1000 + 10 <= 1010) -> deleted.
    // user 4: not yet outdated (1001 + 10 > 1010) -> untouched.
    w(&store, |c| -> Result<(), StorageError> {
        c.upsert_user(&user(1), &user_record(1, 900))?;
        c.upsert_user(&user(2), &user_record(1, 900))?;
        c.upsert_user(&user(3), &user_record(1, 1000))?;
        c.upsert_user(&user(4), &user_record(1, 1001))?;
        for (n, u) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 4)] {
            c.upsert_appointment(&appointment(locator(n), user(u)))?;
        }
        let tracked = AppointmentId::new(&locator(2), &user(2));
        c.insert_tracker(&tracker(tracked, 2, TrackerStatus::InMempool, 900))
    })
    .unwrap();
    let mut deleted = w(&store, |c| c.delete_outdated_users(1010, 10)).unwrap();
    deleted.sort_by_key(|u| u.to_bytes());
    let mut want = vec![user(1), user(3)];
    want.sort_by_key(|u| u.to_bytes());
    assert_eq!(deleted, want);

    let remaining = r(&store, |tx| tx.user_ids());
    assert_eq!(remaining.len(), 2);
    assert!(remaining.contains(&user(2)) && remaining.contains(&user(4)));
    assert_eq!(
        r(&store, |c| c.appointment_ids_of_user(&user(2))),
        vec![AppointmentId::new(&locator(2), &user(2))]
    );
    assert_eq!(r(&store, |c| c.appointment_ids_of_user(&user(4))).len(), 1);
    assert_eq!(r(&store, |tx| tx.count_appointments()), 2);
    assert_eq!(r(&store, |tx| tx.count_trackers()), 1);
}

// ---- appointments ----

#[test]
fn appointment_upsert_get_update_delete() {
    let (_dir, _path, store) = open_temp();
    add_users(&store, 1, 1000);
    let a = appointment(locator(1), user(1));
    let uuid = a.uuid;
    w(&store, {
        let a = a.clone();
        move |c| c.upsert_appointment(&a)
    })
    .unwrap();
    assert_eq!(r(&store, move |c| c.appointment(&uuid)), Some(a.clone()));

    let mut updated = a.clone();
    updated.encrypted_blob = vec![9u8; 300];
    updated.slots = 2;
    updated.start_block = 800_100;
    w(&store, {
        let u = updated.clone();
        move |c| c.upsert_appointment(&u)
    })
    .unwrap();
    assert_eq!(r(&store, move |c| c.appointment(&uuid)), Some(updated));
    assert_eq!(r(&store, |tx| tx.count_appointments()), 1);

    assert!(w(&store, move |c| c.delete_appointment(&uuid)).unwrap());
    assert!(!w(&store, move |c| c.delete_appointment(&uuid)).unwrap());
    assert_eq!(r(&store, move |c| c.appointment(&uuid)), None);
}

#[test]
fn appointment_of_unknown_user_is_a_constraint_error() {
    let (_dir, _path, store) = open_temp();
    let err = w(&store, |c| {
        c.upsert_appointment(&appointment(locator(1), user(1)))
    })
    .unwrap_err();
    assert!(err.is_constraint_violation(), "{err:?}");
}

#[test]
fn appointment_update_keeps_its_tracker() {
    let (_dir, _path, store) = open_temp();
    add_users(&store, 1, 1000);
    let a = appointment(locator(1), user(1));
    let uuid = a.uuid;
    w(&store, move |c| -> Result<(), StorageError> {
        c.upsert_appointment(&a)?;
        c.insert_tracker(&tracker(uuid, 1, TrackerStatus::InMempool, 10))?;
        c.upsert_appointment(&a)
    })
    .unwrap();
    assert!(r(&store, move |c| c.tracker(&uuid)).is_some());
}

#[test]
fn find_by_locators_returns_every_users_match_once() {
    let (_dir, _path, store) = open_temp();
    add_users(&store, 3, 1000);
    w(&store, |c| -> Result<(), StorageError> {
        for n in 0..1200 {
            c.upsert_appointment(&appointment(locator(n), user(1 + n % 2)))?;
        }
        // Two users watching the same locator.
        c.upsert_appointment(&appointment(locator(7), user(3)))
    })
    .unwrap();
    // 600 present locators (two chunks) + 3,000 absent ones + a duplicate.
    let mut query: Vec<_> = (0..1200).step_by(2).map(locator).collect();
    query.extend((5_000..8_000).map(locator));
    query.push(locator(0));
    let found = r(&store, move |c| c.appointments_by_locators(&query));
    assert_eq!(found.len(), 600);
    let mut uuids: Vec<_> = found.iter().map(|a| a.uuid).collect();
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), 600);
    assert!(
        found
            .iter()
            .any(|a| a.locator == locator(0) && a.user_id == user(1))
    );
    assert!(
        found
            .iter()
            .any(|a| a.locator == locator(8) && a.user_id == user(1))
    );
    assert!(
        found.iter().all(|a| a.locator != locator(7)),
        "odd locators were not asked for"
    );
    assert!(r(&store, |c| c.appointments_by_locators(&[])).is_empty());
    let shared = r(&store, |c| c.appointments_by_locators(&[locator(7)]));
    assert_eq!(shared.len(), 2);
}

#[test]
fn appointment_lookups_by_locator_and_user() {
    let (_dir, _path, store) = open_temp();
    add_users(&store, 2, 1000);
    w(&store, |c| -> Result<(), StorageError> {
        c.upsert_appointment(&appointment(locator(1), user(1)))?;
        c.upsert_appointment(&appointment(locator(2), user(1)))?;
        c.upsert_appointment(&appointment(locator(1), user(2)))
    })
    .unwrap();
    let got = r(&store, |c| c.appointment_of_user(&locator(2), &user(1)));
    assert_eq!(got, Some(appointment(locator(2), user(1))));
    assert_eq!(
        r(&store, |c| c.appointment_of_user(&locator(2), &user(2))),
        None
    );

    let mut want = vec![locator(1), locator(2)];
    want.sort();
    assert_eq!(r(&store, |c| c.locators_of_user(&user(1))), want);
    let mut ids = vec![
        AppointmentId::new(&locator(1), &user(1)),
        AppointmentId::new(&locator(2), &user(1)),
    ];
    ids.sort();
    assert_eq!(r(&store, |c| c.appointment_ids_of_user(&user(1))), ids);
    assert!(r(&store, |c| c.appointment_ids_of_user(&user(3))).is_empty());

    let by_loc = r(&store, |c| c.appointments_with_locator(&locator(1)));
    assert_eq!(by_loc.len(), 2);
    assert!(by_loc.windows(2).all(|w| w[0].uuid < w[1].uuid));
}

#[test]
fn watched_appointments_are_those_without_tracker() {
    let (_dir, _path, store) = open_temp();
    add_users(&store, 1, 1000);
    let all: Vec<AppointmentId> = (0..30)
        .map(|n| AppointmentId::new(&locator(n), &user(1)))
        .collect();
    w(&store, |c| -> Result<(), StorageError> {
        for n in 0..30 {
            c.upsert_appointment(&appointment(locator(n), user(1)))?;
        }
        for n in 0..5 {
            let uuid = AppointmentId::new(&locator(n), &user(1));
            c.insert_tracker(&tracker(uuid, n, TrackerStatus::InMempool, 1))?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(r(&store, |tx| tx.count_appointments()), 30);
    assert_eq!(r(&store, |tx| tx.count_watched_appointments()), 25);

    let mut want: Vec<AppointmentId> = all[5..].to_vec();
    want.sort();
    let mut got = Vec::new();
    let mut after = None;
    loop {
        let page = r(&store, move |c| {
            c.watched_appointments_after(after.as_ref(), 7)
        });
        let Some(last) = page.last() else { break };
        after = Some(last.uuid);
        got.extend(page.into_iter().map(|a| a.uuid));
    }
    assert_eq!(got, want);
}

// ---- cascades ----

#[test]
fn deleting_a_user_cascades_to_appointments_trackers_and_pending_breaches() {
    let (_dir, _path, store) = open_temp();
    add_users(&store, 2, 1000);
    let a = AppointmentId::new(&locator(1), &user(1));
    let b = AppointmentId::new(&locator(2), &user(1));
    w(&store, move |c| -> Result<(), StorageError> {
        c.upsert_appointment(&appointment(locator(1), user(1)))?;
        c.upsert_appointment(&appointment(locator(2), user(1)))?;
        c.upsert_appointment(&appointment(locator(3), user(2)))?;
        c.insert_tracker(&tracker(a, 1, TrackerStatus::InMempool, 1))?;
        c.upsert_pending_breach(&b, &tx(2).compute_txid(), &block_hash(1), 7)
    })
    .unwrap();
    w_sqlite(&store, |c| {
        c.execute("DELETE FROM users WHERE user_id = ?1", [user(1).to_bytes()])?;
        Ok(())
    })
    .unwrap();
    assert_eq!(r(&store, |tx| tx.count_appointments()), 1);
    assert_eq!(r(&store, |tx| tx.count_trackers()), 0);
    assert!(r(&store, |tx| tx.pending_breaches_after(None, u32::MAX)).is_empty());
}

#[test]
fn deleting_an_appointment_cascades_to_its_pending_breach() {
    let (_dir, _path, store) = open_temp();
    add_users(&store, 1, 1000);
    let a = AppointmentId::new(&locator(1), &user(1));
    w(&store, move |c| -> Result<(), StorageError> {
        c.upsert_appointment(&appointment(locator(1), user(1)))?;
        c.upsert_pending_breach(&a, &tx(1).compute_txid(), &block_hash(1), 7)?;
        c.delete_appointment(&a)?;
        Ok(())
    })
    .unwrap();
    assert!(r(&store, |tx| tx.pending_breaches_after(None, u32::MAX)).is_empty());
}
