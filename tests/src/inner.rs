//! Inner packets: IPv4 / IPv6 with TCP, UDP, ICMPv4, ICMPv6, IPv4 options, IPv6 extension headers,
//! fragments, and ICMP errors quoting another packet.
//!
//! Well-formed headers are written with etherparse (lengths and checksums computed); anything
//! malformed is made by editing the built bytes (see [`patch`]) or from raw bytes ([`L4::Raw`]).

use core::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{
    icmpv4, IcmpEchoHeader, Icmpv4Header, Icmpv4Type, Icmpv6Header, Icmpv6Type, IpDscp,
    IpFragOffset, IpNumber, Ipv4Header, Ipv4Options, Ipv6FlowLabel, Ipv6Header, TcpHeader,
    UdpHeader,
};

/// TCP FIN flag.
pub const FIN: u8 = 0x01;
/// TCP SYN flag.
pub const SYN: u8 = 0x02;
/// TCP RST flag.
pub const RST: u8 = 0x04;
/// TCP PSH flag.
pub const PSH: u8 = 0x08;
/// TCP ACK flag.
pub const ACK: u8 = 0x10;

/// The transport part of an inner packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L4 {
    /// A 20-byte TCP header (no options) plus payload, with a valid checksum.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Flags byte ([`FIN`], [`SYN`], [`RST`], [`PSH`], [`ACK`], or'ed).
        flags: u8,
        /// Sequence number.
        seq: u32,
        /// Acknowledgment number.
        ack: u32,
        /// Payload.
        payload: Vec<u8>,
    },
    /// A UDP header plus payload, with a valid checksum.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Payload.
        payload: Vec<u8>,
    },
    /// An ICMPv4 message (8-byte header per etherparse, valid checksum) plus payload.
    Icmpv4 {
        /// Type, code and the rest of the header.
        icmp_type: Icmpv4Type,
        /// Data after the 8-byte header (for errors: the quoted packet).
        payload: Vec<u8>,
    },
    /// An ICMPv6 message plus payload, with a valid checksum.
    Icmpv6 {
        /// Type, code and the rest of the header.
        icmp_type: Icmpv6Type,
        /// Data after the 8-byte header (for errors: the quoted packet).
        payload: Vec<u8>,
    },
    /// Any protocol number followed by raw bytes, written as they are.
    Raw {
        /// The protocol number for the IP header.
        proto: u8,
        /// The bytes after the IP header (and extension headers).
        bytes: Vec<u8>,
    },
}

impl L4 {
    /// A TCP segment without payload (seq 1000, ack 2000 when ACK is set, 0 otherwise).
    pub fn tcp(sport: u16, dport: u16, flags: u8) -> Self {
        L4::Tcp {
            sport,
            dport,
            flags,
            seq: 1000,
            ack: if flags & ACK != 0 { 2000 } else { 0 },
            payload: Vec::new(),
        }
    }

    /// A TCP segment with explicit sequence and acknowledgment numbers.
    pub fn tcp_seq(sport: u16, dport: u16, flags: u8, seq: u32, ack: u32) -> Self {
        L4::Tcp {
            sport,
            dport,
            flags,
            seq,
            ack,
            payload: Vec::new(),
        }
    }

    /// A UDP datagram.
    pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Self {
        L4::Udp {
            sport,
            dport,
            payload: payload.to_vec(),
        }
    }

    /// ICMPv4 echo request (type 8).
    pub fn icmpv4_echo_request() -> Self {
        L4::Icmpv4 {
            icmp_type: Icmpv4Type::EchoRequest(IcmpEchoHeader { id: 0x4242, seq: 1 }),
            payload: b"ping".to_vec(),
        }
    }

    /// ICMPv4 echo reply (type 0).
    pub fn icmpv4_echo_reply() -> Self {
        L4::Icmpv4 {
            icmp_type: Icmpv4Type::EchoReply(IcmpEchoHeader { id: 0x4242, seq: 1 }),
            payload: b"ping".to_vec(),
        }
    }

