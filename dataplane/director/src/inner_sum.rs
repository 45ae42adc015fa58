//! The inner packet's share of the outer UDP checksum, derived from the packet's own checksums
//! where that is exact, instead of read from every byte.
//!
//! The outer UDP checksum covers the whole client packet, so summing it byte by byte was the
//! director's largest per-byte cost. A valid packet already carries the information: its
//! transport checksum makes the transport segment sum to the complement of the pseudo-header's
//! sum (RFC 768, RFC 793, RFC 8200 §8.1), and an ICMPv4 message sums to all ones on its own
//! (RFC 792). So, in ones' complement arithmetic (where `!x` is `-x`),
//!
//! ```text
//! sum(packet) = sum(IP header) + sum(segment)
//!             = sum(IP header) - sum(pseudo-header)     TCP, UDP, ICMPv6
//!             = sum(IP header)                          ICMPv4 (its segment adds zero)
//! ```
//!
//! The IP header (IHL * 4 bytes, options included, or IPv6's 40) is read directly. The
//! pseudo-header is the header's two addresses, the protocol and the segment's length, which
//! the header holds too: the addresses are in both sums and cancel, and so, for IPv4, do the
//! protocol and the lengths (the code says how). A 1500-byte packet costs what a 64-byte one
//! does.
//!
//! Only where this is exact for a valid packet: an unfragmented IPv4 packet (no MF, offset 0)
//! or an IPv6 packet whose next header is the transport itself, whose length fields agree with
//! the bytes (IPv4 total length, IPv6 payload length, and for UDP its own length), long enough
//! for the transport header, carrying TCP, UDP with a non-zero checksum (zero means "none"),
//! ICMPv4 or ICMPv6. Everything else (fragments, UDP without a checksum, other protocols, IPv6
//! extension headers, lengths that do not add up) is summed byte by byte as before.
//!
//! What it changes, decided with that in mind: for a valid packet the outer checksum is bit for
//! bit what summing every byte gives (the result is the same ones' complement sum, and folds to
//! the same 16 bits because the header alone is never zero). For a packet whose transport
//! checksum is wrong, the derived sum is off by exactly that error, so the outer UDP checksum
//! fails too: a receiver that verifies it drops the packet, and one that does not hands it to
//! the backend's stack, which drops it on its own checksum. A corrupt packet is never given a
//! fresh valid checksum.

use chance_engine::wire::checksum;
use chance_engine::wire::ip_proto;
use chance_engine::wire::ipv4::{self, Ipv4Packet};
use chance_engine::wire::ipv6::{self, Ipv6Packet};
use chance_engine::wire::udp::UdpPacket;
use chance_engine::wire::{icmpv4, icmpv6, tcp, udp};

/// The IPv6 header's words before the addresses: version to hop limit.
const IPV6_BEFORE_ADDRS: usize = 8;

/// The ones' complement sum of `packet` (an IP packet) in little-endian words, not always
/// folded (at most 19 bits): the byte-swapped [`checksum::sum`] over every byte (RFC 1071
/// §2(B)), derived from the packet's own checksums where that is exact (see the module
/// documentation). Little-endian, as the outer UDP checksum is summed.
#[inline]
pub(crate) fn sum_le(packet: &[u8]) -> u32 {
    derived_le(packet).unwrap_or_else(|| swapped(checksum::sum(packet)))
}

/// The derived sum in little-endian words (see [`sum_le`]), or `None` where only reading
/// every byte is exact.
#[inline]
fn derived_le(packet: &[u8]) -> Option<u32> {
    match *packet.first()? {
        // IPv4 without options, the usual packet: its header length known to the compiler.
        IPV4_NO_OPTIONS => derived_ipv4_no_options(packet),
        first if first >> 4 == 4 => {
            derived_ipv4(packet, usize::from(first & 0x0f) * 4).map(swapped)
        }
        first if first >> 4 == 6 => derived_ipv6(packet).map(swapped),
        _ => None,
    }
}

