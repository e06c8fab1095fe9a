//! Reorg torture (issue 6, item 2): random sequences of blocks, breaches, forks 1–20 blocks deep
//! (branches that carry the mempool, so a dispute is confirmed on one branch and on the other too, or
//! empty branches, so a dispute or a penalty goes back to the mempool), restarts of teosd (SIGTERM or
//! SIGKILL) and of bitcoind-sim (keeping or dropping its mempool) in the middle.
//!
//! After each step the test waits until the tower has processed bitcoind's tip, then at the end mines
//! until things settle (a penalty dropped from the mempool is rebroadcast after 6 blocks). Invariants:
//! - every breach whose dispute is on the active chain ends with its penalty confirmed, and
//!   get_appointment answers it as responded;
//! - nothing stale is tracked: every tracker in the database belongs to a breach whose dispute and
//!   penalty are confirmed on the active chain, and the database's tip is bitcoind's;
//! - the outcome with the restarts equals the outcome of the same sequence without the teosd restarts.
//!
//! proptest with a fixed seed; CI runs [`CI_CASES`] sequences (each starts processes twice);
//! `PROPTEST_CASES` and `PROPTEST_RNG_SEED` run more (RELIABILITY.md has the figures).

mod common;

use std::path::Path;

use bitcoin::{Transaction, Txid};
use bitcoind_sim::wallet::TestWallet;
use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use teos_common::appointment::Appointment;
use teos_common::client::ClientError;
use teos_common::errors::{ApiError, ErrorCode};
use teos_common::protocol::GetAppointmentResponse;
use teosd::storage::{StorageError, Store};

const CI_CASES: u32 = 5;
const CI_SEED: u64 = 0x0e05_2026;
/// Most settle rounds (one block each) before the invariants must hold.
const SETTLE_ROUNDS: u32 = 14;

/// One step of a sequence.
#[derive(Clone, Debug)]
enum Op {
    /// Mine 1–3 blocks taking the mempool.
    Mine(u32),
    /// A new breach: its appointment is sent (and acknowledged), its commitment broadcast.
    Breach,
    /// Invalidate the block `depth` below the tip and mine a branch `depth + extra` blocks long, with
    /// the mempool or `empty` (then the disconnected transactions stay in the mempool).
    Fork { depth: u32, extra: u32, empty: bool },
    /// Restart teosd: SIGKILL if `kill`, else SIGTERM.
    RestartTower { kill: bool },
    /// Restart bitcoind-sim, keeping its mempool or not.
    RestartSim { keep_mempool: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u32..=3).prop_map(Op::Mine),
        3 => Just(Op::Breach),
        3 => (1u32..=20, 1u32..=2, any::<bool>())
            .prop_map(|(depth, extra, empty)| Op::Fork { depth, extra, empty }),
        2 => any::<bool>().prop_map(|kill| Op::RestartTower { kill }),
        1 => any::<bool>().prop_map(|keep_mempool| Op::RestartSim { keep_mempool }),
    ]
}

/// What happened to one breach, comparable between two runs.
#[derive(Clone, Debug, PartialEq, Eq)]
struct BreachOutcome {
    dispute_confirmed: bool,
    penalty_confirmed: bool,
    tracked: bool,
}

struct Breach {
    appointment: Appointment,
    dispute: Txid,
    penalty: Txid,
}

/// A sequence being played against one chain and one tower.
struct Run {
    chain: Chain,
    tower: TowerProcess,
    user: User,
    breaches: Vec<Breach>,
    /// Blocks mined on top of the funding blocks (forks never go below them).
    mined: u32,
    forks: u64,
}

impl Run {
    fn start(dir: &Path) -> Run {
        let chain = Chain::start(12);
        let tower = TowerProcess::start(&chain, dir, &TowerOptions::default());
        let user = User::new(&tower.url(), 3);
        user.register().unwrap();
        Run {
            chain,
            tower,
            user,
            breaches: Vec::new(),
            mined: 0,
            forks: 0,
        }
    }

    /// Waits until the tower has processed bitcoind's tip (hash included), as its admin API says.
    fn wait_for_tip(&self) {
        self.tower.wait_for_tip(&self.chain);
    }

