//! ZMQ publisher: turns [`NodeEvent`]s into the messages Bitcoin Core's ZMQ notifier sends
//! (`src/zmq/zmqpublishnotifier.cpp`), on its own thread.
//!
//! Each message has three frames: the topic, the body, and a 4-byte little-endian sequence number
//! counted per topic from 0 (restarting at 0 when the simulator restarts). Bodies, as in
//! `../shared/spec/bitcoind/zmq.json`:
//! - `hashblock` / `hashtx`: the 32-byte hash in display (reversed) order;
//! - `rawblock` / `rawtx`: the serialized block / transaction (with witness);
//! - `sequence`: block hash + `C` (connected) or `D` (disconnected); txid + `A` (added to the
//!   mempool) or `R` (removed, not by a block) + the 8-byte little-endian mempool sequence.
//!
//! Order, as Core: a transaction entering the mempool gives `hashtx`, `rawtx`, `sequence A`. A
//! connected block gives `hashtx`/`rawtx` for each of its transactions, then `sequence C`, then
//! `hashblock`, `rawblock`. A disconnected block gives `hashtx`/`rawtx` for each of its
//! transactions, then `sequence D`. Publishing never blocks: past the high-water mark (1000
//! messages, Core's default) a slow subscriber loses messages, as with Core.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use bitcoin::consensus::encode::serialize;
use bitcoin::hashes::Hash;
use bitcoin::{Block, Transaction};

use crate::faults::Faults;
use crate::node::{Node, NodeEvent};

/// Core's default `-zmqpubhashblockhwm` etc.
pub const DEFAULT_HWM: i32 = 1000;

/// How often the publisher thread checks for shutdown while no event arrives.
const STOP_POLL: Duration = Duration::from_millis(50);

/// A ZMQ topic Core publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Topic {
    /// Block hash of each connected block.
    HashBlock,
    /// Txid of each transaction entering the mempool or a connected/disconnected block.
    HashTx,
    /// Serialized connected block.
    RawBlock,
    /// Serialized transaction (same events as `HashTx`).
    RawTx,
    /// Block connected/disconnected, transaction added/removed, with the mempool sequence.
    Sequence,
}

impl Topic {
    /// All five, in the order `getzmqnotifications` lists them.
    pub const ALL: [Topic; 5] = [
        Topic::HashBlock,
        Topic::HashTx,
        Topic::RawBlock,
        Topic::RawTx,
        Topic::Sequence,
    ];

    /// The first frame: `hashblock`, `hashtx`, `rawblock`, `rawtx` or `sequence`.
    pub fn name(self) -> &'static str {
        match self {
            Topic::HashBlock => "hashblock",
            Topic::HashTx => "hashtx",
            Topic::RawBlock => "rawblock",
            Topic::RawTx => "rawtx",
            Topic::Sequence => "sequence",
        }
    }
}

/// One `-zmqpub<topic>=<address>` setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZmqEndpoint {
    /// What is published there.
    pub topic: Topic,
    /// `tcp://127.0.0.1:PORT`; port 0 binds an ephemeral port (resolved after binding).
    pub address: String,
}

/// Why the publisher could not start.
#[derive(Debug, thiserror::Error)]
pub enum ZmqError {
    /// The address is malformed or taken.
    #[error("zmq: cannot bind {address}: {source}")]
    Bind {
        /// The endpoint asked for.
        address: String,
        /// libzmq's reason.
        source: zmq::Error,
    },
    /// libzmq failed otherwise (socket options, thread start).
    #[error("zmq: {0}")]
    Socket(#[from] zmq::Error),
}

/// One message before framing: topic and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The first frame.
    pub topic: Topic,
    /// The second frame (the third, the sequence number, is added when sending).
    pub body: Vec<u8>,
}

fn display_order(mut bytes: [u8; 32]) -> Vec<u8> {
    bytes.reverse();
    bytes.to_vec()
}

fn tx_messages(tx: &Transaction, out: &mut Vec<Message>) {
    out.push(Message {
        topic: Topic::HashTx,
        body: display_order(tx.compute_txid().to_byte_array()),
    });
    out.push(Message {
        topic: Topic::RawTx,
        body: serialize(tx),
    });
}

fn sequence_body(hash: [u8; 32], label: u8, mempool_sequence: Option<u64>) -> Vec<u8> {
    let mut body = display_order(hash);
    body.push(label);
    if let Some(seq) = mempool_sequence {
        body.extend_from_slice(&seq.to_le_bytes());
    }
    body
}

