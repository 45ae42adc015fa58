//! Inner-packet classification (docs/decision-procedure.md, step 17): what the packet inside the
//! GUE encapsulation is, and whether a local socket owns its flow.
//!
//! Only reached when a next hop exists. The L3/L4 protocol counters are bumped here, at the points
//! cls_redirect bumps them (before the checks that may then fail); an `Err` carries the error
//! counter that decides the drop, which the caller bumps.

use crate::counters::{Counter, Counters};
use crate::flow::{FlowKey, FlowTable, L4Proto};
use crate::wire::icmpv4::{self, Icmpv4Packet};
use crate::wire::icmpv6::{self, Icmpv6Packet};
use crate::wire::ip_proto;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::read_u16;
use crate::wire::tcp::TcpPacket;
use crate::wire::udp::UdpPacket;
use core::net::{Ipv4Addr, Ipv6Addr};

/// cls_redirect walks at most this many IPv6 extension headers; a sixth is malformed.
const MAX_EXTENSION_HEADERS: usize = 5;

/// What the inner packet turned out to be (cls_redirect's `verdict_t` minus INVALID, which is the
/// `Err` side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// No local socket owns it: forward to the next hop.
    Unknown,
    /// ICMP or ICMPv6 echo request.
    EchoRequest,
    /// A TCP segment with SYN set (whatever the other flags), of this flow.
    Syn(FlowKey),
    /// An ACK carrying a valid SYN cookie for a local listener.
    SynCookie,
    /// A flow owned by a local socket.
    Established,
}

/// The inner flow's addresses, as the packet carries them.
#[derive(Clone, Copy)]
enum Addrs {
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

impl Addrs {
    /// The flow as the local socket sees it: the packet's destination is the local side.
    #[inline]
    fn key(self, proto: L4Proto, src_port: u16, dst_port: u16) -> FlowKey {
        match self {
            Addrs::V4 { src, dst } => FlowKey::v4(proto, dst, dst_port, src, src_port),
            Addrs::V6 { src, dst } => FlowKey::v6(proto, dst, dst_port, src, src_port),
        }
    }

