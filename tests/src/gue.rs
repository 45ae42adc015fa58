//! Outer frames: Ethernet + IPv4 + UDP + GUE + unigue + hop list + inner packet
//! (docs/wire-format.md), and Ethernet + IPv4 + inner packet for plain IP-in-IP.
//!
//! Every field can be set to any value, including invalid ones; fields left as `None` / `Valid`
//! are computed so that the frame is well formed.

use core::net::Ipv4Addr;

use crate::checksum;

/// Offset of the outer IPv4 header.
pub const IP_OFF: usize = 14;
/// Offset of the UDP header (with a 20-byte outer IPv4 header).
pub const UDP_OFF: usize = 34;
/// Offset of the GUE base header.
pub const GUE_OFF: usize = 42;
/// Offset of the unigue header.
pub const UNIGUE_OFF: usize = 46;
/// Offset of the unigue next_hop byte.
pub const NEXT_HOP_OFF: usize = 48;
/// Offset of the hop list.
pub const HOPS_OFF: usize = 50;

/// Where the inner packet starts for a given hop count.
pub const fn payload_off(hop_count: usize) -> usize {
    HOPS_OFF + 4 * hop_count
}

/// The default encapsulation address (the selftest's ENCAPSULATION_IP).
pub const ENCAP_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// The default GUE port (the selftest's ENCAPSULATION_PORT).
pub const ENCAP_PORT: u16 = 1234;
/// Default outer source: the director.
pub const DIRECTOR_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);
/// Default destination MAC (this host).
pub const HOST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// Default source MAC (the router).
pub const ROUTER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0xfe];

/// How a checksum field is filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// Computed so that it verifies.
    Valid,
    /// Zero (for UDP: "no checksum").
    Zero,
    /// This exact value.
    Raw(u16),
}

#[derive(Debug, Clone)]
struct OuterIpv4 {
    version: u8,
    ihl: Option<u8>,
    tos: u8,
    tot_len: Option<u16>,
    id: u16,
    df: bool,
    mf: bool,
    frag_offset: u16,
    ttl: u8,
    proto: u8,
    checksum: Checksum,
    options: Vec<u8>,
    saddr: Ipv4Addr,
    daddr: Ipv4Addr,
}

impl OuterIpv4 {
    /// Writes the header; `rest_len` is the number of bytes after it.
    fn write(&self, out: &mut Vec<u8>, rest_len: usize) {
        let ihl = self.ihl.unwrap_or(5 + (self.options.len() / 4) as u8);
        let header_len = 20 + self.options.len();
        let tot_len = self
            .tot_len
            .unwrap_or((header_len + rest_len).try_into().expect("tot_len fits"));
        let frag =
            (u16::from(self.df) << 14) | (u16::from(self.mf) << 13) | (self.frag_offset & 0x1fff);
        let start = out.len();
        out.push((self.version << 4) | (ihl & 0x0f));
        out.push(self.tos);
        out.extend_from_slice(&tot_len.to_be_bytes());
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&frag.to_be_bytes());
        out.push(self.ttl);
        out.push(self.proto);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.saddr.octets());
        out.extend_from_slice(&self.daddr.octets());
        out.extend_from_slice(&self.options);
        let check = match self.checksum {
            Checksum::Valid => checksum::ipv4_header(&out[start..]),
            Checksum::Zero => 0,
            Checksum::Raw(c) => c,
        };
        out[start + 10..start + 12].copy_from_slice(&check.to_be_bytes());
    }
}

