//! ZMQ as a subscriber sees it (`../shared/spec/bitcoind/zmq.json`): three frames per message,
//! bodies in Core's format, per-topic sequence numbers counted from 0 at each start, Core's
//! order of messages, and the drop fault.
//!
//! A SUB socket only receives once its subscription reached the publisher, so each test first
//! mines until a message arrives, then reasons with counts: the k-th message of a topic since
//! the start carries sequence number k-1.

mod sim_support;

use std::time::{Duration, Instant};

use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::{Amount, Block, BlockHash, Transaction};
use bitcoind_sim::Simulator;
use bitcoind_sim::faults::ZmqDrop;
use bitcoind_sim::wallet::TestWallet;
use bitcoind_sim::zmq_pub::{Topic, ZmqEndpoint};
use serde_json::json;
use sim_support::{ok, start};

/// One received message.
#[derive(Debug)]
struct Frames {
    topic: String,
    body: Vec<u8>,
    sequence: u32,
}

fn subscriber(endpoint: &str) -> zmq::Socket {
    let socket = zmq::Context::new().socket(zmq::SUB).unwrap();
    socket.set_rcvtimeo(5_000).unwrap();
    socket.set_subscribe(b"").unwrap();
    socket.connect(endpoint).unwrap();
    socket
}

fn receive(socket: &zmq::Socket) -> Option<Frames> {
    let parts = socket.recv_multipart(0).ok()?;
    assert_eq!(parts.len(), 3, "a ZMQ message has three frames");
    let sequence = u32::from_le_bytes(parts[2].as_slice().try_into().expect("4-byte sequence"));
    Some(Frames {
        topic: String::from_utf8(parts[0].clone()).unwrap(),
        body: parts[1].clone(),
        sequence,
    })
}

fn receive_n(socket: &zmq::Socket, n: usize) -> Vec<Frames> {
    (0..n)
        .map(|i| receive(socket).unwrap_or_else(|| panic!("message {i} of {n} missing")))
        .collect()
}

/// Mines one block at a time until the subscriber gets something, then drains what is left of
/// that block's messages. Returns the number of blocks mined.
fn until_subscribed(sim: &Simulator, socket: &zmq::Socket) -> u32 {
    socket.set_rcvtimeo(100).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut mined = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "subscription never became active"
        );
        sim.mine(1);
        mined += 1;
        if receive(socket).is_some() {
            while receive(socket).is_some() {}
            socket.set_rcvtimeo(5_000).unwrap();
            return mined;
        }
    }
}

/// Checks the five messages of a connected one-transaction block (its coinbase).
fn assert_block_messages(messages: &[Frames], block: &Block, seq: u32) {
    let topics: Vec<&str> = messages.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(
        topics,
        ["hashtx", "rawtx", "sequence", "hashblock", "rawblock"]
    );
    let hash = block.block_hash();
    assert_eq!(
        hex::encode(&messages[0].body),
        block.txdata[0].compute_txid().to_string()
    );
    assert_eq!(messages[1].body, serialize(&block.txdata[0]));
    assert_eq!(hex::encode(&messages[2].body), format!("{hash}43"));
    assert_eq!(hex::encode(&messages[3].body), hash.to_string());
    assert_eq!(deserialize::<Block>(&messages[4].body).unwrap(), *block);
    assert!(
        messages.iter().all(|m| m.sequence == seq),
        "{messages:?} should all be #{seq}"
    );
}

#[test]
fn block_messages_have_core_frames_order_and_per_topic_sequences() {
    let (sim, _dir) = start(|_| {});
    let socket = subscriber(&sim.zmq_endpoint().unwrap());
    let mined = until_subscribed(&sim, &socket);
    for n in 0..3 {
        let hash = sim.mine(1)[0];
        let block = sim.node().block(&hash).unwrap();
        // Each topic has published once per block since the start, counting from 0.
        assert_block_messages(&receive_n(&socket, 5), &block, mined + n);
    }
}

#[test]
fn mempool_transaction_then_its_block_then_its_reorg() {
    let (sim, _dir) = start(|_| {});
    let socket = subscriber(&sim.zmq_endpoint().unwrap());
    let wallet = TestWallet::new(1);
    let mined = until_subscribed(&sim, &socket);
    wallet.fund(&sim.node(), 1).unwrap();
    receive_n(&socket, 5 * 101);
    let blocks = mined + 101;

    let tx = wallet
        .send(
            &sim.node(),
            &wallet.fresh_script(),
            Amount::from_sat(100_000),
        )
        .unwrap();
    let txid = ok(
        &sim,
        "sendrawtransaction",
        json!([bitcoin::consensus::encode::serialize_hex(&tx)]),
    );
    let added = receive_n(&socket, 3);
    assert_eq!(added[0].topic, "hashtx");
    assert_eq!(hex::encode(&added[0].body), txid.as_str().unwrap());
    assert_eq!(added[0].sequence, blocks);
    assert_eq!(deserialize::<Transaction>(&added[1].body).unwrap(), tx);
    assert_eq!(added[2].topic, "sequence");
    assert_eq!(hex::encode(&added[2].body[..32]), txid.as_str().unwrap());
    assert_eq!(added[2].body[32], b'A');
    assert_eq!(
        added[2].body.len(),
        32 + 1 + 8,
        "txid, 'A', 8-byte mempool sequence"
    );
    assert_eq!(added[2].sequence, blocks);

    let hash = sim.mine(1)[0];
    let connected = receive_n(&socket, 7);
    let topics: Vec<&str> = connected.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(
        topics,
        [
            "hashtx",
            "rawtx",
            "hashtx",
            "rawtx",
            "sequence",
            "hashblock",
            "rawblock"
        ]
    );
    assert_eq!(hex::encode(&connected[2].body), txid.as_str().unwrap());
    assert_eq!(
        connected[3].sequence,
        blocks + 2,
        "rawtx: coinbases, the mempool tx, this tx"
    );
    assert_eq!(
        connected[4].sequence,
        blocks + 1,
        "sequence: blocks, 'A', this 'C'"
    );

    ok(&sim, "invalidateblock", json!([hash.to_string()]));
    let mut disconnected = Vec::new();
    while let Some(frames) = receive_short(&socket) {
        disconnected.push(frames);
    }
    let d = disconnected
        .iter()
        .find(|m| m.topic == "sequence" && m.body.last() == Some(&b'D'))
        .expect("a 'D' sequence message");
    assert_eq!(hex::encode(&d.body[..32]), hash.to_string());
    assert!(
        disconnected
            .iter()
            .any(|m| m.topic == "hashtx" && hex::encode(&m.body) == txid.as_str().unwrap()),
        "the disconnected block's transactions are announced again"
    );
}

