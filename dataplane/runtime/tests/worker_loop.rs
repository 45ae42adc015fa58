//! The lcore loop on a real worker lcore, over net_ring ports: every verdict path, the host's
//! egress, counters read while the worker runs, refused transmissions, and no mbuf leaked.

mod common;

use chance_engine::table::{ConcurrentFlowTable, Source, TableConfig};
use chance_engine::{
    Counter, Engine, EngineConfig, ExactMatchTable, FlowKey, FlowTable, L4Proto, Verdict,
};
use chance_runtime::{launch, IdleExit, IdlePolicy, LcoreStats, Mbuf, PathCounter, Worker};
use chance_testkit::gue::{GueFrame, ENCAP_ADDR, ENCAP_PORT};
use chance_testkit::inner::{Ipv4Packet, Ipv6Packet, ACK, L4, RST, SYN};
use common::lab::Lab;
use common::{eal, worker_lcore, Lcore};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TEST: &str = "worker";

const HOP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 21);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

fn config() -> EngineConfig {
    EngineConfig::new(&[ENCAP_ADDR], ENCAP_PORT, 1500).expect("one address")
}

fn known_flow() -> FlowKey {
    FlowKey::v4(L4Proto::Tcp, VIP, 443, CLIENT, 40000)
}

fn tcp(sport: u16, flags: u8) -> Vec<u8> {
    Ipv4Packet::new(CLIENT, VIP, L4::tcp(sport, 443, flags)).build()
}

/// One frame per verdict path, as the NIC receives them.
fn nic_frames() -> Vec<(&'static str, Vec<u8>)> {
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xfe, 0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    let mut malformed = GueFrame::ipv4(tcp(40001, ACK)).hops(&[HOP]);
    malformed.gue_flags = 0x0100;
    let v6 = Ipv6Packet::new(
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7),
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 10),
        L4::udp(5000, 53, b"query"),
    )
    .build();
    vec![
        ("pass (ARP)", arp),
        ("accept, last hop", GueFrame::ipv4(tcp(40002, SYN)).build()),
        (
            "accept, established",
            GueFrame::ipv4(tcp(40000, ACK)).hops(&[HOP]).build(),
        ),
        (
            "forward, GUE",
            GueFrame::ipv4(tcp(40003, ACK)).hops(&[HOP]).build(),
        ),
        (
            "forward, GRE",
            GueFrame::ipv4(tcp(40004, ACK))
                .hops(&[HOP])
                .last_hop_gre()
                .build(),
        ),
        ("drop, malformed", malformed.build()),
        ("accept, IPv6 last hop", GueFrame::ipv6(v6).build()),
    ]
}

/// A frame the host sends: it must leave through the NIC untouched.
fn kernel_egress_frame() -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 0xfe, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00];
    frame.extend(Ipv4Packet::new(VIP, CLIENT, L4::tcp(443, 40000, ACK)).build());
    frame
}

/// chanced's worker over the lab's queue pairs.
fn lab_worker<F: FlowTable>(
    lab: &Lab,
    flows: F,
    stop: &Arc<AtomicBool>,
    idle: IdleExit,
) -> (Worker<F>, Arc<LcoreStats>) {
    let seat = lab.seat(stop, idle, IdlePolicy::Busy);
    let stats = Arc::clone(&seat.stats);
    (
        Worker::seated(Engine::new(config()), Arc::new(flows), seat),
        stats,
    )
}

