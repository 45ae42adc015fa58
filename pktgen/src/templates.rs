//! The traffic templates: every frame the generator sends, built once before sending starts.
//!
//! Template `i` has a kind, a flow, a hop count and a size, each drawn from a seeded schedule
//! that holds the profile's shares exactly (largest remainder over the template count, then
//! shuffled): kinds from `[mix]`, sizes from `size`, hop counts from `hops`. Established ACKs
//! cycle through the owned flows, unknown ACKs through the others, UDP and ICMP through all of
//! them, and each SYN has a fresh flow of its own ([`crate::flows::FlowSet::fresh`]).
//!
//! A frame is Ethernet + outer IPv4 (director -> encap address) + UDP (to the GUE port; the
//! source port spreads flows as directors do) + GUE + GLB hop list (`next_hop` 0) + the inner
//! IPv4/IPv6 packet, whose payload starts with the [`crate::stamp`] and is padded with zeros to
//! the frame size. A size smaller than the headers plus the stamp gives the smallest frame the
//! template can be (for example 122 bytes, FCS included, for IPv4 TCP with one hop).
//!
//! With `encapsulation = "none"` a frame is the client's own: Ethernet + the inner packet,
//! padded with zeros to the frame size (64 bytes for IPv4 TCP), without a stamp (what a
//! director receives; nothing it sends back can be matched to a template).
//!
//! Every byte of every frame past its headers and stamp is zero, so a frame is its **head**
//! followed by zeros: the frame padded to 64 bytes, or its first [`Templates::prefix`] bytes
//! when it is longer (the prefix: the longest headers + stamp of all templates, rounded up to
//! 64 bytes). The transmit loop copies only the head into mbufs whose buffers are zero beyond
//! the prefix ([`crate::tx::zero_pool`]); [`Templates::build`] checks that every frame has
//! this shape.

use crate::flows::{FlowSet, Rng};
use crate::profile::{Encapsulation, Profile, FCS_LEN};
use crate::stamp::{self, STAMP_LEN};
use chance_testkit::etherparse::{IcmpEchoHeader, Icmpv4Type, Icmpv6Type};
use chance_testkit::gue::GueFrame;
use chance_testkit::inner::{Ipv4Packet, Ipv6Packet, ACK, L4, SYN};
use core::net::IpAddr;
use serde::Serialize;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// TCP SYN.
    TcpSyn,
    /// TCP ACK of an owned flow.
    TcpEstablished,
    /// TCP ACK of a flow the host does not own.
    TcpUnknown,
    /// UDP.
    Udp,
    /// ICMP/ICMPv6 echo request.
    Icmp,
}

impl Kind {
    /// Every kind, in profile order.
    pub const ALL: [Kind; 5] = [
        Kind::TcpSyn,
        Kind::TcpEstablished,
        Kind::TcpUnknown,
        Kind::Udp,
        Kind::Icmp,
    ];

    /// The profile key.
    pub fn name(self) -> &'static str {
        match self {
            Kind::TcpSyn => "tcp_syn",
            Kind::TcpEstablished => "tcp_established",
            Kind::TcpUnknown => "tcp_unknown",
            Kind::Udp => "udp",
            Kind::Icmp => "icmp",
        }
    }
}

/// What chance does with a frame (cls_redirect's rules on this traffic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// Decapsulated for the host (last hop, SYN, owned flow, echo request).
    Accept,
    /// Sent on to the next hop.
    Forward,
}

/// Where a template's frame lies in [`Templates::bytes`]; what the transmit loop reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Offset in the byte store.
    pub offset: u32,
    /// Frame length (no FCS).
    pub len: u16,
    /// Offset of the stamp within the frame (none in a client's frame).
    pub stamp: Option<u16>,
    /// Bytes the transmit loop copies ([`Templates::head`]): the frame padded to a multiple of
    /// 64 bytes, or [`Templates::prefix`] when that is shorter (the rest of the frame is zeros).
    pub copy: u16,
    /// Offset of the head in [`Templates::heads`].
    pub head: u32,
}

