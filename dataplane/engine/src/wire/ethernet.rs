//! Ethernet II frame header (IEEE 802.3, DIX framing).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Destination MAC Address                    |
//! +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                               |                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//! |                      Source MAC Address                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           EtherType           |            Payload ...        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! No 802.1Q tag handling: a VLAN-tagged frame simply reports EtherType 0x8100
//! ([`super::ethertype::VLAN`]), as cls_redirect sees it.

use super::{read_u16, write_u16, Field, Result};

mod field {
    use super::Field;
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: usize = 14;
}

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD;

header_view! {
    /// A read/write view of an Ethernet II frame.
    EthernetFrame, HEADER_LEN, "the 14-byte header"
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Destination MAC address.
    #[inline]
    pub fn dst_addr(&self) -> [u8; 6] {
        let mut addr = [0; 6];
        addr.copy_from_slice(&self.buffer.as_ref()[field::DESTINATION]);
        addr
    }

    /// Source MAC address.
    #[inline]
    pub fn src_addr(&self) -> [u8; 6] {
        let mut addr = [0; 6];
        addr.copy_from_slice(&self.buffer.as_ref()[field::SOURCE]);
        addr
    }

    /// EtherType of the payload.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE.start)
    }

    /// The bytes after the 14-byte header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: [u8; 6]) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&value);
    }

    /// Sets the source MAC address.
    #[inline]
    pub fn set_src_addr(&mut self, value: [u8; 6]) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&value);
    }

    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE.start, value);
    }

    /// Swaps the destination and source MAC addresses in place.
    #[inline]
    pub fn swap_addrs(&mut self) {
        let (dst, src) =
            self.buffer.as_mut()[..field::SOURCE.end].split_at_mut(field::SOURCE.start);
        dst.swap_with_slice(src);
    }

    /// The bytes after the 14-byte header, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// The fields of an Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetRepr {
    /// Source MAC address.
    pub src_addr: [u8; 6],
    /// Destination MAC address.
    pub dst_addr: [u8; 6],
    /// EtherType of the payload.
    pub ethertype: u16,
}

impl EthernetRepr {
    /// Parses an Ethernet II header.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<Self> {
        frame.check_len()?;
        Ok(Self {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// Length of the header this emits.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first 14 bytes of `frame`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    // 02:00:00:00:00:01 <- 02:00:00:00:00:02, IPv4, 4 payload bytes.
    static FRAME_BYTES: [u8; 18] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0xaa,
        0xbb, 0xcc, 0xdd,
    ];

    static PAYLOAD_BYTES: [u8; 4] = [0xaa, 0xbb, 0xcc, 0xdd];

    const DST: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
    const SRC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

    fn frame_repr() -> EthernetRepr {
        EthernetRepr {
            src_addr: SRC,
            dst_addr: DST,
            ethertype: 0x0800,
        }
    }

    #[test]
    fn test_deconstruct() {
        let frame = EthernetFrame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(frame.dst_addr(), DST);
        assert_eq!(frame.src_addr(), SRC);
        assert_eq!(frame.ethertype(), super::super::ethertype::IPV4);
        assert_eq!(frame.payload(), &PAYLOAD_BYTES[..]);
    }

    #[test]
    fn test_construct() {
        let mut bytes = vec![0xa5; 18];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes);
        frame.set_dst_addr(DST);
        frame.set_src_addr(SRC);
        frame.set_ethertype(0x0800);
        frame.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(&bytes[..], &FRAME_BYTES[..]);
    }

    #[test]
    fn test_parse() {
        let frame = EthernetFrame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(EthernetRepr::parse(&frame), Ok(frame_repr()));
    }

    #[test]
    fn test_emit() {
        let mut bytes = vec![0xa5; 18];
        let repr = frame_repr();
        assert_eq!(repr.buffer_len(), HEADER_LEN);
        let mut frame = EthernetFrame::new_unchecked(&mut bytes);
        repr.emit(&mut frame);
        frame.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(&bytes[..], &FRAME_BYTES[..]);
    }

    #[test]
    fn test_swap_addrs() {
        let mut bytes = FRAME_BYTES;
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        frame.swap_addrs();
        assert_eq!(frame.dst_addr(), SRC);
        assert_eq!(frame.src_addr(), DST);
        assert_eq!(frame.ethertype(), 0x0800);
        assert_eq!(frame.payload(), &PAYLOAD_BYTES[..]);
    }

    #[test]
    fn test_header_only_has_empty_payload() {
        let frame = EthernetFrame::new_checked(&FRAME_BYTES[..HEADER_LEN]).unwrap();
        assert!(frame.payload().is_empty());
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(
            EthernetFrame::new_checked(&FRAME_BYTES[..13]).err(),
            Some(Error)
        );
        assert_eq!(EthernetFrame::new_checked(&[][..]).err(), Some(Error));
        assert_eq!(
            EthernetRepr::parse(&EthernetFrame::new_unchecked(&FRAME_BYTES[..13])),
            Err(Error)
        );
    }
}