/// The messages of one event, in Core's order. `disconnected_block` supplies the block of a
/// `BlockDisconnected` event (its transactions are announced again, as Core does).
pub fn messages_for(
    event: &NodeEvent,
    disconnected_block: impl FnOnce() -> Option<Arc<Block>>,
) -> Vec<Message> {
    let mut out = Vec::new();
    match event {
        NodeEvent::TxAdded {
            tx,
            mempool_sequence,
        } => {
            tx_messages(tx, &mut out);
            let body = sequence_body(
                tx.compute_txid().to_byte_array(),
                b'A',
                Some(*mempool_sequence),
            );
            out.push(Message {
                topic: Topic::Sequence,
                body,
            });
        }
        NodeEvent::TxRemoved {
            txid,
            mempool_sequence,
        } => {
            let body = sequence_body(txid.to_byte_array(), b'R', Some(*mempool_sequence));
            out.push(Message {
                topic: Topic::Sequence,
                body,
            });
        }
        NodeEvent::BlockConnected { block, hash } => {
            block.txdata.iter().for_each(|tx| tx_messages(tx, &mut out));
            let body = sequence_body(hash.to_byte_array(), b'C', None);
            out.push(Message {
                topic: Topic::Sequence,
                body,
            });
            out.push(Message {
                topic: Topic::HashBlock,
                body: display_order(hash.to_byte_array()),
            });
            out.push(Message {
                topic: Topic::RawBlock,
                body: serialize(block.as_ref()),
            });
        }
        NodeEvent::BlockDisconnected { hash } => {
            if let Some(block) = disconnected_block() {
                block.txdata.iter().for_each(|tx| tx_messages(tx, &mut out));
            }
            let body = sequence_body(hash.to_byte_array(), b'D', None);
            out.push(Message {
                topic: Topic::Sequence,
                body,
            });
        }
    }
    out
}

/// The running publisher thread; [`Publisher::stop`] closes its sockets and releases the ports.
pub struct Publisher {
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    endpoints: Vec<ZmqEndpoint>,
}

