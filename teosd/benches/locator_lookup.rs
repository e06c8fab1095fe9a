//! Breach detection's storage query (issue 7): `|tx| tx.appointments_by_locators()` for the locators of
//! one block of N transactions against M stored appointments, on the writer (where the block
//! processor runs it, ordered with incoming appointments) and on a read connection; then what the
//! block processor does since the in-memory index of watched locators: the index picks the locators
//! that may match, and only those are looked up (on the writer).
//!
//! `cargo bench -p teosd --bench locator_lookup`; M is `TEOS_BENCH_ROWS` (default 1,000,000; filling
//! takes about a minute on a 2-core machine).

mod support;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use support::{absent_locator, filled_store, rows_from_env, stored_locator};
use teosd::storage::{Locator, StorageError};
use teosd::watched_locators::WatchedLocators;

/// The locators of a block of `txs` transactions of which `hits` have a stored appointment.
fn block_locators(txs: u64, hits: u64, rows: u64) -> Vec<Locator> {
    let step = (rows / hits.max(1)).max(1);
    (0..txs)
        .map(|i| {
            if i < hits {
                stored_locator((i * step) % rows)
            } else {
                absent_locator(i)
            }
        })
        .collect()
}

fn lookup(c: &mut Criterion) {
    let rows = rows_from_env();
    let (_dir, store) = filled_store(10_000, rows);
    let mut group = c.benchmark_group(format!("find_by_locators vs {rows} appointments"));
    group.sample_size(30);
    for (txs, hits) in [(4_000u64, 10u64), (4_000, 4_000), (500, 1)] {
        let locators = std::sync::Arc::new(block_locators(txs, hits, rows));
        group.throughput(Throughput::Elements(txs));
        let id = format!("{txs} txs, {hits} hits");
        let found = {
            let locators = locators.clone();
            store
                .read_blocking(move |conn| conn.appointments_by_locators(&locators))
                .unwrap()
        };
        assert_eq!(
            found.len() as u64,
            hits.min(rows),
            "the block's hits are all found"
        );
        group.bench_function(BenchmarkId::new("writer", &id), |b| {
            b.iter(|| {
                let locators = locators.clone();
                store
                    .write_blocking(move |conn| -> Result<usize, StorageError> {
                        Ok(conn.appointments_by_locators(black_box(&locators))?.len())
                    })
                    .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("reader", &id), |b| {
            b.iter(|| {
                let locators = locators.clone();
                store
                    .read_blocking(move |conn| -> Result<usize, StorageError> {
                        Ok(conn.appointments_by_locators(black_box(&locators))?.len())
                    })
                    .unwrap()
            })
        });
    }
    group.finish();

    let index = std::sync::Arc::new(store.write_blocking(WatchedLocators::load).unwrap());
    let mut group = c.benchmark_group(format!("watched-locators index vs {rows} appointments"));
    group.sample_size(30);
    for (txs, hits) in [(4_000u64, 10u64), (4_000, 4_000), (500, 1)] {
        let locators = std::sync::Arc::new(block_locators(txs, hits, rows));
        group.throughput(Throughput::Elements(txs));
        let id = format!("{txs} txs, {hits} hits");
        group.bench_function(BenchmarkId::new("index + writer lookup", &id), |b| {
            b.iter(|| {
                let locators = locators.clone();
                let index = index.clone();
                store
                    .write_blocking(move |conn| -> Result<usize, StorageError> {
                        let candidates: Vec<Locator> = black_box(&locators)
                            .iter()
                            .filter(|l| index.may_contain(l))
                            .copied()
                            .collect();
                        let found = conn.appointments_by_locators(&candidates)?.len();
                        assert_eq!(found as u64, hits.min(rows), "every hit found");
                        Ok(found)
                    })
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
