//! IPv6 fixed header (RFC 8200 §3) and the generic shape of its extension headers (§4).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Traffic Class |           Flow Label                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Payload Length        |  Next Header  |   Hop Limit   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                                                               +
//! |                                                               |
//! +                         Source Address                        +
//! |                                                               |
//! +                                                               +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                                                               +
//! |                                                               |
//! +                      Destination Address                      +
//! |                                                               |
//! +                                                               +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Extension headers are walked generically, as cls_redirect does (RFC 8200 §4.2 / RFC 6564):
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Next Header  |  Hdr Ext Len  |                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//! .            Header-specific data, (Hdr Ext Len + 1) * 8        .
//! .            bytes in all                                       .
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The Fragment header (44) has a reserved byte where the others have Hdr Ext Len; the walker
//! reads it as a length anyway (cls_redirect's behaviour, kept deliberately), so a fragment
//! header with a non-zero reserved byte is skipped by more than its 8 bytes.

use super::{ip_proto, read_u16, read_u32, write_u16, write_u32, Error, Field, Result};
use core::net::Ipv6Addr;

mod field {
    use super::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

mod ext_field {
    pub const NXT_HDR: usize = 0;
    pub const LENGTH: usize = 1;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;
/// Byte offset of the hop limit field.
pub const HOP_LIMIT_OFFSET: usize = field::HOP_LIMIT;
/// Length of the part of an extension header that every kind shares (next header, length).
pub const EXT_HEADER_MIN_LEN: usize = 2;

const VERSION_SHIFT: u32 = 28;
const TRAFFIC_CLASS_SHIFT: u32 = 20;
const TRAFFIC_CLASS_MASK: u32 = 0x0ff0_0000;
const FLOW_LABEL_MASK: u32 = 0x000f_ffff;

header_view! {
    /// A read/write view of the fixed IPv6 header.
    Ipv6Packet, HEADER_LEN, "the 40-byte fixed header (the payload length is not checked)"
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    #[inline]
    fn ver_tc_flow(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW.start)
    }

    /// Version field (the high nibble of byte 0).
    #[inline]
    pub fn version(&self) -> u8 {
        (self.ver_tc_flow() >> VERSION_SHIFT) as u8
    }

    /// Traffic class (DSCP + ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        ((self.ver_tc_flow() & TRAFFIC_CLASS_MASK) >> TRAFFIC_CLASS_SHIFT) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & FLOW_LABEL_MASK
    }

    /// Payload length field (extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Next header (the first extension header or the upper-layer protocol).
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut octets = [0; 16];
        octets.copy_from_slice(&self.buffer.as_ref()[field::SRC_ADDR]);
        Ipv6Addr::from(octets)
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut octets = [0; 16];
        octets.copy_from_slice(&self.buffer.as_ref()[field::DST_ADDR]);
        Ipv6Addr::from(octets)
    }

    /// The bytes after the 40-byte fixed header (extension headers included; length not consulted).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline]
    fn set_ver_tc_flow(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::VER_TC_FLOW.start, value);
    }

    /// Sets the version (low 4 bits of `value`).
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        let word = self.ver_tc_flow() & !(0xf << VERSION_SHIFT);
        self.set_ver_tc_flow(word | (u32::from(value & 0x0f) << VERSION_SHIFT));
    }

    /// Sets the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, value: u8) {
        let word = self.ver_tc_flow() & !TRAFFIC_CLASS_MASK;
        self.set_ver_tc_flow(word | (u32::from(value) << TRAFFIC_CLASS_SHIFT));
    }

    /// Sets the flow label (low 20 bits of `value`).
    #[inline]
    pub fn set_flow_label(&mut self, value: u32) {
        let word = self.ver_tc_flow() & !FLOW_LABEL_MASK;
        self.set_ver_tc_flow(word | (value & FLOW_LABEL_MASK));
    }

    /// Sets the payload length field.
    #[inline]
    pub fn set_payload_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, value);
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, value: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = value;
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// The bytes after the 40-byte fixed header, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The fields of a fixed IPv6 header that chance builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header.
    pub next_header: u8,
    /// Payload length in bytes.
    pub payload_len: u16,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Parses a fixed IPv6 header (version must be 6; traffic class and flow label are dropped).
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<Self> {
        packet.check_len()?;
        if packet.version() != 6 {
            return Err(Error);
        }
        Ok(Self {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: packet.payload_len(),
            hop_limit: packet.hop_limit(),
        })
    }

    /// Length of the header this emits.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header (traffic class and flow label 0) into the first 40 bytes of `packet`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) {
        packet.set_ver_tc_flow(6 << VERSION_SHIFT);
        packet.set_payload_len(self.payload_len);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