impl Publisher {
    /// Binds one PUB socket per distinct address (high-water mark 1000) and starts publishing
    /// every event received on `events`. Binding errors are returned before anything starts.
    pub fn start(
        endpoints: &[ZmqEndpoint],
        node: Arc<Node>,
        events: Receiver<NodeEvent>,
        faults: Arc<Faults>,
    ) -> Result<Publisher, ZmqError> {
        let context = zmq::Context::new();
        let mut sockets: Vec<(String, zmq::Socket)> = Vec::new();
        let mut resolved = Vec::new();
        let mut routes: BTreeMap<Topic, usize> = BTreeMap::new();
        for endpoint in endpoints {
            let index = match sockets.iter().position(|(a, _)| *a == endpoint.address) {
                Some(index) => index,
                None => {
                    let socket = bind(&context, &endpoint.address)?;
                    sockets.push((endpoint.address.clone(), socket));
                    sockets.len() - 1
                }
            };
            let bound = sockets[index]
                .1
                .get_last_endpoint()?
                .unwrap_or_else(|_| endpoint.address.clone());
            routes.insert(endpoint.topic, index);
            resolved.push(ZmqEndpoint {
                topic: endpoint.topic,
                address: bound,
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            sockets: sockets.into_iter().map(|(_, s)| s).collect(),
            routes,
            sequences: BTreeMap::new(),
            faults,
        };
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("bitcoind-sim-zmq".into())
            .spawn(move || worker.run(&node, &events, &flag))
            .map_err(|_| ZmqError::Socket(zmq::Error::EMFILE))?;
        Ok(Publisher {
            thread: Some(thread),
            stop,
            endpoints: resolved,
        })
    }

    /// The endpoints as bound (ephemeral ports resolved), in configuration order.
    pub fn endpoints(&self) -> &[ZmqEndpoint] {
        &self.endpoints
    }

    /// Stops the thread and closes the sockets (linger 0, as Core at shutdown).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("zmq publisher thread panicked");
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn bind(context: &zmq::Context, address: &str) -> Result<zmq::Socket, ZmqError> {
    let bind_error = |source| ZmqError::Bind {
        address: address.to_owned(),
        source,
    };
    let socket = context.socket(zmq::PUB).map_err(bind_error)?;
    socket.set_sndhwm(DEFAULT_HWM).map_err(bind_error)?;
    socket.set_linger(0).map_err(bind_error)?;
    // Port 0 means "any free port", which libzmq spells `*`.
    let address = match address.strip_suffix(":0") {
        Some(host) => format!("{host}:*"),
        None => address.to_owned(),
    };
    socket.bind(&address).map_err(bind_error)?;
    Ok(socket)
}

struct Worker {
    sockets: Vec<zmq::Socket>,
    /// Which socket publishes each configured topic.
    routes: BTreeMap<Topic, usize>,
    /// Next sequence number per topic.
    sequences: BTreeMap<Topic, u32>,
    faults: Arc<Faults>,
}

impl Worker {
    fn run(mut self, node: &Node, events: &Receiver<NodeEvent>, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) {
            match events.recv_timeout(STOP_POLL) {
                Ok(event) => {
                    let disconnected = || match &event {
                        NodeEvent::BlockDisconnected { hash } => {
                            node.shared_block(hash).map(|b| b.shared())
                        }
                        _ => None,
                    };
                    for message in messages_for(&event, disconnected) {
                        self.publish(&message);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
    }

    fn publish(&mut self, message: &Message) {
        let Some(&index) = self.routes.get(&message.topic) else {
            return;
        };
        let sequence = self.sequences.entry(message.topic).or_insert(0);
        let frames: [&[u8]; 3] = [
            message.topic.name().as_bytes(),
            &message.body,
            &sequence.to_le_bytes(),
        ];
        *sequence = sequence.wrapping_add(1);
        if self.faults.take_zmq_drop(message.topic) {
            tracing::debug!(topic = message.topic.name(), "zmq message dropped (fault)");
            return;
        }
        if let Err(e) = self.sockets[index].send_multipart(frames, zmq::DONTWAIT) {
            tracing::debug!(topic = message.topic.name(), error = %e, "zmq message not sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::consensus::encode::deserialize_hex;
    use bitcoin::{BlockHash, Txid};
    use std::str::FromStr;

    #[test]
    fn sequence_bodies_match_transcript() {
        let txid =
            Txid::from_str("5add885a95cef5de09f896403bc9bde7c1fea7bd11fcfb8dddb6d14baba35900")
                .unwrap();
        let event = NodeEvent::TxRemoved {
            txid,
            mempool_sequence: 4,
        };
        let messages = messages_for(&event, || None);
        assert_eq!(
            hex::encode(&messages[0].body),
            "5add885a95cef5de09f896403bc9bde7c1fea7bd11fcfb8dddb6d14baba35900520400000000000000"
        );
        let hash =
            BlockHash::from_str("6eb79b810c86f8c9c9a426e0d965e5a111f795267629fd3b98b2397e727f85c4")
                .unwrap();
        let messages = messages_for(&NodeEvent::BlockDisconnected { hash }, || None);
        assert_eq!(messages.len(), 1);
        assert_eq!(
            hex::encode(&messages[0].body),
            "6eb79b810c86f8c9c9a426e0d965e5a111f795267629fd3b98b2397e727f85c444"
        );
    }

    #[test]
    fn connected_block_messages_are_in_core_order() {
        let coinbase: Transaction = deserialize_hex("020000000001010000000000000000000000000000000000000000000000000000000000000000ffffffff025100feffffff0200f2052a01000000160014c112ded4ce75a38fc701f16ff51532d83153ad700000000000000000266a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf90120000000000000000000000000000000000000000000000000000000000000000000000000").unwrap();
        let block = bitcoin::blockdata::constants::genesis_block(bitcoin::Network::Regtest);
        let block = Block {
            header: block.header,
            txdata: vec![coinbase.clone()],
        };
        let hash = block.block_hash();
        let messages = messages_for(
            &NodeEvent::BlockConnected {
                block: Arc::new(block.clone()),
                hash,
            },
            || None,
        );
        let topics: Vec<Topic> = messages.iter().map(|m| m.topic).collect();
        assert_eq!(
            topics,
            [
                Topic::HashTx,
                Topic::RawTx,
                Topic::Sequence,
                Topic::HashBlock,
                Topic::RawBlock
            ]
        );
        assert_eq!(
            hex::encode(&messages[0].body),
            "d0311b38292ca26b6c281f09b19e3b0d27cb3c4df64f221455e214bdd43eb446"
        );
        assert_eq!(messages[1].body, serialize(&coinbase));
        assert_eq!(hex::encode(&messages[3].body), hash.to_string());
        assert_eq!(messages[2].body.last(), Some(&b'C'));
    }
}
