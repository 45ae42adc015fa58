//! One fixture per verified behaviour of cls_redirect (docs/decision-procedure.md) and per
//! deviation of chance (docs/compatibility.md), each run on a fresh engine.
//!
//! A fixture is an input frame built with the testkit, a flow table, a configuration, and the
//! expected verdict, deciding counter, full set of non-zero counters and output bytes. Expected
//! frames are computed independently of the engine (`chance_testkit::expect`): a decap is the
//! input's Ethernet header plus the inner packet, a GUE forward is the input with the MACs swapped,
//! the addresses and next_hop replaced and the checksums recomputed from scratch, a GRE conversion
//! is written by hand from docs/wire-format.md.
//!
//! Counter rules: every frame bumps `processed_packets_total`, every pass also bumps
//! `passed_packets_total`; the listed counters are the rest, in the order they are bumped, and the
//! outcome's reason is the last one.

use core::net::{Ipv4Addr, Ipv6Addr};

use chance_engine::{Counter, Engine, EngineConfig, FlowKey, FlowTable, L4Proto, Verdict};
use chance_testkit::checksum;
use chance_testkit::expect;
use chance_testkit::gue::{Checksum, GueFrame, IpipFrame};
use chance_testkit::inner::{
    patch, quote, Ext, Ipv4Packet, Ipv6Packet, ACK, FIN, L4, PSH, RST, SYN,
};

// ---------------------------------------------------------------------------------------------
// Addresses and flows
// ---------------------------------------------------------------------------------------------

/// This host's encapsulation address (the spec's vectors use the selftest's 127.0.0.1:1234).
const ENCAP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// A second encapsulation address for the multi-address deviation.
const ENCAP2: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const PORT: u16 = 1234;
const HOP1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 21);
const HOP2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 22);
const HOP3: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 23);

/// The client on the Internet and the service address on this host.
const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const VIP4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// A router sending ICMP errors about our replies.
const ROUTER4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 7);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x5, 0, 0, 0, 0, 0x10);
const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 1);
const CLIENT_PORT: u16 = 51234;
const VIP_PORT: u16 = 443;

const SEQ: u32 = 0x1111_2222;
const COOKIE: u32 = 0x5eed_c0de;

fn tcp4_key() -> FlowKey {
    FlowKey::v4(L4Proto::Tcp, VIP4, VIP_PORT, CLIENT4, CLIENT_PORT)
}
fn udp4_key() -> FlowKey {
    FlowKey::v4(L4Proto::Udp, VIP4, VIP_PORT, CLIENT4, CLIENT_PORT)
}
fn tcp6_key() -> FlowKey {
    FlowKey::v6(L4Proto::Tcp, VIP6, VIP_PORT, CLIENT6, CLIENT_PORT)
}
fn udp6_key() -> FlowKey {
    FlowKey::v6(L4Proto::Udp, VIP6, VIP_PORT, CLIENT6, CLIENT_PORT)
}

/// Client -> service TCP segment.
fn tcp4(flags: u8) -> Ipv4Packet {
    Ipv4Packet::new(CLIENT4, VIP4, L4::tcp(CLIENT_PORT, VIP_PORT, flags))
}
/// Client -> service UDP datagram.
fn udp4() -> Ipv4Packet {
    Ipv4Packet::new(CLIENT4, VIP4, L4::udp(CLIENT_PORT, VIP_PORT, b"hello"))
}
fn tcp6(flags: u8) -> Ipv6Packet {
    Ipv6Packet::new(CLIENT6, VIP6, L4::tcp(CLIENT_PORT, VIP_PORT, flags))
}
fn udp6() -> Ipv6Packet {
    Ipv6Packet::new(CLIENT6, VIP6, L4::udp(CLIENT_PORT, VIP_PORT, b"hello"))
}

/// A packet this host sent to the client (service -> client), as an ICMP error quotes it.
fn our_tcp4() -> Vec<u8> {
    quote(&Ipv4Packet::new(VIP4, CLIENT4, L4::tcp(VIP_PORT, CLIENT_PORT, ACK | PSH)).build())
}
fn our_udp4() -> Vec<u8> {
    quote(&Ipv4Packet::new(VIP4, CLIENT4, L4::udp(VIP_PORT, CLIENT_PORT, b"reply")).build())
}
fn our_tcp6() -> Vec<u8> {
    quote(&Ipv6Packet::new(VIP6, CLIENT6, L4::tcp(VIP_PORT, CLIENT_PORT, ACK | PSH)).build())
}
fn our_udp6() -> Vec<u8> {
    quote(&Ipv6Packet::new(VIP6, CLIENT6, L4::udp(VIP_PORT, CLIENT_PORT, b"reply")).build())
}

/// ICMPv4 from a router to the service address.
fn icmp4(l4: L4) -> Vec<u8> {
    Ipv4Packet::new(ROUTER4, VIP4, l4).build()
}
/// ICMPv6 from a router to the service address.
fn icmp6(l4: L4) -> Vec<u8> {
    Ipv6Packet::new(ROUTER6, VIP6, l4).build()
}

/// GUE with one hop (HOP1) around an inner IPv4 packet.
fn one_hop4(inner: &[u8]) -> GueFrame {
    GueFrame::ipv4(inner.to_vec()).hops(&[HOP1])
}
/// GUE with one hop (HOP1) around an inner IPv6 packet.
fn one_hop6(inner: &[u8]) -> GueFrame {
    GueFrame::ipv6(inner.to_vec()).hops(&[HOP1])
}

fn config() -> EngineConfig {
    EngineConfig::new(&[ENCAP], PORT, 1500).unwrap()
}
fn config_mtu(mtu: u16) -> EngineConfig {
    EngineConfig::new(&[ENCAP], PORT, mtu).unwrap()
}

/// Expected GUE forward from ENCAP to `hop` with the new next_hop.
fn fwd(input: &[u8], hop: Ipv4Addr, next_hop: u8) -> Vec<u8> {
    expect::gue_forward(input, ENCAP, hop, next_hop)
}
/// Expected decap with EtherType IPv4.
fn decap4(input: &[u8], inner: &[u8]) -> Vec<u8> {
    expect::decap(input, 0x0800, inner)
}
/// Expected decap with EtherType IPv6.
fn decap6(input: &[u8], inner: &[u8]) -> Vec<u8> {
    expect::decap(input, 0x86dd, inner)
}

// Short counter names.
const LAST_HOP: Counter = Counter::AcceptedPacketsTotalLastHop;
const SYN_ACCEPT: Counter = Counter::AcceptedPacketsTotalSyn;
const SYN_COOKIES: Counter = Counter::AcceptedPacketsTotalSynCookies;
const ECHO_REQUEST: Counter = Counter::AcceptedPacketsTotalIcmpEchoRequest;
const ESTABLISHED: Counter = Counter::AcceptedPacketsTotalEstablished;
const IP_IN_IP: Counter = Counter::AcceptedPacketsTotalIpInIp;
const GUE: Counter = Counter::ForwardedPacketsTotalGue;
const GRE: Counter = Counter::ForwardedPacketsTotalGre;
const L3_V4: Counter = Counter::L3ProtocolPacketsTotalIpv4;
const L3_V6: Counter = Counter::L3ProtocolPacketsTotalIpv6;
const L4_TCP: Counter = Counter::L4ProtocolPacketsTotalTcp;
const L4_UDP: Counter = Counter::L4ProtocolPacketsTotalUdp;
const UNKNOWN_L3: Counter = Counter::ErrorsTotalUnknownL3Proto;
const UNKNOWN_L4: Counter = Counter::ErrorsTotalUnknownL4Proto;
const MALFORMED_IP: Counter = Counter::ErrorsTotalMalformedIp;
const FRAGMENTED: Counter = Counter::ErrorsTotalFragmentedIp;
const MALFORMED_ICMP: Counter = Counter::ErrorsTotalMalformedIcmp;
const UNWANTED_ICMP: Counter = Counter::ErrorsTotalUnwantedIcmp;
const PKT_TOO_BIG: Counter = Counter::ErrorsTotalMalformedIcmpPktTooBig;
const MALFORMED_TCP: Counter = Counter::ErrorsTotalMalformedTcp;
const MALFORMED_UDP: Counter = Counter::ErrorsTotalMalformedUdp;
const ECHO_REPLIES: Counter = Counter::ErrorsTotalIcmpEchoReplies;
const MALFORMED_ENCAP: Counter = Counter::ErrorsTotalMalformedEncapsulation;
const REDIRECT_LOOP: Counter = Counter::ErrorsTotalRedirectLoop;
const MTU_VIOLATE: Counter = Counter::ErrorsTotalEncapMtuViolate;
const RESERVED: Counter = Counter::ErrorsTotalUnigueReserved;
const HOP_LIST: Counter = Counter::ErrorsTotalMalformedHopList;
const TOO_SHORT: Counter = Counter::ErrorsTotalDecapTooShort;
const SKIPPED_SELF: Counter = Counter::HopsSkippedTotalSelf;

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

/// A SYN-cookie answer of the test table: `None` fields match anything.
#[derive(Debug, Clone)]
struct Cookie {
    key: FlowKey,
    seq: Option<u32>,
    ack: Option<u32>,
}

/// The flow table of a fixture: owned flows, and listeners that validate given cookies.
#[derive(Debug, Clone, Default)]
struct Flows {
    owned: Vec<FlowKey>,
    cookies: Vec<Cookie>,
}

impl FlowTable for Flows {
    fn owns(&self, key: &FlowKey) -> bool {
        self.owned.contains(key)
    }

    fn is_syncookie(&self, key: &FlowKey, seq: u32, ack: u32) -> bool {
        self.cookies.iter().any(|c| {
            c.key == *key && c.seq.is_none_or(|s| s == seq) && c.ack.is_none_or(|a| a == ack)
        })
    }
}

