//! Route fixtures: every packet kind the director routes, and the frames it must refuse. Each
//! routed output is compared byte for byte with the test kit's independent GUE writer (GLB's
//! layout) and parsed back with etherparse.

mod common;

use chance_director::{Counter, Director, DropReason, Route, RouteTable};
use chance_testkit::checksum;
use chance_testkit::inner::{Ext, Ipv4Packet, Ipv6Packet, ACK, L4, SYN};
use common::*;
use core::net::Ipv4Addr;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use siphasher::sip::SipHasher24;

/// SipHash-2-4 with GLB's test key over `input` (the layout spelled out by each test).
fn glb_hash(input: &[u8]) -> u64 {
    SipHasher24::new_with_key(&HASH_KEY).hash(input)
}

fn sport(hash: u64, hint: u16) -> u16 {
    0x8000 | ((hash as u16 ^ hint) & 0x7fff)
}

fn encapsulated(route: Route) -> chance_director::Encapsulation {
    match route {
        Route::Encapsulate(encap) => encap,
        other => panic!("expected an encapsulation, got {other:?}"),
    }
}

/// Routes `frame`, checks the output against GLB's layout, etherparse and the checksums, and
/// returns the row.
fn route_and_check(
    director: &mut Director,
    table: &RouteTable<FakeRows>,
    frame: &[u8],
    inner: &[u8],
    hops: &[Ipv4Addr],
    expected_sport: u16,
) -> u16 {
    let encap = encapsulated(director.route(frame, core::slice::from_ref(table)));
    let out = encap.output(frame);
    let ipv6 = inner[0] >> 4 == 6;
    assert_eq!(out, glb_frame(inner, hops, expected_sport, ipv6));
    assert!(checksum::ipv4_header_ok(&out[14..]));
    assert!(checksum::outer_udp_ok(&out));
    let parsed = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(NetSlice::Ipv4(ip)) = parsed.net else {
        panic!("outer IPv4")
    };
    let header = ip.header();
    assert_eq!(header.source_addr(), DIRECTOR);
    assert_eq!(header.destination_addr(), hops[0]);
    assert!(header.dont_fragment() && header.ttl() == 64 && header.identification() == 0);
    let Some(TransportSlice::Udp(udp)) = parsed.transport else {
        panic!("outer UDP")
    };
    assert_eq!(udp.source_port(), expected_sport);
    assert_eq!(udp.destination_port(), 19523);
    let gue = udp.payload();
    assert_eq!(
        usize::from(gue[0]),
        hops.len(),
        "hlen = 1 + hops after the first"
    );
    assert_eq!(gue[1], if ipv6 { 41 } else { 4 });
    assert_eq!(&gue[4..8], &[0, 0, 0, hops.len() as u8 - 1]);
    assert_eq!(&gue[8 + 4 * (hops.len() - 1)..], inner);
    assert_eq!(encap.header.hops().collect::<Vec<_>>(), hops);
    encap.row
}

fn tcp4(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    Ipv4Packet::new(CLIENT4, VIP4, L4::tcp(sport, dport, flags)).build()
}

#[test]
fn tcp_to_an_ipv4_bind_is_encapsulated_as_glb_does() {
    // GLB's test_01: 10.11.12.13:45678 -> 1.1.1.1:80, hashed on src_addr with the test key.
    let rows = FakeRows::uniform(&[HOP_A, HOP_B]);
    let table = table(rows);
    let mut director = Director::new(config());
    let inner = tcp4(CLIENT_PORT, 80, SYN);
    let row = route_and_check(
        &mut director,
        &table,
        &eth4(&inner),
        &inner,
        &[HOP_A, HOP_B],
        0xeed3,
    );
    assert_eq!(
        row, 0x5cbd,
        "row of SipHash(key, 0a0b0c0d), computed independently"
    );
    assert_eq!(director.counters().get(Counter::RoutedPacketsTotal), 1);
}

#[test]
fn udp_to_a_prefix_bind_with_a_port_range_is_routed() {
    let table = table(FakeRows::uniform(&[HOP_C]));
    let mut director = Director::new(config());
    let vip = Ipv4Addr::new(1, 1, 2, 77);
    let inner = Ipv4Packet::new(CLIENT4, vip, L4::udp(999, 5500, b"hello")).build();
    let hash = glb_hash(&CLIENT4.octets());
    route_and_check(
        &mut director,
        &table,
        &eth4(&inner),
        &inner,
        &[HOP_C],
        sport(hash, 999),
    );
    // Outside the range or the prefix: not a bind.
    for (dst, port) in [(vip, 6000), (Ipv4Addr::new(1, 1, 3, 1), 5500)] {
        let other = Ipv4Packet::new(CLIENT4, dst, L4::udp(999, port, b"x")).build();
        assert_eq!(
            director.route(&eth4(&other), core::slice::from_ref(&table)),
            Route::Pass
        );
    }
}

