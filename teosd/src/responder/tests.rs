//! The Responder as a table of transitions: a tracker state and bitcoind's answers in, a decision out
//! (bitcoind scripted with `bitcoind::fake`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use teos_common::appointment::Locator;

use super::*;
use crate::bitcoind::fake::FakeBitcoind;
use crate::bitcoind::{RpcError, codes};
use crate::shutdown::Shutdown;
use crate::test_fixtures::tx;

fn dispute() -> Transaction {
    tx(1)
}

fn penalty() -> Transaction {
    tx(2)
}

fn uuid() -> AppointmentId {
    let locator = Locator::new(&dispute().compute_txid());
    let sk = secp256k1::SecretKey::from_slice(&[3; 32]).unwrap();
    AppointmentId::new(&locator, &UserId(sk.public_key(secp256k1::SECP256K1)))
}

fn responder(bitcoind: &Arc<FakeBitcoind>) -> Responder<FakeBitcoind> {
    Responder::new(Carrier::new(
        bitcoind.clone(),
        Arc::new(AtomicBool::new(true)),
        Arc::new(Shutdown::new()),
    ))
}

fn breach(dispute_height: u32) -> Breach {
    let sk = secp256k1::SecretKey::from_slice(&[3; 32]).unwrap();
    Breach {
        uuid: uuid(),
        user_id: UserId(sk.public_key(secp256k1::SECP256K1)),
        dispute_tx: dispute(),
        penalty_tx: penalty(),
        dispute_height,
        to_self_delay: 20,
    }
}

fn tracker(
    status: TrackerStatus,
    status_height: u32,
    dispute_height: Option<u32>,
) -> TrackerRecord {
    TrackerRecord {
        uuid: uuid(),
        dispute_txid: dispute().compute_txid(),
        dispute_tx: dispute(),
        penalty_txid: penalty().compute_txid(),
        penalty_tx: penalty(),
        dispute_height,
        status,
        status_height,
        to_self_delay: 20,
    }
}

fn rpc_error(code: i32, message: &str) -> Result<Txid, RpcError> {
    Err(RpcError::Rpc {
        code,
        message: message.into(),
    })
}

fn in_chain() -> Result<Txid, RpcError> {
    rpc_error(
        codes::VERIFY_ALREADY_IN_CHAIN,
        "Transaction outputs already in utxo set",
    )
}

fn missing_inputs() -> Result<Txid, RpcError> {
    rpc_error(codes::VERIFY_ERROR, "bad-txns-inputs-missingorspent")
}

fn fee_too_low() -> Result<Txid, RpcError> {
    rpc_error(
        codes::VERIFY_REJECTED,
        "mempool min fee not met, 110 < 2000",
    )
}

fn nowhere(_: &Txid) -> Option<u32> {
    None
}

/// Runs `handle_breach` at height 110 for a dispute mined at 110 with the penalty's answers scripted.
fn breach_outcome(penalty_answers: Vec<Result<Txid, RpcError>>) -> TrackerChange {
    breach_outcome_with(penalty_answers, Vec::new(), &nowhere)
}

fn breach_outcome_with(
    penalty_answers: Vec<Result<Txid, RpcError>>,
    dispute_answers: Vec<Result<Txid, RpcError>>,
    confirmed_at: ConfirmedAt<'_>,
) -> TrackerChange {
    let bitcoind = Arc::new(FakeBitcoind::new(0));
    bitcoind.script_send(penalty().compute_txid(), penalty_answers);
    bitcoind.script_send(dispute().compute_txid(), dispute_answers);
    responder(&bitcoind)
        .handle_breach(breach(110), 110, None, confirmed_at)
        .unwrap()
}

fn status_of(change: &TrackerChange) -> (TrackerStatus, u32) {
    match change {
        TrackerChange::Track(t) => (t.status, t.status_height),
        other => panic!("expected a new tracker, got {other:?}"),
    }
}

#[test]
fn an_accepted_penalty_is_tracked_in_the_mempool() {
    let change = breach_outcome(vec![Ok(penalty().compute_txid())]);
    assert_eq!(status_of(&change), (TrackerStatus::InMempool, 110));
}

