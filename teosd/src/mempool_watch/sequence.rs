//! bitcoind's ZMQ `sequence` topic: what its messages say, and whether some were lost.
//!
//! A message has three frames: `sequence`, the body, and a 4-byte little-endian counter of the
//! topic's messages (from 0 at every bitcoind start). The body is a 32-byte hash in display order and
//! a label (BITCOIND.md, "Unconfirmed breaches and packages"; `bitcoind/mempool.json`): `A` a
//! transaction entered the mempool, `R` one left it for another reason than a block (replaced,
//! conflicting with a block, evicted, expired), both followed by the 8-byte little-endian mempool
//! sequence number; `C` / `D` a block was connected / disconnected.
//!
//! ZMQ drops messages (a slow subscriber past the high-water mark, a reconnect, a bitcoind restart),
//! so the watcher treats them as wake-ups and `getrawmempool false true` as the truth. [`Gaps`] says
//! when a reconciliation is due: the topic's counter skipped or went back (lost messages, a restart of
//! bitcoind), or two `A`/`R` messages with no block between them are not numbered one after the other.
//! A block takes one mempool sequence number per transaction it confirms without an `R` message, so
//! after a `C`/`D` any forward jump is normal.

use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Txid};

/// One message of the `sequence` topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceEvent {
    /// `A`: `txid` entered the mempool with mempool sequence `sequence`.
    Added { txid: Txid, sequence: u64 },
    /// `R`: `txid` left the mempool, not in a block.
    Removed { txid: Txid, sequence: u64 },
    /// `C`: block connected.
    Connected(BlockHash),
    /// `D`: block disconnected.
    Disconnected(BlockHash),
}

/// Reads a `sequence` message body; `None` when it is not one (wrong length or label).
pub fn parse(body: &[u8]) -> Option<SequenceEvent> {
    let mut hash: [u8; 32] = body.get(..32)?.try_into().ok()?;
    hash.reverse();
    let label = *body.get(32)?;
    let sequence = || -> Option<u64> {
        let bytes: [u8; 8] = body.get(33..)?.try_into().ok()?;
        Some(u64::from_le_bytes(bytes))
    };
    match label {
        b'A' => Some(SequenceEvent::Added {
            txid: Txid::from_byte_array(hash),
            sequence: sequence()?,
        }),
        b'R' => Some(SequenceEvent::Removed {
            txid: Txid::from_byte_array(hash),
            sequence: sequence()?,
        }),
        b'C' if body.len() == 33 => {
            Some(SequenceEvent::Connected(BlockHash::from_byte_array(hash)))
        }
        b'D' if body.len() == 33 => Some(SequenceEvent::Disconnected(BlockHash::from_byte_array(
            hash,
        ))),
        _ => None,
    }
}

/// Reads the third frame, the topic's message counter (4 bytes, little-endian).
pub fn counter(frame: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(frame.try_into().ok()?))
}

/// What [`Gaps::observe`] makes of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// In order: act on it.
    New,
    /// Numbered below the last reconciliation's `mempool_sequence`: already in its snapshot.
    Reflected,
    /// Messages were lost before it (or bitcoind restarted): reconcile. It is acted on too.
    Gap,
}

/// Follows the topic's counter and the mempool sequence numbers (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Gaps {
    /// Counter of the last message.
    counter: Option<u32>,
    /// Mempool sequence of the last `A`/`R`, or the last reconciliation's `mempool_sequence` - 1.
    sequence: Option<u64>,
    /// A block was connected or disconnected since `sequence`.
    block_since: bool,
    /// The last reconciliation's `mempool_sequence`.
    floor: u64,
}

impl Gaps {
    /// After a reconciliation whose snapshot had `mempool_sequence` `next`: messages numbered below
    /// it are reflected, the next `A`/`R` should be numbered `next`.
    pub fn reconciled(&mut self, next: u64) {
        self.floor = next;
        self.sequence = next.checked_sub(1);
        self.block_since = false;
    }

