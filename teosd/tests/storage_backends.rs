//! The storage suite written once over `&mut dyn Tx` and run on both backends: the embedded SQLite
//! store and PostgreSQL (issue 12, items 1 and 6). Every `Tx` method, the constraint
//! classification, the cascades and the counters are checked the same way on both.
//!
//! PostgreSQL comes from a throwaway cluster (`teos_testkit::PgCluster`, one per test, each case in
//! a fresh database) or `TEOS_TEST_DATABASE_URL`; without PostgreSQL installed the PostgreSQL tests
//! print a SKIPPED line, unless `TEOS_TEST_REQUIRE_POSTGRES` is set (CI), which makes them fail.
//!
//! PostgreSQL-only rules are tested below the suite: slot accounting under concurrent requests on
//! separate connections, the ordering row, the fleet's single tower key, a database restart under
//! the pool, and that a password never shows in errors.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Txid, Work};
use postgres::NoTls;
use secp256k1::SecretKey;
use teos_testkit::PgTarget;
use teosd::storage::postgres::{
    DatabaseUrl, PgErrorKind, PgOptions, PgStore, PgTx, chain as pg_chain,
};
use teosd::storage::{
    AppointmentId, AppointmentRecord, Command, Locator, Order, StorageError, Store, TrackerRecord,
    TrackerStatus, Tx, TxResult, UserId,
};

// ---- fixtures ------------------------------------------------------------------------------------

#[path = "storage_support.rs"]
mod support;
use support::{block_hash, locator, tracker, user, user_record};

/// Like `support::appointment`, with a blob and signature of its own per `n`.
fn appointment(n: u32, user_id: UserId) -> AppointmentRecord {
    let locator = locator(n);
    AppointmentRecord {
        uuid: AppointmentId::new(&locator, &user_id),
        locator,
        user_id,
        encrypted_blob: vec![n as u8; 100],
        to_self_delay: 144,
        user_signature: format!("d1sig{n}"),
        start_block: 800_000,
        slots: 1,
    }
}

fn txid(n: u32) -> Txid {
    Txid::from_byte_array([n as u8; 32])
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

// ---- the two backends ----------------------------------------------------------------------------

/// A fresh, empty database of one backend.
enum Backend {
    Sqlite {
        _dir: tempfile::TempDir,
        store: Store,
    },
    Postgres {
        store: PgStore,
    },
}

impl Backend {
    fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("regtest").join("teos_db.sql3")).unwrap();
        Backend::Sqlite { _dir: dir, store }
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres { .. } => "postgresql",
        }
    }

    /// One write unit of work, committed when `op` returns `Ok`.
    fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut dyn Tx) -> TxResult<T> + Send + 'static,
    ) -> TxResult<T> {
        match self {
            Backend::Sqlite { store, .. } => store.write_blocking(op),
            Backend::Postgres { store } => store.write_blocking(op),
        }
    }

    /// One read unit of work (read-only, one snapshot).
    fn read<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut dyn Tx) -> TxResult<T> + Send + 'static,
    ) -> TxResult<T> {
        match self {
            Backend::Sqlite { store, .. } => store.read_blocking(op),
            Backend::Postgres { store } => store.read_blocking(op),
        }
    }

    fn w<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut dyn Tx) -> TxResult<T> + Send + 'static,
    ) -> T {
        self.write(op).unwrap()
    }

    fn r<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut dyn Tx) -> TxResult<T> + Send + 'static,
    ) -> T {
        self.read(op).unwrap()
    }
}

/// A PostgreSQL server for one test, handing out fresh databases.
struct PgServer {
    target: PgTarget,
}

impl PgServer {
    /// `None` (after a SKIPPED line) when no PostgreSQL is available and none is required.
    fn new(test: &str) -> Option<PgServer> {
        let target = PgTarget::from_env(test).expect("PostgreSQL for the test")?;
        Some(PgServer { target })
    }

    /// The URL of a new, empty database.
    fn fresh_database(&self) -> String {
        let base = self.target.url();
        let name = teos_testkit::postgres::unique_database_name();
        let mut admin = postgres::Client::connect(&base, NoTls).expect("connect");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("CREATE DATABASE");
        // The URL's database is its last path segment (test URLs have no parameters).
        let (prefix, _) = base.rsplit_once('/').expect("a URL with a database");
        format!("{prefix}/{name}")
    }

    fn store(&self, options: PgOptions) -> PgStore {
        let url = DatabaseUrl::parse(&self.fresh_database()).unwrap();
        PgStore::open(&url, options).expect("open the PostgreSQL store")
    }

    fn backend(&self) -> Backend {
        Backend::Postgres {
            store: self.store(PgOptions::default()),
        }
    }
}

// ---- the suite -----------------------------------------------------------------------------------

type Case = fn(&Backend);

const SUITE: &[(&str, Case)] = &[
    ("users", users_case),
    ("slots", slots_case),
    ("appointments", appointments_case),
    ("appointment pages and counters", appointment_pages_case),
    ("trackers", trackers_case),
    ("tracker queries", tracker_queries_case),
    ("pending breaches", pending_case),
    ("chain", chain_case),
    ("keys", keys_case),
    ("constraints", constraints_case),
    ("cascades and expiry", cascades_case),
    ("savepoints", savepoints_case),
    ("read-only units", read_only_case),
];

fn run_suite(mut backend: impl FnMut() -> Backend) {
    for (name, case) in SUITE {
        let b = backend();
        eprintln!("case {name} on {}", b.name());
        case(&b);
    }
}

#[test]
fn sqlite_backend_passes_the_storage_suite() {
    run_suite(Backend::sqlite);
}

#[test]
fn postgresql_backend_passes_the_storage_suite() {
    let Some(server) = PgServer::new("postgresql_backend_passes_the_storage_suite") else {
        return;
    };
    run_suite(|| server.backend());
}

fn users_case(b: &Backend) {
    assert_eq!(b.r(|tx| tx.user(&user(1))), None);
    b.w(|tx| {
        for n in [3, 1, 2] {
            tx.upsert_user(&user(n), &user_record(10 * n, 1000 + n))?;
        }
        Ok(())
    });
    assert_eq!(b.r(|tx| tx.user(&user(2))), Some(user_record(20, 1002)));
    // An upsert replaces the subscription in place.
    b.w(|tx| tx.upsert_user(&user(2), &user_record(u32::MAX, u32::MAX)));
    assert_eq!(
        b.r(|tx| tx.user(&user(2))),
        Some(user_record(u32::MAX, u32::MAX))
    );
    let mut all: Vec<UserId> = (1..=3).map(user).collect();
    all.sort_by_key(|u| u.to_bytes());
    assert_eq!(b.r(|tx| tx.user_ids()), all);
    assert_eq!(b.r(|tx| tx.user_ids_after(None, 2)), all[..2].to_vec());
    let after = all[0];
    assert_eq!(
        b.r(move |tx| tx.user_ids_after(Some(&after), 10)),
        all[1..].to_vec()
    );
    assert_eq!(b.r(|tx| tx.count_users()), 3);
    assert_eq!(b.r(|tx| tx.stored_users()), 3);
    // Users with trackers: none yet.
    assert_eq!(b.r(|tx| tx.users_with_trackers()), vec![]);
}

