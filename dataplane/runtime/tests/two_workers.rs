//! Two chanced workers on two worker lcores share one flow table: a flow one worker learns (from
//! the host's egress, or from an accepted SYN) is owned on the other worker's next packet of it.
//! With RSS, a flow's packets from the director and the host's packets of the same flow may well
//! reach different workers, so learning must not stay on the lcore that learned.

mod common;

use chance_engine::table::{ConcurrentFlowTable, TableConfig};
use chance_engine::{Counter, Engine, EngineConfig};
use chance_runtime::{launch, Eal, IdleExit, IdlePolicy, Ring, Worker, WorkerReport};
use chance_testkit::gue::{GueFrame, ENCAP_ADDR, ENCAP_PORT};
use chance_testkit::inner::{Ipv4Packet, ACK, L4, SYN};
use common::lab::Lab;
use common::{eal_args, Lcore};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TEST: &str = "twoworkers";

const HOP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 21);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

/// EAL with worker lcores 1 and 2: on CPUs 0 and 1 (the main lcore beside the first), or all on
/// CPU 0 on a one-CPU machine.
fn init() -> Eal {
    let two_cpus = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    let lcores = if two_cpus {
        "0@0,1@0,2@1"
    } else {
        "0@0,1@0,2@0"
    };
    let mut args = eal_args(TEST, &[]);
    let at = args
        .iter()
        .position(|a| a == "-l")
        .expect("-l in the test arguments");
    args.splice(at..at + 2, ["--lcores".to_string(), lcores.to_string()]);
    let eal = Eal::init(&args).expect("EAL init");
    let _ = std::fs::remove_dir(eal.runtime_dir());
    assert_eq!(eal.worker_lcores().collect::<Vec<_>>(), [1, 2]);
    eal
}

/// A GUE frame from the director with one hop left: forwarded unless this host owns the flow.
fn from_director(sport: u16, flags: u8) -> Vec<u8> {
    let inner = Ipv4Packet::new(CLIENT, VIP, L4::tcp(sport, 443, flags)).build();
    GueFrame::ipv4(inner).hops(&[HOP]).build()
}

/// The host's reply on flow `sport`, as it leaves the kernel through the kernel port.
fn from_host(sport: u16) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 0xfe, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00];
    frame.extend(Ipv4Packet::new(VIP, CLIENT, L4::tcp(443, sport, ACK)).build());
    frame
}

/// Waits (at most 10 s) for the first frame to leave on either ring; which one, and the frame.
fn first_out<'a>(rings: [(&'a str, &Ring); 2]) -> (&'a str, Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for (name, ring) in rings {
            if let Some(frame) = Lab::drain(ring).pop() {
                return (name, frame);
            }
        }
        assert!(Instant::now() < deadline, "no frame left the worker");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Which way a frame the NIC received went: "kernel" (accepted) or "nic" (forwarded).
fn decided(lab: &Lab, frame: &[u8]) -> &'static str {
    lab.receive(frame);
    first_out([("kernel", &lab.kernel_tx), ("nic", &lab.nic_tx)]).0
}

#[test]
fn a_flow_one_worker_learns_is_owned_on_the_other() {
    let _eal = init();
    let _lcore = Lcore::register();
    let labs = [Lab::new("wa", 2048), Lab::new("wb", 2048)];
    let table = Arc::new(ConcurrentFlowTable::new(TableConfig::new(4096)));
    let stop = Arc::new(AtomicBool::new(false));
    let config = EngineConfig::new(&[ENCAP_ADDR], ENCAP_PORT, 1500).expect("one address");
    let mut workers = Vec::new();
    for (lcore, lab) in (1..).zip(&labs) {
        let seat = lab.seat(&stop, IdleExit::Never, IdlePolicy::adaptive());
        let worker = Worker::seated(Engine::new(config.clone()), Arc::clone(&table), seat)
            .learning_egress(true);
        workers.push(launch(lcore, move || worker.run(lcore)).expect("launch"));
    }
    let [a, b] = &labs;

    // Worker A carries the host's reply on flow 41000 to the NIC, learning the flow first...
    a.kernel_rx
        .enqueue(chance_runtime::Mbuf::from_slice(&a.pool, &from_host(41000)).unwrap())
        .unwrap();
    assert_eq!(
        first_out([("nic", &a.nic_tx), ("kernel", &a.kernel_tx)]),
        ("nic", from_host(41000)),
        "the host's egress leaves untouched"
    );
    // ... so worker B accepts the director's next packet of it.
    assert_eq!(decided(b, &from_director(41000, ACK)), "kernel");
    // Worker B accepts a SYN (and learns its flow); worker A then owns the handshake's ACK.
    assert_eq!(decided(b, &from_director(41001, SYN)), "kernel");
    assert_eq!(decided(a, &from_director(41001, ACK)), "kernel");
    // A flow nobody learned is still forwarded, on either worker.
    assert_eq!(decided(a, &from_director(41002, ACK)), "nic");
    assert_eq!(decided(b, &from_director(41002, ACK)), "nic");

    stop.store(true, Ordering::Relaxed);
    let reports: Vec<WorkerReport> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let count = |r: &WorkerReport, c: Counter| r.engine.get(c);
    let (ra, rb) = (&reports[0], &reports[1]);
    assert_eq!(
        [ra, rb].map(|r| count(r, Counter::AcceptedPacketsTotalEstablished)),
        [1, 1],
        "each worker accepted the flow the other one learned"
    );
    assert_eq!(
        [ra, rb].map(|r| count(r, Counter::AcceptedPacketsTotalSyn)),
        [0, 1]
    );
    assert_eq!(
        [ra, rb].map(|r| count(r, Counter::ForwardedPacketsTotalGue)),
        [1, 1]
    );
    for lab in labs {
        lab.close();
    }
}
