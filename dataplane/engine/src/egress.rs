//! Egress learning's parser: the flow of a frame the host sends out through the kernel port.
//!
//! Every TCP segment or UDP datagram the host sends proves that a local socket owns its flow
//! (a SYN-ACK, cookie or not, data, a connected UDP socket's reply) — except a TCP RST, which the
//! kernel also sends for flows no socket owns (a SYN to a closed port), so RSTs teach nothing.
//! A SYN-ACK proves only a handshake in progress (a request socket, or a cookie): the kernel
//! sends one for every SYN, spoofed or not, so it is learned as an embryonic entry, which a SYN
//! flood cannot turn into evictions of established flows; the host's next segment upgrades it.
//! The frame is the host's own: plain Ethernet + IPv4/IPv6 + TCP/UDP, no encapsulation.

use crate::flow::{FlowKey, Ipv4FlowKey, L4Proto};
use crate::wire::ethernet::{self, EthernetFrame};
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::tcp::TcpPacket;
use crate::wire::{ethertype, ip_proto, read_u16};
use core::net::SocketAddr;

/// The host's egress walks at most this many IPv6 extension headers (as the classifier does).
const MAX_EXTENSION_HEADERS: usize = 5;

/// A UDP header: the ports and what a datagram must hold besides.
const UDP_HEADER_LEN: usize = 8;

/// What a host-sent frame proves about its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressFlow {
    /// The flow as the host's socket sees it (local = the frame's source).
    pub key: FlowKey,
    /// A TCP segment with SYN set: a handshake in progress, not yet a connection.
    pub handshake: bool,
}

/// [`EgressFlow`] in the IPv4 key's form, as the host's usual frame proves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ipv4EgressFlow {
    pub(crate) key: Ipv4FlowKey,
    pub(crate) handshake: bool,
}

impl From<Ipv4EgressFlow> for EgressFlow {
    #[inline]
    fn from(flow: Ipv4EgressFlow) -> Self {
        Self {
            key: flow.key.into(),
            handshake: flow.handshake,
        }
    }
}

/// The flow a host-sent frame belongs to, or `None` when the frame proves nothing: not TCP/UDP,
/// a TCP RST, a non-first fragment, or truncated.
#[inline]
pub fn egress_flow(frame: &[u8]) -> Option<EgressFlow> {
    match plain_ipv4_flow(frame) {
        Some(answer) => answer.map(EgressFlow::from),
        None => any_egress_flow(frame),
    }
}

/// [`egress_flow`] for the host's usual frame, IPv4 without options: fixed offsets, one length
/// check. `None` for any other frame (IPv6, IPv4 options, shorter than a UDP header needs), which
/// the general parse ([`any_egress_flow`]) answers.
#[inline(always)]
pub(crate) fn plain_ipv4_flow(frame: &[u8]) -> Option<Option<Ipv4EgressFlow>> {
    const L4: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
    if frame.len() < L4 + UDP_HEADER_LEN {
        return None;
    }
    let eth = EthernetFrame::new_unchecked(frame);
    let ip = Ipv4Packet::new_unchecked(&frame[ethernet::HEADER_LEN..]);
    if eth.ethertype() != ethertype::IPV4 || ip.version() != 4 || ip.ihl() != 5 {
        return None;
    }
    if ip.frag_offset() != 0 {
        return Some(None);
    }
    let l4 = &frame[L4..];
    let handshake = match ip.protocol() {
        ip_proto::TCP => {
            let tcp = TcpPacket::new_checked(l4).ok().filter(|tcp| !tcp.rst());
            let Some(tcp) = tcp else { return Some(None) };
            tcp.syn()
        }
        ip_proto::UDP => false,
        _ => return Some(None),
    };
    let proto = if ip.protocol() == ip_proto::TCP {
        L4Proto::Tcp
    } else {
        L4Proto::Udp
    };
    let (sport, dport) = (read_u16(l4, 0), read_u16(l4, 2));
    let key = Ipv4FlowKey::new(proto, ip.src_addr(), sport, ip.dst_addr(), dport);
    Some(Some(Ipv4EgressFlow { key, handshake }))
}

/// An IPv4 flow from the local side as it lies in the headers of a frame without IP options,
/// in two little-endian words: the first is bytes 8-15 of the IP header with the protocol (byte
/// 9) and the source address (12-15) kept and the rest (time to live, checksum) zeroed; the
/// second is the destination address and the ports (bytes 16-19 of the IP header, 0-3 of the
/// L4 header). The form a record of flows compares frames in
/// ([`RecentFlows`](crate::table::RecentFlows)): two loads and a mask a frame, no byte swaps.
pub(crate) type HeaderWords = [u64; 2];