    /// Any ICMPv4 type/code, with bytes 4..8 zero, followed by `payload`.
    pub fn icmpv4(type_u8: u8, code_u8: u8, payload: &[u8]) -> Self {
        L4::Icmpv4 {
            icmp_type: Icmpv4Type::Unknown {
                type_u8,
                code_u8,
                bytes5to8: [0; 4],
            },
            payload: payload.to_vec(),
        }
    }

    /// ICMPv4 destination unreachable / fragmentation needed (3/4) quoting `quoted`.
    pub fn icmpv4_frag_needed(mtu: u16, quoted: &[u8]) -> Self {
        L4::Icmpv4 {
            icmp_type: Icmpv4Type::DestinationUnreachable(
                icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: mtu },
            ),
            payload: quoted.to_vec(),
        }
    }

    /// ICMPv6 echo request (type 128).
    pub fn icmpv6_echo_request() -> Self {
        L4::Icmpv6 {
            icmp_type: Icmpv6Type::EchoRequest(IcmpEchoHeader { id: 0x4242, seq: 1 }),
            payload: b"ping".to_vec(),
        }
    }

    /// ICMPv6 echo reply (type 129).
    pub fn icmpv6_echo_reply() -> Self {
        L4::Icmpv6 {
            icmp_type: Icmpv6Type::EchoReply(IcmpEchoHeader { id: 0x4242, seq: 1 }),
            payload: b"ping".to_vec(),
        }
    }

    /// Any ICMPv6 type/code, with bytes 4..8 zero, followed by `payload`.
    pub fn icmpv6(type_u8: u8, code_u8: u8, payload: &[u8]) -> Self {
        L4::Icmpv6 {
            icmp_type: Icmpv6Type::Unknown {
                type_u8,
                code_u8,
                bytes5to8: [0; 4],
            },
            payload: payload.to_vec(),
        }
    }

    /// ICMPv6 Packet Too Big (type 2) quoting `quoted`.
    pub fn icmpv6_packet_too_big(mtu: u32, quoted: &[u8]) -> Self {
        L4::Icmpv6 {
            icmp_type: Icmpv6Type::PacketTooBig { mtu },
            payload: quoted.to_vec(),
        }
    }

    /// Raw transport bytes under any protocol number.
    pub fn raw(proto: u8, bytes: &[u8]) -> Self {
        L4::Raw {
            proto,
            bytes: bytes.to_vec(),
        }
    }

    /// The IP protocol number.
    pub fn proto(&self) -> u8 {
        match self {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmpv4 { .. } => 1,
            L4::Icmpv6 { .. } => 58,
            L4::Raw { proto, .. } => *proto,
        }
    }

    fn tcp_header(sport: u16, dport: u16, flags: u8, seq: u32, ack: u32) -> TcpHeader {
        let mut h = TcpHeader::new(sport, dport, seq, 64240);
        h.fin = flags & FIN != 0;
        h.syn = flags & SYN != 0;
        h.rst = flags & RST != 0;
        h.psh = flags & PSH != 0;
        h.ack = flags & ACK != 0;
        h.acknowledgment_number = ack;
        h
    }

    /// The transport bytes, with checksums over the IPv4 pseudo-header.
    pub fn encode_v4(&self, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            L4::Tcp {
                sport,
                dport,
                flags,
                seq,
                ack,
                payload,
            } => {
                let mut h = Self::tcp_header(*sport, *dport, *flags, *seq, *ack);
                h.checksum = h.calc_checksum_ipv4_raw(src, dst, payload).unwrap();
                out.extend_from_slice(&h.to_bytes());
                out.extend_from_slice(payload);
            }
            L4::Udp {
                sport,
                dport,
                payload,
            } => {
                let mut h =
                    UdpHeader::without_ipv4_checksum(*sport, *dport, payload.len()).unwrap();
                h.checksum = h.calc_checksum_ipv4_raw(src, dst, payload).unwrap();
                out.extend_from_slice(&h.to_bytes());
                out.extend_from_slice(payload);
            }
            L4::Icmpv4 { icmp_type, payload } => {
                let h = Icmpv4Header::with_checksum(icmp_type.clone(), payload);
                out.extend_from_slice(&h.to_bytes());
                out.extend_from_slice(payload);
            }
            L4::Icmpv6 { icmp_type, payload } => {
                // ICMPv6 inside IPv4 is nonsense, but keep it writable (checksum over nothing).
                let h = Icmpv6Header::new(*icmp_type);
                out.extend_from_slice(&h.to_bytes());
                out.extend_from_slice(payload);
            }
            L4::Raw { bytes, .. } => out.extend_from_slice(bytes),
        }
        out
    }

    /// The transport bytes, with checksums over the IPv6 pseudo-header.
    pub fn encode_v6(&self, src: [u8; 16], dst: [u8; 16]) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            L4::Tcp {
                sport,
                dport,
                flags,
                seq,
                ack,
                payload,
            } => {
                let mut h = Self::tcp_header(*sport, *dport, *flags, *seq, *ack);
                h.checksum = h.calc_checksum_ipv6_raw(src, dst, payload).unwrap();
                out.extend_from_slice(&h.to_bytes());
                out.extend_from_slice(payload);
            }
            L4::Udp {
                sport,
                dport,
                payload,
            } => {
                let mut h =
                    UdpHeader::without_ipv4_checksum(*sport, *dport, payload.len()).unwrap();
                h.checksum = h.calc_checksum_ipv6_raw(src, dst, payload).unwrap();
                out.extend_from_slice(&h.to_bytes());
                out.extend_from_slice(payload);
            }
            L4::Icmpv4 { icmp_type, payload } => {
                let h = Icmpv4Header::with_checksum(icmp_type.clone(), payload);
                out.extend_from_slice(&h.to_bytes());
                out.extend_from_slice(payload);
            }
            L4::Icmpv6 { icmp_type, payload } => {
                let h = Icmpv6Header::with_checksum(*icmp_type, src, dst, payload).unwrap();
                out.extend_from_slice(&h.to_bytes());
                out.extend_from_slice(payload);
            }
            L4::Raw { bytes, .. } => out.extend_from_slice(bytes),
        }
        out
    }
}