/// `CHANCE_FUZZ_CORPUS=DIR cargo test --test fixtures` writes every fixture's input frame to
/// `DIR/<test name>.bin`: that is how `fuzz/corpus/engine` was seeded with real frames.
fn write_fuzz_seed(input: &[u8]) {
    let Some(dir) = std::env::var_os("CHANCE_FUZZ_CORPUS") else {
        return;
    };
    let name = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .replace("::", "-");
    let path = std::path::Path::new(&dir).join(format!("{name}.bin"));
    std::fs::write(&path, input).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[derive(Debug)]
struct Fixture {
    input: Vec<u8>,
    flows: Flows,
    config: EngineConfig,
    verdict: Verdict,
    /// Counters bumped besides processed/passed, in order; the last one is the reason.
    bumped: Vec<Counter>,
    output: Vec<u8>,
}

impl Fixture {
    fn new(verdict: Verdict, input: Vec<u8>, output: Vec<u8>, bumped: &[Counter]) -> Self {
        Self {
            input,
            flows: Flows::default(),
            config: config(),
            verdict,
            bumped: bumped.to_vec(),
            output,
        }
    }

    /// Not ours: handed on untouched.
    fn pass(input: Vec<u8>) -> Self {
        let output = input.clone();
        Self::new(Verdict::Pass, input, output, &[])
    }

    fn drop(input: Vec<u8>, bumped: &[Counter]) -> Self {
        Self::new(Verdict::Drop, input, Vec::new(), bumped)
    }

    fn accept(input: Vec<u8>, output: Vec<u8>, bumped: &[Counter]) -> Self {
        Self::new(Verdict::Accept, input, output, bumped)
    }

    fn forward(input: Vec<u8>, output: Vec<u8>, bumped: &[Counter]) -> Self {
        Self::new(Verdict::Forward, input, output, bumped)
    }

    fn owning(mut self, keys: &[FlowKey]) -> Self {
        self.flows.owned.extend_from_slice(keys);
        self
    }

    fn cookie(mut self, key: FlowKey, seq: Option<u32>, ack: Option<u32>) -> Self {
        self.flows.cookies.push(Cookie { key, seq, ack });
        self
    }

    fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    fn run(self) {
        write_fuzz_seed(&self.input);
        let mut engine = Engine::new(self.config.clone());
        let mut buf = self.input.clone();
        let outcome = engine.process(&mut buf, &self.flows);

        let reason = self.bumped.last().copied();
        assert_eq!(
            (outcome.verdict, outcome.reason),
            (self.verdict, reason),
            "verdict and reason (counters: {:?})",
            engine.counters()
        );

        let output = outcome.output(&buf);
        assert_eq!(
            hex::encode(output),
            hex::encode(&self.output),
            "output bytes ({} bytes, expected {})",
            output.len(),
            self.output.len()
        );
        if self.verdict == Verdict::Pass {
            assert_eq!(outcome.frame, 0..self.input.len(), "a pass is untouched");
        }

        let mut expected: Vec<(Counter, u64)> = Vec::new();
        let mut tally = |c: Counter| match expected.iter_mut().find(|(e, _)| *e == c) {
            Some((_, n)) => *n += 1,
            None => expected.push((c, 1)),
        };
        tally(Counter::ProcessedPacketsTotal);
        if self.verdict == Verdict::Pass {
            tally(Counter::PassedPacketsTotal);
        }
        self.bumped.iter().copied().for_each(&mut tally);
        expected.sort();
        assert_eq!(engine.counters().nonzero(), expected, "counters");
    }
}

// =============================================================================================
// Outer headers
// =============================================================================================

/// EtherType 0x86DD: not ours.
#[test]
fn outer_ethertype_ipv6_passes() {
    let input = GueFrame {
        ethertype: 0x86dd,
        ..one_hop4(&udp4().build())
    }
    .build();
    Fixture::pass(input).run();
}

/// EtherType 0x8100 (a VLAN tag in the frame): not ours.
#[test]
fn outer_ethertype_vlan_passes() {
    let plain = one_hop4(&udp4().build()).build();
    let mut input = plain[..12].to_vec();
    input.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    input.extend_from_slice(&plain[12..]);
    Fixture::pass(input).run();
}

/// A frame of 49 bytes cannot hold the 50 bytes of outer headers: pass.
#[test]
fn outer_frame_of_49_bytes_passes() {
    let input = patch::truncate(GueFrame::default().build(), 49);
    Fixture::pass(input).run();
}

/// Outer IHL 6 (one option word): pass ("we never have any options").
#[test]
fn outer_ihl_6_passes() {
    let input = GueFrame {
        ip_options: vec![1, 1, 1, 0],
        ..one_hop4(&udp4().build())
    }
    .build();
    assert_eq!(input[14], 0x46);
    Fixture::pass(input).run();
}

/// Outer destination is not the encapsulation address: pass.
#[test]
fn outer_daddr_not_local_passes() {
    let input = GueFrame {
        daddr: Ipv4Addr::new(127, 0, 0, 2),
        ..one_hop4(&udp4().build())
    }
    .build();
    Fixture::pass(input).run();
}

/// Outer protocol TCP: pass.
#[test]
fn outer_protocol_tcp_passes() {
    let input = GueFrame {
        ip_proto: 6,
        ..one_hop4(&udp4().build())
    }
    .build();
    Fixture::pass(input).run();
}

/// Outer protocol GRE (47) to the encapsulation address: pass (only UDP and IP-in-IP are ours).
#[test]
fn outer_protocol_gre_passes() {
    let input = GueFrame {
        ip_proto: 47,
        ..one_hop4(&udp4().build())
    }
    .build();
    Fixture::pass(input).run();
}

/// UDP destination port 1235 instead of 1234: pass.
#[test]
fn outer_udp_dport_1235_passes() {
    let input = GueFrame {
        udp_dport: 1235,
        ..one_hop4(&udp4().build())
    }
    .build();
    Fixture::pass(input).run();
}

/// Outer MF flag: drop, fragmented_ip.
#[test]
fn outer_more_fragments_drops_fragmented_ip() {
    let input = GueFrame {
        ip_mf: true,
        ..one_hop4(&udp4().build())
    }
    .build();
    Fixture::drop(input, &[FRAGMENTED]).run();
}

/// Outer fragment offset != 0: drop, fragmented_ip.
#[test]
fn outer_fragment_offset_drops_fragmented_ip() {
    let input = GueFrame {
        ip_frag_offset: 1,
        ..one_hop4(&udp4().build())
    }
    .build();
    Fixture::drop(input, &[FRAGMENTED]).run();
}

/// The fragment check comes before the GUE header checks (step 8 before steps 9-13).
#[test]
fn outer_fragment_is_checked_before_gue_header() {
    let input = GueFrame {
        ip_mf: true,
        gue_variant: 1,
        ..one_hop4(&udp4().build())
    }
    .build();
    Fixture::drop(input, &[FRAGMENTED]).run();
}

/// DF is ignored: processed normally (forwarded, DF kept).
#[test]
fn outer_dont_fragment_is_processed_normally() {
    let input = GueFrame {
        ip_df: true,
        ..one_hop4(&udp4().build())
    }
    .build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE]).run();
}

/// Outer TTL 0 is not checked and not decremented on a GUE forward.
#[test]
fn outer_ttl_0_is_forwarded_unchanged() {
    let input = GueFrame {
        ip_ttl: 0,
        ..one_hop4(&udp4().build())
    }
    .build();
    let output = fwd(&input, HOP1, 1);
    assert_eq!(output[22], 0);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE]).run();
}

/// The UDP length field is not checked.
#[test]
fn outer_udp_length_is_not_checked() {
    let input = GueFrame {
        udp_len: Some(0),
        ..one_hop4(&udp4().build())
    }
    .build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE]).run();
}

/// The unigue `_r` bits (3) are ignored and carried along.
#[test]
fn unigue_low_bits_3_are_ignored() {
    let input = GueFrame {
        unigue_low: 3,
        ..one_hop4(&udp4().build())
    }
    .build();
    let output = fwd(&input, HOP1, 1);
    assert_eq!(output[46] & 3, 3);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE]).run();
}

/// GUE variant 1: drop, malformed_encapsulation.
#[test]
fn gue_variant_1_drops_malformed_encapsulation() {
    let input = GueFrame {
        gue_variant: 1,
        ..one_hop4(&udp4().build())
    }
    .build();
    Fixture::drop(input, &[MALFORMED_ENCAP]).run();
}

/// GUE control bit: drop, malformed_encapsulation.
#[test]
fn gue_control_1_drops_malformed_encapsulation() {
    let input = GueFrame {
        gue_control: 1,
        ..one_hop4(&udp4().build())
    }
    .build();
    Fixture::drop(input, &[MALFORMED_ENCAP]).run();
}

/// GUE flags 0x0100: drop, malformed_encapsulation.
#[test]
fn gue_flags_0x0100_drops_malformed_encapsulation() {
    let input = GueFrame {
        gue_flags: 0x0100,
        ..one_hop4(&udp4().build())
    }
    .build();
    Fixture::drop(input, &[MALFORMED_ENCAP]).run();
}

/// hlen 2 with no hops (hlen must be 1 + hop_count): drop, malformed_encapsulation.
#[test]
fn gue_hlen_2_without_hops_drops_malformed_encapsulation() {
    let input = GueFrame {
        gue_hlen: Some(2),
        ..GueFrame::ipv4(udp4().build())
    }
    .build();
    Fixture::drop(input, &[MALFORMED_ENCAP]).run();
}

/// hlen 1 with one hop: drop, malformed_encapsulation.
#[test]
fn gue_hlen_1_with_one_hop_drops_malformed_encapsulation() {
    let input = GueFrame {
        gue_hlen: Some(1),
        ..one_hop4(&udp4().build())
    }
    .build();
    Fixture::drop(input, &[MALFORMED_ENCAP]).run();
}

/// unigue version 1: drop, malformed_encapsulation.
#[test]
fn unigue_version_1_drops_malformed_encapsulation() {
    let input = GueFrame {
        unigue_version: 1,
        ..one_hop4(&udp4().build())
    }
    .build();
    Fixture::drop(input, &[MALFORMED_ENCAP]).run();
}

/// unigue reserved 1: drop; chance counts it (cls_redirect does not).
#[test]
fn unigue_reserved_1_drops_unigue_reserved() {
    let input = GueFrame {
        unigue_reserved: 1,
        ..one_hop4(&udp4().build())
    }
    .build();
    Fixture::drop(input, &[RESERVED]).run();
}

/// Exactly 50 bytes with no hops: the last-hop counter, then the decap would leave fewer than 20
/// bytes: drop, counted by chance as decap_too_short.
#[test]
fn frame_of_exactly_50_bytes_drops_decap_too_short() {
    let input = GueFrame::default().build();
    assert_eq!(input.len(), 50);
    Fixture::drop(input, &[LAST_HOP, TOO_SHORT]).run();
}

/// 19 bytes of inner packet: last hop, then drop (decap_too_short).
#[test]
fn decap_of_19_inner_bytes_drops_decap_too_short() {
    let inner = patch::truncate(udp4().build(), 19);
    let input = GueFrame::ipv4(inner).build();
    Fixture::drop(input, &[LAST_HOP, TOO_SHORT]).run();
}

/// 20 bytes of inner packet (a bare IPv4 header): accepted.
#[test]
fn decap_of_20_inner_bytes_accepts() {
    let inner = Ipv4Packet::new(CLIENT4, VIP4, L4::raw(253, &[])).build();
    assert_eq!(inner.len(), 20);
    let input = GueFrame::ipv4(inner.clone()).build();
    let output = decap4(&input, &inner);
    assert_eq!(output.len(), 34);
    Fixture::accept(input, output, &[LAST_HOP]).run();
}

// =============================================================================================
// Hops
// =============================================================================================

