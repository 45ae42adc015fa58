//! Frame classification: what a frame is, which bind could serve it, and the flow to hash.
//!
//! Only untagged Ethernet II frames carrying IPv4 or IPv6 can be routed. A frame the director
//! cannot even read an IP destination from is not known to be for a VIP and is passed; a frame
//! whose destination is readable but whose headers are broken is reported as malformed, and the
//! route layer drops it (counted) when that destination is inside a bind's prefix.

use crate::counters::DropReason;
use crate::flow_hash::FlowFields;
use crate::icmp;
use crate::model::Protocol;
use chance_engine::wire::ethernet::EthernetFrame;
use chance_engine::wire::ipv4::Ipv4Packet;
use chance_engine::wire::ipv6::{self, Ipv6Packet};
use chance_engine::wire::tcp::TcpPacket;
use chance_engine::wire::udp::UdpPacket;
use chance_engine::wire::{ethertype, ip_proto};
use core::net::IpAddr;

/// 802.1ad (QinQ) outer tag: passed like an 802.1Q tag.
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Most IPv6 extension headers walked before the upper-layer header (as the engine allows).
pub(crate) const EXTENSION_HEADER_LIMIT: usize = 5;

/// How a classified frame finds its bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BindQuery {
    /// A bind with this protocol whose prefix holds `vip` and whose ports hold `port`.
    Port {
        vip: IpAddr,
        protocol: Protocol,
        port: u16,
    },
    /// A bind with this protocol whose prefix holds `vip`, whatever its ports (a later fragment).
    AnyPort { vip: IpAddr, protocol: Protocol },
    /// Any bind whose prefix holds `vip` (an echo request: GLB's echo rule names no port).
    AnyBind { vip: IpAddr },
}

/// What kind of routable packet a frame holds (each has its own counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// TCP or UDP with its ports.
    Transport,
    /// IPv4 fragmentation-needed or ICMPv6 packet-too-big, hashed as the quoted flow reversed.
    IcmpError,
    /// An ICMP or ICMPv6 echo request, hashed with ports 0.
    IcmpEcho,
    /// A fragment without a transport header (hashed with ports 0).
    Fragment,
}

/// A frame the director can route if a bind takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Routable {
    pub kind: Kind,
    pub query: BindQuery,
    pub flow: FlowFields,
    /// GLB's flow_hash_hint: mixed into the outer UDP source port.
    pub hint: u16,
    /// GUE's proto_ctype for the inner packet: 4 (IPv4) or 41 (IPv6).
    pub gue_proto: u8,
    /// Length of the IP packet as its header says (trailing Ethernet padding excluded).
    pub inner_len: usize,
}

/// Why a frame goes to the kernel untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PassReason {
    /// An 802.1Q or 802.1ad tagged frame: the director serves untagged frames only.
    Vlan,
    /// Anything else that is not the director's (ARP, ND, other protocols, unreadable frames).
    NotRoutable,
}

/// The classification of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Classified {
    Routable(Routable),
    Pass(PassReason),
    /// Broken headers on a packet to `vip`: dropped if `vip` is inside a bind's prefix.
    Malformed {
        vip: IpAddr,
        reason: DropReason,
    },
}

pub(crate) const PASS: Classified = Classified::Pass(PassReason::NotRoutable);

impl Classified {
    /// A broken packet to `vip`.
    pub(crate) const fn malformed(vip: IpAddr, reason: DropReason) -> Self {
        Classified::Malformed { vip, reason }
    }
}

/// The bind protocol of an IP protocol number, if binds can have it.
pub(crate) fn bind_protocol(number: u8) -> Option<Protocol> {
    match number {
        ip_proto::TCP => Some(Protocol::Tcp),
        ip_proto::UDP => Some(Protocol::Udp),
        _ => None,
    }
}

/// Classifies an Ethernet frame. (Inlined with IPv4 into the route, so that what it returns is
/// built where it is used rather than copied out.)
#[inline]
pub(crate) fn classify(frame: &[u8]) -> Classified {
    let Ok(ethernet) = EthernetFrame::new_checked(frame) else {
        return PASS;
    };
    match ethernet.ethertype() {
        ethertype::IPV4 => ipv4(&frame[chance_engine::wire::ethernet::HEADER_LEN..]),
        ethertype::IPV6 => ipv6(&frame[chance_engine::wire::ethernet::HEADER_LEN..]),
        ethertype::VLAN | ETHERTYPE_QINQ => Classified::Pass(PassReason::Vlan),
        _ => PASS,
    }
}

