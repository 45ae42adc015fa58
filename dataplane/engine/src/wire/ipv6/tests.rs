use super::*;

const SRC: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const DST: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);

// fe80::1 -> fe80::2, traffic class 0x12, flow label 0x34567, payload 12 bytes, UDP,
// hop limit 64.
static PACKET_BYTES: [u8; 40] = [
    0x61, 0x23, 0x45, 0x67, 0x00, 0x0c, 0x11, 0x40, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
];

fn packet_repr() -> Ipv6Repr {
    Ipv6Repr {
        src_addr: SRC,
        dst_addr: DST,
        next_header: ip_proto::UDP,
        payload_len: 12,
        hop_limit: 64,
    }
}

#[test]
fn test_deconstruct() {
    let packet = Ipv6Packet::new_checked(&PACKET_BYTES[..]).unwrap();
    assert_eq!(packet.version(), 6);
    assert_eq!(packet.traffic_class(), 0x12);
    assert_eq!(packet.flow_label(), 0x34567);
    assert_eq!(packet.payload_len(), 12);
    assert_eq!(packet.next_header(), ip_proto::UDP);
    assert_eq!(packet.hop_limit(), 64);
    assert_eq!(packet.src_addr(), SRC);
    assert_eq!(packet.dst_addr(), DST);
    assert!(packet.payload().is_empty());
}

#[test]
fn test_construct() {
    let mut bytes = vec![0xa5; 40];
    let mut packet = Ipv6Packet::new_unchecked(&mut bytes);
    packet.set_version(6);
    packet.set_traffic_class(0x12);
    packet.set_flow_label(0x34567);
    packet.set_payload_len(12);
    packet.set_next_header(ip_proto::UDP);
    packet.set_hop_limit(64);
    packet.set_src_addr(SRC);
    packet.set_dst_addr(DST);
    assert_eq!(&bytes[..], &PACKET_BYTES[..]);
}

#[test]
fn test_version_tc_flow_setters_are_independent() {
    let mut bytes = [0x00; 40];
    let mut packet = Ipv6Packet::new_unchecked(&mut bytes[..]);
    packet.set_flow_label(0xfffff);
    packet.set_traffic_class(0xff);
    packet.set_version(0xf);
    assert_eq!(&bytes[..4], &[0xff, 0xff, 0xff, 0xff]);
    let mut packet = Ipv6Packet::new_unchecked(&mut bytes[..]);
    packet.set_traffic_class(0);
    assert_eq!(&bytes[..4], &[0xf0, 0x0f, 0xff, 0xff]);
    let mut packet = Ipv6Packet::new_unchecked(&mut bytes[..]);
    packet.set_flow_label(0);
    packet.set_version(6);
    assert_eq!(&bytes[..4], &[0x60, 0x00, 0x00, 0x00]);
}

#[test]
fn test_hop_limit_offset() {
    assert_eq!(PACKET_BYTES[HOP_LIMIT_OFFSET], 64);
}

#[test]
fn test_parse() {
    let packet = Ipv6Packet::new_checked(&PACKET_BYTES[..]).unwrap();
    assert_eq!(Ipv6Repr::parse(&packet), Ok(packet_repr()));
}

#[test]
fn test_parse_wrong_version() {
    let mut bytes = PACKET_BYTES;
    bytes[0] = 0x41;
    assert_eq!(
        Ipv6Repr::parse(&Ipv6Packet::new_unchecked(&bytes[..])),
        Err(Error)
    );
}

#[test]
fn test_emit() {
    let mut bytes = vec![0xa5; 40];
    let repr = packet_repr();
    assert_eq!(repr.buffer_len(), HEADER_LEN);
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut bytes));
    let mut expected = PACKET_BYTES;
    expected[..4].copy_from_slice(&[0x60, 0x00, 0x00, 0x00]);
    assert_eq!(&bytes[..], &expected[..]);
    let packet = Ipv6Packet::new_checked(&bytes[..]).unwrap();
    assert_eq!(Ipv6Repr::parse(&packet), Ok(repr));
}

#[test]
fn test_impossible_len() {
    assert_eq!(
        Ipv6Packet::new_checked(&PACKET_BYTES[..39]).err(),
        Some(Error)
    );
    assert_eq!(
        Ipv6Repr::parse(&Ipv6Packet::new_unchecked(&PACKET_BYTES[..39])),
        Err(Error)
    );
}