/// (0,0): no next hop, last-hop accept; the inner packet is not inspected.
#[test]
fn hops_0_of_0_is_last_hop() {
    let inner = udp4().build();
    let input = GueFrame::ipv4(inner.clone()).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[LAST_HOP]).run();
}

/// (1,1): last-hop accept; the hop list is removed with the rest of the outer headers.
#[test]
fn hops_1_of_1_is_last_hop() {
    let inner = udp4().build();
    let input = one_hop4(&inner).next_hop(1).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[LAST_HOP]).run();
}

/// (0,1): forward to hops[0], next_hop 1.
#[test]
fn hops_0_of_1_forwards_to_first_hop() {
    let input = one_hop4(&udp4().build()).build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE]).run();
}

/// (0,2): forward to hops[0], next_hop becomes 1.
#[test]
fn hops_0_of_2_forwards_to_first_hop() {
    let input = GueFrame::ipv4(udp4().build()).hops(&[HOP1, HOP2]).build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE]).run();
}

/// (1,2): forward to hops[1], next_hop becomes 2.
#[test]
fn hops_1_of_2_forwards_to_second_hop() {
    let input = GueFrame::ipv4(udp4().build())
        .hops(&[HOP1, HOP2])
        .next_hop(1)
        .build();
    let output = fwd(&input, HOP2, 2);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE]).run();
}

/// (1,3): forward to hops[1], next_hop becomes 2.
#[test]
fn hops_1_of_3_forwards_to_second_hop() {
    let input = GueFrame::ipv4(udp4().build())
        .hops(&[HOP1, HOP2, HOP3])
        .next_hop(1)
        .build();
    let output = fwd(&input, HOP2, 2);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE]).run();
}

/// Deviation: (2,2) is the last hop (cls_redirect dropped it).
#[test]
fn deviation_hops_2_of_2_is_last_hop() {
    let inner = udp4().build();
    let input = GueFrame::ipv4(inner.clone())
        .hops(&[HOP1, HOP2])
        .next_hop(2)
        .build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[LAST_HOP]).run();
}

/// Deviation: (0,3) forwards to hops[0] with next_hop 1 (cls_redirect dropped it).
#[test]
fn deviation_hop_list_of_three_forwards_to_first_hop() {
    let input = GueFrame::ipv4(udp4().build())
        .hops(&[HOP1, HOP2, HOP3])
        .build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE]).run();
}

/// Deviation: (2,3) forwards to hops[2] with next_hop 3 (cls_redirect dropped it).
#[test]
fn deviation_hops_2_of_3_forwards_to_third_hop() {
    let input = GueFrame::ipv4(udp4().build())
        .hops(&[HOP1, HOP2, HOP3])
        .next_hop(2)
        .build();
    let output = fwd(&input, HOP3, 3);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE]).run();
}

fn thirty_hops() -> Vec<Ipv4Addr> {
    (0..30).map(|i| Ipv4Addr::new(192, 0, 2, 100 + i)).collect()
}

/// Deviation: the longest list GUE's 5-bit hlen allows, (29,30), forwards to hops[29].
#[test]
fn deviation_hops_29_of_30_forwards_to_last_entry() {
    let hops = thirty_hops();
    let input = GueFrame::ipv4(udp4().build())
        .hops(&hops)
        .next_hop(29)
        .build();
    assert_eq!(input[42] & 0x1f, 31);
    let output = fwd(&input, hops[29], 30);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE]).run();
}

/// Deviation: (30,30) is the last hop.
#[test]
fn deviation_hops_30_of_30_is_last_hop() {
    let inner = udp4().build();
    let input = GueFrame::ipv4(inner.clone())
        .hops(&thirty_hops())
        .next_hop(30)
        .build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[LAST_HOP]).run();
}

/// 31 hops cannot be described: hlen (5 bits) cannot equal 1 + 31.
#[test]
fn hop_count_31_drops_malformed_encapsulation() {
    let mut hops = thirty_hops();
    hops.push(HOP1);
    let input = GueFrame::ipv4(udp4().build()).hops(&hops).build();
    Fixture::drop(input, &[MALFORMED_ENCAP]).run();
}

/// next_hop > hop_count: drop, malformed_hop_list (uncounted in cls_redirect).
#[test]
fn next_hop_beyond_hop_count_drops_malformed_hop_list() {
    let input = one_hop4(&udp4().build()).next_hop(2).build();
    Fixture::drop(input, &[HOP_LIST]).run();
}

/// hlen != 1 + hop_count is checked before the hop list.
#[test]
fn hlen_is_checked_before_hop_list() {
    let input = GueFrame {
        gue_hlen: Some(3),
        ..one_hop4(&udp4().build()).next_hop(2)
    }
    .build();
    Fixture::drop(input, &[MALFORMED_ENCAP]).run();
}

/// unigue reserved is checked before the hop list.
#[test]
fn unigue_reserved_is_checked_before_hop_list() {
    let input = GueFrame {
        unigue_reserved: 1,
        ..one_hop4(&udp4().build()).next_hop(2)
    }
    .build();
    Fixture::drop(input, &[RESERVED]).run();
}

/// hop_count 3 but the frame ends after one hop: drop, malformed_hop_list.
#[test]
fn hop_list_past_end_of_frame_drops_malformed_hop_list() {
    let input = GueFrame {
        hop_count: Some(3),
        gue_hlen: Some(4),
        ..GueFrame::default().hops(&[HOP1])
    }
    .build();
    assert_eq!(input.len(), 54);
    Fixture::drop(input, &[HOP_LIST]).run();
}

/// (2,2) whose hop list runs past the frame: dropped as malformed_hop_list, not a last hop.
#[test]
fn hop_list_past_end_of_frame_drops_even_at_last_hop() {
    let input = GueFrame {
        hop_count: Some(2),
        gue_hlen: Some(3),
        next_hop: 2,
        ..GueFrame::default().hops(&[HOP1])
    }
    .build();
    Fixture::drop(input, &[HOP_LIST]).run();
}

/// A hop 0.0.0.0 is "no next hop": last-hop accept.
#[test]
fn zero_hop_is_last_hop() {
    let inner = udp4().build();
    let input = one_hop4(&inner).hops(&[Ipv4Addr::UNSPECIFIED]).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[LAST_HOP]).run();
}

/// Deviation: a 0.0.0.0 entry at next_hop in a longer list, (1,3), is still a last-hop accept.
#[test]
fn deviation_zero_hop_at_next_hop_in_long_list_is_last_hop() {
    let inner = udp4().build();
    let input = GueFrame::ipv4(inner.clone())
        .hops(&[HOP1, Ipv4Addr::UNSPECIFIED, HOP3])
        .next_hop(1)
        .build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[LAST_HOP]).run();
}

/// GUE forward with a valid outer checksum, non-zero MACs and saddr 192.0.2.9: MACs swapped,
/// saddr = 127.0.0.1, daddr = hop, and the checksum stays valid.
#[test]
fn gue_forward_swaps_macs_and_keeps_ip_checksum_valid() {
    let input = one_hop4(&udp4().build()).build();
    let output = fwd(&input, HOP1, 1);
    assert_eq!(&output[..6], &input[6..12]);
    assert!(checksum::ipv4_header_ok(&output[14..34]));
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE]).run();
}

// =============================================================================================
// proto_ctype
// =============================================================================================

/// proto_ctype 17 with no hops: accepted, EtherType unchanged (the inner packet is not parsed).
#[test]
fn proto_ctype_17_without_hops_is_accepted() {
    let inner = udp4().build();
    let input = GueFrame {
        proto_ctype: 17,
        ..GueFrame::ipv4(inner.clone())
    }
    .build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[LAST_HOP]).run();
}

/// proto_ctype 17 with one hop: drop, unknown_l3_proto.
#[test]
fn proto_ctype_17_with_a_hop_drops_unknown_l3_proto() {
    let input = GueFrame {
        proto_ctype: 17,
        ..one_hop4(&udp4().build())
    }
    .build();
    Fixture::drop(input, &[UNKNOWN_L3]).run();
}

/// proto_ctype 41 with an IPv4 payload and no hops: accepted with EtherType 0x86DD (blindly).
#[test]
fn proto_ctype_41_with_ipv4_payload_gets_ethertype_ipv6() {
    // id 0x1234 read as an IPv6 payload length is larger than the packet: nothing to trim.
    let inner = udp4().build();
    let input = GueFrame::ipv6(inner.clone()).build();
    let output = decap6(&input, &inner);
    Fixture::accept(input, output, &[LAST_HOP]).run();
}

// =============================================================================================
// Inner IPv4 (one hop, so the inner packet is parsed)
// =============================================================================================

/// Inner IHL 4: malformed_ip.
#[test]
fn inner_ipv4_ihl_4_drops_malformed_ip() {
    let inner = patch::byte(udp4().build(), 0, 0x44);
    let input = one_hop4(&inner).build();
    Fixture::drop(input, &[L3_V4, MALFORMED_IP]).run();
}

/// Inner version 6 (IHL 5): malformed_ip.
#[test]
fn inner_ipv4_version_6_drops_malformed_ip() {
    let inner = patch::byte(udp4().build(), 0, 0x65);
    let input = one_hop4(&inner).build();
    Fixture::drop(input, &[L3_V4, MALFORMED_IP]).run();
}

/// Inner MF: fragmented_ip.
#[test]
fn inner_ipv4_more_fragments_drops_fragmented_ip() {
    let input = one_hop4(&udp4().more_fragments().build()).build();
    Fixture::drop(input, &[L3_V4, FRAGMENTED])
        .owning(&[udp4_key()])
        .run();
}

/// Inner fragment offset != 0: fragmented_ip.
#[test]
fn inner_ipv4_fragment_offset_drops_fragmented_ip() {
    let input = one_hop4(&udp4().fragment_offset(100).build()).build();
    Fixture::drop(input, &[L3_V4, FRAGMENTED])
        .owning(&[udp4_key()])
        .run();
}

/// Inner DF is not a fragment: a known flow is accepted.
#[test]
fn inner_ipv4_dont_fragment_is_accepted() {
    let inner = udp4().dont_fragment().build();
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, L4_UDP, ESTABLISHED])
        .owning(&[udp4_key()])
        .run();
}

/// Inner protocol 47: unknown_l4_proto.
#[test]
fn inner_ipv4_protocol_47_drops_unknown_l4_proto() {
    let inner = Ipv4Packet::new(CLIENT4, VIP4, L4::raw(47, &[0, 0, 0x08, 0, 1, 2, 3, 4])).build();
    let input = one_hop4(&inner).build();
    Fixture::drop(input, &[L3_V4, UNKNOWN_L4]).run();
}

/// Inner options (IHL 6) and a known UDP flow: accepted.
#[test]
fn inner_ipv4_with_options_known_udp_is_accepted() {
    let inner = udp4().options(&[1, 1, 1, 0]).build();
    assert_eq!(inner[0], 0x46);
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, L4_UDP, ESTABLISHED])
        .owning(&[udp4_key()])
        .run();
}

