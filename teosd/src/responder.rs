//! The Responder: turns breaches into trackers and follows each penalty until it is irrevocably
//! resolved (PROTOCOL.md, "Responding"; ARCHITECTURE.md, "Responding" for the rules that are ours).
//!
//! It decides; it does not write. For every connected block it returns [`TrackerChange`]s that the
//! block processor commits in the same storage transaction as the block's other effects, so a crash
//! at any instant leaves either all or none of a block's changes. Every decision is idempotent: a
//! block processed twice (crash after broadcasting, before committing) sends the same transactions
//! again, which bitcoind accepts as already known.
//!
//! What each answer of bitcoind to a penalty leads to (the dispute is sent first when it is not known
//! to be confirmed):
//!
//! | bitcoind says | meaning | decision |
//! |---|---|---|
//! | accepted / already in the mempool | on its way | tracker `InMempool` at the tip |
//! | the dispute refused alone for its fee (a zero-fee version 3 commitment) | needs its child | `submitpackage [dispute, penalty]`: accepted → `InMempool`; refused → [`TrackerChange::Rewatch`] |
//! | -27 already in chain | confirmed earlier | tracker `Confirmed` where it is (see [`ConfirmedAt`]) |
//! | -25 missing inputs, dispute re-sent and refused | the dispute is not on this chain | [`TrackerChange::Rewatch`] |
//! | -25 missing inputs after the dispute is confirmed | outputs spent elsewhere | [`TrackerChange::Rewatch`] |
//! | a refusal that may pass (-26 fee too low, losing replacement, non-final, mempool limits) | may pass | tracker `Rejected`, sent again every block until [`deadline`], then [`TrackerChange::Drop`] |
//! | a refusal that never passes (consensus or script failure, dust, -22 decode) | invalid penalty | [`TrackerChange::Drop`] (no refund, as rust-teos) |
//! | unreachable, -28 | transient | retried by the Carrier, never decided on |

use std::collections::HashSet;

use bitcoin::{Transaction, Txid};
use teos_common::appointment::{AppointmentId, UserId};
use teos_common::constants::{CONFIRMATIONS_BEFORE_RETRY, IRREVOCABLY_RESOLVED};

use crate::bitcoind::BitcoindRpc;
use crate::carrier::{Carrier, Delivery, Interrupted};
use crate::listen::{ConnectedBlock, Decision, DisconnectedBlock, Listen};
use crate::storage::records::{TrackerRecord, TrackerStatus};

/// A revoked commitment seen on chain, with the decrypted penalty that answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breach {
    pub uuid: AppointmentId,
    pub user_id: UserId,
    pub dispute_tx: Transaction,
    pub penalty_tx: Transaction,
    /// Height of the block the dispute was mined in.
    pub dispute_height: u32,
    /// The appointment's `to_self_delay` (blocks).
    pub to_self_delay: u32,
}

/// A state change decided by the Responder (or the Watcher), applied by the block processor's commit.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// The penalty can no longer confirm in time: delete appointment and tracker, no refund.
    Drop { uuid: AppointmentId, reason: String },
    /// The appointment's blob does not decrypt with the dispute's txid: delete it, no refund
    /// (PROTOCOL.md "Subscriptions") — but only if it still holds `encrypted_blob`, so a corrected blob
    /// sent with the same locator between the block's scan and its commit is kept.
    Invalid {
        uuid: AppointmentId,
        encrypted_blob: Vec<u8>,
        reason: String,
    },
    /// The dispute is not on the chain and cannot be sent: stop tracking, watch the appointment again.
    Rewatch { uuid: AppointmentId },
}

/// Where a transaction bitcoind reports as already confirmed (-27) is: the height of the block holding
/// it among the blocks the tower knows (the block being connected, the locator cache), if found.
pub type ConfirmedAt<'a> = &'a dyn Fn(&Txid) -> Option<u32>;

