//! The [`Tx`](teosd::storage::Tx) queries on `trackers`, `pending_breaches`, `chain` and `keys`,
//! run through `Store::write_blocking` / `read_blocking`.

#[path = "storage_support.rs"]
mod support;

use bitcoin::Txid;
use secp256k1::{SECP256K1, SecretKey};
use support::*;
use teosd::storage::{AppointmentId, StorageError, Store, TrackerRecord, TrackerStatus};

// ---- trackers ----

#[test]
fn tracker_insert_get_roundtrips_transactions_and_fields() {
    let (_dir, _path, store) = open_temp();
    add_users(&store, 1, 1000);
    let uuid = AppointmentId::new(&locator(1), &user(1));
    let mut t = tracker(uuid, 1, TrackerStatus::Confirmed, 812_345);
    t.dispute_height = Some(812_340);
    let t2 = t.clone();
    w(&store, move |c| -> Result<(), StorageError> {
        c.upsert_appointment(&appointment(locator(1), user(1)))?;
        c.insert_tracker(&t2)
    })
    .unwrap();
    assert_eq!(r(&store, move |c| c.tracker(&uuid)), Some(t.clone()));
    // A second tracker for the same appointment is refused.
    let dup = t.clone();
    assert!(w(&store, move |c| c.insert_tracker(&dup)).is_err());
    // A tracker needs its appointment.
    let orphan = tracker(
        AppointmentId::new(&locator(2), &user(1)),
        2,
        TrackerStatus::InMempool,
        1,
    );
    assert!(w(&store, move |c| c.insert_tracker(&orphan)).is_err());
}

#[test]
fn tracker_status_and_dispute_height_updates() {
    let (_dir, _path, store) = open_temp();
    add_users(&store, 1, 1000);
    let uuid = AppointmentId::new(&locator(1), &user(1));
    w(&store, move |c| -> Result<(), StorageError> {
        c.upsert_appointment(&appointment(locator(1), user(1)))?;
        c.insert_tracker(&tracker(uuid, 1, TrackerStatus::InMempool, 100))
    })
    .unwrap();
    assert!(
        w(&store, move |c| c.set_tracker_status(
            &uuid,
            TrackerStatus::Reorged,
            105
        ))
        .unwrap()
    );
    assert!(w(&store, move |c| c.set_dispute_height(&uuid, Some(99))).unwrap());
    let t = r(&store, move |c| c.tracker(&uuid)).unwrap();
    assert_eq!(
        (t.status, t.status_height, t.dispute_height),
        (TrackerStatus::Reorged, 105, Some(99))
    );
    assert!(w(&store, move |c| c.set_dispute_height(&uuid, None)).unwrap());
    assert_eq!(
        r(&store, move |c| c.tracker(&uuid)).unwrap().dispute_height,
        None
    );
    let missing = AppointmentId::new(&locator(9), &user(1));
    assert!(
        !w(&store, move |c| c.set_tracker_status(
            &missing,
            TrackerStatus::Confirmed,
            1
        ))
        .unwrap()
    );
    assert!(!w(&store, move |c| c.set_dispute_height(&missing, Some(1))).unwrap());
}

#[test]
fn deleting_a_tracker_deletes_its_appointment_but_delete_tracker_only_keeps_it() {
    let (_dir, _path, store) = open_temp();
    add_users(&store, 1, 1000);
    let a = AppointmentId::new(&locator(1), &user(1));
    let b = AppointmentId::new(&locator(2), &user(1));
    let watched = AppointmentId::new(&locator(3), &user(1));
    w(&store, move |c| -> Result<(), StorageError> {
        for n in 1..=3 {
            c.upsert_appointment(&appointment(locator(n), user(1)))?;
        }
        c.insert_tracker(&tracker(a, 1, TrackerStatus::Confirmed, 10))?;
        c.insert_tracker(&tracker(b, 2, TrackerStatus::Confirmed, 10))
    })
    .unwrap();
    assert!(w(&store, move |c| c.delete_tracker_and_appointment(&a)).unwrap());
    assert_eq!(r(&store, move |c| c.appointment(&a)), None);
    assert_eq!(r(&store, move |c| c.tracker(&a)), None);
    // No tracker: the appointment stays.
    assert!(!w(&store, move |c| c.delete_tracker_and_appointment(&watched)).unwrap());
    assert!(r(&store, move |c| c.appointment(&watched)).is_some());

    assert!(w(&store, move |c| c.delete_tracker_only(&b)).unwrap());
    assert_eq!(r(&store, move |c| c.tracker(&b)), None);
    assert!(r(&store, move |c| c.appointment(&b)).is_some());
}