/// A folded sum in network order as the sum of the same words read little-endian.
#[inline(always)]
fn swapped(sum: u16) -> u32 {
    u32::from(sum.swap_bytes())
}

/// [`sum_le`] in network order, folded: what [`checksum::sum`] gives over every byte.
#[cfg(test)]
fn sum(packet: &[u8]) -> u16 {
    checksum::fold(sum_le(packet)).swap_bytes()
}

/// [`derived_le`] in network order, folded.
#[cfg(test)]
fn derived(packet: &[u8]) -> Option<u16> {
    derived_le(packet).map(|sum| checksum::fold(sum).swap_bytes())
}

/// Version 4, IHL 5.
const IPV4_NO_OPTIONS: u8 = 0x45;
/// The IPv4 header's words that the pseudo-header does not cancel (with the TTL byte and the
/// checksum): version, IHL and TOS; identification; flags and fragment offset.
const IPV4_VERSION_IHL_TOS: usize = 0;
const IPV4_IDENT: usize = 4;
const IPV4_FLAGS_FRAGMENT: usize = 6;

/// The header words [`derived_ipv4_no_options`] adds, read little-endian: bytes 0-1 (version,
/// IHL and TOS) of the first eight (2-3, the total length, left out), ...
const FIRST_WORD: u64 = 0xffff;
/// ... bytes 8-11 but the protocol byte (9: the TTL's byte and the checksum), ...
const TTL_AND_CHECKSUM: u32 = u32::from_le_bytes([0xff, 0, 0xff, 0xff]);
/// ... and the header's length (20) as a little-endian word.
const HEADER_LEN_WORD: u64 = u16::from_le_bytes([0, ipv4::HEADER_LEN as u8]) as u64;
/// Of the first eight bytes read little-endian, the total length (bytes 2-3) and the MF flag
/// and fragment offset (bytes 6-7 but DF and the reserved bit): what must be the packet's
/// length, and zero (not a fragment).
const LENGTH_AND_FRAGMENT: u64 = u64::from_le_bytes([0, 0, 0xff, 0xff, 0, 0, 0x3f, 0xff]);

/// IPv4 without options, the usual packet: what [`derived_ipv4`] computes, in little-endian
/// words (see [`sum_le`]), with the header read as two little-endian integers (the first
/// eight bytes and the next four) and its length and fragment checks made as one comparison.
/// ICMPv4 and any other protocol go to [`derived_ipv4`].
#[inline(always)]
fn derived_ipv4_no_options(packet: &[u8]) -> Option<u32> {
    let fixed: &[u8; ipv4::HEADER_LEN] = packet.first_chunk()?;
    let (first, middle) = no_options_words(fixed);
    let len = u16::try_from(packet.len()).ok()?;
    let whole_and_unfragmented = u64::from(u16::from_le_bytes(len.to_be_bytes())) << 16;
    if first & LENGTH_AND_FRAGMENT != whole_and_unfragmented {
        return None;
    }
    // One arm a protocol, so that each checks only its own transport.
    match (middle >> 8) as u8 {
        ip_proto::TCP => transport_ok(ip_proto::TCP, packet.get(ipv4::HEADER_LEN..)?)?,
        ip_proto::UDP => transport_ok(ip_proto::UDP, packet.get(ipv4::HEADER_LEN..)?)?,
        _ => return derived_ipv4(packet, ipv4::HEADER_LEN).map(swapped),
    }
    Some(no_options_sum(first, middle))
}

