//! Behaviour of `Store`: migrations, pragmas, the writer thread's group commit and its failure
//! handling, readers, close.

#[path = "storage_support.rs"]
mod support;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use rusqlite::Connection;
use support::*;
use teosd::storage::{StorageError, Store, appointments, schema_version, users};

/// Submits an op that signals when it runs and then blocks the writer until `release` is sent (or
/// 10 s pass), inserting user `n` first. Returns when the op is running.
fn hold_writer(
    store: &Store,
    n: u32,
) -> (
    mpsc::Sender<()>,
    thread::JoinHandle<Result<(), StorageError>>,
) {
    let (running_tx, running_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let s = store.clone();
    let handle = thread::spawn(move || {
        s.write_sqlite_blocking(move |conn| {
            users::upsert(conn, &user(n), &user_record(10, 1000))?;
            running_tx.send(()).unwrap();
            release_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            Ok(())
        })
    });
    running_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    (release_tx, handle)
}

/// Submits `op` from a new thread and returns once it is queued behind the held writer.
fn queue<T: Send + 'static>(
    store: &Store,
    op: impl FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
) -> thread::JoinHandle<Result<T, StorageError>> {
    let before = store.queued_ops();
    let s = store.clone();
    let handle = thread::spawn(move || s.write_sqlite_blocking(op));
    assert!(wait_for(|| store.queued_ops() > before), "op never queued");
    handle
}

fn user_exists(store: &Store, n: u32) -> bool {
    store
        .read_sqlite_blocking(move |conn| users::get(conn, &user(n)))
        .unwrap()
        .is_some()
}

/// The highest `V<n>__*.sql` in `migrations/`: what a fresh database must end up at.
fn latest_migration() -> u32 {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/sqlite"))
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.strip_prefix('V')?.split_once("__")?.0.parse().ok()
        })
        .max()
        .expect("no migration files")
}

#[test]
fn fresh_database_gets_the_latest_schema_and_reopening_applies_nothing_twice() {
    let (_dir, path, store) = open_temp();
    let latest = latest_migration();
    assert_eq!(
        store.read_sqlite_blocking(schema_version).unwrap(),
        Some(latest)
    );
    let tables: Vec<String> = store
        .read_sqlite_blocking(|c| -> Result<_, StorageError> {
            let mut stmt =
                c.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
            let names = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(names)
        })
        .unwrap();
    for t in [
        "appointments",
        "chain",
        "keys",
        "pending_breaches",
        "trackers",
        "users",
    ] {
        assert!(
            tables.iter().any(|n| n == t),
            "missing table {t}: {tables:?}"
        );
    }
    store.close().unwrap();

    let store = Store::open(&path).unwrap();
    let (version, rows) = store
        .read_sqlite_blocking(|c| -> Result<_, StorageError> {
            let rows: i64 =
                c.query_row("SELECT COUNT(*) FROM refinery_schema_history", [], |r| {
                    r.get(0)
                })?;
            Ok((schema_version(c)?, rows))
        })
        .unwrap();
    assert_eq!(version, Some(latest));
    assert_eq!(
        rows,
        i64::from(latest),
        "one history row per migration, none applied twice"
    );
}

#[test]
fn database_written_by_a_newer_schema_is_refused() {
    let (_dir, path, store) = open_temp();
    store.close().unwrap();
    drop(store);
    let conn = Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
         VALUES (?1, 'future', '2030-01-01T00:00:00Z', '1')",
        [latest_migration() + 1],
    )
    .unwrap();
    drop(conn);
    match Store::open(&path) {
        Err(StorageError::Migration(_)) => {}
        other => panic!("expected a migration error, got {other:?}"),
    }
}