/// Inner options running past the end (IHL 15, 28 bytes): malformed_ip.
#[test]
fn inner_ipv4_options_past_end_drops_malformed_ip() {
    let inner = patch::byte(udp4().build(), 0, 0x4f);
    let input = one_hop4(&inner).build();
    Fixture::drop(input, &[L3_V4, MALFORMED_IP]).run();
}

/// Inner IPv4 header truncated (19 bytes): malformed_ip.
#[test]
fn inner_ipv4_truncated_drops_malformed_ip() {
    let inner = patch::truncate(udp4().build(), 19);
    let input = one_hop4(&inner).build();
    Fixture::drop(input, &[L3_V4, MALFORMED_IP]).run();
}

/// Inner TTL 0 and a wrong header checksum are not checked: a known flow is accepted unchanged.
#[test]
fn inner_ipv4_ttl_and_checksum_are_not_checked() {
    let inner = patch::be16(udp4().ttl(0).build(), 10, 0xdead);
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, L4_UDP, ESTABLISHED])
        .owning(&[udp4_key()])
        .run();
}

/// TCP header truncated (19 bytes): l4_tcp, then malformed_tcp.
#[test]
fn inner_tcp_truncated_drops_malformed_tcp() {
    let inner = patch::truncate(tcp4(ACK).build(), 39);
    let input = one_hop4(&inner).build();
    Fixture::drop(input, &[L3_V4, L4_TCP, MALFORMED_TCP]).run();
}

/// UDP header truncated (7 bytes): l4_udp, then malformed_udp.
#[test]
fn inner_udp_truncated_drops_malformed_udp() {
    let inner = patch::truncate(udp4().build(), 27);
    let input = one_hop4(&inner).build();
    Fixture::drop(input, &[L3_V4, L4_UDP, MALFORMED_UDP]).run();
}

// =============================================================================================
// TCP
// =============================================================================================

/// SYN of an unknown flow: accepted (syn).
#[test]
fn tcp_syn_unknown_is_accepted_as_syn() {
    let inner = tcp4(SYN).build();
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, L4_TCP, SYN_ACCEPT]).run();
}

/// SYN+ACK of an unknown flow: accepted (syn).
#[test]
fn tcp_syn_ack_unknown_is_accepted_as_syn() {
    let inner = tcp4(SYN | ACK).build();
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, L4_TCP, SYN_ACCEPT]).run();
}

/// SYN+RST is still a SYN.
#[test]
fn tcp_syn_rst_is_accepted_as_syn() {
    let inner = tcp4(SYN | RST).build();
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, L4_TCP, SYN_ACCEPT]).run();
}

/// SYN with forward_syn: forwarded.
#[test]
fn tcp_syn_with_forward_syn_is_forwarded() {
    let input = one_hop4(&tcp4(SYN).build()).forward_syn().build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, L4_TCP, GUE]).run();
}

/// The SYN test comes before the lookup: a SYN of an owned flow is a SYN.
#[test]
fn tcp_syn_of_known_flow_is_accepted_as_syn() {
    let inner = tcp4(SYN).build();
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, L4_TCP, SYN_ACCEPT])
        .owning(&[tcp4_key()])
        .run();
}

/// ... and with forward_syn it is forwarded even though a socket owns the flow.
#[test]
fn tcp_syn_of_known_flow_with_forward_syn_is_forwarded() {
    let input = one_hop4(&tcp4(SYN).build()).forward_syn().build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, L4_TCP, GUE])
        .owning(&[tcp4_key()])
        .run();
}

/// ACK of a known flow: accepted (established).
#[test]
fn tcp_ack_known_is_accepted_established() {
    let inner = tcp4(ACK).build();
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, L4_TCP, ESTABLISHED])
        .owning(&[tcp4_key()])
        .run();
}

/// RST of a known flow: accepted (established).
#[test]
fn tcp_rst_known_is_accepted_established() {
    let inner = tcp4(RST).build();
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, L4_TCP, ESTABLISHED])
        .owning(&[tcp4_key()])
        .run();
}

/// FIN+ACK of a known flow: accepted (established).
#[test]
fn tcp_fin_known_is_accepted_established() {
    let inner = tcp4(FIN | ACK).build();
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, L4_TCP, ESTABLISHED])
        .owning(&[tcp4_key()])
        .run();
}

/// No flags, known flow: accepted (established).
#[test]
fn tcp_no_flags_known_is_accepted_established() {
    let inner = tcp4(0).build();
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, L4_TCP, ESTABLISHED])
        .owning(&[tcp4_key()])
        .run();
}

/// forward_syn does not affect non-SYN segments of a known flow.
#[test]
fn tcp_ack_known_with_forward_syn_is_accepted_established() {
    let inner = tcp4(ACK).build();
    let input = one_hop4(&inner).forward_syn().build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, L4_TCP, ESTABLISHED])
        .owning(&[tcp4_key()])
        .run();
}

/// ACK of an unknown flow (e.g. to a listener, not a cookie): forwarded.
#[test]
fn tcp_ack_unknown_is_forwarded() {
    let input = one_hop4(&tcp4(ACK).build()).build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, L4_TCP, GUE]).run();
}

/// The flow key's local side is the inner destination: a table holding the reversed key does not
/// own the flow.
#[test]
fn tcp_flow_key_local_side_is_the_inner_destination() {
    let input = one_hop4(&tcp4(ACK).build()).build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, L4_TCP, GUE])
        .owning(&[FlowKey::v4(
            L4Proto::Tcp,
            CLIENT4,
            CLIENT_PORT,
            VIP4,
            VIP_PORT,
        )])
        .run();
}

/// IPv6 ACK of a known flow: accepted (established).
#[test]
fn tcp_ipv6_ack_known_is_accepted_established() {
    let inner = tcp6(ACK).build();
    let input = one_hop6(&inner).build();
    let output = decap6(&input, &inner);
    Fixture::accept(input, output, &[L3_V6, L4_TCP, ESTABLISHED])
        .owning(&[tcp6_key()])
        .run();
}

/// IPv6 SYN of an unknown flow: accepted (syn).
#[test]
fn tcp_ipv6_syn_unknown_is_accepted_as_syn() {
    let inner = tcp6(SYN).build();
    let input = one_hop6(&inner).build();
    let output = decap6(&input, &inner);
    Fixture::accept(input, output, &[L3_V6, L4_TCP, SYN_ACCEPT]).run();
}

// =============================================================================================
// UDP
// =============================================================================================

/// UDP of an unknown flow (e.g. to an unconnected server socket): forwarded.
#[test]
fn udp_unknown_is_forwarded() {
    let input = one_hop4(&udp4().build()).build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE]).run();
}

/// UDP of a known flow (connected socket): accepted (established).
#[test]
fn udp_known_is_accepted_established() {
    let inner = udp4().build();
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, L4_UDP, ESTABLISHED])
        .owning(&[udp4_key()])
        .run();
}

/// A TCP flow with the same addresses and ports does not own a UDP datagram.
#[test]
fn udp_is_not_owned_by_tcp_flow() {
    let input = one_hop4(&udp4().build()).build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE])
        .owning(&[tcp4_key()])
        .run();
}

// =============================================================================================
// ICMPv4
// =============================================================================================

/// Echo request: accepted.
#[test]
fn icmpv4_echo_request_is_accepted() {
    let inner = Ipv4Packet::new(CLIENT4, VIP4, L4::icmpv4_echo_request()).build();
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, ECHO_REQUEST]).run();
}

/// Echo reply: drop, icmp_echo_replies.
#[test]
fn icmpv4_echo_reply_drops_echo_replies() {
    let inner = Ipv4Packet::new(CLIENT4, VIP4, L4::icmpv4_echo_reply()).build();
    let input = one_hop4(&inner).build();
    Fixture::drop(input, &[L3_V4, ECHO_REPLIES]).run();
}

/// Port unreachable (3/3): drop, unwanted_icmp.
#[test]
fn icmpv4_port_unreachable_drops_unwanted_icmp() {
    let inner = icmp4(L4::icmpv4(3, 3, &our_udp4()));
    let input = one_hop4(&inner).build();
    Fixture::drop(input, &[L3_V4, UNWANTED_ICMP])
        .owning(&[udp4_key()])
        .run();
}

/// Time exceeded (11/0): drop, unwanted_icmp.
#[test]
fn icmpv4_time_exceeded_drops_unwanted_icmp() {
    let inner = icmp4(L4::icmpv4(11, 0, &our_tcp4()));
    let input = one_hop4(&inner).build();
    Fixture::drop(input, &[L3_V4, UNWANTED_ICMP])
        .owning(&[tcp4_key()])
        .run();
}

/// Fragmentation needed quoting our TCP segment (reversed tuple owned): accepted (established);
/// the L4 counters are not bumped on the ICMP path.
#[test]
fn icmpv4_frag_needed_for_known_tcp_is_accepted() {
    let inner = icmp4(L4::icmpv4_frag_needed(1400, &our_tcp4()));
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, ESTABLISHED])
        .owning(&[tcp4_key()])
        .run();
}

/// Fragmentation needed quoting our UDP datagram: accepted (established).
#[test]
fn icmpv4_frag_needed_for_known_udp_is_accepted() {
    let inner = icmp4(L4::icmpv4_frag_needed(1400, &our_udp4()));
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, ESTABLISHED])
        .owning(&[udp4_key()])
        .run();
}

/// Fragmentation needed for an unknown port: forwarded.
#[test]
fn icmpv4_frag_needed_for_unknown_port_is_forwarded() {
    let quoted =
        quote(&Ipv4Packet::new(VIP4, CLIENT4, L4::tcp(VIP_PORT, CLIENT_PORT + 1, ACK)).build());
    let inner = icmp4(L4::icmpv4_frag_needed(1400, &quoted));
    let input = one_hop4(&inner).build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, GUE])
        .owning(&[tcp4_key()])
        .run();
}

/// Fragmentation needed quoting the flow in the inbound direction (not reversed): forwarded.
#[test]
fn icmpv4_frag_needed_with_non_reversed_quote_is_forwarded() {
    let quoted = quote(&tcp4(ACK).build());
    let inner = icmp4(L4::icmpv4_frag_needed(1400, &quoted));
    let input = one_hop4(&inner).build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, GUE])
        .owning(&[tcp4_key()])
        .run();
}

/// Fragmentation needed for a listener's flow: forwarded, no SYN-cookie check on the ICMP path
/// (the test table would validate any cookie for this key).
#[test]
fn icmpv4_frag_needed_for_listener_flow_is_forwarded_without_cookie_check() {
    let inner = icmp4(L4::icmpv4_frag_needed(1400, &our_tcp4()));
    let input = one_hop4(&inner).build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, GUE])
        .cookie(tcp4_key(), None, None)
        .run();
}

