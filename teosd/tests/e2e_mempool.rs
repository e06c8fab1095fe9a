//! End to end: breaches answered from bitcoind's mempool (issue 13) — the real teosd with
//! `mempool_watch` on, bitcoind-sim, a protocol client. State is read through `get_appointment`, the
//! simulator's mempool and chain, and `/metrics`.

mod common;

use bitcoin::Transaction;
use common::*;
use teos_common::appointment::Appointment;
use teos_common::protocol::GetAppointmentResponse;

/// A running tower with `mempool_watch` as `watch` says (plus `extra` lines) and `/metrics`, a
/// registered user with one appointment for a fresh breach.
struct Breach {
    chain: Chain,
    tower: TowerProcess,
    user: User,
    metrics: u16,
    commitment: Transaction,
    penalty: Transaction,
    appointment: Appointment,
    slots: u32,
    _dir: tempfile::TempDir,
}

impl Breach {
    fn watched(user_seed: u8, watch: bool, extra: &[&str]) -> Breach {
        let chain = Chain::start(3);
        let dir = tempfile::tempdir().unwrap();
        let metrics = free_port();
        let mut options = TowerOptions {
            extra: vec![
                format!("mempool_watch = {watch}"),
                format!("metrics_bind = \"127.0.0.1:{metrics}\""),
            ],
        };
        options.extra.extend(extra.iter().map(|l| l.to_string()));
        let tower = TowerProcess::start(&chain, dir.path(), &options);
        let user = User::new(&tower.url(), user_seed);
        user.register().unwrap();
        let (commitment, penalty) = chain.breach();
        let appointment = appointment_for(&commitment, &penalty);
        let slots = user.add(&appointment).unwrap().available_slots;
        Breach {
            chain,
            tower,
            user,
            metrics,
            commitment,
            penalty,
            appointment,
            slots,
            _dir: dir,
        }
    }

    fn state(&self) -> String {
        appointment_state(&self.user, &self.appointment.locator)
    }

    fn wait_for_state(&self, expected: &str) {
        wait_for_state(&self.user, &self.appointment.locator, expected);
    }

    fn metric(&self, name: &str) -> Option<f64> {
        metric(self.metrics, name)
    }

    /// Waits for the penalty in bitcoind's mempool and `dispute_responded`, with no block mined since
    /// `height`.
    fn wait_answered_from_the_mempool(&self, height: u32) {
        let penalty = self.penalty.compute_txid();
        wait_for_penalty(&self.chain, &penalty, &self.user, &self.appointment.locator);
        assert!(self.chain.in_mempool(&penalty), "in the mempool, not mined");
        assert_eq!(self.chain.height(), height, "no block was needed");
        self.wait_for_state("dispute_responded");
        match self.user.get(&self.appointment.locator).unwrap() {
            GetAppointmentResponse::DisputeResponded(t) => {
                assert_eq!(t.dispute_txid, self.commitment.compute_txid());
                assert_eq!(t.penalty_txid, penalty);
                assert_eq!(t.penalty_rawtx, self.penalty);
            }
            other => panic!("expected dispute_responded, got {other:?}"),
        }
    }
}

#[test]
fn a_dispute_in_the_mempool_is_answered_before_any_block() {
    let b = Breach::watched(1, true, &[]);
    let height = b.chain.height();
    b.chain.broadcast(&b.commitment);
    b.wait_answered_from_the_mempool(height);
    wait_until("the mempool answer counted", SOON, || {
        b.metric("teosd_mempool_breaches_answered_total{via=\"alone\"}") == Some(1.0)
    });
    assert_eq!(b.metric("teosd_mempool_response_seconds_count"), Some(1.0));
    assert_eq!(
        b.user.info().unwrap().available_slots,
        b.slots,
        "charged once, at add_appointment"
    );
}

#[test]
fn dispute_and_penalty_mined_in_one_block_confirm_the_tracker_there_and_complete_at_100_confirmations()
 {
    let b = Breach::watched(2, true, &[]);
    b.chain.broadcast(&b.commitment);
    b.wait_answered_from_the_mempool(b.chain.height());

    b.chain.mine(1);
    let (dispute, penalty) = (b.commitment.compute_txid(), b.penalty.compute_txid());
    assert_eq!(b.chain.confirmations(&dispute), 1);
    assert_eq!(b.chain.confirmations(&penalty), 1, "in the dispute's block");
    b.tower.wait_for_tip(&b.chain);
    wait_until("the tracker confirmed", SOON, || {
        b.metric("teosd_trackers{status=\"confirmed\"}") == Some(1.0)
    });
    assert_eq!(b.state(), "dispute_responded");

    b.chain.mine(98);
    b.tower.wait_for_tip(&b.chain);
    assert_eq!(
        b.state(),
        "dispute_responded",
        "99 confirmations: still tracked"
    );
    b.chain.mine(1);
    b.wait_for_state("not_found");
    assert_eq!(
        b.user.info().unwrap().available_slots,
        b.slots + 1,
        "the slot is refunded once"
    );
    assert_eq!(
        b.metric("teosd_mempool_breaches_answered_total{via=\"alone\"}"),
        Some(1.0)
    );
}

