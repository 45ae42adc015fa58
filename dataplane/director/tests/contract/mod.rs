//! The director's contract on arbitrary input, checked by the fuzz target (`fuzz/`, target
//! `director`) and by the property tests (`properties.rs`): one source file, included by both.

use chance_director::{
    Bind, Counter, Director, DirectorConfig, DropReason, Encapsulation, HashFields, Plan, Prefix,
    Protocol, Route, RouteTable, Rows,
};
use chance_engine::wire::checksum;
use chance_engine::wire::ipv4::Ipv4Packet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

/// Rows whose hop lists grow with the row's low bits: from empty up to 40 hops (past GUE's 31),
/// so empty rows, truncated hop lists and every header length are reachable.
#[derive(Debug)]
pub struct GrowingRows {
    hops: Vec<Ipv4Addr>,
}

impl Rows for GrowingRows {
    fn hops(&self, row: u16) -> &[Ipv4Addr] {
        &self.hops[..usize::from(row % 41)]
    }
}

/// Binds on the addresses a fuzzer finds quickly: 0.0.0.0/0 and ::/0 for TCP, a UDP range.
pub fn tables() -> Vec<RouteTable<GrowingRows>> {
    let any4 = Prefix::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).expect("prefix");
    let any6 = Prefix::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).expect("prefix");
    let binds = vec![
        Bind {
            prefix: any4,
            protocol: Protocol::Tcp,
            ports: 0..=u16::MAX,
        },
        Bind {
            prefix: any6,
            protocol: Protocol::Tcp,
            ports: 0..=u16::MAX,
        },
        Bind {
            prefix: any4,
            protocol: Protocol::Udp,
            ports: 1000..=60000,
        },
    ];
    let rows = GrowingRows {
        hops: (1..=40u32)
            .map(|i| Ipv4Addr::from(0x0a00_0000 + i))
            .collect(),
    };
    vec![RouteTable::new(binds, *b"0123456789abcdef", rows)]
}

/// Narrower binds over two tables, for the fast path's bind match: a host and a prefix with
/// port ranges whose edges a near miss crosses, an IPv6 bind first in its table, and a second
/// table behind the first.
pub fn narrow_tables() -> Vec<RouteTable<GrowingRows>> {
    let prefix =
        |addr: &str, len| Prefix::new(addr.parse().expect("address"), len).expect("prefix");
    let bind = |prefix, protocol, ports| Bind {
        prefix,
        protocol,
        ports,
    };
    let first = vec![
        bind(prefix("2001:db8::", 32), Protocol::Tcp, 0..=u16::MAX),
        bind(prefix("192.0.2.80", 32), Protocol::Tcp, 443..=443),
        bind(prefix("198.51.100.0", 24), Protocol::Udp, 1000..=2000),
    ];
    let second = vec![
        bind(prefix("192.0.2.0", 24), Protocol::Tcp, 80..=81),
        bind(prefix("192.0.2.80", 32), Protocol::Udp, 0..=0),
    ];
    let rows = || GrowingRows {
        hops: (1..=40u32)
            .map(|i| Ipv4Addr::from(0x0a00_0000 + i))
            .collect(),
    };
    vec![
        RouteTable::new(first, *b"0123456789abcdef", rows()),
        RouteTable::new(second, *b"fedcba9876543210", rows()),
    ]
}

/// [`tables`] and [`narrow_tables`], built once: a table reads all its rows when it is made.
static TABLES: LazyLock<[Vec<RouteTable<GrowingRows>>; 2]> =
    LazyLock::new(|| [tables(), narrow_tables()]);

/// Directors under test: GLB's defaults, and a migration hashing on everything with ports.
fn directors() -> [Director; 2] {
    let base = DirectorConfig::new(
        Ipv4Addr::new(192, 0, 2, 1),
        [2, 0, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 2],
    );
    let mut migrating = base;
    migrating.hash_fields = HashFields {
        src_addr: true,
        dst_addr: true,
        src_port: true,
        dst_port: true,
    };
    migrating.alt_hash_fields = Some(HashFields::default());
    migrating.forward_icmp_echo = false;
    [Director::new(base), Director::new(migrating)]
}