/// What else is known about a template (classification, tests, the summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// The kind.
    pub kind: Kind,
    /// Index of the flow.
    pub flow: u32,
    /// Hops in the list.
    pub hops: u8,
    /// Inner IPv6.
    pub ipv6: bool,
    /// What chance should do with it.
    pub expect: Expect,
}

/// All templates.
#[derive(Debug, Clone)]
pub struct Templates {
    /// Every frame, back to back, each padded to a multiple of 64 bytes.
    pub bytes: Vec<u8>,
    /// Every frame's head ([`Templates::head`]), back to back from a 64-byte boundary in
    /// memory: what the transmit loop reads, in template order, as one dense array (the heads
    /// of large frames are far apart in `bytes`).
    pub heads: Vec<u8>,
    /// One per template.
    pub slots: Vec<Slot>,
    /// One per template.
    pub meta: Vec<Meta>,
    /// The GUE port (for classifying what comes back).
    pub gue_port: u16,
    /// The head of every frame: the largest end of headers + stamp over the templates, rounded
    /// up to [`COPY_BLOCK`]. Every non-zero byte of every frame lies before it.
    pub prefix: usize,
}

/// Counts proportional to `weights` summing to exactly `n` (largest remainder).
pub fn apportion(weights: &[u32], n: usize) -> Vec<usize> {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    if total == 0 {
        return vec![0; weights.len()];
    }
    let mut counts: Vec<usize> = weights
        .iter()
        .map(|&w| (u64::from(w) * n as u64 / total) as usize)
        .collect();
    let mut rest: Vec<(u64, usize)> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| (u64::from(w) * n as u64 % total, i))
        .collect();
    // Largest remainder first; ties to the earlier entry.
    rest.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let missing = n - counts.iter().sum::<usize>();
    for &(_, i) in rest.iter().take(missing) {
        counts[i] += 1;
    }
    counts
}

/// `n` values with the exact shares of `weighted`, shuffled with `rng`.
fn schedule<T: Copy>(weighted: &[(T, u32)], n: usize, rng: &mut Rng) -> Vec<T> {
    let weights: Vec<u32> = weighted.iter().map(|&(_, w)| w).collect();
    let mut out = Vec::with_capacity(n);
    for (&(v, _), c) in weighted.iter().zip(apportion(&weights, n)) {
        out.extend(std::iter::repeat_n(v, c));
    }
    rng.shuffle(&mut out);
    out
}

/// Templates are stored in blocks of this many bytes.
pub const COPY_BLOCK: usize = 64;

/// The bytes of the outer headers for `hops` hops (Ethernet to the end of the hop list).
pub const fn outer_len(hops: u8) -> usize {
    14 + 20 + 8 + 4 + 4 + 4 * hops as usize
}