// Destination options, next header TCP, hdr ext len 1 (16 bytes): a PadN option over 14 bytes.
static EXT_HEADER_BYTES: [u8; 16] = [
    0x06, 0x01, 0x01, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

#[test]
fn test_ext_header_deconstruct() {
    let header = Ipv6ExtHeader::new_checked(&EXT_HEADER_BYTES[..]).unwrap();
    assert_eq!(header.next_header(), ip_proto::TCP);
    assert_eq!(header.header_len_field(), 1);
    assert_eq!(header.header_len(), 16);
    assert_eq!(header.data(), &EXT_HEADER_BYTES[2..]);
}

#[test]
fn test_ext_header_construct() {
    let mut bytes = vec![0xa5; 16];
    bytes[2..].copy_from_slice(&EXT_HEADER_BYTES[2..]);
    let mut header = Ipv6ExtHeader::new_unchecked(&mut bytes);
    header.set_next_header(ip_proto::TCP);
    header.set_header_len_field(1);
    assert_eq!(&bytes[..], &EXT_HEADER_BYTES[..]);
}

#[test]
fn test_ext_header_impossible_len() {
    assert_eq!(Ipv6ExtHeader::new_checked(&[][..]).err(), Some(Error));
    assert_eq!(
        Ipv6ExtHeader::new_checked(&EXT_HEADER_BYTES[..1]).err(),
        Some(Error)
    );
    assert_eq!(
        Ipv6ExtHeader::new_checked(&EXT_HEADER_BYTES[..15]).err(),
        Some(Error)
    );
    assert!(Ipv6ExtHeader::new_checked(&EXT_HEADER_BYTES[..]).is_ok());
}

#[test]
fn test_is_extension_header() {
    for value in 0..=u8::MAX {
        let expected = matches!(value, 0 | 43 | 44 | 60 | 135);
        assert_eq!(is_extension_header(value), expected, "next header {value}");
    }
}

/// Builds a chain of 8-byte extension headers: `kinds[i]` is the type of header i (each
/// header stores the next kind, the last one stores `upper`), followed by 4 upper-layer bytes.
fn chain(kinds: &[u8], upper: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (i, _) in kinds.iter().enumerate() {
        let next = kinds.get(i + 1).copied().unwrap_or(upper);
        bytes.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    bytes
}

#[test]
fn test_walk_no_extension_headers() {
    let data = [0xde, 0xad, 0xbe, 0xef];
    assert_eq!(
        walk_extension_headers(&data, ip_proto::TCP, 5),
        Ok(ExtHeaderWalk {
            upper_protocol: ip_proto::TCP,
            len: 0,
            has_fragment: false,
        })
    );
    // Nothing is read when the first next header is already an upper protocol.
    assert_eq!(
        walk_extension_headers(&[], ip_proto::UDP, 0).map(|w| w.len),
        Ok(0)
    );
}

#[test]
fn test_walk_hop_by_hop_and_destination_options() {
    let mut data = Vec::new();
    // Hop-by-hop, 8 bytes, next: destination options.
    data.extend_from_slice(&[ip_proto::DEST_OPTS, 0, 1, 4, 0, 0, 0, 0]);
    // Destination options, 16 bytes, next: UDP.
    data.extend_from_slice(&EXT_HEADER_BYTES);
    data[8] = ip_proto::UDP;
    data.extend_from_slice(&[0; 8]);
    assert_eq!(
        walk_extension_headers(&data, ip_proto::HOP_BY_HOP, 5),
        Ok(ExtHeaderWalk {
            upper_protocol: ip_proto::UDP,
            len: 24,
            has_fragment: false,
        })
    );
}

#[test]
fn test_walk_fragment_header_sets_has_fragment() {
    let data = chain(&[ip_proto::FRAGMENT], ip_proto::TCP);
    assert_eq!(
        walk_extension_headers(&data, ip_proto::FRAGMENT, 5),
        Ok(ExtHeaderWalk {
            upper_protocol: ip_proto::TCP,
            len: 8,
            has_fragment: true,
        })
    );
}

#[test]
fn test_walk_fragment_reserved_byte_is_read_as_length() {
    // cls_redirect's behaviour: a non-zero reserved byte makes the fragment header longer.
    let mut data = chain(&[ip_proto::FRAGMENT], ip_proto::TCP);
    data[1] = 1;
    assert_eq!(
        walk_extension_headers(&data, ip_proto::FRAGMENT, 5),
        Err(Error)
    );
    data.extend_from_slice(&[0; 4]);
    assert_eq!(
        walk_extension_headers(&data, ip_proto::FRAGMENT, 5).map(|w| w.len),
        Ok(16)
    );
}

#[test]
fn test_walk_limit() {
    let five = [
        ip_proto::HOP_BY_HOP,
        ip_proto::DEST_OPTS,
        ip_proto::ROUTING,
        ip_proto::FRAGMENT,
        ip_proto::DEST_OPTS,
    ];
    let data = chain(&five, ip_proto::TCP);
    assert_eq!(
        walk_extension_headers(&data, five[0], 5),
        Ok(ExtHeaderWalk {
            upper_protocol: ip_proto::TCP,
            len: 40,
            has_fragment: true,
        })
    );

    let six = [
        ip_proto::HOP_BY_HOP,
        ip_proto::DEST_OPTS,
        ip_proto::ROUTING,
        ip_proto::FRAGMENT,
        ip_proto::MOBILITY,
        ip_proto::DEST_OPTS,
    ];
    let data = chain(&six, ip_proto::TCP);
    assert_eq!(walk_extension_headers(&data, six[0], 5), Err(Error));
    assert_eq!(
        walk_extension_headers(&data, six[0], 6).map(|w| w.len),
        Ok(48)
    );
    assert_eq!(
        walk_extension_headers(&data, six[0], 0),
        Err(Error),
        "limit 0 accepts no extension header"
    );
}

#[test]
fn test_walk_truncated_first_two_bytes() {
    let data = chain(&[ip_proto::HOP_BY_HOP], ip_proto::TCP);
    assert_eq!(
        walk_extension_headers(&data[..1], ip_proto::HOP_BY_HOP, 5),
        Err(Error)
    );
    assert_eq!(
        walk_extension_headers(&[], ip_proto::HOP_BY_HOP, 5),
        Err(Error)
    );
    // Second header: only one of its two shared bytes is present.
    let data = chain(&[ip_proto::HOP_BY_HOP, ip_proto::DEST_OPTS], ip_proto::TCP);
    assert_eq!(
        walk_extension_headers(&data[..9], ip_proto::HOP_BY_HOP, 5),
        Err(Error)
    );
    // Second header missing entirely after an exact first header.
    assert_eq!(
        walk_extension_headers(&data[..8], ip_proto::HOP_BY_HOP, 5),
        Err(Error)
    );
}

#[test]
fn test_walk_truncated_skip() {
    let data = chain(&[ip_proto::HOP_BY_HOP], ip_proto::TCP);
    // The 2 shared bytes are there, the rest of the 8 are not.
    assert_eq!(
        walk_extension_headers(&data[..7], ip_proto::HOP_BY_HOP, 5),
        Err(Error)
    );
    // The header announces 16 bytes but only 12 follow.
    let mut data = data;
    data[1] = 1;
    assert_eq!(data.len(), 12);
    assert_eq!(
        walk_extension_headers(&data, ip_proto::HOP_BY_HOP, 5),
        Err(Error)
    );
    // Exactly enough bytes is fine (the upper-layer header itself is not read).
    data.extend_from_slice(&[0; 4]);
    assert_eq!(
        walk_extension_headers(&data, ip_proto::HOP_BY_HOP, 5).map(|w| w.len),
        Ok(16)
    );
}

#[test]
fn test_walk_no_next_header_is_upper_protocol() {
    let data = chain(&[ip_proto::DEST_OPTS], ip_proto::NO_NEXT_HEADER);
    assert_eq!(
        walk_extension_headers(&data, ip_proto::DEST_OPTS, 5),
        Ok(ExtHeaderWalk {
            upper_protocol: ip_proto::NO_NEXT_HEADER,
            len: 8,
            has_fragment: false,
        })
    );
    assert_eq!(
        walk_extension_headers(&[], ip_proto::NO_NEXT_HEADER, 5).map(|w| w.upper_protocol),
        Ok(59)
    );
    for upper in [ip_proto::ESP, ip_proto::AH] {
        assert_eq!(
            walk_extension_headers(&[], upper, 5).map(|w| w.upper_protocol),
            Ok(upper)
        );
    }
}
