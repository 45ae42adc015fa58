use super::*;
use proptest::prelude::{any, Strategy};

const CONFIG: EncapConfig = EncapConfig {
    src_addr: Ipv4Addr::new(65, 65, 65, 65),
    gateway_mac: [0x02, 0, 0, 0, 0, 0xfe],
    port_mac: [0x02, 0, 0, 0, 0, 0x01],
    gue_port: 19523,
};

/// A template from a fixed configuration.
pub(crate) fn template() -> HeaderTemplate {
    HeaderTemplate::new(&CONFIG)
}

#[test]
fn a_two_hop_header_has_glb_layout_byte_for_byte() {
    let inner = [
        0x45, 0, 0, 0x14, 0, 0, 0, 0, 64, 6, 0, 0, 10, 11, 12, 13, 1, 1, 1, 1,
    ];
    let flow = FlowRoute::new(0x0089_72f1_657a_5cbd, 45678, 4);
    let hops = [Ipv4Addr::new(3, 4, 5, 6), Ipv4Addr::new(2, 3, 4, 5)];
    let mut header = EncapHeader::new();
    let truncated = build(&mut header, &template(), flow, &hops, &inner).unwrap();
    assert!(!truncated);
    let b = header.as_bytes();
    assert_eq!(b.len(), 54);
    assert_eq!(
        &b[0..14],
        &[2, 0, 0, 0, 0, 0xfe, 2, 0, 0, 0, 0, 1, 0x08, 0x00]
    );
    // IPv4: 20 + 8 + 12 + 20 = 60 bytes, id 0, DF, TTL 64, UDP.
    assert_eq!(&b[14..24], &[0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 17]);
    assert_eq!(&b[26..34], &[65, 65, 65, 65, 3, 4, 5, 6]);
    assert!(Ipv4Packet::new_unchecked(&b[14..34]).verify_checksum());
    // UDP: source port 0xeed3 (GLB's formula), 19523, length 40.
    assert_eq!(&b[34..40], &[0xee, 0xd3, 0x4c, 0x43, 0, 40]);
    // GUE hlen 2, IPIP, flags 0; chain type 0, next hop 0, 1 hop, 2.3.4.5.
    assert_eq!(&b[42..54], &[2, 4, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5]);
    assert_eq!(header.hops().collect::<Vec<_>>(), hops);
}

#[test]
fn more_than_31_hops_are_cut_and_reported() {
    let hops: Vec<Ipv4Addr> = (0..40u32).map(Ipv4Addr::from).collect();
    let flow = FlowRoute::new(1, 2, 41);
    let mut header = EncapHeader::new();
    let truncated = build(&mut header, &template(), flow, &hops, &[0; 40]).unwrap();
    assert!(truncated);
    assert_eq!(header.len(), MAX_HEADER_LEN);
    assert_eq!(header.hops().count(), MAX_ROUTE_HOPS);
    assert_eq!(header.as_bytes()[GUE_OFFSET], 31);
    assert!(!build(&mut header, &template(), flow, &hops[..31], &[0; 40]).unwrap());
}

#[test]
fn no_hop_or_an_oversized_packet_is_refused() {
    let flow = FlowRoute::new(1, 2, 4);
    let mut header = EncapHeader::new();
    assert_eq!(
        build(&mut header, &template(), flow, &[], &[0; 20]).err(),
        Some(DropReason::EmptyRow)
    );
    let big = vec![0; 65_535 - 20 - 8 - 8 + 1];
    assert_eq!(
        build(&mut header, &template(), flow, &[Ipv4Addr::LOCALHOST], &big).err(),
        Some(DropReason::TooBig)
    );
    assert!(header.is_empty());
}