#[test]
fn with_mempool_watch_off_the_dispute_is_answered_when_mined() {
    let b = Breach::watched(3, false, &[]);
    b.chain.broadcast(&b.commitment);
    b.chain.mine(1);
    let penalty = b.penalty.compute_txid();
    assert_eq!(
        b.chain.confirmations(&penalty),
        0,
        "not in the dispute's block"
    );
    wait_for_penalty(&b.chain, &penalty, &b.user, &b.appointment.locator);
    b.wait_for_state("dispute_responded");
    b.chain.mine(1);
    assert_eq!(b.chain.confirmations(&penalty), 1);
    assert_eq!(
        b.metric("teosd_mempool_reconciliations_total{reason=\"startup\"}"),
        None,
        "no mempool watcher ran"
    );
}

#[test]
fn a_dispute_replaced_by_a_conflict_stays_watched_and_is_answered_when_mined_later() {
    let b = Breach::watched(4, true, &[]);
    b.chain.broadcast(&b.commitment);
    b.wait_answered_from_the_mempool(b.chain.height());

    // The cheater replaces the revoked commitment (and with it the penalty) by another spend of the
    // funding output.
    let node = b.chain.sim().node();
    let conflict = b.chain.wallet.build_conflict(&node, &b.commitment).unwrap();
    b.chain.broadcast(&conflict);
    let (dispute, penalty) = (b.commitment.compute_txid(), b.penalty.compute_txid());
    assert!(!b.chain.in_mempool(&dispute) && !b.chain.in_mempool(&penalty));
    b.wait_for_state("being_watched");

    // A miner takes the original commitment after all (it never saw the conflict): the block path
    // answers, and the penalty confirms in the next block.
    b.chain.mine_with(std::slice::from_ref(&b.commitment), 41);
    assert_eq!(b.chain.confirmations(&dispute), 1);
    wait_for_penalty(&b.chain, &penalty, &b.user, &b.appointment.locator);
    b.wait_for_state("dispute_responded");
    b.chain.mine(1);
    assert_eq!(b.chain.confirmations(&penalty), 1);
    assert_eq!(
        b.metric("teosd_mempool_breaches_answered_total{via=\"alone\"}"),
        Some(1.0),
        "answered once from the mempool, then by the block path"
    );
}

#[test]
fn a_zero_fee_version_3_dispute_is_answered_with_its_penalty_as_a_package() {
    let mut b = Breach::watched(5, true, &[]);
    let node = b.chain.sim().node();
    let v3 = b
        .chain
        .wallet
        .build_v3_breach(
            &node,
            teos_testkit::BREACH_VALUE,
            teos_testkit::BREACH_TO_SELF_DELAY,
        )
        .unwrap();
    let appointment = appointment_for(&v3.commitment, &v3.penalty);
    b.user.add(&appointment).unwrap();
    let (dispute, penalty) = (v3.commitment.compute_txid(), v3.penalty.compute_txid());
    // A zero-fee commitment cannot enter a mempool alone (mempool.json: -26 "min relay fee not met").
    assert!(
        node.accept_transaction(v3.commitment.clone(), None, false)
            .is_err()
    );

    // The cheater has a miner take it directly; the tower answers from the block.
    let dispute_block = b.chain.mine_with(std::slice::from_ref(&v3.commitment), 51);
    wait_for_penalty(&b.chain, &penalty, &b.user, &appointment.locator);
    b.tower.wait_for_tip(&b.chain);
    // That block leaves the chain, and bitcoind restarts without its mempool: neither the dispute
    // nor the penalty is anywhere, and the dispute alone would be refused.
    node.invalidate_block(&dispute_block).unwrap();
    drop(node);
    b.chain.restart(false);
    assert!(!b.chain.in_mempool(&dispute) && !b.chain.in_mempool(&penalty));
    let packages_before = b.chain.sim().faults().calls("submitpackage");
    b.chain.mine_elsewhere(2, 52);

    // The tower sends them together, as a package, and a block takes both.
    wait_for_penalty(&b.chain, &penalty, &b.user, &appointment.locator);
    assert!(
        b.chain.in_mempool(&dispute),
        "the dispute went with its penalty"
    );
    assert_eq!(
        b.chain.sim().faults().calls("submitpackage"),
        packages_before + 1
    );
    b.chain.mine(1);
    assert_eq!(b.chain.confirmations(&dispute), 1);
    assert_eq!(b.chain.confirmations(&penalty), 1);
    wait_for_state(&b.user, &appointment.locator, "dispute_responded");
}

