//! The flow hash of four IPv4 flows at once: SipHash-2-4 in four 64-bit lanes.
//!
//! A burst's common frames (see [`crate::fast`]) all hash an input of the same shape: at most
//! 12 bytes, their number fixed by the hash fields (IPv4 with ports). So the same SipRounds run
//! for each of them, and four of them run side by side: each state word is a `[u64; 4]`, one
//! lane a flow, each lane keyed by its own table. The code is the scalar hasher's
//! ([`SipState`] over [`SipWord`]) on lanes whose operations are plain loops over the array;
//! LLVM turns each into one 256-bit instruction when the caller is compiled with AVX2 (the
//! runtime compiles the burst's preparation so, see docs/director-packet-path.md), and into
//! pairs of 128-bit ones otherwise. The output is [`FlowHasher::hash`]'s, lane for lane (the
//! property tests below pin both against `siphasher`).

use crate::flow_hash::{FlowFields, HashFields};
use crate::flow_hasher::{v4_input, FlowHasher, SipState, SipWord};

/// Flows hashed side by side: four 64-bit lanes fill one AVX2 register.
pub(crate) const LANES: usize = 4;

/// One 64-bit word per lane.
type Lanes = [u64; LANES];

/// `f` applied lane by lane: written out, so that LLVM sees four independent operations.
#[inline(always)]
fn lanewise(a: Lanes, b: Lanes, f: impl Fn(u64, u64) -> u64) -> Lanes {
    [f(a[0], b[0]), f(a[1], b[1]), f(a[2], b[2]), f(a[3], b[3])]
}

impl SipWord for Lanes {
    #[inline(always)]
    fn splat(word: u64) -> Self {
        [word; LANES]
    }
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        lanewise(self, other, u64::wrapping_add)
    }
    #[inline(always)]
    fn xor(self, other: Self) -> Self {
        lanewise(self, other, |a, b| a ^ b)
    }
    #[inline(always)]
    fn rotl(self, bits: u32) -> Self {
        lanewise(self, self, |a, _| a.rotate_left(bits))
    }
}

/// Up to [`LANES`] IPv4 flows gathered for hashing: each lane's keyed state and input.
#[derive(Debug, Clone, Copy)]
pub(crate) struct V4Lanes {
    state: SipState<Lanes>,
    /// Each lane's input, as [`v4_input`] lays it out.
    inputs: [u128; LANES],
    /// Lanes filled.
    filled: usize,
}

impl V4Lanes {
    /// No lane filled.
    #[inline(always)]
    pub(crate) fn new() -> Self {
        Self {
            state: SipState {
                v0: [0; LANES],
                v1: [0; LANES],
                v2: [0; LANES],
                v3: [0; LANES],
            },
            inputs: [0; LANES],
            filled: 0,
        }
    }

    /// Lanes filled.
    #[inline(always)]
    pub(crate) fn filled(&self) -> usize {
        self.filled
    }

    /// Puts `flow` (IPv4), to be hashed over `fields` with `hasher`'s key, in the next lane.
    /// False, with nothing put, when every lane is full.
    #[inline(always)]
    pub(crate) fn push(
        &mut self,
        hasher: &FlowHasher,
        flow: &FlowFields,
        fields: HashFields,
    ) -> bool {
        let lane = self.filled;
        let Some(input) = self.inputs.get_mut(lane) else {
            return false;
        };
        *input = v4_input(flow, fields).0;
        let initial = hasher.initial();
        self.state.v0[lane] = initial.v0;
        self.state.v1[lane] = initial.v1;
        self.state.v2[lane] = initial.v2;
        self.state.v3[lane] = initial.v3;
        self.filled += 1;
        true
    }

    /// Every lane's hash over `fields` (the fields each flow was pushed with): lane `i` holds
    /// [`FlowHasher::hash`] of the `i`th flow pushed. Lanes not filled hash nothing that
    /// matters (their result is to be ignored).
    #[inline(always)]
    pub(crate) fn hash(&self, fields: HashFields) -> Lanes {
        let len = v4_input_len(fields);
        let mut state = self.state;
        let low = self.inputs.map(|input| input as u64);
        if len >= 8 {
            state.compress(low);
            state.finish(self.inputs.map(|input| (input >> 64) as u64), len)
        } else {
            state.finish(low, len)
        }
    }
}

/// Bytes of an IPv4 flow's hash input over `fields`.
#[inline(always)]
fn v4_input_len(fields: HashFields) -> u32 {
    4 * (u32::from(fields.src_addr) + u32::from(fields.dst_addr))
        + 2 * (u32::from(fields.src_port) + u32::from(fields.dst_port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow_hash::MAX_INPUT_LEN;
    use crate::flow_hasher::tests::every_field_combination;
    use proptest::prelude::*;
    use siphasher::sip::SipHasher24;

    fn v4_flow(src: [u8; 4], dst: [u8; 4], ports: ([u8; 2], [u8; 2])) -> FlowFields {
        // What classification leaves past an IPv4 address; the hash must not read it.
        let mut flow = FlowFields {
            ipv6: false,
            src_addr: [0xa5; 16],
            dst_addr: [0x5a; 16],
            src_port: ports.0,
            dst_port: ports.1,
        };
        flow.src_addr[..4].copy_from_slice(&src);
        flow.dst_addr[..4].copy_from_slice(&dst);
        flow
    }

    #[test]
    fn the_input_length_is_what_the_input_layout_counts() {
        let flow = v4_flow([1; 4], [2; 4], ([3; 2], [4; 2]));
        for fields in every_field_combination() {
            assert_eq!(
                v4_input_len(fields),
                v4_input(&flow, fields).1,
                "{fields:?}"
            );
        }
    }

    #[test]
    fn a_fifth_flow_finds_no_lane() {
        let hasher = FlowHasher::new_with_key(&[7; 16]);
        let flow = v4_flow([1; 4], [2; 4], ([3; 2], [4; 2]));
        let mut lanes = V4Lanes::new();
        for _ in 0..LANES {
            assert!(lanes.push(&hasher, &flow, HashFields::default()));
        }
        assert!(!lanes.push(&hasher, &flow, HashFields::default()));
        assert_eq!(lanes.filled(), LANES);
    }

    proptest! {
        #[test]
        fn each_lane_hashes_as_the_scalar_hasher_and_siphasher(
            flows in proptest::collection::vec(
                (any::<[u8; 16]>(), any::<[u8; 4]>(), any::<[u8; 4]>(), any::<([u8; 2], [u8; 2])>()),
                1..=LANES,
            ),
        ) {
            for fields in every_field_combination() {
                let mut lanes = V4Lanes::new();
                for (key, src, dst, ports) in &flows {
                    let hasher = FlowHasher::new_with_key(key);
                    prop_assert!(lanes.push(&hasher, &v4_flow(*src, *dst, *ports), fields));
                }
                let hashes = lanes.hash(fields);
                for (lane, (key, src, dst, ports)) in flows.iter().enumerate() {
                    let flow = v4_flow(*src, *dst, *ports);
                    let mut buf = [0; MAX_INPUT_LEN];
                    let len = flow.hash_input(fields, &mut buf);
                    let reference = SipHasher24::new_with_key(key).hash(&buf[..len]);
                    let scalar = FlowHasher::new_with_key(key).hash(&flow, fields);
                    prop_assert_eq!(scalar, reference, "{:?}", fields);
                    prop_assert_eq!(hashes[lane], reference, "lane {} {:?}", lane, fields);
                }
            }
        }
    }
}
