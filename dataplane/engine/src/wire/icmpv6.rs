//! ICMP for IPv6 (RFC 4443): the common 8-byte header.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |     Code      |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        Rest of Header                         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Data (for errors: as much of the invoking packet as fits) |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The checksum covers an IPv6 pseudo-header (RFC 8200 §8.1) as well as the message:
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Source Address (16 bytes)                     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |              Destination Address (16 bytes)                   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                   Upper-Layer Packet Length                   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      zero                     |  Next Header  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! [`Icmpv6Packet::fill_checksum`] takes the whole buffer as the ICMPv6 message, so the view
//! must wrap exactly the message (header and data), no more.

use super::{checksum, ip_proto, read_u16, read_u32, write_u16, write_u32, Field};
use core::net::Ipv6Addr;

mod field {
    use super::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const REST_OF_HEADER: Field = 4..8;
    pub const PAYLOAD: usize = 8;
}

/// Length of the common ICMPv6 header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Byte offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// Destination Unreachable.
pub const TYPE_DEST_UNREACHABLE: u8 = 1;
/// Packet Too Big.
pub const TYPE_PACKET_TOO_BIG: u8 = 2;
/// Time Exceeded.
pub const TYPE_TIME_EXCEEDED: u8 = 3;
/// Parameter Problem.
pub const TYPE_PARAM_PROBLEM: u8 = 4;
/// Echo Request.
pub const TYPE_ECHO_REQUEST: u8 = 128;
/// Echo Reply.
pub const TYPE_ECHO_REPLY: u8 = 129;

header_view! {
    /// A read/write view of an ICMPv6 message.
    Icmpv6Packet, HEADER_LEN, "the 8-byte header"
}

/// One's-complement sum of the pseudo-header and `message`, folded, not yet complemented.
fn pseudo_header_sum(src: &Ipv6Addr, dst: &Ipv6Addr, message: &[u8]) -> u16 {
    let len = message.len() as u32;
    let mut acc = u32::from(checksum::sum(&src.octets()))
        + u32::from(checksum::sum(&dst.octets()))
        + (len >> 16)
        + (len & 0xffff)
        + u32::from(ip_proto::ICMPV6)
        + u32::from(checksum::sum(message));
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The type-specific word in bytes 4..8 (the MTU for Packet Too Big).
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::REST_OF_HEADER.start)
    }

    /// The bytes after the 8-byte header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }

    /// True when the checksum over the pseudo-header and the whole buffer is valid.
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        pseudo_header_sum(src, dst, self.buffer.as_ref()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    /// Sets the message code.
    #[inline]
    pub fn set_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Sets the type-specific word in bytes 4..8.
    #[inline]
    pub fn set_rest_of_header(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::REST_OF_HEADER.start, value);
    }

    /// The bytes after the 8-byte header, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }

    /// Recomputes the checksum over the pseudo-header for `src` -> `dst` and the whole buffer.
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let check = !pseudo_header_sum(src, dst, self.buffer.as_ref());
        self.set_checksum(check);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    const SRC: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const DST: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);

    // Echo request fe80::1 -> fe80::2, id 0x1234, seq 1, data "abcd".
    static PACKET_BYTES: [u8; 12] = [
        0x80, 0x00, 0xab, 0xb8, 0x12, 0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64,
    ];

    static PAYLOAD_BYTES: [u8; 4] = *b"abcd";

    #[test]
    fn test_deconstruct() {
        let packet = Icmpv6Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.msg_type(), TYPE_ECHO_REQUEST);
        assert_eq!(packet.code(), 0);
        assert_eq!(packet.checksum(), 0xabb8);
        assert_eq!(packet.rest_of_header(), 0x1234_0001);
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
        assert!(packet.verify_checksum(&SRC, &DST));
        assert!(!packet.verify_checksum(&DST, &DST));
    }

    #[test]
    fn test_construct() {
        let mut bytes = vec![0xa5; 12];
        let mut packet = Icmpv6Packet::new_unchecked(&mut bytes);
        packet.set_msg_type(TYPE_ECHO_REQUEST);
        packet.set_code(0);
        packet.set_rest_of_header(0x1234_0001);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        packet.fill_checksum(&SRC, &DST);
        assert_eq!(&bytes[..], &PACKET_BYTES[..]);
    }

    #[test]
    fn test_odd_length_checksum() {
        // Same message with data "abc": checksum 0xac1d (computed independently).
        let mut bytes = [0xa5; 11];
        let mut packet = Icmpv6Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(TYPE_ECHO_REQUEST);
        packet.set_code(0);
        packet.set_rest_of_header(0x1234_0001);
        packet.payload_mut().copy_from_slice(b"abc");
        packet.fill_checksum(&SRC, &DST);
        assert_eq!(packet.checksum(), 0xac1d);
        assert!(packet.verify_checksum(&SRC, &DST));
    }

    #[test]
    fn test_checksum_matches_etherparse() {
        use etherparse::{IcmpEchoHeader, Icmpv6Header, Icmpv6Type};
        let header = Icmpv6Header::with_checksum(
            Icmpv6Type::EchoRequest(IcmpEchoHeader { id: 0x1234, seq: 1 }),
            SRC.octets(),
            DST.octets(),
            &PAYLOAD_BYTES,
        )
        .unwrap();
        assert_eq!(header.checksum, 0xabb8);
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(
            Icmpv6Packet::new_checked(&PACKET_BYTES[..7]).err(),
            Some(Error)
        );
        let packet = Icmpv6Packet::new_checked(&PACKET_BYTES[..8]).unwrap();
        assert!(packet.payload().is_empty());
    }
}