/// An untagged IPv4 frame without options carrying a TCP (`protocol` 6) or UDP (17) header
/// from `src`:`src_port` to `dst`:`dst_port` and no payload: a frame the fast path takes.
pub fn common_frame(
    src: [u8; 4],
    dst: [u8; 4],
    protocol: u8,
    src_port: u16,
    dst_port: u16,
) -> Vec<u8> {
    let transport_len: u16 = if protocol == 6 { 20 } else { 8 };
    let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 3, 0x08, 0x00];
    frame.extend_from_slice(&[0x45, 0]);
    frame.extend_from_slice(&(20 + transport_len).to_be_bytes());
    frame.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, protocol, 0, 0]);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src_port.to_be_bytes());
    frame.extend_from_slice(&dst_port.to_be_bytes());
    frame.resize(frame.len() + usize::from(transport_len) - 4, 0);
    if protocol == 17 {
        frame[38..40].copy_from_slice(&transport_len.to_be_bytes());
    }
    frame
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Runs `data` through every director and asserts the contract: no panic; every frame counted
/// once as routed, passed or dropped; an encapsulation lies inside the frame, its header's
/// lengths agree with what follows, its IPv4 checksum is valid, and its UDP checksum is valid
/// unless the inner packet's own transport checksum is wrong; the fast path's answer, bytes and
/// counters are the full procedure's. Returns how many directors
/// encapsulated the frame.
pub fn check_frame(data: &[u8]) -> usize {
    let [tables, narrow] = &*TABLES;
    for tables in [tables, narrow] {
        for (mut fast, mut full) in directors().into_iter().zip(directors()) {
            assert_eq!(
                fast.route(data, tables),
                full.route_in_full(data, tables),
                "the fast path decides as the full procedure"
            );
            assert_eq!(fast.counters(), full.counters());
        }
    }
    // The frame in a burst among common frames (routed by both table sets, one each way to a
    // full lane and a partial one), the same frame twice in a row included.
    let tcp = common_frame([10, 0, 0, 1], [192, 0, 2, 80], 6, 40_000, 443);
    let udp = common_frame([10, 0, 0, 2], [198, 51, 100, 7], 17, 40_001, 1500);
    check_burst(&[&tcp, data, &udp, data, &tcp, &udp]);
    // The frame after a burst read ahead of a shorter slice of it, at its address.
    for read_len in [data.len() / 2, data.len().saturating_sub(1)] {
        check_read_as_prefix(data, read_len);
    }
    let mut routed = 0;
    for mut director in directors() {
        if let Route::Encapsulate(encap) = director.route(data, tables) {
            check_encapsulation(data, &encap);
            routed += 1;
        }
        let counters = director.counters();
        assert_eq!(counters.get(Counter::PacketsTotal), 1);
        let dropped: u64 = DropReason::ALL
            .iter()
            .map(|r| counters.get(r.counter()))
            .sum();
        let decided = dropped
            + counters.get(Counter::RoutedPacketsTotal)
            + counters.get(Counter::PassedPacketsTotal);
        assert_eq!(decided, 1, "{counters:?}");
    }
    routed
}

/// A frame's route with the bytes it puts on the wire, owned, to compare routes of different
/// directors.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Encapsulated: table, row and the whole output frame.
    Encapsulate {
        table: usize,
        row: u16,
        output: Vec<u8>,
    },
    Pass,
    Drop(DropReason),
}

impl Outcome {
    fn of(route: Route<'_>, frame: &[u8]) -> Self {
        match route {
            Route::Encapsulate(encap) => Outcome::Encapsulate {
                table: encap.table,
                row: encap.row,
                output: encap.output(frame),
            },
            Route::Pass => Outcome::Pass,
            Route::Drop(reason) => Outcome::Drop(reason),
        }
    }

    /// What the runtime puts on the wire for a plan, the header written by `write_planned`.
    fn of_plan(plan: Plan, director: &Director, frame: &[u8]) -> Self {
        match plan {
            Plan::Encapsulate {
                strip,
                inner_len,
                header_len,
            } => {
                let inner = &frame[strip..strip + inner_len];
                let mut output = vec![0; header_len];
                assert!(director.write_planned(&mut output, inner));
                output.extend_from_slice(inner);
                // Table and row are not part of a plan: compared through the output alone.
                Outcome::Encapsulate {
                    table: 0,
                    row: 0,
                    output,
                }
            }
            Plan::Pass => Outcome::Pass,
            Plan::Drop(reason) => Outcome::Drop(reason),
        }
    }

    fn clone_without_place(&self) -> Self {
        match self {
            Outcome::Encapsulate { output, .. } => Outcome::Encapsulate {
                table: 0,
                row: 0,
                output: output.clone(),
            },
            Outcome::Pass => Outcome::Pass,
            Outcome::Drop(reason) => Outcome::Drop(*reason),
        }
    }
}

/// Routes `frames` as one burst read ahead ([`Director::prepare_burst`]) and each frame alone,
/// with every director over both table sets, and asserts that each frame's route, output bytes
/// and the counters are the same: routed by `route`, planned and written by `plan` and
/// `write_planned` (the runtime's way), and routed in reverse order after the burst was read in
/// order (which must forget what was read, not misuse it).
pub fn check_burst(frames: &[&[u8]]) {
    let tables = tables();
    for tables in [&tables, &narrow_tables()] {
        let alone = directors();
        let routed = directors();
        let planned = directors();
        let reversed = directors();
        for (((mut alone, mut routed), mut planned), mut reversed) in
            alone.into_iter().zip(routed).zip(planned).zip(reversed)
        {
            routed.prepare_burst(frames.iter().copied(), tables);
            planned.prepare_burst(frames.iter().copied(), tables);
            reversed.prepare_burst(frames.iter().copied(), tables);
            let mut expected = Vec::with_capacity(frames.len());
            for (index, frame) in frames.iter().enumerate() {
                let outcome = Outcome::of(alone.route(frame, tables), frame);
                let by_route = Outcome::of(routed.route(frame, tables), frame);
                assert_eq!(by_route, outcome, "frame {index} of {}", frames.len());
                let plan = planned.plan(frame, tables);
                let by_plan = Outcome::of_plan(plan, &planned, frame);
                assert_eq!(
                    by_plan,
                    outcome.clone_without_place(),
                    "frame {index} planned"
                );
                expected.push(outcome);
            }
            for (index, frame) in frames.iter().enumerate().rev() {
                let outcome = Outcome::of(reversed.route(frame, tables), frame);
                assert_eq!(outcome, expected[index], "frame {index} in reverse order");
            }
            assert_eq!(routed.counters(), alone.counters());
            assert_eq!(planned.counters(), alone.counters());
            assert_eq!(reversed.counters(), alone.counters());
        }
    }
}

