//! Scripts as Bitcoin Core renders them: `asm` (`ScriptToAsmStr`), output `type` (`Solver`),
//! `address` (`ExtractDestination`) and `desc` (`InferDescriptor` without keys, with checksum).

use bitcoin::opcodes::all::OP_CHECKMULTISIG;
use bitcoin::script::Instruction;
use bitcoin::{Address, Network, Script};
use serde::Serialize;

use super::descriptor::with_checksum;

/// An output script's standard type, named as Core's `GetTxnOutputType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptType {
    /// Anything else.
    NonStandard,
    /// Pay to a bare public key.
    PubKey,
    /// P2PKH.
    PubKeyHash,
    /// P2SH.
    ScriptHash,
    /// Bare multisig, `required` of n keys.
    Multisig {
        /// Signatures needed (m of m-of-n).
        required: u8,
    },
    /// `OP_RETURN` followed by pushes only.
    NullData,
    /// P2WPKH.
    WitnessV0KeyHash,
    /// P2WSH.
    WitnessV0ScriptHash,
    /// P2TR.
    WitnessV1Taproot,
    /// A witness program of a version without rules yet.
    WitnessUnknown,
    /// Pay-to-anchor (`OP_1 0x4e73`).
    Anchor,
}

impl ScriptType {
    /// Core's name (`"witness_v0_keyhash"`, `"nulldata"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ScriptType::NonStandard => "nonstandard",
            ScriptType::PubKey => "pubkey",
            ScriptType::PubKeyHash => "pubkeyhash",
            ScriptType::ScriptHash => "scripthash",
            ScriptType::Multisig { .. } => "multisig",
            ScriptType::NullData => "nulldata",
            ScriptType::WitnessV0KeyHash => "witness_v0_keyhash",
            ScriptType::WitnessV0ScriptHash => "witness_v0_scripthash",
            ScriptType::WitnessV1Taproot => "witness_v1_taproot",
            ScriptType::WitnessUnknown => "witness_unknown",
            ScriptType::Anchor => "anchor",
        }
    }

    /// Whether Core shows an `address` for this type (not for bare keys, multisig, data).
    fn has_address(self) -> bool {
        !matches!(
            self,
            ScriptType::NonStandard
                | ScriptType::PubKey
                | ScriptType::Multisig { .. }
                | ScriptType::NullData
        )
    }
}

/// The `scriptPubKey` object of a decoded output: `{asm, desc, hex, address?, type}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScriptPubKeyJson {
    /// Core's assembly rendering.
    pub asm: String,
    /// Inferred output descriptor with its checksum.
    pub desc: String,
    /// Raw script, hex.
    pub hex: String,
    /// Regtest address, for types that have one (not bare keys, multisig or data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Core's type name (see [`ScriptType::name`]).
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// Renders an output script; addresses are regtest (`bcrt1...`, `m`/`n`/`2...`).
pub fn script_pubkey_json(script: &Script) -> ScriptPubKeyJson {
    let kind = classify(script);
    let address = kind
        .has_address()
        .then(|| Address::from_script(script, Network::Regtest).ok())
        .flatten()
        .map(|a| a.to_string());
    ScriptPubKeyJson {
        asm: asm(script, false),
        desc: with_checksum(&descriptor(script, kind, address.as_deref())),
        hex: hex::encode(script.as_bytes()),
        address,
        kind: kind.name(),
    }
}

/// Core's `Solver`: the standard type of an output script.
pub fn classify(script: &Script) -> ScriptType {
    let bytes = script.as_bytes();
    if script.is_p2sh() {
        return ScriptType::ScriptHash;
    }
    if let Some(version) = script.witness_version() {
        let program_len = bytes.len() - 2;
        return match (version.to_num(), program_len) {
            (0, 20) => ScriptType::WitnessV0KeyHash,
            (0, 32) => ScriptType::WitnessV0ScriptHash,
            (1, 32) => ScriptType::WitnessV1Taproot,
            _ if bytes == [0x51, 0x02, 0x4e, 0x73] => ScriptType::Anchor,
            (0, _) => ScriptType::NonStandard,
            _ => ScriptType::WitnessUnknown,
        };
    }
    if bytes.first() == Some(&0x6a) && is_push_only(Script::from_bytes(&bytes[1..])) {
        return ScriptType::NullData;
    }
    if p2pk_key(bytes).is_some() {
        return ScriptType::PubKey;
    }
    if script.is_p2pkh() {
        return ScriptType::PubKeyHash;
    }
    if let Some((required, _)) = multisig(script) {
        return ScriptType::Multisig { required };
    }
    ScriptType::NonStandard
}

