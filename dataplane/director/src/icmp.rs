//! ICMP to a VIP: the errors that path MTU discovery depends on, and echo requests.
//!
//! A router that cannot forward a backend's reply (sent from the VIP by direct server return)
//! sends "fragmentation needed" (IPv4) or "packet too big" (ICMPv6) to the VIP, quoting the
//! reply. The quote is the flow seen from the server side, so the director hashes it reversed
//! (quoted destination = client = source) and the error lands on the row, and so on the
//! backend, that holds the connection. Echo requests hash on the addresses with ports 0.
//! Every other ICMP message (other errors, neighbour discovery, echo replies) goes to the kernel.

use crate::classify::{self, BindQuery, Classified, Kind, Routable, PASS};
use crate::counters::DropReason;
use crate::flow_hash::FlowFields;
use chance_engine::wire::icmpv4::{self, Icmpv4Packet};
use chance_engine::wire::icmpv6::{self, Icmpv6Packet};
use chance_engine::wire::ip_proto;
use chance_engine::wire::ipv4::Ipv4Packet;
use chance_engine::wire::ipv6::{self, Ipv6Packet};
use core::net::IpAddr;

/// ICMPv6 packet too big has code 0 only.
const CODE_PACKET_TOO_BIG: u8 = 0;
/// Echo requests have code 0.
const CODE_ECHO: u8 = 0;
/// Bytes of the quoted transport header the director reads: the two ports.
const QUOTED_PORTS_LEN: usize = 4;

/// The quoted packet's (source, destination) ports, read from the first `QUOTED_PORTS_LEN`
/// bytes of its transport header `l4` (all a router must quote, and all GLB reads).
fn quoted_ports(l4: &[u8]) -> Option<(u16, u16)> {
    let ports = l4.get(..QUOTED_PORTS_LEN)?;
    Some((
        u16::from_be_bytes([ports[0], ports[1]]),
        u16::from_be_bytes([ports[2], ports[3]]),
    ))
}

/// The route for an error quoting a packet `vip`:`vip_port` -> client:`client_port`, sent to
/// `outer_dst`. The quote must come from the address the error was sent to: it is about a packet
/// this VIP sent, or it is not the director's business.
#[allow(clippy::too_many_arguments)]
fn quoted_error(
    outer_dst: IpAddr,
    vip: IpAddr,
    protocol_number: u8,
    quoted: FlowFields,
    (vip_port, client_port): (u16, u16),
    gue_proto: u8,
    inner_len: usize,
) -> Classified {
    if vip != outer_dst {
        return PASS;
    }
    let Some(protocol) = classify::bind_protocol(protocol_number) else {
        return PASS;
    };
    let mut flow = quoted;
    // Reversed: the client (the quote's destination) is the flow's source.
    core::mem::swap(&mut flow.src_addr, &mut flow.dst_addr);
    flow.src_port = client_port.to_be_bytes();
    flow.dst_port = vip_port.to_be_bytes();
    Classified::Routable(Routable {
        kind: Kind::IcmpError,
        query: BindQuery::Port {
            vip,
            protocol,
            port: vip_port,
        },
        flow,
        hint: client_port,
        gue_proto,
        inner_len,
    })
}

fn echo(vip: IpAddr, flow: FlowFields, hint: u16, gue_proto: u8, inner_len: usize) -> Classified {
    Classified::Routable(Routable {
        kind: Kind::IcmpEcho,
        query: BindQuery::AnyBind { vip },
        flow,
        hint,
        gue_proto,
        inner_len,
    })
}

/// ICMP in an IPv4 packet `ip` (its ICMP message is `l4`; `flow` its addresses).
pub(crate) fn icmpv4(
    ip: &Ipv4Packet<&[u8]>,
    l4: &[u8],
    flow: FlowFields,
    inner_len: usize,
) -> Classified {
    let vip = IpAddr::V4(ip.dst_addr());
    let Ok(icmp) = Icmpv4Packet::new_checked(l4) else {
        return Classified::malformed(vip, DropReason::TruncatedTransport);
    };
    match (icmp.msg_type(), icmp.code()) {
        (icmpv4::TYPE_DEST_UNREACHABLE, icmpv4::CODE_FRAG_NEEDED) => {
            let truncated = Classified::malformed(vip, DropReason::IcmpQuoteTruncated);
            let quote = icmp.payload();
            let Ok(quoted) = Ipv4Packet::new_checked(quote) else {
                return truncated;
            };
            if quoted.version() != 4 || quoted.check_options_len().is_err() {
                return truncated;
            }
            let Some(ports) = quoted_ports(&quote[quoted.header_len()..]) else {
                return truncated;
            };
            let quoted_flow = classify::flow_between(
                false,
                &quoted.src_addr().octets(),
                &quoted.dst_addr().octets(),
            );
            quoted_error(
                vip,
                IpAddr::V4(quoted.src_addr()),
                quoted.protocol(),
                quoted_flow,
                ports,
                ip_proto::IPIP,
                inner_len,
            )
        }
        (icmpv4::TYPE_ECHO_REQUEST, CODE_ECHO) => {
            echo(vip, flow, ip.ident(), ip_proto::IPIP, inner_len)
        }
        _ => PASS,
    }
}

/// ICMPv6 in an IPv6 packet `ip` (its ICMPv6 message is `l4`; `flow` its addresses).
pub(crate) fn icmpv6(
    ip: &Ipv6Packet<&[u8]>,
    l4: &[u8],
    flow: FlowFields,
    inner_len: usize,
) -> Classified {
    let vip = IpAddr::V6(ip.dst_addr());
    let Ok(icmp) = Icmpv6Packet::new_checked(l4) else {
        return Classified::malformed(vip, DropReason::TruncatedTransport);
    };
    match (icmp.msg_type(), icmp.code()) {
        (icmpv6::TYPE_PACKET_TOO_BIG, CODE_PACKET_TOO_BIG) => {
            let truncated = Classified::malformed(vip, DropReason::IcmpQuoteTruncated);
            let quote = icmp.payload();
            let Ok(quoted) = Ipv6Packet::new_checked(quote) else {
                return truncated;
            };
            if quoted.version() != 6 {
                return truncated;
            }
            // The quote is cut wherever the error's MTU allowed: walk what is there.
            let Ok(walk) = ipv6::walk_extension_headers(
                &quote[ipv6::HEADER_LEN..],
                quoted.next_header(),
                classify::EXTENSION_HEADER_LIMIT,
            ) else {
                return truncated;
            };
            let Some(ports) = quoted_ports(&quote[ipv6::HEADER_LEN + walk.len..]) else {
                return truncated;
            };
            let quoted_flow = classify::flow_between(
                true,
                &quoted.src_addr().octets(),
                &quoted.dst_addr().octets(),
            );
            quoted_error(
                vip,
                IpAddr::V6(quoted.src_addr()),
                walk.upper_protocol,
                quoted_flow,
                ports,
                ip_proto::IPV6,
                inner_len,
            )
        }
        // GLB spreads echo requests by the low 16 bits of the flow label.
        (icmpv6::TYPE_ECHO_REQUEST, CODE_ECHO) => {
            echo(vip, flow, ip.flow_label() as u16, ip_proto::IPV6, inner_len)
        }
        _ => PASS,
    }
}
