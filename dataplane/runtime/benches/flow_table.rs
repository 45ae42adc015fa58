//! Flow-table lookups at 1K, 1M and 10M entries, on 4 KiB pages and on transparent huge pages
//! (BENCHMARKS.md "Flow table").
//!
//! Each table (IPv4 TCP flows, filled to capacity with egress-learned entries) is measured twice in
//! one process: first as allocated (4 KiB pages), then after its buckets and tags were advised and
//! collapsed into 2 MiB pages with `chance_runtime::hugemem::advise_huge_pages`, as chanced does
//! (`[flow_table] huge_pages = true`). Rows: `lookup` hit and miss (misses: flows of another port),
//! `lookup_many_with` hit (with the prefetch instruction, `chance_runtime::prefetch`) per batch of
//! 32 and of 64 keys (Melem/s; per-key cost = row / batch), each named `..._4k` or `..._huge`,
//! and `exact_match_hit_*`, the same hits in an `ExactMatchTable` (std's SwissTable, not
//! concurrent) for reference. Lookups cycle through 64K keys spread over the table, so at 1M and
//! 10M entries nearly every lookup misses L1/L2. Building the 10M tables takes a few seconds and
//! about 560 MB (this table) and 700 MB (`ExactMatchTable`). Lives in the runtime crate because
//! the huge-page advice is a system call (the engine crate has no `unsafe`).

mod cpu_time;

use chance_engine::table::{ConcurrentFlowTable, InsertOutcome, Lookup, Source, TableConfig};
use chance_engine::{ExactMatchTable, FlowKey, FlowTable, L4Proto};
use chance_runtime::hugemem::advise_huge_pages;
use chance_runtime::prefetch::CachePrefetch;
use cpu_time::ThreadCpuTime;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;

const HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const PROBES: usize = 1 << 16;

/// The i-th synthetic flow: a client in 198.18.0.0/15 (and beyond) talking to the host's `port`.
fn flow_to(port: u16, i: u32) -> FlowKey {
    FlowKey::v4(
        L4Proto::Tcp,
        HOST,
        port,
        Ipv4Addr::from(0xc612_0000 + (i >> 14)),
        1024 + (i & 0x3fff) as u16,
    )
}

fn flow(i: u32) -> FlowKey {
    flow_to(443, i)
}

/// A flow of another host port: never in the table.
fn absent(i: u32) -> FlowKey {
    flow_to(8443, i)
}

/// A table of `flows` flows on 4 KiB pages. Filling a table to exactly its capacity replaces an
/// entry now and then (both candidate buckets full: about 1 fill in 25 at 1K entries, 1 in 10 at
/// 100K); the probes skip the few flows that were replaced.
fn filled(flows: u32) -> ConcurrentFlowTable {
    let started = Instant::now();
    let table = ConcurrentFlowTable::new(TableConfig::new(flows as usize));
    let replaced = (0..flows)
        .filter(|&i| table.insert(flow(i), Source::Egress) != InsertOutcome::Inserted)
        .count();
    eprintln!(
        "table of {flows} flows: {:.1} MB, {:.2} bytes per entry, filled in {:.2?}, {replaced} replaced",
        table.memory_bytes() as f64 / 1e6,
        table.bytes_per_entry(),
        started.elapsed()
    );
    table
}

/// `PROBES` keys spread over `0..flows` (a multiplicative step visits distinct flows), those the
/// table holds (hits) or of another port (misses).
fn probes(flows: u32, table: &ConcurrentFlowTable, hits: bool) -> Vec<FlowKey> {
    let key = if hits { flow } else { absent };
    let keys: Vec<FlowKey> = (0..)
        .map(|i: u32| key(i.wrapping_mul(2_654_435_761) % flows))
        .filter(|k| table.lookup(k).is_owned() == hits)
        .take(PROBES)
        .collect();
    assert_eq!(keys.len(), PROBES);
    keys
}

/// ns per `lookup(key)`, cycling through `keys`.
fn bench_each(
    c: &mut Criterion<ThreadCpuTime>,
    name: &str,
    keys: &[FlowKey],
    mut lookup: impl FnMut(&FlowKey),
) {
    let mut group = c.benchmark_group("table");
    group.throughput(Throughput::Elements(1));
    let mut next = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            let key = &keys[next];
            next = (next + 1) & (PROBES - 1);
            lookup(black_box(key))
        })
    });
    group.finish();
}

fn bench_lookups(
    c: &mut Criterion<ThreadCpuTime>,
    name: &str,
    table: &ConcurrentFlowTable,
    keys: &[FlowKey],
) {
    bench_each(c, name, keys, |key| {
        black_box(table.lookup(key));
    });
}

/// ns per batch of `BATCH` keys with `lookup_many_with` and the prefetch instruction.
fn bench_batches<const BATCH: usize>(
    c: &mut Criterion<ThreadCpuTime>,
    name: &str,
    table: &ConcurrentFlowTable,
    keys: &[FlowKey],
) {
    let mut group = c.benchmark_group("table");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut next = 0;
    let mut out = [Lookup::Miss; BATCH];
    table.lookup_many_with(&keys[..BATCH], &mut out, &CachePrefetch);
    assert!(out.iter().all(|l| l.is_owned()));
    group.bench_function(name, |b| {
        b.iter(|| {
            let batch = &keys[next..next + BATCH];
            next = (next + BATCH) & (PROBES - 1);
            table.lookup_many_with(black_box(batch), &mut out, &CachePrefetch);
            black_box(&out);
        })
    });
    group.finish();
}

/// The same hits in an `ExactMatchTable`, for reference.
fn bench_exact_match(c: &mut Criterion<ThreadCpuTime>, name: &str, flows: u32, keys: &[FlowKey]) {
    let mut table = ExactMatchTable::with_capacity(flows as usize);
    for i in 0..flows {
        table.insert(flow(i));
    }
    bench_each(c, name, keys, |key| {
        black_box(table.owns(key));
    });
}

fn lookups(c: &mut Criterion<ThreadCpuTime>) {
    for (flows, label) in [(1_000, "1k"), (1_000_000, "1m"), (10_000_000, "10m")] {
        let table = filled(flows);
        let hits = probes(flows, &table, true);
        let misses = probes(flows, &table, false);
        for pages in ["4k", "huge"] {
            if pages == "huge" {
                let report = advise_huge_pages(&table.memory_regions());
                eprintln!("table of {flows} flows, huge pages: {report}");
                // 1K entries is 0.1 MB: nothing to advise. Larger tables must really be on huge
                // pages, or the rows would silently measure 4 KiB pages.
                assert!(report.advised == 0 || report.is_complete(), "{report}");
            }
            bench_lookups(c, &format!("lookup_hit_{label}_{pages}"), &table, &hits);
            bench_lookups(c, &format!("lookup_miss_{label}_{pages}"), &table, &misses);
            // A worker's RX burst, and the most keys DPDK's own rte_hash_lookup_bulk takes.
            let many = |batch: usize| format!("lookup_many{batch}_hit_{label}_{pages}");
            bench_batches::<32>(c, &many(32), &table, &hits);
            bench_batches::<64>(c, &many(64), &table, &hits);
        }
        drop(table);
        bench_exact_match(c, &format!("exact_match_hit_{label}"), flows, &hits);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = lookups
}
criterion_main!(benches);
