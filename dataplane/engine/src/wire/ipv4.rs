//! IPv4 header (RFC 791).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |Type of Service|          Total Length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Identification        |Flags|      Fragment Offset    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       Source Address                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Destination Address                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Options                    |    Padding    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! `check_len` only requires the fixed 20 bytes: cls_redirect checks the IHL and the option bytes
//! as separate steps with their own outcomes, so the view leaves that to the caller
//! ([`Ipv4Packet::header_len`] and [`Ipv4Packet::check_options_len`]).

use super::{checksum, read_u16, read_u32, write_u16, write_u32, Error, Field, Result};
use core::net::Ipv4Addr;

mod field {
    use super::Field;
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of the IPv4 header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;
/// The source and destination addresses, adjacent: one flow's address pair.
pub const ADDRS: core::ops::Range<usize> = field::SRC_ADDR.start..field::DST_ADDR.end;
/// Byte offset of the TTL field (the GRE last hop decrements the inner TTL there).
pub const TTL_OFFSET: usize = field::TTL;
/// Byte offset of the header checksum.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

const FLAG_MF: u16 = 0x2000;
const FLAG_DF: u16 = 0x4000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

header_view! {
    /// A read/write view of an IPv4 header.
    Ipv4Packet, HEADER_LEN, "the 20-byte fixed header"
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Checks that the IHL is at least 5 and that the buffer holds the options it announces.
    pub fn check_options_len(&self) -> Result<()> {
        let ihl = self.ihl();
        if ihl < 5 || self.buffer.as_ref().len() < self.header_len() {
            Err(Error)
        } else {
            Ok(())
        }
    }

    /// Version field (the high nibble of byte 0).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Internet header length in 32-bit words.
    #[inline]
    pub fn ihl(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] & 0x0f
    }

    /// Header length in bytes, options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// Type of service / DSCP+ECN byte.
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    /// Total length field.
    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Identification field.
    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT.start)
    }

    /// Don't Fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_DF != 0
    }

    /// More Fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_MF != 0
    }

    /// Fragment offset in 8-byte units.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & FRAG_OFFSET_MASK
    }

    /// True for any fragment: MF set or a non-zero offset (DF is irrelevant).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Source address as a big-endian integer.
    #[inline]
    pub fn src_addr_u32(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SRC_ADDR.start)
    }

    /// Destination address as a big-endian integer.
    #[inline]
    pub fn dst_addr_u32(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::DST_ADDR.start)
    }

    /// Destination address as its four bytes read into a native-endian word (no byte swap), to
    /// compare with addresses kept in that form.
    #[inline]
    pub fn dst_addr_wire(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::DST_ADDR];
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src_addr_u32())
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst_addr_u32())
    }

    /// True when the checksum over the first `header_len()` bytes is valid.
    /// Requires `check_options_len()` to have passed.
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(&self.buffer.as_ref()[..self.header_len()]) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version and IHL together.
    #[inline]
    pub fn set_version_ihl(&mut self, version: u8, ihl: u8) {
        self.buffer.as_mut()[field::VER_IHL] = (version << 4) | (ihl & 0x0f);
    }

    /// Sets the TOS byte.
    #[inline]
    pub fn set_tos(&mut self, value: u8) {
        self.buffer.as_mut()[field::TOS] = value;
    }

    /// Sets the total length field.
    #[inline]
    pub fn set_total_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, value);
    }

    /// Sets the identification field.
    #[inline]
    pub fn set_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT.start, value);
    }

    /// Sets the whole flags + fragment offset word.
    #[inline]
    pub fn set_flags_frag_offset(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::FLG_OFF.start, value);
    }

    /// Sets the TTL.
    #[inline]
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, value: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = value;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Sets the source address from a big-endian integer.
    #[inline]
    pub fn set_src_addr_u32(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::SRC_ADDR.start, value);
    }

    /// Sets the destination address from a big-endian integer.
    #[inline]
    pub fn set_dst_addr_u32(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::DST_ADDR.start, value);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.set_src_addr_u32(value.to_bits());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.set_dst_addr_u32(value.to_bits());
    }

    /// Recomputes the header checksum over `header_len()` bytes.
    /// Requires `check_options_len()` to have passed.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let check = checksum::checksum(&self.buffer.as_ref()[..self.header_len()]);
        self.set_checksum(check);
    }
}

