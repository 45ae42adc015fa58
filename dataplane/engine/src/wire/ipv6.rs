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
mod tests {
    use super::*;

    const SRC: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const DST: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);

    // fe80::1 -> fe80::2, traffic class 0x12, flow label 0x34567, payload 12 bytes, UDP,
    // hop limit 64.
    static PACKET_BYTES: [u8; 40] = [
        0x61, 0x23, 0x45, 0x67, 0x00, 0x0c, 0x11, 0x40, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    ];

    fn packet_repr() -> Ipv6Repr {
        Ipv6Repr {
            src_addr: SRC,
            dst_addr: DST,
            next_header: ip_proto::UDP,
            payload_len: 12,
            hop_limit: 64,
        }
    }

    #[test]
    fn test_deconstruct() {
        let packet = Ipv6Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.version(), 6);
        assert_eq!(packet.traffic_class(), 0x12);
        assert_eq!(packet.flow_label(), 0x34567);
        assert_eq!(packet.payload_len(), 12);
        assert_eq!(packet.next_header(), ip_proto::UDP);
        assert_eq!(packet.hop_limit(), 64);
        assert_eq!(packet.src_addr(), SRC);
        assert_eq!(packet.dst_addr(), DST);
        assert!(packet.payload().is_empty());
    }

    #[test]
    fn test_construct() {
        let mut bytes = vec![0xa5; 40];
        let mut packet = Ipv6Packet::new_unchecked(&mut bytes);
        packet.set_version(6);
        packet.set_traffic_class(0x12);
        packet.set_flow_label(0x34567);
        packet.set_payload_len(12);
        packet.set_next_header(ip_proto::UDP);
        packet.set_hop_limit(64);
        packet.set_src_addr(SRC);
        packet.set_dst_addr(DST);
        assert_eq!(&bytes[..], &PACKET_BYTES[..]);
    }

    #[test]
    fn test_version_tc_flow_setters_are_independent() {
        let mut bytes = [0x00; 40];
        let mut packet = Ipv6Packet::new_unchecked(&mut bytes[..]);
        packet.set_flow_label(0xfffff);
        packet.set_traffic_class(0xff);
        packet.set_version(0xf);
        assert_eq!(&bytes[..4], &[0xff, 0xff, 0xff, 0xff]);
        let mut packet = Ipv6Packet::new_unchecked(&mut bytes[..]);
        packet.set_traffic_class(0);
        assert_eq!(&bytes[..4], &[0xf0, 0x0f, 0xff, 0xff]);
        let mut packet = Ipv6Packet::new_unchecked(&mut bytes[..]);
        packet.set_flow_label(0);
        packet.set_version(6);
        assert_eq!(&bytes[..4], &[0x60, 0x00, 0x00, 0x00]);
    }

    #[test]
    fn test_hop_limit_offset() {
        assert_eq!(PACKET_BYTES[HOP_LIMIT_OFFSET], 64);
    }

    #[test]
    fn test_parse() {
        let packet = Ipv6Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&packet), Ok(packet_repr()));
    }

    #[test]
    fn test_parse_wrong_version() {
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x41;
        assert_eq!(
            Ipv6Repr::parse(&Ipv6Packet::new_unchecked(&bytes[..])),
            Err(Error)
        );
    }

    #[test]
    fn test_emit() {
        let mut bytes = vec![0xa5; 40];
        let repr = packet_repr();
        assert_eq!(repr.buffer_len(), HEADER_LEN);
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut bytes));
        let mut expected = PACKET_BYTES;
        expected[..4].copy_from_slice(&[0x60, 0x00, 0x00, 0x00]);
        assert_eq!(&bytes[..], &expected[..]);
        let packet = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&packet), Ok(repr));
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(
            Ipv6Packet::new_checked(&PACKET_BYTES[..39]).err(),
            Some(Error)
        );
        assert_eq!(
            Ipv6Repr::parse(&Ipv6Packet::new_unchecked(&PACKET_BYTES[..39])),
            Err(Error)
        );
    }

    // Destination options, next header TCP, hdr ext len 1 (16 bytes): a PadN option over 14 bytes.
    static EXT_HEADER_BYTES: [u8; 16] = [
        0x06, 0x01, 0x01, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00,
    ];

    #[test]
    fn test_ext_header_deconstruct() {
        let header = Ipv6ExtHeader::new_checked(&EXT_HEADER_BYTES[..]).unwrap();
        assert_eq!(header.next_header(), ip_proto::TCP);
        assert_eq!(header.header_len_field(), 1);
        assert_eq!(header.header_len(), 16);
        assert_eq!(header.data(), &EXT_HEADER_BYTES[2..]);
    }

    #[test]
    fn test_ext_header_construct() {
        let mut bytes = vec![0xa5; 16];
        bytes[2..].copy_from_slice(&EXT_HEADER_BYTES[2..]);
        let mut header = Ipv6ExtHeader::new_unchecked(&mut bytes);
        header.set_next_header(ip_proto::TCP);
        header.set_header_len_field(1);
        assert_eq!(&bytes[..], &EXT_HEADER_BYTES[..]);
    }

    #[test]
    fn test_ext_header_impossible_len() {
        assert_eq!(Ipv6ExtHeader::new_checked(&[][..]).err(), Some(Error));
        assert_eq!(
            Ipv6ExtHeader::new_checked(&EXT_HEADER_BYTES[..1]).err(),
            Some(Error)
        );
        assert_eq!(
            Ipv6ExtHeader::new_checked(&EXT_HEADER_BYTES[..15]).err(),
            Some(Error)
        );
        assert!(Ipv6ExtHeader::new_checked(&EXT_HEADER_BYTES[..]).is_ok());
    }

    #[test]
    fn test_is_extension_header() {
        for value in 0..=u8::MAX {
            let expected = matches!(value, 0 | 43 | 44 | 60 | 135);
            assert_eq!(is_extension_header(value), expected, "next header {value}");
        }
    }

    /// Builds a chain of 8-byte extension headers: `kinds[i]` is the type of header i (each
    /// header stores the next kind, the last one stores `upper`), followed by 4 upper-layer bytes.
    fn chain(kinds: &[u8], upper: u8) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (i, _) in kinds.iter().enumerate() {
            let next = kinds.get(i + 1).copied().unwrap_or(upper);
            bytes.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        }
        bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        bytes
    }

    #[test]
    fn test_walk_no_extension_headers() {
        let data = [0xde, 0xad, 0xbe, 0xef];
        assert_eq!(
            walk_extension_headers(&data, ip_proto::TCP, 5),
            Ok(ExtHeaderWalk {
                upper_protocol: ip_proto::TCP,
                len: 0,
                has_fragment: false,
            })
        );
        // Nothing is read when the first next header is already an upper protocol.
        assert_eq!(
            walk_extension_headers(&[], ip_proto::UDP, 0).map(|w| w.len),
            Ok(0)
        );
    }

    #[test]
    fn test_walk_hop_by_hop_and_destination_options() {
        let mut data = Vec::new();
        // Hop-by-hop, 8 bytes, next: destination options.
        data.extend_from_slice(&[ip_proto::DEST_OPTS, 0, 1, 4, 0, 0, 0, 0]);
        // Destination options, 16 bytes, next: UDP.
        data.extend_from_slice(&EXT_HEADER_BYTES);
        data[8] = ip_proto::UDP;
        data.extend_from_slice(&[0; 8]);
        assert_eq!(
            walk_extension_headers(&data, ip_proto::HOP_BY_HOP, 5),
            Ok(ExtHeaderWalk {
                upper_protocol: ip_proto::UDP,
                len: 24,
                has_fragment: false,
            })
        );
    }

    #[test]
    fn test_walk_fragment_header_sets_has_fragment() {
        let data = chain(&[ip_proto::FRAGMENT], ip_proto::TCP);
        assert_eq!(
            walk_extension_headers(&data, ip_proto::FRAGMENT, 5),
            Ok(ExtHeaderWalk {
                upper_protocol: ip_proto::TCP,
                len: 8,
                has_fragment: true,
            })
        );
    }

    #[test]
    fn test_walk_fragment_reserved_byte_is_read_as_length() {
        // cls_redirect's behaviour: a non-zero reserved byte makes the fragment header longer.
        let mut data = chain(&[ip_proto::FRAGMENT], ip_proto::TCP);
        data[1] = 1;
        assert_eq!(
            walk_extension_headers(&data, ip_proto::FRAGMENT, 5),
            Err(Error)
        );
        data.extend_from_slice(&[0; 4]);
        assert_eq!(
            walk_extension_headers(&data, ip_proto::FRAGMENT, 5).map(|w| w.len),
            Ok(16)
        );
    }

    #[test]
    fn test_walk_limit() {
        let five = [
            ip_proto::HOP_BY_HOP,
            ip_proto::DEST_OPTS,
            ip_proto::ROUTING,
            ip_proto::FRAGMENT,
            ip_proto::DEST_OPTS,
        ];
        let data = chain(&five, ip_proto::TCP);
        assert_eq!(
            walk_extension_headers(&data, five[0], 5),
            Ok(ExtHeaderWalk {
                upper_protocol: ip_proto::TCP,
                len: 40,
                has_fragment: true,
            })
        );

        let six = [
            ip_proto::HOP_BY_HOP,
            ip_proto::DEST_OPTS,
            ip_proto::ROUTING,
            ip_proto::FRAGMENT,
            ip_proto::MOBILITY,
            ip_proto::DEST_OPTS,
        ];
        let data = chain(&six, ip_proto::TCP);
        assert_eq!(walk_extension_headers(&data, six[0], 5), Err(Error));
        assert_eq!(
            walk_extension_headers(&data, six[0], 6).map(|w| w.len),
            Ok(48)
        );
        assert_eq!(
            walk_extension_headers(&data, six[0], 0),
            Err(Error),
            "limit 0 accepts no extension header"
        );
    }

    #[test]
    fn test_walk_truncated_first_two_bytes() {
        let data = chain(&[ip_proto::HOP_BY_HOP], ip_proto::TCP);
        assert_eq!(
            walk_extension_headers(&data[..1], ip_proto::HOP_BY_HOP, 5),
            Err(Error)
        );
        assert_eq!(
            walk_extension_headers(&[], ip_proto::HOP_BY_HOP, 5),
            Err(Error)
        );
        // Second header: only one of its two shared bytes is present.
        let data = chain(&[ip_proto::HOP_BY_HOP, ip_proto::DEST_OPTS], ip_proto::TCP);
        assert_eq!(
            walk_extension_headers(&data[..9], ip_proto::HOP_BY_HOP, 5),
            Err(Error)
        );
        // Second header missing entirely after an exact first header.
        assert_eq!(
            walk_extension_headers(&data[..8], ip_proto::HOP_BY_HOP, 5),
            Err(Error)
        );
    }

    #[test]
    fn test_walk_truncated_skip() {
        let data = chain(&[ip_proto::HOP_BY_HOP], ip_proto::TCP);
        // The 2 shared bytes are there, the rest of the 8 are not.
        assert_eq!(
            walk_extension_headers(&data[..7], ip_proto::HOP_BY_HOP, 5),
            Err(Error)
        );
        // The header announces 16 bytes but only 12 follow.
        let mut data = data;
        data[1] = 1;
        assert_eq!(data.len(), 12);
        assert_eq!(
            walk_extension_headers(&data, ip_proto::HOP_BY_HOP, 5),
            Err(Error)
        );
        // Exactly enough bytes is fine (the upper-layer header itself is not read).
        data.extend_from_slice(&[0; 4]);
        assert_eq!(
            walk_extension_headers(&data, ip_proto::HOP_BY_HOP, 5).map(|w| w.len),
            Ok(16)
        );
    }

    #[test]
    fn test_walk_no_next_header_is_upper_protocol() {
        let data = chain(&[ip_proto::DEST_OPTS], ip_proto::NO_NEXT_HEADER);
        assert_eq!(
            walk_extension_headers(&data, ip_proto::DEST_OPTS, 5),
            Ok(ExtHeaderWalk {
                upper_protocol: ip_proto::NO_NEXT_HEADER,
                len: 8,
                has_fragment: false,
            })
        );
        assert_eq!(
            walk_extension_headers(&[], ip_proto::NO_NEXT_HEADER, 5).map(|w| w.upper_protocol),
            Ok(59)
        );
        for upper in [ip_proto::ESP, ip_proto::AH] {
            assert_eq!(
                walk_extension_headers(&[], upper, 5).map(|w| w.upper_protocol),
                Ok(upper)
            );
        }
    }
}