#[test]
fn tcp_to_an_ipv6_bind_is_carried_as_gue_protocol_41() {
    let table = table(FakeRows::uniform(&[HOP_A, HOP_B]));
    let mut director = Director::new(config());
    let inner = Ipv6Packet::new(CLIENT6, VIP6, L4::tcp(CLIENT_PORT, 80, ACK)).build();
    let hash = glb_hash(&CLIENT6.octets());
    let row = route_and_check(
        &mut director,
        &table,
        &eth6(&inner),
        &inner,
        &[HOP_A, HOP_B],
        sport(hash, CLIENT_PORT),
    );
    assert_eq!(row, hash as u16);
}

#[test]
fn ipv6_extension_headers_are_walked_to_the_ports() {
    let table = table(FakeRows::uniform(&[HOP_A]));
    let mut director = Director::new(config().with_fields(&["src_addr", "src_port"]));
    let mut packet = Ipv6Packet::new(CLIENT6, VIP6, L4::tcp(CLIENT_PORT, 80, ACK));
    packet.exts = vec![Ext::hop_by_hop(), Ext::destination_options()];
    let inner = packet.build();
    let mut input = CLIENT6.octets().to_vec();
    input.extend_from_slice(&CLIENT_PORT.to_be_bytes());
    let hash = glb_hash(&input);
    route_and_check(
        &mut director,
        &table,
        &eth6(&inner),
        &inner,
        &[HOP_A],
        sport(hash, CLIENT_PORT),
    );
}

trait WithFields {
    fn with_fields(self, names: &[&str]) -> Self;
}

impl WithFields for chance_director::DirectorConfig {
    fn with_fields(mut self, names: &[&str]) -> Self {
        self.hash_fields = fields(names);
        self
    }
}

#[test]
fn fragmentation_needed_hashes_as_the_quoted_flow_reversed() {
    // GLB's test_02: the router quotes 1.1.1.1:80 -> 10.11.12.13:45678; the error must land on
    // the row (and get the UDP source port) of 10.11.12.13:45678 -> 1.1.1.1:80.
    let table = table(FakeRows {
        lists: vec![vec![HOP_A, HOP_B], vec![HOP_B, HOP_C]],
    });
    for names in [
        &["src_addr"][..],
        &["src_addr", "dst_addr", "src_port", "dst_port"],
    ] {
        let mut director = Director::new(config().with_fields(names));
        let flow = tcp4(CLIENT_PORT, 80, ACK);
        let (flow_row, udp_sport) = {
            let flow_route =
                encapsulated(director.route(&eth4(&flow), core::slice::from_ref(&table)));
            let header = flow_route.header.as_bytes();
            (flow_route.row, u16::from_be_bytes([header[34], header[35]]))
        };
        let error = frag_needed_for_the_client();
        let hops = table.rows().of(flow_row);
        let row = route_and_check(
            &mut director,
            &table,
            &eth4(&error),
            &error,
            &hops,
            udp_sport,
        );
        assert_eq!(row, flow_row, "{names:?}");
        assert_eq!(
            director
                .counters()
                .get(Counter::RoutedPacketsTotalIcmpError),
            1
        );
    }
}

#[test]
fn packet_too_big_hashes_as_the_quoted_flow_reversed() {
    let table = table(FakeRows {
        lists: vec![vec![HOP_A], vec![HOP_B], vec![HOP_C]],
    });
    let mut director = Director::new(config().with_fields(&["src_addr", "src_port", "dst_port"]));
    let quoted = Ipv6Packet::new(VIP6, CLIENT6, L4::tcp(80, CLIENT_PORT, ACK)).build();
    let error = Ipv6Packet::new(
        "2001:db8::1".parse().unwrap(),
        VIP6,
        L4::icmpv6_packet_too_big(1280, &quoted),
    )
    .build();
    let mut input = CLIENT6.octets().to_vec();
    input.extend_from_slice(&CLIENT_PORT.to_be_bytes());
    input.extend_from_slice(&80u16.to_be_bytes());
    let hash = glb_hash(&input);
    let hops = table.rows().of(hash as u16);
    let row = route_and_check(
        &mut director,
        &table,
        &eth6(&error),
        &error,
        &hops,
        sport(hash, CLIENT_PORT),
    );
    assert_eq!(row, hash as u16);
}

