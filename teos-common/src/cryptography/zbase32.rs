//! zbase32, the human-oriented base-32 encoding used for Lightning `signmessage` signatures.
//!
//! Alphabet `ybndrfg8ejkmcpqxot1uwisza345h769`; bits are taken most significant first, 5 per character,
//! and the last character is zero-padded; there is no `=` padding (PROTOCOL.md "Identities and
//! signatures"). A 65-byte signature is 104 characters.

/// The zbase32 alphabet: character `i` encodes the 5-bit value `i`.
pub const ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// Why a string is not zbase32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Zbase32Error {
    /// A character outside the alphabet (the encoding is case-sensitive: lowercase only).
    #[error("invalid zbase32 character {character:?} at position {position}")]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Its index in the input, in characters.
        position: usize,
    },
}

/// Encodes `data` as zbase32 text of `ceil(len * 8 / 5)` characters.
pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity((data.len() * 8).div_ceil(5));
    let mut buffer: u16 = 0;
    let mut bits: u32 = 0;
    for &byte in data {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[usize::from((buffer >> bits) & 0x1f)]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(
            ALPHABET[usize::from((buffer << (5 - bits)) & 0x1f)],
        ));
    }
    out
}

/// Decodes zbase32 text into `floor(len * 5 / 8)` bytes. Leftover bits of the last character (padding)
/// are ignored, as Lightning implementations do.
pub fn decode(text: &str) -> Result<Vec<u8>, Zbase32Error> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u16 = 0;
    let mut bits: u32 = 0;
    for (position, character) in text.chars().enumerate() {
        let value = ALPHABET
            .iter()
            .position(|&a| char::from(a) == character)
            .ok_or(Zbase32Error::InvalidCharacter {
                character,
                position,
            })?;
        // `value` < 32, the cast cannot truncate.
        buffer = (buffer << 5) | value as u16;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// Whether `text` consists only of zbase32 characters (it may still decode to an unexpected length).
pub fn is_valid(text: &str) -> bool {
    text.bytes().all(|b| ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_known_values() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(&[0]), "yy");
        assert_eq!(encode(&[0xff]), "9h");
        assert_eq!(encode(b"hello"), "pb1sa5dx");
    }

    #[test]
    fn round_trips_every_length_up_to_70_bytes() {
        for len in 0..=70usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            let text = encode(&data);
            assert_eq!(text.len(), (len * 8).div_ceil(5));
            assert!(is_valid(&text));
            assert_eq!(decode(&text).unwrap(), data, "length {len}");
        }
    }

    #[test]
    fn rejects_characters_outside_the_alphabet() {
        assert_eq!(
            decode("yyl"),
            Err(Zbase32Error::InvalidCharacter {
                character: 'l',
                position: 2
            })
        );
        assert!(decode("YY").is_err());
        assert!(decode("y y").is_err());
        assert!(!is_valid("abc0"));
    }
}
