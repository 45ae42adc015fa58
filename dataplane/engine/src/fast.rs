//! The fast path: the frames that make up nearly all of a backend's traffic, decided in two
//! steps a runtime can put a whole burst's flow-table lookups between.
//!
//! [`Engine::plan`] reads the headers of a frame that is GUE to this host with inner IPv4 and
//! either an exhausted hop list (accepted without reading the inner packet) or a next hop and an
//! inner TCP segment that is not a SYN (owned: accepted; else a SYN-cookie ACK or forwarded). It
//! changes and counts nothing. Every other frame, and any frame with something unusual about it
//! (options, fragments, malformed or skipped hops, GRE, SYNs, UDP, ICMP, IPv6...), gets no plan
//! and goes the full way, [`Engine::process`]. [`Engine::process_planned`] then finishes a
//! planned frame given the table's answer for its flow: the verdict, the counters and the
//! rewritten bytes are the ones the full decision procedure gives (`tests` below check it on
//! every frame of the fixtures and on mutations of them).
//!
//! Why: the full procedure asks the table in the middle of its checks, one frame at a time, and
//! a lookup in a table larger than the caches waits for memory. Split in two, with the lookup left
//! to the caller, a runtime can plan a whole burst, look all its flows up in one batch that
//! overlaps their misses (`crate::burst`), then finish every frame, without parsing a header twice
//! (chanced's worker does: BENCHMARKS.md, "Dataplane throughput"). The checks are the full
//! procedure's, in another order; on these frames the order decides nothing, since any failing
//! check sends the frame the full way.

use crate::counters::Counter;
use crate::engine::{gue_forwarded, Engine};
use crate::flow::{FlowTable, Ipv4FlowKey, L4Proto};
use crate::outcome::Outcome;
use crate::rewrite::{self, CHAIN, GUE, HOPS, OUTER_IP};
use crate::wire::gue::{GlbChainPacket, GuePacket};
use crate::wire::ip_proto;
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::tcp::{self, TcpPacket};

/// What [`Engine::plan`] learned from a frame's headers.
///
/// Whole words only: a plan is written by `plan` and read back soon after, and a wide load over
/// narrower stores that have not reached the cache yet stalls the core (store-to-load forwarding
/// fails). With byte and half-word fields, a burst's plans cost more than the lookups they
/// overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The flow (meaningful for [`TCP`] plans).
    key: Ipv4FlowKey,
    /// kind (bits 0-7) | the next hop's index + 1, what forwarding sets next_hop to (8-15) |
    /// owned, as a burst found (17) | hop count (32-39), which places the inner packet | the
    /// segment's TCP flags (40-47), which say whether it may carry a SYN cookie: tested when
    /// finishing the few frames that need it.
    meta: u64,
    /// The next hop's address (bits 0-31, [`TCP`] plans), its bytes as in the frame read into a
    /// native-endian word.
    hop: u64,
}

/// The hop list is exhausted: accept (last hop) without reading the inner packet.
const LAST_HOP: u64 = 1;
/// Inner IPv4 TCP, not a SYN, with a next hop.
const TCP: u64 = 2;
const KIND_MASK: u64 = 0xff;
const NEXT_HOP_SHIFT: u32 = 8;
/// Set by a burst ([`crate::burst::BurstPlan`]) when the table (or its cache) said the flow is
/// owned: the answer travels with the plan, so finishing a frame reads one word for both.
const OWNED_BIT: u64 = 1 << 17;
/// A declined plan (kind 0) of a SYN for us, whose key is its flow: the full procedure decides
/// the frame, and a burst warms the table for the insert it will make (see [`Plan::syn_flow`]).
const SYN_FLOW: u64 = 1 << 18;
const HOP_COUNT_SHIFT: u32 = 32;
const TCP_FLAGS_SHIFT: u32 = 40;

impl Plan {
    /// No plan: what a burst keeps for a frame `plan` declined (a kind of its own, so that a
    /// burst's plans need no `Option` tag).
    #[inline]
    pub(crate) fn none() -> Plan {
        Plan {
            key: Ipv4FlowKey::unspecified(),
            meta: 0,
            hop: 0,
        }
    }