/// `count` in-mempool trackers of user 1 (appointments for locators 0..count), stored; returned.
fn insert_trackers(store: &Store, count: u32) -> Vec<TrackerRecord> {
    add_users(store, 1, 1000);
    let records: Vec<_> = (0..count)
        .map(|n| {
            tracker(
                AppointmentId::new(&locator(n), &user(1)),
                n,
                TrackerStatus::InMempool,
                1,
            )
        })
        .collect();
    let inserted = records.clone();
    w(store, move |c| -> Result<(), StorageError> {
        for (n, t) in inserted.iter().enumerate() {
            c.upsert_appointment(&appointment(locator(n as u32), user(1)))?;
            c.insert_tracker(t)?;
        }
        Ok(())
    })
    .unwrap();
    records
}

#[test]
fn trackers_are_found_by_penalty_and_dispute_txids() {
    let (_dir, _path, store) = open_temp();
    let records = insert_trackers(&store, 600);
    let mut penalties: Vec<Txid> = records.iter().step_by(3).map(|t| t.penalty_txid).collect();
    penalties.push(tx(999_999).compute_txid()); // unknown
    let found = r(&store, move |c| c.trackers_by_penalty_txids(&penalties));
    assert_eq!(found.len(), 200);
    assert!(found.contains(&records[3]));

    let disputes: Vec<Txid> = vec![records[5].dispute_txid, records[5].penalty_txid];
    let found = r(&store, move |c| c.trackers_by_dispute_txids(&disputes));
    assert_eq!(found, vec![records[5].clone()]);
}

#[test]
fn trackers_touching_a_block_are_found_whether_the_block_or_the_table_is_smaller() {
    let (_dir, _path, store) = open_temp();
    let records = insert_trackers(&store, 50);
    let sorted = |mut v: Vec<TrackerRecord>| {
        v.sort_by_key(|t| t.uuid);
        v
    };
    // Penalty of 3, dispute of 7, both of 11; the rest of the "block" matches nothing.
    let expected = sorted(vec![
        records[3].clone(),
        records[7].clone(),
        records[11].clone(),
    ]);
    let touching = vec![
        records[3].penalty_txid,
        records[7].dispute_txid,
        records[11].dispute_txid,
        records[11].penalty_txid,
    ];
    // A big block (more txids than trackers): the trackers are read and matched in memory.
    let mut big = touching.clone();
    big.extend((100_000..100_200).map(|n| tx(n).compute_txid()));
    let found = r(&store, move |c| {
        c.trackers_by_dispute_or_penalty_txids(&big)
    });
    assert_eq!(sorted(found), expected);
    // A small block (fewer txids than trackers): the indexes are probed.
    let small = touching.clone();
    let found = r(&store, move |c| {
        c.trackers_by_dispute_or_penalty_txids(&small)
    });
    assert_eq!(sorted(found), expected);
    // Exactly as many txids as trackers still finds every match.
    let mut equal = touching;
    equal.extend((100_000..100_046).map(|n| tx(n).compute_txid()));
    assert_eq!(equal.len(), records.len());
    let found = r(&store, move |c| {
        c.trackers_by_dispute_or_penalty_txids(&equal)
    });
    assert_eq!(sorted(found), expected);
}

#[test]
fn tracker_selections_by_status_and_height() {
    let (_dir, _path, store) = open_temp();
    add_users(&store, 1, 1000);
    let id = |n: u32| AppointmentId::new(&locator(n), &user(1));
    w(&store, move |c| -> Result<(), StorageError> {
        let specs = [
            (0, TrackerStatus::InMempool, 100, None),
            (1, TrackerStatus::InMempool, 103, Some(100)),
            (2, TrackerStatus::Confirmed, 101, Some(100)),
            (3, TrackerStatus::Confirmed, 104, Some(101)),
            (4, TrackerStatus::Reorged, 102, None),
        ];
        for (n, status, height, dispute_height) in specs {
            c.upsert_appointment(&appointment(locator(n), user(1)))?;
            let mut t = tracker(id(n), n, status, height);
            t.dispute_height = dispute_height;
            c.insert_tracker(&t)?;
        }
        Ok(())
    })
    .unwrap();
    let uuids =
        |v: Vec<teosd::storage::TrackerRecord>| v.into_iter().map(|t| t.uuid).collect::<Vec<_>>();
    assert_eq!(
        uuids(r(&store, |c| c.trackers_with_status(TrackerStatus::Reorged))),
        vec![id(4)]
    );
    assert_eq!(
        uuids(r(&store, |c| c.trackers_with_status(TrackerStatus::InMempool))),
        vec![id(0), id(1)],
        "ordered by status_height"
    );
    assert_eq!(
        uuids(r(&store, |c| c.trackers_in_mempool_since_at_most(102))),
        vec![id(0)]
    );
    assert_eq!(
        uuids(r(&store, |c| c.trackers_in_mempool_since_at_most(103))),
        vec![id(0), id(1)]
    );
    assert_eq!(
        uuids(r(&store, |c| c.trackers_confirmed_at_most(103))),
        vec![id(2)]
    );
    assert_eq!(
        uuids(r(&store, |c| c.trackers_with_penalty_at(104))),
        vec![id(3)]
    );
    assert!(r(&store, |c| c.trackers_with_penalty_at(103)).is_empty());
    let mut at_100 = vec![id(1), id(2)];
    at_100.sort();
    assert_eq!(
        uuids(r(&store, |c| c.trackers_with_dispute_at(100))),
        at_100
    );
    assert_eq!(r(&store, |tx| tx.count_trackers()), 5);
}