fn slots_case(b: &Backend) {
    b.w(|tx| tx.upsert_user(&user(1), &user_record(5, 1000)));
    assert_eq!(b.w(|tx| tx.add_slots(&user(1), -5)), 0);
    let err = b.write(|tx| tx.add_slots(&user(1), -1)).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::SlotsOutOfRange {
                available: 0,
                delta: -1
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        b.w(|tx| tx.add_slots(&user(1), i64::from(u32::MAX))),
        u32::MAX
    );
    let err = b.write(|tx| tx.add_slots(&user(1), 1)).unwrap_err();
    assert!(
        matches!(err, StorageError::SlotsOutOfRange { .. }),
        "{err:?}"
    );
    let err = b.write(|tx| tx.add_slots(&user(1), i64::MIN)).unwrap_err();
    assert!(
        matches!(err, StorageError::SlotsOutOfRange { .. }),
        "{err:?}"
    );
    // A refused change changes nothing.
    assert_eq!(
        b.r(|tx| tx.user(&user(1))).map(|u| u.available_slots),
        Some(u32::MAX)
    );
    let err = b.write(|tx| tx.add_slots(&user(9), 1)).unwrap_err();
    assert!(matches!(err, StorageError::NotFound(_)), "{err:?}");
}

fn appointments_case(b: &Backend) {
    let (u1, u2) = (user(1), user(2));
    b.w(move |tx| {
        tx.upsert_user(&u1, &user_record(10, 1000))?;
        tx.upsert_user(&u2, &user_record(10, 1000))
    });
    let a1 = appointment(1, u1);
    let a2 = appointment(2, u1);
    let shared_u1 = appointment(7, u1);
    let shared_u2 = appointment(7, u2);
    for a in [&a1, &a2, &shared_u1, &shared_u2] {
        let a = a.clone();
        b.w(move |tx| tx.upsert_appointment(&a));
    }
    let uuid = a1.uuid;
    assert_eq!(b.r(move |tx| tx.appointment(&uuid)), Some(a1.clone()));
    // An update replaces every field, keeping the row (and its tracker).
    let mut updated = a1.clone();
    updated.encrypted_blob = vec![9; 3000];
    updated.slots = 2;
    updated.user_signature = "d1other".into();
    b.w({
        let t = tracker(a1.uuid, 1, TrackerStatus::InMempool, 800_001);
        move |tx| tx.insert_tracker(&t)
    });
    b.w({
        let u = updated.clone();
        move |tx| tx.upsert_appointment(&u)
    });
    assert_eq!(b.r(move |tx| tx.appointment(&uuid)), Some(updated.clone()));
    assert!(b.r(move |tx| tx.tracker(&uuid)).is_some());

    // Lookups by locator: duplicates and unknown locators in the input.
    let found =
        b.r(|tx| tx.appointments_by_locators(&[locator(7), locator(1), locator(7), locator(99)]));
    let mut got: Vec<AppointmentId> = found.iter().map(|a| a.uuid).collect();
    got.sort();
    let mut want = vec![updated.uuid, shared_u1.uuid, shared_u2.uuid];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(b.r(|tx| tx.appointments_by_locators(&[])), vec![]);
    // A whole block's worth of locators in one call.
    let many: Vec<Locator> = (1..5000).map(locator).collect();
    assert_eq!(b.r(move |tx| tx.appointments_by_locators(&many)).len(), 4);

    assert_eq!(
        b.r(move |tx| tx.appointment_of_user(&locator(7), &u2)),
        Some(shared_u2.clone())
    );
    assert_eq!(
        b.r(move |tx| tx.appointment_of_user(&locator(2), &u2)),
        None
    );
    assert_eq!(
        b.r(move |tx| tx.locators_of_user(&u1)),
        vec![locator(1), locator(2), locator(7)]
    );
    assert_eq!(
        b.r(move |tx| tx.appointment_ids_of_user(&u1)),
        sorted(vec![a1.uuid, a2.uuid, shared_u1.uuid])
    );
    let with7 = b.r(|tx| tx.appointments_with_locator(&locator(7)));
    assert_eq!(
        with7.iter().map(|a| a.uuid).collect::<Vec<_>>(),
        sorted(vec![shared_u1.uuid, shared_u2.uuid])
    );
    let mut seen = Vec::new();
    b.r(|tx| {
        let mut out = Vec::new();
        tx.for_each_locator(&mut |l| out.push(l))?;
        Ok(out)
    })
    .into_iter()
    .for_each(|l| seen.push(l));
    assert_eq!(
        sorted(seen),
        vec![locator(1), locator(2), locator(7), locator(7)]
    );

    // Deleting removes the tracker too (cascade).
    assert!(b.w(move |tx| tx.delete_appointment(&uuid)));
    assert!(!b.w(move |tx| tx.delete_appointment(&uuid)));
    assert_eq!(b.r(move |tx| tx.tracker(&uuid)), None);
    assert_eq!(b.r(|tx| tx.count_trackers()), 0);
}

fn appointment_pages_case(b: &Backend) {
    let u1 = user(1);
    b.w(move |tx| tx.upsert_user(&u1, &user_record(100, 1000)));
    // Inserted in an order unlike the uuid order.
    let ns = [5u32, 3, 9, 1, 7];
    for n in ns {
        let a = appointment(n, u1);
        b.w(move |tx| tx.upsert_appointment(&a));
    }
    let inserted: Vec<AppointmentId> = ns.iter().map(|&n| appointment(n, u1).uuid).collect();
    let page1 = b.r(move |tx| tx.appointment_ids_of_user_page(&u1, None, 2));
    assert_eq!(
        page1.iter().map(|p| p.1).collect::<Vec<_>>(),
        inserted[..2].to_vec()
    );
    let cursor = page1[1].0;
    assert!(page1[0].0 < cursor);
    // An update keeps its place.
    let a3 = appointment(3, u1);
    b.w(move |tx| tx.upsert_appointment(&a3));
    let page2 = b.r(move |tx| tx.appointment_ids_of_user_page(&u1, Some(cursor), 10));
    assert_eq!(
        page2.iter().map(|p| p.1).collect::<Vec<_>>(),
        inserted[2..].to_vec()
    );
    assert_eq!(
        b.r(move |tx| tx.appointment_ids_of_user_page(&user(2), None, 10)),
        vec![]
    );

    // Counters: an update counts nothing, a tracker makes one not watched.
    assert_eq!(b.r(|tx| tx.count_appointments()), 5);
    assert_eq!(b.r(|tx| tx.stored_appointments()), 5);
    let first = inserted[0];
    b.w(move |tx| tx.insert_tracker(&tracker(first, 1, TrackerStatus::InMempool, 10)));
    assert_eq!(b.r(|tx| tx.count_watched_appointments()), 4);
    let mut watched: Vec<AppointmentId> =
        inserted.iter().copied().filter(|u| *u != first).collect();
    watched.sort();
    let all = b.r(|tx| tx.watched_appointments_after(None, 100));
    assert_eq!(all.iter().map(|a| a.uuid).collect::<Vec<_>>(), watched);
    let after = watched[1];
    let rest = b.r(move |tx| tx.watched_appointments_after(Some(&after), 2));
    assert_eq!(
        rest.iter().map(|a| a.uuid).collect::<Vec<_>>(),
        watched[2..4].to_vec()
    );
}

