//! The decision procedure (docs/decision-procedure.md) and its dispatch onto the rewrites.
//!
//! Step numbers in comments refer to docs/decision-procedure.md. Deviations from cls_redirect
//! (docs/compatibility.md) are marked "Deviation".

use crate::classify::{self, Class};
use crate::config::{EngineConfig, L2_HEADER_LEN};
use crate::counters::{Counter, Counters};
use crate::fixed_fields::FixedFields;
use crate::flow::FlowTable;
use crate::outcome::{Outcome, Verdict};
use crate::rewrite::{self, GreError, CHAIN, GUE, HOPS, OUTER_IP, OUTER_UDP};
use crate::wire::ethernet::{self, EthernetFrame};
use crate::wire::gue::{GlbChainPacket, GuePacket};
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::udp::UdpPacket;
use crate::wire::{ethertype, ip_proto};

/// One engine instance: configuration plus its own counters (one per lcore in the runtime).
#[derive(Debug, Clone)]
pub struct Engine {
    config: EngineConfig,
    counters: Counters,
    /// The fast path's fixed header fields, for `config`'s port.
    fixed: FixedFields,
}

/// Where the next hop selection landed.
enum NextHop {
    /// No hop left (or a 0.0.0.0 entry): the packet is for this host.
    Last,
    /// Forward to `addr`, the hop list's entry `index`.
    Hop { addr: u32, index: usize },
}

