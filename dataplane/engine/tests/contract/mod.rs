//! The engine's contract on arbitrary input, checked by the fuzz target (`fuzz/`) and by the
//! property tests (`properties.rs`): one source file, included by both.

use chance_engine::wire::checksum;
use chance_engine::{Counter, Engine, EngineConfig, ExactMatchTable, FlowKey, L4Proto, Verdict};
use std::net::Ipv4Addr;

/// Engines under test: the kernel selftest's configuration, and a two-address production-like one
/// with a small MTU, so GRE's MTU check and the self-hop skip are reachable.
fn engines() -> [Engine; 2] {
    let selftest = EngineConfig::new(&[Ipv4Addr::LOCALHOST], 1234, 1500).expect("one address");
    let lab = EngineConfig::new(
        &[Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(192, 0, 2, 11)],
        19523,
        100,
    )
    .expect("two addresses");
    [Engine::new(selftest), Engine::new(lab)]
}

fn flows() -> ExactMatchTable {
    let lo = Ipv4Addr::LOCALHOST;
    [
        FlowKey::v4(L4Proto::Tcp, lo, 50000, lo, 41157),
        FlowKey::v4(L4Proto::Udp, lo, 50000, lo, 41157),
        FlowKey::v4(
            L4Proto::Tcp,
            Ipv4Addr::new(192, 0, 2, 10),
            443,
            Ipv4Addr::new(198, 51, 100, 7),
            51234,
        ),
    ]
    .into_iter()
    .collect()
}

fn ipv4_header_valid(frame: &[u8]) -> bool {
    frame.len() >= 34 && checksum::sum(&frame[14..34]) == 0xffff
}

/// Runs `data` through every engine and asserts the engine's contract: no panic, the result lies
/// inside the buffer, passes are untouched, rewrites only shrink, a GUE forward keeps a valid outer
/// checksum valid, and every frame is counted exactly once as processed.
pub fn check_frame(data: &[u8]) {
    let flows = flows();
    for (mut engine, mut reference) in engines().into_iter().zip(engines()) {
        let mut buf = data.to_vec();
        let outcome = engine.process(&mut buf, &flows);
        assert_eq!(engine.counters().get(Counter::ProcessedPacketsTotal), 1);
        // The fast path (taken where it plans) decides as the full procedure does.
        let mut full = data.to_vec();
        assert_eq!(reference.process_in_full(&mut full, &flows), outcome);
        assert_eq!(full, buf);
        assert_eq!(reference.counters(), engine.counters());
        assert!(outcome.frame.start <= outcome.frame.end && outcome.frame.end <= buf.len());
        let out = outcome.output(&buf);
        match outcome.verdict {
            Verdict::Pass => {
                assert_eq!(out, data);
                assert_eq!(outcome.reason, None);
            }
            Verdict::Drop => assert!(out.is_empty() && outcome.reason.is_some()),
            Verdict::Accept => {
                assert!(out.len() >= 34 && out.len() < data.len());
                assert_eq!(out[6..12], data[6..12], "decap keeps the MACs");
            }
            Verdict::Forward => {
                assert_eq!(out[..6], data[6..12], "forward swaps the MACs");
                if outcome.reason == Some(Counter::ForwardedPacketsTotalGue) {
                    assert_eq!(out.len(), data.len());
                    if ipv4_header_valid(data) {
                        assert!(ipv4_header_valid(out), "a valid outer checksum stays valid");
                    }
                } else {
                    assert!(out.len() < data.len() && ipv4_header_valid(out));
                }
            }
        }
    }
}
