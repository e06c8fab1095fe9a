//! Model-checked chain simulation: the real `teosd` binary and an in-process bitcoind-sim driven
//! through random sequences of events (blocks with and without disputes and penalties, reorgs of any
//! depth, invalidated branches, bitcoind restarts and faults, teosd SIGTERM/SIGKILL/SIGHUP, late
//! appointments, updates, undecryptable blobs, renewals, expiries, slots running out). After every
//! event the tower must be at bitcoind's best block and every answer of its API must match the
//! reference model (`model_support/model.rs`), and every tracked breach whose dispute is on the chain
//! must have its penalty in bitcoind's mempool or chain.
//!
//! Generation and shrinking are `proptest-state-machine`'s. Environment (not `TEOS_*`: the tower
//! inherits the environment and warns about unknown `TEOS_*` variables):
//! - `MODEL_CHAIN_SEED` (u64, default [`CI_SEED`]), `MODEL_CHAIN_CASES` (default [`CI_CASES`]),
//!   `MODEL_CHAIN_STEPS` (most events per sequence, default [`CI_STEPS`]);
//! - `MODEL_CHAIN_ALL=1` also generates the events of defects not fixed yet ([`UNFIXED`]), or
//!   `MODEL_CHAIN_ALL=sighup,below_start` some of them;
//! - `MODEL_CHAIN_SHRINK` (most shrink steps, default 64).
//!
//! Failures found are persisted in `tests/model_chain.proptest-regressions` (replayed first) and
//! each distinct one is kept below as a named test with its shrunk sequence. RELIABILITY.md
//! ("Model-checked chain simulation") has the long-run command and its figures.

mod common;
mod model_support;

use std::sync::atomic::Ordering;

use model_support::events::{self, Enabled, Event, Stop};
use model_support::model::Blob;
use model_support::world::{FIGURES, World};
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};

const CI_SEED: u64 = 0x5eed_0c4a_2026;
const CI_CASES: u32 = 14;
const CI_STEPS: usize = 30;

/// Defects (../shared/research/review-correctness-3faf63f.md) that today's main still has: the random
/// runs leave out the events that trigger them unless `MODEL_CHAIN_ALL` is set, so CI stays green.
/// Set a flag to false once its fix is on main (its named test below is then un-ignored too).
pub struct Unfixed {
    /// #1: SIGHUP stops the tower.
    pub sighup: bool,
    /// #2: a reorg below the block the tower bootstrapped at is fatal.
    pub below_start: bool,
    /// #3: a late appointment whose penalty is already confirmed (-27) never completes.
    pub late_after_penalty: bool,
}

pub const UNFIXED: Unfixed = Unfixed {
    sighup: false,
    below_start: false,
    late_after_penalty: false,
};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The events the generator may produce (see [`UNFIXED`]): `MODEL_CHAIN_ALL=1` enables all, or a
/// comma-separated list (`sighup`, `below_start`, `late_after_penalty`) enables those.
pub fn enabled() -> Enabled {
    let all = std::env::var("MODEL_CHAIN_ALL").unwrap_or_default();
    let on = |name: &str| all == "1" || all.split(',').any(|n| n.trim() == name);
    Enabled {
        sighup: on("sighup") || !UNFIXED.sighup,
        below_start: on("below_start") || !UNFIXED.below_start,
        late_after_penalty: on("late_after_penalty") || !UNFIXED.late_after_penalty,
    }
}

struct ChainTest;

impl StateMachineTest for ChainTest {
    type SystemUnderTest = World;
    type Reference = events::Chain;

    fn init_test(_: &events::Gen) -> World {
        World::start(enabled().below_start)
    }

    fn apply(mut world: World, _: &events::Gen, event: Event) -> World {
        world.play(&event);
        world
    }

    fn teardown(mut world: World, _: events::Gen) {
        world.finish();
    }
}

