//! The flow hash's SipHash-2-4, specialised to the packet path's inputs.
//!
//! This is a hand-written specialisation of the algorithm the `siphasher` crate implements, not a
//! new hash: the output is SipHash-2-4 bit for bit (GLB compatibility needs exactly that), and
//! `siphasher` stays the reference (the table builder and the rendezvous scores use it, and the
//! property tests below pin this hasher against `SipHasher24::hash` of
//! [`FlowFields::hash_input`]). It exists because of what the crate's streaming `Hasher` costs
//! on inputs of 4 to 36 bytes: every `write` goes through its tail buffer and length
//! bookkeeping, and with the test of each field that came to about 50 instructions a packet
//! besides the six rounds (84). For GLB's default this hasher spends about 19 besides them.
//!
//! Two things make the specialisation possible:
//!
//! - SipHash's initial state `v0..v3` depends on the key alone, so [`FlowHasher::new_with_key`]
//!   computes it once per table and every packet starts from a copy.
//! - The input's shape is known from the fields switched on and the address family: addresses
//!   come first, and an IPv6 address is two whole 8-byte words; every IPv4 input fits in 12
//!   bytes. So the input is always a few whole little-endian words (compressed as they come)
//!   and a tail of fewer than 8 bytes that goes into SipHash's final block with the length
//!   byte. For GLB's default (`src_addr` on IPv4) that is the final block alone: the address's
//!   4 bytes and `4 << 56`, two compression rounds, four finalisation rounds, nothing else.

use crate::flow_hash::{FlowFields, HashFields};

/// SipHash-2-4 keyed once, for hashing flows: the state after the key, before any input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowHasher {
    initial: SipState,
}

impl FlowHasher {
    /// The hasher for `key` (a table's `hash_key`), read as SipHash reads it: two
    /// little-endian 64-bit halves.
    pub fn new_with_key(key: &[u8; 16]) -> Self {
        let (k0, k1) = le_words(key);
        Self {
            initial: SipState {
                v0: k0 ^ 0x736f_6d65_7073_6575,
                v1: k1 ^ 0x646f_7261_6e64_6f6d,
                v2: k0 ^ 0x6c79_6765_6e65_7261,
                v3: k1 ^ 0x7465_6462_7974_6573,
            },
        }
    }

    /// SipHash-2-4 of `flow`'s [`hash_input`](FlowFields::hash_input) for `fields`.
    #[inline(always)]
    pub fn hash(&self, flow: &FlowFields, fields: HashFields) -> u64 {
        if is_src_addr_only(fields) && !flow.ipv6 {
            // GLB's default, checked first so that it inlines into the route alone: the input
            // is the address's 4 bytes, all of it in the final block.
            return self.initial.finish(u64::from(ipv4_word(&flow.src_addr)), 4);
        }
        self.hash_words(flow, fields)
    }

    /// [`hash`](Self::hash) for any fields and either family: the input as whole words, then
    /// the final block.
    #[inline(never)]
    fn hash_words(&self, flow: &FlowFields, fields: HashFields) -> u64 {
        let mut state = self.initial;
        let ports = Ports::of(flow, fields);
        if flow.ipv6 {
            // Whole words: each address is two, then the ports (0, 2 or 4 bytes) are the tail.
            let mut len = ports.len;
            if fields.src_addr {
                state.compress_addr(&flow.src_addr);
                len += 16;
            }
            if fields.dst_addr {
                state.compress_addr(&flow.dst_addr);
                len += 16;
            }
            state.finish(ports.bytes, len)
        } else {
            // At most 12 bytes: a whole word when there are 8 or more, and the rest is the tail.
            let (input, len) = v4_input(V4Flow::of(flow), fields);
            if len >= 8 {
                state.compress(input as u64);
                state.finish((input >> 64) as u64, len)
            } else {
                state.finish(input as u64, len)
            }
        }
    }

    /// The state after the key, where the lanes of [`crate::flow_lanes`] start.
    #[inline(always)]
    pub(crate) fn initial(&self) -> &SipState {
        &self.initial
    }
}