fn receive_short(socket: &zmq::Socket) -> Option<Frames> {
    socket.set_rcvtimeo(500).unwrap();
    let frames = receive(socket);
    socket.set_rcvtimeo(5_000).unwrap();
    frames
}

#[test]
fn dropped_messages_leave_gaps_in_the_sequence_numbers() {
    let (sim, _dir) = start(|_| {});
    let socket = subscriber(&sim.zmq_endpoint().unwrap());
    let mined = until_subscribed(&sim, &socket);
    sim.faults().drop_zmq(ZmqDrop::Next(3));
    let hash = sim.mine(1)[0];
    let kept = receive_n(&socket, 2);
    assert_eq!(kept[0].topic, "hashblock");
    assert_eq!(hex::encode(&kept[0].body), hash.to_string());
    assert_eq!(kept[0].sequence, mined);
    assert_eq!(kept[1].topic, "rawblock");
    let next = sim.mine(1)[0];
    let block = sim.node().block(&next).unwrap();
    assert_block_messages(&receive_n(&socket, 5), &block, mined + 1);
}

#[test]
fn getzmqnotifications_lists_the_five_topics_with_hwm_1000() {
    let (sim, _dir) = start(|_| {});
    let endpoint = sim.zmq_endpoint().unwrap();
    assert!(endpoint.starts_with("tcp://127.0.0.1:"));
    let list = ok(&sim, "getzmqnotifications", json!([]));
    let expected: Vec<_> = [
        "pubhashblock",
        "pubhashtx",
        "pubrawblock",
        "pubrawtx",
        "pubsequence",
    ]
    .iter()
    .map(|t| json!({"type": t, "address": endpoint, "hwm": 1000}))
    .collect();
    assert_eq!(list, json!(expected));
}

#[test]
fn zmq_off_means_no_endpoint_and_no_notifications() {
    let (sim, _dir) = start(|c| c.zmq = false);
    assert_eq!(sim.zmq_endpoint(), None);
    assert_eq!(ok(&sim, "getzmqnotifications", json!([])), json!([]));
    sim.mine(1);
}

#[test]
fn per_topic_endpoints_publish_only_their_topic() {
    // Two free ports (bound then released by the OS), as a user would pick them.
    let ports: Vec<u16> = (0..2)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect::<Vec<_>>()
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    let (sim, _dir) = start(|c| {
        c.zmq_endpoints = vec![
            ZmqEndpoint {
                topic: Topic::HashBlock,
                address: format!("tcp://127.0.0.1:{}", ports[0]),
            },
            ZmqEndpoint {
                topic: Topic::RawTx,
                address: format!("tcp://127.0.0.1:{}", ports[1]),
            },
        ];
    });
    let endpoints = sim.zmq_endpoints();
    assert_eq!(endpoints.len(), 2);
    assert_ne!(endpoints[0].address, endpoints[1].address);
    let hashblock = subscriber(&endpoints[0].address);
    let mined = until_subscribed(&sim, &hashblock);
    let hash: BlockHash = sim.mine(1)[0];
    let frames = receive(&hashblock).unwrap();
    assert_eq!(
        (frames.topic.as_str(), frames.sequence),
        ("hashblock", mined)
    );
    assert_eq!(hex::encode(&frames.body), hash.to_string());
    let list = ok(&sim, "getzmqnotifications", json!([]));
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["type"], "pubhashblock");
    assert_eq!(list[1]["type"], "pubrawtx");
}

#[test]
fn restart_rebinds_the_same_zmq_port_and_counts_from_zero_again() {
    let (sim, _dir) = start(|_| {});
    let endpoint = sim.zmq_endpoint().unwrap();
    let socket = subscriber(&endpoint);
    until_subscribed(&sim, &socket);
    let sim = sim.restart(true).unwrap();
    assert_eq!(sim.zmq_endpoint().as_deref(), Some(endpoint.as_str()));
    // The same SUB socket reconnects by itself (libzmq retries every 100 ms).
    let mined = until_subscribed(&sim, &socket);
    let hash = sim.mine(1)[0];
    let block = sim.node().block(&hash).unwrap();
    assert_block_messages(&receive_n(&socket, 5), &block, mined);
}
