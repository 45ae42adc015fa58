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
mod tests;