/// The flow of a packet from `src` to `dst` (addresses in network byte order), ports zero.
#[inline]
pub(crate) fn flow_between(ipv6: bool, src: &[u8], dst: &[u8]) -> FlowFields {
    let mut flow = FlowFields {
        ipv6,
        src_addr: [0; 16],
        dst_addr: [0; 16],
        src_port: [0; 2],
        dst_port: [0; 2],
    };
    flow.src_addr[..src.len()].copy_from_slice(src);
    flow.dst_addr[..dst.len()].copy_from_slice(dst);
    flow
}

/// The client's port and the VIP's port of a TCP or UDP packet, or why they are missing.
#[inline]
fn transport_ports(protocol: Protocol, l4: &[u8]) -> Result<(u16, u16), DropReason> {
    match protocol {
        Protocol::Tcp => TcpPacket::new_checked(l4).map(|tcp| (tcp.src_port(), tcp.dst_port())),
        Protocol::Udp => UdpPacket::new_checked(l4).map(|udp| (udp.src_port(), udp.dst_port())),
    }
    .map_err(|_| DropReason::TruncatedTransport)
}

/// A TCP or UDP packet (or a later fragment of one) from the flow's client to `vip`.
#[inline]
fn transport(
    vip: IpAddr,
    mut flow: FlowFields,
    number: u8,
    l4: &[u8],
    fragment: bool,
    gue_proto: u8,
    inner_len: usize,
) -> Classified {
    let Some(protocol) = bind_protocol(number) else {
        return PASS;
    };
    let (kind, query, hint) = if fragment {
        (Kind::Fragment, BindQuery::AnyPort { vip, protocol }, 0)
    } else {
        let (src_port, dst_port) = match transport_ports(protocol, l4) {
            Ok(ports) => ports,
            Err(reason) => return Classified::malformed(vip, reason),
        };
        flow.src_port = src_port.to_be_bytes();
        flow.dst_port = dst_port.to_be_bytes();
        let query = BindQuery::Port {
            vip,
            protocol,
            port: dst_port,
        };
        (Kind::Transport, query, src_port)
    };
    Classified::Routable(Routable {
        kind,
        query,
        flow,
        hint,
        gue_proto,
        inner_len,
    })
}

#[inline]
fn ipv4(packet: &[u8]) -> Classified {
    let Ok(ip) = Ipv4Packet::new_checked(packet) else {
        return PASS;
    };
    let vip = IpAddr::V4(ip.dst_addr());
    let header_len = ip.header_len();
    let total_len = usize::from(ip.total_len());
    if ip.version() != 4
        || ip.check_options_len().is_err()
        || total_len < header_len
        || total_len > packet.len()
    {
        // Built here, not ahead: every packet would pay for it.
        return Classified::malformed(vip, DropReason::MalformedIp);
    }
    let packet = &packet[..total_len];
    let flow = flow_between(false, &ip.src_addr().octets(), &ip.dst_addr().octets());
    let l4 = &packet[header_len..];
    // A later fragment has no transport header; a first fragment has one and routes as usual.
    let later_fragment = ip.frag_offset() != 0;
    if ip.protocol() == ip_proto::ICMP && !later_fragment {
        return icmp::icmpv4(&ip, l4, flow, total_len);
    }
    transport(
        vip,
        flow,
        ip.protocol(),
        l4,
        later_fragment,
        ip_proto::IPIP,
        total_len,
    )
}

fn ipv6(packet: &[u8]) -> Classified {
    let Ok(ip) = Ipv6Packet::new_checked(packet) else {
        return PASS;
    };
    let vip = IpAddr::V6(ip.dst_addr());
    let malformed = Classified::malformed(vip, DropReason::MalformedIp);
    let total_len = ipv6::HEADER_LEN + usize::from(ip.payload_len());
    if ip.version() != 6 || total_len > packet.len() {
        return malformed;
    }
    let packet = &packet[..total_len];
    let Ok(walk) = ipv6::walk_extension_headers(
        &packet[ipv6::HEADER_LEN..],
        ip.next_header(),
        EXTENSION_HEADER_LIMIT,
    ) else {
        return malformed;
    };
    let flow = flow_between(true, &ip.src_addr().octets(), &ip.dst_addr().octets());
    let l4 = &packet[ipv6::HEADER_LEN + walk.len..];
    if walk.upper_protocol == ip_proto::ICMPV6 && !walk.has_fragment {
        return icmp::icmpv6(&ip, l4, flow, total_len);
    }
    // Every IPv6 fragment is taken as having no ports: finding the first one would mean
    // parsing the Fragment header, and a flow hashed on ports cannot route its later ones anyway.
    transport(
        vip,
        flow,
        walk.upper_protocol,
        l4,
        walk.has_fragment,
        ip_proto::IPV6,
        total_len,
    )
}
