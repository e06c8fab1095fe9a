//! The mempool watcher's loop: ZMQ `sequence` messages as wake-ups, reconciliations when due (see the
//! parent module's docs).

use std::time::{Duration, Instant};

use bitcoin::Txid;

use super::sequence::{self, Gaps, Seen, SequenceEvent};
use super::{GAP_RECONCILE_MIN, MempoolWatcher, POLL_EVERY, RECONCILE_EVERY, Reason, WatchError};
use crate::bitcoind::BitcoindRpc;
use crate::shutdown::Shutdown;

/// Longest a receive waits for a message (also how soon the loop sees a shutdown).
const RECEIVE_TIMEOUT_MS: i32 = 250;
/// Most messages handled as one batch (one lock of the chain view, one storage read).
const MAX_BATCH: usize = 1000;

/// Messages queued on our side at most (about 10 MB) while the loop is busy (e.g. retrying an
/// unreachable bitcoind); beyond, ZMQ drops them and [`Gaps`] sees the gap.
const RECEIVE_HWM: i32 = 100_000;

/// A SUB socket on `endpoint`'s `sequence` topic. Messages lost to a high-water mark (bitcoind's, 1000
/// by default, or [`RECEIVE_HWM`]) show as gaps ([`Gaps`]).
pub(super) fn subscribe(endpoint: &str) -> Result<zmq::Socket, zmq::Error> {
    let context = zmq::Context::new();
    let socket = context.socket(zmq::SUB)?;
    socket.set_rcvtimeo(RECEIVE_TIMEOUT_MS)?;
    socket.set_linger(0)?;
    socket.set_rcvhwm(RECEIVE_HWM)?;
    socket.connect(endpoint)?;
    socket.set_subscribe(b"sequence")?;
    Ok(socket)
}

/// One step of work read from the ZMQ stream, in the stream's order.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Transactions that entered the mempool.
    Added(Vec<Txid>),
    /// A transaction that left it (not in a block).
    Removed(Txid),
}

/// What a batch of messages asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Batch {
    /// The work, in order (consecutive additions grouped).
    pub(super) steps: Vec<Step>,
    /// Messages were lost before some of them: reconcile.
    pub(super) gap: bool,
}

/// Reads `messages` (each `[topic, body, counter]`) through `gaps`. Unreadable messages are skipped;
/// additions already reflected in the last reconciliation are left out.
pub(super) fn read_batch(gaps: &mut Gaps, messages: &[Vec<Vec<u8>>]) -> Batch {
    let mut batch = Batch::default();
    for frames in messages {
        let (Some(body), Some(counter)) = (
            frames.get(1).and_then(|body| sequence::parse(body)),
            frames.get(2).and_then(|frame| sequence::counter(frame)),
        ) else {
            tracing::debug!(frames = frames.len(), "unreadable sequence message skipped");
            continue;
        };
        let seen = gaps.observe(counter, &body);
        batch.gap |= seen == Seen::Gap;
        match body {
            SequenceEvent::Added { txid, .. } if seen != Seen::Reflected => {
                match batch.steps.last_mut() {
                    Some(Step::Added(txids)) => txids.push(txid),
                    _ => batch.steps.push(Step::Added(vec![txid])),
                }
            }
            SequenceEvent::Removed { txid, .. } => batch.steps.push(Step::Removed(txid)),
            _ => {}
        }
    }
    batch
}

/// Waits up to [`RECEIVE_TIMEOUT_MS`] for a message, then takes what else is queued (up to
/// [`MAX_BATCH`]). Returns the messages and when the first arrived.
fn receive(socket: &zmq::Socket) -> (Vec<Vec<Vec<u8>>>, Instant) {
    let mut messages = Vec::new();
    match socket.recv_multipart(0) {
        Ok(frames) => messages.push(frames),
        Err(zmq::Error::EAGAIN) => return (messages, Instant::now()),
        Err(e) => {
            tracing::warn!("zmq receive failed: {e}");
            std::thread::sleep(Duration::from_millis(RECEIVE_TIMEOUT_MS as u64));
            return (messages, Instant::now());
        }
    }
    let first = Instant::now();
    while messages.len() < MAX_BATCH {
        match socket.recv_multipart(zmq::DONTWAIT) {
            Ok(frames) => messages.push(frames),
            Err(_) => break,
        }
    }
    (messages, first)
}

