//! cls_redirect's kernel selftest (docs/compatibility.md, "The kernel selftest"), case by case in
//! matrix order.
//!
//! Each case checks the verdict, the deciding counter, the exact output bytes, the input
//! and output lengths, and the full set of counters bumped ("path actually taken" column, plus
//! `processed_packets_total`). The frames come from `chance_testkit::selftest`, which reproduces
//! the kernel test's `build_input` byte for byte.

use core::net::{IpAddr, Ipv4Addr};

use chance_engine::{Counter, Engine, EngineConfig, ExactMatchTable, FlowKey, L4Proto, Verdict};
use chance_testkit::selftest::{self, Case, MATRIX};

use Counter::{
    AcceptedPacketsTotalEstablished as ESTABLISHED, AcceptedPacketsTotalLastHop as LAST_HOP,
    ForwardedPacketsTotalGue as GUE, L3ProtocolPacketsTotalIpv4 as L3_V4,
    L3ProtocolPacketsTotalIpv6 as L3_V6, L4ProtocolPacketsTotalTcp as L4_TCP,
    L4ProtocolPacketsTotalUdp as L4_UDP,
};
use Verdict::{Accept, Forward};

fn config() -> EngineConfig {
    EngineConfig::new(&[Ipv4Addr::LOCALHOST], 1234, 1500).unwrap()
}

/// The selftest's socket table as owned flows.
fn flows() -> ExactMatchTable {
    selftest::flows()
        .into_iter()
        .map(|f| {
            let proto = match f.proto {
                "tcp" => L4Proto::Tcp,
                "udp" => L4Proto::Udp,
                other => panic!("unknown proto {other}"),
            };
            FlowKey::new(proto, f.local, f.remote).unwrap()
        })
        .collect()
}

#[test]
fn flow_table_has_the_client_sockets() {
    let table = flows();
    for host in [IpAddr::V4(Ipv4Addr::LOCALHOST), "::1".parse().unwrap()] {
        for proto in [L4Proto::Tcp, L4Proto::Udp] {
            let key = FlowKey::new(
                proto,
                (host, selftest::CLIENT_PORT).into(),
                (host, selftest::SERVER_PORT).into(),
            )
            .unwrap();
            assert!(chance_engine::FlowTable::owns(&table, &key), "{key:?}");
        }
    }
}

fn run(
    index: usize,
    name: &str,
    verdict: Verdict,
    reason: Counter,
    bumped: &[Counter],
    in_len: usize,
    out_len: usize,
) {
    let case: Case = MATRIX[index];
    assert_eq!(case.name(), name, "matrix order");
    let mut buf = case.input();
    assert_eq!(buf.len(), in_len, "input length of {}", case.subtest_name());

    let mut engine = Engine::new(config());
    let outcome = engine.process(&mut buf, &flows());

    assert_eq!(outcome.verdict, verdict, "{}", case.subtest_name());
    assert_eq!(outcome.reason, Some(reason), "{}", case.subtest_name());
    let output = &buf[outcome.frame.clone()];
    assert_eq!(output.len(), out_len, "output length");
    // The selftest's own pass criterion.
    match verdict {
        Verdict::Accept => assert!(output.len() < in_len, "was decapsulated"),
        _ => assert!(output.len() >= in_len, "was not decapsulated"),
    }
    assert_eq!(
        hex::encode(output),
        hex::encode(case.expected_output()),
        "output bytes"
    );

    let mut expected = vec![(Counter::ProcessedPacketsTotal, 1)];
    expected.extend(bumped.iter().map(|&c| (c, 1)));
    expected.sort();
    assert_eq!(engine.counters().nonzero(), expected, "counters");

    // The testkit's string expectations (used by the replay test) agree with these.
    assert_eq!(case.verdict(), verdict.name());
    assert_eq!(case.reason(), reason.name());
    let mut names: Vec<_> = bumped.iter().map(|c| c.name()).collect();
    let mut kit = case.counters();
    names.sort();
    kit.sort();
    assert_eq!(kit, names);
}

// 1. TCP, ACCEPT, unknown, no hops, SYN: last hop, the inner packet is never inspected.
#[test]
fn ipv4_tcp_accept_unknown_no_hops_syn() {
    run(
        0,
        "ipv4_tcp_accept_unknown_no_hops_syn",
        Accept,
        LAST_HOP,
        &[LAST_HOP],
        90,
        54,
    );
}

#[test]
fn ipv6_tcp_accept_unknown_no_hops_syn() {
    run(
        1,
        "ipv6_tcp_accept_unknown_no_hops_syn",
        Accept,
        LAST_HOP,
        &[LAST_HOP],
        110,
        74,
    );
}

