//! GRE base header (RFC 2784), as chance emits it towards a last hop: no checksum, key or
//! sequence number.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |C|       Reserved0       | Ver |         Protocol Type         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      Checksum (optional)      |       Reserved1 (Optional)    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The view reports the first 16 bits (C, Reserved0, Ver) as one `flags_version` word;
//! [`GreRepr`] only accepts the all-zero word (no optional fields, version 0).

use super::{read_u16, write_u16, Error, Field, Result};

mod field {
    use super::Field;
    pub const FLAGS_VERSION: Field = 0..2;
    pub const PROTOCOL: Field = 2..4;
}

/// Length of the GRE base header.
pub const HEADER_LEN: usize = field::PROTOCOL.end;

header_view! {
    /// A read/write view of a GRE base header.
    GrePacket, HEADER_LEN, "the 4-byte base header"
}

impl<T: AsRef<[u8]>> GrePacket<T> {
    /// The first 16 bits: flags, reserved bits and version.
    #[inline]
    pub fn flags_version(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLAGS_VERSION.start)
    }

    /// Protocol type (an EtherType).
    #[inline]
    pub fn protocol(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PROTOCOL.start)
    }

    /// The bytes after the 4-byte base header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GrePacket<T> {
    /// Sets the first 16 bits: flags, reserved bits and version.
    #[inline]
    pub fn set_flags_version(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::FLAGS_VERSION.start, value);
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::PROTOCOL.start, value);
    }

    /// The bytes after the 4-byte base header, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The fields of a plain GRE header (no optional fields, version 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreRepr {
    /// Protocol type of the payload (an EtherType).
    pub protocol: u16,
}

impl GreRepr {
    /// Parses a GRE base header whose flags/version word is zero.
    pub fn parse<T: AsRef<[u8]>>(packet: &GrePacket<T>) -> Result<Self> {
        packet.check_len()?;
        if packet.flags_version() != 0 {
            return Err(Error);
        }
        Ok(Self {
            protocol: packet.protocol(),
        })
    }

    /// Length of the header this emits.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header (flags/version 0) into the first 4 bytes of `packet`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut GrePacket<T>) {
        packet.set_flags_version(0);
        packet.set_protocol(self.protocol);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Plain GRE carrying IPv4, followed by 2 payload bytes.
    static PACKET_BYTES: [u8; 6] = [0x00, 0x00, 0x08, 0x00, 0x45, 0x00];

    #[test]
    fn test_deconstruct() {
        let packet = GrePacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.flags_version(), 0);
        assert_eq!(packet.protocol(), super::super::ethertype::IPV4);
        assert_eq!(packet.payload(), &[0x45, 0x00]);
    }

    #[test]
    fn test_construct() {
        let mut bytes = vec![0xa5; 6];
        let mut packet = GrePacket::new_unchecked(&mut bytes);
        packet.set_flags_version(0);
        packet.set_protocol(0x0800);
        packet.payload_mut().copy_from_slice(&[0x45, 0x00]);
        assert_eq!(&bytes[..], &PACKET_BYTES[..]);
    }

    #[test]
    fn test_parse() {
        let packet = GrePacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(GreRepr::parse(&packet), Ok(GreRepr { protocol: 0x0800 }));
    }

    #[test]
    fn test_parse_rejects_flags_or_version() {
        for word in [0x8000u16, 0x2000, 0x0001, 0x0007] {
            let mut bytes = PACKET_BYTES;
            bytes[..2].copy_from_slice(&word.to_be_bytes());
            let packet = GrePacket::new_checked(&bytes[..]).unwrap();
            assert_eq!(packet.flags_version(), word);
            assert_eq!(GreRepr::parse(&packet), Err(Error));
        }
    }

    #[test]
    fn test_emit() {
        let mut bytes = vec![0xa5; 4];
        let repr = GreRepr { protocol: 0x86dd };
        assert_eq!(repr.buffer_len(), HEADER_LEN);
        repr.emit(&mut GrePacket::new_unchecked(&mut bytes));
        assert_eq!(&bytes[..], &[0x00, 0x00, 0x86, 0xdd]);
        let packet = GrePacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(GreRepr::parse(&packet), Ok(repr));
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(
            GrePacket::new_checked(&PACKET_BYTES[..3]).err(),
            Some(Error)
        );
        assert_eq!(
            GreRepr::parse(&GrePacket::new_unchecked(&PACKET_BYTES[..3])),
            Err(Error)
        );
    }
}