#[test]
fn echo_requests_hash_with_ports_zero_and_spread_by_id_or_flow_label() {
    let table = table(FakeRows::uniform(&[HOP_A, HOP_B]));
    let mut director = Director::new(config().with_fields(&["src_addr", "dst_addr", "src_port"]));
    let echo = Ipv4Packet::new(CLIENT4, VIP4, L4::icmpv4_echo_request())
        .id(0x4242)
        .build();
    let mut input = CLIENT4.octets().to_vec();
    input.extend_from_slice(&VIP4.octets());
    input.extend_from_slice(&[0, 0]);
    let hash = glb_hash(&input);
    route_and_check(
        &mut director,
        &table,
        &eth4(&echo),
        &echo,
        &[HOP_A, HOP_B],
        sport(hash, 0x4242),
    );

    let echo6 = Ipv6Packet::new(CLIENT6, VIP6, L4::icmpv6_echo_request()).build();
    let mut input = CLIENT6.octets().to_vec();
    input.extend_from_slice(&VIP6.octets());
    input.extend_from_slice(&[0, 0]);
    let hash = glb_hash(&input);
    // The test kit's flow label is 0x12345: GLB takes its low 16 bits.
    route_and_check(
        &mut director,
        &table,
        &eth6(&echo6),
        &echo6,
        &[HOP_A, HOP_B],
        sport(hash, 0x2345),
    );
    assert_eq!(
        director.counters().get(Counter::RoutedPacketsTotalIcmpEcho),
        2
    );

    let mut no_echo = config();
    no_echo.forward_icmp_echo = false;
    let mut director = Director::new(no_echo);
    assert_eq!(
        director.route(&eth4(&echo), core::slice::from_ref(&table)),
        Route::Pass
    );
}

#[test]
fn glb_hash_field_vectors_pick_glb_rows() {
    // GLB's TestGLBHashFieldsSourceAddrAndPort flows; rows computed with an independent SipHash.
    let table = table(FakeRows::uniform(&[HOP_A]));
    let mut director = Director::new(config().with_fields(&["src_addr", "src_port"]));
    for (port, row) in [(45678, 0x29ea), (45679, 0x9ae1), (45680, 0x32c4)] {
        let frame = eth4(&tcp4(port, 80, ACK));
        let encap = encapsulated(director.route(&frame, core::slice::from_ref(&table)));
        assert_eq!(encap.row, row, "port {port}");
    }
}

#[test]
fn a_hash_migration_appends_the_old_rows_hops_duplicates_kept_as_glb() {
    // GLB's TestGLBHashFieldsMigration expects [1.2.3.4, 2.3.4.5, 3.4.5.6, 2.3.4.5]: the new
    // row's two hops, then the old row's two, 2.3.4.5 twice.
    let lists: Vec<Vec<Ipv4Addr>> = (0..65_536u32)
        .map(|row| match row {
            0x29ea => vec![HOP_C, HOP_B],
            0x5cbd => vec![HOP_A, HOP_B],
            _ => vec![Ipv4Addr::new(9, 9, 9, 9)],
        })
        .collect();
    let table = table(FakeRows { lists });
    let mut config = config().with_fields(&["src_addr", "src_port"]);
    config.alt_hash_fields = Some(fields(&["src_addr"]));
    let mut director = Director::new(config);
    let inner = tcp4(CLIENT_PORT, 80, ACK);
    let mut input = CLIENT4.octets().to_vec();
    input.extend_from_slice(&CLIENT_PORT.to_be_bytes());
    let hash = glb_hash(&input);
    let hops = [HOP_C, HOP_B, HOP_A, HOP_B];
    let row = route_and_check(
        &mut director,
        &table,
        &eth4(&inner),
        &inner,
        &hops,
        sport(hash, CLIENT_PORT),
    );
    assert_eq!(row, 0x29ea);
}

#[test]
fn ethernet_padding_is_not_encapsulated() {
    let table = table(FakeRows::uniform(&[HOP_A]));
    let mut director = Director::new(config());
    let inner = tcp4(CLIENT_PORT, 80, ACK);
    let mut frame = eth4(&inner);
    frame.resize(60.max(frame.len()) + 6, 0xee);
    let encap = encapsulated(director.route(&frame, core::slice::from_ref(&table)));
    assert_eq!(encap.strip, 14);
    assert_eq!(encap.inner_len, inner.len());
    assert_eq!(&encap.output(&frame)[encap.header.len()..], &inner[..]);
}