impl Engine {
    /// A new engine with zeroed counters.
    pub fn new(config: EngineConfig) -> Self {
        Self {
            fixed: FixedFields::new(config.port),
            config,
            counters: Counters::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// This engine's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub(crate) fn fixed_fields(&self) -> &FixedFields {
        &self.fixed
    }

    pub(crate) fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// Decides what happens to `frame` and rewrites it in place; the result is
    /// `&frame[outcome.frame]`.
    pub fn process<F: FlowTable + ?Sized>(&mut self, frame: &mut [u8], flows: &F) -> Outcome {
        // Most frames take the fast path (`fast.rs`), which decides them as `decide` would.
        if let Some(plan) = self.plan(frame) {
            let owned = plan.flow().is_some_and(|key| flows.owns(&key.flow_key()));
            return self.process_planned(frame, &plan, owned, flows);
        }
        self.process_in_full(frame, flows)
    }

    /// [`process`](Self::process) without the fast path: the decision procedure step by step, in
    /// cls_redirect's order. The reference the fast path is checked against (property tests and
    /// the fuzz target); same verdicts, counters and bytes, only slower.
    pub fn process_in_full<F: FlowTable + ?Sized>(
        &mut self,
        frame: &mut [u8],
        flows: &F,
    ) -> Outcome {
        let outcome = self.decide(frame, flows);
        self.counted(outcome)
    }

    /// Counts a decided frame, on either path. 1-2: every frame is counted, including the ones
    /// that pass. The deciding counter is bumped here, once; counters that cls_redirect bumps on
    /// the way to a different outcome are bumped where that happens.
    #[inline(always)]
    pub(crate) fn counted(&mut self, outcome: Outcome) -> Outcome {
        self.counters.bump(Counter::ProcessedPacketsTotal);
        self.count_decision(outcome)
    }

    /// Bumps the counter that decided `outcome` (its drop or accept reason, or passed), not the
    /// processed count: for a frame whose processed count is its burst's.
    #[inline(always)]
    pub(crate) fn count_decision(&mut self, outcome: Outcome) -> Outcome {
        self.counters
            .bump(outcome.reason.unwrap_or(Counter::PassedPacketsTotal));
        outcome
    }

    fn decide<F: FlowTable + ?Sized>(&mut self, frame: &mut [u8], flows: &F) -> Outcome {
        let len = frame.len();
        let pass = Outcome::pass(len);
        // 3. Only IPv4 over Ethernet can be ours.
        if len < OUTER_UDP || EthernetFrame::new_unchecked(&*frame).ethertype() != ethertype::IPV4 {
            return pass;
        }
        let outer = Ipv4Packet::new_unchecked(&frame[OUTER_IP..]);
        // Deviation: a frame whose outer version is not 4 is not ours.
        // 5-6. No options, addressed to one of our encapsulation addresses.
        if outer.version() != 4 || outer.ihl() != 5 || !self.config.is_local(outer.dst_addr_u32()) {
            return pass;
        }
        match outer.protocol() {
            ip_proto::UDP => {}
            // Deviation: plain IPv4-in-IPv4 / IPv6-in-IPv4 from IPIP-style directors.
            ip_proto::IPIP | ip_proto::IPV6 => {
                let inner_is_ipv6 = outer.protocol() == ip_proto::IPV6;
                if outer.is_fragment() {
                    return Outcome::drop(Counter::ErrorsTotalFragmentedIp);
                }
                return self.accept(
                    frame,
                    OUTER_UDP,
                    inner_is_ipv6,
                    Counter::AcceptedPacketsTotalIpInIp,
                );
            }
            _ => return pass,
        }
        // 4, 7. Long enough for the fixed encapsulation headers, to our GUE port.
        if len < HOPS
            || UdpPacket::new_unchecked(&frame[OUTER_UDP..]).dst_port() != self.config.port
        {
            return pass;
        }
        // From here on the packet is ours.
        // 8. Outer fragments cannot be decapsulated.
        if outer.is_fragment() {
            return Outcome::drop(Counter::ErrorsTotalFragmentedIp);
        }
        // 9-13. GUE variant 0, data message, no flags, hlen covering the chain header and hops.
        let gue = GuePacket::new_unchecked(&frame[GUE..]);
        let chain = GlbChainPacket::new_unchecked(&frame[CHAIN..]);
        let hop_count = chain.hop_count();
        if gue.variant() != 0
            || gue.control()
            || gue.flags() != 0
            || u16::from(gue.hlen()) != 1 + u16::from(hop_count)
            || chain.version() != 0
        {
            return Outcome::drop(Counter::ErrorsTotalMalformedEncapsulation);
        }
        // 14. (cls_redirect drops this uncounted.)
        if chain.reserved() != 0 {
            return Outcome::drop(Counter::ErrorsTotalUnigueReserved);
        }
        // 15. (cls_redirect drops these uncounted.)
        if chain.next_hop() > hop_count || chain.check_hops_len().is_err() {
            return Outcome::drop(Counter::ErrorsTotalMalformedHopList);
        }
        let proto_ctype = gue.proto_ctype();
        let inner_is_ipv6 = proto_ctype == ip_proto::IPV6;
        let inner_off = HOPS + 4 * usize::from(hop_count);
        let forward_syn = chain.forward_syn();
        let (addr, index) = match self.next_hop(&chain) {
            // 16. The inner packet is not parsed at all on the last hop.
            NextHop::Last => {
                return self.accept(
                    frame,
                    inner_off,
                    inner_is_ipv6,
                    Counter::AcceptedPacketsTotalLastHop,
                )
            }
            NextHop::Hop { addr, index } => (addr, index),
        };
        let wants_gre = rewrite::wants_gre(&chain, index);

        // 17. Classify the inner packet.
        let inner = &frame[inner_off..];
        let class = match proto_ctype {
            ip_proto::IPIP => classify::ipv4(inner, flows, &mut self.counters),
            ip_proto::IPV6 => classify::ipv6(inner, flows, &mut self.counters),
            _ => Err(Counter::ErrorsTotalUnknownL3Proto),
        };
        let accepted = match class {
            Err(reason) => return Outcome::drop(reason),
            Ok(Class::Unknown) => None,
            Ok(Class::Syn(_)) if forward_syn => None,
            Ok(Class::Syn(key)) => {
                // The host's stack will answer: a learning table keeps an embryonic entry so the
                // handshake's ACK is ours even if the SYN-ACK does not leave through chance.
                flows.syn_accepted(&key);
                Some(Counter::AcceptedPacketsTotalSyn)
            }
            Ok(Class::SynCookie) => Some(Counter::AcceptedPacketsTotalSynCookies),
            Ok(Class::EchoRequest) => Some(Counter::AcceptedPacketsTotalIcmpEchoRequest),
            Ok(Class::Established) => Some(Counter::AcceptedPacketsTotalEstablished),
        };
        if let Some(counter) = accepted {
            return self.accept(frame, inner_off, inner_is_ipv6, counter);
        }

        // Forward: back to the router, which routes on the new outer daddr.
        rewrite::swap_macs(frame);
        if wants_gre {
            return self.forward_gre(frame, addr, hop_count, inner_is_ipv6);
        }
        gue_forwarded(frame, addr, u8::try_from(index + 1).unwrap_or(u8::MAX))
    }

    /// The next hop (docs/decision-procedure.md, step 16) with chance's deviations: any position in
    /// a list of up to 30 hops; hops naming this host are skipped in place (counted), so the list
    /// costs no round trip through the router.
    // Inlined into `decide` (its one caller): out of line, the call, the saved registers and the
    // result returned through memory cost 36 instructions per packet (bench-instructions.sh).
    #[inline(always)]
    fn next_hop<T: AsRef<[u8]>>(&mut self, chain: &GlbChainPacket<T>) -> NextHop {
        let hop_count = usize::from(chain.hop_count());
        let mut index = usize::from(chain.next_hop());
        while index < hop_count {
            let addr = chain.hop(index);
            if addr == 0 {
                break;
            }
            if !self.config.is_local(addr) {
                return NextHop::Hop { addr, index };
            }
            self.counters.bump(Counter::HopsSkippedTotalSelf);
            index += 1;
        }
        NextHop::Last
    }

    /// GRE last hop (docs/wire-format.md): `forwarded_packets_total_gre` counts attempts, so it is
    /// bumped on the drops too.
    fn forward_gre(
        &mut self,
        frame: &mut [u8],
        hop: u32,
        hop_count: u8,
        inner_is_ipv6: bool,
    ) -> Outcome {
        let max_frame_len = usize::from(self.config.mtu) + L2_HEADER_LEN;
        let reason = match rewrite::gre_forward(frame, hop, hop_count, inner_is_ipv6, max_frame_len)
        {
            Ok(range) => {
                return Outcome {
                    verdict: Verdict::Forward,
                    reason: Some(Counter::ForwardedPacketsTotalGre),
                    frame: range,
                }
            }
            Err(GreError::InnerUnreadable) => Counter::ErrorsTotalMalformedEncapsulation,
            Err(GreError::Loop) => Counter::ErrorsTotalRedirectLoop,
            Err(GreError::Mtu) => Counter::ErrorsTotalEncapMtuViolate,
        };
        self.counters.bump(Counter::ForwardedPacketsTotalGre);
        Outcome::drop(reason)
    }

    /// Decapsulates with `counter` as the deciding reason. When the decapsulation fails, the accept
    /// counter is still bumped, as in cls_redirect, and the drop gets chance's own counter.
    // Inlined: the outcome it returns is read back at once, and through memory its words would
    // be loaded before their stores reach the cache (a store-to-load forwarding stall).
    #[inline(always)]
    pub(crate) fn accept(
        &mut self,
        frame: &mut [u8],
        inner_off: usize,
        inner_is_ipv6: bool,
        counter: Counter,
    ) -> Outcome {
        let decapsulated = rewrite::decapsulate(frame, inner_off, inner_is_ipv6);
        self.accepted(decapsulated, counter)
    }

    /// [`accept`](Self::accept) of an inner packet known to be IPv4 (the fast path's).
    #[inline(always)]
    pub(crate) fn accept_ipv4(
        &mut self,
        frame: &mut [u8],
        inner_off: usize,
        counter: Counter,
    ) -> Outcome {
        let decapsulated = rewrite::decapsulate_ipv4(frame, inner_off);
        self.accepted(decapsulated, counter)
    }

    #[inline(always)]
    fn accepted(
        &mut self,
        decapsulated: Result<core::ops::Range<usize>, rewrite::TooShort>,
        counter: Counter,
    ) -> Outcome {
        match decapsulated {
            Ok(range) => Outcome {
                verdict: Verdict::Accept,
                reason: Some(counter),
                frame: range,
            },
            Err(rewrite::TooShort) => {
                self.counters.bump(counter);
                Outcome::drop(Counter::ErrorsTotalDecapTooShort)
            }
        }
    }
}

/// GUE forward to `hop` with the chain's next hop set to `next_hop` (the entry after `hop`'s; the
/// MACs already swapped): the rewrite and the outcome, for the full procedure and the fast path
/// alike.
// Inlined: the outcome it returns is read back at once (see `Engine::accept`).
#[inline(always)]
pub(crate) fn gue_forwarded(frame: &mut [u8], hop: u32, next_hop: u8) -> Outcome {
    rewrite::gue_forward(frame, hop, next_hop);
    Outcome {
        verdict: Verdict::Forward,
        reason: Some(Counter::ForwardedPacketsTotalGue),
        frame: 0..frame.len(),
    }
}

const _: () = assert!(HOPS == 50 && OUTER_UDP == ethernet::HEADER_LEN + ipv4::HEADER_LEN);
