//! The Responder: turns breaches into trackers and follows each penalty until it is irrevocably
//! resolved (PROTOCOL.md, "Responding").
//!
//! It decides; it does not write. For every connected block it returns [`TrackerChange`]s that the
//! block processor commits in the same storage transaction as the block's other effects, so a crash
//! at any instant leaves either all or none of a block's changes. Every decision is idempotent: a
//! block processed twice (crash after broadcasting, before committing) sends the same transactions
//! again, which bitcoind accepts as already known.

use std::collections::HashSet;

use bitcoin::{Transaction, Txid};
use teos_common::appointment::{AppointmentId, UserId};
use teos_common::constants::{CONFIRMATIONS_BEFORE_RETRY, IRREVOCABLY_RESOLVED};

use crate::bitcoind::BitcoindRpc;
use crate::carrier::{Carrier, Delivery, Interrupted};
use crate::storage::records::{TrackerRecord, TrackerStatus};

/// A revoked commitment seen on chain, with the decrypted penalty that answers it.
#[derive(Clone, Debug)]
pub struct Breach {
    pub uuid: AppointmentId,
    pub user_id: UserId,
    pub dispute_tx: Transaction,
    pub penalty_tx: Transaction,
    /// Height of the block the dispute was mined in.
    pub dispute_height: u32,
}

/// A state change decided by the Responder, applied by the block processor's commit.
#[derive(Clone, Debug)]
pub enum TrackerChange {
    /// Start tracking a penalty (and drop the appointment's pending-breach mark, if any).
    Track(TrackerRecord),
    /// The penalty's status changed.
    Status {
        uuid: AppointmentId,
        status: TrackerStatus,
        height: u32,
    },
    /// The dispute was (re)confirmed at `height`, or left the chain (`None`).
    DisputeHeight {
        uuid: AppointmentId,
        height: Option<u32>,
    },
    /// Penalty irrevocably resolved: delete tracker and appointment, refund the slots.
    Complete { uuid: AppointmentId },
    /// Penalty refused by bitcoind, or undecryptable blob: delete appointment and tracker, no refund.
    Drop { uuid: AppointmentId, reason: String },
    /// The dispute left the chain and cannot be re-sent: stop tracking, watch the appointment again.
    Rewatch { uuid: AppointmentId },
}

/// What became of an attempt to put a dispute and its penalty on their way to the chain.
enum Outcome {
    Sent,
    DisputeGone(Delivery),
    PenaltyRejected(Delivery),
}

/// Sends penalties and decides tracker transitions.
pub struct Responder<B: BitcoindRpc> {
    carrier: Carrier<B>,
}

impl<B: BitcoindRpc> Responder<B> {
    pub fn new(carrier: Carrier<B>) -> Responder<B> {
        Responder { carrier }
    }

    /// Answers a breach found at tip `height`. `block_txids` are the txids of the block being connected
    /// (when the breach was found in one): a penalty already in it is confirmed without sending.
    pub fn handle_breach(
        &self,
        breach: Breach,
        height: u32,
        block_txids: Option<&HashSet<Txid>>,
    ) -> Result<TrackerChange, Interrupted> {
        let penalty_txid = breach.penalty_tx.compute_txid();
        let mut record = TrackerRecord {
            uuid: breach.uuid,
            dispute_txid: breach.dispute_tx.compute_txid(),
            dispute_tx: breach.dispute_tx,
            penalty_txid,
            penalty_tx: breach.penalty_tx,
            dispute_height: Some(breach.dispute_height),
            status: TrackerStatus::InMempool,
            status_height: height,
        };
        if block_txids.is_some_and(|txids| txids.contains(&penalty_txid)) {
            record.status = TrackerStatus::Confirmed;
            return Ok(TrackerChange::Track(record));
        }
        match self.respond(&record.dispute_tx, &record.penalty_tx, true)? {
            Outcome::Sent => {
                tracing::info!(uuid = %record.uuid, penalty = %penalty_txid, "breach answered, penalty broadcast");
                Ok(TrackerChange::Track(record))
            }
            Outcome::DisputeGone(d) | Outcome::PenaltyRejected(d) => Ok(TrackerChange::Drop {
                uuid: record.uuid,
                reason: format!("penalty rejected by bitcoind: {d:?}"),
            }),
        }
    }

