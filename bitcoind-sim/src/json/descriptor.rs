//! Output descriptor checksums (BIP-380 "Descriptor checksum"), as Core appends them after `#`.

/// Characters a descriptor may contain; a character's position selects its symbol group.
const INPUT_CHARSET: &str = "0123456789()[],'/*abcdefgh@:$%{}IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~ijklmnopqrstuvwxyzABCDEFGH`#\"\\ ";
/// The checksum alphabet (bech32's).
const CHECKSUM_CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
/// BCH code generator of BIP-380.
const GENERATOR: [u64; 5] = [
    0xf5dee51989,
    0xa9fdca3312,
    0x1bab10e32d,
    0x3706b1677a,
    0x644d626ffd,
];

fn polymod(mut c: u64, value: u64) -> u64 {
    let top = c >> 35;
    c = ((c & 0x7_ffff_ffff) << 5) ^ value;
    for (i, g) in GENERATOR.iter().enumerate() {
        if (top >> i) & 1 == 1 {
            c ^= g;
        }
    }
    c
}

/// The 8-character checksum of `descriptor`, `None` if it holds a character outside the charset.
pub fn checksum(descriptor: &str) -> Option<String> {
    let mut c = 1u64;
    let mut class = 0u64;
    let mut class_count = 0;
    for ch in descriptor.chars() {
        let position = INPUT_CHARSET.find(ch)? as u64;
        c = polymod(c, position & 31);
        class = class * 3 + (position >> 5);
        class_count += 1;
        if class_count == 3 {
            c = polymod(c, class);
            class = 0;
            class_count = 0;
        }
    }
    if class_count > 0 {
        c = polymod(c, class);
    }
    for _ in 0..8 {
        c = polymod(c, 0);
    }
    c ^= 1;
    Some(
        (0..8)
            .map(|j| char::from(CHECKSUM_CHARSET[((c >> (5 * (7 - j))) & 31) as usize]))
            .collect(),
    )
}

/// `descriptor#checksum` (the descriptor alone if it cannot be checksummed).
pub fn with_checksum(descriptor: &str) -> String {
    match checksum(descriptor) {
        Some(sum) => format!("{descriptor}#{sum}"),
        None => descriptor.to_owned(),
    }
}

/// Splits `desc#checksum`, verifying the checksum when present. `None` when it is wrong.
pub fn strip_checksum(text: &str) -> Option<&str> {
    match text.split_once('#') {
        None => Some(text),
        Some((desc, sum)) => (checksum(desc).as_deref() == Some(sum)).then_some(desc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_of_transcript_descriptors() {
        assert_eq!(
            checksum("addr(bcrt1qcyfda4xwwk3cl3cp79hl29fjmqc48ttstju6cq)").as_deref(),
            Some("8590c3ln")
        );
        assert_eq!(
            checksum("addr(bcrt1q5vewg95qt290ckp98n3clyequgn0g5vdywz4e8)").as_deref(),
            Some("njtj8eqz")
        );
        assert_eq!(
            checksum(
                "raw(6a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf9)"
            )
            .as_deref(),
            Some("cav96mf3")
        );
    }

    #[test]
    fn strip_checksum_rejects_a_wrong_one() {
        let good = "addr(bcrt1qcyfda4xwwk3cl3cp79hl29fjmqc48ttstju6cq)#8590c3ln";
        assert_eq!(
            strip_checksum(good),
            Some("addr(bcrt1qcyfda4xwwk3cl3cp79hl29fjmqc48ttstju6cq)")
        );
        assert_eq!(strip_checksum("addr(x)#qqqqqqqq"), None);
        assert_eq!(strip_checksum("raw(00)"), Some("raw(00)"));
    }
}