// 2. TCP, ACCEPT, unknown, no hops, ACK: last hop.
#[test]
fn ipv4_tcp_accept_unknown_no_hops_ack() {
    run(
        2,
        "ipv4_tcp_accept_unknown_no_hops_ack",
        Accept,
        LAST_HOP,
        &[LAST_HOP],
        90,
        54,
    );
}

#[test]
fn ipv6_tcp_accept_unknown_no_hops_ack() {
    run(
        3,
        "ipv6_tcp_accept_unknown_no_hops_ack",
        Accept,
        LAST_HOP,
        &[LAST_HOP],
        110,
        74,
    );
}

// 3. TCP, FORWARD, unknown, one hop, ACK: no socket owns the wrong sport, no cookie.
#[test]
fn ipv4_tcp_forward_unknown_one_hop_ack() {
    run(
        4,
        "ipv4_tcp_forward_unknown_one_hop_ack",
        Forward,
        GUE,
        &[L3_V4, L4_TCP, GUE],
        94,
        94,
    );
}

#[test]
fn ipv6_tcp_forward_unknown_one_hop_ack() {
    run(
        5,
        "ipv6_tcp_forward_unknown_one_hop_ack",
        Forward,
        GUE,
        &[L3_V6, L4_TCP, GUE],
        114,
        114,
    );
}

// 4. TCP, ACCEPT, known, one hop, ACK: the client socket owns the flow.
#[test]
fn ipv4_tcp_accept_known_one_hop_ack() {
    run(
        6,
        "ipv4_tcp_accept_known_one_hop_ack",
        Accept,
        ESTABLISHED,
        &[L3_V4, L4_TCP, ESTABLISHED],
        94,
        54,
    );
}

#[test]
fn ipv6_tcp_accept_known_one_hop_ack() {
    run(
        7,
        "ipv6_tcp_accept_known_one_hop_ack",
        Accept,
        ESTABLISHED,
        &[L3_V6, L4_TCP, ESTABLISHED],
        114,
        74,
    );
}

// 5. UDP, ACCEPT, unknown, no hops: last hop.
#[test]
fn ipv4_udp_accept_unknown_no_hops_none() {
    run(
        8,
        "ipv4_udp_accept_unknown_no_hops_none",
        Accept,
        LAST_HOP,
        &[LAST_HOP],
        78,
        42,
    );
}

#[test]
fn ipv6_udp_accept_unknown_no_hops_none() {
    run(
        9,
        "ipv6_udp_accept_unknown_no_hops_none",
        Accept,
        LAST_HOP,
        &[LAST_HOP],
        98,
        62,
    );
}

// 6. UDP, FORWARD, unknown, one hop: the connected client does not match the wrong sport.
#[test]
fn ipv4_udp_forward_unknown_one_hop_none() {
    run(
        10,
        "ipv4_udp_forward_unknown_one_hop_none",
        Forward,
        GUE,
        &[L3_V4, L4_UDP, GUE],
        82,
        82,
    );
}

#[test]
fn ipv6_udp_forward_unknown_one_hop_none() {
    run(
        11,
        "ipv6_udp_forward_unknown_one_hop_none",
        Forward,
        GUE,
        &[L3_V6, L4_UDP, GUE],
        102,
        102,
    );
}

// 7. UDP, ACCEPT, known, one hop: the connected UDP socket owns the flow.
#[test]
fn ipv4_udp_accept_known_one_hop_none() {
    run(
        12,
        "ipv4_udp_accept_known_one_hop_none",
        Accept,
        ESTABLISHED,
        &[L3_V4, L4_UDP, ESTABLISHED],
        82,
        42,
    );
}

#[test]
fn ipv6_udp_accept_known_one_hop_none() {
    run(
        13,
        "ipv6_udp_accept_known_one_hop_none",
        Accept,
        ESTABLISHED,
        &[L3_V6, L4_UDP, ESTABLISHED],
        102,
        62,
    );
}

/// The whole matrix through one engine: the counters add up.
#[test]
fn whole_matrix_on_one_engine() {
    let mut engine = Engine::new(config());
    let table = flows();
    for case in MATRIX {
        let mut buf = case.input();
        let outcome = engine.process(&mut buf, &table);
        assert_eq!(
            outcome.verdict.name(),
            case.verdict(),
            "{}",
            case.subtest_name()
        );
    }
    let c = engine.counters();
    assert_eq!(c.get(Counter::ProcessedPacketsTotal), 14);
    assert_eq!(c.get(LAST_HOP), 6);
    assert_eq!(c.get(ESTABLISHED), 4);
    assert_eq!(c.get(GUE), 4);
    assert_eq!(c.get(L3_V4), 4);
    assert_eq!(c.get(L3_V6), 4);
    assert_eq!(c.get(L4_TCP), 4);
    assert_eq!(c.get(L4_UDP), 4);
    assert_eq!(c.nonzero().len(), 8);
}