/// An inner IPv4 packet. `build` fills in the protocol, total length and header checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet {
    /// The header (protocol, total_len and checksum are overwritten by `build`).
    pub header: Ipv4Header,
    /// The transport part.
    pub l4: L4,
}

impl Ipv4Packet {
    /// A packet with TTL 64, DF clear, id 0x1234, no options.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, l4: L4) -> Self {
        let mut header = Ipv4Header::new(0, 64, IpNumber(l4.proto()), src.octets(), dst.octets())
            .expect("empty payload fits");
        header.dont_fragment = false;
        header.identification = 0x1234;
        Self { header, l4 }
    }

    /// Sets the TTL.
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.header.time_to_live = ttl;
        self
    }

    /// Sets the identification field.
    pub fn id(mut self, id: u16) -> Self {
        self.header.identification = id;
        self
    }

    /// Sets the DSCP (for recognisable bytes).
    pub fn dscp(mut self, dscp: u8) -> Self {
        self.header.dscp = IpDscp::try_new(dscp).expect("6-bit dscp");
        self
    }

    /// Adds IPv4 options (a multiple of 4 bytes, at most 40): IHL becomes 5 + len/4.
    pub fn options(mut self, options: &[u8]) -> Self {
        self.header.options =
            Ipv4Options::try_from(options).expect("options: multiple of 4, <= 40");
        self
    }

    /// Sets the More Fragments flag.
    pub fn more_fragments(mut self) -> Self {
        self.header.more_fragments = true;
        self
    }

    /// Sets the Don't Fragment flag.
    pub fn dont_fragment(mut self) -> Self {
        self.header.dont_fragment = true;
        self
    }

    /// Sets the fragment offset (in 8-byte units).
    pub fn fragment_offset(mut self, offset: u16) -> Self {
        self.header.fragment_offset = IpFragOffset::try_new(offset).expect("13-bit offset");
        self
    }

    /// The packet's bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut header = self.header.clone();
        let l4 = self.l4.encode_v4(header.source, header.destination);
        header.protocol = IpNumber(self.l4.proto());
        header.set_payload_len(l4.len()).expect("payload fits");
        header.header_checksum = header.calc_header_checksum();
        let mut out = header.to_bytes().to_vec();
        out.extend_from_slice(&l4);
        out
    }
}

