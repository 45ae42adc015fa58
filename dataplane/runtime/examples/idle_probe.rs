//! What each idle policy costs: the CPU an idle worker uses, and how late the first frame after
//! an idle period comes out.
//!
//! chanced's worker runs on lcore 1 over net_ring ports (in this process, no NIC needed). For
//! each policy:
//!
//! 1. idle CPU: no traffic for `--seconds` while the main thread sleeps; the process's CPU time
//!    (getrusage: user + system, every thread) over the wall time, as a share of one core;
//! 2. first-frame latency: `--probes` times, after an idle gap of 2 to 20 ms (varied, so the
//!    frames land anywhere in the worker's sleep cycle), one ARP frame is put on the NIC's RX
//!    ring and the main thread spins until the worker has passed it to the kernel port's TX
//!    ring; p50, p99 and the maximum of that time. `busy` gives the floor (ring and poll cost);
//!    the difference is what sleeping adds.
//!
//! Run (root, as DPDK needs): `cargo run --release -p chance-runtime --example idle_probe --
//! [--seconds 10] [--probes 1000] [busy|adaptive]...` (both policies by default). docs/idle.md
//! records the results.

#[path = "../tests/common/mod.rs"]
mod common;

use chance_engine::{Engine, EngineConfig, ExactMatchTable};
use chance_runtime::{launch, Eal, IdleExit, IdlePolicy, Worker};
use common::arp;
use common::lab::Lab;
use nix::sys::resource::{getrusage, UsageWho};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn cpu_time() -> Duration {
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let time = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    time(usage.user_time()) + time(usage.system_time())
}

/// The `q` quantile of sorted `values`.
fn quantile(values: &[Duration], q: f64) -> Duration {
    values[((values.len() - 1) as f64 * q).round() as usize]
}

struct Measured {
    idle_share: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn measure(name: &str, policy: IdlePolicy, seconds: u64, probes: usize) -> Measured {
    let lab = Lab::new(name, 2048);
    let stop = Arc::new(AtomicBool::new(false));
    let config =
        EngineConfig::new(&[Ipv4Addr::new(192, 0, 2, 10)], 19523, 1500).expect("one address");
    let seat = lab.seat(&stop, IdleExit::Never, policy);
    let worker = Worker::seated(Engine::new(config), Arc::new(ExactMatchTable::new()), seat);
    let handle = launch(1, move || worker.run(1)).unwrap();

    // Let the worker settle into its idle state, then measure.
    std::thread::sleep(Duration::from_millis(200));
    let (cpu, started) = (cpu_time(), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let idle_share = (cpu_time() - cpu).as_secs_f64() / started.elapsed().as_secs_f64();

    let frame = arp();
    let mut latencies = Vec::with_capacity(probes);
    let mut seed = 0x9e37_79b9_u32;
    for _ in 0..probes {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        std::thread::sleep(Duration::from_micros(2_000 + u64::from(seed >> 8) % 18_000));
        let sent = Instant::now();
        lab.receive(&frame);
        while lab.kernel_tx.count() == 0 {
            std::hint::spin_loop();
        }
        latencies.push(sent.elapsed());
        Lab::drain(&lab.kernel_tx);
    }
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap();
    lab.close();
    latencies.sort_unstable();
    Measured {
        idle_share,
        p50: quantile(&latencies, 0.5),
        p99: quantile(&latencies, 0.99),
        max: *latencies.last().expect("at least one probe"),
    }
}

fn main() {
    let mut seconds = 10;
    let mut probes = 1000;
    let mut policies = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |what: &str| -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} needs a number"))
        };
        match arg.as_str() {
            "--seconds" => seconds = number("--seconds"),
            "--probes" => probes = number("--probes").max(1) as usize,
            "busy" => policies.push(("busy", IdlePolicy::Busy)),
            "adaptive" => policies.push(("adaptive", IdlePolicy::adaptive())),
            other => {
                eprintln!("idle_probe: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    if policies.is_empty() {
        policies = vec![
            ("busy", IdlePolicy::Busy),
            ("adaptive", IdlePolicy::adaptive()),
        ];
    }
    let eal_args = common::eal_args("idle", &[]);
    let eal = Eal::init(&eal_args).expect("EAL init");
    let _ = std::fs::remove_dir(eal.runtime_dir());

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    println!("CPU: {cpu}; idle {seconds} s; {probes} probes after 2-20 ms idle gaps");
    println!("| policy | idle CPU (% of a core) | first frame p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    for (name, policy) in policies {
        let m = measure(name, policy, seconds, probes);
        println!(
            "| {name} | {:.2} | {:.1} µs | {:.1} µs | {:.1} µs |",
            m.idle_share * 100.0,
            m.p50.as_secs_f64() * 1e6,
            m.p99.as_secs_f64() * 1e6,
            m.max.as_secs_f64() * 1e6
        );
    }
}