/// Fragmentation needed quoting ICMP: malformed_icmp.
#[test]
fn icmpv4_frag_needed_quoting_icmp_drops_malformed_icmp() {
    let quoted = quote(&Ipv4Packet::new(VIP4, CLIENT4, L4::icmpv4_echo_reply()).build());
    let inner = icmp4(L4::icmpv4_frag_needed(1400, &quoted));
    let input = one_hop4(&inner).build();
    Fixture::drop(input, &[L3_V4, MALFORMED_ICMP]).run();
}

/// Fragmentation needed quoting only an IP header (no ports): malformed_icmp_pkt_too_big.
#[test]
fn icmpv4_frag_needed_without_ports_drops_malformed_icmp_pkt_too_big() {
    let quoted = patch::truncate(our_tcp4(), 20);
    let inner = icmp4(L4::icmpv4_frag_needed(1400, &quoted));
    let input = one_hop4(&inner).build();
    Fixture::drop(input, &[L3_V4, PKT_TOO_BIG])
        .owning(&[tcp4_key()])
        .run();
}

/// Fragmentation needed quoting an IP header and only 3 port bytes: malformed_icmp_pkt_too_big.
#[test]
fn icmpv4_frag_needed_with_3_port_bytes_drops_malformed_icmp_pkt_too_big() {
    let quoted = patch::truncate(our_tcp4(), 23);
    let inner = icmp4(L4::icmpv4_frag_needed(1400, &quoted));
    let input = one_hop4(&inner).build();
    Fixture::drop(input, &[L3_V4, PKT_TOO_BIG])
        .owning(&[tcp4_key()])
        .run();
}

/// Fragmentation needed with a quoted IHL 3: malformed_icmp_pkt_too_big.
#[test]
fn icmpv4_frag_needed_with_quoted_ihl_3_drops_malformed_icmp_pkt_too_big() {
    let quoted = patch::byte(our_tcp4(), 0, 0x43);
    let inner = icmp4(L4::icmpv4_frag_needed(1400, &quoted));
    let input = one_hop4(&inner).build();
    Fixture::drop(input, &[L3_V4, PKT_TOO_BIG])
        .owning(&[tcp4_key()])
        .run();
}

/// Fragmentation needed whose quoted options run past the end: malformed_icmp_pkt_too_big.
#[test]
fn icmpv4_frag_needed_with_quoted_options_past_end_drops_malformed_icmp_pkt_too_big() {
    let quoted = patch::byte(our_tcp4(), 0, 0x4f);
    let inner = icmp4(L4::icmpv4_frag_needed(1400, &quoted));
    let input = one_hop4(&inner).build();
    Fixture::drop(input, &[L3_V4, PKT_TOO_BIG])
        .owning(&[tcp4_key()])
        .run();
}

/// Fragmentation needed quoting a fragment (MF): still classified, accepted.
#[test]
fn icmpv4_frag_needed_quoting_a_fragment_is_still_classified() {
    let quoted = quote(
        &Ipv4Packet::new(VIP4, CLIENT4, L4::tcp(VIP_PORT, CLIENT_PORT, ACK))
            .more_fragments()
            .build(),
    );
    let inner = icmp4(L4::icmpv4_frag_needed(1400, &quoted));
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, ESTABLISHED])
        .owning(&[tcp4_key()])
        .run();
}

/// Fragmentation needed quoting a packet with a wrong version nibble: the version is not checked.
#[test]
fn icmpv4_frag_needed_quoted_version_is_not_checked() {
    let quoted = patch::byte(our_udp4(), 0, 0x65);
    let inner = icmp4(L4::icmpv4_frag_needed(1400, &quoted));
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, ESTABLISHED])
        .owning(&[udp4_key()])
        .run();
}

/// ICMP truncated (7 bytes): malformed_icmp.
#[test]
fn icmpv4_truncated_drops_malformed_icmp() {
    let inner = Ipv4Packet::new(CLIENT4, VIP4, L4::raw(1, &[8, 0, 0xf7, 0xff, 0, 0, 0])).build();
    let input = one_hop4(&inner).build();
    Fixture::drop(input, &[L3_V4, MALFORMED_ICMP]).run();
}

// =============================================================================================
// IPv6
// =============================================================================================

/// Known UDP over IPv6: accepted (established), EtherType 0x86DD.
#[test]
fn ipv6_known_udp_is_accepted() {
    let inner = udp6().build();
    let input = one_hop6(&inner).build();
    let output = decap6(&input, &inner);
    Fixture::accept(input, output, &[L3_V6, L4_UDP, ESTABLISHED])
        .owning(&[udp6_key()])
        .run();
}

/// A dual-stack (AF_INET6) socket connected to an IPv4 peer, as the kernel sees it: its lookups
/// by IPv4 find it, and so does a UDP lookup by IPv6 between the IPv4-mapped addresses
/// (`::ffff:a.b.c.d`), which matches the socket's mapped local and remote addresses. Its TCP
/// twin is hashed by its IPv4 addresses only, so an IPv6 established lookup misses it.
fn mapped(v4: Ipv4Addr) -> Ipv6Addr {
    v4.to_ipv6_mapped()
}

/// An IPv6 packet from the client to the service, both as IPv4-mapped addresses.
fn mapped6(l4: L4) -> Vec<u8> {
    Ipv6Packet::new(mapped(CLIENT4), mapped(VIP4), l4).build()
}

/// UDP over IPv6 between IPv4-mapped addresses, of a flow owned under its mapped key (a
/// connected dual-stack socket, as the socket dump reports it): accepted, as the kernel's UDP
/// lookup finds the socket.
#[test]
fn ipv6_udp_between_v4_mapped_addresses_is_accepted_when_the_mapped_flow_is_owned() {
    let inner = mapped6(L4::udp(CLIENT_PORT, VIP_PORT, b"hello"));
    let input = one_hop6(&inner).build();
    let output = decap6(&input, &inner);
    let key = FlowKey::v6(
        L4Proto::Udp,
        mapped(VIP4),
        VIP_PORT,
        mapped(CLIENT4),
        CLIENT_PORT,
    );
    Fixture::accept(input, output, &[L3_V6, L4_UDP, ESTABLISHED])
        .owning(&[key])
        .run();
}

/// The same datagram when only the IPv4 flow is owned (an AF_INET socket, which no IPv6 lookup
/// finds): forwarded. The IPv6 path never unmaps the addresses.
#[test]
fn ipv6_udp_between_v4_mapped_addresses_is_forwarded_when_only_the_ipv4_flow_is_owned() {
    let inner = mapped6(L4::udp(CLIENT_PORT, VIP_PORT, b"hello"));
    let input = one_hop6(&inner).build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V6, L4_UDP, GUE])
        .owning(&[udp4_key()])
        .run();
}

/// A TCP ACK over IPv6 between IPv4-mapped addresses of a connection the host holds as IPv4 (a
/// dual-stack socket's established connection is hashed by its IPv4 addresses): forwarded, as
/// the kernel's IPv6 established lookup misses it.
#[test]
fn ipv6_tcp_ack_between_v4_mapped_addresses_of_an_ipv4_connection_is_forwarded() {
    let inner = mapped6(L4::tcp(CLIENT_PORT, VIP_PORT, ACK));
    let input = one_hop6(&inner).build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V6, L4_TCP, GUE])
        .owning(&[tcp4_key()])
        .run();
}

/// IPv6 with no hops: last hop, EtherType becomes 0x86DD.
#[test]
fn ipv6_without_hops_gets_ethertype_ipv6() {
    let inner = udp6().build();
    let input = GueFrame::ipv6(inner.clone()).build();
    let output = decap6(&input, &inner);
    Fixture::accept(input, output, &[LAST_HOP]).run();
}

/// Unknown UDP over IPv6: forwarded.
#[test]
fn ipv6_unknown_udp_is_forwarded() {
    let input = one_hop6(&udp6().build()).build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V6, L4_UDP, GUE]).run();
}

/// ICMPv6 echo request: accepted.
#[test]
fn ipv6_echo_request_is_accepted() {
    let inner = Ipv6Packet::new(CLIENT6, VIP6, L4::icmpv6_echo_request()).build();
    let input = one_hop6(&inner).build();
    let output = decap6(&input, &inner);
    Fixture::accept(input, output, &[L3_V6, ECHO_REQUEST]).run();
}

/// ICMPv6 echo reply: drop, icmp_echo_replies.
#[test]
fn ipv6_echo_reply_drops_echo_replies() {
    let inner = Ipv6Packet::new(CLIENT6, VIP6, L4::icmpv6_echo_reply()).build();
    let input = one_hop6(&inner).build();
    Fixture::drop(input, &[L3_V6, ECHO_REPLIES]).run();
}

/// ICMPv6 type 1 (destination unreachable): unwanted_icmp.
#[test]
fn ipv6_icmp_type_1_drops_unwanted_icmp() {
    let inner = icmp6(L4::icmpv6(1, 4, &our_udp6()));
    let input = one_hop6(&inner).build();
    Fixture::drop(input, &[L3_V6, UNWANTED_ICMP])
        .owning(&[udp6_key()])
        .run();
}

/// ICMPv6 neighbour solicitation (135): unwanted_icmp.
#[test]
fn ipv6_neighbor_solicitation_drops_unwanted_icmp() {
    let inner = icmp6(L4::icmpv6(135, 0, &VIP6.octets()));
    let input = one_hop6(&inner).build();
    Fixture::drop(input, &[L3_V6, UNWANTED_ICMP]).run();
}

/// Packet Too Big quoting our UDP datagram: accepted (established).
#[test]
fn ipv6_packet_too_big_for_known_udp_is_accepted() {
    let inner = icmp6(L4::icmpv6_packet_too_big(1280, &our_udp6()));
    let input = one_hop6(&inner).build();
    let output = decap6(&input, &inner);
    Fixture::accept(input, output, &[L3_V6, ESTABLISHED])
        .owning(&[udp6_key()])
        .run();
}

/// Packet Too Big quoting our TCP segment: accepted (established).
#[test]
fn ipv6_packet_too_big_for_known_tcp_is_accepted() {
    let inner = icmp6(L4::icmpv6_packet_too_big(1280, &our_tcp6()));
    let input = one_hop6(&inner).build();
    let output = decap6(&input, &inner);
    Fixture::accept(input, output, &[L3_V6, ESTABLISHED])
        .owning(&[tcp6_key()])
        .run();
}

/// Packet Too Big for an unknown flow: forwarded.
#[test]
fn ipv6_packet_too_big_for_unknown_flow_is_forwarded() {
    let inner = icmp6(L4::icmpv6_packet_too_big(1280, &our_tcp6()));
    let input = one_hop6(&inner).build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V6, GUE]).run();
}