    fn play(&mut self, op: &Op, restarts: bool) {
        match *op {
            Op::Mine(n) => {
                self.chain.mine(n);
                self.mined += n;
            }
            Op::Breach => {
                if self.breaches.len() >= 10 {
                    return; // the wallet was funded for 10
                }
                let (commitment, penalty): (Transaction, Transaction) = self.chain.breach();
                let appointment = appointment_for(&commitment, &penalty);
                retried(|| self.user.add(&appointment)).unwrap();
                self.chain.broadcast(&commitment);
                self.breaches.push(Breach {
                    appointment,
                    dispute: commitment.compute_txid(),
                    penalty: penalty.compute_txid(),
                });
            }
            Op::Fork {
                depth,
                extra,
                empty,
            } => {
                let depth = depth.min(self.mined);
                if depth == 0 {
                    return;
                }
                let node = self.chain.sim().node();
                let target = node.block_hash(node.block_count() - depth + 1).unwrap();
                node.invalidate_block(&target).unwrap();
                // Another miner, a distinct script per branch: a rebuilt block is never identical to
                // an invalidated one.
                self.forks += 1;
                let script = TestWallet::new(1000 + self.forks).script_pubkey();
                for _ in 0..depth + extra {
                    if empty {
                        node.generate_block(&script, Vec::new()).unwrap();
                    } else {
                        node.generate_to_script(1, &script).unwrap();
                    }
                }
                self.mined += extra;
            }
            Op::RestartTower { kill } => {
                if !restarts {
                    return;
                }
                let (datadir, port) = (self.tower.datadir.clone(), self.tower.api_port);
                if kill {
                    self.tower.kill();
                } else {
                    let status = self.tower.stop();
                    assert!(status.success(), "teosd exited with {status}");
                }
                self.tower = TowerProcess::spawn(&datadir, port, &[]);
            }
            Op::RestartSim { keep_mempool } => self.chain.restart(keep_mempool),
        }
        self.wait_for_tip();
    }

    fn confirmed(&self, txid: &Txid) -> bool {
        self.chain.confirmations(txid) > 0
    }

    fn in_mempool(&self, txid: &Txid) -> bool {
        self.chain.in_mempool(txid)
    }

    /// Whether nothing is left to happen: every breach either has its dispute and penalty confirmed,
    /// or its dispute is neither confirmed nor in the mempool (the breach never happened).
    fn settled(&self) -> bool {
        self.breaches.iter().all(|b| {
            if self.confirmed(&b.dispute) {
                self.confirmed(&b.penalty)
            } else {
                !self.in_mempool(&b.dispute)
            }
        })
    }

    /// Mines one block at a time until [`Run::settled`], at least one and at most
    /// [`SETTLE_ROUNDS`] blocks (a dispute still in the mempool is mined by the first one).
    fn settle(&mut self) {
        for _ in 0..SETTLE_ROUNDS {
            self.chain.mine(1);
            self.wait_for_tip();
            if self.settled() {
                return;
            }
        }
    }

    /// Checks the invariants, stops the tower and returns the outcome of each breach.
    fn finish(mut self) -> Vec<BreachOutcome> {
        self.settle();
        for b in &self.breaches {
            if self.confirmed(&b.dispute) {
                assert!(
                    self.confirmed(&b.penalty),
                    "dispute {} on the active chain but its penalty {} is not confirmed",
                    b.dispute,
                    b.penalty
                );
                match retried(|| self.user.get(&b.appointment.locator)) {
                    Ok(GetAppointmentResponse::DisputeResponded(t)) => {
                        assert_eq!(t.penalty_txid, b.penalty)
                    }
                    other => panic!("breach {} not answered: {other:?}", b.dispute),
                }
            }
        }
        let datadir = self.tower.datadir.clone();
        let status = self.tower.stop();
        assert!(status.success(), "teosd exited with {status}");
        let store = Store::open(&datadir.join("regtest").join("teos_db.sql3")).unwrap();
        let (rows, tip) = store
            .read_blocking(|conn| -> Result<_, StorageError> {
                Ok((conn.trackers_after(None, u32::MAX)?, conn.chain_tip()?))
            })
            .unwrap();
        store.close().unwrap();
        let node = self.chain.sim().node();
        assert_eq!(
            tip,
            Some((node.block_count(), node.best_block_hash())),
            "tower tip"
        );
        for t in &rows {
            assert!(
                self.confirmed(&t.dispute_txid) && self.confirmed(&t.penalty_txid),
                "stale tracker: dispute {} penalty {}",
                t.dispute_txid,
                t.penalty_txid
            );
        }
        self.breaches
            .iter()
            .map(|b| BreachOutcome {
                dispute_confirmed: self.confirmed(&b.dispute),
                penalty_confirmed: self.confirmed(&b.penalty),
                tracked: rows.iter().any(|t| t.penalty_txid == b.penalty),
            })
            .collect()
    }
}