/// Core's `CPubKey::ValidSize`: 33 bytes starting 02/03 or 65 bytes starting 04/06/07.
fn valid_pubkey_size(key: &[u8]) -> bool {
    match key.first() {
        Some(2 | 3) => key.len() == 33,
        Some(4 | 6 | 7) => key.len() == 65,
        _ => false,
    }
}

/// The key of a pay-to-pubkey script (`<key> OP_CHECKSIG`).
fn p2pk_key(bytes: &[u8]) -> Option<&[u8]> {
    let (&push, rest) = bytes.split_first()?;
    let (&last, key) = rest.split_last()?;
    (last == 0xac && usize::from(push) == key.len() && valid_pubkey_size(key)).then_some(key)
}

/// Core's `MatchMultisig`: `OP_m <key>... OP_n OP_CHECKMULTISIG` → (m, keys).
fn multisig(script: &Script) -> Option<(u8, Vec<Vec<u8>>)> {
    if script.as_bytes().last() != Some(&OP_CHECKMULTISIG.to_u8()) {
        return None;
    }
    let mut instructions = script.instructions();
    let required = small_int(instructions.next()?.ok()?)?;
    let mut keys = Vec::new();
    let total = loop {
        match instructions.next()?.ok()? {
            Instruction::PushBytes(data) if valid_pubkey_size(data.as_bytes()) => {
                keys.push(data.as_bytes().to_vec())
            }
            other => break small_int(other)?,
        }
    };
    let last = instructions.next()?.ok()?;
    let ends = instructions.next().is_none() && last == Instruction::Op(OP_CHECKMULTISIG);
    (ends && usize::from(total) == keys.len() && total >= required).then_some((required, keys))
}

/// OP_1..OP_16 → 1..16.
fn small_int(instruction: Instruction<'_>) -> Option<u8> {
    match instruction {
        Instruction::Op(op) => (0x51..=0x60)
            .contains(&op.to_u8())
            .then(|| op.to_u8() - 0x50),
        Instruction::PushBytes(_) => None,
    }
}

/// Core's `IsPushOnly`: every operation is a push or OP_1NEGATE/OP_RESERVED/OP_1..OP_16.
fn is_push_only(script: &Script) -> bool {
    script.instructions().all(|i| match i {
        Ok(Instruction::PushBytes(_)) => true,
        Ok(Instruction::Op(op)) => op.to_u8() <= 0x60,
        Err(_) => false,
    })
}

/// Core's `InferDescriptor` with no signing provider (before the checksum).
fn descriptor(script: &Script, kind: ScriptType, address: Option<&str>) -> String {
    let raw = || format!("raw({})", hex::encode(script.as_bytes()));
    match kind {
        ScriptType::PubKey => match p2pk_key(script.as_bytes()) {
            Some(key) if is_valid_pubkey(key) => format!("pk({})", hex::encode(key)),
            _ => raw(),
        },
        ScriptType::Multisig { required } => match multisig(script) {
            Some((_, keys)) if keys.iter().all(|k| is_valid_pubkey(k)) => {
                let keys: Vec<String> = keys.iter().map(hex::encode).collect();
                format!("multi({required},{})", keys.join(","))
            }
            _ => raw(),
        },
        ScriptType::WitnessV1Taproot
            if bitcoin::secp256k1::XOnlyPublicKey::from_slice(&script.as_bytes()[2..]).is_ok() =>
        {
            format!("rawtr({})", hex::encode(&script.as_bytes()[2..]))
        }
        _ => match address {
            Some(address) => format!("addr({address})"),
            None => raw(),
        },
    }
}

fn is_valid_pubkey(key: &[u8]) -> bool {
    bitcoin::secp256k1::PublicKey::from_slice(key).is_ok()
}

/// Core's `ScriptToAsmStr`. With `sighash_decode` (scriptSig), data that is a strict-DER
/// signature with a defined sighash type is shown as `<hex>[ALL]` etc.
pub fn asm(script: &Script, sighash_decode: bool) -> String {
    let unspendable = script.as_bytes().first() == Some(&0x6a) || script.len() > 10_000;
    let mut parts = Vec::new();
    for instruction in script.instructions() {
        match instruction {
            Err(_) => {
                parts.push("[error]".to_owned());
                break;
            }
            Ok(Instruction::PushBytes(data)) => {
                let data = data.as_bytes();
                if data.len() <= 4 {
                    parts.push(script_num(data).to_string());
                } else if sighash_decode && !unspendable {
                    parts.push(signature_asm(data));
                } else {
                    parts.push(hex::encode(data));
                }
            }
            Ok(Instruction::Op(op)) => parts.push(op_name(op.to_u8()).to_owned()),
        }
    }
    parts.join(" ")
}