/// Users 1 and 2 with appointments 1..=4 (1, 2 of user 1; 3, 4 of user 2) and trackers for all.
fn with_trackers(b: &Backend) -> Vec<TrackerRecord> {
    let (u1, u2) = (user(1), user(2));
    b.w(move |tx| {
        tx.upsert_user(&u1, &user_record(10, 1000))?;
        tx.upsert_user(&u2, &user_record(10, 1000))?;
        for n in 1..=4 {
            tx.upsert_appointment(&appointment(n, if n <= 2 { u1 } else { u2 }))?;
        }
        Ok(())
    });
    let statuses = [
        (TrackerStatus::InMempool, 100),
        (TrackerStatus::Confirmed, 101),
        (TrackerStatus::Reorged, 102),
        (TrackerStatus::Rejected, 103),
    ];
    let trackers: Vec<TrackerRecord> = (1..=4)
        .map(|n| {
            let owner = if n <= 2 { u1 } else { u2 };
            let (status, height) = statuses[(n - 1) as usize];
            let mut t = tracker(appointment(n, owner).uuid, n, status, height);
            t.dispute_height = Some(90 + n);
            t
        })
        .collect();
    let copy = trackers.clone();
    b.w(move |tx| copy.iter().try_for_each(|t| tx.insert_tracker(t)));
    trackers
}

fn trackers_case(b: &Backend) {
    let t = with_trackers(b);
    let uuid = t[0].uuid;
    assert_eq!(b.r(move |tx| tx.tracker(&uuid)), Some(t[0].clone()));
    assert!(b.w(move |tx| tx.set_tracker_status(&uuid, TrackerStatus::Confirmed, 200)));
    assert!(b.w(move |tx| tx.set_dispute_height(&uuid, None)));
    let got = b.r(move |tx| tx.tracker(&uuid)).unwrap();
    assert_eq!(
        (got.status, got.status_height, got.dispute_height),
        (TrackerStatus::Confirmed, 200, None)
    );
    assert!(b.w(move |tx| tx.set_dispute_height(&uuid, Some(u32::MAX))));
    assert_eq!(
        b.r(move |tx| tx.tracker(&uuid)).unwrap().dispute_height,
        Some(u32::MAX)
    );
    let missing = appointment(99, user(1)).uuid;
    assert!(!b.w(move |tx| tx.set_tracker_status(&missing, TrackerStatus::Reorged, 1)));
    assert!(!b.w(move |tx| tx.set_dispute_height(&missing, Some(1))));

    // delete_tracker_only keeps the appointment (watched again).
    let second = t[1].uuid;
    assert!(b.w(move |tx| tx.delete_tracker_only(&second)));
    assert!(!b.w(move |tx| tx.delete_tracker_only(&second)));
    assert!(b.r(move |tx| tx.appointment(&second)).is_some());
    // delete_tracker_and_appointment needs the tracker: without one the appointment stays.
    assert!(!b.w(move |tx| tx.delete_tracker_and_appointment(&second)));
    assert!(b.r(move |tx| tx.appointment(&second)).is_some());
    assert!(b.w(move |tx| tx.delete_tracker_and_appointment(&uuid)));
    assert_eq!(b.r(move |tx| tx.appointment(&uuid)), None);
    assert_eq!(b.r(|tx| tx.count_trackers()), 2);
    assert_eq!(b.r(|tx| tx.count_appointments()), 3);
}

fn tracker_queries_case(b: &Backend) {
    let t = with_trackers(b);
    let ids = |v: Vec<TrackerRecord>| sorted(v.into_iter().map(|t| t.uuid).collect::<Vec<_>>());
    let (p1, d2, p3) = (t[0].penalty_txid, t[1].dispute_txid, t[2].penalty_txid);
    assert_eq!(
        ids(b.r(move |tx| tx.trackers_by_penalty_txids(&[p1, p3, p1, txid(7)]))),
        sorted(vec![t[0].uuid, t[2].uuid])
    );
    assert_eq!(
        ids(b.r(move |tx| tx.trackers_by_dispute_txids(&[d2, txid(7)]))),
        vec![t[1].uuid]
    );
    // A tracker matched by both its txids comes once.
    let d1 = t[0].dispute_txid;
    let mut block: Vec<Txid> = (0..5000).map(txid).collect();
    block.extend([p1, d1, d2]);
    assert_eq!(
        ids(b.r(move |tx| tx.trackers_by_dispute_or_penalty_txids(&block))),
        sorted(vec![t[0].uuid, t[1].uuid])
    );
    assert_eq!(
        b.r(|tx| tx.trackers_by_dispute_or_penalty_txids(&[])),
        vec![]
    );
    assert_eq!(b.r(|tx| tx.trackers_by_penalty_txids(&[])), vec![]);

    for (status, i) in [
        (TrackerStatus::InMempool, 0usize),
        (TrackerStatus::Confirmed, 1),
        (TrackerStatus::Reorged, 2),
        (TrackerStatus::Rejected, 3),
    ] {
        assert_eq!(
            b.r(move |tx| tx.trackers_with_status(status)),
            vec![t[i].clone()]
        );
        assert_eq!(b.r(move |tx| tx.count_trackers_with_status(status)), 1);
    }
    assert_eq!(b.r(|tx| tx.trackers_in_mempool_since_at_most(99)), vec![]);
    assert_eq!(
        b.r(|tx| tx.trackers_in_mempool_since_at_most(100)),
        vec![t[0].clone()]
    );
    assert_eq!(b.r(|tx| tx.trackers_confirmed_at_most(100)), vec![]);
    assert_eq!(
        b.r(|tx| tx.trackers_confirmed_at_most(500)),
        vec![t[1].clone()]
    );
    assert_eq!(
        b.r(|tx| tx.trackers_with_dispute_at(93)),
        vec![t[2].clone()]
    );
    assert_eq!(
        b.r(|tx| tx.trackers_with_penalty_at(101)),
        vec![t[1].clone()]
    );
    assert_eq!(b.r(|tx| tx.trackers_with_penalty_at(100)), vec![]);
    assert_eq!(b.r(|tx| tx.count_trackers()), 4);
    let all = sorted(t.iter().map(|t| t.uuid).collect::<Vec<_>>());
    assert_eq!(ids(b.r(|tx| tx.trackers_after(None, 100))), all);
    let after = all[1];
    let page = b.r(move |tx| tx.trackers_after(Some(&after), 1));
    assert_eq!(
        page.iter().map(|t| t.uuid).collect::<Vec<_>>(),
        vec![all[2]]
    );
    let mut owners = vec![user(1), user(2)];
    owners.sort_by_key(|u| u.to_bytes());
    assert_eq!(b.r(|tx| tx.users_with_trackers()), owners);
}