#[test]
fn a_file_that_is_not_sqlite_is_reported_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("teos_db.sql3");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    match Store::open(&path) {
        Err(StorageError::Corrupt(_)) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn writer_runs_with_wal_full_sync_and_foreign_keys() {
    let (_dir, _path, store) = open_temp();
    let (mode, sync, fk): (String, i64, i64) = store
        .write_sqlite_blocking(|c| -> Result<_, StorageError> {
            Ok((
                c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
                c.query_row("PRAGMA synchronous", [], |r| r.get(0))?,
                c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?,
            ))
        })
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(sync, 2, "synchronous=FULL is 2");
    assert_eq!(fk, 1);
}

#[cfg(unix)]
#[test]
fn new_database_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path, _store) = open_temp();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn acknowledged_write_survives_dropping_the_store_and_reopening() {
    let (_dir, path, store) = open_temp();
    let other_handle = store.clone();
    store
        .write_sqlite_blocking(|c| users::upsert(c, &user(1), &user_record(5, 900)))
        .unwrap();
    drop(store);
    drop(other_handle); // last handle: closes the database
    let store = Store::open(&path).unwrap();
    let got = store
        .read_sqlite_blocking(|c| users::get(c, &user(1)))
        .unwrap();
    assert_eq!(got, Some(user_record(5, 900)));
}

#[test]
fn ops_queued_behind_a_running_op_share_its_commit() {
    let (_dir, _path, store) = open_temp();
    let commits_before = store.commit_count();
    let (release, held) = hold_writer(&store, 1);
    let queued: Vec<_> = (2..=50)
        .map(|n| {
            queue(&store, move |c| {
                users::upsert(c, &user(n), &user_record(1, 1000))
            })
        })
        .collect();
    release.send(()).unwrap();
    held.join().unwrap().unwrap();
    for h in queued {
        h.join().unwrap().unwrap();
    }
    assert_eq!(
        store.commit_count() - commits_before,
        1,
        "50 ops, one group, one commit"
    );
    assert_eq!(store.read_sqlite_blocking(users::count).unwrap(), 50);
}

#[test]
fn many_concurrent_async_writes_need_far_fewer_commits() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let (_dir, _path, store) = open_temp();
    let before = store.commit_count();
    let (release, held) = hold_writer(&store, 1);
    let n = 300u32;
    let tasks: Vec<_> = (2..2 + n)
        .map(|i| {
            let s = store.clone();
            rt.spawn(async move {
                s.write_sqlite(move |c| users::upsert(c, &user(i), &user_record(1, 10)))
                    .await
            })
        })
        .collect();
    assert!(wait_for(|| store.queued_ops() == n as usize));
    release.send(()).unwrap();
    held.join().unwrap().unwrap();
    for t in tasks {
        rt.block_on(t).unwrap().unwrap();
    }
    let commits = store.commit_count() - before;
    assert_eq!(commits, 1, "{n} queued writes took {commits} commits");
}

#[test]
fn ops_of_a_group_run_in_submission_order() {
    let (_dir, _path, store) = open_temp();
    store
        .write_sqlite_blocking(|c| {
            c.execute_batch("CREATE TABLE test_order (op INTEGER)")
                .map_err(StorageError::from)
        })
        .unwrap();
    let (release, held) = hold_writer(&store, 1);
    let queued: Vec<_> = (0..20i64)
        .map(|i| {
            queue(&store, move |c| {
                c.execute("INSERT INTO test_order (op) VALUES (?1)", [i])?;
                Ok(())
            })
        })
        .collect();
    release.send(()).unwrap();
    held.join().unwrap().unwrap();
    queued.into_iter().for_each(|h| h.join().unwrap().unwrap());
    let order: Vec<i64> = store
        .read_sqlite_blocking(|c| -> Result<_, StorageError> {
            let mut stmt = c.prepare("SELECT op FROM test_order ORDER BY rowid")?;
            Ok(stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<i64>, _>>()?)
        })
        .unwrap();
    assert_eq!(order, (0..20).collect::<Vec<_>>());
}

