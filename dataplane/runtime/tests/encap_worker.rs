//! The frame router's lcore loop on a real worker lcore, over net_ring ports: encapsulation in
//! the headroom checked byte for byte, passes, drops, a header too long for the headroom, the
//! host's egress, a table swapped while the worker runs, counters, and no mbuf leaked.

mod common;

use arc_swap::ArcSwap;
use chance_runtime::mempool::DEFAULT_DATA_ROOM;
use chance_runtime::{launch, EncapWorker, IdleExit, IdlePolicy, LcoreStats, PathCounter};
use common::lab::Lab;
use common::router::{encapsulated, frame_to, header, Table, TestRouter, DST, ETHERNET, HEADROOM};
use common::{arp, eal, worker_lcore, Lcore};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TEST: &str = "encap";

fn encap_worker(
    lab: &Lab,
    table: &Arc<ArcSwap<Table>>,
    stop: &Arc<AtomicBool>,
    idle: IdleExit,
) -> (EncapWorker<TestRouter>, Arc<LcoreStats>) {
    let seat = lab.seat(stop, idle, IdlePolicy::Busy);
    let stats = Arc::clone(&seat.stats);
    (EncapWorker::seated(TestRouter::new(table), seat), stats)
}

#[test]
fn frames_are_encapsulated_in_the_headroom_passed_or_dropped_and_every_one_is_counted() {
    eal(TEST, &[]);
    let _serial = worker_lcore();
    let _lcore = Lcore::register();
    let lab = Lab::new("enc", 2048);
    // The longest header the headroom takes once the Ethernet header is stripped.
    let longest = HEADROOM + ETHERNET;
    let table = Arc::new(ArcSwap::from_pointee(Table {
        header: header(longest, 0x5a),
    }));

    let arp = arp();
    let encap_small = frame_to([10, 1, 0, 1], 0, 1);
    let encap_large = frame_to([10, 1, 2, 3], 1400, 2);
    let passed = frame_to([192, 0, 2, 1], 30, 3);
    let dropped = frame_to([10, 9, 0, 1], 30, 4);
    // The largest frame an mbuf of the default pool holds: its payload is not copied.
    let encap_full = frame_to([10, 1, 9, 9], DEFAULT_DATA_ROOM as usize - HEADROOM - 34, 5);
    let truncated = vec![0x02; 10];
    let frames = [
        &arp,
        &encap_small,
        &passed,
        &dropped,
        &encap_large,
        &truncated,
        &encap_full,
    ];
    for frame in frames {
        lab.receive(frame);
    }
    let mut egress = frame_to([198, 51, 100, 7], 40, 6);
    egress[DST].copy_from_slice(&[10, 1, 0, 7]);
    lab.kernel_rx
        .enqueue(chance_runtime::Mbuf::from_slice(&lab.pool, &egress).unwrap())
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (worker, stats) = encap_worker(&lab, &table, &stop, IdleExit::Never);
    let handle = launch(1, move || worker.run(1)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let path = loop {
        let (_, path) = stats.snapshot();
        if path.get(PathCounter::NicTx) == 4 && path.get(PathCounter::KernelTx) == 3 {
            break path;
        }
        assert!(Instant::now() < deadline, "worker stalled: {path:?}");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(!handle.is_finished(), "counters are read while it runs");
    stop.store(true, Ordering::Relaxed);
    let report = handle.join().unwrap();
    assert_eq!(
        report.path, path,
        "nothing happened after the last publication"
    );

    assert_eq!(
        [
            PathCounter::NicRx,
            PathCounter::Encapsulated,
            PathCounter::RouterPasses,
            PathCounter::RouterDrops,
            PathCounter::EncapFailed,
            PathCounter::KernelRx,
            PathCounter::NicTx,
            PathCounter::KernelTx,
            PathCounter::NicTxFull,
            PathCounter::KernelTxFull,
        ]
        .map(|c| path.get(c)),
        [7, 3, 3, 1, 0, 1, 4, 3, 0, 0]
    );
    let head = &table.load().header;
    assert_eq!(
        Lab::drain(&lab.nic_tx),
        [
            encapsulated(head, &encap_small),
            encapsulated(head, &encap_large),
            encapsulated(head, &encap_full),
            egress,
        ],
        "NIC output: the encapsulated frames in order, then the host's egress untouched"
    );
    assert_eq!(
        Lab::drain(&lab.kernel_tx),
        [arp, passed, truncated],
        "kernel output: the passed frames, unchanged"
    );
    lab.close();
}

#[test]
fn a_header_beyond_the_headroom_is_a_counted_drop_and_the_frame_is_freed() {
    eal(TEST, &[]);
    let _serial = worker_lcore();
    let _lcore = Lcore::register();
    let lab = Lab::new("long", 2048);
    let table = Arc::new(ArcSwap::from_pointee(Table {
        header: header(HEADROOM + ETHERNET + 1, 0x11),
    }));
    lab.receive(&frame_to([10, 1, 0, 1], 100, 1));
    lab.receive(&frame_to([10, 2, 0, 1], 100, 2));
    let stop = Arc::new(AtomicBool::new(false));
    let (worker, _) = encap_worker(&lab, &table, &stop, IdleExit::AfterPolls(100));
    let report = launch(1, move || worker.run(1)).unwrap().join().unwrap();
    assert_eq!(
        [
            PathCounter::NicRx,
            PathCounter::EncapFailed,
            PathCounter::Encapsulated,
            PathCounter::RouterPasses
        ]
        .map(|c| report.path.get(c)),
        [2, 1, 0, 1]
    );
    assert!(Lab::drain(&lab.nic_tx).is_empty());
    assert_eq!(Lab::drain(&lab.kernel_tx).len(), 1);
    lab.close();
}

#[test]
fn a_table_swapped_while_the_worker_runs_applies_to_the_next_bursts() {
    eal(TEST, &[]);
    let _serial = worker_lcore();
    let _lcore = Lcore::register();
    let lab = Lab::new("swap", 2048);
    let (old, new) = (header(50, 0x01), header(90, 0x02));
    let table = Arc::new(ArcSwap::from_pointee(Table {
        header: old.clone(),
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let (worker, stats) = encap_worker(&lab, &table, &stop, IdleExit::Never);
    let handle = launch(1, move || worker.run(1)).unwrap();
    let wait_for_encapsulated = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while stats.snapshot().1.get(PathCounter::Encapsulated) < n {
            assert!(Instant::now() < deadline, "worker stalled");
            std::thread::sleep(Duration::from_millis(1));
        }
    };

    let before: Vec<Vec<u8>> = (0..40).map(|i| frame_to([10, 1, 0, i], 64, i)).collect();
    for f in &before {
        lab.receive(f);
    }
    wait_for_encapsulated(40);
    // The control plane builds a new table and swaps it in: no lock, the worker keeps running.
    table.store(Arc::new(Table {
        header: new.clone(),
    }));
    let after: Vec<Vec<u8>> = (0..40).map(|i| frame_to([10, 1, 1, i], 64, i)).collect();
    for f in &after {
        lab.receive(f);
    }
    wait_for_encapsulated(80);
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap();

    let want: Vec<Vec<u8>> = before
        .iter()
        .map(|f| encapsulated(&old, f))
        .chain(after.iter().map(|f| encapsulated(&new, f)))
        .collect();
    assert_eq!(Lab::drain(&lab.nic_tx), want);
    lab.close();
}