/// What became of an attempt to put a dispute and its penalty on their way to the chain.
#[derive(Debug)]
enum Outcome {
    /// The penalty is in the mempool.
    Sent,
    /// The penalty is already confirmed.
    AlreadyConfirmed,
    /// The dispute is not on this chain and could not be sent, or the penalty's inputs are gone.
    DisputeGone(Delivery),
    /// The penalty was refused for a reason that may pass (see [`Delivery::may_pass_later`]).
    Refused(Delivery),
    /// The penalty was refused for good (an invalid transaction).
    Invalid(Delivery),
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
    /// `confirmed_at` locates a penalty bitcoind reports as already confirmed.
    pub fn handle_breach(
        &self,
        breach: Breach,
        height: u32,
        block_txids: Option<&HashSet<Txid>>,
        confirmed_at: ConfirmedAt<'_>,
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
            to_self_delay: breach.to_self_delay,
        };
        if block_txids.is_some_and(|txids| txids.contains(&penalty_txid)) {
            record.status = TrackerStatus::Confirmed;
            return Ok(TrackerChange::Track(record));
        }
        match self.respond(&record.dispute_tx, &record.penalty_tx, true)? {
            Outcome::Sent => {
                tracing::info!(uuid = %record.uuid, penalty = %penalty_txid, "breach answered, penalty broadcast");
            }
            Outcome::AlreadyConfirmed => {
                record.status = TrackerStatus::Confirmed;
                record.status_height = confirmed_at(&penalty_txid).unwrap_or(height);
                tracing::info!(uuid = %record.uuid, penalty = %penalty_txid, height = record.status_height, "breach answered: penalty already confirmed");
            }
            Outcome::DisputeGone(d) => {
                tracing::warn!(uuid = %record.uuid, "dispute not on bitcoind's chain ({d:?}); watching the appointment again");
                return Ok(TrackerChange::Rewatch { uuid: record.uuid });
            }
            Outcome::Refused(d) => {
                tracing::warn!(uuid = %record.uuid, penalty = %penalty_txid, "penalty refused by bitcoind ({d:?}); retrying every block until block {}", deadline(&record).map_or_else(|| "?".into(), |d| d.to_string()));
                record.status = TrackerStatus::Rejected;
            }
            Outcome::Invalid(d) => {
                return Ok(TrackerChange::Drop {
                    uuid: record.uuid,
                    reason: format!("penalty rejected by bitcoind: {d:?}"),
                });
            }
        }
        Ok(TrackerChange::Track(record))
    }

    /// Follows existing trackers after the block at `height` (with `txids`) was connected.
    ///
    /// `trackers` must include every tracker whose dispute or penalty is in the block, every reorged or
    /// rejected one, every penalty unconfirmed for [`CONFIRMATIONS_BEFORE_RETRY`] blocks, and every
    /// confirmed one that may have reached [`IRREVOCABLY_RESOLVED`] confirmations (≥, so a skipped
    /// height never strands one).
    pub fn follow_trackers(
        &self,
        height: u32,
        txids: &HashSet<Txid>,
        trackers: Vec<TrackerRecord>,
        confirmed_at: ConfirmedAt<'_>,
    ) -> Result<Vec<TrackerChange>, Interrupted> {
        let mut changes = Vec::new();
        for mut t in trackers {
            let uuid = t.uuid;
            if txids.contains(&t.dispute_txid) && t.dispute_height != Some(height) {
                t.dispute_height = Some(height);
                changes.push(TrackerChange::DisputeHeight {
                    uuid,
                    height: t.dispute_height,
                });
            }
            if txids.contains(&t.penalty_txid) {
                if t.dispute_height.is_none() {
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
                        changes.extend(self.resend(&t, height, confirmed_at)?);
                    }
                }
                TrackerStatus::Reorged => {
                    tracing::info!(%uuid, dispute_confirmed = t.dispute_height.is_some(), "re-sending after a reorg");
                    changes.extend(self.resend(&t, height, confirmed_at)?);
                }
                TrackerStatus::Rejected => {
                    if let Some(deadline) = deadline(&t).filter(|d| height >= *d) {
                        changes.push(TrackerChange::Drop {
                            uuid,
                            reason: format!(
                                "penalty refused by bitcoind until block {deadline}, when the dispute's \
                                 to_self_delay ran out"
                            ),
                        });
                    } else {
                        changes.extend(self.resend(&t, height, confirmed_at)?);
                    }
                }
            }
        }
        Ok(changes)
    }

    /// Sends the tracker's transactions again; `None` when nothing changes (refused again).
    fn resend(
        &self,
        t: &TrackerRecord,
        height: u32,
        confirmed_at: ConfirmedAt<'_>,
    ) -> Result<Option<TrackerChange>, Interrupted> {
        let status = |status, height| TrackerChange::Status {
            uuid: t.uuid,
            status,
            height,
        };
        Ok(
            match self.respond(&t.dispute_tx, &t.penalty_tx, t.dispute_height.is_some())? {
                Outcome::Sent => Some(status(TrackerStatus::InMempool, height)),
                Outcome::AlreadyConfirmed => Some(status(
                    TrackerStatus::Confirmed,
                    confirmed_at(&t.penalty_txid).unwrap_or(height),
                )),
                Outcome::DisputeGone(d) => {
                    tracing::warn!(uuid = %t.uuid, "dispute not on bitcoind's chain ({d:?}); watching the appointment again");
                    Some(TrackerChange::Rewatch { uuid: t.uuid })
                }
                Outcome::Invalid(d) => Some(TrackerChange::Drop {
                    uuid: t.uuid,
                    reason: format!("penalty rejected by bitcoind: {d:?}"),
                }),
                Outcome::Refused(d) if t.status == TrackerStatus::Rejected => {
                    tracing::debug!(uuid = %t.uuid, "penalty refused again ({d:?})");
                    None
                }
                Outcome::Refused(d) => {
                    tracing::warn!(uuid = %t.uuid, "penalty refused by bitcoind ({d:?}); retrying every block");
                    Some(status(TrackerStatus::Rejected, height))
                }
            },
        )
    }

    /// Sends the dispute first when it is not known to be confirmed, then the penalty. A penalty refused
    /// for missing inputs gets one more try after re-sending its dispute. A dispute refused alone for
    /// its fee goes with the penalty as a package (see [`Self::send_dispute`]).
    fn respond(
        &self,
        dispute: &Transaction,
        penalty: &Transaction,
        dispute_confirmed: bool,
    ) -> Result<Outcome, Interrupted> {
        if !dispute_confirmed {
            match self.send_dispute(dispute, penalty)? {
                (d, _) if !d.is_ok() => return Ok(Outcome::DisputeGone(d)),
                (_, true) => return Ok(Outcome::Sent),
                (_, false) => {}
            }
        }
        let mut p = self.carrier.send(penalty)?;
        if p.is_missing_inputs() && dispute_confirmed {
            match self.send_dispute(dispute, penalty)? {
                (d, _) if !d.is_ok() => return Ok(Outcome::DisputeGone(d)),
                (_, true) => return Ok(Outcome::Sent),
                (_, false) => p = self.carrier.send(penalty)?,
            }
        }
        Ok(match p {
            Delivery::InMempool => Outcome::Sent,
            Delivery::AlreadyConfirmed => Outcome::AlreadyConfirmed,
            p if p.is_missing_inputs() => Outcome::DisputeGone(p),
            p if p.may_pass_later() => Outcome::Refused(p),
            p => Outcome::Invalid(p),
        })
    }
}

