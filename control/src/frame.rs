//! Frames described on `chancectl simulate`'s command line: a director's GUE frame around an
//! inner TCP, UDP or ICMP packet (IPv4 or IPv6), built with the test kit's builders.

use chance_testkit::gue::GueFrame;
use chance_testkit::inner::{Ipv4Packet, Ipv6Packet, ACK, FIN, L4, PSH, RST, SYN};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The inner transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inner {
    /// A TCP segment with the given flags.
    Tcp,
    /// A UDP datagram.
    Udp,
    /// An ICMP (ICMPv6 for IPv6) echo request.
    Icmp,
}

impl std::str::FromStr for Inner {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Inner::Tcp),
            "udp" => Ok(Inner::Udp),
            "icmp" | "icmpv6" => Ok(Inner::Icmp),
            _ => Err(format!("`{s}`: expected tcp, udp or icmp")),
        }
    }
}

/// A packet as the command line describes it.
#[derive(Debug, Clone)]
pub struct PacketSpec {
    /// The inner transport.
    pub inner: Inner,
    /// The client (the inner source).
    pub src: SocketAddr,
    /// The service (the inner destination: a VIP on this host).
    pub dst: SocketAddr,
    /// TCP flags, tcpdump-style letters: S, A (or .), F, R, P.
    pub flags: String,
    /// The hop list (the hosts after the first).
    pub hops: Vec<Ipv4Addr>,
    /// The GLB next_hop index.
    pub next_hop: u8,
    /// The forward_syn flag.
    pub forward_syn: bool,
    /// The outer source (the director).
    pub outer_src: Ipv4Addr,
    /// The outer destination (this host's encapsulation address).
    pub outer_dst: Ipv4Addr,
    /// The GUE port.
    pub port: u16,
}

/// TCP flag letters to the flags byte.
pub fn tcp_flags(letters: &str) -> Result<u8, String> {
    letters.chars().try_fold(0u8, |acc, c| {
        let bit = match c.to_ascii_uppercase() {
            'S' => SYN,
            'A' | '.' => ACK,
            'F' => FIN,
            'R' => RST,
            'P' => PSH,
            other => return Err(format!("TCP flag `{other}`: expected S, A (or .), F, R, P")),
        };
        Ok(acc | bit)
    })
}

impl PacketSpec {
    /// The Ethernet frame.
    pub fn build(&self) -> Result<Vec<u8>, String> {
        let flags = tcp_flags(&self.flags)?;
        let (sport, dport) = (self.src.port(), self.dst.port());
        let l4 = |v6: bool| match self.inner {
            Inner::Tcp => L4::tcp_seq(
                sport,
                dport,
                flags,
                1000,
                if flags & ACK != 0 { 2000 } else { 0 },
            ),
            Inner::Udp => L4::udp(sport, dport, b"chancectl simulate"),
            Inner::Icmp if v6 => L4::icmpv6_echo_request(),
            Inner::Icmp => L4::icmpv4_echo_request(),
        };
        let mut frame = match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                GueFrame::ipv4(Ipv4Packet::new(s, d, l4(false)).build())
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                GueFrame::ipv6(Ipv6Packet::new(s, d, l4(true)).build())
            }
            _ => return Err("--src and --dst are of different address families".into()),
        }
        .hops(&self.hops)
        .next_hop(self.next_hop);
        if self.forward_syn {
            frame = frame.forward_syn();
        }
        frame.saddr = self.outer_src;
        frame.daddr = self.outer_dst;
        frame.udp_dport = self.port;
        Ok(frame.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syn_to_a_vip_through_one_more_hop() {
        let spec = PacketSpec {
            inner: Inner::Tcp,
            src: "198.51.100.7:51234".parse().unwrap(),
            dst: "203.0.113.10:443".parse().unwrap(),
            flags: "S".into(),
            hops: vec![Ipv4Addr::new(192, 0, 2, 20)],
            next_hop: 0,
            forward_syn: false,
            outer_src: Ipv4Addr::new(192, 0, 2, 1),
            outer_dst: Ipv4Addr::new(192, 0, 2, 10),
            port: 19523,
        };
        let lines = crate::decode::headers(&spec.build().unwrap(), 19523);
        assert!(
            lines[1].starts_with("ipv4 192.0.2.1 -> 192.0.2.10"),
            "{lines:?}"
        );
        assert!(lines[3].contains("hops [192.0.2.20]"), "{lines:?}");
        assert!(
            lines[5].starts_with("tcp 51234 -> 443 flags [S]"),
            "{lines:?}"
        );
        let v6 = PacketSpec {
            inner: Inner::Udp,
            src: "[2001:db8::7]:5300".parse().unwrap(),
            dst: "[2001:db8::10]:53".parse().unwrap(),
            ..spec.clone()
        };
        let lines = crate::decode::headers(&v6.build().unwrap(), 19523);
        assert!(
            lines[4].starts_with("ipv6 2001:db8::7 -> 2001:db8::10"),
            "{lines:?}"
        );
        assert!(lines[5].starts_with("udp 5300 -> 53"), "{lines:?}");
        assert_eq!(tcp_flags("S.").unwrap(), SYN | ACK);
        assert!(tcp_flags("X").is_err());
        let mixed = PacketSpec {
            dst: "[2001:db8::10]:53".parse().unwrap(),
            ..spec
        };
        assert!(mixed.build().is_err());
    }
}