#[test]
fn later_fragments_route_by_address_and_drop_when_the_hash_needs_ports() {
    let table = table(FakeRows::uniform(&[HOP_A]));
    let later = Ipv4Packet::new(CLIENT4, VIP4, L4::raw(6, &[0xab; 16]))
        .fragment_offset(3)
        .build();
    let mut director = Director::new(config());
    let hash = glb_hash(&CLIENT4.octets());
    route_and_check(
        &mut director,
        &table,
        &eth4(&later),
        &later,
        &[HOP_A],
        sport(hash, 0),
    );
    assert_eq!(
        director.counters().get(Counter::RoutedPacketsTotalFragment),
        1
    );

    let mut director = Director::new(config().with_fields(&["src_addr", "src_port"]));
    assert_eq!(
        director.route(&eth4(&later), core::slice::from_ref(&table)),
        Route::Drop(DropReason::FragmentNeedsPorts)
    );
    // A first fragment has its ports and routes as any packet.
    let first = Ipv4Packet::new(CLIENT4, VIP4, L4::tcp(CLIENT_PORT, 80, ACK))
        .more_fragments()
        .build();
    assert!(matches!(
        director.route(&eth4(&first), core::slice::from_ref(&table)),
        Route::Encapsulate(_)
    ));
    assert_eq!(
        director.counters().get(Counter::ErrorsFragmentNeedsPorts),
        1
    );
}

#[test]
fn frames_that_are_not_for_a_bind_pass_to_the_kernel() {
    let table = table(FakeRows::uniform(&[HOP_A]));
    let tables = core::slice::from_ref(&table);
    let mut director = Director::new(config());
    let host = Ipv4Addr::new(192, 0, 2, 1);
    let arp = ethernet(0x0806, &[0; 28]);
    let mut vlan = eth4(&tcp4(CLIENT_PORT, 80, ACK));
    vlan.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    let ssh = eth4(&Ipv4Packet::new(CLIENT4, host, L4::tcp(CLIENT_PORT, 22, SYN)).build());
    let bgp = eth4(&Ipv4Packet::new(CLIENT4, host, L4::tcp(CLIENT_PORT, 179, SYN)).build());
    let other_port = eth4(&tcp4(CLIENT_PORT, 8080, SYN));
    let udp_to_tcp_bind = eth4(&Ipv4Packet::new(CLIENT4, VIP4, L4::udp(1, 80, b"")).build());
    let neighbour_solicitation =
        eth6(&Ipv6Packet::new(CLIENT6, VIP6, L4::icmpv6(135, 0, &[0; 20])).build());
    let echo_reply = eth4(&Ipv4Packet::new(CLIENT4, VIP4, L4::icmpv4_echo_reply()).build());
    let other_unreachable =
        eth4(&Ipv4Packet::new(CLIENT4, VIP4, L4::icmpv4(3, 1, &[0; 28])).build());
    let broken_to_host = {
        let mut frame = ssh.clone();
        frame[16..18].copy_from_slice(&[0xff, 0xff]);
        frame
    };
    let frames = [
        arp,
        vlan,
        ssh,
        bgp,
        other_port,
        udp_to_tcp_bind,
        neighbour_solicitation,
        echo_reply,
        other_unreachable,
        broken_to_host,
        vec![0; 10],
        vec![],
    ];
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(director.route(frame, tables), Route::Pass, "frame {i}");
    }
    let counters = director.counters();
    assert_eq!(
        counters.get(Counter::PassedPacketsTotal),
        frames.len() as u64
    );
    assert_eq!(counters.get(Counter::PassedPacketsTotalVlan), 1);
    assert_eq!(counters.get(Counter::PacketsTotal), frames.len() as u64);
}

#[test]
fn broken_frames_to_a_vip_are_dropped_and_counted() {
    let table = table(FakeRows::uniform(&[HOP_A]));
    let tables = core::slice::from_ref(&table);
    let mut director = Director::new(config());
    let tcp = tcp4(CLIENT_PORT, 80, ACK);
    // A 10-byte TCP header whose IPv4 total length agrees.
    let mut truncated_tcp = eth4(&tcp[..30]);
    truncated_tcp[16..18].copy_from_slice(&30u16.to_be_bytes());
    let cut_frame = eth4(&tcp[..30]);
    let mut long_total = eth4(&tcp);
    long_total[16..18].copy_from_slice(&(tcp.len() as u16 + 1).to_be_bytes());
    let mut bad_ihl = eth4(&tcp);
    bad_ihl[14] = 0x44;
    let quoted = Ipv4Packet::new(VIP4, CLIENT4, L4::tcp(80, CLIENT_PORT, ACK)).build();
    let short_quote =
        eth4(&Ipv4Packet::new(CLIENT4, VIP4, L4::icmpv4_frag_needed(1400, &quoted[..22])).build());
    let v6 = Ipv6Packet::new(CLIENT6, VIP6, L4::tcp(CLIENT_PORT, 80, ACK)).build();
    let mut long_payload = eth6(&v6);
    long_payload[18..20].copy_from_slice(&(v6.len() as u16).to_be_bytes());
    let cases = [
        (truncated_tcp, DropReason::TruncatedTransport),
        (cut_frame, DropReason::MalformedIp),
        (long_total, DropReason::MalformedIp),
        (bad_ihl, DropReason::MalformedIp),
        (short_quote, DropReason::IcmpQuoteTruncated),
        (long_payload, DropReason::MalformedIp),
    ];
    for (frame, reason) in &cases {
        assert_eq!(
            director.route(frame, tables),
            Route::Drop(*reason),
            "{reason:?}"
        );
        assert!(director.counters().get(reason.counter()) >= 1);
    }
    assert_eq!(
        director.counters().get(Counter::PacketsTotal),
        cases.len() as u64
    );
}

