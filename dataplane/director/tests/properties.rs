//! Property tests: the director's contract (tests/contract) on arbitrary bytes and on valid
//! frames with arbitrary fields and cuts.

mod contract;

use chance_testkit::inner::{Ipv4Packet, Ipv6Packet, L4};
use core::net::{Ipv4Addr, Ipv6Addr};
use proptest::prelude::*;

fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 3];
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn l4() -> impl Strategy<Value = L4> {
    let quoted = proptest::collection::vec(any::<u8>(), 0..80);
    prop_oneof![
        (any::<u16>(), any::<u16>(), any::<u8>()).prop_map(|(s, d, f)| L4::tcp(s, d, f)),
        (
            any::<u16>(),
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 0..1500)
        )
            .prop_map(|(s, d, p)| L4::udp(s, d, &p)),
        Just(L4::icmpv4_echo_request()),
        Just(L4::icmpv6_echo_request()),
        quoted
            .clone()
            .prop_map(|q| L4::icmpv4_frag_needed(1400, &q)),
        quoted.prop_map(|q| L4::icmpv6_packet_too_big(1280, &q)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_and_are_counted_once(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = contract::check_frame(&data);
    }

    #[test]
    fn valid_frames_cut_or_padded_keep_the_contract(
        v6 in any::<bool>(),
        src in any::<[u8; 16]>(),
        dst in any::<[u8; 16]>(),
        l4 in l4(),
        cut in 0usize..2000,
        pad in 0usize..20,
        frag in any::<bool>(),
    ) {
        let packet = if v6 {
            Ipv6Packet::new(Ipv6Addr::from(src), Ipv6Addr::from(dst), l4).build()
        } else {
            let mut p = Ipv4Packet::new(
                Ipv4Addr::new(src[0], src[1], src[2], src[3]),
                Ipv4Addr::new(dst[0], dst[1], dst[2], dst[3]),
                l4,
            );
            if frag {
                p = p.fragment_offset(7);
            }
            p.build()
        };
        let mut frame = ethernet(if v6 { 0x86dd } else { 0x0800 }, &packet);
        frame.extend(core::iter::repeat_n(0, pad));
        frame.truncate(frame.len().min(cut.max(14)));
        let _ = contract::check_frame(&frame);
    }
}

#[test]
fn the_contract_checks_real_encapsulations() {
    // TCP to the catch-all binds routes through both directors except on the empty rows
    // (one in 41): the checks above are not vacuous.
    let routed: usize = (0..100u8)
        .map(|i| {
            let packet = Ipv4Packet::new(
                Ipv4Addr::new(10, 0, i, 1),
                Ipv4Addr::new(192, 0, 2, 80),
                L4::tcp(40_000 + u16::from(i), 443, 0x10),
            )
            .build();
            contract::check_frame(&ethernet(0x0800, &packet))
        })
        .sum();
    assert!(routed > 180, "{routed} of 200");
}

#[test]
fn a_corrupt_inner_packet_gets_an_outer_udp_checksum_off_by_its_error() {
    // A bit flipped in the TCP header after the checksum was written: the contract then demands
    // that the outer UDP checksum fail by exactly the inner checksum's error.
    let routed: usize = (0..100u8)
        .map(|i| {
            let mut packet = Ipv4Packet::new(
                Ipv4Addr::new(10, 0, i, 1),
                Ipv4Addr::new(192, 0, 2, 80),
                L4::tcp(40_000 + u16::from(i), 443, 0x10),
            )
            .build();
            let last = packet.len() - 1;
            packet[last] ^= 1 << (i % 8);
            contract::check_frame(&ethernet(0x0800, &packet))
        })
        .sum();
    assert!(routed > 180, "{routed} of 200");
}

/// A VIP of the contract's narrow binds, or an address beside one.
fn destination() -> impl Strategy<Value = [u8; 4]> {
    prop_oneof![
        4 => Just([192, 0, 2, 80]),
        1 => Just([192, 0, 2, 81]),
        1 => Just([192, 0, 2, 0]),
        1 => Just([192, 0, 3, 80]),
        2 => Just([198, 51, 100, 7]),
        1 => Just([198, 51, 101, 7]),
        1 => any::<[u8; 4]>(),
    ]
}

/// A destination port at a narrow bind's range edge, one past it, or any.
fn destination_port() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => prop::sample::select(vec![0u16, 1, 79, 80, 81, 82, 442, 443, 444, 999, 1000, 2000, 2001]),
        1 => any::<u16>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// The fast path (IPv4, IHL 5, not a later fragment, TCP or UDP to a bind) against the full
    /// procedure, on common frames and on every near miss of one: another EtherType, IHL or
    /// version, fragment bits, protocol, a total length off by one or past the frame, a cut
    /// frame, ports at the range edges, addresses beside the VIPs (`contract::check_frame`
    /// compares route, bytes and counters).
    #[test]
    fn common_frames_and_near_misses_route_as_the_full_procedure(
        ethertype in prop_oneof![12 => Just(0x0800u16), 1 => Just(0x86dd), 1 => Just(0x8100), 1 => any::<u16>()],
        ver_ihl in prop_oneof![12 => Just(0x45u8), 1 => Just(0x46), 1 => Just(0x44), 1 => Just(0x55), 1 => any::<u8>()],
        flags_frag in prop_oneof![6 => Just(0u16), 6 => Just(0x4000), 1 => Just(0x2000), 1 => Just(0x0001), 1 => Just(0x1fff), 1 => Just(0x1000), 1 => any::<u16>()],
        protocol in prop_oneof![4 => Just(6u8), 4 => Just(17), 1 => Just(1), 1 => any::<u8>()],
        total_len_delta in prop_oneof![8 => Just(0i32), 1 => Just(-1), 1 => Just(1), 1 => -60i32..60],
        src in any::<[u8; 4]>(),
        dst in destination(),
        ports in (any::<u16>(), destination_port()),
        rest in proptest::collection::vec(any::<u8>(), 0..80),
        cut in prop_oneof![8 => Just(usize::MAX), 1 => 0usize..120],
        pad in 0usize..8,
    ) {
        let options = usize::from(ver_ihl & 0x0f).saturating_sub(5) * 4;
        let mut packet = vec![ver_ihl, 0, 0, 0, 0x12, 0x34];
        packet.extend_from_slice(&flags_frag.to_be_bytes());
        packet.extend_from_slice(&[64, protocol, 0, 0]);
        packet.extend_from_slice(&src);
        packet.extend_from_slice(&dst);
        packet.extend(core::iter::repeat_n(1, options));
        packet.extend_from_slice(&ports.0.to_be_bytes());
        packet.extend_from_slice(&ports.1.to_be_bytes());
        packet.extend_from_slice(&rest);
        let total_len = (packet.len() as i32 + total_len_delta).clamp(0, 0xffff) as u16;
        packet[2..4].copy_from_slice(&total_len.to_be_bytes());
        let mut frame = ethernet(ethertype, &packet);
        frame.extend(core::iter::repeat_n(0, pad));
        frame.truncate(cut);
        let _ = contract::check_frame(&frame);
    }
}