fn pending_case(b: &Backend) {
    let u1 = user(1);
    b.w(move |tx| {
        tx.upsert_user(&u1, &user_record(10, 1000))?;
        (1..=4).try_for_each(|n| tx.upsert_appointment(&appointment(n, u1)))
    });
    let uuid = move |n| appointment(n, u1).uuid;
    b.w(move |tx| {
        tx.upsert_pending_breach(&uuid(1), &txid(1), &block_hash(10), 10)?;
        tx.upsert_pending_breach(&uuid(2), &txid(2), &block_hash(11), 11)?;
        tx.upsert_pending_breach(&uuid(3), &txid(3), &block_hash(11), 11)?;
        // Replaces the first entry of 4.
        tx.upsert_pending_breach(&uuid(4), &txid(9), &block_hash(9), 9)?;
        tx.upsert_pending_breach(&uuid(4), &txid(4), &block_hash(12), 12)
    });
    let all = b.r(|tx| tx.pending_breaches_after(None, u32::MAX));
    assert_eq!(
        all.iter().map(|p| p.uuid).collect::<Vec<_>>(),
        sorted((1..=4).map(uuid).collect())
    );
    let four = all.iter().find(|p| p.uuid == uuid(4)).unwrap();
    assert_eq!(
        (four.dispute_txid, four.block_hash, four.block_height),
        (txid(4), block_hash(12), Some(12))
    );
    let first = all[0].uuid;
    assert_eq!(
        b.r(move |tx| tx.pending_breaches_after(Some(&first), 2))
            .len(),
        2
    );
    assert!(b.r(move |tx| tx.has_pending_breach(&uuid(1))));
    assert!(b.w(move |tx| tx.delete_pending_breach(&uuid(1))));
    assert!(!b.w(move |tx| tx.delete_pending_breach(&uuid(1))));
    assert!(!b.r(move |tx| tx.has_pending_breach(&uuid(1))));
    // The appointment stays.
    assert!(b.r(move |tx| tx.appointment(&uuid(1))).is_some());
    assert_eq!(
        b.w(|tx| tx.delete_pending_breaches_of_block(&block_hash(11))),
        2
    );
    assert_eq!(b.w(|tx| tx.delete_pending_breaches_from(13)), 0);
    assert_eq!(b.w(|tx| tx.delete_pending_breaches_from(12)), 1);
    assert_eq!(b.r(|tx| tx.pending_breaches_after(None, u32::MAX)), vec![]);
    // Deleting the appointment deletes its pending breach.
    b.w(move |tx| tx.upsert_pending_breach(&uuid(2), &txid(2), &block_hash(11), 11));
    assert!(b.w(move |tx| tx.delete_appointment(&uuid(2))));
    assert!(!b.r(move |tx| tx.has_pending_breach(&uuid(2))));
}

fn chain_case(b: &Backend) {
    assert_eq!(b.r(|tx| tx.chain_tip()), None);
    let work = |n: u64| {
        Work::from_be_bytes({
            let mut w = [0u8; 32];
            w[24..].copy_from_slice(&n.to_be_bytes());
            w
        })
    };
    b.w(move |tx| {
        for h in 100..=105 {
            tx.push_block(
                h,
                &block_hash(h),
                (h % 2 == 0).then(|| work(u64::from(h))),
                4,
            )?;
        }
        Ok(())
    });
    assert_eq!(b.r(|tx| tx.chain_tip()), Some((105, block_hash(105))));
    // Pruned to the last 4.
    assert_eq!(
        b.r(|tx| tx.recent_blocks()),
        (102..=105)
            .rev()
            .map(|h| (h, block_hash(h)))
            .collect::<Vec<_>>()
    );
    assert_eq!(b.r(|tx| tx.block_work(&block_hash(104))), Some(work(104)));
    assert_eq!(b.r(|tx| tx.block_work(&block_hash(105))), None);
    assert_eq!(b.r(|tx| tx.block_work(&block_hash(100))), None);
    assert_eq!(b.r(|tx| tx.block_hash_at(103)), Some(block_hash(103)));
    assert_eq!(b.r(|tx| tx.block_hash_at(101)), None);
    assert_eq!(b.r(|tx| tx.block_height(&block_hash(102))), Some(102));
    assert_eq!(b.r(|tx| tx.block_height(&block_hash(1))), None);

    let txids: Vec<Txid> = (1..=3000)
        .map(|n| Txid::from_byte_array([(n % 251) as u8; 32]))
        .collect();
    let stored = txids.clone();
    assert!(b.w(move |tx| tx.set_block_txids(105, &block_hash(105), &stored)));
    // Another block at that height, or no block: nothing stored.
    assert!(!b.w(|tx| tx.set_block_txids(105, &block_hash(7), &[txid(1)])));
    assert!(!b.w(|tx| tx.set_block_txids(200, &block_hash(200), &[txid(1)])));
    b.w(|tx| {
        tx.set_block_txids(103, &block_hash(103), &[txid(3)])
            .map(|_| ())
    });
    b.w(|tx| tx.set_block_txids(104, &block_hash(104), &[]).map(|_| ()));
    assert_eq!(b.r(|tx| tx.block_txids(105)), Some(txids));
    assert_eq!(b.r(|tx| tx.block_txids(104)), Some(vec![]));
    assert_eq!(b.r(|tx| tx.block_txids(102)), None);
    assert_eq!(b.w(|tx| tx.clear_block_txids_below(105)), 2);
    assert_eq!(b.r(|tx| tx.block_txids(103)), None);
    // Replacing the block at a height forgets its txids.
    b.w(|tx| tx.push_block(105, &block_hash(1105), None, 4));
    assert_eq!(b.r(|tx| tx.block_txids(105)), None);
    assert_eq!(b.r(|tx| tx.chain_tip()), Some((105, block_hash(1105))));

    assert_eq!(b.w(|tx| tx.pop_blocks(104)), 2);
    assert_eq!(b.r(|tx| tx.chain_tip()), Some((103, block_hash(103))));
    assert_eq!(b.w(|tx| tx.pop_blocks(0)), 2);
    assert_eq!(b.r(|tx| tx.chain_tip()), None);
    // keep = 0 counts as 1; u32::MAX heights fit.
    b.w(|tx| {
        tx.push_block(7, &block_hash(7), None, 0)?;
        tx.push_block(u32::MAX, &block_hash(8), None, 0)
    });
    assert_eq!(
        b.r(|tx| tx.recent_blocks()),
        vec![(u32::MAX, block_hash(8))]
    );
}

fn keys_case(b: &Backend) {
    assert_eq!(b.r(|tx| tx.latest_tower_key()), None);
    assert_eq!(b.r(|tx| tx.count_tower_keys()), 0);
    let k1 = SecretKey::from_slice(&[1; 32]).unwrap();
    let k2 = SecretKey::from_slice(&[2; 32]).unwrap();
    let id1 = b.w(move |tx| tx.insert_tower_key(&k1));
    let id2 = b.w(move |tx| tx.insert_tower_key(&k2));
    assert!(id2 > id1);
    assert_eq!(b.r(|tx| tx.latest_tower_key()), Some(k2));
    assert_eq!(b.r(|tx| tx.count_tower_keys()), 2);
}

