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