/// Where [`HeaderWords`]' first word starts in the IPv4 header (its time to live).
const PROTOCOL_WORD: usize = ipv4::ADDRS.start - 4;
/// The bytes of that word that belong to the flow: the protocol and the source address.
const PROTOCOL_WORD_MASK: u64 = 0xffff_ffff_0000_ff00;
/// Where the second word starts: the destination address, followed by the L4 header.
const DESTINATION_WORD: usize = ipv4::ADDRS.end - 4;

/// The [`HeaderWords`] of the flow [`plain_ipv4_flow`] would read from `frame`, read at the same
/// fixed offsets but with nothing of the transport header checked (its flags, its length, the
/// protocol): for asking a record of flows whose inserts would change nothing, before any parse.
/// A frame whose words such a record holds needs no insert whatever it turns out to be, since a
/// frame that proves nothing inserts nothing either. `None` exactly when [`plain_ipv4_flow`]
/// answers `None`.
#[inline(always)]
pub(crate) fn plain_ipv4_words(frame: &[u8]) -> Option<HeaderWords> {
    const L3: usize = ethernet::HEADER_LEN;
    const L4: usize = L3 + ipv4::HEADER_LEN;
    // One length check; every offset below is then within the array.
    let headers = frame.first_chunk::<{ L4 + UDP_HEADER_LEN }>()?;
    let eth = EthernetFrame::new_unchecked(&headers[..]);
    let ip = Ipv4Packet::new_unchecked(&headers[L3..L4]);
    if eth.ethertype() != ethertype::IPV4 || ip.version() != 4 || ip.ihl() != 5 {
        return None;
    }
    let word = |at: usize| {
        let mut word = [0; 8];
        word.copy_from_slice(&headers[L3 + at..L3 + at + 8]);
        u64::from_le_bytes(word)
    };
    Some([
        word(PROTOCOL_WORD) & PROTOCOL_WORD_MASK,
        word(DESTINATION_WORD),
    ])
}

/// The [`HeaderWords`] of an IPv4 key, as a frame the host sends on its flow carries them;
/// `None` for an IPv6 key.
pub(crate) fn header_words(key: &FlowKey) -> Option<HeaderWords> {
    let (SocketAddr::V4(local), SocketAddr::V4(remote)) = (key.local(), key.remote()) else {
        return None;
    };
    let [a, b, c, d] = local.ip().octets();
    let [e, f, g, h] = remote.ip().octets();
    let ([i, j], [k, l]) = (local.port().to_be_bytes(), remote.port().to_be_bytes());
    let protocol = key.proto() as u8;
    Some([
        u64::from_le_bytes([0, protocol, 0, 0, a, b, c, d]),
        u64::from_le_bytes([e, f, g, h, i, j, k, l]),
    ])
}

/// [`egress_flow`] for any frame: IPv4 with or without options, IPv6 with extension headers.
pub(crate) fn any_egress_flow(frame: &[u8]) -> Option<EgressFlow> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let l3 = &frame[ethernet::HEADER_LEN..];
    match eth.ethertype() {
        ethertype::IPV4 => {
            let ip = Ipv4Packet::new_checked(l3).ok()?;
            ip.check_options_len().ok()?;
            if ip.version() != 4 || ip.frag_offset() != 0 {
                return None;
            }
            let (proto, sport, dport, handshake) = ports(ip.protocol(), &l3[ip.header_len()..])?;
            let key = FlowKey::v4(proto, ip.src_addr(), sport, ip.dst_addr(), dport);
            Some(EgressFlow { key, handshake })
        }
        ethertype::IPV6 => {
            let ip = Ipv6Packet::new_checked(l3).ok()?;
            if ip.version() != 6 {
                return None;
            }
            let rest = &l3[ipv6::HEADER_LEN..];
            let walk =
                ipv6::walk_extension_headers(rest, ip.next_header(), MAX_EXTENSION_HEADERS).ok()?;
            if walk.has_fragment {
                return None;
            }
            let (proto, sport, dport, handshake) = ports(walk.upper_protocol, &rest[walk.len..])?;
            let key = FlowKey::v6(proto, ip.src_addr(), sport, ip.dst_addr(), dport);
            Some(EgressFlow { key, handshake })
        }
        _ => None,
    }
}