    /// Records the table's answer "owned" for [`flow`](Self::flow).
    #[inline]
    pub(crate) fn set_owned(&mut self) {
        self.meta |= OWNED_BIT;
    }

    /// Whether [`set_owned`](Self::set_owned) recorded "owned".
    #[inline]
    pub(crate) fn owned(&self) -> bool {
        self.meta & OWNED_BIT != 0
    }

    /// The plan as [`Engine::plan`] made it, without an answer recorded since.
    #[cfg(test)]
    pub(crate) fn as_planned(&self) -> Plan {
        Plan {
            meta: self.meta & !OWNED_BIT,
            ..*self
        }
    }

    /// True for [`none`](Self::none).
    pub(crate) fn is_none(&self) -> bool {
        self.kind() == 0
    }

    /// For a declined SYN of [`Engine::plan_in_burst`]: its flow, which the full procedure will
    /// insert into the table (`FlowTable::syn_accepted`).
    #[inline]
    pub(crate) fn syn_flow(&self) -> Option<&Ipv4FlowKey> {
        (self.meta == SYN_FLOW).then_some(&self.key)
    }

    /// The flow whose owner decides the verdict, if any: what to look up for
    /// [`Engine::process_planned`].
    #[inline]
    pub fn flow(&self) -> Option<&Ipv4FlowKey> {
        (self.kind() == TCP).then_some(&self.key)
    }

    fn kind(&self) -> u64 {
        self.meta & KIND_MASK
    }

    fn inner_off(&self) -> usize {
        // From the hop count rather than a stored offset: the finish's bounds checks then know
        // the offset is at least `HOPS` and drop the ones that follow from the length check.
        inner_offset((self.meta >> HOP_COUNT_SHIFT) as u8)
    }

    /// An ACK without RST: it may carry a SYN cookie.
    fn may_be_cookie(&self) -> bool {
        let tcp_flags = (self.meta >> TCP_FLAGS_SHIFT) as u8;
        tcp_flags & (tcp::flags::ACK | tcp::flags::RST) == tcp::flags::ACK
    }

    /// The forwarded frame's new next hop: the planned hop's index plus one (below the hop
    /// count, so it fits a byte).
    fn next_hop(&self) -> u8 {
        (self.meta >> NEXT_HOP_SHIFT) as u8
    }
}

impl Engine {
    /// The fast path's plan for `frame`, or `None` when the frame must take the full decision
    /// procedure ([`process`](Self::process)). Reads only; counts nothing.
    #[inline(always)]
    pub fn plan(&self, frame: &[u8]) -> Option<Plan> {
        self.plan_in_burst(frame).filter(|plan| !plan.is_none())
    }