/// [`sum_le`] of the IP packet of a frame the fast path took (`crate::fast`), where that read
/// already checked what [`derived_ipv4_no_options`] checks but two things: `packet` is IPv4
/// with IHL 5 and a fragment offset of 0, exactly as long as its total length (the caller cut
/// it there), carrying TCP with its 20 bytes or UDP with its 8. Left to check: the MF flag
/// (a first fragment's transport checksum covers more than it carries) and UDP's own length
/// and checksum. `None` where only reading every byte is exact, as [`derived_le`].
///
/// Called where the fast path has just read the frame's header, so the header's words are
/// read once more from the cache and nothing it proved is checked again.
#[inline(always)]
pub(crate) fn derived_common_le(packet: &[u8]) -> Option<u32> {
    let fixed: &[u8; ipv4::HEADER_LEN] = packet.first_chunk()?;
    let (first, middle) = no_options_words(fixed);
    if first & FRAGMENT != 0 {
        return None;
    }
    match (middle >> 8) as u8 {
        ip_proto::TCP => {}
        ip_proto::UDP => transport_ok(ip_proto::UDP, packet.get(ipv4::HEADER_LEN..)?)?,
        _ => return None,
    }
    Some(no_options_sum(first, middle))
}

/// Of the first eight bytes read little-endian, the MF flag and the fragment offset.
const FRAGMENT: u64 = LENGTH_AND_FRAGMENT & !0xffff_ffff;

/// An IPv4 header without options read as two little-endian integers: its first eight bytes
/// and the next four.
#[inline(always)]
fn no_options_words(fixed: &[u8; ipv4::HEADER_LEN]) -> (u64, u32) {
    let first = u64::from_le_bytes([
        fixed[0], fixed[1], fixed[2], fixed[3], fixed[4], fixed[5], fixed[6], fixed[7],
    ]);
    let middle = u32::from_le_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
    (first, middle)
}

/// The derived sum of a valid IPv4 packet without options carrying TCP or UDP, from its
/// header's [`no_options_words`]: identification and flags (bytes 4-7), then bytes 0-1, the
/// TTL's byte and the checksum: the words the pseudo-header does not cancel (see
/// [`derived_ipv4`]), and the header's length.
#[inline(always)]
fn no_options_sum(first: u64, middle: u32) -> u32 {
    let sum = (first >> 32)
        + (first & FIRST_WORD)
        + u64::from(middle & TTL_AND_CHECKSUM)
        + HEADER_LEN_WORD;
    // At most 34 bits: one fold brings it under 19 (the caller folds the rest).
    ((sum & 0xffff) + (sum >> 16)) as u32
}

/// An IPv4 packet whose first byte gives `header_len` bytes of header.
#[inline(always)]
fn derived_ipv4(packet: &[u8], header_len: usize) -> Option<u16> {
    let fixed: &[u8; ipv4::HEADER_LEN] = packet.first_chunk()?;
    let ip = Ipv4Packet::new_unchecked(&fixed[..]);
    if header_len < ipv4::HEADER_LEN
        || usize::from(ip.total_len()) != packet.len()
        || ip.is_fragment()
    {
        return None;
    }
    let segment = packet.get(header_len..)?;
    let protocol = ip.protocol();
    let mut sum = if protocol == ip_proto::ICMP {
        // No pseudo-header, and a valid message adds zero: the header is the sum.
        if segment.len() < icmpv4::HEADER_LEN {
            return None;
        }
        words(fixed)
    } else {
        transport_ok(protocol, segment)?;
        // sum(header) - sum(pseudo-header): the addresses cancel; the total length (a header
        // word) less the segment's length (the pseudo-header's) is the header's length; the
        // TTL/protocol word less the protocol is the TTL's byte. Every term is positive.
        word(fixed, IPV4_VERSION_IHL_TOS)
            + word(fixed, IPV4_IDENT)
            + word(fixed, IPV4_FLAGS_FRAGMENT)
            + word(fixed, ipv4::CHECKSUM_OFFSET)
            + (u32::from(ip.ttl()) << 8)
            + header_len as u32
    };
    // Options last: only the sum is live across the call.
    if header_len > ipv4::HEADER_LEN {
        sum += u32::from(checksum::sum(packet.get(ipv4::HEADER_LEN..header_len)?));
    }
    Some(checksum::fold(sum))
}

