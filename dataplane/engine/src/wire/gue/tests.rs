use super::super::ip_proto;
use super::*;

const HOP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const HOP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

// GUE: variant 0, C 0, hlen 3, IPIP, flags 0. Chain: version 0, forward_syn, next hop 1,
// 2 hops 10.0.0.1, 10.0.0.2. Then 4 bytes of inner packet.
static PACKET_BYTES: [u8; 20] = [
    0x03, 0x04, 0x00, 0x00, 0x08, 0x00, 0x01, 0x02, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
    0x45, 0x00, 0x00, 0x14,
];

static NO_HOPS_BYTES: [u8; 8] = [0x01, 0x29, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00];

static ONE_HOP_BYTES: [u8; 12] = [
    0x02, 0x04, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x01,
];

fn repr(hops: &[Ipv4Addr]) -> GueRepr {
    GueRepr {
        proto_ctype: ip_proto::IPIP,
        forward_syn: true,
        last_hop_gre: false,
        next_hop: 1,
        hops: HopList::from_slice(hops).unwrap(),
    }
}

#[test]
fn test_deconstruct() {
    let gue = GuePacket::new_checked(&PACKET_BYTES[..]).unwrap();
    assert_eq!(gue.variant(), 0);
    assert!(!gue.control());
    assert_eq!(gue.hlen(), 3);
    assert_eq!(gue.options_len(), 12);
    assert_eq!(gue.header_len(), 16);
    assert!(gue.check_options_len().is_ok());
    assert_eq!(gue.proto_ctype(), ip_proto::IPIP);
    assert_eq!(gue.flags(), 0);
    assert_eq!(gue.payload(), &PACKET_BYTES[4..]);

    let chain = GlbChainPacket::new_checked(gue.payload()).unwrap();
    assert!(chain.check_hops_len().is_ok());
    assert_eq!(chain.version(), 0);
    assert!(chain.forward_syn());
    assert!(!chain.last_hop_gre());
    assert_eq!(chain.low_bits(), 0);
    assert_eq!(chain.reserved(), 0);
    assert_eq!(chain.next_hop(), 1);
    assert_eq!(chain.hop_count(), 2);
    assert_eq!(chain.hops_len(), 8);
    assert_eq!(chain.hop(0), 0x0a00_0001);
    assert_eq!(chain.hop(1), 0x0a00_0002);
    assert_eq!(chain.hop_addr(0), HOP_A);
    assert_eq!(chain.hop_addr(1), HOP_B);
    assert_eq!(PACKET_BYTES[HEADER_LEN + NEXT_HOP_OFFSET], 1);
}

#[test]
fn test_construct() {
    let mut bytes = [0xa5; 20];
    let mut gue = GuePacket::new_unchecked(&mut bytes[..]);
    gue.set_variant(0);
    gue.set_control(false);
    gue.set_hlen(3);
    gue.set_proto_ctype(ip_proto::IPIP);
    gue.set_flags(0);
    gue.payload_mut()[12..].copy_from_slice(&[0x45, 0x00, 0x00, 0x14]);
    let mut chain = GlbChainPacket::new_unchecked(&mut bytes[HEADER_LEN..]);
    chain.set_version(0);
    chain.set_forward_syn(true);
    chain.set_last_hop_gre(false);
    chain.set_low_bits(0);
    chain.set_reserved(0);
    chain.set_next_hop(1);
    chain.set_hop_count(2);
    chain.set_hop(0, HOP_A);
    chain.set_hop(1, HOP_B);
    assert_eq!(&bytes[..], &PACKET_BYTES[..]);
}