/// Packet Too Big quoting a packet with a Fragment header: fragmented_ip.
#[test]
fn ipv6_packet_too_big_quoting_fragment_header_drops_fragmented_ip() {
    let quoted = patch::truncate(
        Ipv6Packet::new(VIP6, CLIENT6, L4::udp(VIP_PORT, CLIENT_PORT, b"reply"))
            .ext(Ext::fragment(0, true, 9))
            .build(),
        56,
    );
    let inner = icmp6(L4::icmpv6_packet_too_big(1280, &quoted));
    let input = one_hop6(&inner).build();
    Fixture::drop(input, &[L3_V6, FRAGMENTED])
        .owning(&[udp6_key()])
        .run();
}

/// Packet Too Big quoting Hop-by-Hop, then our UDP datagram: accepted.
#[test]
fn ipv6_packet_too_big_quoting_hop_by_hop_then_known_udp_is_accepted() {
    let quoted = patch::truncate(
        Ipv6Packet::new(VIP6, CLIENT6, L4::udp(VIP_PORT, CLIENT_PORT, b"reply"))
            .ext(Ext::hop_by_hop())
            .build(),
        56,
    );
    let inner = icmp6(L4::icmpv6_packet_too_big(1280, &quoted));
    let input = one_hop6(&inner).build();
    let output = decap6(&input, &inner);
    Fixture::accept(input, output, &[L3_V6, ESTABLISHED])
        .owning(&[udp6_key()])
        .run();
}

/// Packet Too Big quoting a truncated IPv6 header (30 bytes): malformed_icmp_pkt_too_big.
#[test]
fn ipv6_packet_too_big_truncated_drops_malformed_icmp_pkt_too_big() {
    let quoted = patch::truncate(our_udp6(), 30);
    let inner = icmp6(L4::icmpv6_packet_too_big(1280, &quoted));
    let input = one_hop6(&inner).build();
    Fixture::drop(input, &[L3_V6, PKT_TOO_BIG])
        .owning(&[udp6_key()])
        .run();
}

/// Packet Too Big quoting an IPv6 header without ports: malformed_icmp_pkt_too_big.
#[test]
fn ipv6_packet_too_big_without_ports_drops_malformed_icmp_pkt_too_big() {
    let quoted = patch::truncate(our_udp6(), 40);
    let inner = icmp6(L4::icmpv6_packet_too_big(1280, &quoted));
    let input = one_hop6(&inner).build();
    Fixture::drop(input, &[L3_V6, PKT_TOO_BIG])
        .owning(&[udp6_key()])
        .run();
}

/// Packet Too Big quoting ICMPv6: malformed_icmp.
#[test]
fn ipv6_packet_too_big_quoting_icmpv6_drops_malformed_icmp() {
    let quoted = quote(&Ipv6Packet::new(VIP6, CLIENT6, L4::icmpv6_echo_reply()).build());
    let inner = icmp6(L4::icmpv6_packet_too_big(1280, &quoted));
    let input = one_hop6(&inner).build();
    Fixture::drop(input, &[L3_V6, MALFORMED_ICMP]).run();
}

/// ICMPv6 truncated (4 bytes): malformed_icmp.
#[test]
fn ipv6_icmpv6_truncated_drops_malformed_icmp() {
    let inner = Ipv6Packet::new(CLIENT6, VIP6, L4::raw(58, &[128, 0, 0, 0])).build();
    let input = one_hop6(&inner).build();
    Fixture::drop(input, &[L3_V6, MALFORMED_ICMP]).run();
}

/// Hop-by-Hop + Destination Options + known UDP: accepted.
#[test]
fn ipv6_hop_by_hop_and_destination_options_known_udp_is_accepted() {
    let inner = udp6()
        .ext(Ext::hop_by_hop())
        .ext(Ext::destination_options())
        .build();
    let input = one_hop6(&inner).build();
    let output = decap6(&input, &inner);
    Fixture::accept(input, output, &[L3_V6, L4_UDP, ESTABLISHED])
        .owning(&[udp6_key()])
        .run();
}

/// A Fragment header (first fragment): fragmented_ip.
#[test]
fn ipv6_fragment_header_drops_fragmented_ip() {
    let inner = udp6().ext(Ext::fragment(0, true, 1)).build();
    let input = one_hop6(&inner).build();
    Fixture::drop(input, &[L3_V6, FRAGMENTED])
        .owning(&[udp6_key()])
        .run();
}

fn five_extension_headers() -> Ipv6Packet {
    udp6()
        .ext(Ext::hop_by_hop())
        .ext(Ext::destination_options())
        .ext(Ext::routing())
        .ext(Ext::mobility())
        .ext(Ext::destination_options())
}

/// Five extension headers (Hop-by-Hop, Destination, Routing, Mobility, Destination): accepted.
#[test]
fn ipv6_five_extension_headers_are_accepted() {
    let inner = five_extension_headers().build();
    let input = one_hop6(&inner).build();
    let output = decap6(&input, &inner);
    Fixture::accept(input, output, &[L3_V6, L4_UDP, ESTABLISHED])
        .owning(&[udp6_key()])
        .run();
}

/// A sixth extension header: malformed_ip.
#[test]
fn ipv6_six_extension_headers_drop_malformed_ip() {
    let inner = five_extension_headers()
        .ext(Ext::destination_options())
        .build();
    let input = one_hop6(&inner).build();
    Fixture::drop(input, &[L3_V6, MALFORMED_IP])
        .owning(&[udp6_key()])
        .run();
}

/// An extension header running past the end: malformed_ip.
#[test]
fn ipv6_truncated_extension_header_drops_malformed_ip() {
    let inner = patch::truncate(udp6().ext(Ext::destination_options()).build(), 52);
    let input = one_hop6(&inner).build();
    Fixture::drop(input, &[L3_V6, MALFORMED_IP]).run();
}

/// Version field 4 in the IPv6 header: malformed_ip.
#[test]
fn ipv6_version_4_drops_malformed_ip() {
    let inner = patch::byte(udp6().build(), 0, 0x40);
    let input = one_hop6(&inner).build();
    Fixture::drop(input, &[L3_V6, MALFORMED_IP])
        .owning(&[udp6_key()])
        .run();
}

/// Next header 59 (No Next Header): unknown_l4_proto.
#[test]
fn ipv6_no_next_header_drops_unknown_l4_proto() {
    let inner = Ipv6Packet::new(CLIENT6, VIP6, L4::raw(59, &[])).build();
    let input = one_hop6(&inner).build();
    Fixture::drop(input, &[L3_V6, UNKNOWN_L4]).run();
}

/// Next header 50 (ESP) is treated as an unknown upper protocol.
#[test]
fn ipv6_esp_drops_unknown_l4_proto() {
    let inner = Ipv6Packet::new(CLIENT6, VIP6, L4::raw(50, &[0; 16])).build();
    let input = one_hop6(&inner).build();
    Fixture::drop(input, &[L3_V6, UNKNOWN_L4]).run();
}

/// IPv6 header truncated (30 bytes): malformed_ip.
#[test]
fn ipv6_header_truncated_drops_malformed_ip() {
    let inner = patch::truncate(udp6().build(), 30);
    let input = one_hop6(&inner).build();
    Fixture::drop(input, &[L3_V6, MALFORMED_IP]).run();
}

/// IPv6 UDP header truncated: malformed_udp.
#[test]
fn ipv6_udp_truncated_drops_malformed_udp() {
    let inner = patch::truncate(udp6().build(), 44);
    let input = one_hop6(&inner).build();
    Fixture::drop(input, &[L3_V6, L4_UDP, MALFORMED_UDP]).run();
}

// =============================================================================================
// GRE last hop
// =============================================================================================

/// IPv4, (0,1) with last_hop_gre: 82 -> 66 bytes, protocol 47, saddr 127.0.0.1, daddr hop,
/// GRE `0000 0800`, inner TTL 9 -> 8 with its checksum fixed.
#[test]
fn gre_ipv4_last_hop_converts_82_to_66_bytes() {
    let inner = Ipv4Packet::new(CLIENT4, VIP4, L4::udp(CLIENT_PORT, VIP_PORT, b""))
        .ttl(9)
        .build();
    let input = one_hop4(&inner).last_hop_gre().build();
    assert_eq!(input.len(), 82);
    let output = expect::gre(&input, 1, ENCAP, HOP1);
    assert_eq!(output.len(), 66);
    assert_eq!(&output[34..38], &[0, 0, 0x08, 0x00]);
    assert_eq!(output[38 + 8], 8);
    assert!(checksum::ipv4_header_ok(&output[14..34]));
    assert!(checksum::ipv4_header_ok(&output[38..58]));
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GRE]).run();
}

/// IPv6, (0,1): GRE `0000 86dd`, hop limit 9 -> 8.
#[test]
fn gre_ipv6_last_hop_uses_protocol_86dd() {
    let inner = udp6().hop_limit(9).build();
    let input = one_hop6(&inner).last_hop_gre().build();
    let output = expect::gre(&input, 1, ENCAP, HOP1);
    assert_eq!(&output[34..38], &[0, 0, 0x86, 0xdd]);
    assert_eq!(output[38 + 7], 8);
    Fixture::forward(input, output, &[L3_V6, L4_UDP, GRE]).run();
}

/// Inner TTL 0: forwarded_gre and redirect_loop both bumped, drop.
#[test]
fn gre_inner_ttl_0_drops_redirect_loop() {
    let input = one_hop4(&udp4().ttl(0).build()).last_hop_gre().build();
    Fixture::drop(input, &[L3_V4, L4_UDP, GRE, REDIRECT_LOOP]).run();
}

/// Inner hop limit 0: forwarded_gre and redirect_loop, drop.
#[test]
fn gre_inner_hop_limit_0_drops_redirect_loop() {
    let input = one_hop6(&udp6().hop_limit(0).build())
        .last_hop_gre()
        .build();
    Fixture::drop(input, &[L3_V6, L4_UDP, GRE, REDIRECT_LOOP]).run();
}

/// Inner TTL 1: forwarded with TTL 0.
#[test]
fn gre_inner_ttl_1_forwards_with_ttl_0() {
    let input = one_hop4(&udp4().ttl(1).build()).last_hop_gre().build();
    let output = expect::gre(&input, 1, ENCAP, HOP1);
    assert_eq!(output[38 + 8], 0);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GRE]).run();
}

/// (0,2) with the flag: not the last hop, ordinary GUE forward.
#[test]
fn gre_flag_with_0_of_2_is_an_ordinary_gue_forward() {
    let input = GueFrame::ipv4(udp4().build())
        .hops(&[HOP1, HOP2])
        .last_hop_gre()
        .build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE]).run();
}

/// (1,2) with the flag: GRE to hops[1], 86 -> 66 bytes.
#[test]
fn gre_flag_with_1_of_2_converts_86_to_66_bytes() {
    let inner = Ipv4Packet::new(CLIENT4, VIP4, L4::udp(CLIENT_PORT, VIP_PORT, b"")).build();
    let input = GueFrame::ipv4(inner)
        .hops(&[HOP1, HOP2])
        .next_hop(1)
        .last_hop_gre()
        .build();
    assert_eq!(input.len(), 86);
    let output = expect::gre(&input, 2, ENCAP, HOP2);
    assert_eq!(output.len(), 66);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GRE]).run();
}