    /// Follows existing trackers after the block at `height` (with `txids`) was connected.
    ///
    /// `trackers` must include every tracker whose dispute or penalty is in the block, every reorged one,
    /// every penalty unconfirmed for [`CONFIRMATIONS_BEFORE_RETRY`] blocks, and every confirmed one that
    /// may have reached [`IRREVOCABLY_RESOLVED`] confirmations (≥, so a skipped height never strands one).
    pub fn block_connected(
        &self,
        height: u32,
        txids: &HashSet<Txid>,
        trackers: Vec<TrackerRecord>,
    ) -> Result<Vec<TrackerChange>, Interrupted> {
        let mut changes = Vec::new();
        for t in trackers {
            let uuid = t.uuid;
            let mut dispute_height = t.dispute_height;
            if txids.contains(&t.dispute_txid) && dispute_height != Some(height) {
                dispute_height = Some(height);
                changes.push(TrackerChange::DisputeHeight {
                    uuid,
                    height: dispute_height,
                });
            }
            if txids.contains(&t.penalty_txid) {
                if dispute_height.is_none() {
                    changes.push(TrackerChange::DisputeHeight {
                        uuid,
                        height: Some(height),
                    });
                }
                if !(t.status == TrackerStatus::Confirmed && t.status_height == height) {
                    tracing::info!(%uuid, penalty = %t.penalty_txid, height, "penalty confirmed");
                    changes.push(TrackerChange::Status {
                        uuid,
                        status: TrackerStatus::Confirmed,
                        height,
                    });
                }
                continue;
            }
            match t.status {
                TrackerStatus::Confirmed => {
                    let confirmations = height.saturating_sub(t.status_height) + 1;
                    if confirmations >= IRREVOCABLY_RESOLVED {
                        tracing::info!(%uuid, confirmations, "penalty irrevocably resolved");
                        changes.push(TrackerChange::Complete { uuid });
                    }
                }
                TrackerStatus::InMempool => {
                    if height.saturating_sub(t.status_height) >= CONFIRMATIONS_BEFORE_RETRY {
                        tracing::info!(%uuid, penalty = %t.penalty_txid, "penalty unconfirmed for too long, rebroadcasting");
                        changes.push(self.resend(&t, dispute_height.is_some(), height)?);
                    }
                }
                TrackerStatus::Reorged => {
                    tracing::info!(%uuid, dispute_confirmed = dispute_height.is_some(), "re-sending after a reorg");
                    changes.push(self.resend(&t, dispute_height.is_some(), height)?);
                }
            }
        }
        Ok(changes)
    }

    fn resend(
        &self,
        t: &TrackerRecord,
        dispute_confirmed: bool,
        height: u32,
    ) -> Result<TrackerChange, Interrupted> {
        Ok(
            match self.respond(&t.dispute_tx, &t.penalty_tx, dispute_confirmed)? {
                Outcome::Sent => TrackerChange::Status {
                    uuid: t.uuid,
                    status: TrackerStatus::InMempool,
                    height,
                },
                Outcome::DisputeGone(d) => {
                    tracing::warn!(uuid = %t.uuid, "dispute left the chain and was refused ({d:?}); watching the appointment again");
                    TrackerChange::Rewatch { uuid: t.uuid }
                }
                Outcome::PenaltyRejected(d) => TrackerChange::Drop {
                    uuid: t.uuid,
                    reason: format!("penalty rejected by bitcoind: {d:?}"),
                },
            },
        )
    }

    /// Sends the dispute first when it is not known to be confirmed, then the penalty. A penalty refused
    /// for missing inputs gets one more try after re-sending its dispute.
    fn respond(
        &self,
        dispute: &Transaction,
        penalty: &Transaction,
        dispute_confirmed: bool,
    ) -> Result<Outcome, Interrupted> {
        if !dispute_confirmed {
            let d = self.carrier.send(dispute)?;
            if !d.is_ok() {
                return Ok(Outcome::DisputeGone(d));
            }
        }
        let p = self.carrier.send(penalty)?;
        if p.is_ok() {
            return Ok(Outcome::Sent);
        }
        if p.is_missing_inputs() && dispute_confirmed {
            let d = self.carrier.send(dispute)?;
            if !d.is_ok() {
                return Ok(Outcome::DisputeGone(d));
            }
            let p = self.carrier.send(penalty)?;
            if p.is_ok() {
                return Ok(Outcome::Sent);
            }
            return Ok(Outcome::PenaltyRejected(p));
        }
        Ok(Outcome::PenaltyRejected(p))
    }
}
