//! A frame router through the whole dataplane (`run_router`: EAL, mempool, ports, a worker per
//! worker lcore, shutdown), over net_pcap vdevs: the NIC's output is the encapsulated frames byte
//! for byte, the kernel port's the passed ones, the counters add up and every mbuf came back.

mod common;

use arc_swap::ArcSwap;
use chance_runtime::{run_router, DataplaneSpec, IdlePolicy, PathCounter, RunUntil};
use common::pcap::{read_pcap, write_pcap};
use common::router::{encapsulated, frame_to, header, Table, TestRouter};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[test]
fn run_router_encapsulates_passes_and_drops_and_returns_every_mbuf() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let pid = std::process::id();
    let file = |name: &str| dir.join(format!("chance-router-{name}-{pid}.pcap"));
    let (nic_in, nic_out, kernel_in, kernel_out) = (
        file("nic-in"),
        file("nic-out"),
        file("kernel-in"),
        file("kernel-out"),
    );

    let frames: Vec<Vec<u8>> = (0..100u8)
        .map(|i| match i % 4 {
            0 | 1 => frame_to([10, 1, 0, i], 20 + usize::from(i) * 13, i),
            2 => frame_to([192, 0, 2, i], 40, i),
            _ => frame_to([10, 9, 0, i], 40, i),
        })
        .collect();
    write_pcap(&nic_in, &frames);
    let egress = frame_to([198, 51, 100, 1], 60, 7);
    write_pcap(&kernel_in, std::slice::from_ref(&egress));

    let table = Arc::new(ArcSwap::from_pointee(Table {
        header: header(78, 0x3c),
    }));
    let mut eal_args = common::eal_args("router", &[]);
    eal_args.extend([
        format!(
            "--vdev=net_pcap0,rx_pcap={},tx_pcap={}",
            nic_in.display(),
            nic_out.display()
        ),
        format!(
            "--vdev=net_pcap1,rx_pcap={},tx_pcap={}",
            kernel_in.display(),
            kernel_out.display()
        ),
    ]);
    let spec = DataplaneSpec {
        eal_args,
        nic: "net_pcap0".into(),
        kernel: "net_pcap1".into(),
        kernel_takes_nic_mac: false,
        rx_descriptors: 256,
        tx_descriptors: 256,
        mempool_mbufs: 2047,
        mempool_cache: 32,
        // Through the spec to the worker: past 1024 empty polls it sleeps, and still stops.
        idle: IdlePolicy::adaptive(),
    };
    let report = run_router(
        &spec,
        |_lcore, _mac| TestRouter::new(&table),
        Arc::new(AtomicBool::new(false)),
        RunUntil::Idle(1100),
        |_| {},
    )
    .expect("the dataplane runs");

    assert_eq!(report.mbufs_in_use, 0, "every mbuf went back to the pool");
    assert_eq!(report.workers.len(), 1);
    let path = &report.workers[0].path;
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
        ]
        .map(|c| path.get(c)),
        [100, 50, 25, 25, 0, 1, 51, 25]
    );
    assert_eq!((report.nic.opackets, report.kernel.opackets), (51, 25));

    let head = &table.load().header;
    let mut want_nic: Vec<Vec<u8>> = frames
        .iter()
        .filter(|f| f[30..32] == [10, 1])
        .map(|f| encapsulated(head, f))
        .collect();
    let want_kernel: Vec<Vec<u8>> = frames.iter().filter(|f| f[30] == 192).cloned().collect();
    // The host's egress is sent between two bursts of the NIC's frames: compare as sets.
    let mut got_nic = read_pcap(&nic_out);
    want_nic.push(egress);
    got_nic.sort();
    want_nic.sort();
    assert_eq!(
        got_nic, want_nic,
        "NIC output: encapsulated frames and the egress"
    );
    assert_eq!(
        read_pcap(&kernel_out),
        want_kernel,
        "kernel output: passed frames in order"
    );
    for f in [nic_in, nic_out, kernel_in, kernel_out] {
        let _ = std::fs::remove_file(f);
    }
}
