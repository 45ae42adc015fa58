//! GUE base header (draft-ietf-intarea-gue) and the GLB chained-routing ("unigue") private header
//! that follows it in cls_redirect's encapsulation.
//!
//! Base header, 4 bytes, then `hlen` 32-bit words of optional data:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Var|C|  Hlen   |  Proto/ctype  |             Flags             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! ~                  Extensions Fields (optional)                 ~
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! In GLB's encapsulation the optional data is the chained-routing header, one word plus one
//! word per hop, so `hlen == 1 + hop_count`:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|S|G|Rsv|   Reserved    |   Next Hop    |   Hop Count   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     Hop 0 (IPv4 address)                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ~                              ...                              ~
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |              Hop (Hop Count - 1) (IPv4 address)               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! S: forward_syn (0x08 in byte 0), G: last_hop_gre (0x04), Rsv: ignored.
//! ```
//!
//! [`GlbChainPacket::check_len`] only requires the first word; [`GlbChainPacket::check_hops_len`]
//! checks for the hop list as a separate step, since cls_redirect gives each its own outcome.

use super::{read_u16, read_u32, write_u16, write_u32, Error, Field, Result};
use core::fmt;
use core::net::Ipv4Addr;

mod field {
    use super::Field;
    pub const VAR_C_HLEN: usize = 0;
    pub const PROTO_CTYPE: usize = 1;
    pub const FLAGS: Field = 2..4;
    pub const PAYLOAD: usize = 4;
}

mod chain_field {
    pub const VERS_FLAGS: usize = 0;
    pub const RESERVED: usize = 1;
    pub const NEXT_HOP: usize = 2;
    pub const HOP_COUNT: usize = 3;
    pub const HOPS: usize = 4;
}

/// Length of the GUE base header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Length of the chained-routing header without its hops.
pub const CHAIN_HEADER_LEN: usize = chain_field::HOPS;
/// Most hops a chain can carry: the 5-bit `hlen` (31 words) minus the chain header's word.
pub const MAX_HOPS: usize = 30;
/// Byte offset of the next-hop index within the chained-routing header.
pub const NEXT_HOP_OFFSET: usize = chain_field::NEXT_HOP;

const VARIANT_SHIFT: u8 = 6;
const CONTROL: u8 = 0x20;
const HLEN_MASK: u8 = 0x1f;

const CHAIN_VERSION_SHIFT: u8 = 4;
const FORWARD_SYN: u8 = 0x08;
const LAST_HOP_GRE: u8 = 0x04;
const LOW_BITS_MASK: u8 = 0x03;

header_view! {
    /// A read/write view of a GUE base header.
    GuePacket, HEADER_LEN, "the 4-byte base header"
}

impl<T: AsRef<[u8]>> GuePacket<T> {
    /// Checks that the buffer also holds the `hlen` words of optional data.
    pub fn check_options_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < self.header_len() {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Variant (bits 7-6 of byte 0).
    #[inline]
    pub fn variant(&self) -> u8 {
        self.buffer.as_ref()[field::VAR_C_HLEN] >> VARIANT_SHIFT
    }

    /// Control bit C (bit 5 of byte 0).
    #[inline]
    pub fn control(&self) -> bool {
        self.buffer.as_ref()[field::VAR_C_HLEN] & CONTROL != 0
    }

    /// Number of 32-bit words of optional data after the base header (bits 4-0 of byte 0).
    #[inline]
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::VAR_C_HLEN] & HLEN_MASK
    }

    /// Length of the optional data in bytes (`4 * hlen`).
    #[inline]
    pub fn options_len(&self) -> usize {
        usize::from(self.hlen()) * 4
    }

    /// Length of the base header plus optional data in bytes (`4 + 4 * hlen`).
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }

    /// Protocol of the payload (data messages) or control type (control messages).
    #[inline]
    pub fn proto_ctype(&self) -> u8 {
        self.buffer.as_ref()[field::PROTO_CTYPE]
    }

    /// Flags word.
    #[inline]
    pub fn flags(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLAGS.start)
    }

    /// The bytes after the 4-byte base header: the optional data (GLB's chain), then the inner packet.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GuePacket<T> {
    /// Sets the variant (low 2 bits of `value`).
    #[inline]
    pub fn set_variant(&mut self, value: u8) {
        let byte = &mut self.buffer.as_mut()[field::VAR_C_HLEN];
        *byte = (*byte & !(0x03 << VARIANT_SHIFT)) | ((value & 0x03) << VARIANT_SHIFT);
    }

    /// Sets or clears the control bit.
    #[inline]
    pub fn set_control(&mut self, value: bool) {
        let byte = &mut self.buffer.as_mut()[field::VAR_C_HLEN];
        if value {
            *byte |= CONTROL;
        } else {
            *byte &= !CONTROL;
        }
    }

    /// Sets hlen (low 5 bits of `value`).
    #[inline]
    pub fn set_hlen(&mut self, value: u8) {
        let byte = &mut self.buffer.as_mut()[field::VAR_C_HLEN];
        *byte = (*byte & !HLEN_MASK) | (value & HLEN_MASK);
    }

    /// Sets the protocol / control type.
    #[inline]
    pub fn set_proto_ctype(&mut self, value: u8) {
        self.buffer.as_mut()[field::PROTO_CTYPE] = value;
    }

    /// Sets the flags word.
    #[inline]
    pub fn set_flags(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::FLAGS.start, value);
    }

    /// The bytes after the 4-byte base header, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