#[test]
fn failed_op_rolls_back_only_its_own_writes() {
    let (_dir, _path, store) = open_temp();
    let (release, held) = hold_writer(&store, 1);
    let failing = queue(&store, |c| -> Result<(), StorageError> {
        users::upsert(c, &user(2), &user_record(1, 1000))?;
        // A constraint violation: an appointment of an unknown user.
        appointments::upsert(c, &appointment(locator(1), user(99)))
    });
    let ok = queue(&store, |c| {
        users::upsert(c, &user(3), &user_record(1, 1000))
    });
    release.send(()).unwrap();
    held.join().unwrap().unwrap();
    match failing.join().unwrap() {
        Err(StorageError::Sqlite(e)) => {
            assert_eq!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::ConstraintViolation)
            )
        }
        other => panic!("expected a constraint violation, got {other:?}"),
    }
    ok.join().unwrap().unwrap();
    assert!(user_exists(&store, 1));
    assert!(
        !user_exists(&store, 2),
        "the failed op's first write must be rolled back"
    );
    assert!(user_exists(&store, 3));
    // The writer keeps working.
    store
        .write_sqlite_blocking(|c| users::upsert(c, &user(4), &user_record(1, 1000)))
        .unwrap();
    assert!(user_exists(&store, 4));
}

#[test]
fn panicking_op_is_reported_and_the_writer_keeps_working() {
    let (_dir, _path, store) = open_temp();
    let result: Result<(), StorageError> = store.write_sqlite_blocking(|c| {
        users::upsert(c, &user(1), &user_record(1, 1000))?;
        panic!("op bug");
    });
    assert!(matches!(result, Err(StorageError::OpPanicked(ref m)) if m.contains("op bug")));
    // An Err is answered before its group commits; this write waits for a commit after it.
    store
        .write_sqlite_blocking(|c| users::upsert(c, &user(2), &user_record(1, 1000)))
        .unwrap();
    assert!(
        !user_exists(&store, 1),
        "the panicking op's writes are rolled back"
    );
    assert!(user_exists(&store, 2));
}

#[test]
fn failed_commit_fails_every_op_of_the_group_and_the_writer_recovers() {
    let (_dir, _path, store) = open_temp();
    let (release, held) = hold_writer(&store, 1);
    // Deferred foreign keys are checked at COMMIT: this op succeeds but makes the COMMIT fail.
    let poison = queue(&store, |c| -> Result<(), StorageError> {
        c.execute_batch("PRAGMA defer_foreign_keys = ON")?;
        appointments::upsert(c, &appointment(locator(1), user(99)))
    });
    let bystander = queue(&store, |c| {
        users::upsert(c, &user(3), &user_record(1, 1000))
    });
    let commits = store.commit_count();
    release.send(()).unwrap();
    for result in [
        held.join().unwrap(),
        poison.join().unwrap(),
        bystander.join().unwrap(),
    ] {
        assert!(
            matches!(result, Err(StorageError::CommitFailed(_))),
            "{result:?}"
        );
    }
    assert_eq!(store.commit_count(), commits);
    assert!(!user_exists(&store, 1) && !user_exists(&store, 3));
    store
        .write_sqlite_blocking(|c| users::upsert(c, &user(4), &user_record(1, 1000)))
        .unwrap();
    assert!(user_exists(&store, 4));
}

#[test]
fn disk_full_fails_the_write_and_writing_resumes_when_space_returns() {
    let (_dir, _path, store) = open_temp();
    // Simulate a full disk: the file may not grow beyond its current page count.
    store
        .write_sqlite_blocking(|c| -> Result<(), StorageError> {
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(())
        })
        .unwrap();
    let big = |n: u32| {
        move |c: &Connection| -> Result<(), StorageError> {
            users::upsert(c, &user(n), &user_record(1, 1000))?;
            let mut a = appointment(locator(n), user(n));
            a.encrypted_blob = vec![1u8; 1 << 20];
            appointments::upsert(c, &a)
        }
    };
    let err = store.write_sqlite_blocking(big(1)).unwrap_err();
    assert!(err.is_disk_full(), "{err:?}");

    // Space returns.
    store
        .write_sqlite_blocking(|c| -> Result<(), StorageError> {
            c.query_row("PRAGMA max_page_count = 1073741823", [], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(())
        })
        .unwrap();
    store.write_sqlite_blocking(big(2)).unwrap();
    assert!(user_exists(&store, 2));
    assert!(
        !user_exists(&store, 1),
        "the failed op's writes are rolled back"
    );
}

#[test]
fn reader_sees_committed_data_and_cannot_write() {
    let (_dir, _path, store) = open_temp();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        store
            .write_sqlite(|c| users::upsert(c, &user(1), &user_record(3, 500)))
            .await
            .unwrap();
        let got = store
            .read_sqlite(|c| users::get(c, &user(1)))
            .await
            .unwrap();
        assert_eq!(got, Some(user_record(3, 500)));
        let write_attempt = store
            .read_sqlite(|c| users::upsert(c, &user(2), &user_record(3, 500)))
            .await;
        match write_attempt {
            Err(StorageError::Sqlite(e)) => {
                assert_eq!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::ReadOnly))
            }
            other => panic!("expected SQLITE_READONLY, got {other:?}"),
        }
    });
}