/// SYN with forward_syn and last_hop_gre: GRE.
#[test]
fn gre_syn_with_forward_syn_converts() {
    let input = one_hop4(&tcp4(SYN).build())
        .forward_syn()
        .last_hop_gre()
        .build();
    let output = expect::gre(&input, 1, ENCAP, HOP1);
    Fixture::forward(input, output, &[L3_V4, L4_TCP, GRE]).run();
}

/// Deviation: the GRE tot_len comes from the real frame length; an outer tot_len of 0 does not
/// give cls_redirect's 0xFFF0.
#[test]
fn deviation_gre_tot_len_from_frame_length() {
    let input = GueFrame {
        ip_tot_len: Some(0),
        ..one_hop4(&tcp4(SYN).build()).forward_syn().last_hop_gre()
    }
    .build();
    let output = expect::gre(&input, 1, ENCAP, HOP1);
    assert_eq!(
        usize::from(u16::from_be_bytes([output[16], output[17]])),
        output.len() - 14
    );
    Fixture::forward(input, output, &[L3_V4, L4_TCP, GRE]).run();
}

/// A known flow with last_hop_gre: accepted.
#[test]
fn gre_flag_known_flow_is_accepted() {
    let inner = udp4().build();
    let input = one_hop4(&inner).last_hop_gre().build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, L4_UDP, ESTABLISHED])
        .owning(&[udp4_key()])
        .run();
}

/// A one-hop GRE input whose GRE output is `output_len` bytes.
fn gre_input_for_output_len(output_len: usize) -> Vec<u8> {
    // input = 54 + 28 + payload, output = input - 16.
    let payload = vec![0x5a; output_len + 16 - 54 - 28];
    let inner = Ipv4Packet::new(CLIENT4, VIP4, L4::udp(CLIENT_PORT, VIP_PORT, &payload)).build();
    let input = one_hop4(&inner).last_hop_gre().build();
    assert_eq!(input.len(), output_len + 16);
    input
}

/// MTU 100: a 182-byte frame's GRE conversion (166 bytes) is dropped: mtu_violate.
#[test]
fn gre_mtu_100_drops_182_byte_frame() {
    let input = gre_input_for_output_len(166);
    assert_eq!(input.len(), 182);
    Fixture::drop(input, &[L3_V4, L4_UDP, GRE, MTU_VIOLATE])
        .config(config_mtu(100))
        .run();
}

/// MTU 100: the GUE forward of the same 182-byte frame is not checked.
#[test]
fn gue_forward_is_not_mtu_checked() {
    let mut frame = GueFrame::ipv4(gre_input_for_output_len(166)[54..].to_vec()).hops(&[HOP1]);
    frame.last_hop_gre = false;
    let input = frame.build();
    assert_eq!(input.len(), 182);
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE])
        .config(config_mtu(100))
        .run();
}

/// Deviation (boundary): MTU 100, a resulting frame of 114 bytes (= MTU + 14) is sent.
#[test]
fn deviation_gre_mtu_boundary_114_bytes_is_forwarded() {
    let input = gre_input_for_output_len(114);
    let output = expect::gre(&input, 1, ENCAP, HOP1);
    assert_eq!(output.len(), 114);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GRE])
        .config(config_mtu(100))
        .run();
}

/// Deviation (boundary): MTU 100, a resulting frame of 115 bytes is dropped.
#[test]
fn deviation_gre_mtu_boundary_115_bytes_drops_mtu_violate() {
    let input = gre_input_for_output_len(115);
    Fixture::drop(input, &[L3_V4, L4_UDP, GRE, MTU_VIOLATE])
        .config(config_mtu(100))
        .run();
}

// =============================================================================================
// SYN cookies
// =============================================================================================

fn cookie_ack4(flags: u8, ack: u32) -> Vec<u8> {
    Ipv4Packet::new(
        CLIENT4,
        VIP4,
        L4::tcp_seq(CLIENT_PORT, VIP_PORT, flags, SEQ, ack),
    )
    .build()
}

fn cookie_ack6(flags: u8, ack: u32) -> Vec<u8> {
    Ipv6Packet::new(
        CLIENT6,
        VIP6,
        L4::tcp_seq(CLIENT_PORT, VIP_PORT, flags, SEQ, ack),
    )
    .build()
}

/// A valid cookie ACK (IPv4): accepted (syn_cookies); seq and ack are passed as on the wire.
#[test]
fn syncookie_valid_ack_v4_is_accepted() {
    let inner = cookie_ack4(ACK, COOKIE);
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, L4_TCP, SYN_COOKIES])
        .cookie(tcp4_key(), Some(SEQ), Some(COOKIE))
        .run();
}

/// A valid cookie ACK (IPv6): accepted (syn_cookies).
#[test]
fn syncookie_valid_ack_v6_is_accepted() {
    let inner = cookie_ack6(ACK, COOKIE);
    let input = one_hop6(&inner).build();
    let output = decap6(&input, &inner);
    Fixture::accept(input, output, &[L3_V6, L4_TCP, SYN_COOKIES])
        .cookie(tcp6_key(), Some(SEQ), Some(COOKIE))
        .run();
}

/// A valid cookie ACK with doff 0: accepted (doff is not validated).
#[test]
fn syncookie_with_doff_0_is_accepted() {
    let inner = patch::byte(cookie_ack4(ACK, COOKIE), 20 + 12, 0);
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, L4_TCP, SYN_COOKIES])
        .cookie(tcp4_key(), Some(SEQ), Some(COOKIE))
        .run();
}

/// A valid cookie ACK with PSH: accepted.
#[test]
fn syncookie_with_psh_is_accepted() {
    let inner = cookie_ack4(ACK | PSH, COOKIE);
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, L4_TCP, SYN_COOKIES])
        .cookie(tcp4_key(), Some(SEQ), Some(COOKIE))
        .run();
}

/// A valid cookie ACK with RST: forwarded (the cookie check needs RST clear).
#[test]
fn syncookie_with_rst_is_forwarded() {
    let input = one_hop4(&cookie_ack4(ACK | RST, COOKIE)).build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, L4_TCP, GUE])
        .cookie(tcp4_key(), Some(SEQ), Some(COOKIE))
        .run();
}

/// Without ACK there is no cookie to check: forwarded even if the listener would say yes.
#[test]
fn syncookie_requires_ack() {
    let input = one_hop4(&cookie_ack4(PSH, COOKIE)).build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, L4_TCP, GUE])
        .cookie(tcp4_key(), None, None)
        .run();
}

/// An IPv6 ACK carrying cookie + 6: forwarded.
#[test]
fn syncookie_wrong_cookie_v6_is_forwarded() {
    let input = one_hop6(&cookie_ack6(ACK, COOKIE + 6)).build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V6, L4_TCP, GUE])
        .cookie(tcp6_key(), Some(SEQ), Some(COOKIE))
        .run();
}

/// An owned flow is established; the cookie check is only for flows nobody owns.
#[test]
fn syncookie_owned_flow_is_established() {
    let inner = cookie_ack4(ACK, COOKIE);
    let input = one_hop4(&inner).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, L4_TCP, ESTABLISHED])
        .owning(&[tcp4_key()])
        .cookie(tcp4_key(), None, None)
        .run();
}

// =============================================================================================
// chance's deviations (docs/compatibility.md)
// =============================================================================================

/// Deviation: a non-zero (valid) outer UDP checksum is updated for the address change and stays
/// valid (checked by a full recompute over pseudo-header + UDP + payload).
#[test]
fn deviation_gue_forward_updates_nonzero_udp_checksum() {
    let input = GueFrame {
        udp_checksum: Checksum::Valid,
        ..one_hop4(&udp4().build())
    }
    .build();
    assert!(checksum::outer_udp_ok(&input));
    let output = fwd(&input, HOP1, 1);
    assert!(checksum::outer_udp_ok(&output));
    assert_ne!(&output[40..42], &input[40..42]);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE]).run();
}

/// Deviation (twin): the same over a two-hop list with an odd-length inner packet.
#[test]
fn deviation_gue_forward_updates_nonzero_udp_checksum_second_hop() {
    let inner = Ipv4Packet::new(CLIENT4, VIP4, L4::udp(CLIENT_PORT, VIP_PORT, b"odd")).build();
    let input = GueFrame {
        udp_checksum: Checksum::Valid,
        saddr: Ipv4Addr::new(10, 20, 30, 40),
        ..GueFrame::ipv4(inner).hops(&[HOP1, HOP2]).next_hop(1)
    }
    .build();
    let output = fwd(&input, HOP2, 2);
    assert!(checksum::outer_udp_ok(&output));
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE]).run();
}

/// Deviation: the UDP checksum also stays valid when self hops are skipped (next_hop 0 -> 2).
#[test]
fn deviation_gue_forward_updates_nonzero_udp_checksum_after_self_hop_skip() {
    let input = GueFrame {
        udp_checksum: Checksum::Valid,
        ..GueFrame::ipv4(udp4().build()).hops(&[ENCAP, HOP2])
    }
    .build();
    let output = fwd(&input, HOP2, 2);
    assert!(checksum::outer_udp_ok(&output));
    Fixture::forward(input, output, &[SKIPPED_SELF, L3_V4, L4_UDP, GUE]).run();
}

/// Deviation: a zero UDP checksum stays zero.
#[test]
fn deviation_gue_forward_keeps_zero_udp_checksum() {
    let input = one_hop4(&udp4().build()).build();
    let output = fwd(&input, HOP1, 1);
    assert_eq!(&output[40..42], &[0, 0]);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE]).run();
}

/// Deviation: hops [self, X], (0,2): self is skipped in place, forward to X with next_hop 2.
#[test]
fn deviation_self_hop_is_skipped() {
    let input = GueFrame::ipv4(udp4().build()).hops(&[ENCAP, HOP2]).build();
    let output = fwd(&input, HOP2, 2);
    Fixture::forward(input, output, &[SKIPPED_SELF, L3_V4, L4_UDP, GUE]).run();
}

/// Deviation: two self hops in a row are both skipped, counted twice.
#[test]
fn deviation_two_self_hops_are_skipped() {
    let input = GueFrame::ipv4(udp4().build())
        .hops(&[ENCAP, ENCAP, HOP3])
        .build();
    let output = fwd(&input, HOP3, 3);
    Fixture::forward(
        input,
        output,
        &[SKIPPED_SELF, SKIPPED_SELF, L3_V4, L4_UDP, GUE],
    )
    .run();
}