    /// [`plan`](Self::plan) for a burst: a SYN's frame is declined as there (its plan
    /// [`is_none`](Plan::is_none)) but keeps its flow, [`Plan::syn_flow`], so that the burst can
    /// warm the table for the SYN's insert before the frame is finished.
    #[inline(always)]
    pub(crate) fn plan_in_burst(&self, frame: &[u8]) -> Option<Plan> {
        // Every header up to the hop list is there; `len >= HOPS` makes the unchecked views below
        // safe to read (the hop list and the inner packet are measured before they are read).
        let len = frame.len();
        if len < HOPS {
            return None;
        }
        // Ethernet, IPv4 without options, not a fragment, UDP to our port, GUE variant 0 data of
        // inner IPv4 without flags, chain version 0 and reserved clear (one compare), to us.
        if !self.fixed_fields().match_frame(frame)
            || !self
                .config()
                .is_local_wire(Ipv4Packet::new_unchecked(&frame[OUTER_IP..]).dst_addr_wire())
        {
            return None;
        }
        let gue = GuePacket::new_unchecked(&frame[GUE..]);
        let chain = GlbChainPacket::new_unchecked(&frame[CHAIN..]);
        let hop_count = chain.hop_count();
        let next = chain.next_hop();
        if u16::from(gue.hlen()) != 1 + u16::from(hop_count) || next > hop_count {
            return None;
        }
        let inner_off = inner_offset(hop_count);
        // The hop list whole (what `check_hops_len` checks), so that reading the next hop from it
        // needs no check of its own.
        let hops = frame.get(HOPS..inner_off)?;
        let hop_count_bits = u64::from(hop_count) << HOP_COUNT_SHIFT;
        if next == hop_count {
            // Decapsulation needs an inner IPv4 header's worth of bytes (the version is checked so
            // that the finish may take the length from the IPv4 header).
            let inner_v4 = frame.get(inner_off).is_some_and(|&b| b >> 4 == 4);
            return (inner_v4 && len >= inner_off + ipv4::HEADER_LEN).then_some(Plan {
                key: Ipv4FlowKey::unspecified(),
                meta: LAST_HOP | hop_count_bits,
                hop: 0,
            });
        }
        // Compared as it lies in the frame; swapped into a number only when a frame is forwarded.
        let hop = hop_at(hops, next)?;
        if hop == 0
            || self.config().is_local_wire(hop)
            || rewrite::wants_gre(&chain, usize::from(next))
        {
            return None;
        }
        let inner = frame.get(inner_off..)?;
        if inner.len() < ipv4::HEADER_LEN + tcp::HEADER_LEN {
            return None;
        }
        let ip = Ipv4Packet::new_unchecked(inner);
        // Version 4 without options.
        if inner[0] != 0x45 || ip.is_fragment() || ip.protocol() != ip_proto::TCP {
            return None;
        }
        let segment = TcpPacket::new_unchecked(&inner[ipv4::HEADER_LEN..]);
        let tcp_flags = segment.flags();
        // Source and destination address, adjacent in the header (the length was checked above).
        let addrs: [u8; 8] = inner.get(ipv4::ADDRS)?.try_into().ok()?;
        // The local side is the packet's destination.
        let key = Ipv4FlowKey::inbound(L4Proto::Tcp, addrs, segment.dst_port(), segment.src_port());
        if tcp_flags & tcp::flags::SYN != 0 {
            return Some(Plan {
                key,
                meta: SYN_FLOW,
                hop: 0,
            });
        }
        Some(Plan {
            key,
            meta: TCP
                | (u64::from(next) + 1) << NEXT_HOP_SHIFT
                | hop_count_bits
                | u64::from(tcp_flags) << TCP_FLAGS_SHIFT,
            hop: u64::from(hop),
        })
    }

    /// Finishes a frame [`plan`](Self::plan) planned, exactly as [`process`](Self::process) would:
    /// counters, verdict and rewrite. `owned` is the table's answer for [`Plan::flow`] (ignored
    /// when the plan has no flow); `flows` is asked only whether a forwarded ACK carries a SYN
    /// cookie.
    ///
    /// `plan` must come from this engine's `plan` on these very bytes.
    // Always inline: called out of line, its `Outcome` comes back through memory and is read at
    // once (a store-to-load forwarding stall), and LLVM's choice flips with unrelated changes.
    #[inline(always)]
    pub fn process_planned<F: FlowTable + ?Sized>(
        &mut self,
        frame: &mut [u8],
        plan: &Plan,
        owned: bool,
        flows: &F,
    ) -> Outcome {
        let outcome = self.finish::<F, true>(frame, plan, owned, flows);
        self.counted(outcome)
    }

    /// [`process_planned`](Self::process_planned) for a frame of a
    /// [`BurstPlan`](crate::burst::BurstPlan), which counts what every planned flow counts (its
    /// inner IPv4 and TCP) for the whole burst at once
    /// ([`BurstPlan::count_finished`](crate::burst::BurstPlan::count_finished)), and counts
    /// such a frame processed there too: three counter updates a frame fewer.
    #[inline(always)]
    pub fn process_planned_in_burst<F: FlowTable + ?Sized>(
        &mut self,
        frame: &mut [u8],
        plan: &Plan,
        owned: bool,
        flows: &F,
    ) -> Outcome {
        let outcome = self.finish::<F, false>(frame, plan, owned, flows);
        // The processed count is the burst's or, for a last hop, `finish`'s.
        self.count_decision(outcome)
    }

