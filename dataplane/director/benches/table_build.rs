//! Table builds for GLB's largest table (256 backends): chance's hop lists and GLB's rows.

use std::net::Ipv4Addr;

use chance_director::{glb_rows, Backend, BackendState, HopTable};
use criterion::{criterion_group, criterion_main, Criterion};

fn backends(count: u16) -> Vec<Backend> {
    (0..count)
        .map(|i| Backend {
            address: Ipv4Addr::new(10, 1, (i >> 8) as u8, i as u8),
            state: match i {
                3 => BackendState::Draining,
                5 => BackendState::Filling,
                _ => BackendState::Active,
            },
            healthy: i != 7,
        })
        .collect()
}

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