header_view! {
    /// A read/write view of GLB's chained-routing header (the GUE optional data).
    GlbChainPacket, CHAIN_HEADER_LEN, "the 4-byte chain header (not the hops)"
}

impl<T: AsRef<[u8]>> GlbChainPacket<T> {
    /// Checks that the buffer also holds the `hop_count` addresses (`4 + 4 * hop_count` bytes).
    pub fn check_hops_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < CHAIN_HEADER_LEN + self.hops_len() {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Version (high nibble of byte 0).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[chain_field::VERS_FLAGS] >> CHAIN_VERSION_SHIFT
    }

    /// forward_syn bit (0x08 of byte 0): forward SYNs along the chain too.
    #[inline]
    pub fn forward_syn(&self) -> bool {
        self.buffer.as_ref()[chain_field::VERS_FLAGS] & FORWARD_SYN != 0
    }

    /// last_hop_gre bit (0x04 of byte 0): the last hop expects GRE rather than GUE.
    #[inline]
    pub fn last_hop_gre(&self) -> bool {
        self.buffer.as_ref()[chain_field::VERS_FLAGS] & LAST_HOP_GRE != 0
    }

    /// The two reserved low bits of byte 0 (ignored by cls_redirect).
    #[inline]
    pub fn low_bits(&self) -> u8 {
        self.buffer.as_ref()[chain_field::VERS_FLAGS] & LOW_BITS_MASK
    }

    /// Reserved byte (byte 1).
    #[inline]
    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[chain_field::RESERVED]
    }

    /// Index of the next hop to try.
    #[inline]
    pub fn next_hop(&self) -> u8 {
        self.buffer.as_ref()[chain_field::NEXT_HOP]
    }

    /// Number of hop addresses that follow.
    #[inline]
    pub fn hop_count(&self) -> u8 {
        self.buffer.as_ref()[chain_field::HOP_COUNT]
    }

    /// Length of the hop list in bytes (`4 * hop_count`).
    #[inline]
    pub fn hops_len(&self) -> usize {
        usize::from(self.hop_count()) * 4
    }

    /// Hop `i` as a big-endian integer; needs `i < hop_count()` and `check_hops_len()` passed.
    #[inline]
    pub fn hop(&self, i: usize) -> u32 {
        read_u32(self.buffer.as_ref(), chain_field::HOPS + i * 4)
    }

    /// Hop `i` as an address; needs `i < hop_count()` and `check_hops_len()` passed.
    #[inline]
    pub fn hop_addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::from(self.hop(i))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GlbChainPacket<T> {
    /// Sets the version (low 4 bits of `value`), keeping the flag bits.
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        let byte = &mut self.buffer.as_mut()[chain_field::VERS_FLAGS];
        *byte = (*byte & 0x0f) | ((value & 0x0f) << CHAIN_VERSION_SHIFT);
    }

    /// Sets or clears the forward_syn bit.
    #[inline]
    pub fn set_forward_syn(&mut self, value: bool) {
        let byte = &mut self.buffer.as_mut()[chain_field::VERS_FLAGS];
        if value {
            *byte |= FORWARD_SYN;
        } else {
            *byte &= !FORWARD_SYN;
        }
    }

    /// Sets or clears the last_hop_gre bit.
    #[inline]
    pub fn set_last_hop_gre(&mut self, value: bool) {
        let byte = &mut self.buffer.as_mut()[chain_field::VERS_FLAGS];
        if value {
            *byte |= LAST_HOP_GRE;
        } else {
            *byte &= !LAST_HOP_GRE;
        }
    }

    /// Sets the two reserved low bits of byte 0 (low 2 bits of `value`).
    #[inline]
    pub fn set_low_bits(&mut self, value: u8) {
        let byte = &mut self.buffer.as_mut()[chain_field::VERS_FLAGS];
        *byte = (*byte & !LOW_BITS_MASK) | (value & LOW_BITS_MASK);
    }

    /// Sets the reserved byte.
    #[inline]
    pub fn set_reserved(&mut self, value: u8) {
        self.buffer.as_mut()[chain_field::RESERVED] = value;
    }

    /// Sets the next-hop index.
    #[inline]
    pub fn set_next_hop(&mut self, value: u8) {
        self.buffer.as_mut()[chain_field::NEXT_HOP] = value;
    }

    /// Sets the hop count.
    #[inline]
    pub fn set_hop_count(&mut self, value: u8) {
        self.buffer.as_mut()[chain_field::HOP_COUNT] = value;
    }

    /// Sets hop `i`; needs `i < hop_count()` and `check_hops_len()` passed.
    #[inline]
    pub fn set_hop(&mut self, i: usize, value: Ipv4Addr) {
        write_u32(
            self.buffer.as_mut(),
            chain_field::HOPS + i * 4,
            value.to_bits(),
        );
    }
}