#[test]
fn the_fast_path_comparison_sees_routed_passed_and_dropped_frames() {
    // Common frames to the narrow binds route, those beside them pass: the comparison above is
    // not between two passes only.
    let frame = |dst: [u8; 4], protocol: u8, port: u16| {
        let l4 = if protocol == 6 {
            L4::tcp(40_000, port, 0x10)
        } else {
            L4::udp(40_000, port, &[1, 2, 3])
        };
        let packet = Ipv4Packet::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::from(dst), l4).build();
        ethernet(0x0800, &packet)
    };
    let tables = contract::narrow_tables();
    let config = chance_director::DirectorConfig::new(
        Ipv4Addr::new(192, 0, 2, 1),
        [2, 0, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 2],
    );
    let mut director = chance_director::Director::new(config);
    // (VIP, protocol, port, the table that routes it; none: passed).
    let cases = [
        ([192, 0, 2, 80], 6, 443, Some(0)),
        ([192, 0, 2, 80], 6, 80, Some(1)),
        ([198, 51, 100, 9], 17, 2000, Some(0)),
        ([192, 0, 2, 80], 17, 0, Some(1)),
        ([192, 0, 2, 80], 6, 444, None),
        ([198, 51, 100, 9], 17, 2001, None),
    ];
    for (dst, protocol, port, table) in cases {
        match (director.route(&frame(dst, protocol, port), &tables), table) {
            (chance_director::Route::Encapsulate(encap), Some(table)) => {
                assert_eq!(encap.table, table, "{dst:?} {protocol} {port}")
            }
            (chance_director::Route::Pass, None) => {}
            (route, _) => panic!("{dst:?} {protocol} {port}: {route:?}, expected table {table:?}"),
        }
    }
}

