//! The storage side of `add_appointment` (issue 7): the reads and writes one accepted appointment
//! costs on the writer thread (user lookup, trigger checks, upsert, slot charge), submitted by 16
//! threads at once so group commit batches them, each op durable (`synchronous=FULL`) before it
//! returns.
//!
//! `cargo bench -p teosd --bench storage_write`; the database starts with `TEOS_BENCH_ROWS`
//! appointments (default 1,000,000) of 10,000 users.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use support::{filled_store, rows_from_env, stored_appointment, user};
use teosd::storage::{StorageError, Store, UserId, UserRecord};

/// Concurrent submitters, like 16 HTTP connections.
const WRITERS: u64 = 16;
/// Users of the bench.
const USERS: u64 = 10_000;

/// One accepted appointment as `watcher::store_appointment` does it, for stored appointment `n`
/// of user `users[n % USERS]`.
fn accept(store: &Store, users: &[UserId], n: u64) -> Result<(), StorageError> {
    let user_id = users[(n % USERS) as usize];
    let record = stored_appointment(n, user_id);
    store.write_blocking(move |conn| -> Result<(), StorageError> {
        let user = conn.user(&user_id)?.ok_or(StorageError::NotFound("user"))?;
        let triggered =
            conn.tracker(&record.uuid)?.is_some() || conn.has_pending_breach(&record.uuid)?;
        assert!(!triggered);
        let old_slots = conn.appointment(&record.uuid)?.map_or(0, |a| a.slots);
        conn.upsert_appointment(&record)?;
        let charged = UserRecord {
            available_slots: user.available_slots + old_slots - record.slots,
            ..user
        };
        conn.upsert_user(&user_id, &charged)
    })
}

/// Accepts appointments `first..first + iters` from [`WRITERS`] threads at once.
fn run_batch(store: &Store, user_ids: &[UserId], first: u64, iters: u64) {
    std::thread::scope(|scope| {
        for w in 0..WRITERS {
            scope.spawn(move || {
                let mut i = w;
                while i < iters {
                    accept(store, user_ids, first + i).unwrap();
                    i += WRITERS;
                }
            });
        }
    });
}

/// Time the storage writer thread (`teosd-db-writer`) of this process has run on a CPU so far
/// (`/proc/self/task/<tid>/schedstat`, nanoseconds).
fn writer_cpu() -> Duration {
    let tasks = std::fs::read_dir("/proc/self/task").unwrap();
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == "teosd-db-writer" {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap();
            let ns: u64 = stat.split_whitespace().next().unwrap().parse().unwrap();
            return Duration::from_nanos(ns);
        }
    }
    panic!("no teosd-db-writer thread");
}

fn writes(c: &mut Criterion) {
    let rows = rows_from_env();
    let (_dir, store) = filled_store(USERS, rows);
    let user_ids: Vec<UserId> = (0..USERS).map(user).collect();
    let next = AtomicU64::new(rows);
    let mut group = c.benchmark_group(format!("accept appointment, {rows} stored"));
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    // Wall time per op: throughput, including waits for fsync (noisy on a shared disk).
    group.bench_function(format!("{WRITERS} concurrent writers, wall time"), |b| {
        b.iter_custom(|iters| {
            let first = next.fetch_add(iters, Ordering::Relaxed);
            let started = Instant::now();
            run_batch(&store, &user_ids, first, iters);
            started.elapsed()
        })
    });
    // CPU time of the writer thread per op: the cost this bench exists to drive down, steady
    // whatever the disk and the neighbours do.
    group.bench_function(
        format!("{WRITERS} concurrent writers, writer CPU time"),
        |b| {
            b.iter_custom(|iters| {
                let first = next.fetch_add(iters, Ordering::Relaxed);
                let before = writer_cpu();
                run_batch(&store, &user_ids, first, iters);
                writer_cpu().saturating_sub(before)
            })
        },
    );
    group.finish();
    let commits = store.commit_count();
    eprintln!("group commits so far: {commits}");
}

criterion_group!(benches, writes);
criterion_main!(benches);