/// A GUE-encapsulated frame as a director sends it. See [`GueFrame::default`] for the defaults.
#[derive(Debug, Clone)]
pub struct GueFrame {
    /// Ethernet destination MAC.
    pub eth_dst: [u8; 6],
    /// Ethernet source MAC.
    pub eth_src: [u8; 6],
    /// EtherType.
    pub ethertype: u16,
    /// Outer IPv4 version nibble.
    pub ip_version: u8,
    /// Outer IHL nibble; `None`: 5 + options/4.
    pub ip_ihl: Option<u8>,
    /// Outer TOS.
    pub ip_tos: u8,
    /// Outer total length; `None`: the real length.
    pub ip_tot_len: Option<u16>,
    /// Outer identification.
    pub ip_id: u16,
    /// Outer Don't Fragment flag.
    pub ip_df: bool,
    /// Outer More Fragments flag.
    pub ip_mf: bool,
    /// Outer fragment offset (8-byte units, 13 bits).
    pub ip_frag_offset: u16,
    /// Outer TTL.
    pub ip_ttl: u8,
    /// Outer protocol.
    pub ip_proto: u8,
    /// Outer header checksum.
    pub ip_checksum: Checksum,
    /// Outer IPv4 option bytes (written after the 20-byte header; IHL follows unless set).
    pub ip_options: Vec<u8>,
    /// Outer source address.
    pub saddr: Ipv4Addr,
    /// Outer destination address.
    pub daddr: Ipv4Addr,
    /// UDP source port.
    pub udp_sport: u16,
    /// UDP destination port.
    pub udp_dport: u16,
    /// UDP length; `None`: the real length.
    pub udp_len: Option<u16>,
    /// UDP checksum (`Valid`: computed over the pseudo-header and the whole datagram).
    pub udp_checksum: Checksum,
    /// GUE variant (2 bits).
    pub gue_variant: u8,
    /// GUE control bit.
    pub gue_control: u8,
    /// GUE hlen (5 bits); `None`: 1 + hops.len().
    pub gue_hlen: Option<u8>,
    /// GUE proto_ctype: 4 (IPv4 inner) or 41 (IPv6 inner), or anything.
    pub proto_ctype: u8,
    /// GUE flags.
    pub gue_flags: u16,
    /// unigue version (4 bits).
    pub unigue_version: u8,
    /// unigue forward_syn flag.
    pub forward_syn: bool,
    /// unigue last_hop_gre flag.
    pub last_hop_gre: bool,
    /// unigue low 2 bits (`_r`, ignored by cls_redirect).
    pub unigue_low: u8,
    /// unigue reserved byte.
    pub unigue_reserved: u8,
    /// unigue next_hop.
    pub next_hop: u8,
    /// unigue hop_count; `None`: hops.len().
    pub hop_count: Option<u8>,
    /// The hop list as written (independent of hop_count).
    pub hops: Vec<Ipv4Addr>,
    /// The inner packet (any bytes).
    pub inner: Vec<u8>,
}

impl Default for GueFrame {
    /// Router MAC -> host MAC, 192.0.2.9 -> 127.0.0.1, UDP 40000 -> 1234 with checksum 0, valid
    /// outer IPv4 checksum, TTL 64, id 0x0101, all GUE/unigue fields 0, proto_ctype 4, no hops,
    /// empty inner packet.
    fn default() -> Self {
        Self {
            eth_dst: HOST_MAC,
            eth_src: ROUTER_MAC,
            ethertype: 0x0800,
            ip_version: 4,
            ip_ihl: None,
            ip_tos: 0,
            ip_tot_len: None,
            ip_id: 0x0101,
            ip_df: false,
            ip_mf: false,
            ip_frag_offset: 0,
            ip_ttl: 64,
            ip_proto: 17,
            ip_checksum: Checksum::Valid,
            ip_options: Vec::new(),
            saddr: DIRECTOR_ADDR,
            daddr: ENCAP_ADDR,
            udp_sport: 40000,
            udp_dport: ENCAP_PORT,
            udp_len: None,
            udp_checksum: Checksum::Zero,
            gue_variant: 0,
            gue_control: 0,
            gue_hlen: None,
            proto_ctype: 4,
            gue_flags: 0,
            unigue_version: 0,
            forward_syn: false,
            last_hop_gre: false,
            unigue_low: 0,
            unigue_reserved: 0,
            next_hop: 0,
            hop_count: None,
            hops: Vec::new(),
            inner: Vec::new(),
        }
    }
}