#[test]
fn test_base_header_bits() {
    let mut bytes = [0x00; 4];
    let mut gue = GuePacket::new_unchecked(&mut bytes[..]);
    gue.set_variant(3);
    assert_eq!(gue.variant(), 3);
    gue.set_control(true);
    gue.set_hlen(0x1f);
    assert_eq!(bytes[0], 0xff);
    let mut gue = GuePacket::new_unchecked(&mut bytes[..]);
    gue.set_variant(0);
    assert_eq!(gue.hlen(), 31);
    assert!(gue.control());
    gue.set_control(false);
    assert_eq!(bytes[0], 0x1f);
    let mut gue = GuePacket::new_unchecked(&mut bytes[..]);
    gue.set_hlen(0);
    gue.set_variant(1);
    assert_eq!(bytes[0], 0x40);
    let mut gue = GuePacket::new_unchecked(&mut bytes[..]);
    gue.set_flags(0x8001);
    assert_eq!(gue.flags(), 0x8001);
    assert_eq!(&bytes[2..], &[0x80, 0x01]);
}

#[test]
fn test_chain_flag_bit_positions() {
    let mut bytes = [0x00; 4];
    let mut chain = GlbChainPacket::new_unchecked(&mut bytes[..]);
    chain.set_forward_syn(true);
    assert_eq!(bytes[0], 0x08);
    let mut chain = GlbChainPacket::new_unchecked(&mut bytes[..]);
    chain.set_forward_syn(false);
    chain.set_last_hop_gre(true);
    assert_eq!(bytes[0], 0x04);
    let mut chain = GlbChainPacket::new_unchecked(&mut bytes[..]);
    chain.set_last_hop_gre(false);
    assert_eq!(bytes[0], 0x00);

    let chain = GlbChainPacket::new_unchecked([0x08, 0, 0, 0]);
    assert!(chain.forward_syn() && !chain.last_hop_gre());
    let chain = GlbChainPacket::new_unchecked([0x04, 0, 0, 0]);
    assert!(!chain.forward_syn() && chain.last_hop_gre());
    let chain = GlbChainPacket::new_unchecked([0xf3, 0xee, 0, 0]);
    assert!(!chain.forward_syn() && !chain.last_hop_gre());
    assert_eq!(chain.version(), 0xf);
    assert_eq!(chain.low_bits(), 3);
    assert_eq!(chain.reserved(), 0xee);

    let mut bytes = [0xff; 4];
    let mut chain = GlbChainPacket::new_unchecked(&mut bytes[..]);
    chain.set_version(0);
    assert_eq!(bytes[0], 0x0f);
    let mut chain = GlbChainPacket::new_unchecked(&mut bytes[..]);
    chain.set_low_bits(0);
    assert_eq!(bytes[0], 0x0c);
}

#[test]
fn test_parse() {
    assert_eq!(GueRepr::parse(&PACKET_BYTES), Ok(repr(&[HOP_A, HOP_B])));
}

#[test]
fn test_emit() {
    let repr = repr(&[HOP_A, HOP_B]);
    assert_eq!(repr.buffer_len(), 16);
    let mut bytes = vec![0xa5; 16];
    repr.emit(&mut bytes);
    assert_eq!(&bytes[..], &PACKET_BYTES[..16]);
}

#[test]
fn test_round_trip_zero_one_two_hops() {
    let mut no_hops = repr(&[]);
    no_hops.proto_ctype = ip_proto::IPV6;
    no_hops.forward_syn = false;
    no_hops.last_hop_gre = true;
    no_hops.next_hop = 0;
    let mut one_hop = repr(&[HOP_A]);
    one_hop.last_hop_gre = true;
    one_hop.next_hop = 0;
    let cases: [(GueRepr, &[u8]); 3] = [
        (no_hops, &NO_HOPS_BYTES),
        (one_hop, &ONE_HOP_BYTES),
        (repr(&[HOP_A, HOP_B]), &PACKET_BYTES[..16]),
    ];
    for (repr, expected) in cases {
        assert_eq!(repr.buffer_len(), expected.len());
        let mut bytes = vec![0xa5; repr.buffer_len()];
        repr.emit(&mut bytes);
        assert_eq!(&bytes[..], expected);
        assert_eq!(GueRepr::parse(&bytes), Ok(repr));
        assert_eq!(
            GuePacket::new_unchecked(&bytes[..]).hlen() as usize,
            1 + repr.hops.len()
        );
    }
}

