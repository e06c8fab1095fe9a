//! The events of a model-checked sequence and how proptest generates them
//! (`proptest-state-machine`'s [`ReferenceStateMachine`]).
//!
//! Events name users and breaches by small indices; the harness takes them modulo what exists, so a
//! shrunk sequence (events deleted) still runs. The generation state only counts breach pairs made,
//! so generation never depends on the tower's answers.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};
use proptest_state_machine::ReferenceStateMachine;

use super::model::Blob;

/// Breach pairs a sequence may make (the test wallet is funded for them).
pub const MAX_BREACHES: u8 = 12;

/// How teosd is stopped and started again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM (graceful; must exit 0).
    Term,
    /// SIGKILL while idle.
    Kill,
    /// Mine this many blocks, then SIGKILL at once (likely mid-block).
    KillMidBlock(u8),
    /// SIGTERM, then a reorg (`depth` blocks, replaced by `depth + 1`) while it is down.
    ReorgWhileDown(u8),
}

/// A bitcoind fault lasting well under a second, with a block mined meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outage {
    /// Connections refused.
    Refuse,
    /// Requests held, then answered.
    Stall,
    /// Every call answers -28 (warm-up).
    Warmup,
    /// Only `sendrawtransaction` is held.
    StallSend,
    /// `getblock` answers -5 "Block not found" twice (a block reorged out under the caller).
    FailGetblock,
}

/// How bitcoind, restarted behind (as after `-reindex`), gets ahead of the tower again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behind {
    /// Its held-back blocks come back (the tower must have waited, not disconnected).
    Reconnect,
    /// A branch with more work than the tower's tip is mined on the lower tip (followed).
    Overtake,
    /// teosd is restarted while bitcoind is behind, then the blocks come back.
    TowerRestart,
}

/// One step of a sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Register (or renew) a user.
    Register { user: u8 },
    /// Build a new commitment/penalty pair (nothing broadcast).
    NewBreach,
    /// Send the appointment of `user` for `breach` (a new one or an update of the same locator).
    Appoint { user: u8, breach: u8, blob: Blob },
    /// Broadcast a breach's dispute (the revoked commitment).
    Dispute { breach: u8 },
    /// Someone else (e.g. another tower) broadcasts the penalty.
    PenaltyByOther { breach: u8 },
    /// Dispute and penalty broadcast together, then mined in one block.
    DisputeWithPenalty { breach: u8 },
    /// A new breach whose dispute (and, with `penalty_first`, its penalty) is mined before the
    /// appointment is sent, `blocks_after` blocks later (a late appointment).
    LateBreach {
        user: u8,
        blocks_after: u8,
        penalty_first: bool,
        blob: Blob,
    },
    /// Mine 1–3 blocks taking the mempool.
    Mine { blocks: u8 },
    /// Mine a block with no transaction.
    MineEmpty,
    /// Mine many blocks (expiries, 100 confirmations).
    MineMany { blocks: u8 },
    /// Invalidate the block `depth` below the tip and mine a longer branch (`depth + extra`),
    /// empty (transactions go back to the mempool) or taking the mempool.
    Reorg { depth: u8, extra: u8, empty: bool },
    /// Invalidate the block `depth` below the tip, no replacement: a shorter chain the tower must
    /// follow, since its own branch is invalid.
    Invalidate { depth: u8 },
    /// Reconsider the last invalidated block, then mine one block.
    Reconsider,
    /// Restart bitcoind, keeping its mempool or not.
    RestartBitcoind { keep_mempool: bool },
    /// A short bitcoind fault.
    Outage(Outage),
    /// Stop and start teosd.
    RestartTower(Stop),
    /// bitcoind restarts `blocks` behind its tip (lower work, empty mempool): the tower must wait.
    BitcoindBehind { blocks: u8, then: Behind },
    /// bitcoind's mempool min fee rises above the wallet's 2 sat/vB for `blocks` blocks (penalties
    /// refused with -26, kept and retried), optionally with a breach's dispute mined in the first
    /// of them; then it falls and 6 more blocks are mined.
    FeeSpike { blocks: u8, dispute: Option<u8> },
    /// SIGHUP (must only reopen the log), then a block the tower must process.
    Sighup,
}

/// Generation state.
#[derive(Clone, Debug, Default)]
pub struct Gen {
    pub breaches: u8,
}

/// Which events the generator may produce (see `model_chain.rs`, `UNFIXED`).
#[derive(Clone, Copy, Debug)]
pub struct Enabled {
    pub sighup: bool,
    pub below_start: bool,
    pub late_after_penalty: bool,
}