    /// The addresses of a packet travelling the other way (for the packet an ICMP error quotes).
    fn reversed(self) -> Self {
        match self {
            Addrs::V4 { src, dst } => Addrs::V4 { src: dst, dst: src },
            Addrs::V6 { src, dst } => Addrs::V6 { src: dst, dst: src },
        }
    }
}

type Classified = Result<Class, Counter>;

/// Classifies an inner IPv4 packet.
// `ipv4` and `tcp` are inlined into the engine's `decide`: the path of most packets, where the
// calls cost 18 instructions per packet (deploy/bench-instructions.sh).
#[inline(always)]
pub(crate) fn ipv4<F: FlowTable + ?Sized>(
    inner: &[u8],
    flows: &F,
    counters: &mut Counters,
) -> Classified {
    counters.bump(Counter::L3ProtocolPacketsTotalIpv4);
    let ip = Ipv4Packet::new_checked(inner).map_err(|_| Counter::ErrorsTotalMalformedIp)?;
    // IHL and options before the version, as cls_redirect orders them.
    ip.check_options_len()
        .map_err(|_| Counter::ErrorsTotalMalformedIp)?;
    if ip.version() != 4 {
        return Err(Counter::ErrorsTotalMalformedIp);
    }
    if ip.is_fragment() {
        return Err(Counter::ErrorsTotalFragmentedIp);
    }
    let addrs = Addrs::V4 {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
    };
    let l4 = &inner[ip.header_len()..];
    match ip.protocol() {
        ip_proto::ICMP => icmp_v4(l4, flows),
        ip_proto::TCP => tcp(l4, addrs, flows, counters),
        ip_proto::UDP => udp(l4, addrs, flows, counters),
        _ => Err(Counter::ErrorsTotalUnknownL4Proto),
    }
}

/// Classifies an inner IPv6 packet.
pub(crate) fn ipv6<F: FlowTable + ?Sized>(
    inner: &[u8],
    flows: &F,
    counters: &mut Counters,
) -> Classified {
    counters.bump(Counter::L3ProtocolPacketsTotalIpv6);
    let ip = Ipv6Packet::new_checked(inner).map_err(|_| Counter::ErrorsTotalMalformedIp)?;
    let rest = &inner[ipv6::HEADER_LEN..];
    let walk = ipv6::walk_extension_headers(rest, ip.next_header(), MAX_EXTENSION_HEADERS)
        .map_err(|_| Counter::ErrorsTotalMalformedIp)?;
    // The version is checked after the extension-header walk, as cls_redirect does.
    if ip.version() != 6 {
        return Err(Counter::ErrorsTotalMalformedIp);
    }
    if walk.has_fragment {
        return Err(Counter::ErrorsTotalFragmentedIp);
    }
    let addrs = Addrs::V6 {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
    };
    let l4 = &rest[walk.len..];
    match walk.upper_protocol {
        ip_proto::ICMPV6 => icmp_v6(l4, flows),
        ip_proto::TCP => tcp(l4, addrs, flows, counters),
        ip_proto::UDP => udp(l4, addrs, flows, counters),
        _ => Err(Counter::ErrorsTotalUnknownL4Proto),
    }
}

/// The SYN rule comes before any lookup; a miss may still be a SYN-cookie ACK.
#[inline(always)]
fn tcp<F: FlowTable + ?Sized>(
    l4: &[u8],
    addrs: Addrs,
    flows: &F,
    counters: &mut Counters,
) -> Classified {
    counters.bump(Counter::L4ProtocolPacketsTotalTcp);
    let tcp = TcpPacket::new_checked(l4).map_err(|_| Counter::ErrorsTotalMalformedTcp)?;
    let key = addrs.key(L4Proto::Tcp, tcp.src_port(), tcp.dst_port());
    if tcp.syn() {
        return Ok(Class::Syn(key));
    }
    if flows.owns(&key) {
        return Ok(Class::Established);
    }
    // The kernel's cookie check wants ACK set and RST (and SYN, already excluded) clear.
    if tcp.ack() && !tcp.rst() && flows.is_syncookie(&key, tcp.seq_number(), tcp.ack_number()) {
        return Ok(Class::SynCookie);
    }
    Ok(Class::Unknown)
}

/// Only a connected socket (an exact 4-tuple match) owns a UDP flow.
fn udp<F: FlowTable + ?Sized>(
    l4: &[u8],
    addrs: Addrs,
    flows: &F,
    counters: &mut Counters,
) -> Classified {
    counters.bump(Counter::L4ProtocolPacketsTotalUdp);
    let udp = UdpPacket::new_checked(l4).map_err(|_| Counter::ErrorsTotalMalformedUdp)?;
    Ok(owned(
        flows,
        addrs.key(L4Proto::Udp, udp.src_port(), udp.dst_port()),
    ))
}

fn owned<F: FlowTable + ?Sized>(flows: &F, key: FlowKey) -> Class {
    if flows.owns(&key) {
        Class::Established
    } else {
        Class::Unknown
    }
}

/// ICMPv4: echo requests are ours; fragmentation-needed is classified on the quoted flow.
fn icmp_v4<F: FlowTable + ?Sized>(l4: &[u8], flows: &F) -> Classified {
    let icmp = Icmpv4Packet::new_checked(l4).map_err(|_| Counter::ErrorsTotalMalformedIcmp)?;
    match (icmp.msg_type(), icmp.code()) {
        (icmpv4::TYPE_ECHO_REPLY, _) => return Err(Counter::ErrorsTotalIcmpEchoReplies),
        (icmpv4::TYPE_ECHO_REQUEST, _) => return Ok(Class::EchoRequest),
        (icmpv4::TYPE_DEST_UNREACHABLE, icmpv4::CODE_FRAG_NEEDED) => {}
        _ => return Err(Counter::ErrorsTotalUnwantedIcmp),
    }
    let quoted = &l4[icmpv4::HEADER_LEN..];
    let ip =
        Ipv4Packet::new_checked(quoted).map_err(|_| Counter::ErrorsTotalMalformedIcmpPktTooBig)?;
    // The quoted version and fragment bits are not checked: cls_redirect classifies them anyway.
    ip.check_options_len()
        .map_err(|_| Counter::ErrorsTotalMalformedIcmpPktTooBig)?;
    let addrs = Addrs::V4 {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
    };
    quoted_flow(&quoted[ip.header_len()..], ip.protocol(), addrs, flows)
}

/// ICMPv6: as ICMPv4, with Packet Too Big quoting an IPv6 packet and its extension headers.
fn icmp_v6<F: FlowTable + ?Sized>(l4: &[u8], flows: &F) -> Classified {
    let icmp = Icmpv6Packet::new_checked(l4).map_err(|_| Counter::ErrorsTotalMalformedIcmp)?;
    match icmp.msg_type() {
        icmpv6::TYPE_ECHO_REPLY => return Err(Counter::ErrorsTotalIcmpEchoReplies),
        icmpv6::TYPE_ECHO_REQUEST => return Ok(Class::EchoRequest),
        icmpv6::TYPE_PACKET_TOO_BIG => {}
        _ => return Err(Counter::ErrorsTotalUnwantedIcmp),
    }
    let quoted = &l4[icmpv6::HEADER_LEN..];
    let ip =
        Ipv6Packet::new_checked(quoted).map_err(|_| Counter::ErrorsTotalMalformedIcmpPktTooBig)?;
    let rest = &quoted[ipv6::HEADER_LEN..];
    let walk = ipv6::walk_extension_headers(rest, ip.next_header(), MAX_EXTENSION_HEADERS)
        .map_err(|_| Counter::ErrorsTotalMalformedIcmpPktTooBig)?;
    if walk.has_fragment {
        return Err(Counter::ErrorsTotalFragmentedIp);
    }
    let addrs = Addrs::V6 {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
    };
    quoted_flow(&rest[walk.len..], walk.upper_protocol, addrs, flows)
}

/// The quoted packet is one the host sent towards the client, so its flow is looked up reversed.
/// No SYN-cookie check here: a listener's flow in an ICMP error is unknown.
fn quoted_flow<F: FlowTable + ?Sized>(
    l4: &[u8],
    protocol: u8,
    addrs: Addrs,
    flows: &F,
) -> Classified {
    if l4.len() < 4 {
        return Err(Counter::ErrorsTotalMalformedIcmpPktTooBig);
    }
    let (quoted_src_port, quoted_dst_port) = (read_u16(l4, 0), read_u16(l4, 2));
    let proto = match protocol {
        ip_proto::TCP => L4Proto::Tcp,
        ip_proto::UDP => L4Proto::Udp,
        _ => return Err(Counter::ErrorsTotalMalformedIcmp),
    };
    Ok(owned(
        flows,
        addrs
            .reversed()
            .key(proto, quoted_dst_port, quoted_src_port),
    ))
}