#[test]
fn test_round_trip_max_hops() {
    let hops: Vec<Ipv4Addr> = (0..MAX_HOPS as u32).map(Ipv4Addr::from).collect();
    let repr = repr(&hops);
    let mut bytes = vec![0xa5; repr.buffer_len()];
    repr.emit(&mut bytes);
    assert_eq!(bytes[0], 0x1f);
    assert_eq!(GueRepr::parse(&bytes), Ok(repr));
}

#[test]
fn test_parse_hlen_mismatch() {
    for hlen in [0x00, 0x02, 0x04, 0x1f] {
        let mut bytes = PACKET_BYTES;
        bytes[0] = hlen;
        assert_eq!(GueRepr::parse(&bytes), Err(Error), "hlen {hlen}");
    }
    let mut bytes = PACKET_BYTES;
    bytes[7] = 1; // hop_count 1 with hlen 3
    assert_eq!(GueRepr::parse(&bytes), Err(Error));
}

#[test]
fn test_parse_rejects_variant_control_flags_version() {
    let mut bytes = PACKET_BYTES;
    bytes[0] |= 0x40;
    assert_eq!(GueRepr::parse(&bytes), Err(Error));
    let mut bytes = PACKET_BYTES;
    bytes[0] |= 0x20;
    assert_eq!(GueRepr::parse(&bytes), Err(Error));
    let mut bytes = PACKET_BYTES;
    bytes[3] = 0x01;
    assert_eq!(GueRepr::parse(&bytes), Err(Error));
    let mut bytes = PACKET_BYTES;
    bytes[4] |= 0x10;
    assert_eq!(GueRepr::parse(&bytes), Err(Error));
}

#[test]
fn test_parse_ignores_low_bits_and_reserved() {
    let mut bytes = PACKET_BYTES;
    bytes[4] |= 0x03;
    bytes[5] = 0x7f;
    assert_eq!(GueRepr::parse(&bytes), Ok(repr(&[HOP_A, HOP_B])));
}

#[test]
fn test_hop_list() {
    assert!(HopList::new().is_empty());
    assert_eq!(HopList::default(), HopList::from_slice(&[]).unwrap());
    let full = [HOP_A; MAX_HOPS];
    let mut list = HopList::from_slice(&full).unwrap();
    assert_eq!(list.len(), MAX_HOPS);
    assert_eq!(list.as_slice(), &full[..]);
    assert_eq!(list.push(HOP_B), Err(Error));
    assert_eq!(HopList::from_slice(&[HOP_A; MAX_HOPS + 1]), Err(Error));
    let mut list2 = HopList::new();
    list2.push(HOP_A).unwrap();
    list2.push(HOP_B).unwrap();
    assert_eq!(list2, HopList::from_slice(&[HOP_A, HOP_B]).unwrap());
    assert_ne!(list2, list);
    list = HopList::from_slice(&[HOP_A]).unwrap();
    assert_eq!(format!("{list:?}"), "[10.0.0.1]");
}

#[test]
fn test_impossible_len() {
    assert_eq!(
        GuePacket::new_checked(&PACKET_BYTES[..3]).err(),
        Some(Error)
    );
    // hlen 3 announces 12 bytes of options; only 11 are there.
    let gue = GuePacket::new_checked(&PACKET_BYTES[..15]).unwrap();
    assert_eq!(gue.check_options_len(), Err(Error));
    assert_eq!(
        GlbChainPacket::new_checked(&PACKET_BYTES[4..7]).err(),
        Some(Error)
    );
    // Chain header present, second hop cut short.
    let chain = GlbChainPacket::new_checked(&PACKET_BYTES[4..15]).unwrap();
    assert_eq!(chain.check_hops_len(), Err(Error));
    let chain = GlbChainPacket::new_checked(&PACKET_BYTES[4..16]).unwrap();
    assert_eq!(chain.check_hops_len(), Ok(()));
    for len in 0..16 {
        assert_eq!(
            GueRepr::parse(&PACKET_BYTES[..len]),
            Err(Error),
            "len {len}"
        );
    }
    assert!(GueRepr::parse(&PACKET_BYTES[..16]).is_ok());
}
