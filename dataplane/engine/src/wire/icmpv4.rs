//! ICMP for IPv4 (RFC 792): the common 8-byte header.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |     Code      |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        Rest of Header                         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Data (for errors: the offending IP header + 8 bytes) ...  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The rest-of-header word is type-specific (identifier + sequence for echo, next-hop MTU for
//! "fragmentation needed", unused for most errors); the view reports it as one `u32`.

use super::{checksum, read_u16, read_u32, write_u16, write_u32, Field};

mod field {
    use super::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const REST_OF_HEADER: Field = 4..8;
    pub const PAYLOAD: usize = 8;
}

/// Length of the common ICMPv4 header.
pub const HEADER_LEN: usize = field::PAYLOAD;
/// Byte offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// Echo Reply.
pub const TYPE_ECHO_REPLY: u8 = 0;
/// Destination Unreachable.
pub const TYPE_DEST_UNREACHABLE: u8 = 3;
/// Destination Unreachable code: fragmentation needed and DF set.
pub const CODE_FRAG_NEEDED: u8 = 4;
/// Echo Request.
pub const TYPE_ECHO_REQUEST: u8 = 8;
/// Time Exceeded.
pub const TYPE_TIME_EXCEEDED: u8 = 11;

header_view! {
    /// A read/write view of an ICMPv4 message.
    Icmpv4Packet, HEADER_LEN, "the 8-byte header"
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
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

    /// The type-specific word in bytes 4..8.
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::REST_OF_HEADER.start)
    }

    /// The bytes after the 8-byte header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }

    /// True when the checksum over the whole buffer is valid.
    pub fn verify_checksum(&self) -> bool {
        checksum::sum(self.buffer.as_ref()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
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

    /// Recomputes the checksum over the whole buffer (header and data).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let check = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(check);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    // Echo request, id 0x1234, seq 1, data "abcd".
    static PACKET_BYTES: [u8; 12] = [
        0x08, 0x00, 0x21, 0x04, 0x12, 0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64,
    ];

    static PAYLOAD_BYTES: [u8; 4] = *b"abcd";

    #[test]
    fn test_deconstruct() {
        let packet = Icmpv4Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.msg_type(), TYPE_ECHO_REQUEST);
        assert_eq!(packet.code(), 0);
        assert_eq!(packet.checksum(), 0x2104);
        assert_eq!(packet.rest_of_header(), 0x1234_0001);
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn test_construct() {
        let mut bytes = vec![0xa5; 12];
        let mut packet = Icmpv4Packet::new_unchecked(&mut bytes);
        packet.set_msg_type(TYPE_ECHO_REQUEST);
        packet.set_code(0);
        packet.set_rest_of_header(0x1234_0001);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        packet.fill_checksum();
        assert_eq!(&bytes[..], &PACKET_BYTES[..]);
    }

    #[test]
    fn test_frag_needed_fields() {
        let mut bytes = [0xa5; 8];
        let mut packet = Icmpv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(TYPE_DEST_UNREACHABLE);
        packet.set_code(CODE_FRAG_NEEDED);
        packet.set_rest_of_header(1400);
        packet.fill_checksum();
        assert!(packet.verify_checksum());
        assert_eq!(bytes, [0x03, 0x04, 0xf7, 0x83, 0x00, 0x00, 0x05, 0x78]);
    }

    #[test]
    fn test_corrupt_checksum_fails_verification() {
        let mut bytes = PACKET_BYTES;
        bytes[11] ^= 0x01;
        assert!(!Icmpv4Packet::new_unchecked(&bytes[..]).verify_checksum());
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(
            Icmpv4Packet::new_checked(&PACKET_BYTES[..7]).err(),
            Some(Error)
        );
        let packet = Icmpv4Packet::new_checked(&PACKET_BYTES[..8]).unwrap();
        assert!(packet.payload().is_empty());
    }
}