/// Retries a call that failed in transport (a pooled connection to a restarted process), got
/// 503 / code 32, or got add_appointment's 401 / code 7 "retry later" (the tower refuses service
/// until it sees bitcoind again after a bitcoind restart; README "What a refusal means for a
/// client"), for up to [`SOON`], as a client would. Subscriptions last the default 4320 blocks, far
/// more than the few dozen blocks a run mines, so a code 7 here is the "retry later" one.
fn retried<T>(mut call: impl FnMut() -> Result<T, ClientError>) -> Result<T, ClientError> {
    let mut refused = None;
    let answered = teos_testkit::wait_for("an answer that is not a refusal for now", SOON, || {
        let result = call();
        let retry = matches!(
            &result,
            Err(ClientError::Transport(_))
                | Err(ClientError::Api { status: 503, .. })
                | Err(ClientError::Api {
                    status: 401,
                    error: ApiError {
                        code: ErrorCode::InvalidSignatureOrSubscriptionError,
                        ..
                    },
                })
        );
        if retry {
            refused = Some(result);
            Ok(None)
        } else {
            Ok(Some(result))
        }
    });
    match (answered, refused) {
        (Ok(result), _) | (Err(_), Some(result)) => result,
        (Err(e), None) => panic!("{e}"),
    }
}

fn run(ops: &[Op], restarts: bool) -> Vec<BreachOutcome> {
    let dir = tempfile::tempdir().unwrap();
    let mut run = Run::start(dir.path());
    for op in ops {
        run.play(op, restarts);
    }
    run.finish()
}

fn config() -> ProptestConfig {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    ProptestConfig {
        cases: env("PROPTEST_CASES").map_or(CI_CASES, |c| c as u32),
        rng_seed: RngSeed::Fixed(env("PROPTEST_RNG_SEED").unwrap_or(CI_SEED)),
        failure_persistence: None,
        // Each case starts processes: keep shrinking short.
        max_shrink_iters: 16,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn breaches_survive_random_reorgs_and_restarts(
        ops in prop::collection::vec(op(), 6..18)
            .prop_map(|mut ops| { ops.insert(0, Op::Breach); ops.insert(1, Op::Mine(1)); ops }),
    ) {
        let with = run(&ops, true);
        let without = run(&ops, false);
        let forks: Vec<u32> = ops.iter().filter_map(|o| match o { Op::Fork { depth, .. } => Some(*depth), _ => None }).collect();
        let restarts = ops.iter().filter(|o| matches!(o, Op::RestartTower { .. })).count();
        let sim_restarts = ops.iter().filter(|o| matches!(o, Op::RestartSim { .. })).count();
        eprintln!(
            "reorg torture: {} steps, {} forks (requested depths {forks:?}), {restarts} teosd restarts, \
             {sim_restarts} bitcoind-sim restarts, {} of {} breaches answered",
            ops.len(),
            forks.len(),
            with.iter().filter(|o| o.penalty_confirmed).count(),
            with.len()
        );
        prop_assert_eq!(with, without, "restarts changed the outcome of {:?}", ops);
    }
}

/// The cases the issue names, in one fixed sequence: a penalty reorged out while its dispute stays,
/// a dispute reorged back to the mempool, both then dropped by a bitcoind restart, a dispute confirmed
/// again on a competing 22-block branch after a 20-deep reorg, and teosd killed and stopped between.
#[test]
fn the_named_reorg_cases_hold_in_a_fixed_sequence() {
    let ops = [
        Op::Breach,
        Op::Mine(1), // the dispute confirms
        Op::Mine(1), // the penalty confirms
        Op::Fork {
            depth: 1,
            extra: 1,
            empty: true,
        }, // the penalty is reorged out, the dispute stays
        Op::RestartTower { kill: true },
        Op::Fork {
            depth: 3,
            extra: 1,
            empty: true,
        }, // the dispute goes back to the mempool
        Op::RestartSim {
            keep_mempool: false,
        }, // and is forgotten by bitcoind: the tower must send it again
        Op::Mine(2),
        Op::Breach,
        Op::Mine(3),
        Op::Mine(3),
        Op::Mine(3),
        Op::Mine(3),
        Op::Mine(3),
        Op::Mine(3),
        Op::Fork {
            depth: 20,
            extra: 2,
            empty: false,
        }, // deep reorg: both breaches confirmed again on the other branch
        Op::RestartTower { kill: false },
        Op::Mine(1),
    ];
    let with = run(&ops, true);
    let without = run(&ops, false);
    assert!(
        with.iter()
            .all(|o| o.dispute_confirmed && o.penalty_confirmed),
        "{with:?}"
    );
    assert_eq!(with, without);
}