/// Deviation: skips that reach hop_count make it the last hop: accepted, even for a flow nobody
/// owns (the inner packet is not inspected).
#[test]
fn deviation_self_hop_reaching_hop_count_is_last_hop() {
    let inner = udp4().build();
    let input = GueFrame::ipv4(inner.clone())
        .hops(&[HOP1, ENCAP])
        .next_hop(1)
        .build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[SKIPPED_SELF, LAST_HOP]).run();
}

/// Deviation: the GRE last-hop test uses the index of the hop actually chosen: hops [self, X],
/// (0,2) with last_hop_gre -> X is hops[1] == hop_count - 1 -> GRE to X.
#[test]
fn deviation_self_hop_skip_then_gre_uses_chosen_hop_index() {
    let input = GueFrame::ipv4(udp4().build())
        .hops(&[ENCAP, HOP2])
        .last_hop_gre()
        .build();
    let output = expect::gre(&input, 2, ENCAP, HOP2);
    Fixture::forward(input, output, &[SKIPPED_SELF, L3_V4, L4_UDP, GRE]).run();
}

/// Deviation: hops [self, X, Y], (0,3) with last_hop_gre: X is not the last entry: GUE to X.
#[test]
fn deviation_self_hop_skip_before_non_final_hop_stays_gue() {
    let input = GueFrame::ipv4(udp4().build())
        .hops(&[ENCAP, HOP2, HOP3])
        .last_hop_gre()
        .build();
    let output = fwd(&input, HOP2, 2);
    Fixture::forward(input, output, &[SKIPPED_SELF, L3_V4, L4_UDP, GUE]).run();
}

fn two_addresses() -> EngineConfig {
    EngineConfig::new(&[ENCAP, ENCAP2], PORT, 1500).unwrap()
}

/// Deviation: a hop naming the host's second encapsulation address is skipped too.
#[test]
fn deviation_self_hop_matches_any_local_address() {
    let input = GueFrame::ipv4(udp4().build()).hops(&[ENCAP2, HOP2]).build();
    let output = fwd(&input, HOP2, 2);
    Fixture::forward(input, output, &[SKIPPED_SELF, L3_V4, L4_UDP, GUE])
        .config(two_addresses())
        .run();
}

/// Deviation: traffic to the second encapsulation address is processed; the forward's new saddr
/// is the address the packet was sent to.
#[test]
fn deviation_second_encapsulation_address_is_processed() {
    let input = GueFrame {
        daddr: ENCAP2,
        ..one_hop4(&udp4().build())
    }
    .build();
    let output = expect::gue_forward(&input, ENCAP2, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE])
        .config(two_addresses())
        .run();
}

/// Deviation: the first address still works with two configured.
#[test]
fn deviation_first_of_two_encapsulation_addresses_is_processed() {
    let inner = udp4().build();
    let input = GueFrame::ipv4(inner.clone()).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[LAST_HOP])
        .config(two_addresses())
        .run();
}

/// Deviation: the port is configurable (GLB's 19523).
#[test]
fn deviation_configurable_port_19523_is_processed() {
    let input = GueFrame {
        udp_dport: 19523,
        ..one_hop4(&udp4().build())
    }
    .build();
    let output = fwd(&input, HOP1, 1);
    Fixture::forward(input, output, &[L3_V4, L4_UDP, GUE])
        .config(EngineConfig::new(&[ENCAP], 19523, 1500).unwrap())
        .run();
}

/// Deviation: with port 19523 configured, port 1234 is not ours.
#[test]
fn deviation_configurable_port_other_port_passes() {
    let input = one_hop4(&udp4().build()).build();
    Fixture::pass(input)
        .config(EngineConfig::new(&[ENCAP], 19523, 1500).unwrap())
        .run();
}

/// Deviation: outer version 6 with IHL 5 is not ours: pass (cls_redirect accepted it).
#[test]
fn deviation_outer_version_6_passes() {
    let input = GueFrame {
        ip_version: 6,
        ..GueFrame::ipv4(udp4().build())
    }
    .build();
    Fixture::pass(input).run();
}

/// Deviation: outer version 0 with IHL 5: pass.
#[test]
fn deviation_outer_version_0_passes() {
    let input = GueFrame {
        ip_version: 0,
        ..GueFrame::ipv4(udp4().build())
    }
    .build();
    Fixture::pass(input).run();
}

const PADDING: [u8; 6] = [0xee; 6];

/// Deviation: the last-hop decap trims Ethernet padding after the inner IPv4 packet.
#[test]
fn deviation_decap_trims_to_inner_ipv4_tot_len() {
    let inner = udp4().build();
    let input = GueFrame::ipv4(patch::append(inner.clone(), &PADDING)).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[LAST_HOP]).run();
}

/// Deviation: an established-flow decap trims too.
#[test]
fn deviation_decap_trims_after_classification() {
    let inner = udp4().build();
    let input = one_hop4(&patch::append(inner.clone(), &PADDING)).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[L3_V4, L4_UDP, ESTABLISHED])
        .owning(&[udp4_key()])
        .run();
}

/// Deviation: the decap trims to 40 + payload_len for inner IPv6.
#[test]
fn deviation_decap_trims_to_inner_ipv6_length() {
    let inner = udp6().build();
    let input = GueFrame::ipv6(patch::append(inner.clone(), &PADDING)).build();
    let output = decap6(&input, &inner);
    Fixture::accept(input, output, &[LAST_HOP]).run();
}

/// Deviation: inner tot_len 0 (as in the selftest) is not a valid length: trailing bytes kept.
#[test]
fn deviation_decap_keeps_trailing_bytes_when_tot_len_is_0() {
    let inner = patch::append(patch::be16(udp4().build(), 2, 0), &PADDING);
    let input = GueFrame::ipv4(inner.clone()).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[LAST_HOP]).run();
}

/// Deviation: inner tot_len 19 (< 20) is not valid: trailing bytes kept.
#[test]
fn deviation_decap_keeps_trailing_bytes_when_tot_len_below_20() {
    let inner = patch::append(patch::be16(udp4().build(), 2, 19), &PADDING);
    let input = GueFrame::ipv4(inner.clone()).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[LAST_HOP]).run();
}

/// Deviation: inner tot_len beyond the available bytes: nothing trimmed.
#[test]
fn deviation_decap_keeps_trailing_bytes_when_tot_len_exceeds_frame() {
    let built = udp4().build();
    let len = built.len() as u16;
    let inner = patch::append(patch::be16(built, 2, len + 100), &PADDING);
    let input = GueFrame::ipv4(inner.clone()).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[LAST_HOP]).run();
}

/// Deviation: inner tot_len equal to the available bytes: nothing to trim.
#[test]
fn deviation_decap_tot_len_equal_to_available_keeps_everything() {
    let inner = udp4().build();
    let input = GueFrame::ipv4(inner.clone()).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[LAST_HOP]).run();
}

/// Deviation: inner IPv6 payload_len beyond the available bytes: nothing trimmed.
#[test]
fn deviation_decap_keeps_trailing_bytes_when_ipv6_payload_len_exceeds_frame() {
    let inner = patch::append(patch::be16(udp6().build(), 4, 1000), &PADDING);
    let input = GueFrame::ipv6(inner.clone()).build();
    let output = decap6(&input, &inner);
    Fixture::accept(input, output, &[LAST_HOP]).run();
}

/// Deviation, and the selftest's IPv6 cases (74 / 62 bytes out): an IPv6 payload length of
/// 0 does not give the packet's length (RFC 2675 uses it for jumbograms), so nothing is trimmed.
#[test]
fn deviation_decap_keeps_bytes_after_ipv6_payload_len_0() {
    let inner = patch::be16(udp6().build(), 4, 0);
    let input = GueFrame::ipv6(inner.clone()).build();
    let output = decap6(&input, &inner);
    Fixture::accept(input, output, &[LAST_HOP]).run();
}

/// Deviation: plain IPv4-in-IPv4 to an encapsulation address is decapsulated (accept only,
/// whoever owns the flow).
#[test]
fn deviation_ipip_is_decapsulated() {
    let inner = udp4().build();
    let input = IpipFrame::ipv4(inner.clone()).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[IP_IN_IP]).run();
}

/// Deviation: IPv6-in-IPv4 (protocol 41) is decapsulated with EtherType 0x86DD.
#[test]
fn deviation_ip6ip_is_decapsulated_with_ethertype_ipv6() {
    let inner = tcp6(SYN).build();
    let input = IpipFrame::ipv6(inner.clone()).build();
    let output = decap6(&input, &inner);
    Fixture::accept(input, output, &[IP_IN_IP]).run();
}

/// Deviation: an IP-in-IP outer fragment: drop, fragmented_ip.
#[test]
fn deviation_ipip_outer_fragment_drops_fragmented_ip() {
    let input = IpipFrame {
        ip_mf: true,
        ..IpipFrame::ipv4(udp4().build())
    }
    .build();
    Fixture::drop(input, &[FRAGMENTED]).run();
}

/// Deviation: IP-in-IP with a non-zero fragment offset: drop, fragmented_ip.
#[test]
fn deviation_ipip_outer_fragment_offset_drops_fragmented_ip() {
    let input = IpipFrame {
        ip_frag_offset: 3,
        ..IpipFrame::ipv6(udp6().build())
    }
    .build();
    Fixture::drop(input, &[FRAGMENTED]).run();
}

/// Deviation: IP-in-IP leaving fewer than 20 inner bytes: drop, decap_too_short. As on the last-hop
/// path the accept counter is bumped at the decision, before the decap fails.
#[test]
fn deviation_ipip_with_19_inner_bytes_drops_decap_too_short() {
    let input = IpipFrame::ipv4(patch::truncate(udp4().build(), 19)).build();
    assert_eq!(input.len(), 53);
    Fixture::drop(input, &[IP_IN_IP, TOO_SHORT]).run();
}

/// Deviation: IP-in-IP to an address that is not an encapsulation address: pass.
#[test]
fn deviation_ipip_to_other_address_passes() {
    let input = IpipFrame {
        daddr: Ipv4Addr::new(127, 0, 0, 2),
        ..IpipFrame::ipv4(udp4().build())
    }
    .build();
    Fixture::pass(input).run();
}

/// Deviation: IP-in-IP decapsulation trims trailing bytes like any decapsulation.
#[test]
fn deviation_ipip_decap_trims_to_inner_length() {
    let inner = udp4().build();
    let input = IpipFrame::ipv4(patch::append(inner.clone(), &PADDING)).build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[IP_IN_IP]).run();
}

/// Deviation: IP-in-IP to the second encapsulation address is decapsulated.
#[test]
fn deviation_ipip_to_second_address_is_decapsulated() {
    let inner = udp4().build();
    let input = IpipFrame {
        daddr: ENCAP2,
        ..IpipFrame::ipv4(inner.clone())
    }
    .build();
    let output = decap4(&input, &inner);
    Fixture::accept(input, output, &[IP_IN_IP])
        .config(two_addresses())
        .run();
}