impl<B: BitcoindRpc> Responder<B> {
    /// Sends `dispute`; when bitcoind refuses it alone for its fee (a zero-fee version 3 commitment is
    /// accepted only with a fee-paying child: BITCOIND.md, "Unconfirmed breaches and packages"), sends
    /// it with `penalty` as `submitpackage [dispute, penalty]`. Returns what became of the dispute and
    /// whether the penalty went with it.
    fn send_dispute(
        &self,
        dispute: &Transaction,
        penalty: &Transaction,
    ) -> Result<(Delivery, bool), Interrupted> {
        let alone = self.carrier.send(dispute)?;
        if !alone.is_fee_refusal() {
            return Ok((alone, false));
        }
        tracing::info!(dispute = %dispute.compute_txid(), "dispute refused alone for its fee ({alone:?}); sending it with its penalty as a package");
        let package = self
            .carrier
            .send_package(&[dispute.clone(), penalty.clone()])?;
        Ok((package, true))
    }
}

/// What the Responder needs for a block (see [`Listen`]).
pub struct ResponderFound {
    /// The Watcher's breaches in this block (empty when disconnecting).
    pub breaches: Vec<Breach>,
    /// Connecting: every tracker [`Responder::follow_trackers`] requires. Disconnecting: every tracker
    /// whose dispute or penalty confirmed in the block.
    pub trackers: Vec<TrackerRecord>,
}