impl Templates {
    /// Builds the templates of `profile` (validated) over `flows`.
    pub fn build(profile: &Profile, flows: &FlowSet) -> Templates {
        let n = profile.template_count() as usize;
        let mut rng = Rng(profile.seed);
        let m = &profile.mix;
        let kinds = schedule(
            &[
                (Kind::TcpSyn, m.tcp_syn),
                (Kind::TcpEstablished, m.tcp_established),
                (Kind::TcpUnknown, m.tcp_unknown),
                (Kind::Udp, m.udp),
                (Kind::Icmp, m.icmp),
            ],
            n,
            &mut rng,
        );
        let sizes = schedule(&profile.size.weighted(), n, &mut rng);
        let hop_weights: Vec<(u8, u32)> = profile.hops.iter().map(|&h| (h, 1)).collect();
        let hops = schedule(&hop_weights, n, &mut rng);

        // The profile's flows in index order: which of them are owned is a shuffle, so UDP and
        // ICMP templates cycling through them meet owned flows at the owned share.
        let all: Vec<u32> = (0..(flows.owned.len() + flows.not_owned.len()) as u32).collect();
        let mut cursors = [0usize; 4];
        let mut bytes = Vec::new();
        let mut slots = Vec::with_capacity(n);
        let mut meta = Vec::with_capacity(n);
        // Where each frame's non-zero bytes end (its headers and stamp).
        let mut tails = Vec::with_capacity(n);
        for i in 0..n {
            let kind = kinds[i];
            let (pool, c) = match kind {
                Kind::TcpEstablished => (&flows.owned, 0),
                Kind::TcpUnknown => (&flows.not_owned, 1),
                Kind::TcpSyn => (&flows.fresh, 3),
                Kind::Udp | Kind::Icmp => (&all, 2),
            };
            let flow_index = pool[cursors[c] % pool.len()];
            cursors[c] += 1;
            let flow = &flows.flows[flow_index as usize];
            let h = hops[i];
            let frame = build_frame(profile, flow_index, flow, kind, h, sizes[i]);
            let expect = match kind {
                _ if h == 0 => Expect::Accept,
                Kind::TcpSyn | Kind::TcpEstablished | Kind::Icmp => Expect::Accept,
                Kind::TcpUnknown => Expect::Forward,
                Kind::Udp if flow.owned => Expect::Accept,
                Kind::Udp => Expect::Forward,
            };
            tails.push(frame.tail);
            slots.push(Slot {
                offset: u32::try_from(bytes.len()).expect("templates fit 4 GiB"),
                len: frame.bytes.len() as u16,
                stamp: frame.stamp.map(|at| at as u16),
                copy: 0, // below, once the prefix is known
                head: 0,
            });
            bytes.extend_from_slice(&frame.bytes);
            // Each frame starts on a 64-byte boundary and is padded to the next one, so its head
            // ([`Templates::head`], whole 64-byte blocks) can be taken from here below.
            bytes.resize(bytes.len().next_multiple_of(COPY_BLOCK), 0);
            meta.push(Meta {
                kind,
                flow: flow_index,
                hops: h,
                ipv6: flow.is_ipv6(),
                expect,
            });
        }
        let prefix = tails
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .next_multiple_of(COPY_BLOCK);
        for (i, (s, &tail)) in slots.iter_mut().zip(&tails).enumerate() {
            let (start, len) = (s.offset as usize, usize::from(s.len));
            // What lets the transmit loop copy the head only: nothing but zeros after the
            // stamp, and the stamp inside the prefix.
            assert!(
                tail <= prefix && tail <= len,
                "template {i}: stamp past the prefix"
            );
            assert!(
                bytes[start + tail..start + len].iter().all(|&b| b == 0),
                "template {i}: non-zero bytes after the stamp"
            );
            s.copy = len.next_multiple_of(COPY_BLOCK).min(prefix) as u16;
        }
        let total: usize = slots.iter().map(|s| usize::from(s.copy)).sum();
        let mut heads = vec![0u8; total + COPY_BLOCK];
        // From a 64-byte boundary in memory, so that each block copied is one cache line (a
        // clone of the templates may lose this, which costs speed only).
        let mut at = heads.as_ptr().align_offset(COPY_BLOCK).min(COPY_BLOCK);
        for s in &mut slots {
            let (from, n) = (s.offset as usize, usize::from(s.copy));
            heads[at..at + n].copy_from_slice(&bytes[from..from + n]);
            s.head = u32::try_from(at).expect("heads fit 4 GiB");
            at += n;
        }
        Templates {
            bytes,
            heads,
            slots,
            meta,
            gue_port: profile.addresses.gue_port,
            prefix,
        }
    }

    /// The number of templates.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The frame of template `i`.
    #[inline(always)]
    pub fn frame(&self, i: usize) -> &[u8] {
        let s = self.slots[i];
        &self.bytes[s.offset as usize..s.offset as usize + usize::from(s.len)]
    }