fn constraints_case(b: &Backend) {
    // An appointment of an unknown user.
    let err = b
        .write(|tx| tx.upsert_appointment(&appointment(1, user(1))))
        .unwrap_err();
    assert!(err.is_constraint_violation(), "{err:?}");
    let u1 = user(1);
    b.w(move |tx| {
        tx.upsert_user(&u1, &user_record(10, 1000))?;
        tx.upsert_appointment(&appointment(1, u1))
    });
    let uuid = appointment(1, u1).uuid;
    // A second tracker for the same appointment.
    b.w(move |tx| tx.insert_tracker(&tracker(uuid, 1, TrackerStatus::InMempool, 1)));
    let err = b
        .write(move |tx| tx.insert_tracker(&tracker(uuid, 2, TrackerStatus::InMempool, 1)))
        .unwrap_err();
    assert!(err.is_constraint_violation(), "{err:?}");
    // A tracker or a pending breach of a missing appointment.
    let missing = appointment(2, u1).uuid;
    let err = b
        .write(move |tx| tx.insert_tracker(&tracker(missing, 3, TrackerStatus::InMempool, 1)))
        .unwrap_err();
    assert!(err.is_constraint_violation(), "{err:?}");
    let err = b
        .write(move |tx| tx.upsert_pending_breach(&missing, &txid(1), &block_hash(1), 1))
        .unwrap_err();
    assert!(err.is_constraint_violation(), "{err:?}");
    // The refused writes left nothing, and the unit's earlier writes were rolled back with them.
    let err = b
        .write(move |tx| {
            tx.upsert_user(&user(5), &user_record(1, 1))?;
            tx.upsert_appointment(&appointment(5, user(6)))
        })
        .unwrap_err();
    assert!(err.is_constraint_violation(), "{err:?}");
    assert_eq!(b.r(|tx| tx.user(&user(5))), None);
    assert_eq!(b.r(|tx| tx.count_trackers()), 1);
    assert_eq!(b.r(|tx| tx.stored_users()), 1);
    assert_eq!(b.r(|tx| tx.stored_appointments()), 1);
    // Not a constraint violation.
    assert!(!StorageError::NotFound("user").is_constraint_violation());
}

fn cascades_case(b: &Backend) {
    // User 1 (expired, no tracker), user 2 (expired, one tracker), user 3 (current).
    let (u1, u2, u3) = (user(1), user(2), user(3));
    b.w(move |tx| {
        tx.upsert_user(&u1, &user_record(10, 100))?;
        tx.upsert_user(&u2, &user_record(10, 100))?;
        tx.upsert_user(&u3, &user_record(10, 200))?;
        for (n, u) in [(1, u1), (2, u1), (3, u2), (4, u2), (5, u3)] {
            tx.upsert_appointment(&appointment(n, u))?;
        }
        tx.insert_tracker(&tracker(
            appointment(3, u2).uuid,
            3,
            TrackerStatus::InMempool,
            1,
        ))?;
        tx.upsert_pending_breach(&appointment(1, u1).uuid, &txid(1), &block_hash(1), 1)
    });
    assert_eq!(b.r(|tx| tx.stored_appointments()), 5);
    assert_eq!(b.r(|tx| tx.stored_users()), 3);
    // Not outdated yet: expiry 100 + delta 6 > 105.
    assert_eq!(b.w(|tx| tx.delete_outdated_users(105, 6)), vec![]);
    assert_eq!(b.w(|tx| tx.delete_outdated_users(106, 6)), vec![u1]);
    // User 1 went with its appointments and pending breach; user 2 keeps its row and its tracked
    // appointment, loses its watched one; user 3 is untouched.
    assert_eq!(b.r(move |tx| tx.user(&u1)), None);
    assert!(b.r(move |tx| tx.user(&u2)).is_some());
    assert_eq!(
        b.r(|tx| tx.appointments_by_locators(&(1..=5).map(locator).collect::<Vec<_>>()))
            .into_iter()
            .map(|a| a.locator)
            .collect::<Vec<_>>()
            .len(),
        2
    );
    assert!(
        b.r(move |tx| tx.appointment(&appointment(3, u2).uuid))
            .is_some()
    );
    assert!(
        b.r(move |tx| tx.appointment(&appointment(5, u3).uuid))
            .is_some()
    );
    assert_eq!(b.r(|tx| tx.pending_breaches_after(None, u32::MAX)), vec![]);
    // The counters followed the cascades exactly.
    assert_eq!(b.r(|tx| tx.stored_appointments()), 2);
    assert_eq!(b.r(|tx| tx.count_appointments()), 2);
    assert_eq!(b.r(|tx| tx.stored_users()), 2);
    assert_eq!(b.r(|tx| tx.count_users()), 2);
}

fn savepoints_case(b: &Backend) {
    let u1 = user(1);
    // A constraint violation undone by its savepoint; the unit goes on and commits.
    b.w(move |tx| {
        tx.upsert_user(&u1, &user_record(10, 1000))?;
        tx.savepoint("bookkeeping")?;
        let err = tx.upsert_appointment(&appointment(1, user(2))).unwrap_err();
        assert!(err.is_constraint_violation());
        tx.rollback_savepoint("bookkeeping")?;
        tx.savepoint("kept")?;
        tx.upsert_appointment(&appointment(2, u1))?;
        tx.release_savepoint("kept")?;
        tx.savepoint("undone")?;
        tx.upsert_appointment(&appointment(3, u1))?;
        tx.rollback_savepoint("undone")
    });
    assert!(b.r(move |tx| tx.user(&u1)).is_some());
    assert_eq!(b.r(move |tx| tx.locators_of_user(&u1)), vec![locator(2)]);
    assert_eq!(b.r(|tx| tx.stored_appointments()), 1);
}

fn read_only_case(b: &Backend) {
    let err = b
        .read(|tx| tx.upsert_user(&user(1), &user_record(1, 1)))
        .unwrap_err();
    assert!(!err.is_constraint_violation(), "{err:?}");
    assert_eq!(b.r(|tx| tx.count_users()), 0);
}

// ---- PostgreSQL only -----------------------------------------------------------------------------