#[test]
fn a_row_without_hops_is_a_counted_drop() {
    let table = table(FakeRows::uniform(&[]));
    let mut director = Director::new(config());
    let frame = eth4(&tcp4(CLIENT_PORT, 80, SYN));
    assert_eq!(
        director.route(&frame, core::slice::from_ref(&table)),
        Route::Drop(DropReason::EmptyRow)
    );
    assert_eq!(director.counters().get(Counter::ErrorsEmptyRow), 1);
}

#[test]
fn the_first_table_with_a_matching_bind_serves_the_frame() {
    let first = RouteTable::new(
        vec![bind("1.1.1.2", chance_director::Protocol::Tcp, 80..=80)],
        HASH_KEY,
        FakeRows::uniform(&[HOP_C]),
    );
    let second = table(FakeRows::uniform(&[HOP_A]));
    let tables = [first, second];
    let mut director = Director::new(config());
    let encap = encapsulated(director.route(&eth4(&tcp4(CLIENT_PORT, 80, SYN)), &tables));
    assert_eq!((encap.table, encap.header.hops().next()), (1, Some(HOP_A)));
    // route_by skips the binds: any routable frame goes by the given table.
    let elsewhere = Ipv4Packet::new(CLIENT4, Ipv4Addr::new(8, 8, 8, 8), L4::tcp(1, 2, SYN)).build();
    let encap = encapsulated(director.route_by(&eth4(&elsewhere), &tables[0]));
    assert_eq!(encap.header.hops().next(), Some(HOP_C));
}

#[test]
fn a_hop_list_longer_than_gue_holds_is_cut_at_31_and_counted() {
    let long: Vec<Ipv4Addr> = (1..=20u32)
        .map(|i| Ipv4Addr::from(0x0a00_0000 + i))
        .collect();
    let table = table(FakeRows::uniform(&long));
    let mut config = config().with_fields(&["src_addr", "src_port"]);
    config.alt_hash_fields = Some(fields(&["src_addr"]));
    let mut director = Director::new(config);
    let inner = tcp4(CLIENT_PORT, 80, ACK);
    let encap = encapsulated(director.route(&eth4(&inner), core::slice::from_ref(&table)));
    let hops: Vec<_> = encap.header.hops().collect();
    let expected: Vec<_> = long.iter().chain(&long).take(31).copied().collect();
    assert_eq!(hops, expected);
    assert!(checksum::outer_udp_ok(&encap.output(&eth4(&inner))));
    assert_eq!(director.counters().get(Counter::HopsTruncatedTotal), 1);
}

#[test]
fn the_reused_header_buffer_carries_nothing_over_from_the_previous_frame() {
    let long: Vec<Ipv4Addr> = (1..=31u32)
        .map(|i| Ipv4Addr::from(0xffff_ff00 + i))
        .collect();
    let long_table = table(FakeRows::uniform(&long));
    let short_table = table(FakeRows::uniform(&[HOP_A, HOP_B]));
    let syn = eth4(&tcp4(CLIENT_PORT, 80, SYN));
    let echo6 = eth6(&Ipv6Packet::new(CLIENT6, VIP6, L4::icmpv6_echo_request()).build());
    let mut fresh = Director::new(config());
    let expected =
        encapsulated(fresh.route(&echo6, core::slice::from_ref(&short_table))).output(&echo6);
    let mut reused = Director::new(config());
    assert!(matches!(
        reused.route(&syn, core::slice::from_ref(&long_table)),
        Route::Encapsulate(_)
    ));
    let output =
        encapsulated(reused.route(&echo6, core::slice::from_ref(&short_table))).output(&echo6);
    assert_eq!(output, expected);
}