/// The fields of an option-less IPv4 header that chance builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: u8,
    /// Payload length in bytes (total length minus 20).
    pub payload_len: u16,
    /// Time to live.
    pub ttl: u8,
}

impl Ipv4Repr {
    /// Parses an option-less, unfragmented IPv4 header.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Self> {
        packet.check_len()?;
        if packet.version() != 4 || packet.ihl() != 5 || packet.is_fragment() {
            return Err(Error);
        }
        let payload_len = packet
            .total_len()
            .checked_sub(HEADER_LEN as u16)
            .ok_or(Error)?;
        Ok(Self {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len,
            ttl: packet.ttl(),
        })
    }

    /// Length of the header this emits.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header (id 0, DF clear, checksum filled) into the first 20 bytes of `packet`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        packet.set_version_ihl(4, 5);
        packet.set_tos(0);
        packet.set_total_len(self.payload_len.saturating_add(HEADER_LEN as u16));
        packet.set_ident(0);
        packet.set_flags_frag_offset(0);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 192.168.0.1 -> 192.168.0.199, ICMP, TTL 64, DF, id 0x1c46, total length 84.
    static PACKET_BYTES: [u8; 20] = [
        0x45, 0x00, 0x00, 0x54, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x01, 0x9c, 0x4a, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn packet_repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(192, 168, 0, 1),
            dst_addr: Ipv4Addr::new(192, 168, 0, 199),
            protocol: 1,
            payload_len: 64,
            ttl: 64,
        }
    }

    #[test]
    fn test_deconstruct() {
        let packet = Ipv4Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.ihl(), 5);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.tos(), 0);
        assert_eq!(packet.total_len(), 84);
        assert_eq!(packet.ident(), 0x1c46);
        assert!(packet.dont_frag());
        assert!(!packet.more_frags());
        assert_eq!(packet.frag_offset(), 0);
        assert!(!packet.is_fragment());
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), 1);
        assert_eq!(packet.checksum(), 0x9c4a);
        assert_eq!(packet.src_addr(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(192, 168, 0, 199));
        assert!(packet.verify_checksum());
    }

    #[test]
    fn test_construct() {
        let mut bytes = vec![0xa5; 20];
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes);
        packet.set_version_ihl(4, 5);
        packet.set_tos(0);
        packet.set_total_len(84);
        packet.set_ident(0x1c46);
        packet.set_flags_frag_offset(0x4000);
        packet.set_ttl(64);
        packet.set_protocol(1);
        packet.set_src_addr(Ipv4Addr::new(192, 168, 0, 1));
        packet.set_dst_addr(Ipv4Addr::new(192, 168, 0, 199));
        packet.fill_checksum();
        assert_eq!(&bytes[..], &PACKET_BYTES[..]);
    }

    #[test]
    fn test_parse() {
        let packet = Ipv4Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&packet), Ok(packet_repr()));
    }

    #[test]
    fn test_emit_round_trips() {
        let mut bytes = vec![0xa5; 20];
        let repr = packet_repr();
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut bytes));
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&packet), Ok(repr));
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(
            Ipv4Packet::new_checked(&PACKET_BYTES[..19]).err(),
            Some(Error)
        );
    }

    #[test]
    fn options_beyond_the_buffer_fail_the_options_check() {
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x46;
        assert_eq!(
            Ipv4Packet::new_unchecked(&bytes[..]).check_options_len(),
            Err(Error)
        );
        bytes[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_unchecked(&bytes[..]).check_options_len(),
            Err(Error)
        );
    }

    #[test]
    fn fragment_bits_are_decoded() {
        let mut bytes = PACKET_BYTES;
        bytes[6] = 0x20; // MF
        assert!(Ipv4Packet::new_unchecked(&bytes[..]).is_fragment());
        bytes[6] = 0x00;
        bytes[7] = 0x01; // offset 1
        assert!(Ipv4Packet::new_unchecked(&bytes[..]).is_fragment());
    }
}