/// An IPv4 flow's fields as the hash reads them: each field's bytes as they come, read as a
/// little-endian integer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct V4Flow {
    pub src: u32,
    pub dst: u32,
    pub src_port: u16,
    pub dst_port: u16,
}

impl V4Flow {
    /// `flow`'s fields (an IPv4 flow: the first 4 bytes of each address).
    #[inline(always)]
    pub(crate) fn of(flow: &FlowFields) -> Self {
        Self {
            src: ipv4_word(&flow.src_addr),
            dst: ipv4_word(&flow.dst_addr),
            src_port: u16::from_le_bytes(flow.src_port),
            dst_port: u16::from_le_bytes(flow.dst_port),
        }
    }
}

/// An IPv4 flow's hash input for `fields`: its at most 12 bytes laid out little-endian in one
/// 128-bit value (the first word in the low half), and their number.
#[inline(always)]
pub(crate) fn v4_input(flow: V4Flow, fields: HashFields) -> (u128, u32) {
    let ports = Ports::new(flow.src_port, flow.dst_port, fields);
    let mut input = 0u128;
    let mut len = 0;
    if fields.src_addr {
        input = u128::from(flow.src);
        len = 4;
    }
    if fields.dst_addr {
        input |= u128::from(flow.dst) << (8 * len);
        len += 4;
    }
    input |= u128::from(ports.bytes) << (8 * len);
    (input, len + ports.len)
}

/// The ports switched on, as the input's last bytes: little-endian in the low `len` bytes.
struct Ports {
    bytes: u64,
    len: u32,
}

impl Ports {
    #[inline(always)]
    fn of(flow: &FlowFields, fields: HashFields) -> Self {
        Self::new(
            u16::from_le_bytes(flow.src_port),
            u16::from_le_bytes(flow.dst_port),
            fields,
        )
    }

    /// The ports given as [`V4Flow`] holds them.
    #[inline(always)]
    fn new(src_port: u16, dst_port: u16, fields: HashFields) -> Self {
        let mut ports = Ports { bytes: 0, len: 0 };
        if fields.src_port {
            ports.bytes = u64::from(src_port);
            ports.len = 2;
        }
        if fields.dst_port {
            ports.bytes |= u64::from(dst_port) << (8 * ports.len);
            ports.len += 2;
        }
        ports
    }
}

/// Whether `fields` is GLB's default, `src_addr` alone: its four flags read as one word, which
/// is one compare where `==` on the struct was four.
#[inline(always)]
pub(crate) fn is_src_addr_only(fields: HashFields) -> bool {
    let flags = [
        fields.src_addr,
        fields.dst_addr,
        fields.src_port,
        fields.dst_port,
    ];
    u32::from_le_bytes(flags.map(u8::from)) == 1
}

/// An IPv4 address's 4 bytes (the first of the 16 kept), little-endian.
#[inline(always)]
pub(crate) fn ipv4_word(addr: &[u8; 16]) -> u32 {
    let [a0, a1, a2, a3, ..] = *addr;
    u32::from_le_bytes([a0, a1, a2, a3])
}

/// 16 bytes as two little-endian 64-bit words, as SipHash reads its key and its input.
#[inline(always)]
fn le_words(bytes: &[u8; 16]) -> (u64, u64) {
    let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7] = *bytes;
    (
        u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
    )
}

/// SipHash's four state words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SipState {
    pub(crate) v0: u64,
    pub(crate) v1: u64,
    pub(crate) v2: u64,
    pub(crate) v3: u64,
}

impl SipState {
    /// One SipRound.
    #[inline(always)]
    fn round(&mut self) {
        self.v0 = self.v0.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(13) ^ self.v0;
        self.v0 = self.v0.rotate_left(32);
        self.v2 = self.v2.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(16) ^ self.v2;
        self.v0 = self.v0.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(21) ^ self.v0;
        self.v2 = self.v2.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(17) ^ self.v2;
        self.v2 = self.v2.rotate_left(32);
    }

