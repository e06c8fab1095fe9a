//! Late appointments: their dispute was already in a recent block of the tower's chain when they
//! arrived (PROTOCOL.md, "Triggered appointments"). The request decrypted the blob with the dispute's
//! txid and stored a `pending_breaches` row with the dispute's block and height (`watcher`); here the
//! block processor answers those rows, a bounded batch at a time between looks at bitcoind's tip.
//!
//! A row exists only for a block on the tower's chain: disconnecting a block deletes the rows of its
//! height and above in the same transaction. So a row's height stays valid however many blocks the
//! tower connects meanwhile (a long catch-up), and a row is never dropped for a bitcoind error: a
//! dispute that cannot be fetched is retried (after [`FIRST_RETRY`], doubling up to [`LAST_RETRY`])
//! and counted in `teosd_late_appointment_failures_total`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use teos_common::appointment::AppointmentId;

use super::ProcessError;
use super::storage_ops::AnswerLate;
use crate::bitcoind::BitcoindRpc;
use crate::chain_walker::{ChainWalker, Tip};
use crate::metrics as m;
use crate::responder::{Breach, ConfirmedAt, Responder, TrackerChange};
use crate::storage::Store;
use crate::storage::records::PendingBreach;

/// How long a late appointment whose dispute could not be fetched waits before its first retry.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between two retries (the wait doubles from [`FIRST_RETRY`]).
pub const LAST_RETRY: Duration = Duration::from_secs(60);

/// Where the last batch stopped, and the rows waiting for a retry.
#[derive(Default)]
pub(super) struct LateQueue {
    /// The last uuid answered or skipped; the next batch starts after it (then wraps around).
    cursor: Option<AppointmentId>,
    /// Rows whose dispute could not be fetched: when to try them again, and the wait after that.
    retry_at: HashMap<AppointmentId, (Instant, Duration)>,
    /// The rows seen in the current pass over the table.
    seen: HashSet<AppointmentId>,
}

impl LateQueue {
    /// Answers up to `budget` pending rows at tip `tip`. Returns whether more rows may be waiting.
    pub(super) fn answer_batch<B: BitcoindRpc>(
        &mut self,
        store: &Store,
        walker: &ChainWalker<B>,
        responder: &Responder<B>,
        tip: Tip,
        budget: u32,
        confirmed_at: ConfirmedAt<'_>,
    ) -> Result<bool, ProcessError> {
        let after = self.cursor;
        let rows =
            store.read_blocking(move |tx| tx.pending_breaches_after(after.as_ref(), budget))?;
        let full = rows.len() == budget as usize;
        for row in rows {
            self.cursor = Some(row.uuid);
            self.seen.insert(row.uuid);
            if self
                .retry_at
                .get(&row.uuid)
                .is_some_and(|(at, _)| *at > Instant::now())
            {
                continue;
            }
            let uuid = row.uuid;
            match self.answer(store, walker, responder, tip, row, confirmed_at)? {
                Some(change) => {
                    self.retry_at.remove(&uuid);
                    store.execute_blocking(AnswerLate { uuid, change })?;
                }
                None => {
                    let wait = self
                        .retry_at
                        .get(&uuid)
                        .map_or(FIRST_RETRY, |(_, wait)| *wait);
                    tracing::error!(%uuid, "late appointment not answered yet; retrying in {wait:?}");
                    self.retry_at
                        .insert(uuid, (Instant::now() + wait, (wait * 2).min(LAST_RETRY)));
                }
            }
        }
        if !full {
            // End of a pass: the next one starts from the first row (rows added meanwhile included);
            // retries of rows that are gone (their block was disconnected) are forgotten.
            self.cursor = None;
            let seen = std::mem::take(&mut self.seen);
            self.retry_at.retain(|uuid, _| seen.contains(uuid));
        }
        Ok(full)
    }

    /// When the earliest row waiting for a retry is due, if any.
    pub(super) fn next_retry(&self) -> Option<Instant> {
        self.retry_at.values().map(|(at, _)| *at).min()
    }

    /// The change that answers one pending row, or `None` to keep it and try again later.
    fn answer<B: BitcoindRpc>(
        &self,
        store: &Store,
        walker: &ChainWalker<B>,
        responder: &Responder<B>,
        tip: Tip,
        row: PendingBreach,
        confirmed_at: ConfirmedAt<'_>,
    ) -> Result<Option<TrackerChange>, ProcessError> {
        let PendingBreach {
            uuid,
            dispute_txid,
            block_hash,
            block_height,
        } = row;
        let found = store.read_blocking(move |tx| -> Result<_, ProcessError> {
            let appointment = tx.appointment(&uuid)?;
            // Rows from before schema V4 have no height: the block must still be remembered.
            let height = match block_height {
                Some(height) => Some(height),
                None => tx.block_height(&block_hash)?,
            };
            let on_our_chain = match height {
                Some(height) => tx.block_hash_at(height)?.is_none_or(|h| h == block_hash),
                None => false,
            };
            Ok((appointment, height.filter(|_| on_our_chain)))
        })?;
        let (Some(appointment), Some(dispute_height)) = found else {
            // The appointment is gone, or its block left the tower's chain: keep watching it.
            return Ok(Some(TrackerChange::Rewatch { uuid }));
        };
        let dispute_tx = match walker
            .fetch(|rpc| rpc.raw_transaction(&dispute_txid, Some(&block_hash)))?
        {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!(%uuid, dispute = %dispute_txid, block = %block_hash, "cannot fetch the dispute of a late appointment ({e})");
                metrics::counter!(m::LATE_FAILURES).increment(1);
                return Ok(None);
            }
        };
        let change =
            match teos_common::cryptography::decrypt(&appointment.encrypted_blob, &dispute_txid) {
                Ok(penalty_tx) => {
                    let breach = Breach {
                        uuid,
                        user_id: appointment.user_id,
                        dispute_tx,
                        penalty_tx,
                        dispute_height,
                        to_self_delay: appointment.to_self_delay,
                    };
                    responder.handle_breach(breach, tip.height, None, confirmed_at)?
                }
                Err(e) => TrackerChange::Invalid {
                    uuid,
                    encrypted_blob: appointment.encrypted_blob,
                    reason: format!("late breach but the blob does not decrypt: {e}"),
                },
            };
        Ok(Some(change))
    }
}
