//! The idle policy on a real worker lcore: an adaptive worker without traffic sleeps (its
//! process uses a small share of a core where a busy one uses much more) and still forwards the
//! first frame that arrives after the idle period; for chanced's worker and a frame router's.
//!
//! Process CPU time is measured (getrusage): the tests run one at a time and the test thread
//! sleeps while it measures.

mod common;

use chance_engine::{Engine, EngineConfig, ExactMatchTable};
use chance_runtime::{
    launch, EncapWorker, FrameAction, FrameRouter, IdleExit, IdlePolicy, LcoreHandle, WorkerReport,
};
use chance_runtime::{Ring, Worker};
use chance_testkit::gue::{ENCAP_ADDR, ENCAP_PORT};
use common::lab::Lab;
use common::{arp, eal, worker_lcore, Lcore};
use nix::sys::resource::{getrusage, UsageWho};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TEST: &str = "idle";

/// The process's CPU time (user and system) so far.
fn cpu_time() -> Duration {
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let micros = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    micros(usage.user_time()) + micros(usage.system_time())
}

/// The share of one core the process used while the calling thread slept for `wall`.
fn cpu_share_over(wall: Duration) -> f64 {
    let (cpu, started) = (cpu_time(), Instant::now());
    std::thread::sleep(wall);
    (cpu_time() - cpu).as_secs_f64() / started.elapsed().as_secs_f64()
}

/// Waits up to 5 s for one frame on `ring`; how long it took.
fn first_frame_on(ring: &Ring) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if ring.count() > 0 {
            return Some(started.elapsed());
        }
        std::hint::spin_loop();
    }
    None
}

/// Runs a busy worker, then an adaptive one, from `launch_worker` on the same lab without
/// traffic; checks the adaptive one's idle CPU share and that it passes a frame sent after 2 s
/// of idleness.
fn adaptive_idles_cheaply_and_wakes_for_the_first_frame(
    name: &str,
    launch_worker: impl Fn(&Lab, IdlePolicy, &Arc<AtomicBool>) -> LcoreHandle<WorkerReport>,
) {
    eal(TEST, &[]);
    let _serial = worker_lcore();
    let _lcore = Lcore::register();
    let lab = Lab::new(name, 2048);

    let stop = Arc::new(AtomicBool::new(false));
    let busy = launch_worker(&lab, IdlePolicy::Busy, &stop);
    let busy_share = cpu_share_over(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    busy.join().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let adaptive = launch_worker(&lab, IdlePolicy::adaptive(), &stop);
    let adaptive_share = cpu_share_over(Duration::from_secs(2));
    println!("{name}: idle CPU busy {busy_share:.3}, adaptive {adaptive_share:.3} of a core");
    lab.receive(&arp());
    let latency = first_frame_on(&lab.kernel_tx);
    stop.store(true, Ordering::Relaxed);
    let report = adaptive.join().unwrap();
    println!("{name}: first frame after 2 s idle passed in {latency:?}");

    assert!(
        adaptive_share < 0.2,
        "an idle adaptive worker used {adaptive_share:.3} of a core"
    );
    assert!(
        adaptive_share * 3.0 < busy_share,
        "busy polling ({busy_share:.3}) costs far more than adaptive ({adaptive_share:.3})"
    );
    assert!(latency.is_some(), "the first frame after idle was passed");
    assert_eq!(
        report.path.get(chance_runtime::PathCounter::KernelTx),
        1,
        "{report:?}"
    );
    assert_eq!(Lab::drain(&lab.kernel_tx), [arp()]);
    lab.close();
}

#[test]
fn an_idle_adaptive_engine_worker_sleeps_and_still_passes_the_first_frame() {
    adaptive_idles_cheaply_and_wakes_for_the_first_frame("eng", |lab, policy, stop| {
        let config = EngineConfig::new(&[ENCAP_ADDR], ENCAP_PORT, 1500).expect("one address");
        let seat = lab.seat(stop, IdleExit::Never, policy);
        let worker = Worker::seated(Engine::new(config), Arc::new(ExactMatchTable::new()), seat);
        launch(1, move || worker.run(1)).unwrap()
    });
}

/// Passes every frame.
struct PassAll;

impl FrameRouter for PassAll {
    fn route(&mut self, _: &[u8]) -> FrameAction {
        FrameAction::Pass
    }
    fn write_header(&mut self, _: &mut [u8], _: &[u8]) {}
}

#[test]
fn an_idle_adaptive_router_worker_sleeps_and_still_passes_the_first_frame() {
    adaptive_idles_cheaply_and_wakes_for_the_first_frame("rtr", |lab, policy, stop| {
        let worker = EncapWorker::seated(PassAll, lab.seat(stop, IdleExit::Never, policy));
        launch(1, move || worker.run(1)).unwrap()
    });
}
