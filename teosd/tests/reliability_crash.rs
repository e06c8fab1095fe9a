//! Crash safety (issue 6, item 1): SIGKILL at random points under load, restart, check the promise.
//!
//! Several clients send add_appointment while blocks are mined and breaches happen; teosd is killed
//! with SIGKILL at a random instant — under plain load, right after a block with a dispute was mined
//! (while the tower is processing it), or right after a burst of blocks — then restarted on the same
//! data directory, sometimes after breaches and blocks that happened while it was down. After each
//! restart and at the end:
//! - every appointment that got a 200 receipt is stored (get_appointment answers it: still watched,
//!   or responded if its dispute was mined);
//! - every breach whose dispute is on chain has exactly one tracker, and its penalty is in the mempool
//!   or the chain (at the end: confirmed);
//! - the tower's tip is bitcoind's (a new receipt's `start_block` is the chain height; at the end the
//!   database's tip row is the chain tip, hash included).
//!
//! CI runs [`CI_ITERATIONS`]; `RELIABILITY_CRASH_ITERATIONS=N` and `RELIABILITY_CRASH_SEED=S` run longer
//! or other sequences (RELIABILITY.md has the figures).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::{Transaction, Txid};
use common::*;
use teos_common::appointment::{Appointment, Locator};
use teos_common::client::ClientError;
use teos_common::protocol::GetAppointmentResponse;
use teosd::storage::{StorageError, Store};

/// Iterations in CI (each one a SIGKILL and a restart).
const CI_ITERATIONS: u32 = 20;
/// Clients sending appointments concurrently.
const CLIENTS: u8 = 4;

/// A small deterministic generator (xorshift64*), so a failing sequence can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A cheap, distinct appointment that never triggers (its locator matches no transaction).
fn load_appointment(client: u8, n: u32) -> Appointment {
    let mut locator = [0xc7u8; 16];
    locator[0] = client;
    locator[12..].copy_from_slice(&n.to_be_bytes());
    Appointment {
        locator: Locator::from_slice(&locator).unwrap(),
        encrypted_blob: vec![client; 120],
        to_self_delay: 42,
    }
}

/// A breach made during the run: the appointment the victim sent (acknowledged) and both txs.
struct BreachCase {
    client: u8,
    appointment: Appointment,
    commitment: Transaction,
    penalty: Txid,
    /// The commitment was broadcast.
    disputed: bool,
}

/// The load: `CLIENTS` threads adding appointments until `stop`; acknowledged ones are recorded.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(
        url: &str,
        next: &Arc<Mutex<Vec<u32>>>,
        acked: &Arc<Mutex<Vec<(u8, Appointment)>>>,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (1..=CLIENTS)
            .map(|client| {
                let (url, stop, next, acked) =
                    (url.to_owned(), stop.clone(), next.clone(), acked.clone());
                std::thread::spawn(move || {
                    let user = User::new(&url, client);
                    while !stop.load(Ordering::SeqCst) {
                        let n = {
                            let mut next = next.lock().unwrap();
                            next[usize::from(client)] += 1;
                            next[usize::from(client)]
                        };
                        let appointment = load_appointment(client, n);
                        match user.add(&appointment) {
                            Ok(_) => acked.lock().unwrap().push((client, appointment)),
                            // Killed, refused or rate limited: not acknowledged, nothing promised.
                            Err(_) => std::thread::sleep(Duration::from_millis(20)),
                        }
                    }
                })
            })
            .collect();
        Load { stop, threads }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

/// Runs `call` again (a few times) when it fails in transport: the first request after a restart may
/// go out on a pooled keep-alive connection to the killed process, as it would for a real client.
fn retried<T>(mut call: impl FnMut() -> Result<T, ClientError>) -> Result<T, ClientError> {
    for _ in 0..3 {
        match call() {
            Err(ClientError::Transport(_)) => continue,
            other => return other,
        }
    }
    call()
}

/// Penalties this deep are irrevocably resolved: the tower deletes their trackers (PROTOCOL.md).
const IRREVOCABLY_RESOLVED: i64 = 100;