#[inline]
fn derived_ipv6(packet: &[u8]) -> Option<u16> {
    let fixed: &[u8; ipv6::HEADER_LEN] = packet.first_chunk()?;
    let ip = Ipv6Packet::new_unchecked(&fixed[..]);
    if usize::from(ip.payload_len()) + ipv6::HEADER_LEN != packet.len() {
        return None;
    }
    let segment = packet.get(ipv6::HEADER_LEN..)?;
    let next_header = ip.next_header();
    if next_header == ip_proto::ICMPV6 {
        if segment.len() < icmpv6::HEADER_LEN {
            return None;
        }
    } else {
        transport_ok(next_header, segment)?;
    }
    let sum = words(&fixed[..IPV6_BEFORE_ADDRS]) + minus_pseudo_header(next_header, segment.len());
    Some(checksum::fold(sum))
}

/// `Some` for a TCP segment or a UDP datagram whose checksum covers exactly `segment` against
/// the pseudo-header: TCP with its whole header, UDP with its own length equal to the segment's
/// and a checksum (zero means "none", and proves nothing).
#[inline]
fn transport_ok(protocol: u8, segment: &[u8]) -> Option<()> {
    match protocol {
        ip_proto::TCP => (segment.len() >= tcp::HEADER_LEN).then_some(()),
        ip_proto::UDP => {
            let udp = UdpPacket::new_checked(segment).ok()?;
            let whole = usize::from(udp.len()) == segment.len() && segment.len() >= udp::HEADER_LEN;
            (whole && udp.checksum() != 0).then_some(())
        }
        _ => None,
    }
}

/// The pseudo-header's sum without its addresses (they cancel against the IP header's),
/// negated: the complements of the protocol and of the segment's length (at most 0xffff: the
/// IP length fields are 16 bits).
#[inline(always)]
fn minus_pseudo_header(protocol: u8, segment_len: usize) -> u32 {
    u32::from(!u16::from(protocol)) + u32::from(!(segment_len as u16))
}

/// The sum of `bytes` as big-endian 16-bit words (an even number of bytes), not folded.
#[inline(always)]
fn words(bytes: &[u8]) -> u32 {
    bytes
        .chunks_exact(2)
        .map(|word| u32::from(u16::from_be_bytes([word[0], word[1]])))
        .sum()
}

