//! The throughput mix through the engine in memory, `ROUNDS` times over (default 10), burst by
//! burst as chanced's worker runs it (`BurstPlan`: plan 32 frames, look their flows up together,
//! finish each; the rest through `Engine::process`), or with `--per-packet` one frame at a time
//! through `Engine::process`. For counting the engine's instructions per packet under callgrind
//! (`deploy/bench-instructions.sh`), a measure this shared, noisy machine cannot disturb. Prints
//! the packets and ns per packet.
//!
//! Each frame is copied into a buffer of its own before the engine rewrites it, so every round
//! sees the same frames.

#[path = "../benches/support/mix.rs"]
mod support;

use chance_engine::burst::{BurstPlan, BURST_MAX};
use chance_engine::table::LoadPrefetch;
use chance_testkit::mix;
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let mut rounds = 10;
    let mut per_packet = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--per-packet" => per_packet = true,
            _ => match arg.parse() {
                Ok(n) => rounds = n,
                Err(e) => {
                    eprintln!("mix_rounds: usage: mix_rounds [ROUNDS] [--per-packet] ({arg}: {e})");
                    std::process::exit(2);
                }
            },
        }
    }
    let (frames, _) = mix::frames(4000, 1000, 1);
    let table = support::table();
    let mut engine = support::engine();
    let mut buffers = vec![vec![0u8; 2048]; BURST_MAX];
    let mut burst = BurstPlan::default();
    let started = Instant::now();
    for _ in 0..rounds {
        for chunk in frames.chunks(BURST_MAX) {
            let mut copies: Vec<&mut [u8]> = buffers
                .iter_mut()
                .zip(chunk)
                .map(|(buffer, frame)| {
                    let copy = &mut buffer[..frame.len()];
                    copy.copy_from_slice(frame);
                    copy
                })
                .collect();
            if per_packet {
                for copy in copies {
                    black_box(engine.process(copy, &table));
                }
                continue;
            }
            let offered = copies.iter().map(|copy| &**copy);
            burst.fill(&engine, &table, offered, &LoadPrefetch);
            for (copy, answer) in copies.iter_mut().zip(burst.answers()) {
                let outcome = match answer {
                    Some((plan, owned)) => engine.process_planned(copy, plan, owned, &table),
                    None => engine.process(copy, &table),
                };
                black_box(outcome);
            }
        }
    }
    let packets = rounds * frames.len();
    let ns = started.elapsed().as_nanos() as f64 / packets.max(1) as f64;
    println!("{packets} packets, {ns:.1} ns per packet");
}