impl GueFrame {
    /// The defaults carrying an inner IPv4 packet (proto_ctype 4).
    pub fn ipv4(inner: Vec<u8>) -> Self {
        Self {
            inner,
            ..Self::default()
        }
    }

    /// The defaults carrying an inner IPv6 packet (proto_ctype 41).
    pub fn ipv6(inner: Vec<u8>) -> Self {
        Self {
            inner,
            proto_ctype: 41,
            ..Self::default()
        }
    }

    /// Sets the hop list (hop_count and hlen follow unless set explicitly).
    pub fn hops(mut self, hops: &[Ipv4Addr]) -> Self {
        self.hops = hops.to_vec();
        self
    }

    /// Sets next_hop.
    pub fn next_hop(mut self, next_hop: u8) -> Self {
        self.next_hop = next_hop;
        self
    }

    /// Sets the forward_syn flag.
    pub fn forward_syn(mut self) -> Self {
        self.forward_syn = true;
        self
    }

    /// Sets the last_hop_gre flag.
    pub fn last_hop_gre(mut self) -> Self {
        self.last_hop_gre = true;
        self
    }

    /// The frame's bytes.
    pub fn build(&self) -> Vec<u8> {
        let hop_count = self
            .hop_count
            .unwrap_or(self.hops.len().try_into().expect("hop count fits a byte"));
        let hlen = self.gue_hlen.unwrap_or((1 + self.hops.len()) as u8 & 0x1f);

        let mut udp = Vec::new();
        udp.extend_from_slice(&self.udp_sport.to_be_bytes());
        udp.extend_from_slice(&self.udp_dport.to_be_bytes());
        udp.extend_from_slice(&[0, 0, 0, 0]);
        udp.push(((self.gue_variant & 3) << 6) | ((self.gue_control & 1) << 5) | (hlen & 0x1f));
        udp.push(self.proto_ctype);
        udp.extend_from_slice(&self.gue_flags.to_be_bytes());
        udp.push(
            ((self.unigue_version & 0x0f) << 4)
                | (u8::from(self.forward_syn) << 3)
                | (u8::from(self.last_hop_gre) << 2)
                | (self.unigue_low & 3),
        );
        udp.push(self.unigue_reserved);
        udp.push(self.next_hop);
        udp.push(hop_count);
        for hop in &self.hops {
            udp.extend_from_slice(&hop.octets());
        }
        udp.extend_from_slice(&self.inner);
        let udp_len = self
            .udp_len
            .unwrap_or(udp.len().try_into().expect("udp length fits"));
        udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
        let check = match self.udp_checksum {
            Checksum::Valid => checksum::udp_ipv4(self.saddr, self.daddr, &udp),
            Checksum::Zero => 0,
            Checksum::Raw(c) => c,
        };
        udp[6..8].copy_from_slice(&check.to_be_bytes());

        let mut out = Vec::with_capacity(34 + udp.len());
        out.extend_from_slice(&self.eth_dst);
        out.extend_from_slice(&self.eth_src);
        out.extend_from_slice(&self.ethertype.to_be_bytes());
        self.outer().write(&mut out, udp.len());
        out.extend_from_slice(&udp);
        out
    }

    fn outer(&self) -> OuterIpv4 {
        OuterIpv4 {
            version: self.ip_version,
            ihl: self.ip_ihl,
            tos: self.ip_tos,
            tot_len: self.ip_tot_len,
            id: self.ip_id,
            df: self.ip_df,
            mf: self.ip_mf,
            frag_offset: self.ip_frag_offset,
            ttl: self.ip_ttl,
            proto: self.ip_proto,
            checksum: self.ip_checksum,
            options: self.ip_options.clone(),
            saddr: self.saddr,
            daddr: self.daddr,
        }
    }
}

