//! The flow hash of eight IPv4 flows at once: SipHash-2-4 in eight 64-bit lanes.
//!
//! A burst's common frames (see [`crate::fast`]) all hash an input of the same shape: at most
//! 12 bytes, their number fixed by the hash fields (IPv4 with ports). So the same SipRounds run
//! for each of them, and eight of them can run side by side, all keyed by one table's key.
//! The state is kept lane by lane (`v0` of every lane, then `v1`, ...) and hashed by a loop
//! over the lanes whose body is the scalar hasher's ([`SipState`]): LLVM's loop vectoriser
//! turns that loop into one 512-bit instruction per operation when the caller is compiled with
//! AVX-512, where a rotate is one `vprolq`, or into two 256-bit ones with AVX2, where a rotate
//! by 13, 17 or 21 is two shifts and an or (the runtime compiles the burst's preparation so, see
//! docs/director-packet-path.md); it leaves the loop as eight scalar hashes otherwise (x86-64's
//! baseline has no 64-bit lane rotate worth it). The output is [`FlowHasher::hash`]'s, lane for
//! lane (the property tests below pin both against `siphasher`).

use crate::flow_hash::HashFields;
use crate::flow_hasher::{is_src_addr_only, v4_input, FlowHasher, SipState, V4Flow};

/// Flows hashed side by side: eight 64-bit lanes fill one AVX-512 register (two AVX2 ones).
/// Eight measured 1.03-1.04x the director's throughput of four with AVX-512 (BENCHMARKS.md,
/// "Director").
pub(crate) const LANES: usize = 8;

/// One 64-bit word per lane.
type Lanes = [u64; LANES];

/// The lanes' keyed states, lane by lane (`v0` of every lane, then `v1`, ...).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LaneKeys {
    v0: Lanes,
    v1: Lanes,
    v2: Lanes,
    v3: Lanes,
}

impl LaneKeys {
    /// `hasher`'s key in every lane.
    #[inline(always)]
    pub(crate) fn splat(hasher: &FlowHasher) -> Self {
        let initial = hasher.initial();
        Self {
            v0: [initial.v0; LANES],
            v1: [initial.v1; LANES],
            v2: [initial.v2; LANES],
            v3: [initial.v3; LANES],
        }
    }

    /// Lane `lane`'s state.
    #[inline(always)]
    fn state(&self, lane: usize) -> SipState {
        SipState {
            v0: self.v0[lane],
            v1: self.v1[lane],
            v2: self.v2[lane],
            v3: self.v3[lane],
        }
    }

    /// Every lane's hash of its IPv4 flow's input over `fields`, given as [`v4_words`] gives
    /// it: lane `i` holds [`FlowHasher::hash`] of the flow whose words are `low[i]` and
    /// `high[i]`.
    #[inline(always)]
    pub(crate) fn hash_v4(&self, low: &Lanes, high: &Lanes, fields: HashFields) -> Lanes {
        let len = v4_input_len(fields);
        let mut hashes = [0; LANES];
        // One loop for each input shape, so that no lane's body branches: a whole word and the
        // final block, or the final block alone.
        if len >= 8 {
            for (lane, hash) in hashes.iter_mut().enumerate() {
                let mut state = self.state(lane);
                state.compress(low[lane]);
                *hash = state.finish(high[lane], len);
            }
        } else {
            for (lane, hash) in hashes.iter_mut().enumerate() {
                *hash = self.state(lane).finish(low[lane], len);
            }
        }
        hashes
    }
}

/// An IPv4 flow's hash input over `fields` as two little-endian words: its first 8 bytes and
/// the rest (see [`v4_input`]).
#[inline(always)]
pub(crate) fn v4_words(flow: V4Flow, fields: HashFields) -> (u64, u64) {
    let input = if is_src_addr_only(fields) {
        // GLB's default, the address alone: no field to test.
        u128::from(flow.src)
    } else {
        v4_input(flow, fields).0
    };
    (input as u64, (input >> 64) as u64)
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
    use crate::flow_hash::{FlowFields, MAX_INPUT_LEN};
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
                v4_input(V4Flow::of(&flow), fields).1,
                "{fields:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn each_lane_hashes_as_the_scalar_hasher_and_siphasher(
            key in any::<[u8; 16]>(),
            flows in proptest::collection::vec(
                (any::<[u8; 4]>(), any::<[u8; 4]>(), any::<([u8; 2], [u8; 2])>()),
                1..=LANES,
            ),
        ) {
            let hasher = FlowHasher::new_with_key(&key);
            let reference = SipHasher24::new_with_key(&key);
            // Lanes past the flows (a partial group) repeat the first (their hash is ignored).
            let lane_flow = |lane: usize| {
                let (src, dst, ports) = flows.get(lane).unwrap_or(&flows[0]);
                v4_flow(*src, *dst, *ports)
            };
            for fields in every_field_combination() {
                let words: [(u64, u64); LANES] =
                    core::array::from_fn(|lane| v4_words(V4Flow::of(&lane_flow(lane)), fields));
                let hashes = LaneKeys::splat(&hasher).hash_v4(
                    &words.map(|w| w.0),
                    &words.map(|w| w.1),
                    fields,
                );
                for (lane, &hash) in hashes.iter().enumerate().take(flows.len()) {
                    let flow = lane_flow(lane);
                    let mut buf = [0; MAX_INPUT_LEN];
                    let len = flow.hash_input(fields, &mut buf);
                    let expected = reference.hash(&buf[..len]);
                    prop_assert_eq!(hasher.hash(&flow, fields), expected, "{:?}", fields);
                    prop_assert_eq!(hash, expected, "lane {} {:?}", lane, fields);
                }
            }
        }
    }
}
