//! A paced run with a count against a peer that stalls: a ring port whose TX ring (small) is
//! emptied by a thread of the test in slow steps, so the queue is full most of the time and the
//! bucket's time goes unused. Every one of the counted packets must still be sent, none
//! refused, and the run must end when they are, long before its time limit: the soak asks
//! chance-pktgen for 10^8 packets this way, and a run that dropped what the queue refused
//! (and the time it was descheduled) stopped 15-18 % short of them. One EAL per test binary,
//! so one test.

mod common;

use chance_pktgen::profile::Profile;
use chance_pktgen::report::ExpectBack;
use chance_pktgen::run::{RunSpec, RxPort};
use chance_runtime::{ring_port, MbufBurst, Ring, SOCKET_ID_ANY};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn a_counted_run_sends_every_packet_through_a_stalling_peer() {
    let eal = common::eal("count", "0-1", 256);

    let tx = Ring::new("pktgen_count_tx", 256, SOCKET_ID_ANY).unwrap();
    let rx = Ring::new("pktgen_count_rx", 256, SOCKET_ID_ANY).unwrap();
    ring_port("count", &rx, &tx).unwrap();

    // The peer: takes at most 64 frames every 4 ms (16 kpps, a tenth of the rate), frees them.
    let done = Arc::new(AtomicBool::new(false));
    let peer = {
        let (tx, done) = (tx.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut taken = 0u64;
            let mut burst = MbufBurst::new();
            loop {
                let finished = done.load(Ordering::Acquire);
                for _ in 0..2 {
                    tx.dequeue_burst(&mut burst);
                    taken += burst.clear() as u64;
                }
                if finished {
                    return taken;
                }
                std::thread::sleep(Duration::from_millis(4));
            }
        })
    };

    let profile = Profile {
        flows: 64,
        ..Profile::default()
    };
    let (_, templates) = chance_pktgen::traffic(&profile);
    let count = 20_000;
    let mut spec = RunSpec::new("net_ring_count", &profile);
    spec.rx_port = RxPort::None;
    spec.rate_pps = 160_000; // 0.125 s of traffic at the rate: the peer makes it about 1.3 s
    spec.count = Some(count);
    spec.warmup = Duration::ZERO;
    spec.duration = Duration::from_secs(60); // the limit, not reached
    spec.drain = Duration::from_millis(500); // the peer empties the ring
    spec.expect = ExpectBack::None;
    spec.progress = false;
    spec.mbufs = 4095;
    let started = Instant::now();
    let s = common::run_to_end(&eal, &spec, &profile, templates);
    let took = started.elapsed();
    done.store(true, Ordering::Release);
    let taken = peer.join().unwrap();

    assert_eq!(s.totals["tx_packets"], count, "{:?}", s.totals);
    assert_eq!(s.tx.refused, 0, "{:?}", s.tx);
    assert!(s.tx.held > 0, "the queue was full at times: {:?}", s.tx);
    assert_eq!(s.loss.ratio, 0.0);
    assert_eq!(taken, count, "the peer got every packet, and no more");
    assert_eq!(s.port_stats["tx"]["opackets"], count);
    assert!(
        took < Duration::from_secs(30),
        "ended at the count: {took:?}"
    );
    assert_eq!(s.mbufs_in_use, 0);

    drop(tx);
    drop(rx);
    eal.cleanup().expect("cleanup");
}
