//! The throughput mix through the engine in memory, `ROUNDS` times over (default 10): for counting
//! the engine's instructions per packet under callgrind (`deploy/bench-instructions.sh`), a
//! measure this shared, noisy machine cannot disturb. Prints the packets and ns per packet.
//!
//! Each frame is copied into one buffer before `Engine::process` rewrites it, so every round
//! sees the same frames.

#[path = "../benches/support/mix.rs"]
mod support;

use chance_testkit::mix;
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let rounds: usize = match std::env::args().nth(1).map(|arg| arg.parse()) {
        None => 10,
        Some(Ok(rounds)) => rounds,
        Some(Err(e)) => {
            eprintln!("mix_rounds: ROUNDS must be a whole number: {e}");
            std::process::exit(2);
        }
    };
    let (frames, _) = mix::frames(4000, 1000, 1);
    let table = support::table();
    let mut engine = support::engine();
    let mut buffer = vec![0u8; 2048];
    let started = Instant::now();
    for _ in 0..rounds {
        for frame in &frames {
            let copy = &mut buffer[..frame.len()];
            copy.copy_from_slice(frame);
            black_box(engine.process(copy, &table));
        }
    }
    let packets = rounds * frames.len();
    let ns = started.elapsed().as_nanos() as f64 / packets.max(1) as f64;
    println!("{packets} packets, {ns:.1} ns per packet");
}