#[test]
fn trackers_list_in_pages_and_their_users() {
    let (_dir, _path, store) = open_temp();
    add_users(&store, 3, 1000);
    w(&store, |c| -> Result<(), StorageError> {
        for n in 0..12 {
            let u = user(1 + n % 2); // users 1 and 2 have trackers, user 3 none
            c.upsert_appointment(&appointment(locator(n), u))?;
            c.insert_tracker(&tracker(
                AppointmentId::new(&locator(n), &u),
                n,
                TrackerStatus::InMempool,
                1,
            ))?;
        }
        c.upsert_appointment(&appointment(locator(50), user(3)))
    })
    .unwrap();
    let mut got = Vec::new();
    let mut after = None;
    loop {
        let page = r(&store, move |c| c.trackers_after(after.as_ref(), 5));
        let Some(last) = page.last() else { break };
        after = Some(last.uuid);
        got.extend(page.into_iter().map(|t| t.uuid));
    }
    assert_eq!(got.len(), 12);
    assert!(got.windows(2).all(|w| w[0] < w[1]));

    let mut want = vec![user(1), user(2)];
    want.sort_by_key(|u| u.to_bytes());
    assert_eq!(r(&store, |tx| tx.users_with_trackers()), want);
}

// ---- pending breaches ----

#[test]
fn pending_breaches_insert_list_contains_delete() {
    let (_dir, _path, store) = open_temp();
    add_users(&store, 1, 1000);
    let ids: Vec<AppointmentId> = (1..=3)
        .map(|n| AppointmentId::new(&locator(n), &user(1)))
        .collect();
    let inserted = ids.clone();
    w(&store, move |c| -> Result<(), StorageError> {
        for (i, id) in inserted.iter().enumerate() {
            let n = i as u32 + 1;
            c.upsert_appointment(&appointment(locator(n), user(1)))?;
            let block = if n == 3 { block_hash(8) } else { block_hash(7) };
            c.upsert_pending_breach(id, &tx(n).compute_txid(), &block, 7)?;
        }
        // Re-inserting replaces.
        c.upsert_pending_breach(&inserted[0], &tx(1).compute_txid(), &block_hash(7), 7)
    })
    .unwrap();
    let list = r(&store, |tx| tx.pending_breaches_after(None, u32::MAX));
    assert_eq!(list.len(), 3);
    assert!(list.windows(2).all(|w| w[0].uuid < w[1].uuid));
    let first = list.iter().find(|p| p.uuid == ids[0]).unwrap();
    assert_eq!(
        (first.dispute_txid, first.block_hash),
        (tx(1).compute_txid(), block_hash(7))
    );

    let id0 = ids[0];
    assert!(r(&store, move |c| c.has_pending_breach(&id0)));
    assert!(w(&store, move |c| c.delete_pending_breach(&id0)).unwrap());
    assert!(!r(&store, move |c| c.has_pending_breach(&id0)));
    assert!(!w(&store, move |c| c.delete_pending_breach(&id0)).unwrap());

    assert_eq!(
        w(&store, |c| c
            .delete_pending_breaches_of_block(&block_hash(7)))
        .unwrap(),
        1
    );
    let left = r(&store, |tx| tx.pending_breaches_after(None, u32::MAX));
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].uuid, ids[2]);
    // The appointments themselves stay.
    assert_eq!(r(&store, |tx| tx.count_appointments()), 3);
}

// ---- chain ----