#[test]
fn a_penalty_already_in_the_block_is_confirmed_without_sending() {
    let bitcoind = Arc::new(FakeBitcoind::new(0));
    let txids = [penalty().compute_txid()].into_iter().collect();
    let change = responder(&bitcoind)
        .handle_breach(breach(110), 110, Some(&txids), &nowhere)
        .unwrap();
    assert_eq!(status_of(&change), (TrackerStatus::Confirmed, 110));
    assert!(bitcoind.sent().is_empty());
}

#[test]
fn a_penalty_already_in_chain_is_confirmed_where_it_is() {
    let found = |txid: &Txid| (*txid == penalty().compute_txid()).then_some(107);
    let change = breach_outcome_with(vec![in_chain()], Vec::new(), &found);
    assert_eq!(status_of(&change), (TrackerStatus::Confirmed, 107));
    // Not found among the known blocks: confirmed at the tip at the latest.
    let change = breach_outcome(vec![in_chain()]);
    assert_eq!(status_of(&change), (TrackerStatus::Confirmed, 110));
}

#[test]
fn a_penalty_refused_for_its_fee_is_kept_and_retried() {
    let change = breach_outcome(vec![fee_too_low()]);
    assert_eq!(status_of(&change), (TrackerStatus::Rejected, 110));
}

#[test]
fn an_invalid_penalty_is_dropped_at_once() {
    let change = breach_outcome(vec![rpc_error(
        codes::VERIFY_REJECTED,
        "mandatory-script-verify-flag-failed (Script failed an OP_EQUALVERIFY operation)",
    )]);
    assert!(matches!(change, TrackerChange::Drop { .. }), "{change:?}");
}

#[test]
fn a_huge_to_self_delay_does_not_keep_a_refused_penalty_retried_for_ever() {
    let mut t = tracker(TrackerStatus::Rejected, 101, Some(100));
    t.to_self_delay = u32::MAX;
    assert_eq!(deadline(&t), Some(100 + MAX_RETRY_BLOCKS));
}

#[test]
fn missing_inputs_with_the_dispute_gone_make_the_appointment_watched_again() {
    // The penalty's inputs are missing; re-sending the confirmed dispute is refused too.
    let change = breach_outcome_with(vec![missing_inputs()], vec![missing_inputs()], &nowhere);
    assert_eq!(change, TrackerChange::Rewatch { uuid: uuid() });
    // The dispute is there (-27) but the penalty's inputs are still missing: spent elsewhere.
    let change = breach_outcome_with(
        vec![missing_inputs(), missing_inputs()],
        vec![in_chain()],
        &nowhere,
    );
    assert_eq!(change, TrackerChange::Rewatch { uuid: uuid() });
    // Re-sending the dispute fixed it.
    let change = breach_outcome_with(
        vec![missing_inputs(), Ok(penalty().compute_txid())],
        vec![Ok(dispute().compute_txid())],
        &nowhere,
    );
    assert_eq!(status_of(&change), (TrackerStatus::InMempool, 110));
}

#[test]
fn an_already_known_penalty_counts_as_in_the_mempool() {
    let change = breach_outcome(vec![rpc_error(codes::VERIFY_REJECTED, "txn-already-known")]);
    assert_eq!(status_of(&change), (TrackerStatus::InMempool, 110));
}

/// Runs `block_connected` at `height` (a block without the tracker's transactions) for `t`.
fn follow(
    t: TrackerRecord,
    height: u32,
    penalty_answers: Vec<Result<Txid, RpcError>>,
    dispute_answers: Vec<Result<Txid, RpcError>>,
) -> (Vec<TrackerChange>, Vec<Txid>) {
    let bitcoind = Arc::new(FakeBitcoind::new(0));
    bitcoind.script_send(penalty().compute_txid(), penalty_answers);
    bitcoind.script_send(dispute().compute_txid(), dispute_answers);
    let changes = responder(&bitcoind)
        .follow_trackers(height, &HashSet::new(), vec![t], &nowhere)
        .unwrap();
    (changes, bitcoind.sent())
}