/// A push of up to 4 bytes read as a little-endian sign-magnitude number (`CScriptNum`).
fn script_num(data: &[u8]) -> i64 {
    let Some((&last, _)) = data.split_last() else {
        return 0;
    };
    let mut value: i64 = 0;
    for (i, byte) in data.iter().enumerate() {
        value |= i64::from(*byte) << (8 * i);
    }
    if last & 0x80 != 0 {
        -(value & !(0x80i64 << (8 * (data.len() - 1))))
    } else {
        value
    }
}

fn signature_asm(data: &[u8]) -> String {
    let Some((&hash_type, signature)) = data.split_last() else {
        return String::new();
    };
    let name = match hash_type {
        0x01 => "ALL",
        0x02 => "NONE",
        0x03 => "SINGLE",
        0x81 => "ALL|ANYONECANPAY",
        0x82 => "NONE|ANYONECANPAY",
        0x83 => "SINGLE|ANYONECANPAY",
        _ => return hex::encode(data),
    };
    if !is_strict_der(data) {
        return hex::encode(data);
    }
    format!("{}[{name}]", hex::encode(signature))
}

/// BIP66 strict DER check of a signature with its trailing sighash byte.
fn is_strict_der(sig: &[u8]) -> bool {
    let len = sig.len();
    if !(9..=73).contains(&len) || sig[0] != 0x30 || usize::from(sig[1]) != len - 3 {
        return false;
    }
    let len_r = usize::from(sig[3]);
    if 5 + len_r >= len {
        return false;
    }
    let len_s = usize::from(sig[5 + len_r]);
    if len_r + len_s + 7 != len || sig[2] != 0x02 || len_r == 0 || sig[4] & 0x80 != 0 {
        return false;
    }
    if len_r > 1 && sig[4] == 0 && sig[5] & 0x80 == 0 {
        return false;
    }
    if sig[len_r + 4] != 0x02 || len_s == 0 || sig[len_r + 6] & 0x80 != 0 {
        return false;
    }
    !(len_s > 1 && sig[len_r + 6] == 0 && sig[len_r + 7] & 0x80 == 0)
}

/// Names of opcodes 0x61 (OP_NOP) ..= 0xba (OP_CHECKSIGADD), as Core's `GetOpName`.
const OP_NAMES: [&str; 90] = [
    "OP_NOP",
    "OP_VER",
    "OP_IF",
    "OP_NOTIF",
    "OP_VERIF",
    "OP_VERNOTIF",
    "OP_ELSE",
    "OP_ENDIF",
    "OP_VERIFY",
    "OP_RETURN",
    "OP_TOALTSTACK",
    "OP_FROMALTSTACK",
    "OP_2DROP",
    "OP_2DUP",
    "OP_3DUP",
    "OP_2OVER",
    "OP_2ROT",
    "OP_2SWAP",
    "OP_IFDUP",
    "OP_DEPTH",
    "OP_DROP",
    "OP_DUP",
    "OP_NIP",
    "OP_OVER",
    "OP_PICK",
    "OP_ROLL",
    "OP_ROT",
    "OP_SWAP",
    "OP_TUCK",
    "OP_CAT",
    "OP_SUBSTR",
    "OP_LEFT",
    "OP_RIGHT",
    "OP_SIZE",
    "OP_INVERT",
    "OP_AND",
    "OP_OR",
    "OP_XOR",
    "OP_EQUAL",
    "OP_EQUALVERIFY",
    "OP_RESERVED1",
    "OP_RESERVED2",
    "OP_1ADD",
    "OP_1SUB",
    "OP_2MUL",
    "OP_2DIV",
    "OP_NEGATE",
    "OP_ABS",
    "OP_NOT",
    "OP_0NOTEQUAL",
    "OP_ADD",
    "OP_SUB",
    "OP_MUL",
    "OP_DIV",
    "OP_MOD",
    "OP_LSHIFT",
    "OP_RSHIFT",
    "OP_BOOLAND",
    "OP_BOOLOR",
    "OP_NUMEQUAL",
    "OP_NUMEQUALVERIFY",
    "OP_NUMNOTEQUAL",
    "OP_LESSTHAN",
    "OP_GREATERTHAN",
    "OP_LESSTHANOREQUAL",
    "OP_GREATERTHANOREQUAL",
    "OP_MIN",
    "OP_MAX",
    "OP_WITHIN",
    "OP_RIPEMD160",
    "OP_SHA1",
    "OP_SHA256",
    "OP_HASH160",
    "OP_HASH256",
    "OP_CODESEPARATOR",
    "OP_CHECKSIG",
    "OP_CHECKSIGVERIFY",
    "OP_CHECKMULTISIG",
    "OP_CHECKMULTISIGVERIFY",
    "OP_NOP1",
    "OP_CHECKLOCKTIMEVERIFY",
    "OP_CHECKSEQUENCEVERIFY",
    "OP_NOP4",
    "OP_NOP5",
    "OP_NOP6",
    "OP_NOP7",
    "OP_NOP8",
    "OP_NOP9",
    "OP_NOP10",
    "OP_CHECKSIGADD",
];

