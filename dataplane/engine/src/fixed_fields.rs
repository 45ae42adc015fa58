//! The fast path's fixed header fields, checked as a few masked compares of whole words.
//!
//! Every frame [`Engine::plan`](crate::Engine::plan) takes has the same values in a dozen places
//! of its outer headers: the ethertype, IPv4 without options, not a fragment, UDP to our GUE port,
//! GUE variant 0 carrying a data message of inner IPv4 without flags, chain version 0 with its
//! reserved byte clear. Compared one by one, those are a dozen loads and branches for every
//! frame; here they are four 8-byte loads, XORed with the expected values, masked and ORed into
//! one word that is zero only if every field matches: one branch. Fields whose expected value
//! depends on the frame (hlen against the hop count) or on a list (our addresses) are left to the
//! plan.

use crate::rewrite::{CHAIN, GUE, OUTER_IP, OUTER_UDP};
use crate::wire::{ethertype, ip_proto};

/// Where the compared words start in the frame: Ethernet type to the IP identification, the IP
/// flags to the source address, the UDP header, the GUE header and the chain header. All end by
/// [`HOPS`](crate::rewrite::HOPS), which a planned frame always reaches.
const WORDS: [usize; 4] = [12, OUTER_IP + 6, OUTER_UDP, GUE];

/// The expected bytes and the masks of the fixed fields, as words at [`WORDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FixedFields {
    want: [u64; WORDS.len()],
    mask: [u64; WORDS.len()],
}

impl FixedFields {
    /// The fixed fields of a GUE frame to `port`.
    pub(crate) fn new(port: u16) -> Self {
        let [type_hi, type_lo] = ethertype::IPV4.to_be_bytes();
        let [port_hi, port_lo] = port.to_be_bytes();
        // (frame offset, mask, value)
        let bytes = [
            (12, 0xff, type_hi),
            (13, 0xff, type_lo),
            // Version 4, a 20-byte header.
            (OUTER_IP, 0xff, 0x45),
            // More fragments (0x20) and the fragment offset (the low 5 bits and the next byte);
            // don't fragment (0x40) may be set.
            (OUTER_IP + 6, 0x3f, 0),
            (OUTER_IP + 7, 0xff, 0),
            (OUTER_IP + 9, 0xff, ip_proto::UDP),
            // The destination port.
            (OUTER_UDP + 2, 0xff, port_hi),
            (OUTER_UDP + 3, 0xff, port_lo),
            // Variant 0 (0xc0), a data message (control bit 0x20); hlen is the plan's to check.
            (GUE, 0xe0, 0),
            (GUE + 1, 0xff, ip_proto::IPIP),
            // No GUE flags.
            (GUE + 2, 0xff, 0),
            (GUE + 3, 0xff, 0),
            // Chain version 0 (the high nibble); the flags below it are read where they matter.
            (CHAIN, 0xf0, 0),
            // The reserved byte.
            (CHAIN + 1, 0xff, 0),
        ];
        let mut want = [[0u8; 8]; WORDS.len()];
        let mut mask = [[0u8; 8]; WORDS.len()];
        for (at, byte_mask, value) in bytes {
            let (word, start) = WORDS
                .iter()
                .enumerate()
                .find(|(_, &start)| (start..start + 8).contains(&at))
                .map(|(word, &start)| (word, start))
                .expect("every fixed byte lies in a compared word");
            want[word][at - start] = value;
            mask[word][at - start] = byte_mask;
        }
        Self {
            want: want.map(u64::from_ne_bytes),
            mask: mask.map(u64::from_ne_bytes),
        }
    }

    /// True when every fixed field of `frame` has its expected value (false for a frame too
    /// short to hold them).
    #[inline(always)]
    pub(crate) fn match_frame(&self, frame: &[u8]) -> bool {
        let mut differ = 0;
        for ((&at, want), mask) in WORDS.iter().zip(self.want).zip(self.mask) {
            let Some(word) = frame.get(at..).and_then(<[u8]>::first_chunk::<8>) else {
                return false;
            };
            differ |= (u64::from_ne_bytes(*word) ^ want) & mask;
        }
        differ == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::HOPS;
    use chance_testkit::gue::{GueFrame, ENCAP_PORT};
    use chance_testkit::inner::{self, ACK};
    use core::net::Ipv4Addr;

    fn frame() -> Vec<u8> {
        let inner = inner::Ipv4Packet::new(
            Ipv4Addr::new(198, 51, 100, 7),
            Ipv4Addr::new(203, 0, 113, 10),
            inner::L4::tcp(40000, 443, ACK),
        )
        .build();
        GueFrame::ipv4(inner)
            .hops(&[Ipv4Addr::new(192, 0, 2, 21)])
            .build()
    }

    #[test]
    fn the_compared_words_end_by_the_hop_list() {
        assert!(WORDS.iter().all(|&at| at + 8 <= HOPS));
    }

    #[test]
    fn a_gue_frame_to_our_port_matches_and_another_port_does_not() {
        let frame = frame();
        assert!(FixedFields::new(ENCAP_PORT).match_frame(&frame));
        assert!(!FixedFields::new(ENCAP_PORT + 1).match_frame(&frame));
        assert!(!FixedFields::new(ENCAP_PORT).match_frame(&frame[..HOPS - 1]));
    }

    #[test]
    fn each_fixed_byte_is_compared_and_the_free_bits_are_not() {
        let fixed = FixedFields::new(ENCAP_PORT);
        let frame = frame();
        // (offset, bits that may change without mattering here)
        let free_bits = |at: usize| match at {
            12 | 13 | 14 | 21 | 23 | 36 | 37 | 43 | 44 | 45 | 47 => 0,
            20 => 0xc0, // DF and the reserved flag
            42 => 0x1f, // hlen
            46 => 0x0f, // the chain's flags
            _ => 0xff,
        };
        for at in 0..HOPS {
            for bit in 0..8 {
                let mut changed = frame.clone();
                changed[at] ^= 1 << bit;
                let free = free_bits(at) & (1 << bit) != 0;
                assert_eq!(fixed.match_frame(&changed), free, "byte {at} bit {bit}");
            }
        }
    }
}
