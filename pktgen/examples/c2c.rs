//! Core-to-core round trip: two threads pinned to two CPUs bounce a cache line, and the mean
//! round trip is printed in nanoseconds. On a VM this shows where the host placed the vCPUs
//! (siblings of one core, one L3, or farther apart), which is what net_memif's throughput
//! between two processes mostly depends on (`deploy/bench.sh` prints it per repetition).
//!
//! `cargo run --release -p chance-pktgen --example c2c [-- CPU_A CPU_B [ROUND_TRIPS]]`

use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

fn pin(cpu: usize) {
    let mut set = CpuSet::new();
    set.set(cpu).expect("CPU number in range");
    sched_setaffinity(Pid::from_raw(0), &set).expect("sched_setaffinity");
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: CPU_A CPU_B [ROUND_TRIPS]"))
        .collect();
    let (a, b) = (
        args.first().copied().unwrap_or(0),
        args.get(1).copied().unwrap_or(1),
    );
    let n = args.get(2).copied().unwrap_or(1_000_000) as u64;
    let line = Arc::new(AtomicU64::new(0));
    let other = Arc::clone(&line);
    let echo = std::thread::spawn(move || {
        pin(b);
        for i in 0..n {
            while other.load(Ordering::Acquire) != 2 * i + 1 {
                std::hint::spin_loop();
            }
            other.store(2 * i + 2, Ordering::Release);
        }
    });
    pin(a);
    let start = Instant::now();
    for i in 0..n {
        line.store(2 * i + 1, Ordering::Release);
        while line.load(Ordering::Acquire) != 2 * i + 2 {
            std::hint::spin_loop();
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    echo.join().expect("echo thread");
    println!("{ns:.0}");
}
