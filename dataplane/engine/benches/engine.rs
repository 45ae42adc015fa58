//! ns per packet for each engine path (BENCHMARKS.md "Engine").
//!
//! Every iteration restores the frame from its template before processing it (the engine rewrites
//! in place), so each number includes one copy of the frame; `frame_copy_only` measures that copy
//! alone. The established-flow benches cycle through 4096 frames of distinct flows drawn from the
//! table, so with 1M flows the lookup touches memory outside the caches as real traffic would.
//! `accept_established_1m_flows_concurrent_table` is the same path over the production table
//! (`chance_engine::table::ConcurrentFlowTable`) instead of `ExactMatchTable`.

use chance_engine::table::{ConcurrentFlowTable, Source, TableConfig};
use chance_engine::{Engine, EngineConfig, ExactMatchTable, FlowKey, FlowTable, L4Proto, Verdict};
use chance_testkit::gue::{GueFrame, IpipFrame, DIRECTOR_ADDR, ENCAP_ADDR};
use chance_testkit::inner::{Ipv4Packet, ACK, L4};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::net::Ipv4Addr;

const NEXT_HOP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);
const FRAMES: u32 = 4096;
const CLIENTS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);

fn config() -> EngineConfig {
    EngineConfig::new(&[ENCAP_ADDR], 1234, 1500).expect("one address")
}

/// The i-th synthetic flow: a client in 198.18.0.0/15 talking to the host's port 443.
fn flow(i: u32) -> FlowKey {
    let client = Ipv4Addr::from(CLIENTS.to_bits() + (i >> 14));
    let port = 1024 + (i & 0x3fff) as u16;
    FlowKey::v4(L4Proto::Tcp, ENCAP_ADDR, 443, client, port)
}

/// A GUE frame with one hop carrying a TCP ACK of flow `i` (64-byte-ish inner packet).
fn ack_frame(i: u32) -> Vec<u8> {
    let key = flow(i);
    let (client, port) = match key.remote() {
        std::net::SocketAddr::V4(a) => (*a.ip(), a.port()),
        std::net::SocketAddr::V6(_) => unreachable!("v4 flows only"),
    };
    let inner = Ipv4Packet::new(client, ENCAP_ADDR, L4::tcp(port, 443, ACK)).build();
    GueFrame::ipv4(inner).hops(&[NEXT_HOP]).build()
}

fn table(flows: u32) -> ExactMatchTable {
    let mut table = ExactMatchTable::with_capacity(flows as usize);
    for i in 0..flows {
        table.insert(flow(i));
    }
    table
}

/// Benches `frames` (cycled) through one engine, asserting the verdict once up front.
fn bench_frames<F: FlowTable>(
    c: &mut Criterion,
    name: &str,
    frames: Vec<Vec<u8>>,
    flows: &F,
    expect: Verdict,
) {
    let mut engine = Engine::new(config());
    let mut buf = frames[0].clone();
    assert_eq!(engine.process(&mut buf, flows).verdict, expect, "{name}");
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1));
    let mut next = 0;
    let mut scratch = vec![0u8; 2048];
    group.bench_function(name, |b| {
        b.iter(|| {
            let frame = &frames[next];
            next = (next + 1) % frames.len();
            let buf = &mut scratch[..frame.len()];
            buf.copy_from_slice(frame);
            black_box(engine.process(black_box(buf), flows))
        })
    });
    group.finish();
}

fn paths(c: &mut Criterion) {
    let empty = ExactMatchTable::new();
    let tcp = |port| Ipv4Packet::new(DIRECTOR_ADDR, ENCAP_ADDR, L4::tcp(port, 443, ACK)).build();

    // Baseline: the per-iteration frame restore every other bench includes.
    let frame = ack_frame(0);
    let mut scratch = vec![0u8; 2048];
    c.benchmark_group("engine")
        .throughput(Throughput::Elements(1))
        .bench_function("frame_copy_only", |b| {
            b.iter(|| {
                scratch[..frame.len()].copy_from_slice(black_box(&frame));
                black_box(&scratch);
            })
        });

    let mut not_ours = GueFrame::ipv4(tcp(1000));
    not_ours.daddr = Ipv4Addr::new(192, 0, 2, 99);
    bench_frames(
        c,
        "pass_not_ours",
        vec![not_ours.build()],
        &empty,
        Verdict::Pass,
    );

    let last_hop = GueFrame::ipv4(tcp(1000)).build();
    bench_frames(
        c,
        "accept_last_hop",
        vec![last_hop],
        &empty,
        Verdict::Accept,
    );

    let ipip = IpipFrame::ipv4(tcp(1000)).build();
    bench_frames(c, "accept_ip_in_ip", vec![ipip], &empty, Verdict::Accept);

    let table_1k = table(1_000);
    let table_1m = table(1_000_000);
    for (name, flows, table) in [
        ("accept_established_1k_flows", 1_000, &table_1k),
        ("accept_established_1m_flows", 1_000_000, &table_1m),
    ] {
        // Spread the frames over the whole table (a multiplicative step visits distinct flows).
        let frames = (0..FRAMES)
            .map(|i| ack_frame(i.wrapping_mul(2_654_435_761) % flows))
            .collect();
        bench_frames(c, name, frames, table, Verdict::Accept);
    }
    {
        let concurrent = ConcurrentFlowTable::new(TableConfig::new(1_000_000));
        for i in 0..1_000_000 {
            assert!(concurrent.insert(flow(i), Source::Egress).is_stored());
        }
        let frames = (0..FRAMES)
            .map(|i| ack_frame(i.wrapping_mul(2_654_435_761) % 1_000_000))
            .collect();
        bench_frames(
            c,
            "accept_established_1m_flows_concurrent_table",
            frames,
            &concurrent,
            Verdict::Accept,
        );
    }

    // The forwards miss in a populated table: the lookup is paid, as in production.
    let unknown = GueFrame::ipv4(tcp(1000))
        .hops(&[NEXT_HOP, Ipv4Addr::new(192, 0, 2, 21)])
        .build();
    bench_frames(
        c,
        "forward_gue_1m_flows",
        vec![unknown],
        &table_1m,
        Verdict::Forward,
    );

    let gre = GueFrame::ipv4(tcp(1000))
        .hops(&[NEXT_HOP])
        .last_hop_gre()
        .build();
    bench_frames(
        c,
        "forward_gre_1m_flows",
        vec![gre],
        &table_1m,
        Verdict::Forward,
    );

    let mut malformed = GueFrame::ipv4(tcp(1000)).hops(&[NEXT_HOP]);
    malformed.gue_flags = 0x0100;
    bench_frames(
        c,
        "drop_malformed_encapsulation",
        vec![malformed.build()],
        &empty,
        Verdict::Drop,
    );
}

criterion_group!(benches, paths);
criterion_main!(benches);
