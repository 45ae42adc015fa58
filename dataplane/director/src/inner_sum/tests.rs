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
            Ipv4Header::new(0, n[3], IpNumber::TCP, n[4..8].try_into().unwrap(), [0; 4]).unwrap();
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
    let flow = FlowRoute::new(0x1234, 80, 4);
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
