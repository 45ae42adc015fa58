//! The throughput benchmark's traffic mix (`chance_testkit::mix`, the frames `chance-mix` writes for
//! `deploy/bench-throughput.sh`) through the engine in memory, burst by burst as a worker lcore
//! sees it: ns per packet (BENCHMARKS.md "Dataplane throughput").
//!
//! Every burst first copies its 32 frames into the next 32 of 16384 buffers of 2 KiB (32 MiB), as
//! net_pcap copies its capture into fresh mbufs, so the frames stream through the caches and evict
//! the flow table's lines as they do in chanced (`copy_only` is that copy alone; `engine` is the
//! copy plus `Engine::process` of every frame). The flow table is chanced's default: a
//! `ConcurrentFlowTable` of 1M entries holding the mix's 1000 owned flows.

#[path = "support/mix.rs"]
mod support;

use chance_testkit::mix;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use support::{engine, table};

const BUFFERS: usize = 16384;
const BURST_SIZE: usize = 32;
const BUFFER_LEN: usize = 2048;

struct Bench {
    frames: Vec<Vec<u8>>,
    buffers: Vec<u8>,
    lens: [usize; BURST_SIZE],
    next_frame: usize,
    next_buffer: usize,
}

impl Bench {
    fn new() -> Self {
        let (frames, _) = mix::frames(4000, 1000, 1);
        Self {
            frames,
            buffers: vec![0; BUFFERS * BUFFER_LEN],
            lens: [0; BURST_SIZE],
            next_frame: 0,
            next_buffer: 0,
        }
    }

    /// Copies the next burst's frames into the next buffers; returns the first buffer's index.
    fn refill(&mut self) -> usize {
        let first = self.next_buffer;
        for (i, len) in self.lens.iter_mut().enumerate() {
            let frame = &self.frames[self.next_frame];
            let at = (first + i) * BUFFER_LEN;
            self.buffers[at..at + frame.len()].copy_from_slice(frame);
            *len = frame.len();
            self.next_frame = (self.next_frame + 1) % self.frames.len();
        }
        self.next_buffer = (first + BURST_SIZE) % BUFFERS;
        first
    }

    /// The burst's frames as separate mutable slices.
    fn burst(&mut self, first: usize) -> impl Iterator<Item = &mut [u8]> {
        let lens = self.lens;
        self.buffers[first * BUFFER_LEN..(first + BURST_SIZE) * BUFFER_LEN]
            .chunks_mut(BUFFER_LEN)
            .zip(lens)
            .map(|(buffer, len)| &mut buffer[..len])
    }
}

fn mix_rows(c: &mut Criterion) {
    let mut group = c.benchmark_group("mix");
    group.throughput(Throughput::Elements(BURST_SIZE as u64));
    let table = table();

    let mut bench = Bench::new();
    group.bench_function("copy_only", |b| {
        b.iter(|| black_box(bench.refill()));
    });

    let mut engine = engine();
    group.bench_function("engine", |b| {
        b.iter(|| {
            let first = bench.refill();
            for frame in bench.burst(first) {
                black_box(engine.process(frame, &table));
            }
        });
    });
    group.finish();
}

criterion_group!(benches, mix_rows);
criterion_main!(benches);
