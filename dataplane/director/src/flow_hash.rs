//! The flow hash: SipHash-2-4 keyed with a table's `hash_key`, over the configured fields, laid
//! out byte for byte as GLB's director lays them out, so that GLB and chance put every flow on
//! the same row.
//!
//! The input is the concatenation, in this order, of the fields that are switched on:
//!
//! | field      | IPv4 bytes | IPv6 bytes | content                                  |
//! |------------|-----------:|-----------:|------------------------------------------|
//! | `src_addr` | 4          | 16         | client address, network byte order       |
//! | `dst_addr` | 4          | 16         | VIP, network byte order                  |
//! | `src_port` | 2          | 2          | client port, network byte order          |
//! | `dst_port` | 2          | 2          | VIP port, network byte order             |
//!
//! with no padding and no length prefix: at most 36 bytes. The 64-bit result is SipHash's
//! little-endian output read as an integer; a flow's row is its low 16 bits.

use crate::flow_hasher::FlowHasher;
use core::fmt;

/// The most bytes a hash input can hold: two IPv6 addresses and two ports.
pub const MAX_INPUT_LEN: usize = 16 + 16 + 2 + 2;

/// Which fields of a flow go into its hash (GLB's `hash_fields` / `alt_hash_fields`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashFields {
    /// The client's address.
    pub src_addr: bool,
    /// The VIP.
    pub dst_addr: bool,
    /// The client's port.
    pub src_port: bool,
    /// The VIP's port.
    pub dst_port: bool,
}

/// A hash field list that GLB would not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashFieldsError {
    /// A name that is not one of `src_addr`, `dst_addr`, `src_port`, `dst_port`.
    Unknown(String),
    /// No field at all: every flow would hash alike.
    Empty,
}

impl fmt::Display for HashFieldsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashFieldsError::Unknown(name) => write!(
                f,
                "unknown hash field {name:?} (expected src_addr, dst_addr, src_port or dst_port)"
            ),
            HashFieldsError::Empty => f.write_str("at least one hash field is required"),
        }
    }
}

impl std::error::Error for HashFieldsError {}

impl Default for HashFields {
    /// GLB's default: the client's address only, so a client's connections share a backend.
    fn default() -> Self {
        Self::SRC_ADDR
    }
}

impl HashFields {
    /// The client's address only (GLB's default).
    pub const SRC_ADDR: HashFields = HashFields {
        src_addr: true,
        dst_addr: false,
        src_port: false,
        dst_port: false,
    };

    /// The fields named (GLB's names); an empty list or an unknown name is an error.
    pub fn from_names<'a>(
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, HashFieldsError> {
        let mut fields = HashFields {
            src_addr: false,
            dst_addr: false,
            src_port: false,
            dst_port: false,
        };
        for name in names {
            match name {
                "src_addr" => fields.src_addr = true,
                "dst_addr" => fields.dst_addr = true,
                "src_port" => fields.src_port = true,
                "dst_port" => fields.dst_port = true,
                other => return Err(HashFieldsError::Unknown(other.to_owned())),
            }
        }
        if !fields.uses_addrs() && !fields.uses_ports() {
            return Err(HashFieldsError::Empty);
        }
        Ok(fields)
    }

    /// GLB's names of the fields hashed, in the order they are hashed.
    pub fn names(self) -> Vec<&'static str> {
        [
            (self.src_addr, "src_addr"),
            (self.dst_addr, "dst_addr"),
            (self.src_port, "src_port"),
            (self.dst_port, "dst_port"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }

    /// True when a port is part of the hash (a fragment without ports cannot be hashed then).
    pub const fn uses_ports(self) -> bool {
        self.src_port || self.dst_port
    }

    const fn uses_addrs(self) -> bool {
        self.src_addr || self.dst_addr
    }
}

/// A flow as the hash sees it: the client side is the source. Addresses and ports are kept in
/// network byte order, as they are hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowFields {
    /// Whether the addresses are IPv6 (16 bytes) or IPv4 (the first 4 bytes).
    pub ipv6: bool,
    /// The client's address.
    pub src_addr: [u8; 16],
    /// The VIP.
    pub dst_addr: [u8; 16],
    /// The client's port (0 for ICMP echo).
    pub src_port: [u8; 2],
    /// The VIP's port (0 for ICMP echo).
    pub dst_port: [u8; 2],
}

impl FlowFields {
    fn addr_len(&self) -> usize {
        if self.ipv6 {
            16
        } else {
            4
        }
    }

