//! The throughput benchmark's traffic mix: GUE frames in fixed shares, a fixed shuffled order,
//! and the flows the host owns. `chance-mix` writes it as a pcap plus a chanced configuration
//! (`deploy/bench-throughput.sh`); the engine's criterion bench (`benches/mix.rs`) processes it in
//! memory.
//!
//! | share | frame | engine verdict |
//! |---|---|---|
//! | 60 % | GUE, one hop left, inner TCP ACK of one of the owned flows | accept (established) |
//! | 20 % | GUE, one hop left, inner TCP ACK of a flow nobody owns | forward (GUE) |
//! | 10 % | GUE, hop list exhausted (last hop), inner TCP ACK | accept (last hop) |
//! |  5 % | GUE, one hop left, inner TCP SYN | accept (SYN) |
//! |  5 % | plain TCP to this host (port 22), not GUE | pass |
//!
//! GUE frames are 94 bytes (Ethernet, IPv4, UDP, GUE, unigue, one hop, inner IPv4 + 20-byte TCP,
//! no payload); the plain frames are 60 bytes (54 padded to the Ethernet minimum).

use crate::gue::GueFrame;
use crate::inner::{self, Ipv4Packet, L4};
use core::net::Ipv4Addr;

/// This host's encapsulation address.
pub const ENCAP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// The GUE port (chance's default).
pub const GUE_PORT: u16 = 19523;
/// The director (outer source).
const DIRECTOR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);
/// The second-chance backend in every hop list.
const SECOND: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
/// The service address (the inner destination; the local side of every flow).
pub const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The service port.
pub const VIP_PORT: u16 = 443;
/// An administrator's host, for the plain (not GUE) frames.
const ADMIN: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 250);

/// What a frame is meant to exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Established,
    Unknown,
    LastHop,
    Syn,
    NotOurs,
}

impl Kind {
    /// The engine counter that decides it.
    pub fn counter(self) -> &'static str {
        match self {
            Kind::Established => "accepted_packets_total_established",
            Kind::Unknown => "forwarded_packets_total_gue",
            Kind::LastHop => "accepted_packets_total_last_hop",
            Kind::Syn => "accepted_packets_total_syn",
            Kind::NotOurs => "passed_packets_total",
        }
    }
}

/// Shares in percent; Established takes the remainder.
const SHARES: [(Kind, usize); 4] = [
    (Kind::Unknown, 20),
    (Kind::LastHop, 10),
    (Kind::Syn, 5),
    (Kind::NotOurs, 5),
];

/// The client side of owned flow `i`.
pub fn client(i: usize) -> (Ipv4Addr, u16) {
    let host = 1 + (i % 249) as u8;
    (
        Ipv4Addr::new(198, 51, 100, host),
        32768 + (i % 16384) as u16,
    )
}

/// A client port that no configured flow uses (the unknown and last-hop frames).
fn unknown_port(i: usize) -> u16 {
    49152 + (i % 16384) as u16
}

/// A client port for the SYNs, apart from every other kind's: an accepted SYN may teach the flow
/// table its flow, which must not turn the unknown flows into known ones.
fn syn_port(i: usize) -> u16 {
    16384 + (i % 16384) as u16
}

/// splitmix64: a fixed, dependency-free sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn gue(inner: Vec<u8>, sport: u16, next_hop: u8) -> Vec<u8> {
    GueFrame {
        saddr: DIRECTOR,
        daddr: ENCAP,
        udp_sport: sport,
        udp_dport: GUE_PORT,
        ..GueFrame::ipv4(inner)
    }
    .hops(&[SECOND])
    .next_hop(next_hop)
    .build()
}

/// A frame of kind `kind`; `i` numbers the frames of that kind.
pub fn frame(kind: Kind, i: usize, flows: usize) -> Vec<u8> {
    // Directors spread flows over UDP source ports.
    let sport = 40000 + (i % 1024) as u16;
    match kind {
        Kind::Established => {
            let (addr, port) = client(i % flows);
            let tcp = Ipv4Packet::new(addr, VIP, L4::tcp(port, VIP_PORT, inner::ACK)).build();
            gue(tcp, sport, 0)
        }
        Kind::Unknown | Kind::LastHop | Kind::Syn => {
            let (addr, _) = client(i);
            let (port, flags) = if kind == Kind::Syn {
                (syn_port(i), inner::SYN)
            } else {
                (unknown_port(i), inner::ACK)
            };
            let tcp = Ipv4Packet::new(addr, VIP, L4::tcp(port, VIP_PORT, flags)).build();
            gue(tcp, sport, u8::from(kind == Kind::LastHop))
        }
        Kind::NotOurs => plain(
            crate::gue::ROUTER_MAC,
            crate::gue::HOST_MAC,
            Ipv4Packet::new(
                ADMIN,
                ENCAP,
                L4::tcp(50000 + (i % 1000) as u16, 22, inner::ACK),
            ),
        ),
    }
}

/// An IPv4 packet in an Ethernet frame padded to the minimum.
fn plain(src_mac: [u8; 6], dst_mac: [u8; 6], packet: Ipv4Packet) -> Vec<u8> {
    let mut out = Vec::with_capacity(60);
    out.extend_from_slice(&dst_mac);
    out.extend_from_slice(&src_mac);
    out.extend_from_slice(&[0x08, 0x00]);
    out.extend(packet.build());
    out.resize(60, 0);
    out
}

/// The host's reply on owned flow `i` (a TCP ACK from the service to the client), as it leaves
/// the host's stack through the kernel port: what egress learning learns the flow from.
pub fn reply(i: usize) -> Vec<u8> {
    let (addr, port) = client(i);
    plain(
        crate::gue::HOST_MAC,
        crate::gue::ROUTER_MAC,
        Ipv4Packet::new(VIP, addr, L4::tcp(VIP_PORT, port, inner::ACK)),
    )
}

/// The kinds of all frames, in capture order.
pub fn schedule(frames: usize, seed: u64) -> Vec<Kind> {
    let mut kinds = Vec::with_capacity(frames);
    for (kind, percent) in SHARES {
        kinds.extend(std::iter::repeat_n(kind, frames * percent / 100));
    }
    kinds.resize(frames, Kind::Established);
    // Fisher-Yates with a fixed seed: the same capture every time.
    let mut rng = Rng(seed);
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.below(i + 1));
    }
    kinds
}

/// `frames` frames of the mix with `flows` owned flows, in capture order, and how many of each
/// kind (indexed by `Kind as usize`).
pub fn frames(frames: usize, flows: usize, seed: u64) -> (Vec<Vec<u8>>, [usize; 5]) {
    let mut seen = [0usize; 5];
    let out = schedule(frames, seed)
        .iter()
        .map(|&kind| {
            let slot = &mut seen[kind as usize];
            *slot += 1;
            frame(kind, *slot - 1, flows)
        })
        .collect();
    (out, seen)
}