/// The big-endian 16-bit word at `at` of an IPv4 header.
#[inline(always)]
fn word(header: &[u8; ipv4::HEADER_LEN], at: usize) -> u32 {
    u32::from(u16::from_be_bytes([header[at], header[at + 1]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encap::{
        write, EncapConfig, EncapHeader, FlowRoute, HeaderTemplate, HopPart, Layout, UDP_OFFSET,
    };
    use core::net::Ipv4Addr;
    use etherparse::{
        IpDscp, IpHeaders, IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header, PacketBuilder,
    };
    use proptest::prelude::*;

    /// What a test packet carries.
    #[derive(Debug, Clone, Copy)]
    enum Transport {
        Tcp,
        Udp,
        /// ICMPv4 or ICMPv6, by the family.
        Icmp,
    }

    /// The random parts of a valid client packet.
    #[derive(Debug, Clone)]
    struct Spec {
        ipv6: bool,
        /// IPv4 option words (0 to 10; ignored for IPv6).
        option_words: usize,
        transport: Transport,
        /// Addresses, ports, sequence number and the IP header's free fields.
        noise: [u8; 48],
        payload: Vec<u8>,
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (
            any::<bool>(),
            0usize..=10,
            prop_oneof![
                Just(Transport::Tcp),
                Just(Transport::Udp),
                Just(Transport::Icmp)
            ],
            any::<[u8; 48]>(),
            proptest::collection::vec(any::<u8>(), 0..1400),
        )
            .prop_map(|(ipv6, option_words, transport, noise, payload)| Spec {
                ipv6,
                option_words,
                transport,
                noise,
                payload,
            })
    }

    /// The packet `spec` describes, built (checksums included) by etherparse.
    fn packet(spec: &Spec) -> Vec<u8> {
        let n = &spec.noise;
        let word = |i: usize| u16::from_be_bytes([n[i], n[i + 1]]);
        let ip = if spec.ipv6 {
            IpHeaders::Ipv6(
                Ipv6Header {
                    traffic_class: n[0],
                    flow_label: Ipv6FlowLabel::try_new(u32::from(word(1)) << 4).unwrap(),
                    hop_limit: n[3],
                    source: n[4..20].try_into().unwrap(),
                    destination: n[20..36].try_into().unwrap(),
                    ..Default::default()
                },
                Default::default(),
            )
        } else {
            let mut header =
                Ipv4Header::new(0, n[3], IpNumber::TCP, n[4..8].try_into().unwrap(), [0; 4])
                    .unwrap();
            header.destination = n[20..24].try_into().unwrap();
            header.dscp = IpDscp::try_new(n[0] >> 2).unwrap();
            header.identification = word(1);
            header.dont_fragment = n[8] & 1 != 0;
            // Option bytes: any values do for the checksums (NOPs would be 1s).
            header.options = n[..4 * spec.option_words].try_into().unwrap();
            IpHeaders::Ipv4(header, Default::default())
        };
        let (sport, dport, seq) = (word(36), word(38), u32::from(word(40)) << 16 | 1);
        let builder = PacketBuilder::ip(ip);
        let mut out = Vec::new();
        match spec.transport {
            Transport::Tcp => builder
                .tcp(sport, dport, seq, word(42))
                .write(&mut out, &spec.payload),
            Transport::Udp => builder.udp(sport, dport).write(&mut out, &spec.payload),
            Transport::Icmp if spec.ipv6 => builder
                .icmpv6_echo_request(sport, dport)
                .write(&mut out, &spec.payload),
            Transport::Icmp => builder
                .icmpv4_echo_request(sport, dport)
                .write(&mut out, &spec.payload),
        }
        .unwrap();
        out
    }

    /// The header chance-director writes in front of `inner` (one hop), its outer UDP checksum
    /// taken from [`sum`].
    fn outer_header(inner: &[u8]) -> EncapHeader {
        let config = EncapConfig {
            src_addr: Ipv4Addr::new(65, 65, 65, 65),
            gateway_mac: [2, 0, 0, 0, 0, 0xfe],
            port_mac: [2, 0, 0, 0, 0, 1],
            gue_port: 19523,
        };
        let flow = FlowRoute {
            hash: 0x1234,
            hint: 80,
            gue_proto: 4,
        };
        let hops = [Ipv4Addr::new(10, 0, 0, 1)];
        let mut header = EncapHeader::new();
        let layout = Layout::new(hops.len(), inner.len()).unwrap();
        let template = HeaderTemplate::new(&config);
        header.fill(layout.len, |out| {
            write(
                out,
                &template,
                &layout,
                flow,
                HopPart::Listed(&hops),
                inner,
                None,
            )
        });
        assert!(!header.is_empty());
        header
    }

    /// The outer UDP datagram's sum with its pseudo-header, over every byte of `header` from
    /// the UDP header on and of `inner`.
    fn outer_udp_sum(header: &[u8], inner: &[u8]) -> u16 {
        let mut datagram = Vec::new();
        datagram.extend_from_slice(&header[26..34]); // outer source and destination
        datagram.extend_from_slice(&[0, ip_proto::UDP]);
        datagram.extend_from_slice(&header[UDP_OFFSET + 4..UDP_OFFSET + 6]); // UDP length
        datagram.extend_from_slice(&header[UDP_OFFSET..]);
        datagram.extend_from_slice(inner);
        checksum::sum(&datagram)
    }

    /// The outer UDP checksum field as computed over every byte (what the director sent before
    /// the inner sum was derived): the complement, a zero sent as all ones.
    fn outer_checksum_over_every_byte(header: &[u8], inner: &[u8]) -> [u8; 2] {
        let mut zeroed = header.to_vec();
        zeroed[UDP_OFFSET + 6..UDP_OFFSET + 8].fill(0);
        match !outer_udp_sum(&zeroed, inner) {
            0 => [0xff, 0xff],
            check => check.to_be_bytes(),
        }
    }

    /// Whether a receiver that verifies the outer UDP checksum accepts the datagram.
    fn outer_checksum_verifies(header: &[u8], inner: &[u8]) -> bool {
        outer_udp_sum(header, inner) == 0xffff
    }

    /// The valid packet's first transport payload byte's offset.
    fn payload_offset(packet: &[u8], spec: &Spec) -> usize {
        packet.len() - spec.payload.len()
    }

    proptest! {
        #[test]
        fn a_valid_packets_sum_is_derived_and_equals_the_sum_of_every_byte(spec in spec()) {
            let inner = packet(&spec);
            prop_assert_eq!(derived(&inner), Some(checksum::sum(&inner)));
            prop_assert_eq!(sum(&inner), checksum::sum(&inner));
        }

        #[test]
        fn a_valid_packets_outer_udp_checksum_is_byte_identical_to_summing_every_byte(
            spec in spec(),
        ) {
            let inner = packet(&spec);
            let header = outer_header(&inner);
            let header = header.as_bytes();
            prop_assert_eq!(
                &header[UDP_OFFSET + 6..UDP_OFFSET + 8],
                &outer_checksum_over_every_byte(header, &inner)[..]
            );
            prop_assert!(outer_checksum_verifies(header, &inner));
        }

        #[test]
        fn a_corrupt_packets_outer_udp_checksum_fails_verification(
            spec in spec().prop_filter("a payload to corrupt", |s| !s.payload.is_empty()),
            at in any::<proptest::sample::Index>(),
            flip in 1u8..,
        ) {
            let mut inner = packet(&spec);
            let start = payload_offset(&inner, &spec);
            inner[start + at.index(spec.payload.len())] ^= flip;
            prop_assert!(derived(&inner).is_some());
            let header = outer_header(&inner);
            prop_assert!(!outer_checksum_verifies(header.as_bytes(), &inner));
        }

        #[test]
        fn the_fast_paths_sum_is_the_derived_one_and_falls_back_where_it_does(spec in spec()) {
            // What the fast path takes: IPv4 without options carrying TCP or UDP.
            let transport = match spec.transport {
                Transport::Udp => Transport::Udp,
                _ => Transport::Tcp,
            };
            let spec = Spec { ipv6: false, option_words: 0, transport, ..spec };
            let valid = packet(&spec);
            prop_assert_eq!(derived_common_le(&valid), derived_le(&valid));
            for (what, inner) in fallbacks(&spec, &valid) {
                // Of the fallbacks, those the fast path's own checks let through.
                let taken = what == "more fragments" || what.starts_with("UDP");
                if taken {
                    prop_assert_eq!(derived_common_le(&inner), None, "{}", what);
                }
            }
        }

        #[test]
        fn packets_it_cannot_vouch_for_are_summed_byte_by_byte(spec in spec()) {
            let valid = packet(&spec);
            for (what, inner) in fallbacks(&spec, &valid) {
                prop_assert_eq!(derived(&inner), None, "{}", what);
                prop_assert_eq!(sum(&inner), checksum::sum(&inner), "{}", what);
            }
        }
    }

    /// `valid` made into packets whose sum cannot be derived: each with what was done to it.
    fn fallbacks(spec: &Spec, valid: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
        let changed = |change: &dyn Fn(&mut Vec<u8>)| {
            let mut packet = valid.to_vec();
            change(&mut packet);
            packet
        };
        let header_len = if spec.ipv6 {
            40
        } else {
            20 + 4 * spec.option_words
        };
        let (protocol_at, length_at) = if spec.ipv6 { (6, 4) } else { (9, 2) };
        let set_length = |packet: &mut Vec<u8>, len: usize| {
            let len = if spec.ipv6 { len - 40 } else { len } as u16;
            packet[length_at..length_at + 2].copy_from_slice(&len.to_be_bytes());
        };
        let mut cases = vec![
            ("not IP", changed(&|p| p[0] = 0x55)),
            ("empty", Vec::new()),
            ("GRE", changed(&|p| p[protocol_at] = ip_proto::GRE)),
            (
                "one byte short",
                changed(&|p| {
                    p.pop();
                }),
            ),
            (
                "length past the bytes",
                changed(&|p| {
                    let len = p.len();
                    set_length(p, len + 1);
                }),
            ),
        ];
        if spec.ipv6 {
            cases.push((
                "extension header",
                changed(&|p| p[6] = ip_proto::HOP_BY_HOP),
            ));
            cases.push(("fragment header", changed(&|p| p[6] = ip_proto::FRAGMENT)));
            cases.push(("no fixed header", valid[..39].to_vec()));
        } else {
            cases.push(("more fragments", changed(&|p| p[6] |= 0x20)));
            cases.push(("fragment offset", changed(&|p| p[7] |= 0x01)));
            cases.push(("IHL under 5", changed(&|p| p[0] = 0x44)));
            cases.push((
                "options past the end",
                changed(&|p| {
                    p[0] = 0x4f;
                    p.truncate(59);
                    set_length(p, 59);
                }),
            ));
        }
        match spec.transport {
            Transport::Udp => {
                let udp = header_len;
                cases.push(("UDP checksum 0", changed(&|p| p[udp + 6..udp + 8].fill(0))));
                cases.push((
                    "UDP length short",
                    changed(&|p| {
                        let len = u16::from_be_bytes([p[udp + 4], p[udp + 5]]);
                        p[udp + 4..udp + 6].copy_from_slice(&(len - 1).to_be_bytes());
                    }),
                ));
            }
            Transport::Tcp => cases.push((
                "TCP header cut",
                changed(&|p| {
                    p.truncate(header_len + 19);
                    set_length(p, header_len + 19);
                }),
            )),
            Transport::Icmp => cases.push((
                "ICMP header cut",
                changed(&|p| {
                    p.truncate(header_len + 7);
                    set_length(p, header_len + 7);
                }),
            )),
        }
        cases
    }

    #[test]
    fn a_computed_zero_outer_checksum_is_sent_as_all_ones_as_before() {
        // The inner packet's flow label moves the outer sum; one of them makes it all ones, so
        // the computed checksum is 0 and RFC 768 has it sent as 0xffff.
        let mut spec = Spec {
            ipv6: true,
            option_words: 0,
            transport: Transport::Udp,
            noise: [7; 48],
            payload: b"zero".to_vec(),
        };
        let found = (0..=u16::MAX).find_map(|label| {
            spec.noise[1..3].copy_from_slice(&label.to_be_bytes());
            let inner = packet(&spec);
            let header = outer_header(&inner);
            let mut zeroed = header.as_bytes().to_vec();
            zeroed[UDP_OFFSET + 6..UDP_OFFSET + 8].fill(0);
            (outer_udp_sum(&zeroed, &inner) == 0xffff).then_some((header, inner))
        });
        let (header, inner) = found.expect("a flow label that makes the computed checksum 0");
        assert!(derived(&inner).is_some());
        assert_eq!(
            &header.as_bytes()[UDP_OFFSET + 6..UDP_OFFSET + 8],
            &[0xff, 0xff]
        );
        assert!(outer_checksum_verifies(header.as_bytes(), &inner));
    }
}