#[test]
fn chain_push_prunes_to_keep_and_pop_removes_the_tip() {
    let (_dir, _path, store) = open_temp();
    assert_eq!(r(&store, |tx| tx.chain_tip()), None);
    w(&store, |c| {
        (1..=150).try_for_each(|h| c.push_block(h, &block_hash(h), None, 100))
    })
    .unwrap();
    assert_eq!(r(&store, |tx| tx.chain_tip()), Some((150, block_hash(150))));
    let recent = r(&store, |tx| tx.recent_blocks());
    assert_eq!(recent.len(), 100);
    assert_eq!(recent[0], (150, block_hash(150)));
    assert_eq!(recent[99], (51, block_hash(51)));
    assert_eq!(r(&store, |c| c.block_hash_at(51)), Some(block_hash(51)));
    assert_eq!(r(&store, |c| c.block_hash_at(50)), None);
    assert_eq!(r(&store, |c| c.block_height(&block_hash(120))), Some(120));
    assert_eq!(r(&store, |c| c.block_height(&block_hash(10))), None);

    assert_eq!(w(&store, |c| c.pop_blocks(150)).unwrap(), 1);
    assert_eq!(r(&store, |tx| tx.chain_tip()), Some((149, block_hash(149))));
    // Reconnecting a different block at the popped height.
    w(&store, |c| c.push_block(150, &block_hash(9_150), None, 100)).unwrap();
    assert_eq!(
        r(&store, |tx| tx.chain_tip()),
        Some((150, block_hash(9_150)))
    );
    // Pushing at an existing height replaces its hash.
    w(&store, |c| c.push_block(150, &block_hash(8_150), None, 100)).unwrap();
    assert_eq!(r(&store, |c| c.block_hash_at(150)), Some(block_hash(8_150)));
    assert_eq!(r(&store, |tx| tx.recent_blocks()).len(), 100);
}

#[test]
fn block_txids_are_stored_read_back_cleared_and_reset_when_the_block_changes() {
    let (_dir, _path, store) = open_temp();
    let txids: Vec<Txid> = (0..5).map(|n| tx(n).compute_txid()).collect();
    let stored = txids.clone();
    w(&store, move |c| -> Result<(), StorageError> {
        for h in 1..=10 {
            c.push_block(h, &block_hash(h), None, 100)?;
        }
        assert!(c.set_block_txids(9, &block_hash(9), &stored)?);
        assert!(c.set_block_txids(10, &block_hash(10), &stored[..2])?);
        assert!(
            !c.set_block_txids(11, &block_hash(11), &stored)?,
            "no such block"
        );
        assert!(
            !c.set_block_txids(8, &block_hash(9_008), &stored)?,
            "another block at that height"
        );
        Ok(())
    })
    .unwrap();
    assert_eq!(r(&store, |c| c.block_txids(9)), Some(txids.clone()));
    assert_eq!(r(&store, |c| c.block_txids(10)), Some(txids[..2].to_vec()));
    assert_eq!(r(&store, |c| c.block_txids(8)), None);

    assert_eq!(w(&store, |c| c.clear_block_txids_below(10)).unwrap(), 1);
    assert_eq!(r(&store, |c| c.block_txids(9)), None);
    assert!(r(&store, |c| c.block_txids(10)).is_some());
    // Another block at the same height (reorg) does not inherit the old block's txids.
    w(&store, |c| c.push_block(10, &block_hash(9_010), None, 100)).unwrap();
    assert_eq!(r(&store, |c| c.block_txids(10)), None);
}

// ---- keys ----

#[test]
fn keys_latest_is_the_newest_and_old_ones_are_kept() {
    let (_dir, _path, store) = open_temp();
    assert_eq!(r(&store, |tx| tx.latest_tower_key()), None);
    let k1 = SecretKey::from_slice(&[1u8; 32]).unwrap();
    let k2 = SecretKey::from_slice(&[2u8; 32]).unwrap();
    let id1 = w(&store, move |c| c.insert_tower_key(&k1)).unwrap();
    let id2 = w(&store, move |c| c.insert_tower_key(&k2)).unwrap();
    assert!(id2 > id1);
    assert_eq!(r(&store, |tx| tx.latest_tower_key()), Some(k2));
    assert_eq!(r(&store, |tx| tx.count_tower_keys()), 2);
    // Sanity: the stored key is usable.
    assert_eq!(
        r(&store, |tx| tx.latest_tower_key())
            .unwrap()
            .public_key(SECP256K1),
        k2.public_key(SECP256K1)
    );
}

#[test]
fn corrupt_key_bytes_are_reported_not_panicked() {
    let (_dir, _path, store) = open_temp();
    // 32 zero bytes pass the length check but are not a valid secret key.
    w_sqlite(&store, |c| {
        c.execute(
            "INSERT INTO keys (secret_key, created_at) VALUES (zeroblob(32), 0)",
            [],
        )?;
        Ok(())
    })
    .unwrap();
    assert!(matches!(
        store.read_blocking(|tx| tx.latest_tower_key()),
        Err(StorageError::Corrupt(_))
    ));
}
