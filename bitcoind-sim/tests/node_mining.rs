//! Mining through the public `Node` API: heights, Core's coinbase shape, proof of work, merkle root.

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::hashes::Hash;
use bitcoin::{Network, ScriptBuf, WPubkeyHash};
use bitcoind_sim::node::{Node, NodeConfig};

fn open(dir: &std::path::Path) -> Node {
    Node::open(NodeConfig {
        datadir: dir.to_path_buf(),
        txindex: true,
        persist_mempool: false,
    })
    .unwrap()
}

fn script() -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([0xc1; 20]))
}

#[test]
fn fresh_node_starts_at_regtest_genesis() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let genesis = bitcoin::constants::genesis_block(Network::Regtest).block_hash();
    assert_eq!(node.block_count(), 0);
    assert_eq!(node.best_block_hash(), genesis);
    let info = node.chain_info();
    assert!(info.initial_block_download);
    assert_eq!(
        info.size_on_disk, 293,
        "genesis block record as in Core's blk00000.dat"
    );
    assert_eq!(info.chainwork.to_be_bytes()[31], 2);
}

#[test]
fn generated_blocks_extend_the_chain_with_core_coinbases() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let hashes = node.generate_to_script(110, &script()).unwrap();
    assert_eq!(hashes.len(), 110);
    assert_eq!(node.block_count(), 110);
    assert_eq!(node.best_block_hash(), hashes[109]);
    assert!(!node.chain_info().initial_block_download);

    let first = node.block(&hashes[0]).unwrap();
    let cb = &first.txdata[0];
    assert_eq!(cb.input[0].script_sig.to_hex_string(), "5100");
    assert_eq!(cb.input[0].sequence.0, 0xffff_fffe);
    assert_eq!(cb.lock_time.to_consensus_u32(), 0);
    assert_eq!(cb.input[0].witness.len(), 1);
    assert_eq!(cb.input[0].witness.nth(0).unwrap(), &[0u8; 32]);
    assert_eq!(cb.output[0].value.to_sat(), 50 * 100_000_000);
    assert!(
        cb.output[1]
            .script_pubkey
            .as_bytes()
            .starts_with(&[0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed])
    );
    assert!(first.check_merkle_root());
    assert!(first.check_witness_commitment());
    assert!(first.header.target().is_met_by(first.block_hash()));
    assert_eq!(first.header.version.to_consensus(), 0x2000_0000);
    assert_eq!(first.header.bits.to_consensus(), 0x207f_ffff);

    let last = node.block(&hashes[109]).unwrap();
    let cb = &last.txdata[0];
    assert_eq!(cb.input[0].script_sig.to_hex_string(), "016e");
    assert_eq!(cb.lock_time.to_consensus_u32(), 109);
    // Same shape as the transcript's height-110 coinbase (only the script and commitment differ).
    let hex = serialize_hex(cb);
    assert!(hex.starts_with("020000000001010000000000000000000000000000000000000000000000000000000000000000ffffffff02016efeffffff0200f2052a01000000"));
    let entry = node.block_entry(&hashes[109]).unwrap();
    assert_eq!(entry.height, 110);
    assert_eq!(entry.confirmations, 1);
    assert_eq!(entry.size, 248);
    assert_eq!(entry.stripped_size, 212);
    assert_eq!(entry.weight, 884);
    assert_eq!(entry.chainwork.to_be_bytes()[31], 0xde);
}

/// Coinbases of heights 1 and 110 paying to the transcript's mining address serialize exactly
/// as Bitcoin Core's (zmq.json first `rawtx`, rpc.json entry 27).
#[test]
fn coinbases_match_the_transcript_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let script = ScriptBuf::from_hex("0014c112ded4ce75a38fc701f16ff51532d83153ad70").unwrap();
    let hashes = node.generate_to_script(110, &script).unwrap();
    let first = serialize_hex(&node.block(&hashes[0]).unwrap().txdata[0]);
    assert_eq!(
        first,
        "020000000001010000000000000000000000000000000000000000000000000000000000000000ffffffff025100feffffff0200f2052a01000000160014c112ded4ce75a38fc701f16ff51532d83153ad700000000000000000266a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf90120000000000000000000000000000000000000000000000000000000000000000000000000"
    );
    let last = node.block(&hashes[109]).unwrap();
    assert_eq!(
        serialize_hex(&last.txdata[0]),
        "020000000001010000000000000000000000000000000000000000000000000000000000000000ffffffff02016efeffffff0200f2052a01000000160014c112ded4ce75a38fc701f16ff51532d83153ad700000000000000000266a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf9012000000000000000000000000000000000000000000000000000000000000000006d000000"
    );
    assert_eq!(
        last.header.merkle_root.to_string(),
        "36d2848c8434b04077f89423002553483240fd3502d3b0241d1dc6e47894080e"
    );
}

#[test]
fn block_times_follow_cores_median_time_rule() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let hashes = node.generate_to_script(30, &script()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let mut parent_mtp = node
        .block_entry(&node.block_hash(0).unwrap())
        .unwrap()
        .median_time;
    for hash in &hashes {
        // Core's UpdateTime: max(median time past of the parent + 1, now).
        let time = node.block_entry(hash).unwrap().header.time;
        assert!(time > parent_mtp);
        assert!(
            time <= (parent_mtp + 1).max(now),
            "{time} is later than the rule allows"
        );
        parent_mtp = node.block_entry(hash).unwrap().median_time;
    }
}
