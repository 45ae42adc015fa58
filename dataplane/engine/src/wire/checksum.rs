//! Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Written by hand rather than taken from `internet-checksum`: the engine needs exactly the
//! two functions below, on the hot path, and the property tests pin them against each other.

/// One's-complement sum of `data` as 16-bit big-endian words (an odd tail byte is padded with
/// zero), folded to 16 bits, not yet complemented.
pub fn sum(data: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for word in &mut chunks {
        acc += u32::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    fold(acc)
}

/// The Internet checksum of `data`: the complement of its one's-complement sum.
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

#[inline]
fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')` for one 16-bit word changing from `old` to `new`.
#[inline]
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    let acc = u32::from(!check) + u32::from(!old) + u32::from(new);
    !fold(acc)
}

/// RFC 1624 for a 32-bit field (an IPv4 address) changing from `old` to `new`.
#[inline]
pub fn update32(check: u16, old: u32, new: u32) -> u16 {
    let acc = u32::from(!check)
        + u32::from(!(old >> 16) as u16)
        + u32::from(!old as u16)
        + (new >> 16)
        + (new & 0xffff);
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_sums_to_the_documented_value() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
        assert_eq!(
            sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn odd_length_pads_the_last_byte_with_zero() {
        assert_eq!(sum(&[0x12, 0x34, 0x56]), sum(&[0x12, 0x34, 0x56, 0x00]));
    }

    #[test]
    fn selftest_forward_checksum_update_gives_80fd() {
        // The selftest's forward (docs/compatibility.md): check 0x0000, saddr 0.0.0.0 -> daddr
        // 127.0.0.1 -> hop 127.0.0.2. The net change is "old saddr -> next hop".
        assert_eq!(update32(0x0000, 0x0000_0000, 0x7f00_0002), 0x80fd);
    }

    #[test]
    fn incremental_update_matches_full_recompute() {
        let mut header = [
            0x45, 0x00, 0x00, 0x54, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let check = checksum(&header);
        header[10..12].copy_from_slice(&check.to_be_bytes());
        let updated = update32(check, 0xc0a8_0001, 0x0a00_0001);
        header[12..16].copy_from_slice(&0x0a00_0001u32.to_be_bytes());
        header[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(updated, checksum(&header));
    }
}