/// A list of at most [`MAX_HOPS`] IPv4 addresses, stored inline.
#[derive(Clone, Copy)]
pub struct HopList {
    hops: [Ipv4Addr; MAX_HOPS],
    len: u8,
}

impl HopList {
    /// An empty list.
    pub const fn new() -> Self {
        Self {
            hops: [Ipv4Addr::UNSPECIFIED; MAX_HOPS],
            len: 0,
        }
    }

    /// Copies `hops` into a list; more than [`MAX_HOPS`] is an error.
    pub fn from_slice(hops: &[Ipv4Addr]) -> Result<Self> {
        if hops.len() > MAX_HOPS {
            return Err(Error);
        }
        let mut list = Self::new();
        list.hops[..hops.len()].copy_from_slice(hops);
        list.len = hops.len() as u8;
        Ok(list)
    }

    /// Appends a hop; a full list is an error.
    pub fn push(&mut self, hop: Ipv4Addr) -> Result<()> {
        let slot = self.hops.get_mut(usize::from(self.len)).ok_or(Error)?;
        *slot = hop;
        self.len += 1;
        Ok(())
    }

    /// The hops, in order.
    pub fn as_slice(&self) -> &[Ipv4Addr] {
        &self.hops[..usize::from(self.len)]
    }

    /// Number of hops.
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// True when there are no hops.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for HopList {
    fn default() -> Self {
        Self::new()
    }
}

impl PartialEq for HopList {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for HopList {}

impl fmt::Debug for HopList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// A GUE data message with GLB's chained-routing header, as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GueRepr {
    /// Protocol of the inner packet ([`super::ip_proto::IPIP`] or [`super::ip_proto::IPV6`]).
    pub proto_ctype: u8,
    /// forward_syn bit of the chain header.
    pub forward_syn: bool,
    /// last_hop_gre bit of the chain header.
    pub last_hop_gre: bool,
    /// Index of the next hop to try.
    pub next_hop: u8,
    /// The hop addresses.
    pub hops: HopList,
}

impl GueRepr {
    /// Parses base header, chain header and hops: variant 0, control 0, flags 0, chain version 0
    /// and `hlen == 1 + hop_count` are required; the reserved byte and low bits are ignored.
    pub fn parse(data: &[u8]) -> Result<Self> {
        let gue = GuePacket::new_checked(data)?;
        if gue.variant() != 0 || gue.control() || gue.flags() != 0 {
            return Err(Error);
        }
        let chain = GlbChainPacket::new_checked(gue.payload())?;
        if chain.version() != 0 {
            return Err(Error);
        }
        if usize::from(gue.hlen()) != 1 + usize::from(chain.hop_count()) {
            return Err(Error);
        }
        chain.check_hops_len()?;
        let mut hops = HopList::new();
        for i in 0..usize::from(chain.hop_count()) {
            hops.push(chain.hop_addr(i))?;
        }
        Ok(Self {
            proto_ctype: gue.proto_ctype(),
            forward_syn: chain.forward_syn(),
            last_hop_gre: chain.last_hop_gre(),
            next_hop: chain.next_hop(),
            hops,
        })
    }