    /// The head of template `i`'s frame, `slots[i].copy` bytes (a multiple of 64): what the
    /// transmit loop copies into an mbuf. The frame is the head followed by zeros up to its
    /// length, or the first `slots[i].len` bytes of the head (a frame shorter than the prefix,
    /// with its padding to 64 bytes, which is zeros).
    #[inline(always)]
    pub fn head(&self, i: usize) -> &[u8] {
        let s = self.slots[i];
        let start = s.head as usize;
        &self.heads[start..start + usize::from(s.copy)]
    }

    /// The longest frame (no FCS): what an mbuf must hold.
    pub fn max_len(&self) -> usize {
        self.slots
            .iter()
            .map(|s| usize::from(s.len))
            .max()
            .unwrap_or(0)
    }

    /// Mean frame length over the templates (no FCS).
    pub fn mean_len(&self) -> f64 {
        if self.slots.is_empty() {
            return 0.0;
        }
        self.slots.iter().map(|s| f64::from(s.len)).sum::<f64>() / self.slots.len() as f64
    }

    /// Template `i`'s frame with a stamp (if it carries one): a copy, for pcap mode and tests.
    pub fn stamped(&self, i: usize, seq: u64, tsc: u64) -> Vec<u8> {
        let mut f = self.frame(i).to_vec();
        if let Some(at) = self.slots[i].stamp {
            stamp::write(&mut f[usize::from(at)..], i as u32, seq, tsc);
        }
        f
    }
}

struct Built {
    bytes: Vec<u8>,
    /// Where the stamp is, if there is one.
    stamp: Option<usize>,
    /// Where the frame's non-zero bytes end.
    tail: usize,
}