/// Runs `work(i)` on `n` threads released together; returns their results in thread order.
fn together<T: Send + 'static>(
    n: usize,
    work: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(n));
    let work = Arc::new(work);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, work) = (barrier.clone(), work.clone());
            thread::spawn(move || {
                barrier.wait();
                work(i)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Slot accounting is atomic under concurrent requests on separate connections (as on separate
/// instances): of N spenders of one user's K < N slots, exactly K succeed and the balance ends at
/// 0, through both ways the domain spends slots (`add_slots`, and reading the user then writing it
/// back). Fails if `add_slots` is a read-then-write or if `user()` does not lock the row.
#[test]
fn postgresql_concurrent_spenders_never_spend_a_slot_twice() {
    let Some(server) = PgServer::new("postgresql_concurrent_spenders_never_spend_a_slot_twice")
    else {
        return;
    };
    const SPENDERS: usize = 12;
    const SLOTS: u32 = 5;
    const ROUNDS: u32 = 10;
    let store = server.store(PgOptions {
        pool_size: SPENDERS as u32,
        ..PgOptions::default()
    });
    let u = user(1);
    // Every spender on its own connection, opened before the race.
    let conns: Vec<_> = (0..SPENDERS).map(|_| store.connection().unwrap()).collect();
    drop(conns);
    assert!(store.connections().0 >= SPENDERS as u32);

    for round in 0..ROUNDS {
        for way in ["add_slots", "read-then-upsert"] {
            store
                .write_retrying(|tx: &mut PgTx<'_>| {
                    tx.upsert_user(&u, &user_record(SLOTS, 1000 + round))
                })
                .unwrap();
            let s = store.clone();
            let results = together(SPENDERS, move |_| {
                s.write_once(move |tx: &mut PgTx<'_>| -> TxResult<bool> {
                    let tx: &mut dyn Tx = tx;
                    if way == "add_slots" {
                        match tx.add_slots(&u, -1) {
                            Ok(_) => Ok(true),
                            Err(StorageError::SlotsOutOfRange { .. }) => Ok(false),
                            Err(e) => Err(e),
                        }
                    } else {
                        let mut record = tx.user(&u)?.expect("registered");
                        if record.available_slots == 0 {
                            return Ok(false);
                        }
                        record.available_slots -= 1;
                        tx.upsert_user(&u, &record)?;
                        Ok(true)
                    }
                })
            });
            let spent = results
                .into_iter()
                .map(|r| r.expect("no storage error"))
                .filter(|&ok| ok)
                .count();
            let left = store
                .read_retrying(|tx: &mut PgTx<'_>| tx.user(&u))
                .unwrap()
                .expect("registered")
                .available_slots;
            assert_eq!(
                (spent, left),
                (SLOTS as usize, 0),
                "round {round}, {way}: {spent} spends succeeded, {left} slots left"
            );
        }
    }
}

/// The ordering row: an appointment insert holding `chain_tip` FOR SHARE makes a block commit wait
/// (even one that changes `chain` without locking the row first: the trigger's update of the row
/// waits too), and inserts do not wait for each other. The tip it reads is the committed one.
#[test]
fn postgresql_appointment_inserts_and_block_commits_are_ordered_on_the_chain_tip_row() {
    let Some(server) = PgServer::new("postgresql_ordering_row") else {
        return;
    };
    let store = server.store(PgOptions::default());
    store
        .write_retrying(|tx: &mut PgTx<'_>| tx.push_block(10, &block_hash(10), None, 100))
        .unwrap();
    let mut observer = store.connection().unwrap();

    for block_commit_locks_first in [true, false] {
        let mut insert_conn = store.connection().unwrap();
        let mut other_insert = store.connection().unwrap();
        let mut insert = insert_conn.transaction().unwrap();
        let tip = pg_chain::lock_tip_shared(&mut insert).unwrap();
        let (height, _) = tip.expect("a tip");
        // A second insert takes the row too, without waiting.
        let mut second = other_insert.transaction().unwrap();
        assert_eq!(pg_chain::lock_tip_shared(&mut second).unwrap(), tip);
        second.commit().unwrap();

        let next = height + 1;
        let s = store.clone();
        let commit = thread::spawn(move || {
            s.write_retrying(|tx: &mut PgTx<'_>| {
                if block_commit_locks_first {
                    tx.lock_chain_tip_exclusive()?;
                }
                tx.push_block(next, &block_hash(next), None, 100)
            })
        });
        // The block commit waits on a lock while the insert is open.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let waiting: i64 = observer
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                     AND datname = current_database()",
                    &[],
                )
                .unwrap()
                .get(0);
            if waiting == 1 {
                break;
            }
            assert!(!commit.is_finished(), "the block commit did not wait");
            assert!(Instant::now() < deadline, "the block commit never waited");
            thread::sleep(Duration::from_millis(5));
        }
        // Still the old tip for the insert; its commit releases the block commit.
        assert_eq!(pg_chain::lock_tip_shared(&mut insert).unwrap(), tip);
        insert.commit().unwrap();
        commit.join().unwrap().unwrap();
        let mut after = insert_conn.transaction().unwrap();
        assert_eq!(
            pg_chain::lock_tip_shared(&mut after).unwrap(),
            Some((next, block_hash(next)))
        );
        after.commit().unwrap();
    }
}