/// Asserts that every acknowledged appointment is answered by get_appointment (or, for a breach
/// whose penalty is irrevocably resolved, completed and deleted).
fn check_stored(
    chain: &Chain,
    users: &[User],
    acked: &[(u8, Appointment)],
    responded: &HashMap<Locator, Txid>,
) {
    for (client, appointment) in acked {
        let user = &users[usize::from(*client) - 1];
        let completed = responded
            .get(&appointment.locator)
            .is_some_and(|p| chain.confirmations(p) >= IRREVOCABLY_RESOLVED);
        if completed {
            continue;
        }
        match retried(|| user.get(&appointment.locator)) {
            Ok(GetAppointmentResponse::BeingWatched(stored)) => assert_eq!(&stored, appointment),
            Ok(GetAppointmentResponse::DisputeResponded(t)) => assert_eq!(
                Some(&t.penalty_txid),
                responded.get(&appointment.locator),
                "responded with an unexpected penalty"
            ),
            other => panic!(
                "acknowledged appointment {} lost: {other:?}",
                appointment.locator
            ),
        }
    }
}

/// Asserts that every disputed breach is answered: its appointment responded, its penalty in the
/// mempool or on chain.
fn check_breaches(chain: &Chain, users: &[User], breaches: &[BreachCase]) {
    for b in breaches.iter().filter(|b| b.disputed) {
        let dispute = b.commitment.compute_txid();
        if chain.confirmations(&dispute) == 0 {
            continue; // still in the mempool: not a breach yet
        }
        if chain.confirmations(&b.penalty) >= IRREVOCABLY_RESOLVED {
            continue; // completed: the tower deleted it, as it should
        }
        wait_until("the penalty broadcast", SOON, || {
            chain.in_mempool(&b.penalty) || chain.confirmations(&b.penalty) > 0
        });
        let user = &users[usize::from(b.client) - 1];
        wait_until("dispute_responded", SOON, || {
            matches!(
                user.get(&b.appointment.locator),
                Ok(GetAppointmentResponse::DisputeResponded(_))
            )
        });
    }
}