#[test]
fn every_verdict_path_runs_on_a_worker_lcore_with_live_counters_and_no_leak() {
    eal(TEST, &[]);
    let _serial = worker_lcore();
    let _lcore = Lcore::register();
    let lab = Lab::new("vp", 2048);
    let frames = nic_frames();

    // What the engine makes of each frame, on its own: the worker must deliver exactly this.
    let flows: ExactMatchTable = [known_flow()].into_iter().collect();
    let mut reference = Engine::new(config());
    let (mut want_nic, mut want_kernel, mut drops) = (Vec::new(), Vec::new(), 0);
    for (name, frame) in &frames {
        let mut buf = frame.clone();
        let outcome = reference.process(&mut buf, &flows);
        let out = outcome.output(&buf).to_vec();
        match outcome.verdict {
            Verdict::Forward => want_nic.push(out),
            Verdict::Accept | Verdict::Pass => want_kernel.push(out),
            Verdict::Drop => drops += 1,
        }
        println!("{name}: {:?} {:?}", outcome.verdict, outcome.reason);
    }
    assert_eq!(
        (want_nic.len(), want_kernel.len(), drops),
        (2, 4, 1),
        "the fixture covers every path"
    );
    want_nic.push(kernel_egress_frame());

    for (_, frame) in &frames {
        lab.nic_rx
            .enqueue(Mbuf::from_slice(&lab.pool, frame).unwrap())
            .unwrap();
    }
    lab.kernel_rx
        .enqueue(Mbuf::from_slice(&lab.pool, &kernel_egress_frame()).unwrap())
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (worker, stats) = lab_worker(&lab, flows, &stop, IdleExit::Never);
    let handle = launch(1, move || worker.run(1)).unwrap();

    // The control side reads the counters while the worker keeps polling.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (engine, path) = loop {
        let (engine, path) = stats.snapshot();
        if path.get(PathCounter::NicTx) == 3 && path.get(PathCounter::KernelTx) == 4 {
            break (engine, path);
        }
        assert!(
            Instant::now() < deadline,
            "worker did not process the frames: {path:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(
        !handle.is_finished(),
        "counters are read while the worker runs"
    );
    assert_eq!(
        engine,
        *reference.counters(),
        "the worker's engine counted what the reference did"
    );
    assert_eq!(
        [
            PathCounter::NicRx,
            PathCounter::KernelRx,
            PathCounter::EngineDrops,
            PathCounter::NicTxFull,
            PathCounter::KernelTxFull
        ]
        .map(|c| path.get(c)),
        [7, 1, 1, 0, 0]
    );

    stop.store(true, Ordering::Relaxed);
    let report = handle.join().unwrap();
    assert_eq!(report.lcore, 1);
    assert_eq!(report.engine, engine);
    assert_eq!(report.engine.get(Counter::ForwardedPacketsTotalGre), 1);

    assert_eq!(
        Lab::drain(&lab.nic_tx),
        want_nic,
        "NIC output: forwards in order, then the host's egress"
    );
    assert_eq!(
        Lab::drain(&lab.kernel_tx),
        want_kernel,
        "kernel output: accepts and passes in order"
    );
    lab.close();
}

