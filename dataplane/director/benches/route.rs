//! ns per routed frame on the director's packet path: a 64-byte TCP frame to a bind.
//!
//! `route_64b_tcp` is the whole decision (classify, bind match, SipHash, row read, header build
//! with both checksums) over 4096 frames of distinct clients, so rows are read from all over a
//! GLB-sized table (65,536 rows of two hops, 512 KiB). The parts: `siphash_only` hashes the same
//! flows (`siphash_streaming_reference`: the same hash through siphasher's streaming hasher), `row_read_only` reads their rows, `header_copy_only` copies a built header (what the
//! runtime's prepend costs at least); the rest of `route_64b_tcp` is classification, the bind
//! match and building the header.

use chance_director::flow_hash::MAX_INPUT_LEN;
use chance_director::{
    Bind, Director, DirectorConfig, FlowFields, FlowHasher, HashFields, Prefix, Protocol, Route,
    RouteTable, Rows,
};
use chance_testkit::inner::{Ipv4Packet, ACK, L4};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use siphasher::sip::SipHasher24;
use std::hint::black_box;
use std::net::Ipv4Addr;

const FRAMES: u32 = 4096;
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);
const KEY: [u8; 16] = *b"0123456789abcdef";

/// A GLB-shaped table: two hops per row, in one flat array.
struct FlatRows(Vec<Ipv4Addr>);

impl Rows for FlatRows {
    fn hops(&self, row: u16) -> &[Ipv4Addr] {
        let at = usize::from(row) * 2;
        &self.0[at..at + 2]
    }
}

fn table() -> RouteTable<FlatRows> {
    let hops = (0..0x2_0000u32)
        .map(|i| Ipv4Addr::from(0x0a00_0000 | (i % 256)))
        .collect();
    let bind = Bind {
        prefix: Prefix::host(VIP.into()),
        protocol: Protocol::Tcp,
        ports: 443..=443,
    };
    RouteTable::new(vec![bind], KEY, FlatRows(hops))
}

fn client(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0xc612_0000 + i * 7919)
}

/// A 64-byte frame (14 Ethernet + 20 IPv4 + 20 TCP, padded) from client `i`.
fn frame(i: u32) -> Vec<u8> {
    let inner = Ipv4Packet::new(client(i), VIP, L4::tcp(40_000, 443, ACK)).build();
    let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    frame.extend_from_slice(&inner);
    frame.resize(64, 0);
    frame
}

fn flow(i: u32) -> FlowFields {
    let mut src_addr = [0; 16];
    src_addr[..4].copy_from_slice(&client(i).octets());
    let mut dst_addr = [0; 16];
    dst_addr[..4].copy_from_slice(&VIP.octets());
    FlowFields {
        ipv6: false,
        src_addr,
        dst_addr,
        src_port: 40_000u16.to_be_bytes(),
        dst_port: 443u16.to_be_bytes(),
    }
}

fn bench(c: &mut Criterion) {
    let tables = [table()];
    let frames: Vec<Vec<u8>> = (0..FRAMES).map(frame).collect();
    let config = DirectorConfig::new(
        Ipv4Addr::new(192, 0, 2, 1),
        [2, 0, 0, 0, 0, 0xfe],
        [2, 0, 0, 0, 0, 1],
    );
    let mut director = Director::new(config);
    let mut group = c.benchmark_group("director");
    group.throughput(Throughput::Elements(1));

    let mut i = 0;
    group.bench_function("route_64b_tcp", |b| {
        b.iter(|| {
            i = (i + 1) % FRAMES as usize;
            let route = director.route(black_box(&frames[i]), &tables);
            assert!(matches!(route, Route::Encapsulate(_)));
            black_box(&route);
        })
    });

    let flows: Vec<FlowFields> = (0..FRAMES).map(flow).collect();
    let hasher = FlowHasher::new_with_key(&KEY);
    let mut i = 0;
    group.bench_function("siphash_only", |b| {
        b.iter(|| {
            i = (i + 1) % FRAMES as usize;
            black_box(black_box(&flows[i]).hash(&hasher, HashFields::default()))
        })
    });

    // The same hash through siphasher's streaming hasher, as the packet path did before
    // FlowHasher: the reference the specialisation is measured against.
    let reference = SipHasher24::new_with_key(&KEY);
    let mut i = 0;
    group.bench_function("siphash_streaming_reference", |b| {
        b.iter(|| {
            i = (i + 1) % FRAMES as usize;
            let mut input = [0; MAX_INPUT_LEN];
            let len = black_box(&flows[i]).hash_input(HashFields::default(), &mut input);
            black_box(reference.hash(&input[..len]))
        })
    });

    let rows: Vec<u16> = flows
        .iter()
        .map(|f| f.hash(&hasher, HashFields::default()) as u16)
        .collect();
    let mut i = 0;
    group.bench_function("row_read_only", |b| {
        b.iter(|| {
            i = (i + 1) % FRAMES as usize;
            black_box(tables[0].rows().hops(black_box(rows[i]))[0])
        })
    });

    let Route::Encapsulate(encap) = director.route(&frames[0], &tables) else {
        panic!("the bench frame routes")
    };
    let mut buffer = [0u8; 128];
    group.bench_function("header_copy_only", |b| {
        b.iter(|| {
            let header = black_box(&encap.header).as_bytes();
            buffer[..header.len()].copy_from_slice(header);
            black_box(&buffer);
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