    /// Finishes the frame; `COMMON` counts the inner IPv4 and TCP of a [`TCP`] plan too, and
    /// without it a last hop's frame counts itself processed (a burst counts its [`TCP`] plans'
    /// once).
    #[inline(always)]
    fn finish<F: FlowTable + ?Sized, const COMMON: bool>(
        &mut self,
        frame: &mut [u8],
        plan: &Plan,
        owned: bool,
        flows: &F,
    ) -> Outcome {
        let inner_off = plan.inner_off();
        if plan.kind() == LAST_HOP {
            if !COMMON {
                self.counters_mut().bump(Counter::ProcessedPacketsTotal);
            }
            return self.accept_ipv4(frame, inner_off, Counter::AcceptedPacketsTotalLastHop);
        }
        if COMMON {
            let counters = self.counters_mut();
            counters.bump(Counter::L3ProtocolPacketsTotalIpv4);
            counters.bump(Counter::L4ProtocolPacketsTotalTcp);
        }
        if owned {
            return self.accept_ipv4(frame, inner_off, Counter::AcceptedPacketsTotalEstablished);
        }
        if plan.may_be_cookie() && carries_cookie(frame, inner_off, &plan.key, flows) {
            return self.accept_ipv4(frame, inner_off, Counter::AcceptedPacketsTotalSynCookies);
        }
        rewrite::swap_macs(frame);
        gue_forwarded(frame, u32::from_be(plan.hop as u32), plan.next_hop())
    }
}

/// Hop `index` of the hop list `hops`, its bytes read into a native-endian word.
#[inline(always)]
fn hop_at(hops: &[u8], index: u8) -> Option<u32> {
    let at = 4 * usize::from(index);
    let bytes: [u8; 4] = hops.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_ne_bytes(bytes))
}

/// Where the inner packet starts behind `hop_count` hops.
#[inline(always)]
fn inner_offset(hop_count: u8) -> usize {
    HOPS + 4 * usize::from(hop_count)
}