fn status(status: TrackerStatus, height: u32) -> TrackerChange {
    TrackerChange::Status {
        uuid: uuid(),
        status,
        height,
    }
}

#[test]
fn transitions_of_followed_trackers() {
    let p = penalty().compute_txid();
    let d = dispute().compute_txid();
    #[allow(clippy::type_complexity)]
    // a table: (case, tracker, height, penalty answers, dispute answers, changes, sent)
    let table: Vec<(
        &str,
        TrackerRecord,
        u32,
        Vec<Result<Txid, RpcError>>,
        Vec<Result<Txid, RpcError>>,
        Vec<TrackerChange>,
        Vec<Txid>,
    )> = vec![
        (
            "in mempool for 5 blocks: nothing",
            tracker(TrackerStatus::InMempool, 100, Some(100)),
            105,
            vec![],
            vec![],
            vec![],
            vec![],
        ),
        (
            "in mempool for 6 blocks: rebroadcast",
            tracker(TrackerStatus::InMempool, 100, Some(100)),
            106,
            vec![],
            vec![],
            vec![status(TrackerStatus::InMempool, 106)],
            vec![p],
        ),
        (
            "rebroadcast finds it confirmed",
            tracker(TrackerStatus::InMempool, 100, Some(100)),
            106,
            vec![in_chain()],
            vec![],
            vec![status(TrackerStatus::Confirmed, 106)],
            vec![p],
        ),
        (
            "confirmed 99 blocks: nothing",
            tracker(TrackerStatus::Confirmed, 100, Some(100)),
            198,
            vec![],
            vec![],
            vec![],
            vec![],
        ),
        (
            "confirmed 100 blocks: complete",
            tracker(TrackerStatus::Confirmed, 100, Some(100)),
            199,
            vec![],
            vec![],
            vec![TrackerChange::Complete { uuid: uuid() }],
            vec![],
        ),
        (
            "reorged with the dispute unconfirmed: dispute then penalty",
            tracker(TrackerStatus::Reorged, 105, None),
            106,
            vec![],
            vec![],
            vec![status(TrackerStatus::InMempool, 106)],
            vec![d, p],
        ),
        (
            "reorged and the dispute refused: watched again",
            tracker(TrackerStatus::Reorged, 105, None),
            106,
            vec![],
            vec![missing_inputs()],
            vec![TrackerChange::Rewatch { uuid: uuid() }],
            vec![d],
        ),
        (
            "rejected, fee still too low: retried, unchanged",
            tracker(TrackerStatus::Rejected, 101, Some(100)),
            110,
            vec![fee_too_low()],
            vec![],
            vec![],
            vec![p],
        ),
        (
            "rejected, fee now fine: in mempool",
            tracker(TrackerStatus::Rejected, 101, Some(100)),
            110,
            vec![],
            vec![],
            vec![status(TrackerStatus::InMempool, 110)],
            vec![p],
        ),
        (
            "rejected until dispute_height + to_self_delay: dropped, not sent",
            tracker(TrackerStatus::Rejected, 101, Some(100)),
            120,
            vec![],
            vec![],
            vec![TrackerChange::Drop {
                uuid: uuid(),
                reason: "penalty refused by bitcoind until block 120, when the dispute's \
                         to_self_delay ran out"
                    .into(),
            }],
            vec![],
        ),
        (
            "rejected, then found invalid: dropped",
            tracker(TrackerStatus::Rejected, 101, Some(100)),
            110,
            vec![rpc_error(codes::VERIFY_REJECTED, "mandatory-script-verify-flag-failed (x)")],
            vec![],
            vec![TrackerChange::Drop {
                uuid: uuid(),
                reason: "penalty rejected by bitcoind: Rejected { code: -26, message: \"mandatory-script-verify-flag-failed (x)\" }".into(),
            }],
            vec![p],
        ),
        (
            "rebroadcast refused for its fee: rejected",
            tracker(TrackerStatus::InMempool, 100, Some(100)),
            106,
            vec![fee_too_low()],
            vec![],
            vec![status(TrackerStatus::Rejected, 106)],
            vec![p],
        ),
    ];
    for (case, t, height, penalty_answers, dispute_answers, changes, sent) in table {
        let (got, got_sent) = follow(t, height, penalty_answers, dispute_answers);
        assert_eq!(got, changes, "{case}: changes");
        assert_eq!(got_sent, sent, "{case}: sent");
    }
}