    /// Writes the hash input for `fields` into `buf`; returns its length.
    pub fn hash_input(&self, fields: HashFields, buf: &mut [u8; MAX_INPUT_LEN]) -> usize {
        let addr_len = self.addr_len();
        let mut len = 0;
        let mut push = |bytes: &[u8]| {
            buf[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
        };
        if fields.src_addr {
            push(&self.src_addr[..addr_len]);
        }
        if fields.dst_addr {
            push(&self.dst_addr[..addr_len]);
        }
        if fields.src_port {
            push(&self.src_port);
        }
        if fields.dst_port {
            push(&self.dst_port);
        }
        len
    }

    /// The flow's 64-bit hash over `fields`, keyed by `hasher`: SipHash-2-4 of
    /// [`hash_input`](Self::hash_input), computed from the fields as whole words (see
    /// [`FlowHasher`]) without building the input.
    #[inline(always)]
    pub fn hash(&self, hasher: &FlowHasher, fields: HashFields) -> u64 {
        hasher.hash(self, fields)
    }
}

/// A flow's row in a 65,536-row table: the hash's low 16 bits.
#[inline]
pub const fn row(hash: u64) -> u16 {
    hash as u16
}

/// The outer UDP source port GLB derives from the flow: the high bit set (an ephemeral port),
/// the low 15 bits the hash mixed with the flow's hint (usually the client's port), so the
/// flows of one client spread over ECMP paths and the backend's receive queues.
#[inline]
pub const fn udp_source_port(hash: u64, hint: u16) -> u16 {
    0x8000 | ((hash as u16 ^ hint) & 0x7fff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use siphasher::sip::SipHasher24;

    fn v4_flow() -> FlowFields {
        let mut flow = FlowFields {
            ipv6: false,
            src_addr: [0; 16],
            dst_addr: [0; 16],
            src_port: 45678u16.to_be_bytes(),
            dst_port: 80u16.to_be_bytes(),
        };
        flow.src_addr[..4].copy_from_slice(&[10, 11, 12, 13]);
        flow.dst_addr[..4].copy_from_slice(&[1, 1, 1, 1]);
        flow
    }

    #[test]
    fn siphasher_matches_the_siphash_paper_vector() {
        // SipHash-2-4 reference: key 00..0f, message 00..0e -> 0xa129ca6149be45e5.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let message: Vec<u8> = (0..15).collect();
        assert_eq!(
            SipHasher24::new_with_key(&key).hash(&message),
            0xa129_ca61_49be_45e5
        );
    }

    #[test]
    fn the_input_concatenates_the_chosen_fields_in_glb_order_without_padding() {
        let flow = v4_flow();
        let mut buf = [0; MAX_INPUT_LEN];
        let all = HashFields::from_names(["dst_port", "src_port", "dst_addr", "src_addr"]).unwrap();
        let len = flow.hash_input(all, &mut buf);
        assert_eq!(
            &buf[..len],
            &[10, 11, 12, 13, 1, 1, 1, 1, 0xb2, 0x6e, 0x00, 0x50]
        );
        let len = flow.hash_input(HashFields::default(), &mut buf);
        assert_eq!(&buf[..len], &[10, 11, 12, 13]);
        let ports = HashFields::from_names(["src_port"]).unwrap();
        let len = flow.hash_input(ports, &mut buf);
        assert_eq!(&buf[..len], &[0xb2, 0x6e]);
    }

    #[test]
    fn ipv6_addresses_go_in_whole() {
        let mut flow = v4_flow();
        flow.ipv6 = true;
        flow.src_addr = core::array::from_fn(|i| i as u8);
        let mut buf = [0; MAX_INPUT_LEN];
        let fields = HashFields::from_names(["src_addr", "src_port"]).unwrap();
        let len = flow.hash_input(fields, &mut buf);
        assert_eq!(len, 18);
        assert_eq!(&buf[..16], &flow.src_addr);
        assert_eq!(&buf[16..18], &[0xb2, 0x6e]);
    }

    #[test]
    fn glb_test_suite_flow_hashes_to_independently_computed_values() {
        // GLB's test tables use hash_key 12345678901234561234567890123456; the expected values
        // were computed with an independent SipHash-2-4 over the bytes above.
        let key = [
            0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12,
            0x34, 0x56,
        ];
        let hasher = FlowHasher::new_with_key(&key);
        let flow = v4_flow();
        let by_addr = flow.hash(&hasher, HashFields::default());
        let by_addr_port = flow.hash(
            &hasher,
            HashFields::from_names(["src_addr", "src_port"]).unwrap(),
        );
        assert_eq!(by_addr, GOLDEN_SRC_ADDR);
        assert_eq!(by_addr_port, GOLDEN_SRC_ADDR_PORT);
        assert_eq!(udp_source_port(by_addr, 45678), GOLDEN_SPORT);
    }

    const GOLDEN_SRC_ADDR: u64 = 0x0089_72f1_657a_5cbd;
    const GOLDEN_SRC_ADDR_PORT: u64 = 0x16dd_e057_5516_29ea;
    const GOLDEN_SPORT: u16 = 0xeed3;

    #[test]
    fn unknown_or_empty_field_lists_are_refused() {
        assert_eq!(
            HashFields::from_names(["src_ip"]),
            Err(HashFieldsError::Unknown("src_ip".into()))
        );
        assert_eq!(HashFields::from_names([]), Err(HashFieldsError::Empty));
        assert!(!HashFields::default().uses_ports());
        assert!(HashFields::from_names(["dst_port"]).unwrap().uses_ports());
    }

    #[test]
    fn the_udp_source_port_always_has_the_high_bit_and_mixes_the_hint() {
        assert_eq!(udp_source_port(0, 0), 0x8000);
        assert_eq!(udp_source_port(0xffff_ffff_ffff_ffff, 0), 0xffff);
        assert_eq!(udp_source_port(0x1234, 0x1234), 0x8000);
        assert_eq!(udp_source_port(0xabcd_0000_0000_8001, 0x0002), 0x8003);
        assert_eq!(row(0xabcd_0000_0000_8001), 0x8001);
    }
}