/// An encapsulation lies inside the frame, its header's lengths agree with what follows, its IPv4
/// checksum is valid, and its UDP checksum is valid unless the inner packet's own transport
/// checksum is wrong, and then wrong by exactly that error.
fn check_encapsulation(data: &[u8], encap: &Encapsulation<'_>) {
    assert!(encap.strip + encap.inner_len <= data.len());
    let out = encap.output(data);
    let header_len = encap.header.len();
    let hops = encap.header.hops().count();
    assert!((1..=31).contains(&hops));
    assert_eq!(header_len, 50 + 4 * (hops - 1));
    let ip = Ipv4Packet::new_checked(&out[14..]).expect("outer IPv4");
    assert!(ip.verify_checksum());
    assert_eq!(usize::from(ip.total_len()), out.len() - 14);
    let udp_len = usize::from(u16::from_be_bytes([out[38], out[39]]));
    assert_eq!(udp_len, out.len() - 34);
    let pseudo = u32::from(checksum::sum(&out[26..34])) + 17 + udp_len as u32;
    let sum = fold(pseudo + u32::from(checksum::sum(&out[34..])));
    // Where the inner packet's sum is derived from its transport checksum, the outer checksum
    // verifies to exactly what the inner one does: 0xffff when it is right, the same error when
    // it is wrong.
    let expected = transport_check(&out[header_len..]).unwrap_or(0xffff);
    assert_eq!(sum, expected, "UDP checksum");
    assert_ne!(&out[40..42], &[0, 0]);
}

/// For an inner packet whose sum the director derives from its transport checksum (an
/// unfragmented IPv4 or extension-free IPv6 packet with consistent lengths, carrying TCP, UDP
/// with a checksum, ICMPv4 or ICMPv6: docs/director-packet-path.md, "The inner packet's sum"),
/// the sum a receiver verifies it with: the segment's with the pseudo-header (none for ICMPv4),
/// 0xffff when the checksum is right. `None` for every other packet.
fn transport_check(inner: &[u8]) -> Option<u16> {
    let word = |at: usize| u16::from_be_bytes([inner[at], inner[at + 1]]);
    let (ipv6, header_len, protocol) = match inner.first()? >> 4 {
        4 if inner.len() >= 20 => {
            let header_len = usize::from(inner[0] & 0x0f) * 4;
            let whole = usize::from(word(2)) == inner.len() && header_len <= inner.len();
            let fragment = word(6) & 0x3fff != 0;
            if header_len < 20 || !whole || fragment {
                return None;
            }
            (false, header_len, inner[9])
        }
        6 if inner.len() >= 40 && usize::from(word(4)) + 40 == inner.len() => (true, 40, inner[6]),
        _ => return None,
    };
    let segment = &inner[header_len..];
    let addrs = if ipv6 { &inner[8..40] } else { &inner[12..20] };
    let pseudo = u32::from(checksum::sum(addrs)) + u32::from(protocol) + segment.len() as u32;
    let pseudo = match protocol {
        6 if segment.len() >= 20 => pseudo,
        17 if segment.len() >= 8
            && usize::from(u16::from_be_bytes([segment[4], segment[5]])) == segment.len()
            && segment[6..8] != [0, 0] =>
        {
            pseudo
        }
        58 if ipv6 && segment.len() >= 8 => pseudo,
        1 if !ipv6 && segment.len() >= 8 => 0,
        _ => return None,
    };
    Some(fold(pseudo + u32::from(checksum::sum(segment))))
}

/// Routes `frame` after a burst read ahead of a slice of it at the same address but of
/// `read_len` bytes (a burst names a frame by its address alone), and asserts that the route,
/// output bytes and counters are the frame's alone: a slice too short for the fast path lends
/// no hash, and any longer one hashed the same bytes.
pub fn check_read_as_prefix(frame: &[u8], read_len: usize) {
    let [tables, _] = &*TABLES;
    for (mut alone, mut ahead) in directors().into_iter().zip(directors()) {
        ahead.prepare_burst([&frame[..read_len]], tables);
        let outcome = Outcome::of(alone.route(frame, tables), frame);
        assert_eq!(
            Outcome::of(ahead.route(frame, tables), frame),
            outcome,
            "read {read_len} of {} bytes",
            frame.len()
        );
        assert_eq!(ahead.counters(), alone.counters());
    }
}
