//! TCP header (RFC 9293).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Source Port          |       Destination Port        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        Sequence Number                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Acknowledgment Number                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Data |       |C|E|U|A|P|R|S|F|                               |
//! | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//! |       |       |R|E|G|K|H|T|N|N|                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Checksum            |         Urgent Pointer        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           [Options]                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! `check_len` only requires the fixed 20 bytes: cls_redirect reads the ports and flags and never
//! validates the data offset, so neither does the view.

use super::{read_u16, read_u32, write_u16, write_u32, Field};

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// Length of the TCP header without options.
pub const HEADER_LEN: usize = field::URGENT.end;
/// Byte offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// Bits of the flags byte (byte 13).
pub mod flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field is significant.
    pub const URG: u8 = 0x20;
}

header_view! {
    /// A read/write view of a TCP header.
    TcpPacket, HEADER_LEN, "the 20-byte fixed header (the data offset is not validated)"
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM.start)
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM.start)
    }

    /// Data offset in 32-bit words (the high nibble of byte 12).
    #[inline]
    pub fn data_offset(&self) -> u8 {
        self.buffer.as_ref()[field::DATA_OFFSET] >> 4
    }

    /// Header length in bytes as the data offset announces it (not validated).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset()) * 4
    }

    /// The flags byte (byte 13): CWR, ECE, URG, ACK, PSH, RST, SYN, FIN.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// FIN flag.
    #[inline]
    pub fn fin(&self) -> bool {
        self.flags() & flags::FIN != 0
    }

    /// SYN flag.
    #[inline]
    pub fn syn(&self) -> bool {
        self.flags() & flags::SYN != 0
    }

    /// RST flag.
    #[inline]
    pub fn rst(&self) -> bool {
        self.flags() & flags::RST != 0
    }

    /// PSH flag.
    #[inline]
    pub fn psh(&self) -> bool {
        self.flags() & flags::PSH != 0
    }

    /// ACK flag.
    #[inline]
    pub fn ack(&self) -> bool {
        self.flags() & flags::ACK != 0
    }

    /// URG flag.
    #[inline]
    pub fn urg(&self) -> bool {
        self.flags() & flags::URG != 0
    }

    /// Window size.
    #[inline]
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WIN_SIZE.start)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT.start, value);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT.start, value);
    }

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM.start, value);
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM.start, value);
    }

    /// Sets the data offset (in words), keeping the low nibble of byte 12.
    #[inline]
    pub fn set_data_offset(&mut self, value: u8) {
        let byte = &mut self.buffer.as_mut()[field::DATA_OFFSET];
        *byte = (value << 4) | (*byte & 0x0f);
    }

    /// Sets the whole flags byte.
    #[inline]
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    /// Sets the window size.
    #[inline]
    pub fn set_window_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::WIN_SIZE.start, value);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT.start, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    // 49152 -> 80, seq 0x01234567, ack 0x89abcdef, doff 5, SYN|ACK, window 0x0123,
    // checksum 0xbeef (not computed), urgent 0.
    static PACKET_BYTES: [u8; 20] = [
        0xc0, 0x00, 0x00, 0x50, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x50, 0x12, 0x01,
        0x23, 0xbe, 0xef, 0x00, 0x00,
    ];

    #[test]
    fn test_deconstruct() {
        let packet = TcpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.src_port(), 49152);
        assert_eq!(packet.dst_port(), 80);
        assert_eq!(packet.seq_number(), 0x0123_4567);
        assert_eq!(packet.ack_number(), 0x89ab_cdef);
        assert_eq!(packet.data_offset(), 5);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.flags(), flags::SYN | flags::ACK);
        assert!(!packet.fin());
        assert!(packet.syn());
        assert!(!packet.rst());
        assert!(!packet.psh());
        assert!(packet.ack());
        assert!(!packet.urg());
        assert_eq!(packet.window_len(), 0x0123);
        assert_eq!(packet.checksum(), 0xbeef);
        assert_eq!(packet.urgent_at(), 0);
    }

    #[test]
    fn test_construct() {
        let mut bytes = vec![0xa5; 20];
        // set_data_offset keeps the reserved low nibble of byte 12, so that one is not poisoned.
        bytes[12] = 0x00;
        let mut packet = TcpPacket::new_unchecked(&mut bytes);
        packet.set_src_port(49152);
        packet.set_dst_port(80);
        packet.set_seq_number(0x0123_4567);
        packet.set_ack_number(0x89ab_cdef);
        packet.set_data_offset(5);
        packet.set_flags(flags::SYN | flags::ACK);
        packet.set_window_len(0x0123);
        packet.set_checksum(0xbeef);
        packet.set_urgent_at(0);
        assert_eq!(&bytes[..], &PACKET_BYTES[..]);
    }

    #[test]
    fn test_set_data_offset_keeps_low_nibble() {
        let mut bytes = [0xa5; 20];
        TcpPacket::new_unchecked(&mut bytes[..]).set_data_offset(15);
        assert_eq!(bytes[12], 0xf5);
    }

    type FlagGetter = fn(&TcpPacket<[u8; 20]>) -> bool;

    #[test]
    fn test_each_flag() {
        let cases: [(u8, FlagGetter); 6] = [
            (flags::FIN, TcpPacket::fin),
            (flags::SYN, TcpPacket::syn),
            (flags::RST, TcpPacket::rst),
            (flags::PSH, TcpPacket::psh),
            (flags::ACK, TcpPacket::ack),
            (flags::URG, TcpPacket::urg),
        ];
        for (bit, getter) in cases {
            let mut bytes = PACKET_BYTES;
            bytes[13] = bit;
            let packet = TcpPacket::new_unchecked(bytes);
            assert!(getter(&packet), "flag {bit:#04x}");
            bytes[13] = !bit;
            let packet = TcpPacket::new_unchecked(bytes);
            assert!(!getter(&packet), "flag {bit:#04x}");
        }
    }

    #[test]
    fn test_data_offset_is_not_validated() {
        let mut bytes = PACKET_BYTES;
        bytes[12] = 0x00;
        assert!(TcpPacket::new_checked(&bytes[..]).is_ok());
        bytes[12] = 0xf0;
        assert!(TcpPacket::new_checked(&bytes[..]).is_ok());
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(
            TcpPacket::new_checked(&PACKET_BYTES[..19]).err(),
            Some(Error)
        );
    }
}
