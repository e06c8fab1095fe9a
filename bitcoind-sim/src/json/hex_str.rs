//! Fast lower-case hex for big answers: `getblock <hash> 0` carries a whole block (1.8 MB of hex
//! for an 892 kB block), so the value is consensus-encoded once and hex-encoded in one pass with
//! `const-hex` (SIMD) straight into the final JSON string, instead of per-byte formatting.
//!
//! The text is the same as `bitcoin::consensus::encode::serialize_hex` (Core's `HexStr`: lower
//! case, no separators); hex needs no JSON escaping, so a quoted hex string is valid JSON as is.

use bitcoin::Txid;
use bitcoin::consensus::Encodable;
use bitcoin::hashes::Hash;
use serde::{Serialize, Serializer};

/// Appends the lower-case hex of `bytes` (2 characters per byte) to `out`.
#[inline]
pub fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    out.resize(start + 2 * bytes.len(), 0);
    // The output is exactly twice the input by construction, the only case const-hex refuses.
    let _ = const_hex::encode_to_slice(bytes, &mut out[start..]);
}

/// Only ASCII hex digits and quotes were written, so the bytes are UTF-8.
fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_default()
}

/// The consensus encoding of `value` as hex (`serialize_hex`). `size_hint` is its encoded size in
/// bytes when known (0 otherwise), to allocate the string once.
pub fn consensus_hex<T: Encodable + ?Sized>(value: &T, size_hint: usize) -> String {
    let mut out = Vec::with_capacity(2 * size_hint);
    encode_into(value, &mut out);
    into_string(out)
}

/// The consensus encoding of `value` as a JSON string literal: `"<hex>"`. `size_hint` as for
/// [`consensus_hex`].
pub fn consensus_hex_json<T: Encodable + ?Sized>(value: &T, size_hint: usize) -> String {
    let mut out = Vec::with_capacity(2 * size_hint + 2);
    out.push(b'"');
    encode_into(value, &mut out);
    out.push(b'"');
    into_string(out)
}

/// Consensus-encodes `value` into a scratch buffer, then hex-encodes it in one pass: the encoder
/// writes a few bytes at a time, too little for const-hex's SIMD loop to pay off per write.
fn encode_into<T: Encodable + ?Sized>(value: &T, out: &mut Vec<u8>) {
    let mut bytes = Vec::with_capacity(out.capacity().saturating_sub(out.len()) / 2);
    // Writing into memory cannot fail.
    let _ = value.consensus_encode(&mut bytes);
    push_hex(out, &bytes);
}

/// A txid serialized as Core prints it (hex in display order, i.e. byte-reversed), without going
/// through `Display`.
pub struct TxidHex<'a>(pub &'a Txid);

impl Serialize for TxidHex<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut reversed = self.0.to_byte_array();
        reversed.reverse();
        let mut buffer = const_hex::Buffer::<32>::new();
        serializer.serialize_str(buffer.format(&reversed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::consensus::encode::serialize_hex;
    use bitcoin::{Block, Network};

    #[test]
    fn every_byte_value_encodes_like_the_hex_crate() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        let mut out = b"x".to_vec();
        push_hex(&mut out, &bytes);
        assert_eq!(out[..1], *b"x");
        assert_eq!(std::str::from_utf8(&out[1..]).unwrap(), hex::encode(&bytes));
    }

    #[test]
    fn block_hex_equals_serialize_hex_with_or_without_size_hint() {
        let block: Block = bitcoin::constants::genesis_block(Network::Regtest);
        let expected = serialize_hex(&block);
        assert_eq!(consensus_hex(&block, 0), expected);
        assert_eq!(consensus_hex(&block, block.total_size()), expected);
        assert_eq!(
            consensus_hex_json(&block, block.total_size()),
            format!("\"{expected}\"")
        );
    }

    #[test]
    fn txid_serializes_in_display_order() {
        let block: Block = bitcoin::constants::genesis_block(Network::Regtest);
        let txid = block.txdata[0].compute_txid();
        assert_eq!(
            serde_json::to_string(&TxidHex(&txid)).unwrap(),
            format!("\"{txid}\"")
        );
    }
}