/// An IPv6 extension header, written as `[next header, hdr ext len, body]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ext {
    /// Its own protocol number (0, 43, 44, 60, 135, ...), i.e. what the previous header's next
    /// header field says.
    pub kind: u8,
    /// The bytes after the 2-byte prefix; 6 + 8k bytes long.
    pub body: Vec<u8>,
}

impl Ext {
    /// A Hop-by-Hop Options header (8 bytes, one PadN option).
    pub fn hop_by_hop() -> Self {
        Ext {
            kind: 0,
            body: vec![1, 4, 0, 0, 0, 0],
        }
    }

    /// A Destination Options header (16 bytes, one PadN option).
    pub fn destination_options() -> Self {
        Ext {
            kind: 60,
            body: vec![1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        }
    }

    /// A Routing header (type 4 / segment routing-like shape, 24 bytes: one address).
    pub fn routing() -> Self {
        let mut body = vec![4, 0, 0, 0, 0, 0];
        body.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x99).octets());
        Ext { kind: 43, body }
    }

    /// A Mobility header (8 bytes: MH type 0, Binding Refresh Request).
    pub fn mobility() -> Self {
        Ext {
            kind: 135,
            body: vec![0, 0, 0, 0, 0, 0],
        }
    }

    /// A Fragment header (8 bytes; its "hdr ext len" byte is the reserved byte, 0).
    pub fn fragment(offset: u16, more: bool, id: u32) -> Self {
        let off = (offset << 3) | u16::from(more);
        let mut body = off.to_be_bytes().to_vec();
        body.extend_from_slice(&id.to_be_bytes());
        Ext { kind: 44, body }
    }

    fn len(&self) -> usize {
        2 + self.body.len()
    }
}

/// An inner IPv6 packet. `build` fills in the next-header chain and the payload length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Packet {
    /// The fixed header (next_header and payload_length are overwritten by `build`).
    pub header: Ipv6Header,
    /// Extension headers, in order.
    pub exts: Vec<Ext>,
    /// The transport part.
    pub l4: L4,
}

impl Ipv6Packet {
    /// A packet with hop limit 64 and no extension headers.
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr, l4: L4) -> Self {
        Self {
            header: Ipv6Header {
                traffic_class: 0,
                flow_label: Ipv6FlowLabel::try_new(0x12345).unwrap(),
                payload_length: 0,
                next_header: IpNumber(l4.proto()),
                hop_limit: 64,
                source: src.octets(),
                destination: dst.octets(),
            },
            exts: Vec::new(),
            l4,
        }
    }

    /// Sets the hop limit.
    pub fn hop_limit(mut self, hop_limit: u8) -> Self {
        self.header.hop_limit = hop_limit;
        self
    }

    /// Appends an extension header.
    pub fn ext(mut self, ext: Ext) -> Self {
        self.exts.push(ext);
        self
    }

    /// The packet's bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut header = self.header.clone();
        let l4 = self.l4.encode_v6(header.source, header.destination);
        let mut rest = Vec::new();
        for (i, ext) in self.exts.iter().enumerate() {
            assert_eq!(
                ext.len() % 8,
                0,
                "extension headers are multiples of 8 bytes"
            );
            let next = self.exts.get(i + 1).map_or(self.l4.proto(), |e| e.kind);
            let hdrlen = if ext.kind == 44 {
                0
            } else {
                (ext.len() / 8 - 1) as u8
            };
            rest.push(next);
            rest.push(hdrlen);
            rest.extend_from_slice(&ext.body);
        }
        rest.extend_from_slice(&l4);
        header.next_header = IpNumber(self.exts.first().map_or(self.l4.proto(), |e| e.kind));
        header.set_payload_length(rest.len()).expect("payload fits");
        let mut out = header.to_bytes().to_vec();
        out.extend_from_slice(&rest);
        out
    }
}