#[test]
fn refused_transmissions_are_freed_and_counted_and_nothing_leaks() {
    eal(TEST, &[]);
    let _serial = worker_lcore();
    let _lcore = Lcore::register();
    // A NIC TX ring of 64 slots that nobody drains: most forwards are refused.
    let lab = Lab::new("full", 64);
    let forward = GueFrame::ipv4(tcp(40003, ACK)).hops(&[HOP]).build();
    let last_hop = GueFrame::ipv4(tcp(40002, ACK)).build();
    for i in 0..1000 {
        let frame = if i % 2 == 0 { &forward } else { &last_hop };
        lab.nic_rx
            .enqueue(Mbuf::from_slice(&lab.pool, frame).unwrap())
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (worker, _stats) = lab_worker(
        &lab,
        ExactMatchTable::new(),
        &stop,
        IdleExit::AfterPolls(1000),
    );
    let report = launch(1, move || worker.run(1)).unwrap().join().unwrap();

    let path = &report.path;
    assert_eq!(path.get(PathCounter::NicRx), 1000);
    assert_eq!(path.get(PathCounter::KernelTx), 500);
    assert_eq!(
        path.get(PathCounter::NicTx),
        64,
        "the 64-slot ring (exact size) fills up"
    );
    assert_eq!(
        path.get(PathCounter::NicTxFull),
        500 - 64,
        "every refused packet is counted"
    );
    assert_eq!(report.engine.get(Counter::ProcessedPacketsTotal), 1000);
    assert_eq!(Lab::drain(&lab.nic_tx).len(), 64);
    assert_eq!(Lab::drain(&lab.kernel_tx).len(), 500);
    lab.close();
}

/// The worker looks a whole burst's flows up before it decides the first packet. A SYN accepted
/// earlier in the same burst still makes the handshake's ACK behind it ours (SYN learning), as if
/// every packet had been looked up on its own, and every lookup is counted once.
#[test]
fn a_burst_decides_as_packet_by_packet_even_when_a_syn_teaches_the_table_mid_burst() {
    eal(TEST, &[]);
    let _serial = worker_lcore();
    let _lcore = Lcore::register();
    let lab = Lab::new("burst", 2048);
    let learned = 40010;
    let frames = [
        GueFrame::ipv4(tcp(40000, ACK)).hops(&[HOP]).build(), // known: accepted
        GueFrame::ipv4(tcp(learned, ACK)).hops(&[HOP]).build(), // not yet known: forwarded
        GueFrame::ipv4(tcp(learned, SYN)).hops(&[HOP]).build(), // accepted, learned
        GueFrame::ipv4(tcp(learned, ACK)).hops(&[HOP]).build(), // now known: accepted
        GueFrame::ipv4(tcp(40011, ACK)).hops(&[HOP]).build(), // unknown: forwarded
    ];
    let table = ConcurrentFlowTable::new(TableConfig::new(4096));
    table.insert(known_flow(), Source::Static);

    // The reference: the same frames through `Engine::process`, one at a time.
    let reference_table = ConcurrentFlowTable::new(TableConfig::new(4096));
    reference_table.insert(known_flow(), Source::Static);
    let mut reference = Engine::new(config());
    let (mut want_nic, mut want_kernel) = (Vec::new(), Vec::new());
    for frame in &frames {
        let mut buf = frame.clone();
        let outcome = reference.process(&mut buf, &reference_table);
        match outcome.verdict {
            Verdict::Forward => want_nic.push(outcome.output(&buf).to_vec()),
            _ => want_kernel.push(outcome.output(&buf).to_vec()),
        }
    }
    assert_eq!((want_nic.len(), want_kernel.len()), (2, 3));

    // One RX burst: the ring holds all five before the worker starts.
    for frame in &frames {
        lab.nic_rx
            .enqueue(Mbuf::from_slice(&lab.pool, frame).unwrap())
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (worker, _stats) = lab_worker(&lab, table, &stop, IdleExit::AfterPolls(100));
    let report = launch(1, move || worker.run(1)).unwrap().join().unwrap();

    assert_eq!(report.engine, *reference.counters());
    assert_eq!(
        report.engine.get(Counter::AcceptedPacketsTotalEstablished),
        2,
        "the known flow and the one its SYN taught the table"
    );
    assert_eq!(
        [PathCounter::FlowHits, PathCounter::FlowMisses].map(|c| report.path.get(c)),
        [2, 2],
        "one lookup counted per ACK"
    );
    assert_eq!(Lab::drain(&lab.nic_tx), want_nic);
    assert_eq!(Lab::drain(&lab.kernel_tx), want_kernel);
    lab.close();
}

/// The host's egress teaches the table, a burst at a time: an ACK or a UDP reply an established
/// entry, a SYN-ACK an embryonic one, an RST nothing; a static flow stays static, and every frame
/// leaves through the NIC untouched and in order.
#[test]
fn the_host_s_egress_teaches_the_table_each_flow_it_proves_and_leaves_untouched() {
    eal(TEST, &[]);
    let _serial = worker_lcore();
    let _lcore = Lcore::register();
    let lab = Lab::new("egress", 2048);
    let egress = |l4: L4| {
        let mut frame = vec![0x02, 0, 0, 0, 0, 0xfe, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00];
        frame.extend(Ipv4Packet::new(VIP, CLIENT, l4).build());
        frame
    };
    let flow = |proto, port| FlowKey::v4(proto, VIP, 443, CLIENT, port);
    let frames = [
        egress(L4::tcp(443, 41000, ACK)),
        egress(L4::tcp(443, 41001, SYN | ACK)),
        egress(L4::tcp(443, 41002, RST | ACK)),
        egress(L4::udp(443, 41003, b"reply")),
        egress(L4::tcp(443, 41000, ACK)),
        egress(L4::tcp(443, 40000, ACK)),
    ];
    let table = Arc::new(ConcurrentFlowTable::new(TableConfig::new(4096)));
    table.insert(known_flow(), Source::Static);
    for frame in &frames {
        lab.kernel_rx
            .enqueue(Mbuf::from_slice(&lab.pool, frame).unwrap())
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let seat = lab.seat(&stop, IdleExit::AfterPolls(100), IdlePolicy::Busy);
    let worker =
        Worker::seated(Engine::new(config()), Arc::clone(&table), seat).learning_egress(true);
    let report = launch(1, move || worker.run(1)).unwrap().join().unwrap();

    let source = |key| table.get(&key).map(|entry| entry.source);
    assert_eq!(source(flow(L4Proto::Tcp, 41000)), Some(Source::Egress));
    assert_eq!(
        source(flow(L4Proto::Tcp, 41001)),
        Some(Source::Syn),
        "a handshake"
    );
    assert_eq!(
        source(flow(L4Proto::Tcp, 41002)),
        None,
        "an RST proves nothing"
    );
    assert_eq!(source(flow(L4Proto::Udp, 41003)), Some(Source::Egress));
    assert_eq!(
        source(known_flow()),
        Some(Source::Static),
        "never downgraded"
    );
    assert_eq!(table.len(), 4);
    assert_eq!(
        [PathCounter::KernelRx, PathCounter::NicTx].map(|c| report.path.get(c)),
        [6, 6]
    );
    assert_eq!(Lab::drain(&lab.nic_tx), frames);
    lab.close();
}
