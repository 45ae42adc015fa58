//! Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Written by hand rather than taken from `internet-checksum`: the engine needs exactly the
//! two functions below, on the hot path, and the property tests pin them against each other.

/// One's-complement sum of `data` as 16-bit big-endian words (an odd tail byte is padded with
/// zero), folded to 16 bits, not yet complemented.
///
/// Eight bytes at a time: the one's-complement sum does not depend on byte order (RFC 1071
/// §2(B)), so whole 8-byte words are added in the machine's order with an end-around carry,
/// the tail zero-padded to one more word, and the total folded to 16 bits in fixed steps and
/// swapped back. On a full-size frame this is a quarter of the additions of a word-by-word loop.
pub fn sum(data: &[u8]) -> u16 {
    let mut wide: u64 = 0;
    let mut words = data.chunks_exact(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        wide = add_carry(wide, u64::from_ne_bytes(bytes));
    }
    // The tail starts 8-byte aligned within `data`, so zero-padded to a whole word it adds the
    // same 16-bit words (an odd last byte as the high byte of its word, as RFC 1071 pads it).
    // Read as at most three loads (4, 2, 1 bytes), where a copy would call memcpy for these few
    // bytes; assembled little-endian, then put in the machine's order.
    let mut rest = words.remainder();
    let mut tail = 0u64;
    let mut shift = 0;
    if let Some((four, after)) = rest.split_first_chunk::<4>() {
        tail = u64::from(u32::from_le_bytes(*four));
        shift = 32;
        rest = after;
    }
    if let Some((two, after)) = rest.split_first_chunk::<2>() {
        tail |= u64::from(u16::from_le_bytes(*two)) << shift;
        shift += 16;
        rest = after;
    }
    if let Some(&last) = rest.first() {
        tail |= u64::from(last) << shift;
    }
    let tail = u64::from_le(tail);
    wide = add_carry(wide, tail);
    // 64 -> 16 bits with end-around carries: 33 bits, then 18, 17, 16 at most.
    let mut folded = (wide >> 32) + (wide & 0xffff_ffff);
    folded = (folded >> 16) + (folded & 0xffff);
    folded = (folded >> 16) + (folded & 0xffff);
    folded = (folded >> 16) + (folded & 0xffff);
    // The sum of words read in the machine's order is the big-endian sum read that way.
    u16::from_be(folded as u16)
}

/// `a + b` with the carry out added back in (one's-complement addition on 64 bits).
#[inline]
fn add_carry(a: u64, b: u64) -> u64 {
    let (total, carry) = a.overflowing_add(b);
    total + u64::from(carry)
}

/// The Internet checksum of `data`: the complement of its one's-complement sum.
pub fn checksum(data: &[u8]) -> u16 {
    !sum(data)
}

/// Folds a 32-bit one's-complement sum to 16 bits. Two steps always suffice (the first leaves at
/// most 0x1fffe, the second at most 0xffff), so no loop: the forward paths run it per packet.
#[inline(always)]
pub fn fold(acc: u32) -> u16 {
    let acc = (acc & 0xffff) + (acc >> 16);
    ((acc & 0xffff) + (acc >> 16)) as u16
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
    fn two_folds_reduce_any_32_bit_sum_as_folding_until_it_fits() {
        fn folded_until_it_fits(mut acc: u32) -> u16 {
            while acc > 0xffff {
                acc = (acc & 0xffff) + (acc >> 16);
            }
            acc as u16
        }
        let edges = [
            0,
            1,
            0xffff,
            0x1_0000,
            0x1_fffe,
            0x1_ffff,
            0xffff_0000,
            u32::MAX,
        ];
        let spread = (0..=u32::MAX).step_by(65_521);
        for acc in edges.into_iter().chain(spread) {
            assert_eq!(fold(acc), folded_until_it_fits(acc), "{acc:#x}");
        }
    }

    #[test]
    fn rfc1071_example_sums_to_the_documented_value() {
        // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
        assert_eq!(
            sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    /// The definition, one big-endian 16-bit word at a time.
    fn sum_word_by_word(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        let mut words = data.chunks_exact(2);
        for word in &mut words {
            acc += u64::from(u16::from_be_bytes([word[0], word[1]]));
        }
        if let [last] = words.remainder() {
            acc += u64::from(*last) << 8;
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    proptest::proptest! {
        #[test]
        fn eight_bytes_at_a_time_sums_as_word_by_word(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..1600),
        ) {
            proptest::prop_assert_eq!(sum(&data), sum_word_by_word(&data));
        }
    }

    #[test]
    fn all_ones_words_sum_as_word_by_word() {
        // The end-around carries at every width: 0xff bytes of every length up to 64.
        for len in 0..64 {
            let data = vec![0xffu8; len];
            assert_eq!(sum(&data), sum_word_by_word(&data), "{len} bytes");
        }
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