#[test]
fn the_tower_matches_the_model_on_random_chains() {
    let seed = env("MODEL_CHAIN_SEED", CI_SEED);
    let steps = env("MODEL_CHAIN_STEPS", CI_STEPS).max(1);
    let config = Config {
        cases: env("MODEL_CHAIN_CASES", CI_CASES),
        rng_seed: RngSeed::Fixed(seed),
        max_shrink_iters: env("MODEL_CHAIN_SHRINK", 64),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/model_chain.proptest-regressions",
        ))),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config.clone());
    let strategy = events::Chain::sequential_strategy(1..=steps);
    let result = runner.run(&strategy, |(initial, transitions, seen)| {
        ChainTest::test_sequential(config.clone(), initial, transitions, seen);
        Ok(())
    });
    let f = &FIGURES;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    eprintln!(
        "model_chain seed={seed:#x} sequences={} events={} blocks={} tower_restarts={} \
         bitcoind_restarts={} reorgs={} late_breaches={} acknowledged={} completions={} enabled={:?}",
        get(&f.sequences),
        get(&f.events),
        get(&f.blocks),
        get(&f.tower_restarts),
        get(&f.bitcoind_restarts),
        get(&f.reorgs),
        get(&f.late),
        get(&f.acknowledged),
        get(&f.completions),
        enabled(),
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Plays a fixed sequence (a shrunk failure) on a fresh world, ending it as the random runs do.
fn replay(events: &[Event]) {
    let mut world = World::start(true);
    for event in events {
        world.play(event);
    }
    world.finish();
}

#[test]
fn a_fixed_sequence_of_every_kind_of_event_matches_the_model() {
    use Event::*;
    replay(&[
        Register { user: 0 },
        Register { user: 1 },
        NewBreach,
        Appoint {
            user: 0,
            breach: 0,
            blob: Blob::Good,
        },
        Appoint {
            user: 1,
            breach: 0,
            blob: Blob::Garbage,
        },
        Dispute { breach: 0 },
        Mine { blocks: 1 },
        LateBreach {
            user: 0,
            blocks_after: 2,
            penalty_first: false,
            blob: Blob::Good,
        },
        Reorg {
            depth: 2,
            extra: 1,
            empty: true,
        },
        RestartBitcoind {
            keep_mempool: false,
        },
        Event::Outage(events::Outage::Warmup),
        RestartTower(Stop::KillMidBlock(2)),
        MineMany { blocks: 105 },
        Register { user: 0 },
    ]);
}

#[test]
fn a_fixed_sequence_of_bitcoind_going_behind_and_fee_spikes_matches_the_model() {
    use Event::*;
    use events::Behind;
    replay(&[
        NewBreach,
        Appoint {
            user: 0,
            breach: 0,
            blob: Blob::Good,
        },
        Mine { blocks: 3 },
        BitcoindBehind {
            blocks: 3,
            then: Behind::Reconnect,
        },
        NewBreach,
        Appoint {
            user: 1,
            breach: 1,
            blob: Blob::Good,
        },
        FeeSpike {
            blocks: 3,
            dispute: Some(1),
        },
        Dispute { breach: 0 },
        Mine { blocks: 2 },
        BitcoindBehind {
            blocks: 2,
            then: Behind::Overtake,
        },
        BitcoindBehind {
            blocks: 4,
            then: Behind::TowerRestart,
        },
        Event::Outage(events::Outage::StallSend),
        Event::Outage(events::Outage::FailGetblock),
    ]);
}

// Failures found by the random runs, each as its shrunk sequence (plus the closing blocks every
// sequence ends with).

/// Failed on 3faf63f and on main up to 78a9f20 (review #1: teosd exited 0 on SIGHUP).
#[test]
fn sighup_leaves_the_tower_running() {
    replay(&[Event::Sighup]);
}

/// Failed on 3faf63f (review #2: teosd exited 1, "reorganized deeper than the blocks the tower keeps").
#[test]
fn a_reorg_of_the_first_block_is_followed() {
    replay(&[Event::Reorg {
        depth: 1,
        extra: 1,
        empty: false,
    }]);
}

/// Failed on 3faf63f (review #2: teosd exited 1 at restart).
#[test]
fn a_reorg_of_the_first_block_while_the_tower_is_down_is_followed_at_restart() {
    replay(&[Event::RestartTower(Stop::ReorgWhileDown(1))]);
}

/// Failed on 3faf63f (review #3: the tracker was still there 100 blocks later, slots not refunded).
#[test]
fn a_late_appointment_whose_penalty_is_already_confirmed_completes_and_refunds() {
    replay(&[
        Event::Register { user: 0 },
        Event::LateBreach {
            user: 0,
            blocks_after: 0,
            penalty_first: true,
            blob: Blob::Good,
        },
    ]);
}

/// Failed on 3faf63f (review #6: "the tower left its tip for bitcoind's lower-work chain").
#[test]
fn the_tower_waits_for_bitcoind_restarted_behind() {
    replay(&[
        Event::Mine { blocks: 3 },
        Event::BitcoindBehind {
            blocks: 3,
            then: events::Behind::Reconnect,
        },
    ]);
}

/// Failed on 3faf63f (review R: a penalty refused with -26 dropped the appointment).
#[test]
fn a_penalty_refused_for_its_fee_is_kept_and_sent_once_fees_fall() {
    replay(&[
        Event::NewBreach,
        Event::Appoint {
            user: 0,
            breach: 0,
            blob: Blob::Good,
        },
        Event::FeeSpike {
            blocks: 2,
            dispute: Some(0),
        },
    ]);
}