/// The header as the IPv4, UDP and GUE views build it from nothing, every checksum over
/// every byte: what the template must reproduce.
fn from_scratch(config: &EncapConfig, flow: FlowRoute, hops: &[Ipv4Addr], inner: &[u8]) -> Vec<u8> {
    let rest = &hops[1..];
    let len = BASE_LEN + 4 * rest.len();
    let udp_len = (len - UDP_OFFSET + inner.len()) as u16;
    let mut b = vec![0; len];
    let mut eth = EthernetFrame::new_unchecked(&mut b[..]);
    eth.set_dst_addr(config.gateway_mac);
    eth.set_src_addr(config.port_mac);
    eth.set_ethertype(ethertype::IPV4);
    let mut ip = Ipv4Packet::new_unchecked(&mut b[IPV4_OFFSET..UDP_OFFSET]);
    ip.set_version_ihl(4, 5);
    ip.set_total_len(udp_len + 20);
    ip.set_flags_frag_offset(DONT_FRAGMENT);
    ip.set_ttl(TTL);
    ip.set_protocol(ip_proto::UDP);
    ip.set_src_addr(config.src_addr);
    ip.set_dst_addr(hops[0]);
    ip.fill_checksum();
    let mut gue = GuePacket::new_unchecked(&mut b[GUE_OFFSET..]);
    gue.set_hlen(1 + rest.len() as u8);
    gue.set_proto_ctype(flow.gue_proto);
    let mut chain = GlbChainPacket::new_unchecked(&mut b[GUE_OFFSET + gue::HEADER_LEN..]);
    chain.set_hop_count(rest.len() as u8);
    for (i, hop) in rest.iter().enumerate() {
        chain.set_hop(i, *hop);
    }
    let mut udp = UdpPacket::new_unchecked(&mut b[UDP_OFFSET..]);
    udp.set_src_port(flow.source_port);
    udp.set_dst_port(config.gue_port);
    udp.set_len(udp_len);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&config.src_addr.octets());
    pseudo.extend_from_slice(&hops[0].octets());
    pseudo.extend_from_slice(&[0, ip_proto::UDP]);
    pseudo.extend_from_slice(&udp_len.to_be_bytes());
    pseudo.extend_from_slice(&b[UDP_OFFSET..]);
    pseudo.extend_from_slice(inner);
    let check = match checksum::checksum(&pseudo) {
        0 => 0xffff,
        check => check,
    };
    UdpPacket::new_unchecked(&mut b[UDP_OFFSET..]).set_checksum(check);
    b
}

/// Any configuration (a GUE port other than 0).
pub(crate) fn any_config() -> impl Strategy<Value = EncapConfig> {
    (any::<u32>(), any::<([u8; 6], [u8; 6])>(), 1u16..).prop_map(|(src, macs, gue_port)| {
        EncapConfig {
            src_addr: Ipv4Addr::from(src),
            gateway_mac: macs.0,
            port_mac: macs.1,
            gue_port,
        }
    })
}

/// Any flow, carrying IPv4 or IPv6.
pub(crate) fn any_flow() -> impl Strategy<Value = FlowRoute> {
    (any::<u64>(), any::<u16>(), any::<bool>())
        .prop_map(|(hash, hint, ipv6)| FlowRoute::new(hash, hint, if ipv6 { 41 } else { 4 }))
}

/// Any `min..=max` hops.
pub(crate) fn any_hops(min: usize, max: usize) -> impl Strategy<Value = Vec<Ipv4Addr>> {
    proptest::collection::vec(any::<u32>().prop_map(Ipv4Addr::from), min..=max)
}

proptest::proptest! {
    #[test]
    fn the_template_writes_the_header_built_from_scratch_byte_for_byte(
        config in any_config(),
        flow in any_flow(),
        hops in any_hops(1, MAX_ROUTE_HOPS),
        inner in proptest::collection::vec(any::<u8>(), 0..1600),
    ) {
        let mut header = EncapHeader::new();
        let truncated = build(&mut header, &HeaderTemplate::new(&config), flow, &hops, &inner);
        proptest::prop_assert_eq!(truncated, Ok(false));
        proptest::prop_assert_eq!(header.as_bytes(), &from_scratch(&config, flow, &hops, &inner)[..]);
    }
}