/// Core's `GetOpName` for a non-push opcode.
fn op_name(op: u8) -> &'static str {
    const SMALL: [&str; 16] = [
        "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    ];
    match op {
        0x4c => "OP_PUSHDATA1",
        0x4d => "OP_PUSHDATA2",
        0x4e => "OP_PUSHDATA4",
        0x4f => "-1",
        0x50 => "OP_RESERVED",
        0x51..=0x60 => SMALL[usize::from(op - 0x51)],
        0x61..=0xba => OP_NAMES[usize::from(op - 0x61)],
        0xff => "OP_INVALIDOPCODE",
        _ => "OP_UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::ScriptBuf;

    fn script(hex: &str) -> ScriptBuf {
        ScriptBuf::from_hex(hex).unwrap()
    }

    #[test]
    fn p2wpkh_output_matches_transcript() {
        let json = script_pubkey_json(&script("0014c112ded4ce75a38fc701f16ff51532d83153ad70"));
        assert_eq!(json.asm, "0 c112ded4ce75a38fc701f16ff51532d83153ad70");
        assert_eq!(
            json.desc,
            "addr(bcrt1qcyfda4xwwk3cl3cp79hl29fjmqc48ttstju6cq)#8590c3ln"
        );
        assert_eq!(
            json.address.as_deref(),
            Some("bcrt1qcyfda4xwwk3cl3cp79hl29fjmqc48ttstju6cq")
        );
        assert_eq!(json.kind, "witness_v0_keyhash");
    }

    #[test]
    fn op_return_output_matches_transcript() {
        let hex = "6a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf9";
        let json = script_pubkey_json(&script(hex));
        assert_eq!(
            json.asm,
            "OP_RETURN aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf9"
        );
        assert_eq!(json.desc, format!("raw({hex})#cav96mf3"));
        assert_eq!(json.address, None);
        assert_eq!(json.kind, "nulldata");
    }

    #[test]
    fn small_pushes_are_numbers_and_small_ints_are_digits() {
        // OP_2 <0x0100 LE = 1> <0x81 = -1> OP_1NEGATE OP_CHECKSEQUENCEVERIFY
        assert_eq!(
            asm(&script("5202010001814fb2"), false),
            "2 1 -1 -1 OP_CHECKSEQUENCEVERIFY"
        );
        assert_eq!(asm(&script("4c"), false), "[error]");
    }

    #[test]
    fn scriptsig_signature_shows_sighash_name() {
        let sig = "3044022025626384ea956aaf167f3e411b9355882b30c3f60789410434b1cce65954b48a02203b4c44b556d4d2f0709535bef3565b1c978e76e39e61af841e1abe1195b2248401";
        let s = script(&format!("47{sig}"));
        assert_eq!(asm(&s, true), format!("{}[ALL]", &sig[..sig.len() - 2]));
        assert_eq!(asm(&s, false), sig);
    }

    #[test]
    fn types_of_common_scripts() {
        let key = "022b0f186b221713d901e8709376e86dcd0c6b707ae6e0203cd001b1a0b0f36aa7";
        assert_eq!(classify(&script(&format!("21{key}ac"))), ScriptType::PubKey);
        let pk = script_pubkey_json(&script(&format!("21{key}ac")));
        assert!(pk.desc.starts_with(&format!("pk({key})#")));
        assert_eq!(pk.address, None);
        assert_eq!(
            classify(&script(&format!("5121{key}51ae"))),
            ScriptType::Multisig { required: 1 }
        );
        assert_eq!(classify(&script("51024e73")), ScriptType::Anchor);
        assert_eq!(
            classify(&script("a914c112ded4ce75a38fc701f16ff51532d83153ad7087")),
            ScriptType::ScriptHash
        );
        assert_eq!(
            classify(&script(
                "76a914c112ded4ce75a38fc701f16ff51532d83153ad7088ac"
            )),
            ScriptType::PubKeyHash
        );
        assert_eq!(classify(&script("ac")), ScriptType::NonStandard);
    }
}