/// A plain IPv4-in-IPv4 (protocol 4) or IPv6-in-IPv4 (protocol 41) frame.
#[derive(Debug, Clone)]
pub struct IpipFrame {
    /// Ethernet destination MAC.
    pub eth_dst: [u8; 6],
    /// Ethernet source MAC.
    pub eth_src: [u8; 6],
    /// Outer protocol: 4 or 41.
    pub ip_proto: u8,
    /// Outer More Fragments flag.
    pub ip_mf: bool,
    /// Outer fragment offset (8-byte units).
    pub ip_frag_offset: u16,
    /// Outer TTL.
    pub ip_ttl: u8,
    /// Outer source address.
    pub saddr: Ipv4Addr,
    /// Outer destination address.
    pub daddr: Ipv4Addr,
    /// The inner packet.
    pub inner: Vec<u8>,
}

impl IpipFrame {
    /// IPv4 in IPv4 (protocol 4) from the director to the default encapsulation address.
    pub fn ipv4(inner: Vec<u8>) -> Self {
        Self {
            eth_dst: HOST_MAC,
            eth_src: ROUTER_MAC,
            ip_proto: 4,
            ip_mf: false,
            ip_frag_offset: 0,
            ip_ttl: 64,
            saddr: DIRECTOR_ADDR,
            daddr: ENCAP_ADDR,
            inner,
        }
    }

    /// IPv6 in IPv4 (protocol 41).
    pub fn ipv6(inner: Vec<u8>) -> Self {
        Self {
            ip_proto: 41,
            ..Self::ipv4(inner)
        }
    }

    /// The frame's bytes (valid outer checksum and length).
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.eth_dst);
        out.extend_from_slice(&self.eth_src);
        out.extend_from_slice(&[0x08, 0x00]);
        OuterIpv4 {
            version: 4,
            ihl: None,
            tos: 0,
            tot_len: None,
            id: 0x0202,
            df: false,
            mf: self.ip_mf,
            frag_offset: self.ip_frag_offset,
            ttl: self.ip_ttl,
            proto: self.ip_proto,
            checksum: Checksum::Valid,
            options: Vec::new(),
            saddr: self.saddr,
            daddr: self.daddr,
        }
        .write(&mut out, self.inner.len());
        out.extend_from_slice(&self.inner);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout() {
        let f = GueFrame::ipv4(vec![0xaa; 20])
            .hops(&[Ipv4Addr::new(10, 0, 0, 1)])
            .build();
        assert_eq!(f.len(), 54 + 20);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(f[14], 0x45);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 60);
        assert!(checksum::ipv4_header_ok(&f[14..34]));
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), ENCAP_PORT);
        assert_eq!(u16::from_be_bytes([f[38], f[39]]), 40);
        assert_eq!(&f[40..42], &[0, 0]);
        assert_eq!(&f[GUE_OFF..GUE_OFF + 4], &[0x02, 4, 0, 0]);
        assert_eq!(&f[UNIGUE_OFF..UNIGUE_OFF + 4], &[0, 0, 0, 1]);
        assert_eq!(&f[HOPS_OFF..HOPS_OFF + 4], &[10, 0, 0, 1]);
        assert_eq!(&f[payload_off(1)..], &[0xaa; 20]);
    }

    #[test]
    fn flags_and_valid_udp_checksum() {
        let f = GueFrame {
            udp_checksum: Checksum::Valid,
            gue_variant: 1,
            gue_control: 1,
            unigue_version: 2,
            unigue_low: 3,
            ip_mf: true,
            ip_frag_offset: 5,
            ..GueFrame::ipv6(vec![1, 2, 3])
        }
        .forward_syn()
        .last_hop_gre()
        .build();
        assert_eq!(f[GUE_OFF], 0x40 | 0x20 | 0x01);
        assert_eq!(f[GUE_OFF + 1], 41);
        assert_eq!(f[UNIGUE_OFF], 0x20 | 0x08 | 0x04 | 0x03);
        assert_eq!(&f[20..22], &[0x20, 0x05]);
        assert!(checksum::outer_udp_ok(&f));
    }

    #[test]
    fn ipip_layout() {
        let f = IpipFrame::ipv6(vec![0x60; 40]).build();
        assert_eq!(f.len(), 74);
        assert_eq!(f[23], 41);
        assert!(checksum::ipv4_header_ok(&f[14..34]));
    }
}
