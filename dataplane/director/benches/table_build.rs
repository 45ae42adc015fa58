//! Table builds for GLB's largest table (256 backends): chance's hop lists and GLB's rows.

mod common;

use chance_director::{glb_rows, HopTable};
use common::backends;
use criterion::{criterion_group, criterion_main, Criterion};

fn table_build(c: &mut Criterion) {
    let seed = *b"chance-director!";
    let backends = backends(256);
    let mut group = c.benchmark_group("table_build_256_backends");
    group.sample_size(10);
    group.bench_function("chance_hop_lists", |b| {
        b.iter(|| HopTable::build(&seed, &backends).unwrap())
    });
    group.bench_function("glb_rows", |b| {
        b.iter(|| glb_rows(&seed, &backends).unwrap())
    });
    group.finish();
}

criterion_group!(benches, table_build);
criterion_main!(benches);
