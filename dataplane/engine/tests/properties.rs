//! Property tests: random and mutated frames never break the engine's contract, and the rewrites
//! keep lengths and checksums consistent for every well-formed GUE frame.

mod contract;

use chance_engine::wire::checksum as engine_checksum;
use chance_engine::{Counter, Engine, EngineConfig, ExactMatchTable, FlowKey, L4Proto, Verdict};
use chance_testkit::checksum;
use chance_testkit::expect;
use chance_testkit::gue::{Checksum, GueFrame, ENCAP_ADDR};
use chance_testkit::inner::{Ipv4Packet, Ipv6Packet, ACK, L4, PSH, SYN};
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);
const HOST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 10);

/// A well-formed GUE frame and the facts about it the properties need.
#[derive(Debug, Clone)]
struct Case {
    frame: Vec<u8>,
    inner: Vec<u8>,
    ipv6: bool,
    hops: Vec<Ipv4Addr>,
    next_hop: u8,
    owned: bool,
    key: FlowKey,
}

fn hop_list() -> impl Strategy<Value = Vec<Ipv4Addr>> {
    // Routable, non-zero hops that are not the host's own address.
    prop::collection::vec((1u8..=223, any::<u8>(), any::<u8>(), 1u8..=254), 0..=30).prop_map(
        |hops| {
            hops.into_iter()
                .map(|(a, b, c, d)| Ipv4Addr::new(a, b, c, d))
                .filter(|h| *h != ENCAP_ADDR)
                .collect()
        },
    )
}

fn case() -> impl Strategy<Value = Case> {
    (
        hop_list(),
        any::<prop::sample::Index>(),
        any::<bool>(),
        prop_oneof![Just(ACK), Just(ACK | PSH), Just(SYN)],
        any::<bool>(),
        any::<u16>(),
        prop::collection::vec(any::<u8>(), 0..64),
        (any::<bool>(), any::<bool>(), any::<bool>(), 1u8..=255),
    )
        .prop_map(
            |(hops, next, ipv6, flags, udp, port, payload, (owned, udp_csum, gre, ttl))| {
                let next_hop = next.index(hops.len() + 1) as u8;
                let sport = port.max(1);
                let l4 = if udp {
                    L4::udp(sport, 443, &payload)
                } else {
                    L4::tcp(sport, 443, flags)
                };
                let proto = if udp { L4Proto::Udp } else { L4Proto::Tcp };
                let (inner, key) = if ipv6 {
                    let p = Ipv6Packet::new(CLIENT6, HOST6, l4).hop_limit(ttl).build();
                    (p, FlowKey::v6(proto, HOST6, 443, CLIENT6, sport))
                } else {
                    let p = Ipv4Packet::new(CLIENT, HOST, l4).ttl(ttl).build();
                    (p, FlowKey::v4(proto, HOST, 443, CLIENT, sport))
                };
                let mut gue = if ipv6 {
                    GueFrame::ipv6(inner.clone())
                } else {
                    GueFrame::ipv4(inner.clone())
                };
                gue = gue.hops(&hops).next_hop(next_hop);
                if gre {
                    gue = gue.last_hop_gre();
                }
                if udp_csum {
                    gue.udp_checksum = Checksum::Valid;
                }
                Case {
                    frame: gue.build(),
                    inner,
                    ipv6,
                    hops,
                    next_hop,
                    owned,
                    key,
                }
            },
        )
}

fn engine() -> Engine {
    Engine::new(EngineConfig::new(&[ENCAP_ADDR], 1234, 9000).expect("one address"))
}

/// The properties' configuration: 2,000 cases, or `PROPTEST_CASES` (deploy/soak-properties.sh).
fn config() -> ProptestConfig {
    ProptestConfig::with_cases(chance_testkit::proptest_cases(2000))
}