/// Raw edits for malformed packets.
pub mod patch {
    /// Replaces the byte at `offset`.
    pub fn byte(mut packet: Vec<u8>, offset: usize, value: u8) -> Vec<u8> {
        packet[offset] = value;
        packet
    }

    /// Replaces a big-endian 16-bit field at `offset`.
    pub fn be16(mut packet: Vec<u8>, offset: usize, value: u16) -> Vec<u8> {
        packet[offset..offset + 2].copy_from_slice(&value.to_be_bytes());
        packet
    }

    /// Keeps the first `len` bytes.
    pub fn truncate(mut packet: Vec<u8>, len: usize) -> Vec<u8> {
        assert!(len <= packet.len(), "truncate can only shorten");
        packet.truncate(len);
        packet
    }

    /// Appends `bytes` (e.g. Ethernet padding after the IP packet).
    pub fn append(mut packet: Vec<u8>, bytes: &[u8]) -> Vec<u8> {
        packet.extend_from_slice(bytes);
        packet
    }

    /// Recomputes the IPv4 header checksum of the packet that starts at `offset` (after edits).
    pub fn fix_ipv4_checksum(mut packet: Vec<u8>, offset: usize) -> Vec<u8> {
        let ihl = usize::from(packet[offset] & 0x0f) * 4;
        packet[offset + 10..offset + 12].fill(0);
        let c = crate::checksum::finish(crate::checksum::sum(0, &packet[offset..offset + ihl]));
        packet[offset + 10..offset + 12].copy_from_slice(&c.to_be_bytes());
        packet
    }
}

/// What an ICMP error quotes: the IP header plus the first 8 bytes of its payload (RFC 792).
pub fn quote(packet: &[u8]) -> Vec<u8> {
    let header_len = match packet[0] >> 4 {
        4 => usize::from(packet[0] & 0x0f) * 4,
        _ => 40,
    };
    packet[..(header_len + 8).min(packet.len())].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::SlicedPacket;

    #[test]
    fn ipv4_tcp_parses_back() {
        let p = Ipv4Packet::new(
            Ipv4Addr::new(198, 51, 100, 7),
            Ipv4Addr::new(203, 0, 113, 10),
            L4::tcp(51234, 443, SYN),
        )
        .build();
        assert_eq!(p.len(), 40);
        assert!(crate::checksum::ipv4_header_ok(&p));
        let s = SlicedPacket::from_ip(&p).unwrap();
        match s.transport.unwrap() {
            etherparse::TransportSlice::Tcp(t) => {
                assert!(t.syn() && !t.ack());
                assert_eq!((t.source_port(), t.destination_port()), (51234, 443));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ipv4_options_set_ihl() {
        let p = Ipv4Packet::new(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, L4::udp(1, 2, b""))
            .options(&[1, 1, 1, 0])
            .build();
        assert_eq!(p[0], 0x46);
        assert_eq!(p.len(), 32);
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), 32);
    }

    #[test]
    fn ipv6_extension_chain() {
        let p = Ipv6Packet::new(
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::LOCALHOST,
            L4::udp(1, 2, b"x"),
        )
        .ext(Ext::hop_by_hop())
        .ext(Ext::destination_options())
        .ext(Ext::fragment(0, true, 7))
        .build();
        assert_eq!(p[6], 0); // HBH
        assert_eq!(&p[40..42], &[60, 0]); // -> DestOpts, 8 bytes
        assert_eq!(&p[48..50], &[44, 1]); // -> Fragment, 16 bytes
        assert_eq!(&p[64..66], &[17, 0]); // -> UDP, reserved 0
        assert_eq!(p.len(), 40 + 8 + 16 + 8 + 9);
        assert_eq!(usize::from(u16::from_be_bytes([p[4], p[5]])), p.len() - 40);
    }

    #[test]
    fn quote_takes_header_plus_eight() {
        let p =
            Ipv4Packet::new(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, L4::tcp(1, 2, ACK)).build();
        assert_eq!(quote(&p).len(), 28);
        let p6 =
            Ipv6Packet::new(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST, L4::tcp(1, 2, ACK)).build();
        assert_eq!(quote(&p6).len(), 48);
    }
}