impl<B: BitcoindRpc> Listen for Responder<B> {
    type Found = ResponderFound;

    /// Answers the block's breaches ([`Responder::handle_breach`]), then follows the existing trackers
    /// ([`Responder::follow_trackers`]).
    fn block_connected(
        &self,
        block: &ConnectedBlock<'_>,
        found: Self::Found,
    ) -> Result<Vec<Decision>, Interrupted> {
        let mut decisions = Vec::new();
        for breach in found.breaches {
            let change =
                self.handle_breach(breach, block.height, Some(block.txids), block.confirmed_at)?;
            decisions.push(Decision::Tracker(change));
        }
        let followed = self.follow_trackers(
            block.height,
            block.txids,
            found.trackers,
            block.confirmed_at,
        )?;
        decisions.extend(followed.into_iter().map(Decision::Tracker));
        Ok(decisions)
    }

    fn block_disconnected(&self, block: &DisconnectedBlock, found: Self::Found) -> Vec<Decision> {
        trackers_disconnected(block.height, found.trackers)
            .into_iter()
            .map(Decision::Tracker)
            .collect()
    }
}

/// Decides what becomes of `trackers` when the block at `height` leaves the chain (reorg):
/// `trackers` must include every tracker whose penalty confirmed at `height` or whose dispute did.
/// A penalty that confirmed there is `Reorged` (sent again at the next block); a dispute that
/// confirmed there loses its height and its tracker is `Reorged` (the dispute is sent first). Sends
/// nothing: the next connected block re-sends.
pub fn trackers_disconnected(height: u32, trackers: Vec<TrackerRecord>) -> Vec<TrackerChange> {
    let mut changes = Vec::new();
    for t in trackers {
        let penalty_left = t.status == TrackerStatus::Confirmed && t.status_height == height;
        let dispute_left = t.dispute_height == Some(height);
        if dispute_left {
            changes.push(TrackerChange::DisputeHeight {
                uuid: t.uuid,
                height: None,
            });
        }
        if penalty_left || dispute_left {
            changes.push(TrackerChange::Status {
                uuid: t.uuid,
                status: TrackerStatus::Reorged,
                height,
            });
        }
    }
    changes
}

/// The longest a refused penalty is retried (blocks): the largest `to_self_delay` Lightning
/// implementations accept by default (Core Lightning's `max-locktime-blocks`, LND's 2016), so an
/// appointment with a huge declared delay cannot keep a refused penalty retried for ever.
pub const MAX_RETRY_BLOCKS: u32 = 2016;

/// The height from which a penalty can no longer be expected to confirm in time:
/// `dispute_height + to_self_delay` (at most [`MAX_RETRY_BLOCKS`]), when the cheater's delayed output
/// becomes spendable (BOLT 3, `to_local` output). `None` while the dispute is not confirmed.
pub fn deadline(t: &TrackerRecord) -> Option<u32> {
    t.dispute_height
        .map(|h| h.saturating_add(t.to_self_delay.min(MAX_RETRY_BLOCKS)))
}

#[cfg(test)]
mod tests;