/// Generation rules: weights favour cheap chain and API events; teosd restarts are the expensive
/// ones (about a second each in a debug build).
pub struct Chain;

fn enabled() -> Enabled {
    super::enabled()
}

fn blob() -> impl Strategy<Value = Blob> {
    prop_oneof![4 => Just(Blob::Good), 1 => Just(Blob::Garbage)]
}

fn index() -> impl Strategy<Value = u8> {
    0u8..16
}

impl ReferenceStateMachine for Chain {
    type State = Gen;
    type Transition = Event;

    fn init_state() -> BoxedStrategy<Gen> {
        Just(Gen::default()).boxed()
    }

    fn transitions(state: &Gen) -> BoxedStrategy<Event> {
        let on = enabled();
        let mut arms: Vec<(u32, BoxedStrategy<Event>)> = vec![
            (
                3,
                (0u8..3).prop_map(|user| Event::Register { user }).boxed(),
            ),
            (
                10,
                (0u8..3, index(), blob())
                    .prop_map(|(user, breach, blob)| Event::Appoint { user, breach, blob })
                    .boxed(),
            ),
            (
                6,
                index().prop_map(|breach| Event::Dispute { breach }).boxed(),
            ),
            (
                2,
                index()
                    .prop_map(|breach| Event::PenaltyByOther { breach })
                    .boxed(),
            ),
            (
                2,
                index()
                    .prop_map(|breach| Event::DisputeWithPenalty { breach })
                    .boxed(),
            ),
            (
                8,
                (1u8..=3).prop_map(|blocks| Event::Mine { blocks }).boxed(),
            ),
            (2, Just(Event::MineEmpty).boxed()),
            (
                3,
                (10u8..=110)
                    .prop_map(|blocks| Event::MineMany { blocks })
                    .boxed(),
            ),
            (
                4,
                (1u8..=8, 1u8..=2, any::<bool>())
                    .prop_map(|(depth, extra, empty)| Event::Reorg {
                        depth,
                        extra,
                        empty,
                    })
                    .boxed(),
            ),
            (
                2,
                (1u8..=3)
                    .prop_map(|depth| Event::Invalidate { depth })
                    .boxed(),
            ),
            (1, Just(Event::Reconsider).boxed()),
            (
                2,
                any::<bool>()
                    .prop_map(|keep_mempool| Event::RestartBitcoind { keep_mempool })
                    .boxed(),
            ),
            (
                1,
                prop_oneof![
                    Just(Outage::Refuse),
                    Just(Outage::Stall),
                    Just(Outage::Warmup),
                    Just(Outage::StallSend),
                    Just(Outage::FailGetblock),
                ]
                .prop_map(Event::Outage)
                .boxed(),
            ),
            (
                2,
                prop_oneof![
                    Just(Stop::Term),
                    Just(Stop::Kill),
                    (1u8..=3).prop_map(Stop::KillMidBlock),
                    (1u8..=6).prop_map(Stop::ReorgWhileDown),
                ]
                .prop_map(Event::RestartTower)
                .boxed(),
            ),
        ];
        arms.push((
            2,
            (
                1u8..=12,
                prop_oneof![
                    Just(Behind::Reconnect),
                    Just(Behind::Overtake),
                    Just(Behind::TowerRestart)
                ],
            )
                .prop_map(|(blocks, then)| Event::BitcoindBehind { blocks, then })
                .boxed(),
        ));
        arms.push((
            1,
            (1u8..=5, proptest::option::of(index()))
                .prop_map(|(blocks, dispute)| Event::FeeSpike { blocks, dispute })
                .boxed(),
        ));
        if on.sighup {
            arms.push((1, Just(Event::Sighup).boxed()));
        }
        if state.breaches < MAX_BREACHES {
            arms.push((5, Just(Event::NewBreach).boxed()));
            let late_after_penalty = on.late_after_penalty;
            arms.push((
                3,
                (0u8..3, 0u8..=7, any::<bool>(), blob())
                    .prop_map(
                        move |(user, blocks_after, penalty_first, blob)| Event::LateBreach {
                            user,
                            blocks_after,
                            penalty_first: penalty_first && late_after_penalty,
                            blob,
                        },
                    )
                    .boxed(),
            ));
        }
        Union::new_weighted(arms).boxed()
    }

    fn apply(mut state: Gen, event: &Event) -> Gen {
        if matches!(event, Event::NewBreach | Event::LateBreach { .. }) {
            state.breaches = state.breaches.saturating_add(1);
        }
        state
    }
}