#[test]
fn a_tracker_whose_penalty_is_in_the_block_is_confirmed_there() {
    let bitcoind = Arc::new(FakeBitcoind::new(0));
    let txids: HashSet<Txid> = [penalty().compute_txid()].into_iter().collect();
    let changes = responder(&bitcoind)
        .follow_trackers(
            107,
            &txids,
            vec![tracker(TrackerStatus::Rejected, 101, Some(100))],
            &nowhere,
        )
        .unwrap();
    assert_eq!(changes, vec![status(TrackerStatus::Confirmed, 107)]);
    assert!(bitcoind.sent().is_empty());
}

#[test]
fn a_disconnected_block_reorgs_the_trackers_whose_dispute_or_penalty_it_held() {
    let uuid = uuid();
    // Penalty confirmed in the block: sent again later.
    let changes =
        trackers_disconnected(105, vec![tracker(TrackerStatus::Confirmed, 105, Some(100))]);
    assert_eq!(changes, vec![status(TrackerStatus::Reorged, 105)]);
    // Dispute (and penalty) confirmed in the block: the dispute height is forgotten too.
    let changes =
        trackers_disconnected(105, vec![tracker(TrackerStatus::Confirmed, 105, Some(105))]);
    assert_eq!(
        changes,
        vec![
            TrackerChange::DisputeHeight { uuid, height: None },
            status(TrackerStatus::Reorged, 105)
        ]
    );
    // Only the dispute: an unconfirmed penalty is re-sent with it.
    let changes =
        trackers_disconnected(100, vec![tracker(TrackerStatus::InMempool, 101, Some(100))]);
    assert_eq!(
        changes,
        vec![
            TrackerChange::DisputeHeight { uuid, height: None },
            status(TrackerStatus::Reorged, 100)
        ]
    );
}

#[test]
fn a_dispute_refused_alone_for_its_fee_is_sent_with_its_penalty_as_a_package() {
    // After a reorg the dispute is unconfirmed; a zero-fee version 3 one is refused alone
    // (mempool.json: -26 "min relay fee not met, 0 < 110") and accepted with its child.
    let bitcoind = Arc::new(FakeBitcoind::new(0));
    bitcoind.script_send(
        dispute().compute_txid(),
        vec![rpc_error(
            codes::VERIFY_REJECTED,
            "min relay fee not met, 0 < 110",
        )],
    );
    let reorged = tracker(TrackerStatus::Reorged, 111, None);
    let changes = responder(&bitcoind)
        .follow_trackers(112, &HashSet::new(), vec![reorged.clone()], &nowhere)
        .unwrap();
    assert_eq!(
        changes,
        vec![TrackerChange::Status {
            uuid: uuid(),
            status: TrackerStatus::InMempool,
            height: 112
        }]
    );
    assert_eq!(
        bitcoind.packages(),
        vec![vec![dispute().compute_txid(), penalty().compute_txid()]]
    );
    assert_eq!(
        bitcoind.sent(),
        vec![dispute().compute_txid()],
        "the penalty went in the package"
    );

    // The package refused too: the dispute cannot be on its way; the appointment is watched again.
    let bitcoind = Arc::new(FakeBitcoind::new(0));
    bitcoind.script_send(
        dispute().compute_txid(),
        vec![rpc_error(
            codes::VERIFY_REJECTED,
            "min relay fee not met, 0 < 110",
        )],
    );
    bitcoind.script_package(vec![Ok(crate::bitcoind::PackageAnswer {
        message: "transaction failed".into(),
        errors: vec![(penalty().compute_txid(), "min relay fee not met".into())],
    })]);
    let changes = responder(&bitcoind)
        .follow_trackers(112, &HashSet::new(), vec![reorged], &nowhere)
        .unwrap();
    assert_eq!(changes, vec![TrackerChange::Rewatch { uuid: uuid() }]);
}
