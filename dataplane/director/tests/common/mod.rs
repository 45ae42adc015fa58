//! Shared by the director's integration tests: a small fake table, binds, and frame builders.
#![allow(dead_code)]

use chance_director::{Bind, DirectorConfig, HashFields, Prefix, Protocol, RouteTable, Rows};
use chance_testkit::gue::GueFrame;
use chance_testkit::inner::{Ipv4Packet, ACK, L4};
use core::net::{Ipv4Addr, Ipv6Addr};

/// The director's outer source address (GLB's test suite uses 65.65.65.65).
pub const DIRECTOR: Ipv4Addr = Ipv4Addr::new(65, 65, 65, 65);
pub const GATEWAY_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
pub const PORT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const CLIENT_MAC: [u8; 6] = [0xb6, 0x59, 0x5f, 0x11, 0xc1, 0x2a];
/// GLB's test tables' hash key (12345678901234561234567890123456).
pub const HASH_KEY: [u8; 16] = [
    0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56,
];

pub const VIP4: Ipv4Addr = Ipv4Addr::new(1, 1, 1, 1);
pub const CLIENT4: Ipv4Addr = Ipv4Addr::new(10, 11, 12, 13);
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0xfdb4, 0x98ce, 0x52d4, 0, 0, 0, 0, 0x42);
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);
pub const CLIENT_PORT: u16 = 45678;

pub const HOP_A: Ipv4Addr = Ipv4Addr::new(3, 4, 5, 6);
pub const HOP_B: Ipv4Addr = Ipv4Addr::new(2, 3, 4, 5);
pub const HOP_C: Ipv4Addr = Ipv4Addr::new(1, 2, 3, 4);

/// Rows that cycle through a few hop lists: row `r` has `lists[r % lists.len()]`.
#[derive(Debug, Clone)]
pub struct FakeRows {
    pub lists: Vec<Vec<Ipv4Addr>>,
}

impl Rows for FakeRows {
    fn hops(&self, row: u16) -> &[Ipv4Addr] {
        &self.lists[usize::from(row) % self.lists.len()]
    }
}

impl FakeRows {
    /// Every row has `hops`.
    pub fn uniform(hops: &[Ipv4Addr]) -> Self {
        Self {
            lists: vec![hops.to_vec()],
        }
    }

    /// The hop list of row `row`.
    pub fn of(&self, row: u16) -> Vec<Ipv4Addr> {
        self.hops(row).to_vec()
    }
}

pub fn bind(prefix: &str, protocol: Protocol, ports: core::ops::RangeInclusive<u16>) -> Bind {
    let (addr, len) = prefix.split_once('/').unwrap_or((prefix, ""));
    let addr = addr.parse().unwrap();
    let prefix = if len.is_empty() {
        Prefix::host(addr)
    } else {
        Prefix::new(addr, len.parse().unwrap()).unwrap()
    };
    Bind {
        prefix,
        protocol,
        ports,
    }
}

/// GLB's first test table's binds (1.1.1.1 tcp 80 and 443) plus an IPv6 and a UDP bind.
pub fn binds() -> Vec<Bind> {
    vec![
        bind("1.1.1.1", Protocol::Tcp, 80..=80),
        bind("1.1.1.1", Protocol::Tcp, 443..=443),
        bind("fdb4:98ce:52d4::42", Protocol::Tcp, 80..=80),
        bind("1.1.2.0/24", Protocol::Udp, 5000..=5999),
    ]
}

pub fn table(rows: FakeRows) -> RouteTable<FakeRows> {
    RouteTable::new(binds(), HASH_KEY, rows)
}

pub fn config() -> DirectorConfig {
    DirectorConfig::new(DIRECTOR, GATEWAY_MAC, PORT_MAC)
}

pub fn fields(names: &[&str]) -> HashFields {
    HashFields::from_names(names.iter().copied()).unwrap()
}

/// An Ethernet frame from the client's router carrying `payload`.
pub fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + payload.len());
    frame.extend_from_slice(&PORT_MAC);
    frame.extend_from_slice(&CLIENT_MAC);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

pub fn eth4(packet: &[u8]) -> Vec<u8> {
    ethernet(0x0800, packet)
}

pub fn eth6(packet: &[u8]) -> Vec<u8> {
    ethernet(0x86dd, packet)
}

/// What GLB's director sends for `inner` along `hops` with UDP source port `sport`, written by
/// the test kit's independent GUE writer.
pub fn glb_frame(inner: &[u8], hops: &[Ipv4Addr], sport: u16, ipv6: bool) -> Vec<u8> {
    let base = if ipv6 {
        GueFrame::ipv6(inner.to_vec())
    } else {
        GueFrame::ipv4(inner.to_vec())
    };
    GueFrame {
        eth_dst: GATEWAY_MAC,
        eth_src: PORT_MAC,
        ip_id: 0,
        ip_df: true,
        saddr: DIRECTOR,
        daddr: hops[0],
        udp_sport: sport,
        udp_dport: 19523,
        udp_checksum: chance_testkit::gue::Checksum::Valid,
        hops: hops[1..].to_vec(),
        ..base
    }
    .build()
}

/// A router's fragmentation-needed error to the VIP, quoting the first 28 bytes of the VIP's
/// ACK to the client (1.1.1.1:80 -> 10.11.12.13:45678).
pub fn frag_needed_for_the_client() -> Vec<u8> {
    let quoted = Ipv4Packet::new(VIP4, CLIENT4, L4::tcp(80, CLIENT_PORT, ACK)).build();
    Ipv4Packet::new(
        Ipv4Addr::new(10, 11, 99, 99),
        VIP4,
        L4::icmpv4_frag_needed(1400, &quoted[..28]),
    )
    .build()
}