/// Whether the planned ACK at `inner_off` carries a SYN cookie: its sequence and
/// acknowledgement numbers are read here, for the few ACKs that need them, not by every plan.
#[inline]
fn carries_cookie<F: FlowTable + ?Sized>(
    frame: &[u8],
    inner_off: usize,
    key: &Ipv4FlowKey,
    flows: &F,
) -> bool {
    // `plan` measured the segment; a frame that is not the planned one is simply no cookie.
    let Some(segment) = frame.get(inner_off + ipv4::HEADER_LEN..) else {
        return false;
    };
    let Ok(segment) = TcpPacket::new_checked(segment) else {
        return false;
    };
    flows.is_syncookie(&key.flow_key(), segment.seq_number(), segment.ack_number())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineConfig;
    use crate::counters::Counters;
    use crate::flow::FlowKey;
    use chance_testkit::gue::{GueFrame, ENCAP_ADDR, ENCAP_PORT};
    use chance_testkit::inner::{self, ACK, RST, SYN};
    use chance_testkit::mix;
    use core::net::Ipv4Addr;
    use proptest::prelude::*;
    use std::cell::{Cell, RefCell};
    use std::collections::HashSet;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
    const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
    const HOP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 21);

    /// Owns the mix's flows and one of the fixtures' (client port 40000); sees a SYN cookie in
    /// every ACK whose sequence number is a multiple of three; records what it is asked and told.
    #[derive(Default)]
    struct Recording {
        owned: HashSet<FlowKey>,
        lookups: Cell<usize>,
        cookie_checks: Cell<usize>,
        learned: RefCell<Vec<FlowKey>>,
    }

    impl Recording {
        fn new() -> Self {
            let mut owned: HashSet<FlowKey> = (0..1000)
                .map(|i| {
                    let (addr, port) = mix::client(i);
                    FlowKey::v4(L4Proto::Tcp, mix::VIP, mix::VIP_PORT, addr, port)
                })
                .collect();
            owned.insert(FlowKey::v4(L4Proto::Tcp, VIP, 443, CLIENT, 40000));
            Self {
                owned,
                ..Self::default()
            }
        }
    }

    impl FlowTable for Recording {
        fn owns(&self, key: &FlowKey) -> bool {
            self.lookups.set(self.lookups.get() + 1);
            self.owned.contains(key)
        }
        fn is_syncookie(&self, _key: &FlowKey, seq: u32, _ack: u32) -> bool {
            self.cookie_checks.set(self.cookie_checks.get() + 1);
            seq.is_multiple_of(3)
        }
        fn syn_accepted(&self, key: &FlowKey) {
            self.learned.borrow_mut().push(*key);
        }
    }

    /// The mix's engine (its address and port), which also owns the fixtures' address.
    fn engine(port: u16) -> Engine {
        let config = EngineConfig::new(&[mix::ENCAP, ENCAP_ADDR], port, 1500).expect("addresses");
        Engine::new(config)
    }

    fn tcp(sport: u16, flags: u8, seq: u32) -> Vec<u8> {
        inner::Ipv4Packet::new(
            CLIENT,
            VIP,
            inner::L4::tcp_seq(sport, 443, flags, seq, 2000),
        )
        .build()
    }

    /// Frames to start from, each with its GUE port: the mix, and fixtures around the fast
    /// path's edges (self hops, GRE, IPv6, UDP, SYN cookies, RST, several hops, the last hop).
    fn frames() -> &'static [(u16, Vec<u8>)] {
        static FRAMES: std::sync::OnceLock<Vec<(u16, Vec<u8>)>> = std::sync::OnceLock::new();
        FRAMES.get_or_init(build_frames)
    }

    fn build_frames() -> Vec<(u16, Vec<u8>)> {
        let mut frames: Vec<(u16, Vec<u8>)> = mix::frames(400, 1000, 3)
            .0
            .into_iter()
            .map(|frame| (mix::GUE_PORT, frame))
            .collect();
        let v6 = inner::Ipv6Packet::new(
            "2001:db8::7".parse().expect("address"),
            "2001:db8::10".parse().expect("address"),
            inner::L4::tcp(40000, 443, ACK),
        )
        .build();
        let udp = inner::Ipv4Packet::new(CLIENT, VIP, inner::L4::udp(40000, 443, b"x")).build();
        for gue in [
            GueFrame::ipv4(tcp(40000, ACK, 7)).hops(&[HOP]),
            GueFrame::ipv4(tcp(40001, ACK, 9)).hops(&[HOP]),
            GueFrame::ipv4(tcp(40001, ACK, 10)).hops(&[HOP]),
            GueFrame::ipv4(tcp(40001, ACK | RST, 9)).hops(&[HOP]),
            GueFrame::ipv4(tcp(40001, 0, 9)).hops(&[HOP]),
            GueFrame::ipv4(tcp(40001, SYN, 9)).hops(&[HOP]),
            GueFrame::ipv4(tcp(40001, SYN, 9))
                .hops(&[HOP])
                .forward_syn(),
            GueFrame::ipv4(tcp(40001, ACK, 10)).hops(&[ENCAP_ADDR, HOP]),
            GueFrame::ipv4(tcp(40001, ACK, 10)).hops(&[HOP, ENCAP_ADDR, HOP]),
            GueFrame::ipv4(tcp(40001, ACK, 10))
                .hops(&[HOP, HOP])
                .next_hop(1),
            GueFrame::ipv4(tcp(40001, ACK, 10))
                .hops(&[HOP, HOP])
                .next_hop(2),
            GueFrame::ipv4(tcp(40001, ACK, 10))
                .hops(&[HOP])
                .last_hop_gre(),
            GueFrame::ipv4(tcp(40001, ACK, 10)).hops(&[Ipv4Addr::UNSPECIFIED, HOP]),
            GueFrame::ipv4(tcp(40001, ACK, 10)),
            GueFrame::ipv4(udp).hops(&[HOP]),
            GueFrame::ipv6(v6).hops(&[HOP]),
        ] {
            frames.push((ENCAP_PORT, gue.build()));
        }
        frames
    }

    /// `process` (the fast path where it plans) and the full procedure alone agree on `frame`:
    /// outcome, bytes, counters and everything asked of and told to the table.
    fn assert_same_both_ways(port: u16, frame: &[u8]) -> Result<(), TestCaseError> {
        let (fast_table, full_table) = (Recording::new(), Recording::new());
        let (mut fast, mut full) = (engine(port), engine(port));
        let (mut fast_frame, mut full_frame) = (frame.to_vec(), frame.to_vec());
        let fast_outcome = fast.process(&mut fast_frame, &fast_table);
        let full_outcome = full.process_in_full(&mut full_frame, &full_table);
        prop_assert_eq!(&fast_outcome, &full_outcome);
        prop_assert_eq!(&fast_frame, &full_frame);
        prop_assert_eq!(fast.counters(), full.counters());
        prop_assert_eq!(fast_table.lookups.get(), full_table.lookups.get());
        prop_assert_eq!(
            fast_table.cookie_checks.get(),
            full_table.cookie_checks.get()
        );
        prop_assert_eq!(&*fast_table.learned.borrow(), &*full_table.learned.borrow());
        Ok(())
    }

    #[test]
    fn the_mix_s_accepts_and_forwards_take_the_fast_path_and_its_syns_and_passes_do_not() {
        let engine = engine(mix::GUE_PORT);
        let flows = 1000;
        for i in 0..20 {
            for (kind, planned) in [
                (mix::Kind::Established, true),
                (mix::Kind::Unknown, true),
                (mix::Kind::LastHop, true),
                (mix::Kind::Syn, false),
                (mix::Kind::NotOurs, false),
            ] {
                let frame = mix::frame(kind, i, flows);
                assert_eq!(engine.plan(&frame).is_some(), planned, "{kind:?} {i}");
            }
        }
    }

    #[test]
    fn planned_frames_decide_as_the_full_procedure_does() {
        let mut planned = [0usize; 2];
        for (port, frame) in frames() {
            planned[usize::from(engine(*port).plan(frame).is_some())] += 1;
            assert_same_both_ways(*port, frame).unwrap();
        }
        assert!(
            planned[0] > 20 && planned[1] > 300,
            "both paths covered: {planned:?}"
        );
    }

    #[test]
    fn a_last_hop_frame_whose_inner_packet_is_not_ipv4_goes_the_full_way_and_decides_alike() {
        let mut frame = mix::frame(mix::Kind::LastHop, 0, 1000);
        let inner_off = HOPS + 4;
        assert!(
            engine(mix::GUE_PORT).plan(&frame).is_some(),
            "planned as built"
        );
        for version in [0u8, 6, 15] {
            frame[inner_off] = version << 4 | 5;
            assert!(
                engine(mix::GUE_PORT).plan(&frame).is_none(),
                "version {version}"
            );
            assert_same_both_ways(mix::GUE_PORT, &frame).unwrap();
        }
    }

    #[test]
    fn a_planned_frame_s_counters_are_those_of_the_full_procedure() {
        // The counters `process_planned` bumps, spelled out for the mix's three planned kinds.
        let mut table = Recording::new();
        table.owned.clear();
        for (kind, counter) in [
            (mix::Kind::Unknown, Counter::ForwardedPacketsTotalGue),
            (mix::Kind::LastHop, Counter::AcceptedPacketsTotalLastHop),
        ] {
            let mut engine = engine(mix::GUE_PORT);
            let mut frame = mix::frame(kind, 0, 1000);
            let plan = engine.plan(&frame).expect("planned");
            let owned = plan.flow().is_some_and(|key| table.owns(&key.flow_key()));
            engine.process_planned(&mut frame, &plan, owned, &table);
            let mut want = Counters::new();
            want.bump(Counter::ProcessedPacketsTotal);
            want.bump(counter);
            if kind == mix::Kind::Unknown {
                want.bump(Counter::L3ProtocolPacketsTotalIpv4);
                want.bump(Counter::L4ProtocolPacketsTotalTcp);
            }
            assert_eq!(engine.counters(), &want, "{kind:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(chance_testkit::proptest_cases(3000)))]

        /// Whatever is changed in a frame, the two paths agree: a change the fast path does not
        /// expect must send the frame the full way.
        #[test]
        fn mutated_frames_decide_as_the_full_procedure_does(
            which in any::<prop::sample::Index>(),
            changes in prop::collection::vec((0usize..110, any::<u8>()), 1..4),
            cut in 0usize..16,
        ) {
            let frames = frames();
            let (port, frame) = &frames[which.index(frames.len())];
            let mut frame = frame.clone();
            for (at, value) in changes {
                if let Some(byte) = frame.get_mut(at) {
                    *byte = value;
                }
            }
            let len = frame.len().saturating_sub(cut);
            assert_same_both_ways(*port, &frame[..len])?;
        }
    }
}