/// The thread's loop: reconcile at start, then act on ZMQ batches (or sleep, without ZMQ) and
/// reconcile when due, until shutdown.
pub(super) fn run<B: BitcoindRpc>(
    mut watcher: MempoolWatcher<B>,
    socket: Option<zmq::Socket>,
    shutdown: &Shutdown,
) {
    let every = if socket.is_some() {
        RECONCILE_EVERY
    } else {
        POLL_EVERY
    };
    let mut gaps = Gaps::default();
    let mut due = Some(Reason::Startup);
    let mut last = Instant::now();
    // Whether the last reconciliation failed: a failure is logged as a warning once, not every time.
    let mut failing = false;
    while !shutdown.is_triggered() {
        if due.is_none() && last.elapsed() >= every {
            due = Some(Reason::Periodic);
        }
        if let Some(reason) =
            due.filter(|r| *r != Reason::Gap || last.elapsed() >= GAP_RECONCILE_MIN)
        {
            due = None;
            last = Instant::now();
            match watcher.reconcile(reason) {
                Ok(next) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("reading bitcoind's mempool works again");
                    }
                    gaps.reconciled(next);
                }
                Err(WatchError::Interrupted) => break,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(
                        "reading bitcoind's mempool failed ({e}); trying again every {} s (breaches \
                         in it are answered from ZMQ notifications meanwhile, or when mined)",
                        every.as_secs()
                    );
                }
                Err(e) => tracing::debug!("reading bitcoind's mempool failed again: {e}"),
            }
        }
        let Some(socket) = &socket else {
            shutdown.wait_timeout(every.saturating_sub(last.elapsed()));
            continue;
        };
        let (messages, at) = receive(socket);
        let batch = read_batch(&mut gaps, &messages);
        if batch.gap {
            tracing::debug!("sequence notifications were lost; reconciling the mempool");
            due = due.or(Some(Reason::Gap));
        }
        if let Err(e) = act(&mut watcher, batch.steps, at) {
            match e {
                WatchError::Interrupted => break,
                e => {
                    tracing::warn!("checking new mempool transactions failed ({e}); reconciling");
                    due = due.or(Some(Reason::Gap));
                }
            }
        }
    }
    tracing::info!("mempool watcher stopped");
}

/// Acts on a batch's steps in order.
pub(super) fn act<B: BitcoindRpc>(
    watcher: &mut MempoolWatcher<B>,
    steps: Vec<Step>,
    seen: Instant,
) -> Result<(), WatchError> {
    for step in steps {
        match step {
            Step::Added(txids) => {
                watcher.check(&txids, seen)?;
            }
            Step::Removed(txid) => watcher.removed(&txid),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bitcoin::hashes::Hash;

    use super::*;

    fn message(txid: u8, label: u8, sequence: u64, counter: u32) -> Vec<Vec<u8>> {
        let mut body = vec![txid; 32];
        body.push(label);
        body.extend_from_slice(&sequence.to_le_bytes());
        vec![b"sequence".to_vec(), body, counter.to_le_bytes().to_vec()]
    }

    fn txid(byte: u8) -> Txid {
        Txid::from_byte_array([byte; 32])
    }

    #[test]
    fn a_batch_keeps_the_stream_order_and_groups_additions() {
        let mut gaps = Gaps::default();
        gaps.reconciled(3);
        let batch = read_batch(
            &mut gaps,
            &[
                message(1, b'A', 2, 0),
                message(2, b'A', 3, 1),
                message(3, b'A', 4, 2),
                message(2, b'R', 5, 3),
                message(4, b'A', 6, 4),
                vec![b"sequence".to_vec(), vec![0; 5]],
            ],
        );
        assert_eq!(
            batch,
            Batch {
                steps: vec![
                    Step::Added(vec![txid(2), txid(3)]),
                    Step::Removed(txid(2)),
                    Step::Added(vec![txid(4)]),
                ],
                gap: false,
            },
            "the addition numbered 2 was in the snapshot"
        );
    }

    #[test]
    fn a_lost_message_asks_for_a_reconciliation() {
        let mut gaps = Gaps::default();
        gaps.reconciled(1);
        let batch = read_batch(&mut gaps, &[message(1, b'A', 1, 0), message(2, b'A', 3, 2)]);
        assert!(batch.gap);
        assert_eq!(batch.steps, vec![Step::Added(vec![txid(1), txid(2)])]);
    }
}
