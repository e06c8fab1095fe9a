//! The two read pools of `Store`: async reads (public and admin API) are bounded and wait without
//! taking threads; `read_blocking` (the block processor, metrics, startup) has connections of its own
//! that async reads never take, so a flood of API reads cannot hold the block processor up.
//!
//! Deterministic: the async reads block inside their op until the test opens a gate, so the shared
//! pool is saturated for as long as the test needs; every wait has a deadline.

#[path = "storage_support.rs"]
mod support;

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use support::*;
use teosd::storage::{StorageError, Store};

/// Longest any step may take before the test fails (a deadline, never a measurement).
const DEADLINE: Duration = Duration::from_secs(30);

/// A gate the blocked reads wait on until [`Gate::open`].
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn wait(&self) {
        let (open, changed) = &*self.0;
        let mut open = open.lock().unwrap();
        while !*open {
            open = changed.wait(open).unwrap();
        }
    }

    fn open(&self) {
        let (open, changed) = &*self.0;
        *open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        changed.notify_all();
    }
}

/// Opens the gate when dropped, so that a failing test releases the blocked reads (and its runtime
/// can shut down) instead of hanging. Declare it after the runtime: locals drop in reverse order.
struct OpenOnDrop(Gate);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// Starts `n` async reads that each hold their connection until `gate` opens, and returns once
/// `running` of them are inside their op (the pool's size: the others are waiting for a connection).
fn saturate(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    gate: &Gate,
    n: usize,
    running: usize,
) -> Vec<tokio::task::JoinHandle<Result<u64, StorageError>>> {
    let (entered_tx, entered_rx) = mpsc::channel();
    let reads = (0..n)
        .map(|_| {
            let (store, gate, entered) = (store.clone(), gate.clone(), entered_tx.clone());
            rt.spawn(async move {
                store
                    .read(move |conn| {
                        let _ = entered.send(());
                        gate.wait();
                        conn.count_users()
                    })
                    .await
            })
        })
        .collect();
    for _ in 0..running {
        entered_rx
            .recv_timeout(DEADLINE)
            .expect("the shared pool did not start its reads");
    }
    reads
}

fn runtime(max_blocking_threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(max_blocking_threads)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn block_processor_reads_proceed_while_api_reads_saturate_the_shared_pool() {
    let (_dir, _path, store) = open_temp();
    store
        .write_blocking(|conn| conn.upsert_user(&user(1), &user_record(10, 1000)))
        .unwrap();
    let rt = runtime(64);
    let gate = Gate::default();
    let _release = OpenOnDrop(gate.clone());
    // 4 reads hold the 4 shared connections, 20 more wait for one.
    let reads = saturate(&rt, &store, &gate, 24, 4);

    // The block processor's read (a plain thread, `read_blocking`) is answered regardless.
    let (done_tx, done_rx) = mpsc::channel();
    let reader = store.clone();
    std::thread::spawn(move || {
        let _ = done_tx.send(reader.read_blocking(|conn| conn.user(&user(1))));
    });
    let read = done_rx
        .recv_timeout(DEADLINE)
        .expect("the block processor's read waited behind the API's reads");
    assert_eq!(read.unwrap(), Some(user_record(10, 1000)));

    gate.open();
    for read in reads {
        let count = rt.block_on(async { tokio::time::timeout(DEADLINE, read).await });
        assert_eq!(count.unwrap().unwrap().unwrap(), 1);
    }
}

#[test]
fn async_reads_waiting_for_a_connection_hold_no_blocking_thread() {
    let (_dir, _path, store) = open_temp();
    // Room for the 4 reads that hold a connection plus one more blocking task.
    let rt = runtime(5);
    let gate = Gate::default();
    let _release = OpenOnDrop(gate.clone());
    let reads = saturate(&rt, &store, &gate, 12, 4);

    // Another blocking task still gets a thread: the 8 waiting reads are parked in the runtime, not
    // sitting on blocking threads in front of it.
    let other = rt.spawn_blocking(|| 42);
    let answer = rt.block_on(async { tokio::time::timeout(DEADLINE, other).await });
    assert_eq!(
        answer
            .expect("waiting reads took every blocking thread")
            .unwrap(),
        42
    );

    gate.open();
    for read in reads {
        let count = rt.block_on(async { tokio::time::timeout(DEADLINE, read).await });
        assert_eq!(count.unwrap().unwrap().unwrap(), 0);
    }
}

#[test]
fn reads_waiting_for_a_connection_fail_cleanly_when_the_store_closes() {
    let (_dir, _path, store) = open_temp();
    let rt = runtime(64);
    let gate = Gate::default();
    let _release = OpenOnDrop(gate.clone());
    let reads = saturate(&rt, &store, &gate, 6, 4);
    // Close from another thread (it only waits for the writer); the 2 waiting reads are refused.
    let closer = store.clone();
    let closed = std::thread::spawn(move || closer.close());
    closed.join().unwrap().unwrap();
    gate.open();
    let mut refused = 0;
    for read in reads {
        let result = rt.block_on(async { tokio::time::timeout(DEADLINE, read).await });
        match result.unwrap().unwrap() {
            Ok(count) => assert_eq!(count, 0),
            Err(StorageError::Closed) => refused += 1,
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(refused, 2, "reads still waiting at close are refused");
}