#[test]
fn sigkill_at_random_points_loses_no_acknowledged_appointment_and_no_breach() {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let iterations = env("RELIABILITY_CRASH_ITERATIONS").map_or(CI_ITERATIONS, |n| n as u32);
    let mut rng = Rng(env("RELIABILITY_CRASH_SEED").unwrap_or(0x5eed_c4a5).max(1));

    let chain = Chain::start(iterations as usize * 2 + 4);
    let dir = tempfile::tempdir().unwrap();
    let options = TowerOptions {
        // The load comes from one address: it must not be rate limited.
        extra: vec![
            "add_appointment_rate_limit = 0".into(),
            "register_rate_limit = 0".into(),
        ],
    };
    let mut tower = TowerProcess::start(&chain, dir.path(), &options);
    tower.tip();
    let (datadir, port) = (tower.datadir.clone(), tower.api_port);
    let url = tower.url();
    let users: Vec<User> = (1..=CLIENTS).map(|c| User::new(&url, c)).collect();
    for user in &users {
        user.register().unwrap();
    }

    let next = Arc::new(Mutex::new(vec![0u32; usize::from(CLIENTS) + 1]));
    let acked: Arc<Mutex<Vec<(u8, Appointment)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut breaches: Vec<BreachCase> = Vec::new();
    let mut responded: HashMap<Locator, Txid> = HashMap::new();
    let mut kinds = [0u32; 3];
    let mut checked_total = 0usize;
    // Mid-block kills that came before the tower's admin API reported the block as processed.
    let mut before_commit = 0u32;

    for iteration in 0..iterations {
        // Renewals keep the slots ahead of the load in long runs.
        if iteration > 0 && iteration % 10 == 0 {
            for user in &users {
                retried(|| user.register()).unwrap();
            }
        }
        // A breach appointment sent before the kill, acknowledged.
        let client = (iteration % u32::from(CLIENTS)) as u8 + 1;
        let (commitment, penalty) = chain.breach();
        let appointment = appointment_for(&commitment, &penalty);
        // Retried: the client's pool may still hold several keep-alive connections to the killed
        // process, and any of them can be picked for this first request of the iteration.
        retried(|| users[usize::from(client) - 1].add(&appointment)).unwrap();
        responded.insert(appointment.locator, penalty.compute_txid());
        breaches.push(BreachCase {
            client,
            appointment,
            commitment: commitment.clone(),
            penalty: penalty.compute_txid(),
            disputed: false,
        });
        let before = acked.lock().unwrap().len();

        let load = Load::start(&url, &next, &acked);
        wait_until("some load acknowledged", SOON, || {
            acked.lock().unwrap().len() > before + 5
        });
        let kind = rng.below(3) as usize;
        kinds[kind] += 1;
        match kind {
            // Under plain load, after a random delay.
            0 => std::thread::sleep(Duration::from_millis(rng.below(400))),
            // Right after a block holding a dispute: the tower is processing it.
            1 => {
                chain.broadcast(&commitment);
                breaches.last_mut().unwrap().disputed = true;
                let height = chain.height() + 1;
                chain.mine(1);
                std::thread::sleep(Duration::from_millis(rng.below(30)));
                if tower.tip().0 < height {
                    before_commit += 1;
                }
            }
            // Right after a burst of blocks.
            _ => {
                chain.mine(1 + rng.below(4) as u32);
                std::thread::sleep(Duration::from_millis(rng.below(50)));
            }
        }
        tower.kill();
        load.stop();

        // While it is down: sometimes a breach and blocks.
        if rng.below(2) == 0 {
            let b = breaches.last_mut().unwrap();
            if !b.disputed {
                chain.broadcast(&b.commitment);
                b.disputed = true;
            }
            chain.mine(1 + rng.below(2) as u32);
        }

        tower = TowerProcess::spawn(&datadir, port, &[]);
        // Connects the admin client now, so that reading the tip right before the next kill is quick.
        tower.tip();
        // The tip is bitcoind's: a new receipt starts at the chain height.
        let probe = load_appointment(client, 1_000_000 + iteration);
        let receipt = retried(|| users[usize::from(client) - 1].add(&probe)).unwrap();
        assert_eq!(
            receipt.start_block,
            chain.height(),
            "tower tip after restart"
        );
        acked.lock().unwrap().push((client, probe));

        let new: Vec<(u8, Appointment)> = acked.lock().unwrap()[before..].to_vec();
        check_stored(&chain, &users, &new, &responded);
        checked_total += new.len();
        check_breaches(&chain, &users, &breaches);
    }

    // Every breach disputed, mined, answered and confirmed; everything acknowledged still there.
    for b in breaches.iter_mut().filter(|b| !b.disputed) {
        chain.broadcast(&b.commitment);
        b.disputed = true;
    }
    chain.mine(1);
    check_breaches(&chain, &users, &breaches);
    chain.mine(1);
    for b in &breaches {
        wait_until("the penalty confirmed", SOON, || {
            chain.confirmations(&b.penalty) > 0
        });
    }
    let all = acked.lock().unwrap().clone();
    check_stored(&chain, &users, &all, &responded);
    let tip = chain.height();
    tower.wait_for_tip(&chain);
    let status = tower.stop();
    assert!(status.success(), "teosd exited with {status}");

    // One tracker per breach, none lost, none extra; the tip row is bitcoind's tip.
    let store = Store::open(&datadir.join("regtest").join("teos_db.sql3")).unwrap();
    let (count, tip_row) = store
        .read_blocking(|conn| -> Result<_, StorageError> {
            Ok((conn.count_trackers()?, conn.chain_tip()?))
        })
        .unwrap();
    let open = breaches
        .iter()
        .filter(|b| chain.confirmations(&b.penalty) < IRREVOCABLY_RESOLVED)
        .count();
    assert_eq!(
        count, open as u64,
        "one tracker per breach not yet resolved"
    );
    assert_eq!(tip_row, Some((tip, chain.sim().node().best_block_hash())));
    store.close().unwrap();
    eprintln!(
        "crash safety: {iterations} SIGKILLs (under load {}, right after a dispute block {} of which \
         {before_commit} before the block was committed, after a burst {}), {} acknowledged appointments \
         checked after their restart and {} at the end, {} breaches answered",
        kinds[0],
        kinds[1],
        kinds[2],
        checked_total,
        all.len(),
        breaches.len()
    );
}
