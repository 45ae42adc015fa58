//! The production flow table's writes (BENCHMARKS.md "Flow table"): ns per insert, per egress
//! confirmation, and the cost of counting hits and misses. The lookup rows (1K, 1M, 10M entries,
//! 4 KiB and huge pages) are in `dataplane/runtime/benches/flow_table.rs`.

use chance_engine::table::{ConcurrentFlowTable, Source, TableConfig};
use chance_engine::{FlowKey, FlowTable, L4Proto};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const PROBES: usize = 1 << 16;

/// The i-th synthetic flow: a client in 198.18.0.0/15 (and beyond) talking to the host's 443.
fn flow(i: u32) -> FlowKey {
    FlowKey::v4(
        L4Proto::Tcp,
        HOST,
        443,
        Ipv4Addr::from(0xc612_0000 + (i >> 14)),
        1024 + (i & 0x3fff) as u16,
    )
}

/// A flow of another host port: never in the table.
fn absent(i: u32) -> FlowKey {
    FlowKey::v4(
        L4Proto::Tcp,
        HOST,
        8443,
        Ipv4Addr::from(0xc612_0000 + (i >> 14)),
        1024 + (i & 0x3fff) as u16,
    )
}

fn filled(flows: u32) -> ConcurrentFlowTable {
    let started = Instant::now();
    let table = ConcurrentFlowTable::new(TableConfig::new(flows as usize));
    // Filling to exactly the capacity replaces an entry now and then (both candidate buckets
    // full); the rows below do not depend on which flows are left.
    for i in 0..flows {
        assert!(table.insert(flow(i), Source::Egress).is_stored());
    }
    eprintln!(
        "table of {flows} flows: {} slots, {:.1} MB, {:.2} bytes per entry, filled in {:.2?}",
        table.slots(),
        table.memory_bytes() as f64 / 1e6,
        table.bytes_per_entry(),
        started.elapsed()
    );
    table
}

/// `PROBES` keys spread over `0..flows` (a multiplicative step visits distinct flows).
fn probes(flows: u32, key: fn(u32) -> FlowKey) -> Vec<FlowKey> {
    (0..PROBES as u32)
        .map(|i| key(i.wrapping_mul(2_654_435_761) % flows))
        .collect()
}

fn inserts(c: &mut Criterion) {
    let mut group = c.benchmark_group("table");
    group.throughput(Throughput::Elements(1));
    // New flows into an empty 1M table (rebuilt, untimed, for every batch of 500K).
    const BATCH: u32 = 500_000;
    let keys: Vec<FlowKey> = (0..BATCH)
        .map(|i| flow(i.wrapping_mul(2_654_435_761)))
        .collect();
    group.bench_function("insert_new_1m_table", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(u64::from(BATCH)) as usize;
                let table = ConcurrentFlowTable::new(TableConfig::new(1_000_000));
                let started = Instant::now();
                for key in &keys[..n] {
                    black_box(table.insert(*key, Source::Egress));
                }
                total += started.elapsed();
                left -= n as u64;
            }
            total
        })
    });

    // Insert then remove one flow in a table holding 500K others.
    let table = filled(500_000);
    let mut next = 0u32;
    group.bench_function("insert_remove_half_full_1m_table", |b| {
        b.iter_batched(
            || {
                next = next.wrapping_add(1);
                absent(next % 1_000_000)
            },
            |key| {
                black_box(table.insert(key, Source::Egress));
                black_box(table.remove(&key))
            },
            BatchSize::SmallInput,
        )
    });

    // The egress path's common case: a known flow confirmed again within the same second (a
    // lock-free read, no write).
    let known = probes(500_000, flow);
    let mut next = 0;
    group.bench_function("confirm_known_same_second", |b| {
        b.iter(|| {
            let key = known[next];
            next = (next + 1) & (PROBES - 1);
            black_box(table.insert(black_box(key), Source::Egress))
        })
    });
    // ...and once per second: the timestamp is rewritten under the pair's locks.
    let mut secs = 0;
    group.bench_function("confirm_known_new_second", |b| {
        b.iter_batched(
            || {
                secs += 1;
                table.tick(table.created() + Duration::from_secs(secs));
                let key = known[next];
                next = (next + 1) & (PROBES - 1);
                key
            },
            |key| black_box(table.insert(key, Source::Egress)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Counting hits and misses: nothing, a per-caller counter, or a shared atomic (the design the
/// table avoids), with one thread and with two threads looking up at once.
fn counting(c: &mut Criterion) {
    let table = filled(1_000);
    let keys = probes(1_000, flow);
    let shared = AtomicU64::new(0);
    let mut group = c.benchmark_group("counting");
    group.throughput(Throughput::Elements(1));
    let mut next = 0;
    group.bench_function("owns_uncounted", |b| {
        b.iter(|| {
            next = (next + 1) & (PROBES - 1);
            black_box(table.owns(black_box(&keys[next])))
        })
    });
    let view = table.counting_view();
    group.bench_function("owns_counting_view", |b| {
        b.iter(|| {
            next = (next + 1) & (PROBES - 1);
            black_box(view.owns(black_box(&keys[next])))
        })
    });
    group.bench_function("owns_shared_atomic", |b| {
        b.iter(|| {
            next = (next + 1) & (PROBES - 1);
            let owned = table.owns(black_box(&keys[next]));
            shared.fetch_add(1, Ordering::Relaxed);
            black_box(owned)
        })
    });
    for (name, shared_counter) in [
        ("two_threads_counting_view", false),
        ("two_threads_shared_atomic", true),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                std::thread::scope(|s| {
                    for t in 0..2 {
                        let (table, keys, shared) = (&table, &keys, &shared);
                        s.spawn(move || {
                            let view = table.counting_view();
                            for i in 0..iters as usize {
                                let key = &keys[(i + t * 7919) & (PROBES - 1)];
                                if shared_counter {
                                    black_box(table.owns(key));
                                    shared.fetch_add(1, Ordering::Relaxed);
                                } else {
                                    black_box(view.owns(key));
                                }
                            }
                            view.flush();
                        });
                    }
                });
                started.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, inserts, counting);
criterion_main!(benches);
