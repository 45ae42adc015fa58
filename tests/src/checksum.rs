//! Internet checksums (RFC 1071), computed from scratch.
//!
//! These are deliberately naive full computations: the tests use them to build valid inputs and to
//! check what the engine produced with its incremental updates.

use core::net::Ipv4Addr;

/// One's-complement sum of `data` as big-endian 16-bit words (an odd last byte is padded with
/// zero), added to `initial`, not yet folded.
pub fn sum(initial: u32, data: &[u8]) -> u32 {
    let mut acc = u64::from(initial);
    let mut chunks = data.chunks_exact(2);
    for word in &mut chunks {
        acc += u64::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Folds a 32-bit one's-complement sum to 16 bits and complements it.
pub fn finish(sum: u32) -> u16 {
    let mut s = sum;
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// The IPv4 header checksum of `header` (the checksum field at bytes 10..12 is treated as zero).
pub fn ipv4_header(header: &[u8]) -> u16 {
    assert!(header.len() >= 20, "an IPv4 header has at least 20 bytes");
    let s = sum(0, &header[..10]);
    finish(sum(s, &header[12..]))
}

/// True when the IPv4 header (IHL taken from the header itself) carries a valid checksum.
pub fn ipv4_header_ok(packet: &[u8]) -> bool {
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    finish(sum(0, &packet[..ihl])) == 0
}

/// The UDP checksum over the IPv4 pseudo-header and `datagram` (UDP header + payload, with the
/// checksum field at bytes 6..8 treated as zero). A computed 0 is sent as 0xFFFF (RFC 768).
pub fn udp_ipv4(saddr: Ipv4Addr, daddr: Ipv4Addr, datagram: &[u8]) -> u16 {
    let mut s = sum(0, &saddr.octets());
    s = sum(s, &daddr.octets());
    s = sum(s, &[0, 17]);
    s = sum(s, &(datagram.len() as u16).to_be_bytes());
    s = sum(s, &datagram[..6]);
    s = sum(s, &datagram[8..]);
    match finish(s) {
        0 => 0xffff,
        c => c,
    }
}

/// True when the UDP datagram in an outer-IPv4 frame (Ethernet + 20-byte IPv4 + UDP, datagram
/// length taken from the UDP length field) has a valid, non-zero checksum.
pub fn outer_udp_ok(frame: &[u8]) -> bool {
    let ip = &frame[14..34];
    let saddr = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let daddr = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let udp_len = usize::from(u16::from_be_bytes([frame[38], frame[39]]));
    let datagram = &frame[34..34 + udp_len];
    let check = u16::from_be_bytes([datagram[6], datagram[7]]);
    check != 0 && check == udp_ipv4(saddr, daddr, datagram)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example_header() {
        // A textbook IPv4 header whose checksum is 0xB861.
        let header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_header(&header), 0xb861);
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(sum(0, &[0x12]), 0x1200);
        assert_eq!(sum(0, &[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }
}