#[test]
fn a_dispute_waiting_in_the_mempool_while_teosd_restarts_is_answered() {
    let mut b = Breach::watched(6, true, &[]);
    assert!(b.tower.stop().success());
    let height = b.chain.height();
    b.chain.broadcast(&b.commitment);
    b.tower = TowerProcess::spawn(&b.tower.datadir.clone(), b.tower.api_port, &[]);
    b.user = User::new(&b.tower.url(), 6);
    b.wait_answered_from_the_mempool(height);
    wait_until("the startup reconciliation counted", SOON, || {
        b.metric("teosd_mempool_reconciliations_total{reason=\"startup\"}") == Some(1.0)
    });
}

#[test]
fn a_lost_sequence_notification_is_made_up_for_by_the_reconciliation() {
    let b = Breach::watched(7, true, &[]);
    let height = b.chain.height();
    // The dispute's `A` message is lost; the next message (an unrelated payment) shows the gap.
    b.chain
        .sim()
        .faults()
        .drop_zmq_topic(bitcoind_sim::zmq_pub::Topic::Sequence, 1);
    b.chain.broadcast(&b.commitment);
    let node = b.chain.sim().node();
    let payment = b
        .chain
        .wallet
        .send(
            &node,
            &b.chain.wallet.fresh_script(),
            bitcoin::Amount::from_sat(100_000),
        )
        .unwrap();
    b.chain.broadcast(&payment);
    b.wait_answered_from_the_mempool(height);
    wait_until("a reconciliation for the gap", SOON, || {
        b.metric("teosd_mempool_reconciliations_total{reason=\"gap\"}")
            .is_some_and(|n| n >= 1.0)
    });
}

#[test]
fn a_zero_fee_version_3_dispute_brought_in_by_the_cheaters_child_is_answered_before_any_block() {
    let b = Breach::watched(8, true, &[]);
    let node = b.chain.sim().node();
    let v3 = b
        .chain
        .wallet
        .build_v3_breach(
            &node,
            teos_testkit::BREACH_VALUE,
            teos_testkit::BREACH_TO_SELF_DELAY,
        )
        .unwrap();
    let appointment = appointment_for(&v3.commitment, &v3.penalty);
    b.user.add(&appointment).unwrap();
    // The cheater gets the zero-fee commitment in with a small fee-paying child of its change output
    // (package relay); the penalty then takes the child's place (TRUC sibling eviction).
    let child = b
        .chain
        .wallet
        .build_child(&v3.commitment, 1, bitcoin::Amount::from_sat(300))
        .unwrap();
    node.submit_package(vec![v3.commitment.clone(), child.clone()], None)
        .unwrap();
    let height = b.chain.height();
    let (dispute, penalty) = (v3.commitment.compute_txid(), v3.penalty.compute_txid());
    wait_for_penalty(&b.chain, &penalty, &b.user, &appointment.locator);
    assert_eq!(b.chain.height(), height, "no block was needed");
    assert!(!b.chain.in_mempool(&child.compute_txid()), "evicted");
    wait_for_state(&b.user, &appointment.locator, "dispute_responded");
    b.chain.mine(1);
    assert_eq!(b.chain.confirmations(&dispute), 1);
    assert_eq!(b.chain.confirmations(&penalty), 1);
}

#[test]
fn an_appointment_arriving_while_its_dispute_waits_in_the_mempool_is_answered_before_any_block() {
    let b = Breach::watched(9, true, &[]);
    let (commitment, penalty) = b.chain.breach();
    let height = b.chain.height();
    b.chain.broadcast(&commitment);
    // The dispute was seen (and matched nothing) before the appointment came: the next
    // reconciliation finds it.
    let appointment = appointment_for(&commitment, &penalty);
    b.user.add(&appointment).unwrap();
    wait_for_penalty(
        &b.chain,
        &penalty.compute_txid(),
        &b.user,
        &appointment.locator,
    );
    assert_eq!(b.chain.height(), height, "no block was needed");
    wait_for_state(&b.user, &appointment.locator, "dispute_responded");
}