#[test]
fn readers_run_while_the_writer_holds_an_open_transaction() {
    let (_dir, _path, store) = open_temp();
    store
        .write_sqlite_blocking(|c| users::upsert(c, &user(1), &user_record(1, 1000)))
        .unwrap();
    // The writer is inside a transaction that has written user 2 but not committed.
    let (release, held) = hold_writer(&store, 2);
    let (one, two) = store
        .read_sqlite_blocking(|c| -> Result<_, StorageError> {
            Ok((
                users::get(c, &user(1))?.is_some(),
                users::get(c, &user(2))?.is_some(),
            ))
        })
        .unwrap();
    assert!(one, "committed data is visible");
    assert!(!two, "uncommitted data is not");
    release.send(()).unwrap();
    held.join().unwrap().unwrap();
    assert!(user_exists(&store, 2));
}

#[test]
fn close_runs_queued_ops_then_refuses_new_ones() {
    let (_dir, path, store) = open_temp();
    let (release, held) = hold_writer(&store, 1);
    let queued = queue(&store, |c| {
        users::upsert(c, &user(2), &user_record(1, 1000))
    });
    let closer = {
        let s = store.clone();
        thread::spawn(move || s.close())
    };
    // close() queues its own message behind the ops.
    assert!(wait_for(|| store.queued_ops() == 2));
    release.send(()).unwrap();
    held.join().unwrap().unwrap();
    queued.join().unwrap().unwrap();
    closer.join().unwrap().unwrap();

    let late = store.write_sqlite_blocking(|c| users::upsert(c, &user(3), &user_record(1, 1000)));
    assert!(matches!(late, Err(StorageError::Closed)), "{late:?}");
    assert!(matches!(
        store.read_sqlite_blocking(users::count),
        Err(StorageError::Closed)
    ));
    store.close().unwrap(); // idempotent
    let wal = std::fs::metadata(path.with_file_name("teos_db.sql3-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert_eq!(wal, 0, "the WAL is checkpointed into the database at close");

    let reopened = Store::open(&path).unwrap();
    assert!(user_exists(&reopened, 1) && user_exists(&reopened, 2) && !user_exists(&reopened, 3));
}

#[test]
fn waiting_on_the_writer_from_inside_a_write_op_is_refused_not_deadlocked() {
    let (_dir, _path, store) = open_temp();
    let inner = store.clone();
    let result: Result<Result<(), StorageError>, StorageError> =
        store.write_sqlite_blocking(move |_c| {
            Ok(inner.write_sqlite_blocking(|c| users::upsert(c, &user(1), &user_record(1, 1))))
        });
    assert!(
        matches!(result, Ok(Err(StorageError::OnWriterThread(_)))),
        "{result:?}"
    );
}

#[test]
fn disk_size_counts_database_and_wal() {
    let (_dir, path, store) = open_temp();
    let before = store.disk_size();
    assert!(before >= std::fs::metadata(&path).unwrap().len());
    store
        .write_sqlite_blocking(|c| -> Result<(), StorageError> {
            users::upsert(c, &user(1), &user_record(1, 1000))?;
            let mut a = appointment(locator(1), user(1));
            a.encrypted_blob = vec![3u8; 200_000];
            appointments::upsert(c, &a)
        })
        .unwrap();
    assert!(store.disk_size() >= before + 200_000);
}
