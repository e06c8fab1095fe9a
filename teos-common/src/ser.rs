//! Serde helpers for the JSON forms of the protocol (`shared/research/rust-teos.md` §3.2):
//! byte strings as lowercase hex, transactions as consensus-serialized hex.
//!
//! Use them with `#[serde(with = "teos_common::ser::hex_bytes")]` and
//! `#[serde(with = "teos_common::ser::consensus_hex")]`.

/// `Vec<u8>` ⇄ lowercase hex string. Deserializing rejects odd length and non-hex characters.
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes the bytes as lowercase hex.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    /// Reads a hex string (either case).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(&text).map_err(D::Error::custom)
    }
}

/// `bitcoin::Transaction` ⇄ hex of its consensus serialization (the form of `penalty_rawtx`).
pub mod consensus_hex {
    use bitcoin::Transaction;
    use bitcoin::consensus::encode;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes the transaction as consensus hex (with witness data when it has any).
    pub fn serialize<S: Serializer>(tx: &Transaction, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode::serialize_hex(tx))
    }

    /// Reads consensus hex; rejects bad hex, a truncated transaction and trailing bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Transaction, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(&text).map_err(D::Error::custom)?;
        encode::deserialize(&bytes).map_err(D::Error::custom)
    }
}