    /// Length of what this emits: base header, chain header and hops.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + CHAIN_HEADER_LEN + 4 * self.hops.len()
    }

    /// Writes base header (hlen = 1 + hops), chain header and hops into the first
    /// `buffer_len()` bytes of `buffer`; panics if `buffer` is shorter.
    pub fn emit(&self, buffer: &mut [u8]) {
        let hop_count = self.hops.len() as u8;
        let mut gue = GuePacket::new_unchecked(&mut *buffer);
        gue.set_variant(0);
        gue.set_control(false);
        gue.set_hlen(1 + hop_count);
        gue.set_proto_ctype(self.proto_ctype);
        gue.set_flags(0);
        let mut chain = GlbChainPacket::new_unchecked(&mut buffer[HEADER_LEN..]);
        chain.set_version(0);
        chain.set_forward_syn(self.forward_syn);
        chain.set_last_hop_gre(self.last_hop_gre);
        chain.set_low_bits(0);
        chain.set_reserved(0);
        chain.set_next_hop(self.next_hop);
        chain.set_hop_count(hop_count);
        for (i, hop) in self.hops.as_slice().iter().enumerate() {
            chain.set_hop(i, *hop);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ip_proto;
    use super::*;

    const HOP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const HOP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    // GUE: variant 0, C 0, hlen 3, IPIP, flags 0. Chain: version 0, forward_syn, next hop 1,
    // 2 hops 10.0.0.1, 10.0.0.2. Then 4 bytes of inner packet.
    static PACKET_BYTES: [u8; 20] = [
        0x03, 0x04, 0x00, 0x00, 0x08, 0x00, 0x01, 0x02, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00,
        0x02, 0x45, 0x00, 0x00, 0x14,
    ];

    static NO_HOPS_BYTES: [u8; 8] = [0x01, 0x29, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00];

    static ONE_HOP_BYTES: [u8; 12] = [
        0x02, 0x04, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x01,
    ];

    fn repr(hops: &[Ipv4Addr]) -> GueRepr {
        GueRepr {
            proto_ctype: ip_proto::IPIP,
            forward_syn: true,
            last_hop_gre: false,
            next_hop: 1,
            hops: HopList::from_slice(hops).unwrap(),
        }
    }

    #[test]
    fn test_deconstruct() {
        let gue = GuePacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(gue.variant(), 0);
        assert!(!gue.control());
        assert_eq!(gue.hlen(), 3);
        assert_eq!(gue.options_len(), 12);
        assert_eq!(gue.header_len(), 16);
        assert!(gue.check_options_len().is_ok());
        assert_eq!(gue.proto_ctype(), ip_proto::IPIP);
        assert_eq!(gue.flags(), 0);
        assert_eq!(gue.payload(), &PACKET_BYTES[4..]);

        let chain = GlbChainPacket::new_checked(gue.payload()).unwrap();
        assert!(chain.check_hops_len().is_ok());
        assert_eq!(chain.version(), 0);
        assert!(chain.forward_syn());
        assert!(!chain.last_hop_gre());
        assert_eq!(chain.low_bits(), 0);
        assert_eq!(chain.reserved(), 0);
        assert_eq!(chain.next_hop(), 1);
        assert_eq!(chain.hop_count(), 2);
        assert_eq!(chain.hops_len(), 8);
        assert_eq!(chain.hop(0), 0x0a00_0001);
        assert_eq!(chain.hop(1), 0x0a00_0002);
        assert_eq!(chain.hop_addr(0), HOP_A);
        assert_eq!(chain.hop_addr(1), HOP_B);
        assert_eq!(PACKET_BYTES[HEADER_LEN + NEXT_HOP_OFFSET], 1);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5; 20];
        let mut gue = GuePacket::new_unchecked(&mut bytes[..]);
        gue.set_variant(0);
        gue.set_control(false);
        gue.set_hlen(3);
        gue.set_proto_ctype(ip_proto::IPIP);
        gue.set_flags(0);
        gue.payload_mut()[12..].copy_from_slice(&[0x45, 0x00, 0x00, 0x14]);
        let mut chain = GlbChainPacket::new_unchecked(&mut bytes[HEADER_LEN..]);
        chain.set_version(0);
        chain.set_forward_syn(true);
        chain.set_last_hop_gre(false);
        chain.set_low_bits(0);
        chain.set_reserved(0);
        chain.set_next_hop(1);
        chain.set_hop_count(2);
        chain.set_hop(0, HOP_A);
        chain.set_hop(1, HOP_B);
        assert_eq!(&bytes[..], &PACKET_BYTES[..]);
    }

    #[test]
    fn test_base_header_bits() {
        let mut bytes = [0x00; 4];
        let mut gue = GuePacket::new_unchecked(&mut bytes[..]);
        gue.set_variant(3);
        assert_eq!(gue.variant(), 3);
        gue.set_control(true);
        gue.set_hlen(0x1f);
        assert_eq!(bytes[0], 0xff);
        let mut gue = GuePacket::new_unchecked(&mut bytes[..]);
        gue.set_variant(0);
        assert_eq!(gue.hlen(), 31);
        assert!(gue.control());
        gue.set_control(false);
        assert_eq!(bytes[0], 0x1f);
        let mut gue = GuePacket::new_unchecked(&mut bytes[..]);
        gue.set_hlen(0);
        gue.set_variant(1);
        assert_eq!(bytes[0], 0x40);
        let mut gue = GuePacket::new_unchecked(&mut bytes[..]);
        gue.set_flags(0x8001);
        assert_eq!(gue.flags(), 0x8001);
        assert_eq!(&bytes[2..], &[0x80, 0x01]);
    }

    #[test]
    fn test_chain_flag_bit_positions() {
        let mut bytes = [0x00; 4];
        let mut chain = GlbChainPacket::new_unchecked(&mut bytes[..]);
        chain.set_forward_syn(true);
        assert_eq!(bytes[0], 0x08);
        let mut chain = GlbChainPacket::new_unchecked(&mut bytes[..]);
        chain.set_forward_syn(false);
        chain.set_last_hop_gre(true);
        assert_eq!(bytes[0], 0x04);
        let mut chain = GlbChainPacket::new_unchecked(&mut bytes[..]);
        chain.set_last_hop_gre(false);
        assert_eq!(bytes[0], 0x00);

        let chain = GlbChainPacket::new_unchecked([0x08, 0, 0, 0]);
        assert!(chain.forward_syn() && !chain.last_hop_gre());
        let chain = GlbChainPacket::new_unchecked([0x04, 0, 0, 0]);
        assert!(!chain.forward_syn() && chain.last_hop_gre());
        let chain = GlbChainPacket::new_unchecked([0xf3, 0xee, 0, 0]);
        assert!(!chain.forward_syn() && !chain.last_hop_gre());
        assert_eq!(chain.version(), 0xf);
        assert_eq!(chain.low_bits(), 3);
        assert_eq!(chain.reserved(), 0xee);

        let mut bytes = [0xff; 4];
        let mut chain = GlbChainPacket::new_unchecked(&mut bytes[..]);
        chain.set_version(0);
        assert_eq!(bytes[0], 0x0f);
        let mut chain = GlbChainPacket::new_unchecked(&mut bytes[..]);
        chain.set_low_bits(0);
        assert_eq!(bytes[0], 0x0c);
    }

    #[test]
    fn test_parse() {
        assert_eq!(GueRepr::parse(&PACKET_BYTES), Ok(repr(&[HOP_A, HOP_B])));
    }

    #[test]
    fn test_emit() {
        let repr = repr(&[HOP_A, HOP_B]);
        assert_eq!(repr.buffer_len(), 16);
        let mut bytes = vec![0xa5; 16];
        repr.emit(&mut bytes);
        assert_eq!(&bytes[..], &PACKET_BYTES[..16]);
    }

    #[test]
    fn test_round_trip_zero_one_two_hops() {
        let mut no_hops = repr(&[]);
        no_hops.proto_ctype = ip_proto::IPV6;
        no_hops.forward_syn = false;
        no_hops.last_hop_gre = true;
        no_hops.next_hop = 0;
        let mut one_hop = repr(&[HOP_A]);
        one_hop.last_hop_gre = true;
        one_hop.next_hop = 0;
        let cases: [(GueRepr, &[u8]); 3] = [
            (no_hops, &NO_HOPS_BYTES),
            (one_hop, &ONE_HOP_BYTES),
            (repr(&[HOP_A, HOP_B]), &PACKET_BYTES[..16]),
        ];
        for (repr, expected) in cases {
            assert_eq!(repr.buffer_len(), expected.len());
            let mut bytes = vec![0xa5; repr.buffer_len()];
            repr.emit(&mut bytes);
            assert_eq!(&bytes[..], expected);
            assert_eq!(GueRepr::parse(&bytes), Ok(repr));
            assert_eq!(
                GuePacket::new_unchecked(&bytes[..]).hlen() as usize,
                1 + repr.hops.len()
            );
        }
    }

    #[test]
    fn test_round_trip_max_hops() {
        let hops: Vec<Ipv4Addr> = (0..MAX_HOPS as u32).map(Ipv4Addr::from).collect();
        let repr = repr(&hops);
        let mut bytes = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut bytes);
        assert_eq!(bytes[0], 0x1f);
        assert_eq!(GueRepr::parse(&bytes), Ok(repr));
    }

    #[test]
    fn test_parse_hlen_mismatch() {
        for hlen in [0x00, 0x02, 0x04, 0x1f] {
            let mut bytes = PACKET_BYTES;
            bytes[0] = hlen;
            assert_eq!(GueRepr::parse(&bytes), Err(Error), "hlen {hlen}");
        }
        let mut bytes = PACKET_BYTES;
        bytes[7] = 1; // hop_count 1 with hlen 3
        assert_eq!(GueRepr::parse(&bytes), Err(Error));
    }

    #[test]
    fn test_parse_rejects_variant_control_flags_version() {
        let mut bytes = PACKET_BYTES;
        bytes[0] |= 0x40;
        assert_eq!(GueRepr::parse(&bytes), Err(Error));
        let mut bytes = PACKET_BYTES;
        bytes[0] |= 0x20;
        assert_eq!(GueRepr::parse(&bytes), Err(Error));
        let mut bytes = PACKET_BYTES;
        bytes[3] = 0x01;
        assert_eq!(GueRepr::parse(&bytes), Err(Error));
        let mut bytes = PACKET_BYTES;
        bytes[4] |= 0x10;
        assert_eq!(GueRepr::parse(&bytes), Err(Error));
    }

    #[test]
    fn test_parse_ignores_low_bits_and_reserved() {
        let mut bytes = PACKET_BYTES;
        bytes[4] |= 0x03;
        bytes[5] = 0x7f;
        assert_eq!(GueRepr::parse(&bytes), Ok(repr(&[HOP_A, HOP_B])));
    }

    #[test]
    fn test_hop_list() {
        assert!(HopList::new().is_empty());
        assert_eq!(HopList::default(), HopList::from_slice(&[]).unwrap());
        let full = [HOP_A; MAX_HOPS];
        let mut list = HopList::from_slice(&full).unwrap();
        assert_eq!(list.len(), MAX_HOPS);
        assert_eq!(list.as_slice(), &full[..]);
        assert_eq!(list.push(HOP_B), Err(Error));
        assert_eq!(HopList::from_slice(&[HOP_A; MAX_HOPS + 1]), Err(Error));
        let mut list2 = HopList::new();
        list2.push(HOP_A).unwrap();
        list2.push(HOP_B).unwrap();
        assert_eq!(list2, HopList::from_slice(&[HOP_A, HOP_B]).unwrap());
        assert_ne!(list2, list);
        list = HopList::from_slice(&[HOP_A]).unwrap();
        assert_eq!(format!("{list:?}"), "[10.0.0.1]");
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(
            GuePacket::new_checked(&PACKET_BYTES[..3]).err(),
            Some(Error)
        );
        // hlen 3 announces 12 bytes of options; only 11 are there.
        let gue = GuePacket::new_checked(&PACKET_BYTES[..15]).unwrap();
        assert_eq!(gue.check_options_len(), Err(Error));
        assert_eq!(
            GlbChainPacket::new_checked(&PACKET_BYTES[4..7]).err(),
            Some(Error)
        );
        // Chain header present, second hop cut short.
        let chain = GlbChainPacket::new_checked(&PACKET_BYTES[4..15]).unwrap();
        assert_eq!(chain.check_hops_len(), Err(Error));
        let chain = GlbChainPacket::new_checked(&PACKET_BYTES[4..16]).unwrap();
        assert_eq!(chain.check_hops_len(), Ok(()));
        for len in 0..16 {
            assert_eq!(
                GueRepr::parse(&PACKET_BYTES[..len]),
                Err(Error),
                "len {len}"
            );
        }
        assert!(GueRepr::parse(&PACKET_BYTES[..16]).is_ok());
    }
}