/// Frame for one template: `size` includes the FCS.
fn build_frame(
    profile: &Profile,
    index: u32,
    flow: &crate::flows::Flow,
    kind: Kind,
    hops: u8,
    size: u16,
) -> Built {
    let a = &profile.addresses;
    let ipv6 = flow.is_ipv6();
    let l3 = if ipv6 { 40 } else { 20 };
    let l4_len = match kind {
        Kind::TcpSyn | Kind::TcpEstablished | Kind::TcpUnknown => 20,
        Kind::Udp | Kind::Icmp => 8,
    };
    let target = usize::from(size) - FCS_LEN;
    let client = profile.encapsulation == Encapsulation::None;
    let headers = if client { 14 } else { outer_len(hops) } + l3 + l4_len;
    let payload = if client {
        // The packet fills the frame (IPv6 packets too long for it make a longer frame).
        vec![0u8; target.saturating_sub(headers)]
    } else {
        let mut stamped = vec![0u8; target.saturating_sub(headers).max(STAMP_LEN)];
        stamped[..STAMP_LEN].copy_from_slice(&stamp::PLACEHOLDER);
        stamped
    };
    let (cport, sport) = (flow.client.port(), flow.service.port());
    // Per-flow, fixed TCP sequence numbers (nothing checks them; they make flows distinct).
    let seq = 0x1000_0000u32.wrapping_add(index.wrapping_mul(2_654_435_761));
    let echo = IcmpEchoHeader {
        id: cport,
        seq: (index & 0xffff) as u16,
    };
    let l4 = match kind {
        Kind::TcpSyn => L4::Tcp {
            sport: cport,
            dport: sport,
            flags: SYN,
            seq,
            ack: 0,
            payload,
        },
        Kind::TcpEstablished | Kind::TcpUnknown => L4::Tcp {
            sport: cport,
            dport: sport,
            flags: ACK,
            seq,
            ack: 0x2000_0000,
            payload,
        },
        Kind::Udp => L4::Udp {
            sport: cport,
            dport: sport,
            payload,
        },
        Kind::Icmp if ipv6 => L4::Icmpv6 {
            icmp_type: Icmpv6Type::EchoRequest(echo),
            payload,
        },
        Kind::Icmp => L4::Icmpv4 {
            icmp_type: Icmpv4Type::EchoRequest(echo),
            payload,
        },
    };
    let inner = match (flow.client.ip(), flow.service.ip()) {
        (IpAddr::V4(c), IpAddr::V4(s)) => Ipv4Packet::new(c, s, l4).build(),
        (IpAddr::V6(c), IpAddr::V6(s)) => Ipv6Packet::new(c, s, l4).build(),
        _ => unreachable!("a flow's two sides have one family"),
    };
    if client {
        let ethertype: [u8; 2] = if ipv6 { [0x86, 0xdd] } else { [0x08, 0x00] };
        let mut bytes = [&a.eth_dst.0[..], &a.eth_src.0[..], &ethertype[..], &inner].concat();
        // The headers are the only non-zero bytes (the payload is zeros).
        let tail = 14 + l3 + l4_len;
        bytes.resize(bytes.len().max(target), 0);
        return Built {
            bytes,
            stamp: None,
            tail,
        };
    }
    let frame = GueFrame {
        eth_dst: a.eth_dst.0,
        eth_src: a.eth_src.0,
        saddr: a.director,
        daddr: a.encap,
        // Directors spread flows over UDP source ports (a hash of the inner flow).
        udp_sport: 32768 + (index.wrapping_mul(0x9e37_79b1) >> 17) as u16,
        udp_dport: a.gue_port,
        ..if ipv6 {
            GueFrame::ipv6(inner)
        } else {
            GueFrame::ipv4(inner)
        }
    }
    .hops(&a.next_hops[..usize::from(hops)])
    .build();
    let stamp = headers;
    debug_assert_eq!(&frame[stamp..stamp + 2], &stamp::MAGIC);
    Built {
        bytes: frame,
        stamp: Some(stamp),
        tail: stamp + STAMP_LEN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Sizes;

    #[test]
    fn apportion_is_exact() {
        assert_eq!(apportion(&[7, 4, 1], 12), [7, 4, 1]);
        assert_eq!(apportion(&[7, 4, 1], 100), [59, 33, 8]); // remainders tie: earlier first
        assert_eq!(apportion(&[1, 1, 1], 10), [4, 3, 3]);
        assert_eq!(apportion(&[0, 5], 3), [0, 3]);
        assert_eq!(apportion(&[0, 0], 3), [0, 0]);
    }

    #[test]
    fn udp_meets_owned_flows_at_the_owned_share() {
        let p = Profile {
            flows: 4096,
            templates: 8192,
            ..Profile::default()
        };
        let t = Templates::build(&p, &FlowSet::new(&p));
        let udp: Vec<_> = t.meta.iter().filter(|m| m.kind == Kind::Udp).collect();
        let accepted = udp.iter().filter(|m| m.expect == Expect::Accept).count();
        let share = accepted as f64 / udp.len() as f64;
        assert!((share - 0.6).abs() < 0.05, "{share}");
        // 20 % unknown ACKs + 40 % of the 10 % UDP are forwarded.
        let forward = t
            .meta
            .iter()
            .filter(|m| m.expect == Expect::Forward)
            .count();
        assert!((forward as f64 / t.len() as f64 - 0.24).abs() < 0.01);
    }

    #[test]
    fn sizes_and_stamps() {
        let p = Profile {
            flows: 64,
            templates: 120,
            size: Sizes::Imix,
            hops: vec![0, 1, 2],
            ..Profile::default()
        };
        let t = Templates::build(&p, &FlowSet::new(&p));
        assert_eq!(t.len(), 120);
        for i in 0..t.len() {
            let f = t.frame(i);
            let s = t.slots[i];
            let m = t.meta[i];
            let min = outer_len(m.hops)
                + if m.ipv6 { 40 } else { 20 }
                + if matches!(m.kind, Kind::Udp | Kind::Icmp) {
                    8
                } else {
                    20
                }
                + STAMP_LEN;
            assert!(
                f.len() == min || [60, 566, 1514].contains(&f.len()),
                "{}",
                f.len()
            );
            assert_eq!(usize::from(s.stamp.unwrap()) + STAMP_LEN, min);
            assert_eq!(
                stamp::read(&f[usize::from(s.stamp.unwrap())..])
                    .unwrap()
                    .template,
                0
            );
        }
        let big = t.slots.iter().filter(|s| s.len == 1514).count();
        assert_eq!(big, 10);
    }

    #[test]
    fn frames_are_heads_then_zeros() {
        for (size, hops, prefix) in [
            // IPv6 TCP with 2 hops: 142 bytes of headers and stamp.
            (Sizes::Imix, vec![0, 1, 2], 192),
            (Sizes::Fixed(64), vec![1], 192),
            (Sizes::Fixed(1518), vec![0], 192),
        ] {
            let p = Profile {
                flows: 64,
                templates: 240,
                size,
                hops,
                ipv6_share: 0.5,
                ..Profile::default()
            };
            let t = Templates::build(&p, &FlowSet::new(&p));
            assert_eq!(t.prefix, prefix);
            for i in 0..t.len() {
                let (s, f, head) = (t.slots[i], t.frame(i), t.head(i));
                assert_eq!(head.len(), usize::from(s.copy));
                assert_eq!(head.len() % COPY_BLOCK, 0);
                assert_eq!(
                    head.as_ptr().align_offset(COPY_BLOCK),
                    0,
                    "one line per block"
                );
                assert!(usize::from(s.stamp.unwrap()) + STAMP_LEN <= head.len().min(f.len()));
                // The head then zeros, cut at the frame's length, is the frame.
                let mut rebuilt = head.to_vec();
                rebuilt.resize(rebuilt.len().max(f.len()), 0);
                assert_eq!(&rebuilt[..f.len()], f, "template {i}");
                assert!(rebuilt[f.len()..].iter().all(|&b| b == 0));
                if f.len() >= t.prefix {
                    assert_eq!(head.len(), t.prefix);
                } else {
                    assert_eq!(head.len(), f.len().next_multiple_of(COPY_BLOCK));
                }
            }
        }
        // IPv4 UDP with one hop only: 106 bytes of headers and stamp.
        let p = Profile {
            hops: vec![1],
            ipv6_share: 0.0,
            mix: crate::profile::Mix {
                tcp_syn: 0,
                tcp_established: 0,
                tcp_unknown: 0,
                udp: 1,
                icmp: 0,
            },
            ..Profile::default()
        };
        assert_eq!(Templates::build(&p, &FlowSet::new(&p)).prefix, 128);
    }
    #[test]
    fn client_frames_are_64_byte_tcp_from_a_client_address_each() {
        let p = Profile::parse(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/profiles/director-64.toml"
            ))
            .unwrap(),
            "director-64.toml",
        )
        .unwrap();
        p.validate("director-64.toml").unwrap();
        let t = Templates::build(&p, &FlowSet::new(&p));
        let mut clients = std::collections::HashSet::new();
        for i in 0..t.len() {
            let f = t.stamped(i, 7, 7);
            assert_eq!(f.len() + FCS_LEN, 64, "template {i}");
            assert_eq!(
                &f[..14],
                &[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xfe, 0x08, 0x00]
            );
            assert_eq!(f[14 + 9], 6, "TCP");
            assert_eq!(&f[14 + 16..14 + 20], &[203, 0, 113, 1], "to the VIP");
            assert!(chance_testkit::checksum::ipv4_header_ok(&f[14..]));
            assert_eq!(t.slots[i].stamp, None);
            clients.insert(f[14 + 12..14 + 16].to_vec());
        }
        assert_eq!(clients.len(), 4096, "one client address per flow");
    }

    #[test]
    fn client_imix_frames_take_the_imix_sizes() {
        let p = Profile {
            encapsulation: Encapsulation::None,
            size: Sizes::Imix,
            ipv6_share: 0.0,
            ..Profile::default()
        };
        let t = Templates::build(&p, &FlowSet::new(&p));
        let mut sizes: Vec<usize> = (0..t.len()).map(|i| t.frame(i).len() + FCS_LEN).collect();
        sizes.sort_unstable();
        sizes.dedup();
        assert_eq!(sizes, [64, 570, 1518]);
    }
}