/// Protocol, ports and "SYN set" of a TCP (not RST) or UDP header.
fn ports(protocol: u8, l4: &[u8]) -> Option<(L4Proto, u16, u16, bool)> {
    let (proto, handshake) = match protocol {
        ip_proto::TCP => {
            let tcp = TcpPacket::new_checked(l4).ok()?;
            if tcp.rst() {
                return None;
            }
            (L4Proto::Tcp, tcp.syn())
        }
        ip_proto::UDP if l4.len() >= UDP_HEADER_LEN => (L4Proto::Udp, false),
        _ => return None,
    };
    Some((proto, read_u16(l4, 0), read_u16(l4, 2), handshake))
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    const HOST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

    fn eth(ethertype: u16) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 0xfe, 2, 0, 0, 0, 0, 1];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    fn ipv4(proto: u8, l4: &[u8], frag: u16) -> Vec<u8> {
        let mut f = eth(0x0800);
        let total = (20 + l4.len()) as u16;
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&frag.to_be_bytes());
        f.extend_from_slice(&[64, proto, 0, 0]);
        f.extend_from_slice(&HOST.octets());
        f.extend_from_slice(&CLIENT.octets());
        f.extend_from_slice(l4);
        f
    }

    fn tcp(flags: u8) -> Vec<u8> {
        let mut t = vec![
            0x01, 0xbb, 0xc8, 0x22, 0, 0, 0, 1, 0, 0, 0, 2, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0,
        ];
        t.truncate(20);
        t
    }

    #[test]
    fn syn_ack_teaches_a_handshake_with_the_host_as_local_side() {
        let flow = egress_flow(&ipv4(6, &tcp(0x12), 0)).unwrap();
        assert_eq!(
            flow.key,
            FlowKey::v4(L4Proto::Tcp, HOST, 443, CLIENT, 51234)
        );
        assert!(flow.handshake);
        assert!(
            !egress_flow(&ipv4(6, &tcp(0x10), 0)).unwrap().handshake,
            "an ACK is a connection"
        );
    }

    #[test]
    fn udp_reply_teaches_the_flow() {
        let udp = [0x14, 0xe9, 0xc8, 0x22, 0, 8, 0, 0];
        let flow = egress_flow(&ipv4(17, &udp, 0)).unwrap();
        assert_eq!(
            flow.key,
            FlowKey::v4(L4Proto::Udp, HOST, 5353, CLIENT, 51234)
        );
        assert!(!flow.handshake);
    }

    #[test]
    fn rst_icmp_fragments_and_truncation_teach_nothing() {
        assert_eq!(egress_flow(&ipv4(6, &tcp(0x14), 0)), None, "RST");
        assert_eq!(egress_flow(&ipv4(1, &[0; 8], 0)), None, "ICMP");
        assert_eq!(
            egress_flow(&ipv4(6, &tcp(0x10), 0x0001)),
            None,
            "non-first fragment"
        );
        assert!(
            egress_flow(&ipv4(6, &tcp(0x10), 0x2000)).is_some(),
            "first fragment has the ports"
        );
        assert_eq!(
            egress_flow(&ipv4(6, &tcp(0x10)[..19], 0)),
            None,
            "truncated TCP"
        );
        assert_eq!(egress_flow(&eth(0x0806)), None, "ARP");
        assert_eq!(egress_flow(&[0; 10]), None, "runt");
    }

    #[test]
    fn the_plain_ipv4_parse_answers_as_the_general_one() {
        // Every frame around the templates: each byte of the headers set to values that matter
        // (ethertypes, version and IHL, fragments, protocols, flags), and every length. The
        // header words are read from the same frames, and are those of the flow parsed.
        let udp = [0x14, 0xe9, 0xc8, 0x22, 0, 8, 0, 0];
        let templates = [
            ipv4(6, &tcp(0x10), 0),
            ipv4(6, &tcp(0x12), 0),
            ipv4(6, &tcp(0x14), 0),
            ipv4(17, &udp, 0x2000),
            ipv4(1, &[0; 8], 0),
        ];
        let mut checked = 0;
        for template in &templates {
            for at in 0..template.len() {
                for value in [
                    0, 1, 4, 5, 6, 8, 0x11, 0x12, 0x14, 0x20, 0x45, 0x46, 0x55, 0x86, 0xdd, 0xff,
                ] {
                    let mut frame = template.clone();
                    frame[at] = value;
                    for len in [frame.len(), frame.len() - 1, 42, 41, 34, 20] {
                        let frame = &frame[..len.min(frame.len())];
                        let words = plain_ipv4_words(frame);
                        assert_eq!(words.is_some(), plain_ipv4_flow(frame).is_some());
                        if let Some(plain) = plain_ipv4_flow(frame) {
                            let plain = plain.map(EgressFlow::from);
                            assert_eq!(plain, any_egress_flow(frame), "{frame:02x?}");
                            if let Some(flow) = plain {
                                // The record's form of the flow is the frame's.
                                assert_eq!(header_words(&flow.key), words, "{frame:02x?}");
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    #[test]
    fn ipv6_data_teaches_the_flow() {
        let (host, client) = (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 10),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7),
        );
        let mut f = eth(0x86dd);
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 20, 6, 64]);
        f.extend_from_slice(&host.octets());
        f.extend_from_slice(&client.octets());
        f.extend_from_slice(&tcp(0x18));
        let key = FlowKey::v6(L4Proto::Tcp, host, 443, client, 51234);
        assert_eq!(
            egress_flow(&f),
            Some(EgressFlow {
                key,
                handshake: false
            })
        );
    }
}