    /// Takes in one 8-byte word of input (little-endian): two compression rounds.
    #[inline(always)]
    pub(crate) fn compress(&mut self, word: u64) {
        self.v3 ^= word;
        self.round();
        self.round();
        self.v0 ^= word;
    }

    /// Takes in an IPv6 address: two whole words.
    #[inline(always)]
    fn compress_addr(&mut self, addr: &[u8; 16]) {
        let (first, second) = le_words(addr);
        self.compress(first);
        self.compress(second);
    }

    /// The final block (the `tail` bytes after the last whole word, and the input's length in
    /// its top byte), then the four finalisation rounds.
    #[inline(always)]
    pub(crate) fn finish(mut self, tail: u64, len: u32) -> u64 {
        self.compress(tail | u64::from(len) << 56);
        self.v2 ^= 0xff;
        self.round();
        self.round();
        self.round();
        self.round();
        self.v0 ^ self.v1 ^ self.v2 ^ self.v3
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::flow_hash::MAX_INPUT_LEN;
    use siphasher::sip::SipHasher24;

    /// Every combination of fields, the empty one included (the hasher does not need a field).
    pub(crate) fn every_field_combination() -> impl Iterator<Item = HashFields> {
        (0..16u8).map(|bits| HashFields {
            src_addr: bits & 1 != 0,
            dst_addr: bits & 2 != 0,
            src_port: bits & 4 != 0,
            dst_port: bits & 8 != 0,
        })
    }

    #[test]
    fn the_siphash_paper_vector_comes_out_of_the_keyed_state() {
        // SipHash-2-4 paper, appendix A: key 00..0f, message 00..0e -> 0xa129ca6149be45e5: one
        // whole word (bytes 0-7), then the final block with the 7 bytes left and length 15.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let mut state = FlowHasher::new_with_key(&key).initial;
        state.compress(u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]));
        let tail = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 0]);
        assert_eq!(state.finish(tail, 15), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn glb_default_ipv4_source_address_hashes_as_siphash_of_its_four_bytes() {
        let key: [u8; 16] = core::array::from_fn(|i| (i * 7) as u8);
        let mut flow = FlowFields {
            ipv6: false,
            src_addr: [0; 16],
            dst_addr: [0; 16],
            src_port: [0xb2, 0x6e],
            dst_port: [0, 80],
        };
        flow.src_addr[..4].copy_from_slice(&[10, 11, 12, 13]);
        assert_eq!(
            FlowHasher::new_with_key(&key).hash(&flow, HashFields::default()),
            SipHasher24::new_with_key(&key).hash(&[10, 11, 12, 13])
        );
    }

    proptest::proptest! {
        #[test]
        fn every_field_combination_hashes_as_siphasher_over_the_input_bytes(
            key in proptest::prelude::any::<[u8; 16]>(),
            ipv6 in proptest::prelude::any::<bool>(),
            src_addr in proptest::prelude::any::<[u8; 16]>(),
            dst_addr in proptest::prelude::any::<[u8; 16]>(),
            ports in proptest::prelude::any::<([u8; 2], [u8; 2])>(),
        ) {
            let mut flow = FlowFields { ipv6, src_addr, dst_addr, src_port: ports.0, dst_port: ports.1 };
            if !ipv6 {
                // What classification leaves there; the hash must not read it anyway.
                flow.src_addr[4..].fill(0xa5);
                flow.dst_addr[4..].fill(0x5a);
            }
            let hasher = FlowHasher::new_with_key(&key);
            let reference = SipHasher24::new_with_key(&key);
            for fields in every_field_combination() {
                let mut buf = [0; MAX_INPUT_LEN];
                let len = flow.hash_input(fields, &mut buf);
                let expected = reference.hash(&buf[..len]);
                proptest::prop_assert_eq!(hasher.hash(&flow, fields), expected, "{:?}", fields);
                // The general routine too, where the default takes its own path.
                proptest::prop_assert_eq!(hasher.hash_words(&flow, fields), expected, "{:?}", fields);
            }
        }
    }
}