/// One frame of a burst: a common frame to one of the narrow binds' VIPs or beside them, with
/// any client, or arbitrary bytes (a frame for the full procedure, a drop or a pass).
fn burst_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => (any::<[u8; 4]>(), destination(), prop_oneof![Just(6u8), Just(17)], any::<u16>(), destination_port())
            .prop_map(|(src, dst, protocol, src_port, dst_port)| {
                contract::common_frame(src, dst, protocol, src_port, dst_port)
            }),
        1 => (any::<[u8; 4]>(), any::<u16>()).prop_map(|(src, port)| {
            // Every TCP port of any IPv4 address goes to the wide table.
            contract::common_frame(src, [203, 0, 113, 9], 6, port, 8080)
        }),
        // A common TCP frame that a first table's first IPv4 bind takes (each table set's),
        // with one byte of the head a burst checks ahead changed: what is decided ahead must
        // agree with the fast path on every field it checks.
        3 => (any::<[u8; 4]>(), prop_oneof![Just([192, 0, 2, 80]), Just([203, 0, 113, 9])], 12usize..38, any::<u8>())
            .prop_map(|(src, dst, at, byte)| {
                let mut frame = contract::common_frame(src, dst, 6, 40_000, 443);
                frame[at] = byte;
                frame
            }),
        1 => proptest::collection::vec(any::<u8>(), 0..80),
        1 => (any::<[u8; 16]>(), any::<[u8; 16]>(), l4()).prop_map(|(src, dst, l4)| {
            let packet = Ipv6Packet::new(Ipv6Addr::from(src), Ipv6Addr::from(dst), l4).build();
            ethernet(0x86dd, &packet)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// A burst read ahead and hashed in lanes routes each frame as it routes alone (route,
    /// bytes, counters; `contract::check_burst`), for every burst length up to past the most
    /// read ahead, partial lanes included.
    #[test]
    fn a_burst_routes_each_frame_as_it_routes_alone(
        frames in proptest::collection::vec(burst_frame(), 1..=40),
    ) {
        let frames: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        contract::check_burst(&frames);
    }
}

#[test]
fn every_burst_length_up_to_32_common_frames_routes_as_alone() {
    let frames: Vec<Vec<u8>> = (0..33u8)
        .map(|i| {
            let dst = if i % 3 == 0 {
                [198, 51, 100, 7]
            } else {
                [192, 0, 2, 80]
            };
            let (protocol, port) = if i % 3 == 0 {
                (17, 1000 + u16::from(i))
            } else {
                (6, 443)
            };
            contract::common_frame([10, 1, i, 7], dst, protocol, 30_000 + u16::from(i), port)
        })
        .collect();
    for len in 1..=frames.len() {
        let burst: Vec<&[u8]> = frames[..len].iter().map(Vec::as_slice).collect();
        contract::check_burst(&burst);
    }
}

#[test]
fn a_frame_read_ahead_by_its_address_with_another_length_routes_as_alone() {
    let frame = contract::common_frame([10, 1, 2, 7], [192, 0, 2, 80], 6, 30_000, 443);
    for read_len in 0..=frame.len() {
        contract::check_read_as_prefix(&frame, read_len);
    }
}