/// True for the next-header values walked as extension headers: hop-by-hop (0), routing (43),
/// fragment (44), destination options (60) and mobility (135).
#[inline]
pub fn is_extension_header(next_header: u8) -> bool {
    matches!(
        next_header,
        ip_proto::HOP_BY_HOP
            | ip_proto::ROUTING
            | ip_proto::FRAGMENT
            | ip_proto::DEST_OPTS
            | ip_proto::MOBILITY
    )
}

/// A read/write view of a generic IPv6 extension header.
#[derive(Debug, Clone)]
pub struct Ipv6ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6ExtHeader<T> {
    /// Wraps a buffer without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer and checks that it holds the whole extension header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let header = Self::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// Checks that the buffer holds the 2 shared bytes and then the `header_len()` bytes announced.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < EXT_HEADER_MIN_LEN || len < self.header_len() {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Next header.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[ext_field::NXT_HDR]
    }

    /// The raw Hdr Ext Len byte (8-byte units, not counting the first 8 bytes).
    #[inline]
    pub fn header_len_field(&self) -> u8 {
        self.buffer.as_ref()[ext_field::LENGTH]
    }

    /// Length of the whole extension header in bytes: `(hdr_ext_len + 1) * 8`.
    #[inline]
    pub fn header_len(&self) -> usize {
        (usize::from(self.header_len_field()) + 1) * 8
    }

    /// The header-specific bytes after the 2 shared ones, up to `header_len()`.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[EXT_HEADER_MIN_LEN..self.header_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6ExtHeader<T> {
    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, value: u8) {
        self.buffer.as_mut()[ext_field::NXT_HDR] = value;
    }

    /// Sets the raw Hdr Ext Len byte (8-byte units, not counting the first 8 bytes).
    #[inline]
    pub fn set_header_len_field(&mut self, value: u8) {
        self.buffer.as_mut()[ext_field::LENGTH] = value;
    }
}

/// What a walk over the extension headers that follow the fixed IPv6 header found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtHeaderWalk {
    /// The first next-header value that is not an extension header.
    pub upper_protocol: u8,
    /// Bytes the extension headers occupy (the upper-layer header starts at this offset).
    pub len: usize,
    /// True when a Fragment header (44) was among them.
    pub has_fragment: bool,
}

/// Walks extension headers in `data` (the bytes right after the 40-byte fixed header), starting
/// with `next_header` from the fixed header. At most `limit` extension headers are accepted: a
/// (limit+1)-th one is an error, as is any header running past the end of `data`.
/// `len` is the number of bytes the extension headers occupy; `upper_protocol` the first
/// next_header value that is not an extension header (59, 50, 51 count as upper protocols).
pub fn walk_extension_headers(data: &[u8], next_header: u8, limit: usize) -> Result<ExtHeaderWalk> {
    let mut next_header = next_header;
    let mut len = 0;
    let mut has_fragment = false;
    let mut count = 0;
    while is_extension_header(next_header) {
        if count == limit {
            return Err(Error);
        }
        count += 1;
        if next_header == ip_proto::FRAGMENT {
            has_fragment = true;
        }
        // `len` never exceeds `data.len()`: each header is checked to fit before it is skipped.
        let header = Ipv6ExtHeader::new_checked(data.get(len..).ok_or(Error)?)?;
        next_header = header.next_header();
        len += header.header_len();
    }
    Ok(ExtHeaderWalk {
        upper_protocol: next_header,
        len,
        has_fragment,
    })
}

#[cfg(test)]
mod tests;