/// Instances starting together on an empty database end up with ONE tower key, and opening a
/// store applies the migrations once whoever else opens the same database at the same time.
#[test]
fn postgresql_instances_starting_together_share_one_tower_key() {
    let Some(server) = PgServer::new("postgresql_one_tower_key") else {
        return;
    };
    let url = DatabaseUrl::parse(&server.fresh_database()).unwrap();
    const INSTANCES: usize = 4;
    let keys = together(INSTANCES, move |i| {
        let store = PgStore::open(&url, PgOptions::default()).expect("open");
        let mine = SecretKey::from_slice(&[i as u8 + 1; 32]).unwrap();
        let key = store
            .write_retrying(|tx: &mut PgTx<'_>| tx.tower_key_or_insert(&mine))
            .unwrap();
        let count = store
            .read_retrying(|tx: &mut PgTx<'_>| tx.count_tower_keys())
            .unwrap();
        (key, count)
    });
    let first = keys[0].0;
    for (key, count) in &keys {
        assert_eq!(*key, first);
        assert_eq!(*count, 1);
    }
}

/// PostgreSQL stopped under the pool: units of work fail clearly (Unavailable, naming the URL with
/// its password masked) while it is down, a unit started while it is down succeeds once it is back
/// within the wait, and the same store works again afterwards with everything committed before.
#[test]
fn postgresql_restart_under_the_pool_fails_clearly_then_recovers() {
    let Some(target) = PgTarget::from_env("postgresql_restart_under_the_pool").unwrap() else {
        return;
    };
    let PgTarget::Owned(cluster) = &target else {
        eprintln!(
            "SKIPPED postgresql_restart_under_the_pool: an external server cannot be restarted"
        );
        return;
    };
    let server = PgServer {
        target: PgTarget::External(cluster.url()),
    };
    let url = DatabaseUrl::parse(&server.fresh_database()).unwrap();
    let short = PgOptions {
        unavailable_wait: Duration::from_secs(1),
        ..PgOptions::default()
    };
    let store = PgStore::open(&url, short.clone()).unwrap();
    let patient = PgStore::open(
        &url,
        PgOptions {
            unavailable_wait: Duration::from_secs(60),
            ..PgOptions::default()
        },
    )
    .unwrap();
    // Used once before the restart and not during it: its pooled connection goes stale.
    let idle = PgStore::open(&url, short.clone()).unwrap();
    let u = user(1);
    store
        .write_retrying(|tx: &mut PgTx<'_>| tx.upsert_user(&u, &user_record(10, 1000)))
        .unwrap();
    assert_eq!(
        idle.read_blocking(move |tx: &mut dyn Tx| tx.user(&u))
            .unwrap(),
        Some(user_record(10, 1000))
    );

    cluster.stop().unwrap();
    let started = Instant::now();
    let err = store
        .write_retrying(|tx: &mut PgTx<'_>| tx.add_slots(&u, -1))
        .unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let text = err.to_string();
    assert!(
        text.contains("********") && !text.contains("teos-test-pw"),
        "{text}"
    );
    let err = store
        .read_retrying(|tx: &mut PgTx<'_>| tx.user(&u))
        .unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");

    // A unit started while the database is down waits for it.
    let waiting = {
        let patient = patient.clone();
        thread::spawn(move || patient.write_retrying(|tx: &mut PgTx<'_>| tx.add_slots(&u, -2)))
    };
    cluster.start_again().unwrap();
    assert_eq!(waiting.join().unwrap().unwrap(), 8);
    // A run-once op on a stale connection: it fails at BEGIN, before the op, and runs on a new one.
    assert_eq!(
        idle.write_blocking(move |tx: &mut dyn Tx| tx.add_slots(&u, 0))
            .unwrap(),
        8
    );
    // The first store works again without being reopened.
    assert_eq!(
        store
            .write_retrying(|tx: &mut PgTx<'_>| tx.add_slots(&u, -1))
            .unwrap(),
        7
    );
    assert_eq!(
        store
            .read_retrying(|tx: &mut PgTx<'_>| tx.user(&u))
            .unwrap()
            .unwrap()
            .available_slots,
        7
    );
}

/// A wrong password is refused at open with an error naming the URL with the password masked.
#[test]
fn postgresql_open_errors_never_show_the_password() {
    let Some(server) = PgServer::new("postgresql_open_errors_never_show_the_password") else {
        return;
    };
    let good = server.fresh_database();
    let Some((scheme_user, rest)) = good.split_once(':').and_then(|(s, r)| {
        // postgresql://teos:PASSWORD@host...: replace PASSWORD.
        let (user_part, after) = r.split_once('@')?;
        let user = user_part.rsplit_once(':').map_or(user_part, |(u, _)| u);
        Some((format!("{s}:{user}"), after.to_string()))
    }) else {
        panic!("unexpected test URL shape");
    };
    let url = DatabaseUrl::parse(&format!("{scheme_user}:wrong-secret-pw@{rest}")).unwrap();
    let err = match PgStore::open(
        &url,
        PgOptions {
            unavailable_wait: Duration::from_secs(2),
            ..PgOptions::default()
        },
    ) {
        Ok(_) => panic!("a wrong password was accepted"),
        Err(e) => e,
    };
    let text = format!("{err} {err:?}");
    assert!(!text.contains("wrong-secret-pw"), "{text}");
    assert!(text.contains("********"), "{text}");
}

/// On PostgreSQL a failed statement aborts the transaction, and a COMMIT would then roll back
/// silently: an op that swallows the error and returns `Ok` gets an error instead of a false
/// success.
#[test]
fn postgresql_a_swallowed_statement_failure_is_not_reported_as_committed() {
    let Some(server) = PgServer::new("postgresql_swallowed_failure") else {
        return;
    };
    let store = server.store(PgOptions::default());
    let err = store
        .write_retrying(|tx: &mut PgTx<'_>| {
            tx.upsert_user(&user(1), &user_record(1, 1))?;
            let _ignored = tx.upsert_appointment(&appointment(1, user(2)));
            Ok(())
        })
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Postgres(ref f) if f.kind == PgErrorKind::Other),
        "{err:?}"
    );
    assert_eq!(
        store
            .read_retrying(|tx: &mut PgTx<'_>| tx.count_users())
            .unwrap(),
        0
    );
}

/// The async entry points (the storage `Store`'s shapes) run the synchronous client on tokio's
/// blocking pool: called from async tasks on the workers of a runtime they neither panic ("Cannot
/// start a runtime from within a runtime") nor block the workers.
#[test]
fn postgresql_async_entry_points_run_off_the_async_workers() {
    let Some(server) = PgServer::new("postgresql_async_entry_points") else {
        return;
    };
    let store = server.store(PgOptions::default());
    let closer = store.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let u = user(1);
    let slots = runtime.block_on(async move {
        store
            .write(move |tx: &mut dyn Tx| tx.upsert_user(&u, &user_record(10, 1000)))
            .await?;
        let spends: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .write(move |tx: &mut dyn Tx| tx.add_slots(&u, -1))
                        .await
                })
            })
            .collect();
        for spend in spends {
            spend.await.expect("task")?;
        }
        store
            .read(move |tx: &mut dyn Tx| tx.user(&u))
            .await
            .map(|user| user.map(|u| u.available_slots))
    });
    assert_eq!(slots.unwrap(), Some(6));
    // Closed: refused at once, on every entry point.
    closer.close().unwrap();
    let err = closer
        .read_retrying(|tx: &mut PgTx<'_>| tx.count_users())
        .unwrap_err();
    assert!(matches!(err, StorageError::Closed), "{err:?}");
    let err = closer.execute_blocking(SeeTip::<false, true>).unwrap_err();
    assert!(matches!(err, StorageError::Closed), "{err:?}");
}

/// A session left idle inside a transaction (an instance frozen or cut off while holding the
/// ordering row) is ended by the server after `idle_in_transaction_timeout`, so a block commit
/// waiting for that lock goes through instead of waiting for ever.
#[test]
fn postgresql_a_stuck_transaction_does_not_hold_the_ordering_row_for_ever() {
    let Some(server) = PgServer::new("postgresql_stuck_transaction") else {
        return;
    };
    let store = server.store(PgOptions {
        idle_in_transaction_timeout: Duration::from_secs(1),
        ..PgOptions::default()
    });
    let mut stuck_conn = store.connection().unwrap();
    let mut stuck = stuck_conn.transaction().unwrap();
    pg_chain::lock_tip_shared(&mut stuck).unwrap();
    // The stuck transaction now sends nothing more; a block commit waits for its lock.
    let commit = {
        let store = store.clone();
        thread::spawn(move || {
            store.write_retrying(|tx: &mut PgTx<'_>| {
                tx.lock_chain_tip_exclusive()?;
                tx.push_block(1, &block_hash(1), None, 10)
            })
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !commit.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the block commit still waits for the stuck transaction's lock"
        );
        thread::sleep(Duration::from_millis(20));
    }
    commit.join().unwrap().unwrap();
    // The stuck session was ended by the server.
    let err = pg_chain::lock_tip_shared(&mut stuck).unwrap_err();
    assert!(!err.is_constraint_violation(), "{err:?}");
    drop(stuck);
    assert_eq!(
        store
            .read_retrying(|tx: &mut PgTx<'_>| tx.chain_tip())
            .unwrap(),
        Some((1, block_hash(1)))
    );
}

/// A command that returns the tip it sees, ordered as `ORDER` says.
struct SeeTip<const BLOCK: bool, const FREE: bool>;

impl<const BLOCK: bool, const FREE: bool> Command for SeeTip<BLOCK, FREE> {
    type Output = Option<(u32, BlockHash)>;
    type Error = StorageError;
    const NAME: &'static str = "see_tip";
    const ORDER: Order = match (BLOCK, FREE) {
        (_, true) => Order::Free,
        (true, false) => Order::Block,
        (false, false) => Order::WithBlocks,
    };
    fn run(self, tx: &mut dyn Tx) -> TxResult<Self::Output> {
        tx.chain_tip()
    }
}

/// `execute` orders commands on the chain_tip row as their `Command::ORDER` says: while a block
/// commit holds it, an appointment-like command (`WithBlocks`) waits and then sees the block, a
/// `Free` one does not wait; a `Block` command waits for an appointment-like one in flight.
#[test]
fn postgresql_execute_orders_commands_as_their_order_says() {
    let Some(server) = PgServer::new("postgresql_execute_orders_commands") else {
        return;
    };
    let store = server.store(PgOptions::default());
    // Block commands run only for the fleet's leader: this store leads with the first epoch (0).
    store.set_fence(Some(0));
    store
        .write_retrying(|tx: &mut PgTx<'_>| tx.push_block(1, &block_hash(1), None, 10))
        .unwrap();
    let mut observer = store.connection().unwrap();
    let waits_on_a_lock = |observer: &mut postgres::Client| -> bool {
        let waiting: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                 AND datname = current_database()",
                &[],
            )
            .unwrap()
            .get(0);
        waiting == 1
    };
    let wait_for = |observer: &mut postgres::Client, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !waits_on_a_lock(observer) {
            assert!(!done(), "the command did not wait");
            assert!(Instant::now() < deadline, "the command never waited");
            thread::sleep(Duration::from_millis(5));
        }
    };

    // A block commit in flight.
    let mut block_conn = store.connection().unwrap();
    let mut block = block_conn.transaction().unwrap();
    pg_chain::lock_tip_exclusive(&mut block).unwrap();
    pg_chain::push(&mut block, 2, &block_hash(2), 10).unwrap();
    // A Free command does not wait, and sees the committed tip.
    assert_eq!(
        store.execute_blocking(SeeTip::<false, true>).unwrap(),
        Some((1, block_hash(1)))
    );
    let appointment = {
        let store = store.clone();
        thread::spawn(move || store.execute_blocking(SeeTip::<false, false>))
    };
    wait_for(&mut observer, &|| appointment.is_finished());
    block.commit().unwrap();
    assert_eq!(
        appointment.join().unwrap().unwrap(),
        Some((2, block_hash(2)))
    );

    // An appointment-like command in flight holds off a Block command.
    let mut insert_conn = store.connection().unwrap();
    let mut insert = insert_conn.transaction().unwrap();
    pg_chain::lock_tip_shared(&mut insert).unwrap();
    let block_command = {
        let store = store.clone();
        thread::spawn(move || store.execute_blocking(SeeTip::<true, false>))
    };
    wait_for(&mut observer, &|| block_command.is_finished());
    insert.commit().unwrap();
    assert_eq!(
        block_command.join().unwrap().unwrap(),
        Some((2, block_hash(2)))
    );
}

/// A command that records a block, ordered as a block command (fenced).
struct RecordBlock(u32);

impl Command for RecordBlock {
    type Output = ();
    type Error = StorageError;
    const NAME: &'static str = "record_block";
    const ORDER: Order = Order::Block;
    fn run(self, tx: &mut dyn Tx) -> TxResult<()> {
        tx.push_block(self.0, &block_hash(self.0), None, 10)
    }
}

/// Fencing (docs/fleet.md): a block command commits only for the holder of the current
/// `fleet_leader.epoch`; without an epoch, or with an older one, it is refused and writes nothing.
/// Other commands are not fenced.
#[test]
fn postgresql_block_commands_commit_only_with_the_current_epoch() {
    let Some(server) = PgServer::new("postgresql_block_commands_fenced") else {
        return;
    };
    let store = server.store(PgOptions::default());
    let tip = |store: &PgStore| {
        store
            .read_retrying(|tx: &mut PgTx<'_>| tx.chain_tip())
            .unwrap()
    };
    // No epoch: refused.
    let refused = store.execute_blocking(RecordBlock(1)).unwrap_err();
    assert!(
        matches!(
            refused,
            StorageError::Fenced {
                ours: None,
                current: 0
            }
        ),
        "{refused:?}"
    );
    assert_eq!(tip(&store), None, "nothing written");
    // The current epoch: committed.
    store.set_fence(Some(0));
    store.execute_blocking(RecordBlock(1)).unwrap();
    assert_eq!(tip(&store), Some((1, block_hash(1))));
    // Another instance took over (the epoch moved on): this one's epoch is stale.
    store
        .write_retrying(|tx: &mut PgTx<'_>| {
            tx.client()
                .batch_execute("UPDATE fleet_leader SET epoch = epoch + 1 WHERE id = 1")
                .map_err(StorageError::from)
        })
        .unwrap();
    let refused = store.execute_blocking(RecordBlock(2)).unwrap_err();
    assert!(
        matches!(
            refused,
            StorageError::Fenced {
                ours: Some(0),
                current: 1
            }
        ),
        "{refused:?}"
    );
    assert_eq!(tip(&store), Some((1, block_hash(1))), "nothing written");
    // Not a block command: not fenced.
    assert_eq!(
        store.execute_blocking(SeeTip::<false, false>).unwrap(),
        Some((1, block_hash(1)))
    );
}

/// The schema's CHECKs (lengths, the u32 range, tracker statuses) hold on PostgreSQL too, and
/// their violations are classified like SQLite's: `is_constraint_violation`.
#[test]
fn postgresql_check_violations_are_constraint_violations() {
    let Some(server) = PgServer::new("postgresql_check_violations") else {
        return;
    };
    let store = server.store(PgOptions::default());
    let u = user(1);
    store
        .write_retrying(|tx: &mut PgTx<'_>| {
            tx.upsert_user(&u, &user_record(1, 1))?;
            tx.upsert_appointment(&appointment(1, u))
        })
        .unwrap();
    let uuid = appointment(1, u).uuid;
    for sql in [
        "INSERT INTO users VALUES ('\\x0102', 1, 1, 1)",
        "UPDATE users SET available_slots = 4294967296",
        "UPDATE users SET available_slots = -1",
        "UPDATE appointments SET locator = '\\x01'",
        "INSERT INTO keys (secret_key, created_at) VALUES ('\\x01', 0)",
        "INSERT INTO chain (height, hash, txids) VALUES (1, decode(repeat('00', 32), 'hex'), '\\x0102')",
        "UPDATE chain_tip SET height = -1",
        "INSERT INTO chain_tip (id) VALUES (2)",
    ] {
        let err = store
            .write_retrying(|tx: &mut PgTx<'_>| {
                tx.client().batch_execute(sql).map_err(StorageError::from)
            })
            .unwrap_err();
        assert!(err.is_constraint_violation(), "{sql}: {err:?}");
    }
    let err = store
        .write_retrying(|tx: &mut PgTx<'_>| {
            let mut t = tracker(uuid, 1, TrackerStatus::InMempool, 1);
            t.status_height = 1;
            tx.insert_tracker(&t)?;
            tx.client()
                .batch_execute("UPDATE trackers SET status = 4")
                .map_err(StorageError::from)
        })
        .unwrap_err();
    assert!(err.is_constraint_violation(), "{err:?}");
    assert_eq!(
        store
            .read_retrying(|tx: &mut PgTx<'_>| tx.count_trackers())
            .unwrap(),
        0
    );
}

/// A new fleet before its first leader bootstrapped the chain: registrations are refused (code 32,
/// "retry later") instead of getting a subscription from height 0, and so are appointments (no
/// dispute mined before the bootstrap block could be scanned for them). Once a tip is committed a
/// registration starts there, whatever this process's chain view says.
#[test]
fn postgresql_requests_wait_for_the_fleets_first_chain_tip() {
    use teos_common::errors::ErrorCode;
    use teosd::chain_view::SharedChainView;
    use teosd::gatekeeper::{Register, SubscriptionParams};
    let Some(server) = PgServer::new("postgresql_requests_wait_for_the_first_tip") else {
        return;
    };
    let store = server.store(PgOptions::default());
    let register = || Register {
        user_id: user(1),
        view: SharedChainView::new(0, BlockHash::all_zeros(), 6),
        params: SubscriptionParams {
            slots: 100,
            duration: 1000,
            expiry_delta: 6,
        },
        max_users: 0,
    };
    let refused = store.execute_blocking(register()).unwrap_err();
    assert_eq!(refused.code, ErrorCode::ServiceUnavailable, "{refused:?}");
    store.set_fence(Some(0));
    store.execute_blocking(RecordBlock(700)).unwrap();
    let user = store.execute_blocking(register()).unwrap();
    assert_eq!(
        (user.subscription_start, user.subscription_expiry),
        (700, 1700)
    );
}
