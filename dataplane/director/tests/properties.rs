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