    /// Takes in the message with counter `counter` and body `event`.
    pub fn observe(&mut self, counter: u32, event: &SequenceEvent) -> Seen {
        let lost = self
            .counter
            .is_some_and(|last| counter != last.wrapping_add(1));
        self.counter = Some(counter);
        let sequence = match *event {
            SequenceEvent::Added { sequence, .. } | SequenceEvent::Removed { sequence, .. } => {
                sequence
            }
            SequenceEvent::Connected(_) | SequenceEvent::Disconnected(_) => {
                self.block_since = true;
                return if lost { Seen::Gap } else { Seen::New };
            }
        };
        if sequence < self.floor && !lost {
            return Seen::Reflected;
        }
        let out_of_order = self
            .sequence
            .is_some_and(|last| sequence <= last || (!self.block_since && sequence != last + 1));
        self.sequence = Some(sequence);
        self.block_since = false;
        if lost || out_of_order {
            // Numbers may have started again (bitcoind restarted): act on every message until the
            // reconciliation this gap asks for sets a new floor.
            self.floor = 0;
            Seen::Gap
        } else {
            Seen::New
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies recorded from Bitcoin Core (`bitcoind/mempool.json`, section 1).
    const ADDED_1: &str =
        "1fe97e3d051e7fcf726aa6b05a216345dc35041a677237d08d8197a5b8b5ca40410100000000000000";
    const CONNECTED: &str = "7cde03e40e771bb1de085633a758eff59b64e0d53bbc253620f1da34698a0d1b43";

    fn added(sequence: u64) -> SequenceEvent {
        SequenceEvent::Added {
            txid: Txid::all_zeros(),
            sequence,
        }
    }

    #[test]
    fn core_bodies_are_read_in_display_order() {
        let body = hex::decode(ADDED_1).unwrap();
        assert_eq!(
            parse(&body),
            Some(SequenceEvent::Added {
                txid: "1fe97e3d051e7fcf726aa6b05a216345dc35041a677237d08d8197a5b8b5ca40"
                    .parse()
                    .unwrap(),
                sequence: 1
            })
        );
        let body = hex::decode(CONNECTED).unwrap();
        assert!(matches!(parse(&body), Some(SequenceEvent::Connected(h))
            if h.to_string() == "7cde03e40e771bb1de085633a758eff59b64e0d53bbc253620f1da34698a0d1b"));
        let mut removed = hex::decode(ADDED_1).unwrap();
        removed[32] = b'R';
        assert!(matches!(
            parse(&removed),
            Some(SequenceEvent::Removed { sequence: 1, .. })
        ));
        assert_eq!(parse(&body[..32]), None);
        assert_eq!(parse(&hex::decode(&ADDED_1[..70]).unwrap()), None);
        assert_eq!(counter(&[0x7b, 0, 0, 0]), Some(123));
        assert_eq!(counter(&[0x7b, 0, 0]), None);
    }

    #[test]
    fn consecutive_messages_are_new_and_a_block_may_take_sequence_numbers() {
        let mut gaps = Gaps::default();
        gaps.reconciled(1);
        assert_eq!(gaps.observe(0x79, &added(1)), Seen::New);
        assert_eq!(gaps.observe(0x7a, &added(2)), Seen::New);
        // Core (mempool.json): the block confirming both takes 3 and 4, with no R message.
        let block = SequenceEvent::Connected(BlockHash::all_zeros());
        assert_eq!(gaps.observe(0x7b, &block), Seen::New);
        assert_eq!(gaps.observe(0x7c, &added(5)), Seen::New);
    }

    #[test]
    fn a_skipped_counter_or_sequence_or_a_restart_is_a_gap() {
        let mut gaps = Gaps::default();
        gaps.reconciled(10);
        assert_eq!(gaps.observe(5, &added(10)), Seen::New);
        assert_eq!(gaps.observe(7, &added(11)), Seen::Gap, "counter 6 lost");
        assert_eq!(gaps.observe(8, &added(13)), Seen::Gap, "sequence 12 lost");
        // bitcoind restarted: counters and sequence numbers start again, and the messages after the
        // gap are acted on although numbered below the last snapshot's sequence.
        assert_eq!(gaps.observe(0, &added(1)), Seen::Gap);
        assert_eq!(gaps.observe(1, &added(2)), Seen::New);
    }

    #[test]
    fn messages_older_than_the_last_snapshot_are_reflected_in_it() {
        let mut gaps = Gaps::default();
        assert_eq!(gaps.observe(1, &added(4)), Seen::New);
        gaps.reconciled(7);
        assert_eq!(gaps.observe(2, &added(5)), Seen::Reflected);
        assert_eq!(gaps.observe(3, &added(6)), Seen::Reflected);
        assert_eq!(gaps.observe(4, &added(7)), Seen::New);
    }
}
