//! A real DPDK run without a NIC or hugepages: one ring port whose TX ring is its own RX ring,
//! so every frame sent comes straight back. pktgen's worker sends, receives and classifies: the
//! GUE frames come back unchanged ("looped", nothing decapsulated or forwarded), unstamped
//! frames put in the ring beforehand are "other", nothing is missing, the latency is measured
//! and no mbuf leaks. One EAL per test binary, so one test.

mod common;

use chance_pktgen::profile::{Profile, Sizes};
use chance_pktgen::report::ExpectBack;
use chance_pktgen::run::{RunSpec, RxPort};
use chance_runtime::mempool::DEFAULT_DATA_ROOM;
use chance_runtime::{ring_port, Mbuf, Mempool, Ring, SOCKET_ID_ANY};
use std::time::Duration;

#[test]
fn ring_loopback_counts_and_times_every_frame() {
    let eal = common::eal("ring", "0-1", 256);

    let ring = Ring::new("pktgen_loop", 4096, SOCKET_ID_ANY).unwrap();
    ring_port("loop", &ring, &ring).unwrap();
    // Foreign frames waiting in the ring: received (during the warm-up) as "other".
    let foreign = Mempool::new("foreign", 63, 0, DEFAULT_DATA_ROOM, SOCKET_ID_ANY).unwrap();
    for i in 0..10u8 {
        let mut f = vec![0xff; 60];
        f[12..14].copy_from_slice(&[0x08, 0x06]); // ARP
        f[20] = i;
        ring.enqueue(Mbuf::from_slice(&foreign, &f).unwrap())
            .unwrap();
    }

    let profile = Profile {
        flows: 256,
        size: Sizes::Imix,
        hops: vec![0, 1, 2],
        ipv6_share: 0.3,
        ..Profile::default()
    };
    let (_, templates) = chance_pktgen::traffic(&profile);
    let mut spec = RunSpec::new("net_ring_loop", &profile);
    spec.rx_port = RxPort::Same;
    spec.rate_pps = 200_000;
    spec.warmup = Duration::from_millis(200);
    spec.duration = Duration::from_millis(700);
    spec.drain = Duration::from_millis(100);
    spec.expect = ExpectBack::All;
    spec.progress = false;
    spec.mbufs = 4095;
    let s = common::run_to_end(&eal, &spec, &profile, templates);

    assert_eq!(s.mbufs_in_use, 0);
    assert_eq!(s.lcores.len(), 1);
    // 200 kpps over the worker's own window (its marks' TSC: about 0.7 s, more or less when
    // the worker saw a phase change late on a loaded machine): what was not sent is what the
    // pacing missed while the lcore was descheduled, never more than the rate allows.
    let scheduled = s.window_secs * 200_000.0;
    let sent_or_late = (s.tx.packets + s.tx.late) as f64;
    assert!(s.tx.packets > 1000, "{:?}", s.tx);
    assert!(
        (0.95 * scheduled..=1.05 * scheduled).contains(&sent_or_late),
        "{:?}",
        s.tx
    );
    assert_eq!(s.tx.refused, 0);
    assert_eq!(s.rx.classes["looped"], s.tx.packets);
    assert_eq!(s.rx.classes["decapsulated"], 0);
    assert_eq!(s.rx.classes["forwarded"], 0);
    assert_eq!(
        s.rx.classes["other"], 0,
        "the foreign frames came in the warm-up"
    );
    assert_eq!(s.totals["rx_other"], 10);
    assert_eq!(s.totals["rx_looped"], s.totals["tx_packets"]);
    assert_eq!(s.loss.expected_back, s.tx.packets);
    assert_eq!(s.loss.received_back, s.tx.packets);
    assert_eq!(s.loss.missing, 0);
    assert_eq!(s.loss.ratio, 0.0);
    // Every frame of the window was timed; a ring round trip takes well under a millisecond
    // unless the machine is very busy.
    assert_eq!(s.latency_ns.samples, s.tx.packets);
    let min = s.latency_ns.min.unwrap();
    assert!(min > 0.0, "{:?}", s.latency_ns);
    assert!(s.latency_ns.p50.unwrap() >= min);
    assert!(s.latency_ns.max.unwrap() >= s.latency_ns.p99.unwrap());
    assert!(
        s.tx.mpps > 0.0 && (s.window_secs - 0.7).abs() < 0.1,
        "{}",
        s.window_secs
    );
    // The port's own counters agree with the worker's, over the whole run.
    assert_eq!(s.port_stats["tx"]["opackets"], s.totals["tx_packets"]);
    assert_eq!(s.port_stats["tx"]["ipackets"], s.totals["rx_packets"]);

    drop(foreign);
    drop(ring);
    eal.cleanup().expect("cleanup");
}