/// Run alone with `--exact` by the next test: prints how many cases `config()` runs.
#[test]
fn case_count_probe() {
    let count = std::sync::atomic::AtomicU32::new(0);
    proptest::test_runner::TestRunner::new(config())
        .run(&any::<u8>(), |_| {
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    println!("cases={}", count.into_inner());
}

#[test]
fn proptest_cases_in_the_environment_sets_the_case_count() {
    for (env, expected) in [(Some("4321"), 4321), (None, 2000)] {
        let mut probe = std::process::Command::new(std::env::current_exe().unwrap());
        probe.args([
            "--exact",
            "case_count_probe",
            "--nocapture",
            "--test-threads=1",
        ]);
        match env {
            Some(cases) => probe.env("PROPTEST_CASES", cases),
            None => probe.env_remove("PROPTEST_CASES"),
        };
        let out = probe.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(
            stdout.contains(&format!("cases={expected}\n")),
            "PROPTEST_CASES={env:?}: {stdout}"
        );
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_never_break_the_contract(data in prop::collection::vec(any::<u8>(), 0..256)) {
        contract::check_frame(&data);
    }

    #[test]
    fn mutated_gue_frames_never_break_the_contract(
        case in case(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut frame = case.frame;
        for (at, value) in flips {
            let i = at.index(frame.len());
            frame[i] = value;
        }
        contract::check_frame(&frame);
        contract::check_frame(&frame[..cut.index(frame.len() + 1)]);
    }

    #[test]
    fn well_formed_gue_frames_are_rewritten_consistently(case in case()) {
        let flows: ExactMatchTable = if case.owned { [case.key].into_iter().collect() } else { ExactMatchTable::new() };
        let mut engine = engine();
        let mut buf = case.frame.clone();
        let outcome = engine.process(&mut buf, &flows);
        let out = outcome.output(&buf);
        let remaining = case.hops.len() - usize::from(case.next_hop);
        let ethertype = if case.ipv6 { 0x86dd } else { 0x0800 };
        match outcome.verdict {
            Verdict::Accept => {
                // Decapsulation leaves the Ethernet header and exactly the inner packet.
                prop_assert_eq!(out, &expect::decap(&case.frame, ethertype, &case.inner)[..]);
            }
            Verdict::Forward if outcome.reason == Some(Counter::ForwardedPacketsTotalGue) => {
                prop_assert!(remaining >= 1 && !case.owned);
                let hop = case.hops[usize::from(case.next_hop)];
                prop_assert_eq!(out, &expect::gue_forward(&case.frame, ENCAP_ADDR, hop, case.next_hop + 1)[..]);
                prop_assert!(checksum::ipv4_header_ok(&out[14..]));
                if case.frame[40..42] == [0, 0] {
                    prop_assert_eq!(&out[40..42], &[0, 0][..], "no UDP checksum stays none");
                } else {
                    prop_assert!(checksum::outer_udp_ok(out));
                }
            }
            Verdict::Forward => {
                prop_assert_eq!(outcome.reason, Some(Counter::ForwardedPacketsTotalGre));
                prop_assert_eq!(remaining, 1);
                let hop = case.hops[usize::from(case.next_hop)];
                prop_assert_eq!(out.len(), case.frame.len() - 12 - 4 * case.hops.len());
                prop_assert_eq!(out, &expect::gre(&case.frame, case.hops.len(), ENCAP_ADDR, hop)[..]);
                prop_assert!(checksum::ipv4_header_ok(&out[14..]));
            }
            verdict => prop_assert!(false, "unexpected {:?} for a well-formed frame", verdict),
        }
        prop_assert_eq!(out.len() == case.frame.len(), outcome.reason == Some(Counter::ForwardedPacketsTotalGue));
    }

    #[test]
    fn incremental_checksum_update_matches_a_full_recompute(
        mut header in prop::array::uniform20(any::<u8>()),
        new_addr in any::<u32>(),
        at in prop_oneof![Just(12usize), Just(16usize)],
    ) {
        header[10] = 0;
        header[11] = 0;
        let check = engine_checksum::checksum(&header);
        header[10..12].copy_from_slice(&check.to_be_bytes());
        let old = u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
        let updated = engine_checksum::update32(check, old, new_addr);
        header[at..at + 4].copy_from_slice(&new_addr.to_be_bytes());
        // One's-complement arithmetic has two zeros; either must verify.
        header[10..12].copy_from_slice(&updated.to_be_bytes());
        prop_assert_eq!(engine_checksum::sum(&header), 0xffff);
    }
}
